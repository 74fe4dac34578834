"""Coil maps and noise: birdcage normalisation, ESPIRiT against the truth, CG-SENSE with estimated maps, SNR."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.data import shepp_logan_phantom
from skimage.transform import resize

from medprior.errors import InputError
from medprior.phantoms import brain_mri
from medprior.physics.coils import birdcage_sensitivities, complex_gaussian_noise, estimate_sensitivities
from medprior.physics.masks import poisson_disc_mask
from medprior.physics.mri import CartesianMRI
from medprior.solvers.sense import cg_sense

N = 96


@pytest.fixture(scope="module")
def phantom() -> torch.Tensor:
    """Shepp-Logan magnitude with a smooth phase, ``(1, N, N)`` complex128."""
    image = resize(shepp_logan_phantom(), (N, N), anti_aliasing=True)
    rows, cols = np.mgrid[:N, :N] / N
    return torch.from_numpy(image * np.exp(2j * (cols - 0.5) * (rows - 0.3)))[None]


def test_birdcage_normalised_and_varying() -> None:
    for shape in [(32, 40), (6, 16, 16)]:
        maps = birdcage_sensitivities(shape, 12, dtype=torch.complex128)
        assert maps.shape == (12, *shape)
        torch.testing.assert_close((maps.abs() ** 2).sum(0), torch.ones(shape, dtype=torch.float64))
        assert float(maps.abs().std()) > 0.05 and float(maps.angle().std()) > 0.2
    raw = birdcage_sensitivities((32, 32), 4, normalize=False)
    # coil 0 sits at +x (right): it is strongest on the right edge
    assert float(raw[0, 16, -1].abs()) > 3 * float(raw[0, 16, 0].abs())


def relative_phase(maps: np.ndarray) -> np.ndarray:
    return maps * np.exp(-1j * np.angle(maps[:1]))


def test_espirit_matches_birdcage_and_cg_sense(phantom: torch.Tensor) -> None:
    truth = birdcage_sensitivities((N, N), 8, dtype=torch.complex128)
    mask = poisson_disc_mask((N, N), 4, seed=0, calibration=(24, 24))
    op = CartesianMRI(mask, truth, dtype=torch.complex128)
    y = op.forward(phantom)
    estimate = estimate_sensitivities(y[0], calibration_size=24).to(torch.complex128)
    assert estimate.shape == (8, N, N)
    inside = np.abs(phantom[0].numpy()) > 0
    a, b = relative_phase(truth.numpy())[:, inside], relative_phase(estimate.numpy())[:, inside]
    assert abs(np.vdot(a, b)) / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.95
    # and it is not just any smooth map: another coil ordering does not correlate
    shuffled = relative_phase(truth.numpy()[::-1].copy())[:, inside]
    assert abs(np.vdot(shuffled, b)) / (np.linalg.norm(shuffled) * np.linalg.norm(b)) < 0.9

    def psnr(x: torch.Tensor) -> float:  # on magnitudes: the maps fix the image only up to a phase
        err = (x.abs() - phantom.abs()).square().mean()
        return float(10 * torch.log10(phantom.abs().max() ** 2 / err))

    with_truth = psnr(cg_sense(op, y, iterations=25))
    with_estimate = psnr(cg_sense(CartesianMRI(mask, estimate, dtype=torch.complex128), y, iterations=25))
    assert with_truth > 30
    assert with_estimate > with_truth - 1.0


def test_complex_gaussian_noise_snr_and_support() -> None:
    generator = torch.Generator().manual_seed(0)
    kspace = torch.zeros(4, 64, 64, dtype=torch.complex128)
    mask = torch.rand(64, 64, generator=generator) < 0.3
    kspace[:, mask] = torch.randn(4, int(mask.sum()), dtype=torch.complex128, generator=generator) * 3
    for snr_db in (0.0, 20.0):
        noisy = complex_gaussian_noise(kspace, snr_db, torch.Generator().manual_seed(1))
        noise = (noisy - kspace)[:, mask]
        assert bool((noisy[:, ~mask] == 0).all())
        signal = kspace[:, mask].abs().square().mean()
        measured = float(10 * torch.log10(signal / noise.abs().square().mean()))
        assert abs(measured - snr_db) < 0.15
        assert abs(float(noise.real.var() / noise.imag.var()) - 1) < 0.1  # circular
    explicit = complex_gaussian_noise(kspace, 10.0, torch.Generator().manual_seed(1), mask=mask.numpy())
    torch.testing.assert_close(explicit, complex_gaussian_noise(kspace, 10.0, torch.Generator().manual_seed(1)))
    with pytest.raises(InputError, match="complex"):
        complex_gaussian_noise(kspace.real, 10.0)


def test_a_calibration_region_too_small_for_the_kernel_is_refused_not_mapped_to_zero():
    """A uniform block seen through 5 central lines and a 5 x 5 kernel: one kernel position across,
    every eigenvalue below the crop. ESPIRiT used to return all-zero maps (what `simulate mri` of a
    60-line block at the default centre fraction stored), and every reconstruction from them was
    the zero image; with 12 lines the same coils give maps."""
    image = torch.zeros((60, 60), dtype=torch.complex64)
    image[15:45, 12:48] = 100.0
    maps = birdcage_sensitivities((60, 60), 2)
    kspace = CartesianMRI(np.ones(60, bool), maps[None]).forward(image[None])[0]
    with pytest.raises(InputError, match="5 lines is too small for its 5 x 5 kernel"):
        estimate_sensitivities(kspace, calibration_size=(32, 5), kernel_size=5)
    assert estimate_sensitivities(kspace, calibration_size=(32, 12), kernel_size=6).abs().amax() > 0.5


def test_espirit_support_keeps_the_whole_object_at_the_x8_calibration():
    """A brain phantom at 128 x 128 through the 10 central lines of x8 sampling: the default crop
    keeps every pixel with signal, so the maps lose none of the object; the crop of 0.95 used
    before put 0.3 % of its energy where the maps are zero (TV at x8 lost 2.8 dB by it on the quality
    benchmark's 8 volumes)."""
    image = brain_mri(3, shape=(128, 128, 30)).contrasts["t2w"].data[:, :, 15]
    kspace = CartesianMRI(np.ones(128, bool), birdcage_sensitivities((128, 128), 8)[None].to(torch.complex128),
                          dtype=torch.complex128).forward(torch.from_numpy(image)[None].to(torch.complex128))[0]

    def energy_outside(**crop: float) -> float:
        seen = estimate_sensitivities(kspace, calibration_size=(128, 10), **crop).abs().square().sum(0) > 0
        return float((image[~seen.numpy()] ** 2).sum() / (image ** 2).sum())

    assert energy_outside() < 1e-5
    assert energy_outside(crop=0.95) > 1e-3
