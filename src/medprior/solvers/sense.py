"""Classical parallel-imaging reconstructions: zero-filled (SENSE-1) and CG-SENSE.

CG-SENSE (Pruessmann et al., "Advances in sensitivity encoding with arbitrary k-space
trajectories", MRM 46:638, 2001) solves ``(A^H A + lambda I) x = A^H y`` with ``A = M F S`` by
conjugate gradients. Both work with any :class:`~medprior.physics.LinearOperator`; for
:class:`~medprior.physics.mri.CartesianMRI` the shapes are ``y`` ``(B, C, H, W)`` -> ``x``
``(B, H, W)`` complex.
"""

from __future__ import annotations

import logging

import torch

from medprior.checks import require_float, require_int
from medprior.physics.operator import LinearOperator
from medprior.solvers.cg import _solve

logger = logging.getLogger(__name__)


def zero_filled(operator: LinearOperator, y: torch.Tensor) -> torch.Tensor:
    """``x = A^H y``: zero-filled inverse FFT, coil-combined by ``sum_c conj(S_c) x_c``.

    For a fully sampled single coil this is the exact inverse; for maps with ``sum_c |S_c|^2 = 1``
    it is the SENSE-1 (optimal linear, noise-free) combination of the aliased coil images.
    """
    return operator.adjoint(y)


def cg_sense(operator: LinearOperator, y: torch.Tensor, iterations: int = 30, damping: float = 0.0,
             x0: torch.Tensor | None = None, tolerance: float = 1e-6,
             history: list[float] | None = None) -> torch.Tensor:
    """CG-SENSE: ``argmin_x ||A x - y||^2 + damping ||x||^2`` by CG on the normal equations.

    Args:
        operator: forward model ``A`` (its ``normal`` is used for ``A^H A``).
        y: measured k-space ``(B, *range_shape)``.
        iterations: maximum CG iterations (stopping early regularises noisy data).
        damping: Tikhonov weight ``lambda >= 0`` (units of ``||A x||^2 / ||x||^2``; 1 for normalised maps).
        x0: start ``(B, *domain_shape)`` (default zeros).
        tolerance: stop at relative normal-equation residual ``tolerance``.
        history: if given, gets the relative normal-equation residual before the first iteration
            and after each (see :func:`medprior.solvers.conjugate_gradient`); also logged at DEBUG.

    Returns:
        ``x`` ``(B, *domain_shape)``, dtype of ``A^H y``.
    """
    damping = require_float("damping", damping, minimum=0)
    iterations = require_int("iterations", iterations, minimum=0)
    tolerance = require_float("tolerance", tolerance, minimum=0)
    rhs = operator.adjoint(y)
    if damping == 0:
        apply = operator.normal
    else:
        def apply(x: torch.Tensor) -> torch.Tensor:
            return operator.normal(x) + damping * x
    return _solve(apply, rhs, x0, iterations, tolerance, history, logger, "CG-SENSE")
