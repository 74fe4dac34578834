"""Conjugate gradients on batched tensors, for ``M x = b`` with ``M`` Hermitian positive definite.

Written here rather than taken from scipy because solvers run on torch tensors (CPU or CUDA,
real or complex) with one independent system per slice of the batch axis.

Residuals: each solver logs its relative residual per iteration at DEBUG and a one-line summary at
INFO on the ``medprior.solvers.*`` loggers (shown by ``medprior -vv`` / ``-v``), and appends them to
an optional ``history`` list. Measuring them reads the recurrence's ``r^H r``; the iterates are the
same with or without.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from medprior.checks import require_float, require_int
from medprior.physics.operator import LinearOperator

logger = logging.getLogger(__name__)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-batch-item real inner product ``Re <a_b, b_b>``, shape ``(B, 1, ..., 1)``."""
    product = (a.conj() * b).real if a.is_complex() else a * b
    return product.flatten(1).sum(1).reshape(-1, *([1] * (a.dim() - 1)))


def _relative(rr: torch.Tensor, bb: torch.Tensor) -> float:
    """The worst batch item's relative residual ``||r|| / ||b||`` (0 where ``b = 0`` and ``r = 0``)."""
    tiny = torch.finfo(rr.dtype).tiny
    return float(torch.sqrt((rr / bb.clamp_min(tiny)).max()))


def _solve(apply_m: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, x0: torch.Tensor | None,
           iterations: int, tolerance: float, history: list[float] | None = None,
           log: logging.Logger | None = None, label: str = "CG") -> torch.Tensor:
    """CG without argument checks; ``log`` (None: silent) gets the per-iteration DEBUG lines and the
    INFO summary, ``history`` the relative residual before the first iteration and after each."""
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - apply_m(x) if x0 is not None else b.clone()
    p = r.clone()
    rr = _dot(r, r)
    bb = _dot(b, b)
    threshold = (tolerance ** 2) * bb
    debug = log is not None and log.isEnabledFor(logging.DEBUG)
    measure = debug or history is not None
    if history is not None:
        history.append(_relative(rr, bb))
    done = 0
    for done in range(1, iterations + 1):
        if bool((rr <= threshold).all()):
            done -= 1
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
        if measure:
            residual = _relative(rr, bb)
            if history is not None:
                history.append(residual)
            if debug:
                log.debug("%s iteration %d: relative residual %.3e", label, done, residual)
    if log is not None and log.isEnabledFor(logging.INFO):
        log.info("%s: %d iterations, relative residual %.3e", label, done, _relative(rr, bb))
    return x


def conjugate_gradient(apply_m: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
                       x0: torch.Tensor | None = None, *, iterations: int = 20,
                       tolerance: float = 1e-6, history: list[float] | None = None) -> torch.Tensor:
    """Solve ``M x = b`` for every batch item at once.

    Args:
        apply_m: ``x -> M x`` for a Hermitian positive (semi)definite ``M``, shape-preserving.
        b: right-hand side ``(B, ...)``, real or complex.
        x0: start (default zeros).
        iterations: maximum CG iterations.
        tolerance: stop once every item's residual norm is below ``tolerance * ||b||``.
        history: if given, gets the relative residual ``max_b ||r_b|| / ||b_b||`` (the recurrence's
            residual, worst batch item) appended before the first iteration and after each one.

    Returns:
        ``x`` with the shape and dtype of ``b``.
    """
    iterations = require_int("iterations", iterations, minimum=0)
    tolerance = require_float("tolerance", tolerance, minimum=0)
    return _solve(apply_m, b, x0, iterations, tolerance, history, logger, "CG")


def cgls(operator: LinearOperator, y: torch.Tensor, x0: torch.Tensor | None = None, *, iterations: int = 20,
         damping: float = 0.0, tolerance: float = 1e-6, history: list[float] | None = None) -> torch.Tensor:
    """Least squares ``min ||A x - y||^2 + damping ||x||^2`` by CG on the normal equations.

    Args:
        operator: the forward model ``A``.
        y: measurements ``(B, *range_shape)``.
        x0: start ``(B, *domain_shape)`` (default zeros).
        iterations: CG iterations (early iterations regularise: stop early on noisy data).
        damping: Tikhonov weight (same units as ``||A x||^2 / ||x||^2``).
        tolerance: relative residual of the normal equations at which to stop.
        history: if given, gets the normal equations' relative residuals (see :func:`conjugate_gradient`).
    """
    damping = require_float("damping", damping, minimum=0)
    iterations = require_int("iterations", iterations, minimum=0)
    tolerance = require_float("tolerance", tolerance, minimum=0)
    return _solve(lambda x: operator.normal(x) + damping * x, operator.adjoint(y), x0, iterations, tolerance,
                  history, logger, "CGLS")
