"""Anisotropic total-variation reconstruction by ADMM, with CG for the quadratic step.

Solves ``min_x 0.5 ||A x - y||^2 + lam ||D x||_1`` (optionally with ``x >= 0``), where ``D`` is
:class:`medprior.physics.finite_difference.FiniteDifference` along the chosen axes: 3D anisotropic
TV with ``axes=("z", "y", "x")``, or the z-only TV DiffusionMBIR adds to a 2D slice prior
("Solving 3D Inverse Problems using Pre-trained 2D Diffusion Models", Chung et al. 2023) with
``axes=("z",)``. ADMM (Boyd et al. 2011, scaled form) splits ``z = D x``:

    x <- argmin 0.5 ||A x - y||^2 + rho/2 ||D x - z + u||^2      (CG on A^H A + rho D^T D)
    z <- soft(D x + u, lam / rho)                                 (by magnitude for complex x)
    u <- u + D x - z

and, with ``nonnegative``, a second split ``v = x``, ``v >= 0`` (``rho/2 ||x - v + w||^2`` joins
the x-step, ``v <- max(x + w, 0)``, ``w <- w + x - v``), which keeps the iteration a true ADMM.

Tensors are ``(B, *domain_shape)`` with ``B`` the slice axis ``z``; the x-step is one CG over the
whole volume, since ``D`` couples slices along ``z``.

Residuals (Boyd et al. 2011, sec. 3.3): the relative primal residual ``||D x - z|| / max(||D x||, ||z||)``
and dual residual ``rho ||D^T (z - z_prev)|| / ||A^H y||`` (with the ``x - v`` split's terms when
``nonnegative``) are logged per iteration at DEBUG on this module's logger, summarised at INFO, and
appended to an optional ``history`` list; measuring them does not change the iterates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch

from medprior.checks import require_float, require_int
from medprior.physics.finite_difference import FiniteDifference
from medprior.physics.operator import LinearOperator
from medprior.progress import progress_bar
from medprior.solvers.cg import _solve

logger = logging.getLogger(__name__)


def soft_threshold(v: torch.Tensor, threshold: float) -> torch.Tensor:
    """``prox`` of ``threshold * ||.||_1``: ``v * max(1 - threshold / |v|, 0)`` (complex: shrinks the magnitude)."""
    magnitude = v.abs()
    return v * (1 - threshold / magnitude.clamp_min(torch.finfo(magnitude.dtype).tiny)).clamp_min(0)


def tv_objective(operator: LinearOperator, y: torch.Tensor, x: torch.Tensor, *, lam: float,
                 axes: Sequence[str] = ("z", "y", "x"), weights: Sequence[float] | None = None) -> float:
    """``0.5 ||A x - y||^2 + lam sum_a w_a ||D_a x||_1`` (the objective :func:`admm_tv` minimises)."""
    difference = FiniteDifference(operator.domain_shape, axes, weights)
    residual = operator.forward(x) - y
    return float(0.5 * residual.abs().square().sum() + lam * difference.forward(x).abs().sum())


def admm_tv(operator: LinearOperator, y: torch.Tensor, *, lam: float, rho: float, iterations: int = 40,
            cg_iterations: int = 5, axes: Sequence[str] = ("z", "y", "x"), weights: Sequence[float] | None = None,
            x0: torch.Tensor | None = None, nonnegative: bool = False, cg_tolerance: float = 1e-6,
            callback: Callable[[int, torch.Tensor], None] | None = None, progress: bool = False,
            history: list[tuple[float, float]] | None = None) -> torch.Tensor:
    """Anisotropic TV-regularised least squares ``min 0.5 ||A x - y||^2 + lam ||D x||_1`` by ADMM.

    Args:
        operator: forward model ``A``; ``x`` is ``(B, *operator.domain_shape)`` with ``B`` = z.
        y: measurements ``(B, *operator.range_shape)``, real or complex, CPU or CUDA.
        lam: TV weight, in units of the data term ``0.5 ||A x - y||^2`` per unit of (weighted)
            gradient magnitude summed over voxels: if ``y`` is in units ``[y]`` and ``x`` in
            ``[x]``, ``lam`` is in ``[y]^2 / [x]``. ``lam = 0`` gives least squares.
        rho: ADMM penalty, in ``[y]^2 / [x]^2``; ``lam / rho`` is the soft threshold applied to
            gradients (units ``[x]``). Any ``rho > 0`` converges; with the image scaled to about
            1, ``rho`` of 10-30 times ``lam`` works well for a few tens of iterations.
        iterations: ADMM iterations.
        cg_iterations: CG iterations per x-step (warm-started from the previous x).
        axes: TV axes among ``"z"`` (the batch / slice axis), ``"y"``, ``"x"``: ``("z", "y", "x")``
            is 3D anisotropic TV, ``("z",)`` the z-only TV of DiffusionMBIR.
        weights: per-axis weights (e.g. ``1 / spacing_mm`` for gradients per mm), default 1.
        x0: start ``(B, *domain_shape)`` (default zeros).
        nonnegative: constrain ``x >= 0`` (real ``x`` only; the returned ``x`` is feasible).
        cg_tolerance: relative residual at which an inner CG stops early.
        callback: called as ``callback(iteration, x)`` after every iteration (e.g. to record
            :func:`tv_objective`).
        progress: show a tqdm progress bar.
        history: if given, gets ``(primal, dual)`` relative residuals after every iteration (see the
            module docstring); they are also logged at DEBUG.

    Returns:
        ``x``, shape ``(B, *domain_shape)``, the dtype of ``A^H y`` (complex for complex physics).
    """
    lam = require_float("lam", lam, minimum=0)
    rho = require_float("rho", rho, minimum=0, exclusive_minimum=True)
    iterations = require_int("iterations", iterations, minimum=0)
    cg_iterations = require_int("cg_iterations", cg_iterations, minimum=1)
    cg_tolerance = require_float("cg_tolerance", cg_tolerance, minimum=0)
    difference = FiniteDifference(operator.domain_shape, axes, weights)
    aty = operator.adjoint(y)
    if nonnegative and aty.is_complex():
        raise ValueError("nonnegative applies to real images only")
    x = torch.zeros_like(aty) if x0 is None else x0.to(device=aty.device, dtype=aty.dtype).clone()
    z = difference.forward(x)
    u = torch.zeros_like(z)
    if nonnegative:
        v = x.clamp_min(0)
        w = torch.zeros_like(x)

    def apply_m(flat: torch.Tensor) -> torch.Tensor:  # flat: (1, B, *domain), one system for the volume
        image = flat[0]
        out = operator.normal(image) + rho * difference.adjoint(difference.forward(image))
        if nonnegative:
            out = out + rho * image
        return out[None]

    debug = logger.isEnabledFor(logging.DEBUG)
    summary = logger.isEnabledFor(logging.INFO)
    scale = float(torch.linalg.vector_norm(aty)) if debug or summary or history is not None else 0.0
    residuals = (float("nan"), float("nan"))
    for iteration in progress_bar(range(iterations), desc="ADMM-TV", show=progress):
        rhs = aty + rho * difference.adjoint(z - u)
        if nonnegative:
            rhs = rhs + rho * (v - w)
        x = _solve(apply_m, rhs[None], x[None], cg_iterations, cg_tolerance)[0]
        dx = difference.forward(x)
        z_prev, v_prev = z, (v if nonnegative else None)
        z = soft_threshold(dx + u, lam / rho)
        u = u + dx - z
        if nonnegative:
            v = (x + w).clamp_min(0)
            w = w + x - v
        if debug or history is not None or (summary and iteration == iterations - 1):
            residuals = _residuals(difference, rho, scale, x, dx, z, z_prev, v if nonnegative else None, v_prev)
            if history is not None:
                history.append(residuals)
            if debug:
                logger.debug("ADMM-TV iteration %d: primal residual %.3e, dual residual %.3e",
                             iteration + 1, *residuals)
        if callback is not None:
            callback(iteration, v if nonnegative else x)
    if summary:
        logger.info("ADMM-TV: %d iterations, primal residual %.3e, dual residual %.3e", iterations, *residuals)
    return v if nonnegative else x


def _residuals(difference: FiniteDifference, rho: float, scale: float, x: torch.Tensor, dx: torch.Tensor,
               z: torch.Tensor, z_prev: torch.Tensor, v: torch.Tensor | None,
               v_prev: torch.Tensor | None) -> tuple[float, float]:
    """ADMM's relative (primal, dual) residuals; ``v`` is None without the nonnegativity split."""
    norm = torch.linalg.vector_norm
    tiny = torch.finfo(torch.float64).tiny
    primal_sq = norm(dx - z) ** 2
    constrained_sq, split_sq = norm(dx) ** 2, norm(z) ** 2
    dual = difference.adjoint(z - z_prev)
    if v is not None:
        primal_sq = primal_sq + norm(x - v) ** 2
        constrained_sq, split_sq = constrained_sq + norm(x) ** 2, split_sq + norm(v) ** 2
        dual = dual + (v - v_prev)
    primal = float(torch.sqrt(primal_sq)) / max(float(torch.sqrt(torch.maximum(constrained_sq, split_sq))), tiny)
    return primal, rho * float(norm(dual)) / max(scale, tiny)
