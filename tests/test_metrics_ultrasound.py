"""Ultrasound contrast metrics (gCNR, CNR, KS) against closed forms, numpy by hand and scipy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp

from medprior.metrics import cnr, gcnr, ks_statistic, region_ks


def two_regions(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 1D image holding sample ``a`` then sample ``b``, with the masks of the two parts."""
    image = np.concatenate([a, b])
    mask_a = np.arange(image.size) < a.size
    return image, mask_a, ~mask_a


# ------------------------------------------------------------------ gCNR

def test_gcnr_is_one_for_disjoint_distributions(rng: np.random.Generator) -> None:
    image, mask_a, mask_b = two_regions(rng.uniform(0, 1, 500), rng.uniform(2, 3, 700))
    assert gcnr(image, mask_a, mask_b) == pytest.approx(1.0, abs=1e-12)


def test_gcnr_is_zero_for_identical_samples(rng: np.random.Generator) -> None:
    sample = rng.normal(-30, 5, 1000)
    image, mask_a, mask_b = two_regions(sample, rng.permutation(sample))
    assert gcnr(image, mask_a, mask_b) == pytest.approx(0.0, abs=1e-12)


def test_gcnr_of_half_overlapping_uniforms(rng: np.random.Generator) -> None:
    """U[0, 1] and U[0.5, 1.5] share half their mass: the overlap of the densities is 0.5."""
    image, mask_a, mask_b = two_regions(rng.uniform(0, 1, 200_000), rng.uniform(0.5, 1.5, 200_000))
    assert gcnr(image, mask_a, mask_b) == pytest.approx(0.5, abs=0.02)


def test_gcnr_on_a_tiny_image_by_hand() -> None:
    """4 shared bins over [0, 4] (width 1): a -> [1, 2, 0, 0] / 3, b -> [0, 1, 1, 1] / 3."""
    image = np.array([[0.0, 1.5, 1.2], [4.0, 1.7, 2.5]])
    mask_a = np.array([[True, True, True], [False, False, False]])
    p_a, p_b = np.array([1, 2, 0, 0]) / 3, np.array([0, 1, 1, 1]) / 3
    expected = 1 - np.minimum(p_a, p_b).sum()  # 1 - 1/3
    assert gcnr(image, mask_a, ~mask_a, bins=4) == pytest.approx(expected, abs=1e-15)
    assert gcnr(torch.from_numpy(image), torch.from_numpy(mask_a), ~mask_a, bins=4) == pytest.approx(expected)


def test_gcnr_matches_numpy_histograms_with_shared_edges(rng: np.random.Generator) -> None:
    image = rng.normal(0, 1, (40, 30))
    mask_a = np.zeros(image.shape, dtype=bool)
    mask_a[5:20, 3:15] = True
    mask_b = np.zeros(image.shape, dtype=bool)
    mask_b[10:35, 10:28] = True  # overlapping masks are allowed
    image[mask_a] += 1.0
    a, b = image[mask_a], image[mask_b]
    edges = np.linspace(min(a.min(), b.min()), max(a.max(), b.max()), 257)
    p_a, p_b = np.histogram(a, edges)[0] / a.size, np.histogram(b, edges)[0] / b.size
    assert gcnr(image, mask_a, mask_b) == pytest.approx(1 - np.minimum(p_a, p_b).sum(), abs=1e-12)


# ------------------------------------------------------------------ CNR

def test_cnr_by_hand() -> None:
    """a = [1, 3] (mean 2, var 1), b = [6, 6, 9] (mean 7, var 2): |2 - 7| / sqrt(3)."""
    image, mask_a, mask_b = two_regions(np.array([1.0, 3.0]), np.array([6.0, 6.0, 9.0]))
    assert cnr(image, mask_a, mask_b) == pytest.approx(5 / np.sqrt(3), rel=1e-14)
    assert cnr(image, mask_b, mask_a) == pytest.approx(5 / np.sqrt(3), rel=1e-14)


