"""The MNI152 (ICBM 2009a, symmetric) templates that nilearn ships, as tissue maps for the phantoms.

Everything comes from files inside the installed nilearn package (no download, no network):
the T1 template (already skull-stripped, rescaled to 0..1 by nilearn) and the grey- and
white-matter probability maps, all ``(197, 233, 189)`` at 1 mm. CSF is derived here:
``csf = clip(brain - gm - wm, 0, 1)`` with ``brain = t1 > 0`` (the template's brain mask, which
holds the ventricles and the sulcal CSF).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage


@dataclass(frozen=True, eq=False)
class MNITissues:
    """Tissue maps on the MNI152 1 mm grid.

    Args:
        gm, wm, csf: ``(197, 233, 189)`` float32 probabilities; ``gm + wm + csf == brain``.
        t1: ``(197, 233, 189)`` float32 T1 template, 0..1, zero outside the brain.
        brain: ``(197, 233, 189)`` float32 brain mask, 0 or 1 (brain tissue and CSF).
        depth: ``(197, 233, 189)`` float32 distance to the brain's outer surface in mm.
        affine: ``(4, 4)`` float64 voxel-to-MNI (RAS+ mm) matrix.
        t1_fit: float64 ``(3,)`` least-squares T1 value of pure csf, gm, wm (``t1 ~ fit @ p``).
    """

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    t1: np.ndarray
    brain: np.ndarray
    depth: np.ndarray
    affine: np.ndarray
    t1_fit: np.ndarray

    @property
    def brain_center(self) -> np.ndarray:
        """Centre of the brain's bounding box in MNI mm, ``(3,)`` float64."""
        idx = np.argwhere(self.brain > 0)
        mid = (idx.min(axis=0) + idx.max(axis=0)) / 2.0
        return (self.affine @ np.append(mid, 1.0))[:3]


@lru_cache(maxsize=1)
def mni152_tissues() -> MNITissues:
    """The MNI152 2009 tissue maps (cached per process; arrays are read-only)."""
    from nilearn import datasets  # deferred: importing nilearn takes about 2 s

    t1_img = datasets.load_mni152_template(resolution=1)
    gm = np.asarray(datasets.load_mni152_gm_template(resolution=1).get_fdata(), dtype=np.float32)
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=1).get_fdata(), dtype=np.float32)
    t1 = np.asarray(t1_img.get_fdata(), dtype=np.float32)
    brain = (t1 > 0).astype(np.float32)
    gm, wm = gm * brain, wm * brain
    excess = np.maximum(gm + wm, 1.0)  # where gm + wm > 1, rescale them to sum to 1
    gm, wm = gm / excess, wm / excess
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    depth = ndimage.distance_transform_edt(brain).astype(np.float32)
    inside = brain > 0
    design = np.stack([csf[inside], gm[inside], wm[inside]], axis=1).astype(np.float64)
    t1_fit = np.linalg.lstsq(design, t1[inside].astype(np.float64), rcond=None)[0]
    arrays = [gm, wm, csf, t1, brain, depth]
    for array in arrays:
        array.flags.writeable = False
    return MNITissues(*arrays, affine=np.asarray(t1_img.affine, dtype=np.float64), t1_fit=t1_fit)
