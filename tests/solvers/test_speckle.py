"""NLM and BM3D dehazing baselines on B-mode images in dB: denoising, range, scikit-image as reference."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from skimage.restoration import denoise_nl_means, estimate_sigma

from medprior.errors import ParameterError
from medprior.solvers.speckle import bm3d_bmode, nlm_bmode

DYNAMIC_RANGE = 60.0


@pytest.fixture
def bmode(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A clean piecewise-constant 64 x 64 B-mode image in dB and a copy with 4 dB Gaussian noise."""
    rows, cols = np.mgrid[:64, :64]
    clean = np.full((64, 64), -40.0)
    clean[(rows - 24) ** 2 + (cols - 40) ** 2 < 12 ** 2] = -15.0
    clean[40:56, 8:30] = -30.0
    noisy = np.clip(clean + 4.0 * rng.standard_normal(clean.shape), -DYNAMIC_RANGE, 0.0)
    return clean, noisy


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a - b) ** 2))


@pytest.mark.parametrize("denoise", [nlm_bmode, bm3d_bmode])
def test_denoisers_lower_the_error_and_keep_shape_and_range(bmode, denoise) -> None:
    clean, noisy = bmode
    out = denoise(noisy, dynamic_range=DYNAMIC_RANGE)
    assert out.shape == noisy.shape and out.dtype == np.float64
    assert out.min() >= -DYNAMIC_RANGE and out.max() <= 0.0
    assert mse(out, clean) < mse(noisy, clean) / 4


def test_nlm_equals_scikit_image_on_the_unit_scale(bmode) -> None:
    _, noisy = bmode
    unit = (noisy + DYNAMIC_RANGE) / DYNAMIC_RANGE
    sigma = estimate_sigma(unit, channel_axis=None)
    reference = denoise_nl_means(unit, h=0.8 * sigma, patch_size=5, patch_distance=6, fast_mode=True,
                                 channel_axis=None) * DYNAMIC_RANGE - DYNAMIC_RANGE
    np.testing.assert_allclose(nlm_bmode(noisy, DYNAMIC_RANGE), reference, rtol=0, atol=1e-10)
    explicit = denoise_nl_means(unit, h=0.05, patch_size=3, patch_distance=4, fast_mode=True,
                                channel_axis=None) * DYNAMIC_RANGE - DYNAMIC_RANGE
    np.testing.assert_allclose(nlm_bmode(noisy, DYNAMIC_RANGE, h=0.05, patch_size=3, patch_distance=4),
                               explicit, rtol=0, atol=1e-10)


def test_values_outside_the_dynamic_range_are_clipped(bmode) -> None:
    _, noisy = bmode
    out = nlm_bmode(noisy - 30.0, dynamic_range=40.0)
    assert out.min() >= -40.0 and out.max() <= 0.0


def test_missing_bm3d_names_the_extra(bmode, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bm3d", None)  # makes `import bm3d` raise ImportError
    with pytest.raises(ParameterError, match=r"medprior\[bm3d\]"):
        bm3d_bmode(bmode[1])


@pytest.mark.parametrize("denoise", [nlm_bmode, bm3d_bmode])
def test_bad_input_is_a_value_error(denoise) -> None:
    image = np.full((16, 16), -30.0)
    with pytest.raises(ValueError, match="2D"):
        denoise(np.zeros((2, 16, 16)))
    with pytest.raises(ValueError, match="non-finite"):
        denoise(np.where(np.eye(16, dtype=bool), np.nan, image))
    with pytest.raises(ValueError, match="dynamic_range"):
        denoise(image, dynamic_range=0.0)
    with pytest.raises(ValueError, match="positive"):
        denoise(image, 60.0, -0.1)
