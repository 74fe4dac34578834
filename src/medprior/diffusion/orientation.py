"""Slices in the orientation a prior learned: in-plane flips of a stack and a denoiser that applies them.

A slice prior learned anatomy in one in-plane orientation (the grid orientation of its training
volumes, ``training.orientation`` in prior.json, e.g. ``"LPS"``). A measurement whose image grid
points the other way along an in-plane axis (a RAS-canonical NIfTI against the LPS phantoms the demo
priors learned from) must be denoised flipped, or the prior sees upside-down anatomy.
:func:`in_plane_flips` finds the flips from the grid's affine; :class:`FlippedDenoiser` applies them
around any :class:`~medprior.diffusion.denoiser.Denoiser` (flips are their own inverse).
"""

from __future__ import annotations

from typing import Any

import nibabel as nib
import numpy as np
from torch import Tensor

from medprior.diffusion.denoiser import Denoiser
from medprior.errors import InputError

DEFAULT_PRIOR_ORIENTATION = "LPS"
"""Grid orientation of the training volumes of priors whose prior.json predates ``training.orientation``:
the demo priors learned from the phantoms, which are LPS (as DICOM and BraTS)."""

_OPPOSITE = dict(zip("LRAPSI", "RLPAIS"))


def training_orientation(training: dict[str, Any]) -> str:
    """The grid orientation (e.g. ``"LPS"``) of a prior's training volumes, from the ``training``
    section of its prior.json."""
    return training.get("orientation", DEFAULT_PRIOR_ORIENTATION)


def in_plane_flips(affine: np.ndarray, prior_orientation: str) -> tuple[int, ...]:
    """Dims of a (b, 1, I, J) batch to flip so that its I and J axes point as the prior's first two axes.

    ``affine``: the 4 x 4 voxel-to-world (RAS mm) matrix of the slices' grid. Raises InputError when
    the in-plane axes are swapped (a transposed grid), which flips cannot fix.
    """
    codes = nib.aff2axcodes(affine)
    flips = []
    for dim, (have, want) in enumerate(zip(codes[:2], prior_orientation[:2]), start=2):
        if have == _OPPOSITE[want]:
            flips.append(dim)
        elif have != want:
            raise InputError(None, f"the measurement grid is {''.join(codes)} and the prior's slices "
                                   f"{prior_orientation}: in-plane axes are swapped; reorient the volume first")
    return tuple(flips)


class FlippedDenoiser:
    """A denoiser applied to in-plane flipped slices, its output flipped back.

    ``dims``: the batch dims to flip (from :func:`in_plane_flips`); the schedule is the wrapped one's.
    """

    def __init__(self, denoiser: Denoiser, dims: tuple[int, ...]) -> None:
        self.denoiser, self.dims, self.schedule = denoiser, dims, denoiser.schedule

    def __call__(self, x_t: Tensor, t: Tensor) -> Tensor:
        return self.denoiser(x_t.flip(self.dims), t).flip(self.dims)
