"""Volume reorientation: exact flips and permutations that keep every voxel's world position."""

import numpy as np
import pytest

from medprior.io import Volume


@pytest.mark.parametrize("codes", ["LPS", "RAS", "SAR", "PIL"])
def test_to_orientation_keeps_world_positions_and_inverts(make_volume, codes):
    volume = make_volume((5, 6, 7), affine=np.diag([-0.8, -0.9, 2.5, 1.0]))  # LPS-stored
    out = volume.to_orientation(codes)
    assert out.orientation == codes
    for index in [(0, 0, 0), (4, 2, 6), (1, 5, 3)]:  # the voxel at a world point holds the same value
        world = volume.affine @ [*index, 1]
        moved = np.linalg.solve(out.affine, world)[:3]
        assert out.data[tuple(np.round(moved).astype(int))] == volume.data[index]
    back = out.to_orientation(volume.orientation)
    np.testing.assert_array_equal(back.data, volume.data)
    np.testing.assert_allclose(back.affine, volume.affine, atol=1e-5)


def test_ras_is_the_canonical_grid(make_volume):
    volume = make_volume((4, 5, 6), affine=np.diag([-1.0, -1.0, 1.0, 1.0]))
    assert isinstance(volume, Volume)
    np.testing.assert_array_equal(volume.to_orientation("RAS").data, volume.to_canonical().data)
