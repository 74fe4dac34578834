"""Inverse solvers. Classical: CG, CGLS, FBP, ADMM-TV, zero-filled, CG-SENSE. They see only a
:class:`medprior.physics.LinearOperator`, never the modality."""

from __future__ import annotations

from medprior.solvers.cg import cgls, conjugate_gradient

__all__ = ["cgls", "conjugate_gradient"]
