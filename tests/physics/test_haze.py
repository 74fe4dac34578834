"""Haze models: multipath copies lie deeper along the ray with exponentially distributed extra paths;
reverberation mirror sources lie at multiples of the layer depths with amplitudes R^n."""

from __future__ import annotations

import numpy as np
import pytest

from medprior.errors import ParameterError
from medprior.physics.haze import multipath_scatterers, reverberation_scatterers


def test_multipath_copies_come_from_the_near_field_deeper_along_the_ray():
    rng = np.random.default_rng(0)
    points = np.zeros((4000, 3))
    points[:, 0] = rng.uniform(-5e-3, 5e-3, 4000)
    points[:, 2] = rng.uniform(2e-3, 40e-3, 4000)
    amplitudes = rng.standard_normal(4000)
    near = points[:, 2] < 10e-3
    copies, weights = multipath_scatterers(points, amplitudes, rng=np.random.default_rng(1), near_field=10e-3,
                                           mean_extra_path=20e-3, copies=3, lateral_spread=0.0)
    assert copies.shape == (3 * near.sum(), 3) and weights.shape == (3 * near.sum(),)
    sources = np.repeat(points[near], 3, axis=0)
    extra = 2 * (np.linalg.norm(copies, axis=1) - np.linalg.norm(sources, axis=1))
    assert np.all(extra >= 0)
    assert abs(extra.mean() - 20e-3) < 3 * 20e-3 / np.sqrt(extra.size)  # exponential: mean = std = 20 mm
    direction = np.cross(copies[:, [0, 2]], sources[:, [0, 2]])  # same ray: no cross product
    assert np.allclose(direction, 0, atol=1e-12)
    assert np.all(np.abs(weights) <= np.repeat(np.abs(amplitudes[near]), 3) * 10)


def test_reverberation_bands_lie_at_multiples_of_the_layer_depth_with_amplitude_r_to_the_n():
    copies, weights = reverberation_scatterers(np.array([10e-3]), np.array([0.5]), rng=np.random.default_rng(0),
                                               width=40e-3, max_depth=45e-3, density=5e4, depth_jitter=0.0,
                                               lateral_jitter=0.0)
    depths = np.unique(np.round(copies[:, 2], 6))
    assert np.allclose(depths, [20e-3, 30e-3, 40e-3])
    for order, depth in zip((2, 3, 4), depths):
        band = weights[np.isclose(copies[:, 2], depth)]
        assert band.std() == pytest.approx(0.5 ** order, rel=0.1)


def test_bad_haze_settings_are_refused():
    with pytest.raises(ParameterError, match="reflectivities"):
        reverberation_scatterers(np.array([5e-3]), np.array([1.2]), rng=np.random.default_rng(0), width=1e-2,
                                 max_depth=5e-2)
    with pytest.raises(ParameterError, match="near_field"):
        multipath_scatterers(np.zeros((1, 3)), np.ones(1), rng=np.random.default_rng(0), near_field=-1.0)
