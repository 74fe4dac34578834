"""Linear forward models with exact adjoints: CT (parallel and fan beam) and MRI (Cartesian, SENSE)."""

from __future__ import annotations

from medprior.physics.operator import LinearOperator, adjoint_mismatch, inner

__all__ = ["LinearOperator", "adjoint_mismatch", "inner"]
