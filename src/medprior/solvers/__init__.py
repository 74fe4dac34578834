"""Inverse solvers. Classical: CG, CGLS, FBP, ADMM-TV, zero-filled, CG-SENSE (on a
:class:`medprior.physics.LinearOperator` and data). Diffusion (a 2D slice prior on 3D stacks): DDS,
DiffusionMBIR, DPS, RED-diff, on an :class:`InverseProblem` and a denoiser, returning the image in the
problem's units. None of them knows the modality."""

from __future__ import annotations

from medprior.solvers.cg import cgls, conjugate_gradient
from medprior.solvers.diffusion import dds, dps, mbir, reddiff
from medprior.solvers.fbp import fbp
from medprior.solvers.problem import InverseProblem
from medprior.solvers.sense import cg_sense, zero_filled
from medprior.solvers.tv import admm_tv, soft_threshold, tv_objective

__all__ = ["InverseProblem", "admm_tv", "cg_sense", "cgls", "conjugate_gradient", "dds", "dps", "fbp", "mbir",
           "reddiff", "soft_threshold", "tv_objective", "zero_filled"]
