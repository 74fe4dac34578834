"""Image metrics against hand-computed values, skimage, and the SSIM formula written out here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_cdt, gaussian_filter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from medprior.errors import InputError
from medprior.metrics import (HU_WINDOWS, hu_window, image_metrics, mae, nmse, psnr, ssim3d, ssim_per_axis,
                              window)

WANG = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}


def skimage_ssim(a: np.ndarray, b: np.ndarray, data_range: float, full: bool = False):
    return structural_similarity(a, b, data_range=data_range, channel_axis=None, full=full, **WANG)


def ssim_formula_map(a: np.ndarray, b: np.ndarray, data_range: float) -> np.ndarray:
    """Wang et al.'s SSIM map with a Gaussian window (sigma 1.5, 11 taps, reflective boundary)."""
    blur = lambda v: gaussian_filter(v, 1.5, truncate=3.5, mode="reflect")  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2, blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


@pytest.fixture
def pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A smooth-ish volume (24, 20, 16) and a noisy copy, values in about [0, 1]."""
    reference = gaussian_filter(rng.uniform(0, 1, (24, 20, 16)), 2.0)
    reference = (reference - reference.min()) / np.ptp(reference)
    return reference, reference + 0.05 * rng.standard_normal(reference.shape)


# ------------------------------------------------------------------ PSNR, NMSE, MAE


@pytest.mark.parametrize("error", [0.01, 0.5, 3.0])
def test_psnr_constant_error(rng: np.random.Generator, error: float) -> None:
    reference = rng.uniform(-100, 100, (5, 6, 7))
    signs = rng.choice([-1.0, 1.0], reference.shape)
    assert psnr(reference, reference + error * signs, data_range=200.0) == pytest.approx(
        10 * np.log10(200.0 ** 2 / error ** 2), rel=1e-12)


def test_psnr_matches_skimage(pair) -> None:
    reference, estimate = pair
    assert psnr(reference, estimate, 1.0) == pytest.approx(
        peak_signal_noise_ratio(reference, estimate, data_range=1.0), rel=1e-12)


def test_psnr_identical_is_infinite(pair) -> None:
    assert psnr(pair[0], pair[0], 1.0) == float("inf")


def test_nmse_and_mae_by_hand() -> None:
    reference = np.full((3, 4, 5), 2.0)
    estimate = reference + np.where(np.arange(60).reshape(3, 4, 5) % 2 == 0, 0.2, -0.2)
    assert nmse(reference, estimate) == pytest.approx(0.01, rel=1e-12)
    assert mae(reference, estimate) == pytest.approx(0.2, rel=1e-12)
    complex_reference = reference * np.exp(0.3j)
    assert nmse(complex_reference, complex_reference * (1 + 0.1j)) == pytest.approx(0.01, rel=1e-12)
    assert nmse(np.zeros(4), np.zeros(4)) == 0.0 and nmse(np.zeros(4), np.ones(4)) == float("inf")


def test_torch_inputs(pair) -> None:
    reference, estimate = pair
    as_tensor = torch.from_numpy(estimate).float()
    assert psnr(reference, as_tensor, 1.0) == pytest.approx(psnr(reference, estimate.astype(np.float32), 1.0))
    assert isinstance(ssim3d(torch.from_numpy(reference), as_tensor, 1.0), float)


# ------------------------------------------------------------------ SSIM


def test_ssim_identical_is_one(pair) -> None:
    reference = pair[0]
    assert ssim3d(reference, reference, 1.0) == pytest.approx(1.0, abs=1e-12)
    assert all(v == pytest.approx(1.0, abs=1e-12) for v in ssim_per_axis(reference, reference, 1.0).values())


def test_ssim3d_matches_skimage(pair) -> None:
    reference, estimate = pair
    expected = skimage_ssim(reference, estimate, 1.0)
    assert ssim3d(reference, estimate, 1.0) == pytest.approx(expected, rel=1e-12)
    assert 0.2 < expected < 0.99  # a test case that discriminates


def test_ssim_formula_truth_matches_skimage(pair) -> None:
    """The written-out formula used for thin volumes below agrees with skimage where skimage applies."""
    reference, estimate = pair
    np.testing.assert_allclose(ssim_formula_map(reference, estimate, 1.0), skimage_ssim(reference, estimate, 1.0, True)[1],
                               rtol=1e-10, atol=1e-12)


def test_ssim_per_axis_is_mean_of_2d_skimage(pair) -> None:
    reference, estimate = pair
    scores = ssim_per_axis(reference, estimate, 1.0)
    expected = {
        "axial": np.mean([skimage_ssim(reference[:, :, k], estimate[:, :, k], 1.0) for k in range(16)]),
        "coronal": np.mean([skimage_ssim(reference[:, j, :], estimate[:, j, :], 1.0) for j in range(20)]),
        "sagittal": np.mean([skimage_ssim(reference[i], estimate[i], 1.0) for i in range(24)]),
    }
    assert scores == pytest.approx(expected, rel=1e-12)
    assert len(set(np.round(list(scores.values()), 6))) == 3  # the planes differ, so the axes are not mixed up


def test_ssim_thin_volume_uses_the_formula_over_every_slice(rng: np.random.Generator) -> None:
    """Axes shorter than the 11-tap window (skimage refuses them): reflective map, all positions kept."""
    reference = gaussian_filter(rng.uniform(0, 1, (24, 20, 4)), 1.5)
    estimate = reference + 0.03 * rng.standard_normal(reference.shape)
    truth = ssim_formula_map(reference, estimate, 0.5)
    assert ssim3d(reference, estimate, 0.5) == pytest.approx(truth[5:-5, 5:-5, :].mean(), rel=1e-10)
    axial = np.mean([skimage_ssim(reference[:, :, k], estimate[:, :, k], 0.5) for k in range(4)])
    coronal = np.mean([ssim_formula_map(reference[:, j], estimate[:, j], 0.5)[5:-5, :].mean() for j in range(20)])
    scores = ssim_per_axis(reference, estimate, 0.5)
    assert scores["axial"] == pytest.approx(axial, rel=1e-10)
    assert scores["coronal"] == pytest.approx(coronal, rel=1e-10)


# ------------------------------------------------------------------ masks


@pytest.fixture
def mask() -> np.ndarray:
    inside = np.zeros((24, 20, 16), dtype=bool)
    inside[6:18, 5:15, 3:12] = True
    return inside


def test_full_mask(pair) -> None:
    """Pointwise metrics: as without a mask. SSIM: the whole map is averaged, border strip included."""
    reference, estimate = pair
    everything = np.ones(reference.shape, dtype=bool)
    masked, plain = image_metrics(reference, estimate, 1.0, mask=everything), image_metrics(reference, estimate, 1.0)
    assert {k: masked[k] for k in ("psnr", "nmse", "mae")} == pytest.approx({k: plain[k] for k in ("psnr", "nmse", "mae")})
    assert masked["ssim"] == pytest.approx(skimage_ssim(reference, estimate, 1.0, full=True)[1].mean(), rel=1e-12)
    assert masked["ssim_axial"] == pytest.approx(
        np.mean([skimage_ssim(reference[:, :, k], estimate[:, :, k], 1.0, True)[1].mean() for k in range(16)]), rel=1e-12)


def test_masked_metrics_by_hand(pair, mask) -> None:
    reference, estimate = pair
    error = estimate[mask] - reference[mask]
    assert psnr(reference, estimate, 1.0, mask) == pytest.approx(10 * np.log10(1.0 / np.mean(error ** 2)), rel=1e-12)
    assert nmse(reference, estimate, mask) == pytest.approx(np.sum(error ** 2) / np.sum(reference[mask] ** 2), rel=1e-12)
    assert mae(reference, estimate, mask) == pytest.approx(np.mean(np.abs(error)), rel=1e-12)
    full_map = skimage_ssim(reference, estimate, 1.0, full=True)[1]
    assert ssim3d(reference, estimate, 1.0, mask) == pytest.approx(full_map[mask].mean(), rel=1e-12)


def test_voxels_outside_the_mask_do_not_count(pair, mask, rng: np.random.Generator) -> None:
    """Pointwise metrics ignore every outside voxel; SSIM ignores those beyond its window radius (5)."""
    reference, estimate = pair
    changed = estimate.copy()
    changed[~mask] = rng.uniform(-5, 5, int((~mask).sum()))
    for metric in (lambda e: psnr(reference, e, 1.0, mask), lambda e: nmse(reference, e, mask),
                   lambda e: mae(reference, e, mask)):
        assert metric(changed) == metric(estimate)
    far = distance_transform_cdt(~mask, metric="chessboard") > 5  # outside every window centred in the mask
    changed = estimate.copy()
    changed[far] = rng.uniform(-5, 5, int(far.sum()))
    assert ssim3d(reference, changed, 1.0, mask) == pytest.approx(ssim3d(reference, estimate, 1.0, mask), rel=1e-12)
    assert ssim_per_axis(reference, changed, 1.0, mask) == pytest.approx(ssim_per_axis(reference, estimate, 1.0, mask),
                                                                         rel=1e-12)
    assert ssim3d(reference, changed, 1.0) != pytest.approx(ssim3d(reference, estimate, 1.0), rel=1e-3)


def test_masked_per_axis_skips_empty_slices(pair, mask) -> None:
    reference, estimate = pair
    expected = np.mean([skimage_ssim(reference[:, :, k], estimate[:, :, k], 1.0, True)[1][mask[:, :, k]].mean()
                        for k in range(3, 12)])
    assert ssim_per_axis(reference, estimate, 1.0, mask)["axial"] == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------ windows and the summary


def test_hu_windows() -> None:
    assert hu_window("soft") == (-160.0, 240.0)
    assert hu_window("lung") == (-1350.0, 150.0)
    assert {"bone", "brain"} <= set(HU_WINDOWS)
    assert all(low < high for low, high in HU_WINDOWS.values())
    with pytest.raises(InputError, match="unknown CT window"):
        hu_window("liverish")


def test_window_clips_arrays_and_tensors() -> None:
    values = np.array([-2000.0, -100.0, 0.0, 500.0])
    np.testing.assert_array_equal(window(values, *hu_window("soft")), [-160.0, -100.0, 0.0, 240.0])
    assert torch.equal(window(torch.tensor(values), -160, 240), torch.tensor([-160.0, -100.0, 0.0, 240.0], dtype=torch.float64))
    with pytest.raises(InputError):
        window(values, 10, 10)


def test_image_metrics_windows_both_volumes(rng: np.random.Generator) -> None:
    reference = gaussian_filter(rng.uniform(-1000, 1000, (16, 16, 12)), 1.5) * 4
    estimate = reference + 30 * rng.standard_normal(reference.shape)
    low, high = hu_window("soft")
    scores = image_metrics(reference, torch.from_numpy(estimate), high - low, window=(low, high))
    ref_w, est_w = np.clip(reference, low, high), np.clip(estimate, low, high)
    assert set(scores) == {"psnr", "ssim", "ssim_axial", "ssim_coronal", "ssim_sagittal", "nmse", "mae"}
    assert scores["psnr"] == pytest.approx(peak_signal_noise_ratio(ref_w, est_w, data_range=400.0), rel=1e-12)
    assert scores["ssim"] == pytest.approx(skimage_ssim(ref_w, est_w, 400.0), rel=1e-12)
    assert scores["mae"] == pytest.approx(np.mean(np.abs(est_w - ref_w)), rel=1e-12)
    assert image_metrics(reference, estimate, window=(low, high)) == pytest.approx(scores)  # range from the window
    assert all(isinstance(v, float) for v in scores.values())


@pytest.mark.parametrize("call", [
    lambda: psnr(np.zeros((3, 3)), np.zeros((3, 4)), 1.0),
    lambda: psnr(np.zeros((3, 3)), np.ones((3, 3)), 0.0),
    lambda: ssim3d(np.zeros((12, 12, 12), complex), np.zeros((12, 12, 12), complex), 1.0),
    lambda: mae(np.zeros((3, 3)), np.zeros((3, 3)), mask=np.zeros((3, 3), bool)),
    lambda: mae(np.zeros((3, 3)), np.zeros((3, 3)), mask=np.ones((3, 2), bool)),
    lambda: mae(np.zeros((3, 3)), np.zeros((3, 3)), mask=np.ones((3, 3))),
    lambda: ssim_per_axis(np.zeros((12, 12)), np.zeros((12, 12)), 1.0),
])
def test_bad_inputs_raise_input_error(call) -> None:
    with pytest.raises(InputError):
        call()
