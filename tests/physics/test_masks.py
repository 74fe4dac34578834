"""Sampling masks: achieved acceleration, fully sampled centre, seeds, Poisson-disc spacing, density."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from medprior.errors import InputError
from medprior.physics.masks import (acceleration, gaussian_mask_1d, poisson_disc_mask, poisson_disc_radius,
                                    random_mask_1d, uniform_mask_1d)

LINE_MASKS = [lambda n, r, cf, s: uniform_mask_1d(n, r, cf), random_mask_1d, gaussian_mask_1d]


@pytest.mark.parametrize("make", LINE_MASKS, ids=["uniform", "random", "gaussian"])
@pytest.mark.parametrize("n", [256, 320, 97])
@pytest.mark.parametrize("rate", [4, 8])
def test_line_masks_acceleration_centre_and_seed(make, n: int, rate: int) -> None:
    mask = make(n, rate, 0.04, 3)
    assert mask.dtype == bool and mask.shape == (n,)
    assert abs(acceleration(mask) / rate - 1) < 0.08
    n_low = round(0.04 * n)
    assert mask[n // 2 - n_low // 2:n // 2 - n_low // 2 + n_low].all()
    np.testing.assert_array_equal(mask, make(n, rate, 0.04, 3))


def test_random_masks_depend_on_seed() -> None:
    assert not np.array_equal(random_mask_1d(256, 4, 0.08, 0), random_mask_1d(256, 4, 0.08, 1))
    assert not np.array_equal(gaussian_mask_1d(256, 4, 0.04, 0), gaussian_mask_1d(256, 4, 0.04, 1))


def test_uniform_mask_is_equispaced_outside_the_centre() -> None:
    mask = uniform_mask_1d(256, 4, 0.08)
    outer = np.flatnonzero(mask)
    gaps = np.diff(outer[outer < 128 - 12])
    assert gaps.max() - gaps.min() <= 1


def test_gaussian_mask_is_denser_near_the_centre() -> None:
    n = 256
    counts = np.zeros(n)
    for seed in range(20):
        counts += gaussian_mask_1d(n, 8, 0.04, seed)
    distance = np.abs(np.arange(n) - n // 2)
    assert counts[(distance > 10) & (distance < 40)].mean() > 3 * counts[distance > 90].mean()


@pytest.mark.parametrize("rate", [4, 8])
def test_poisson_disc_acceleration_calibration_spacing_density(rate: int) -> None:
    shape, calib = (64, 56), (12, 10)
    mask = poisson_disc_mask(shape, rate, seed=7, calibration=calib)
    assert mask.dtype == bool and mask.shape == shape
    assert abs(acceleration(mask) / rate - 1) <= 0.05
    assert mask[32 - 6:32 + 6, 28 - 5:28 + 5].all()
    np.testing.assert_array_equal(mask, poisson_disc_mask(shape, rate, seed=7, calibration=calib))
    assert not np.array_equal(mask, poisson_disc_mask(shape, rate, seed=8, calibration=calib))
    # The minimum-distance property outside the calibration block, with the radius the bisection chose:
    calibration = np.zeros(shape, dtype=bool)
    calibration[32 - 6:32 + 6, 28 - 5:28 + 5] = True
    points = np.argwhere(mask & ~calibration)
    distances = squareform(pdist(points))
    np.fill_diagonal(distances, np.inf)
    slopes = np.linspace(0, 50, 5001)
    # the slope is not returned: the property must hold for the largest slope consistent with the mask
    nearest = distances.min(1)
    ok = [s for s in slopes if (nearest >= poisson_disc_radius(shape, s)[tuple(points.T)] - 1e-9).all()]
    assert ok and ok[-1] > 0.5  # a real, growing radius, not just "distinct pixels"
    radius = poisson_disc_radius(shape, ok[-1])
    assert (nearest >= radius[tuple(points.T)] - 1e-9).all()
    # variable density: the inner ring is sampled more densely than the outer corners
    rows, cols = np.mgrid[:64, :56]
    rho = np.hypot((rows - 32) / 32, (cols - 28) / 28)
    inner, outer = (rho > 0.3) & (rho < 0.5) & ~calibration, rho > 0.9
    assert mask[inner].mean() > 1.5 * mask[outer].mean()


def test_poisson_disc_is_a_true_poisson_disc_for_a_given_radius() -> None:
    from medprior.physics.masks import _bridson
    radius = poisson_disc_radius((40, 40), 3.0)
    taken = _bridson(radius, np.random.default_rng(0), 30)
    points = np.argwhere(taken)
    d = squareform(pdist(points))
    r = radius[tuple(points.T)]
    np.fill_diagonal(d, np.inf)
    assert (d >= np.maximum(r[:, None], r[None, :]) - 1e-9).all()
    # maximal: every free pixel is within reach of a sample (Bridson fills the domain)
    free = np.argwhere(~taken)
    nearest = np.sqrt(((free[:, None, :] - points[None]) ** 2).sum(-1)).min(1)
    assert nearest.max() <= 2 * radius.max() + 1


def test_bad_mask_arguments() -> None:
    with pytest.raises(InputError, match="centre lines"):
        uniform_mask_1d(64, 8, 0.5)
    with pytest.raises(InputError, match="acceleration"):
        random_mask_1d(64, 0.5, 0.1)
    with pytest.raises(InputError, match="calibration"):
        poisson_disc_mask((16, 16), 4, calibration=(20, 4))
    assert acceleration(np.zeros(4, dtype=bool)) == float("inf")
