"""Overlapping patches of a 2D image, and stitching them back, for priors trained on patches.

A prior trained on ``(h, w)`` patches sees a larger image as a batch of patches whose top-left corners
:func:`patch_corners` places every ``stride`` pixels along each axis, the last one flush with the far
edge so that every pixel is covered. :func:`extract` cuts them (a view-free copy, (P, C, h, w));
:func:`stitch` puts patch values back, averaging where patches overlap, so ``stitch(extract(x)) == x``
exactly. A sampler that stitches after every step keeps the patches of one image consistent, as the
dehazing sampler of Stevens et al. does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _starts(length: int, size: int, stride: int) -> list[int]:
    if not 0 < size <= length or stride < 1:
        raise ValueError(f"a patch of {size} needs 0 < size <= image size ({length}) and a stride >= 1 (got {stride})")
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def patch_corners(shape: Sequence[int], size: Sequence[int], stride: Sequence[int]) -> list[tuple[int, int]]:
    """Top-left corners (row, column) of the patches of ``size`` (h, w) covering an image of ``shape``
    (H, W), every ``stride`` (rows, columns) pixels, the last ones flush with the edges."""
    return [(r, c) for r in _starts(shape[0], size[0], stride[0]) for c in _starts(shape[1], size[1], stride[1])]


def overlapping_corners(shape: Sequence[int], size: Sequence[int]) -> list[tuple[int, int]]:
    """:func:`patch_corners` of patches overlapping by a quarter of their size (the stride three quarters
    of it), as the dehazing methods cut frames."""
    return patch_corners(shape, size, [max(1, s * 3 // 4) for s in size])


def extract(image: Tensor, corners: Sequence[tuple[int, int]], size: Sequence[int]) -> Tensor:
    """Patches (P, C, h, w) of ``image`` (C, H, W) at ``corners``."""
    h, w = size
    return torch.stack([image[:, r:r + h, c:c + w] for r, c in corners])


def stitch(patches: Tensor, corners: Sequence[tuple[int, int]], shape: Sequence[int]) -> Tensor:
    """The image (C, H, W) whose pixels are the mean of the ``patches`` (P, C, h, w) covering them."""
    h, w = patches.shape[-2:]
    total = patches.new_zeros((patches.shape[1], *shape))
    count = patches.new_zeros((1, *shape))
    for patch, (r, c) in zip(patches, corners):
        total[:, r:r + h, c:c + w] += patch
        count[:, r:r + h, c:c + w] += 1
    if not bool((count > 0).all()):
        raise ValueError("the patches do not cover the image")
    return total / count
