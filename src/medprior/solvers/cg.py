"""Conjugate gradients on batched tensors, for ``M x = b`` with ``M`` Hermitian positive definite.

Written here rather than taken from scipy because solvers run on torch tensors (CPU or CUDA,
real or complex) with one independent system per slice of the batch axis.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from medprior.checks import require_float, require_int
from medprior.physics.operator import LinearOperator


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-batch-item real inner product ``Re <a_b, b_b>``, shape ``(B, 1, ..., 1)``."""
    product = (a.conj() * b).real if a.is_complex() else a * b
    return product.flatten(1).sum(1).reshape(-1, *([1] * (a.dim() - 1)))


def conjugate_gradient(apply_m: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
                       x0: torch.Tensor | None = None, *, iterations: int = 20,
                       tolerance: float = 1e-6) -> torch.Tensor:
    """Solve ``M x = b`` for every batch item at once.

    Args:
        apply_m: ``x -> M x`` for a Hermitian positive (semi)definite ``M``, shape-preserving.
        b: right-hand side ``(B, ...)``, real or complex.
        x0: start (default zeros).
        iterations: maximum CG iterations.
        tolerance: stop once every item's residual norm is below ``tolerance * ||b||``.

    Returns:
        ``x`` with the shape and dtype of ``b``.
    """
    iterations = require_int("iterations", iterations, minimum=0)
    tolerance = require_float("tolerance", tolerance, minimum=0)
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - apply_m(x) if x0 is not None else b.clone()
    p = r.clone()
    rr = _dot(r, r)
    threshold = (tolerance ** 2) * _dot(b, b)
    for _ in range(iterations):
        if bool((rr <= threshold).all()):
            break
        mp = apply_m(p)
        # items already converged stop moving: with rr and p^H M p both at rounding level their
        # ratio is noise and can be huge (seen with 2-view CT, a nearly rank-0 normal operator)
        active = rr > threshold
        alpha = torch.where(active, rr / _dot(p, mp).clamp_min(torch.finfo(rr.dtype).tiny), 0.0)
        x = x + alpha * p
        r = r - alpha * mp
        rr_new = _dot(r, r)
        p = r + (rr_new / rr.clamp_min(torch.finfo(rr.dtype).tiny)) * p
        rr = rr_new
    return x


def cgls(operator: LinearOperator, y: torch.Tensor, x0: torch.Tensor | None = None, *, iterations: int = 20,
         damping: float = 0.0, tolerance: float = 1e-6) -> torch.Tensor:
    """Least squares ``min ||A x - y||^2 + damping ||x||^2`` by CG on the normal equations.

    Args:
        operator: the forward model ``A``.
        y: measurements ``(B, *range_shape)``.
        x0: start ``(B, *domain_shape)`` (default zeros).
        iterations: CG iterations (early iterations regularise: stop early on noisy data).
        damping: Tikhonov weight (same units as ``||A x||^2 / ||x||^2``).
        tolerance: relative residual of the normal equations at which to stop.
    """
    damping = require_float("damping", damping, minimum=0)
    return conjugate_gradient(lambda x: operator.normal(x) + damping * x, operator.adjoint(y), x0,
                              iterations=iterations, tolerance=tolerance)