def test_cnr_of_constant_regions() -> None:
    image, mask_a, mask_b = two_regions(np.full(3, -20.0), np.full(4, -50.0))
    assert cnr(image, mask_a, mask_b) == float("inf")
    assert cnr(np.zeros(7), mask_a, mask_b) == 0.0


# ------------------------------------------------------------------ KS

@pytest.mark.parametrize("sizes", [(300, 300), (257, 1000), (1, 5), (4096, 10_000)])
def test_ks_statistic_equals_scipy(rng: np.random.Generator, sizes: tuple[int, int]) -> None:
    """Bit for bit where scipy computes the exact p-value (both samples <= 10000), which rounds the
    statistic to the exact fraction as we do."""
    a, b = rng.normal(0, 1, sizes[0]), rng.normal(0.3, 1.5, sizes[1])
    assert ks_statistic(a, b) == ks_2samp(a, b).statistic


def test_ks_statistic_of_large_samples_matches_scipy(rng: np.random.Generator) -> None:
    """scipy's asymptotic mode (a sample > 10000) subtracts float CDFs: equal to rounding."""
    a, b = rng.normal(0, 1, 20_000), rng.normal(0.05, 1, 30_001)
    assert ks_statistic(a, b) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-15)


def test_ks_statistic_with_ties_equals_scipy(rng: np.random.Generator) -> None:
    a, b = rng.integers(0, 5, 200).astype(float), rng.integers(1, 7, 150).astype(float)
    assert ks_statistic(a, b) == ks_2samp(a, b).statistic


def test_ks_statistic_extremes(rng: np.random.Generator) -> None:
    a = rng.uniform(0, 1, 100)
    assert ks_statistic(a, rng.permutation(a)) == 0.0
    assert ks_statistic(a, a + 2.0) == 1.0


def test_region_ks_looks_only_inside_the_mask(rng: np.random.Generator) -> None:
    hazy = rng.normal(-40, 6, (32, 32))
    dehazed = hazy.copy()
    mask = np.zeros(hazy.shape, dtype=bool)
    mask[8:24, 8:24] = True
    dehazed[~mask] -= 30.0  # haze removed outside: no change inside
    assert region_ks(hazy, dehazed, mask) == 0.0
    dehazed[mask] -= 10.0
    assert region_ks(hazy, dehazed, mask) == ks_2samp(hazy[mask], dehazed[mask]).statistic


# ------------------------------------------------------------------ errors

def test_errors_are_value_errors_that_say_what_is_wrong() -> None:
    image = np.zeros((4, 4))
    full, empty = np.ones((4, 4), dtype=bool), np.zeros((4, 4), dtype=bool)
    with pytest.raises(ValueError, match="mask is empty"):
        gcnr(image, full, empty)
    with pytest.raises(ValueError, match="mask is empty"):
        cnr(image, empty, full)
    with pytest.raises(ValueError, match="mask shape"):
        gcnr(image, full, np.ones((4, 5), dtype=bool))
    with pytest.raises(ValueError, match="boolean"):
        cnr(image, full, np.ones((4, 4)))
    with pytest.raises(ValueError, match="non-finite"):
        gcnr(np.where(full, np.nan, 0.0), full, full)
    with pytest.raises(ValueError, match="non-finite"):
        ks_statistic([0.0, np.inf], [1.0])
    with pytest.raises(ValueError, match="empty"):
        ks_statistic([], [1.0])
    with pytest.raises(ValueError, match="real"):
        cnr(image + 1j, full, full)
    with pytest.raises(ValueError, match="bins"):
        gcnr(image, full, full, bins=0)
    with pytest.raises(ValueError, match="differs from the hazy"):
        region_ks(image, np.zeros((4, 5)), full)
    with pytest.raises(ValueError, match="mask shape"):
        region_ks(image, image, np.ones((2, 2), dtype=bool))
