"""Operators built from other operators: a scaled one, and a real image with a known phase.

The diffusion solvers work on real images in a prior's normalised space with ``||A^T A|| = 1``, so
that one set of weights serves CT and MRI; these wrappers take an imaging operator there.

MRI images are complex and the demo priors are trained on magnitudes. Following the phase-constrained
reconstructions of partial Fourier MRI (homodyne, POCS), the image is written ``x = m exp(i phi)``
with ``phi`` a smooth phase estimated from the fully sampled k-space centre
(:func:`calibration_phase`) and ``m`` real; :class:`KnownPhase` is ``m -> A (m exp(i phi))``, whose
adjoint for the real inner product ``Re <., .>`` is ``y -> Re(exp(-i phi) A^H y)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from medprior.physics.operator import LinearOperator


class ScaledOperator(LinearOperator):
    """``c A`` for a positive scalar ``c``: forward ``c A x``, adjoint ``c A^H y``, normal ``c^2 A^H A x``."""

    def __init__(self, operator: LinearOperator, factor: float) -> None:
        if not factor > 0:
            raise ValueError(f"scale factor must be > 0, got {factor}")
        self.operator, self.factor = operator, float(factor)
        self.domain_shape, self.range_shape = operator.domain_shape, operator.range_shape
        self.complex = operator.complex

    def forward(self, x: Tensor) -> Tensor:
        return self.factor * self.operator.forward(x)

    def adjoint(self, y: Tensor) -> Tensor:
        return self.factor * self.operator.adjoint(y)

    def normal(self, x: Tensor) -> Tensor:
        return self.factor ** 2 * self.operator.normal(x)


class KnownPhase(LinearOperator):
    """``m -> A (m exp(i phi))``: real images ``m`` (B, *domain) with phase ``phi`` (B, *domain), radians.

    ``complex`` is False (the domain is real; the range stays complex): the adjoint is exact for
    ``<A' m, y> = Re sum conj(A' m) y`` and ``normal`` is ``Re(exp(-i phi) A^H A (m exp(i phi)))``.
    """

    complex = False

    def __init__(self, operator: LinearOperator, phase: Tensor) -> None:
        if tuple(phase.shape[1:]) != tuple(operator.domain_shape):
            raise ValueError(f"phase of shape {tuple(phase.shape)} does not fit images {operator.domain_shape}")
        self.operator = operator
        self.domain_shape, self.range_shape = operator.domain_shape, operator.range_shape
        self.rotation = torch.polar(torch.ones_like(phase), phase)

    def forward(self, m: Tensor) -> Tensor:
        return self.operator.forward(m * self.rotation.to(m.device))

    def adjoint(self, y: Tensor) -> Tensor:
        return (self.rotation.to(y.device).conj() * self.operator.adjoint(y)).real

    def normal(self, m: Tensor) -> Tensor:
        rotation = self.rotation.to(m.device)
        return (rotation.conj() * self.operator.normal(m * rotation)).real


def calibration_phase(operator: LinearOperator, kspace: Tensor, lines: int) -> Tensor:
    """Smooth image phase (B, H, W) in radians from the central ``lines`` phase-encode lines.

    ``kspace`` (B, C, H, W) with DC at ``W // 2`` along the last (phase-encode) axis; the central
    lines are Hann-windowed (no ringing) and taken back to the image by ``A^H`` (coil-combined).
    """
    width = kspace.shape[-1]
    window = torch.zeros(width, dtype=torch.float64)
    start = width // 2 - lines // 2
    window[start:start + lines] = torch.hann_window(lines + 2, periodic=False, dtype=torch.float64)[1:-1]
    low = operator.adjoint(kspace * window.to(device=kspace.device, dtype=kspace.real.dtype))
    return torch.angle(low)
