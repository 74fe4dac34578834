"""Operators built from other operators: a real image with a known phase.

The diffusion solvers work on real images in a prior's normalised space with ``||A^T A|| = 1``, so
that one set of weights serves CT and MRI: scale an operator by ``A * (1 / A.norm())``
(:class:`~medprior.physics.operator.ScaledOperator`, re-exported here), and make a complex MRI
operator act on real images with :class:`KnownPhase`.

MRI images are complex and the demo priors are trained on magnitudes. Following the phase-constrained
reconstructions of partial Fourier MRI (homodyne, POCS), the image is written ``x = m exp(i phi)``
with ``phi`` a smooth phase estimated from the fully sampled k-space centre
(:func:`calibration_phase`) and ``m`` real; :class:`KnownPhase` is ``m -> A (m exp(i phi))``, whose
adjoint for the real inner product ``Re <., .>`` is ``y -> Re(exp(-i phi) A^H y)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from medprior.physics.operator import LinearOperator, ScaledOperator

__all__ = ["KnownPhase", "ScaledOperator", "calibration_phase"]


class KnownPhase(LinearOperator):
    """``m -> A (m exp(i phi))``: real images ``m`` (B, *domain) with phase ``phi`` (B, *domain), radians.

    The domain is real (``domain_complex`` False, ``m`` float) and the range complex (that of
    ``A``, which must take complex images): the operator is real-linear, its adjoint
    ``y -> Re(exp(-i phi) A^H y)`` (float) is exact for ``<A' m, y> = Re sum conj(A' m) y``, and
    ``normal`` is ``Re(exp(-i phi) A^H A (m exp(i phi)))``.
    """

    def __init__(self, operator: LinearOperator, phase: Tensor) -> None:
        if tuple(phase.shape[1:]) != tuple(operator.domain_shape):
            raise ValueError(f"phase of shape {tuple(phase.shape)} does not fit images {operator.domain_shape}")
        if not operator.domain_complex:
            raise ValueError("a known phase needs an operator on complex images")
        self.operator = operator
        self.domain_shape, self.range_shape = operator.domain_shape, operator.range_shape
        self.domain_complex, self.range_complex = False, operator.range_complex
        self.rotation = torch.polar(torch.ones_like(phase), phase)

    def unseen(self) -> Tensor | None:
        return self.operator.unseen()

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
