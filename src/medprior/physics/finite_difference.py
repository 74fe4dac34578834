"""Forward finite differences of a whole volume, the gradient operator of total variation.

``D x`` stacks, for each chosen axis ``a`` with weight ``w_a``, the forward difference
``(D_a x)[i] = w_a (x[i + 1] - x[i])`` for ``i < n_a - 1`` and ``0`` at ``i = n_a - 1``
(non-periodic, Neumann boundary: the output keeps the input's shape and its last difference along
``a`` is zero). The exact adjoint is ``(D_a^T g)[i] = w_a (g[i - 1] [i >= 1] - g[i] [i <= n_a - 2])``.

Axes are named for the solvers' slice layout ``(B, H, W)``: ``"x"`` is the last axis, ``"y"`` the
second last, and ``"z"`` **is the batch axis** ``B`` (for 1D and 2D domains; for a 3D domain
``(D, H, W)`` it is ``D``). Unlike the imaging operators, this operator then couples the items
of the batch (it acts on the whole volume), so a solver using it must treat the batch as one
system (e.g. one CG over the whole volume, not one per slice).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from medprior.physics.operator import LinearOperator

AXIS_NAMES = ("z", "y", "x")


def _forward_difference(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``x[i + 1] - x[i]`` along ``dim`` with a zero last entry (same shape as ``x``)."""
    n = x.shape[dim]
    if n == 1:
        return torch.zeros_like(x)
    step = x.narrow(dim, 1, n - 1) - x.narrow(dim, 0, n - 1)
    return torch.cat([step, torch.zeros_like(x.narrow(dim, 0, 1))], dim=dim)


def _forward_difference_adjoint(g: torch.Tensor, dim: int) -> torch.Tensor:
    """Adjoint of :func:`_forward_difference`: ``g[i - 1] - g[i]`` with ``g[-1] = g[n - 1] = 0``."""
    n = g.shape[dim]
    if n == 1:
        return torch.zeros_like(g)
    head = g.narrow(dim, 0, n - 1)
    zero = torch.zeros_like(g.narrow(dim, 0, 1))
    return torch.cat([zero, head], dim=dim) - torch.cat([head, zero], dim=dim)


class FiniteDifference(LinearOperator):
    """Weighted forward differences ``D`` along named axes of a batched volume, ``(B, *domain) -> (B, n_axes, *domain)``.

    Args:
        domain_shape: per-item shape, e.g. ``(H, W)`` for slice batches ``(B, H, W)`` (then ``z`` is ``B``).
        axes: which of ``"z"``, ``"y"``, ``"x"`` to differentiate along, in output order;
            ``("z", "y", "x")`` for 3D TV, ``("z",)`` for DiffusionMBIR's z-only TV.
        weights: one positive factor per axis (default 1). ``1 / spacing_mm`` turns voxel
            differences into gradients per mm, for anisotropic voxels.

    Works on real and complex tensors of any float precision, on CPU or CUDA (weights are plain
    Python floats). ``||D||^2 <= 4 sum(w_a^2)`` (:attr:`squared_norm_bound`).

    Example:
        >>> d = FiniteDifference((3, 4), axes=("z", "x"))
        >>> d(torch.ones(2, 3, 4)).shape
        torch.Size([2, 2, 3, 4])
    """

    def __init__(self, domain_shape: Sequence[int], axes: Sequence[str] = AXIS_NAMES,
                 weights: Sequence[float] | None = None) -> None:
        self.domain_shape = tuple(int(n) for n in domain_shape)
        axes = tuple(axes)
        if not axes or any(axis not in AXIS_NAMES for axis in axes) or len(set(axes)) != len(axes):
            raise ValueError(f"axes must be distinct names from {AXIS_NAMES}, got {axes}")
        available = {"x": -1, "y": -2, "z": 0 if len(self.domain_shape) < 3 else -3}
        for axis in axes:
            if len(self.domain_shape) < {"x": 1, "y": 2, "z": 0}[axis]:
                raise ValueError(f"axis {axis!r} does not exist for items of shape {self.domain_shape}")
        weights = (1.0,) * len(axes) if weights is None else tuple(float(w) for w in weights)
        if len(weights) != len(axes) or any(not w > 0 for w in weights):
            raise ValueError(f"weights must be {len(axes)} positive numbers, got {weights}")
        self.axes, self.weights = axes, weights
        self.range_shape = (len(axes), *self.domain_shape)
        self._dims = tuple(available[axis] for axis in axes)  # dims of x, and of each output component

    @property
    def squared_norm_bound(self) -> float:
        """Upper bound ``4 sum(w_a^2)`` on ``||D^T D||`` (for step sizes)."""
        return 4.0 * sum(w * w for w in self.weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``D x``: ``(B, *domain_shape)`` -> ``(B, n_axes, *domain_shape)``."""
        return torch.stack([w * _forward_difference(x, dim) for dim, w in zip(self._dims, self.weights)], dim=1)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``D^T g``: ``(B, n_axes, *domain_shape)`` -> ``(B, *domain_shape)``, the exact adjoint."""
        total = None
        for k, (dim, w) in enumerate(zip(self._dims, self.weights)):
            term = w * _forward_difference_adjoint(y[:, k], dim)
            total = term if total is None else total + term
        return total
