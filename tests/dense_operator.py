"""A dense-matrix LinearOperator: the independent reference for solver tests."""

from __future__ import annotations

import torch

from medprior.physics.operator import LinearOperator


class Dense(LinearOperator):
    """``A x = M x`` for every item ``x`` of shape ``(n,)``, ``M`` of shape ``(m, n)``."""

    def __init__(self, matrix: torch.Tensor) -> None:
        self.matrix = matrix
        self.domain_shape, self.range_shape = (matrix.shape[1],), (matrix.shape[0],)
        self.complex = matrix.is_complex()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.matrix.T

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y @ self.matrix.conj()
