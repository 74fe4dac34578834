"""Sampling on another grid: the one-map route (affine_transform) against world points per voxel."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from medprior.io import Volume
from medprior.io.resample import resample_like, sample_at_world, sample_on_grid, voxel_centres_mm


def _oblique(spacing, origin, angles_deg) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = Rotation.from_euler("xyz", angles_deg, degrees=True).as_matrix() * np.asarray(spacing)
    affine[:3, 3] = origin
    return affine


@pytest.mark.parametrize("order, outside", [(0, "constant"), (1, "constant"), (1, "nearest")])
def test_sampling_on_a_grid_equals_sampling_at_its_voxel_centres(order, outside):
    rng = np.random.default_rng(0)
    source = Volume(rng.normal(size=(17, 13, 9)).astype(np.float32), _oblique((1.1, 0.9, 2.5), (-9, -5, -11), (5, -8, 20)))
    target_affine, target_shape = _oblique((0.7, 1.3, 1.9), (-12, -8, -14), (-3, 11, 2)), (23, 14, 12)
    expected = sample_at_world(source, voxel_centres_mm(target_affine, target_shape), order=order, fill=-7.0,
                               outside=outside)
    got = sample_on_grid(source, target_affine, target_shape, order=order, fill=-7.0, outside=outside)
    assert got.shape == target_shape and got.dtype == np.float32
    assert (got == -7.0).any() or outside == "nearest"   # part of the target lies outside the source
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_a_grid_shifted_by_half_a_voxel_averages_neighbours():
    data = np.arange(4 * 3 * 2, dtype=np.float32).reshape(4, 3, 2)
    source = Volume(data, np.diag([2.0, 2.0, 3.0, 1.0]))
    shifted = np.diag([2.0, 2.0, 3.0, 1.0])
    shifted[0, 3] = 1.0                       # half a voxel along i: centres between i and i + 1
    got = resample_like(source, Volume(np.zeros((3, 3, 2), np.float32), shifted)).data
    np.testing.assert_allclose(got, (data[:-1] + data[1:]) / 2)
