"""Overlapping patches: every pixel covered, stitch(extract(x)) == x, and the mean where patches overlap."""

from __future__ import annotations

import pytest
import torch

from medprior.diffusion.patches import extract, patch_corners, stitch


@pytest.mark.parametrize(("shape", "size", "stride"), [((10, 7), (4, 3), (3, 2)), ((8, 8), (8, 8), (1, 1)),
                                                        ((9, 5), (2, 5), (2, 5))])
def test_stitching_the_extracted_patches_gives_the_image_back(shape, size, stride):
    image = torch.randn(2, *shape, dtype=torch.float64)
    corners = patch_corners(shape, size, stride)
    assert corners[-1] == (shape[0] - size[0], shape[1] - size[1])  # the last patches are flush with the edges
    assert torch.equal(stitch(extract(image, corners, size), corners, shape), image)


def test_overlapping_patch_values_are_averaged():
    corners = patch_corners((1, 5), (1, 3), (1, 2))  # columns 0-2 and 2-4 overlap in column 2
    assert corners == [(0, 0), (0, 2)]
    patches = torch.stack([torch.zeros(1, 1, 3), torch.ones(1, 1, 3)])
    assert stitch(patches, corners, (1, 5)).tolist() == [[[0.0, 0.0, 0.5, 1.0, 1.0]]]


def test_a_patch_larger_than_the_image_is_refused():
    with pytest.raises(ValueError, match="patch of 6"):
        patch_corners((5, 5), (6, 2), (1, 1))
