"""Operator wrappers: the known-phase operator's adjoint, scaling by ``operator * c``; the calibration phase.

The generic adjoint test of every operator, these included, is in test_operator.py."""

from __future__ import annotations

import math

import numpy as np
import torch

from medprior.physics import CartesianMRI, birdcage_sensitivities, uniform_mask_1d
from medprior.physics.wrappers import KnownPhase, calibration_phase


def mri_operator(dtype: torch.dtype = torch.complex128) -> CartesianMRI:
    lines = uniform_mask_1d(16, 4, 0.25)
    return CartesianMRI(lines, birdcage_sensitivities((16, 16), 4), image_shape=(16, 16), dtype=dtype)


def smooth_phase(batch: int = 2) -> torch.Tensor:
    i, j = torch.meshgrid(torch.linspace(-1, 1, 16, dtype=torch.float64),
                          torch.linspace(-1, 1, 16, dtype=torch.float64), indexing="ij")
    return torch.stack([0.8 * i - 0.5 * j ** 2 + k for k in range(batch)])


def test_known_phase_adjoint_is_exact_for_the_real_inner_product() -> None:
    operator = KnownPhase(mri_operator(), smooth_phase())
    generator = torch.Generator().manual_seed(0)
    m = torch.randn(2, 16, 16, generator=generator, dtype=torch.float64)
    y = torch.randn(2, 4, 16, 16, generator=generator, dtype=torch.complex128)
    lhs = (operator.forward(m).conj() * y).real.sum()
    rhs = (m * operator.adjoint(y)).sum()
    assert operator.adjoint(y).dtype == torch.float64
    assert abs(float(lhs - rhs)) < 1e-10 * float(operator.forward(m).abs().norm() * y.abs().norm())
    torch.testing.assert_close(operator.normal(m), operator.adjoint(operator.forward(m)))


def test_scaled_operator_scales_forward_adjoint_and_normal() -> None:
    base = mri_operator()
    scaled = base * 0.5
    x = torch.randn(2, 16, 16, dtype=torch.complex128, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(scaled.forward(x), 0.5 * base.forward(x))
    torch.testing.assert_close(scaled.normal(x), 0.25 * base.normal(x))
    torch.testing.assert_close(scaled.adjoint(base.forward(x)), 0.5 * base.normal(x))


def test_calibration_phase_recovers_a_smooth_phase() -> None:
    operator = mri_operator()
    phase = smooth_phase()
    radius = torch.linspace(-1, 1, 16, dtype=torch.float64)
    magnitude = (1 - radius[:, None] ** 2 - radius[None, :] ** 2).clamp_min(0) + 0.2
    kspace = operator.forward(magnitude * torch.polar(torch.ones_like(phase), phase))
    estimate = calibration_phase(operator, kspace, lines=8)
    error = torch.angle(torch.polar(torch.ones_like(phase), estimate - phase))  # wrapped difference
    inside = magnitude.expand_as(phase) > 0.5
    assert float(error[inside].abs().max()) < 0.25  # radians (max 0.19 measured): 8 of 16 lines, Hann-windowed
    assert math.isclose(float(np.median(error[inside].abs())), 0.0, abs_tol=0.05)


def test_unseen_pixels_are_where_every_coil_map_is_zero_and_wrappers_pass_them_on() -> None:
    maps = birdcage_sensitivities((16, 16), 4).to(torch.complex128)
    maps[:, :5, :] = 0  # ESPIRiT crops its maps to zero where the calibration holds no signal
    operator = CartesianMRI(uniform_mask_1d(16, 4, 0.25), maps, image_shape=(16, 16), dtype=torch.complex128)
    expected = torch.zeros(16, 16, dtype=torch.bool)
    expected[:5, :] = True
    torch.testing.assert_close(operator.unseen(), expected)
    generator = torch.Generator().manual_seed(2)
    inside = torch.randn(1, 16, 16, dtype=torch.complex128, generator=generator) * expected
    assert float(operator.forward(inside).abs().max()) == 0.0  # the data see nothing there
    assert float(operator.forward(torch.randn(1, 16, 16, dtype=torch.complex128, generator=generator) * ~expected)
                 .abs().max()) > 0
    for wrapped in (operator * 0.5, KnownPhase(operator, smooth_phase(1))):
        torch.testing.assert_close(wrapped.unseen(), expected)
    assert mri_operator().unseen() is None  # birdcage maps see every pixel
