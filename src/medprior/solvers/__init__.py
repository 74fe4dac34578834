"""Inverse solvers. Classical: CG, CGLS, FBP, ADMM-TV, zero-filled, CG-SENSE (on a
:class:`medprior.physics.LinearOperator` and data); NLM and BM3D dehazing baselines (on B-mode images
in dB). Diffusion (a 2D slice prior on 3D stacks): DDS, DiffusionMBIR, DPS, RED-diff, on an
:class:`InverseProblem` and a denoiser, returning the image in the problem's units. None of them knows
the modality."""

from __future__ import annotations

from medprior.solvers.cg import cgls, conjugate_gradient
from medprior.solvers.diffusion import dds, dps, mbir, reddiff
from medprior.solvers.fbp import fbp
from medprior.solvers.problem import InverseProblem
from medprior.solvers.sense import cg_sense, zero_filled
from medprior.solvers.speckle import bm3d_bmode, nlm_bmode
from medprior.solvers.tv import admm_tv, soft_threshold, tv_objective

__all__ = ["InverseProblem", "admm_tv", "bm3d_bmode", "cg_sense", "cgls", "conjugate_gradient", "dds", "dps", "fbp",
           "mbir", "nlm_bmode", "reddiff", "soft_threshold", "tv_objective", "zero_filled"]
