"""Inverse solvers. Classical: CG, CGLS, FBP, ADMM-TV, zero-filled, CG-SENSE. They see only a
:class:`medprior.physics.LinearOperator`, never the modality."""

from __future__ import annotations

from medprior.solvers.cg import cgls, conjugate_gradient
from medprior.solvers.fbp import fbp
from medprior.solvers.sense import cg_sense, zero_filled
from medprior.solvers.tv import admm_tv, soft_threshold, tv_objective

__all__ = ["admm_tv", "cg_sense", "cgls", "conjugate_gradient", "fbp", "soft_threshold", "tv_objective",
           "zero_filled"]
