"""Centred crop / pad: hand-computed offsets and affines, exact round trips."""

import numpy as np
import pytest

from medprior.io import Volume
from medprior.io.crop import crop_or_pad


def volume(shape, affine=None):
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) + 1
    return Volume(data, np.diag([-2.0, -2.0, 3.0, 1.0]) if affine is None else affine, "MR", {"contrast": "t2w"})


def test_offsets_and_affine_by_hand():
    v = volume((6, 5, 4))
    out = crop_or_pad(v, (4, 8, 4))
    # axis 0: 6 -> 4 crops 1 before, 1 after; axis 1: 5 -> 8 pads 1 before, 2 after; axis 2 unchanged
    np.testing.assert_array_equal(out.data[:, 1:6, :], v.data[1:5])
    assert out.data[:, 0].max() == 0 and out.data[:, 6:].max() == 0
    np.testing.assert_allclose(out.affine[:3, 3], [-2.0 * 1, -2.0 * -1, 0.0])
    assert out.metadata == v.metadata and out.modality == "MR"


@pytest.mark.parametrize("native, grid", [((240, 240, 155), (224, 224, 160)), ((7, 9, 5), (10, 4, 5))])
def test_kept_voxels_keep_their_world_position(native, grid):
    rng = np.random.default_rng(0)
    affine = np.eye(4)
    affine[:3, :3] = rng.normal(size=(3, 3))
    affine[:3, 3] = rng.normal(size=3) * 10
    v = volume(native, affine)
    out = crop_or_pad(v, grid)
    i, j, k = (min(n, m) // 2 for n, m in zip(native, grid))  # a voxel of the output inside both grids
    world = out.affine @ [i, j, k, 1]
    native_index = np.linalg.solve(v.affine, world)[:3]
    np.testing.assert_allclose(native_index, np.round(native_index), atol=1e-9)
    assert out.data[i, j, k] == v.data[tuple(np.round(native_index).astype(int))]


def test_round_trip_is_exact_inside_the_grid_and_zero_outside():
    v = volume((240, 240, 155))
    back = crop_or_pad(crop_or_pad(v, (224, 224, 160)), v.shape)
    np.testing.assert_array_equal(back.affine, v.affine)
    np.testing.assert_array_equal(back.data[8:-8, 8:-8], v.data[8:-8, 8:-8])
    assert back.data[:8].max() == 0 and back.data[-8:].max() == 0


def test_bad_shape():
    with pytest.raises(ValueError, match="three positive"):
        crop_or_pad(volume((4, 4, 4)), (4, 4))
