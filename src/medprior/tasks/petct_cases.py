"""PET/CT cases for segmentation: reading, PET onto the CT grid, the head-and-neck box, network inputs.

A case (HECKTOR layout, :func:`medprior.challenges.hecktor.find_hecktor_cases`) is a CT in HU, a PET
in SUV on its own grid and, for training and scoring, a label map on the CT grid (0 background,
1 GTVp, 2 GTVn). The segmentation models work on a *working grid* (:class:`WorkingGrid`): a box of
``shape * spacing_mm`` millimetres, axis-aligned with the CT's voxel axes, isotropic ``spacing_mm``,
placed around the head and neck (:func:`head_neck_box`). Everything is resampled through the
affines in world millimetres: the PET onto the CT grid (:func:`pet_on_ct`, trilinear), CT and PET
onto the working grid (trilinear) and the label there (nearest), and the models' class
probabilities back onto the CT grid (trilinear, :func:`probabilities_on_ct`), whose argmax is the
submitted label.

Network inputs are two channels in [-1, 1]: the PET, ``2 (1 - exp(-SUV / suv_scale)) - 1`` (monotone,
no clipping of hot tumours: SUV 5 -> 0.26, SUV 10 -> 0.73 at ``suv_scale`` 5), and the CT clipped to
``ct_window`` HU and scaled linearly. Labels are two channels in {-1, 1}, GTVp then GTVn
(:func:`label_channels`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from medprior.errors import InputError
from medprior.io import Volume
from medprior.io.nifti import load_nifti
from medprior.io.resample import resample_like, sample_on_grid

SEGMENTATION_CLASSES = {1: "GTVp", 2: "GTVn"}
UNCERTAINTY_FILES = {"probabilities": "__probabilities.nii.gz", "entropy": "__entropy.nii.gz",
                     "variance": "__variance.nii.gz"}
"""The uncertainty folder's files per case, ``<ID><suffix>``: class probabilities (I, J, K, 3), the
predictive entropy (nats) and, for the diffusion ensemble, the sample variance of the foreground."""
BODY_HU = -500.0
"""CT voxels above this are the body (its bounding box centres the working grid in plane)."""
BRAIN_SUV = 3.0
BRAIN_AREA_MM2 = 4000.0
"""Axial bins (4 mm, or a slice) whose PET area above BRAIN_SUV exceeds this, in a run from the top, are
the brain."""
_BIN_MM = 4.0


@dataclass(frozen=True)
class WorkingGrid:
    """The models' grid: ``shape`` voxels of ``spacing_mm`` (isotropic), CT window and SUV scale.

    The fields are a segmentation model's ``segmentation`` config section (recorded in its prior.json).
    """

    shape: tuple[int, int, int] = (40, 32, 40)
    spacing_mm: float = 3.0
    ct_window: tuple[float, float] = (-200.0, 200.0)
    suv_scale: float = 5.0
    brain_margin_mm: float = 5.0

    @classmethod
    def from_config(cls, image_size: Any, section: Mapping[str, Any]) -> WorkingGrid:
        return cls(shape=tuple(int(s) for s in image_size), spacing_mm=float(section["spacing_mm"]),
                   ct_window=tuple(float(v) for v in section["ct_window"]), suv_scale=float(section["suv_scale"]),
                   brain_margin_mm=float(section["brain_margin_mm"]))

    @property
    def size_mm(self) -> np.ndarray:
        return np.asarray(self.shape, float) * self.spacing_mm


@dataclass(frozen=True)
class PetCtCase:
    """One case as the models see it: CT (HU), PET (SUV) resampled onto the CT grid, label (or None)."""

    case_id: str
    ct: Volume
    pet: Volume
    label: Volume | None = None


def pet_on_ct(pet: Volume, ct: Volume) -> Volume:
    """The PET resampled onto the CT's grid through both affines (trilinear, 0 SUV outside the PET)."""
    return resample_like(pet, ct, order=1, fill=0.0)


def read_case(case_id: str, files: Mapping[str, Path], *, with_label: bool = True) -> PetCtCase:
    """Load a case's CT, PET (onto the CT grid) and label (if ``with_label`` and present; checked
    as :func:`read_truth` checks it)."""
    if with_label and "label" in files:
        ct, label = read_truth(files)
    else:
        ct, label = load_nifti(files["ct"]), None
    return PetCtCase(case_id, ct, pet_on_ct(load_nifti(files["pet"]), ct), label)


def read_truth(files: Mapping[str, Path]) -> tuple[Volume, Volume]:
    """A labelled case's CT and label, without its PET (what scoring a segmentation needs).

    Raises:
        InputError: a label whose grid is not the CT's, or labels other than 0, 1, 2.
    """
    ct, label = load_nifti(files["ct"]), load_nifti(files["label"])
    if label.shape != ct.shape or not np.allclose(label.affine, ct.affine, atol=1e-4):
        raise InputError(files["label"], f"the label's grid {label.shape} is not the CT's {ct.shape} "
                                         "(HECKTOR labels lie on the CT grid)")
    values = set(np.unique(label.data).tolist()) - {0.0, 1.0, 2.0}
    if values:
        raise InputError(files["label"], f"labels {sorted(values)[:5]} are not 0, 1 or 2")
    return ct, label


def _world_points(volume: Volume, mask: np.ndarray) -> np.ndarray:
    """World mm (n, 3) of the voxels in ``mask``."""
    index = np.argwhere(mask).astype(np.float64)
    return index @ volume.affine[:3, :3].T + volume.affine[:3, 3]


def _world_extent(volume: Volume, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World bounding box (low, high; mm, each (3,)) of the voxels in ``mask``; +-inf without any.
    Slice by slice along the last axis, so only one slice's points are held (a 512 x 512 x 200 body
    mask has tens of millions of voxels)."""
    low, high = np.full(3, np.inf), np.full(3, -np.inf)
    for k in np.flatnonzero(mask.any(axis=(0, 1))):
        index = np.argwhere(mask[:, :, k]).astype(np.float64)
        points = index @ volume.affine[:3, :2].T + (volume.affine[:3, 2] * k + volume.affine[:3, 3])
        low, high = np.minimum(low, points.min(0)), np.maximum(high, points.max(0))
    return low, high


def head_neck_box(case: PetCtCase, grid: WorkingGrid) -> np.ndarray:
    """The 4x4 affine of the working grid of ``case``: CT axes, ``grid.spacing_mm`` voxels.

    In plane (world x, y) the box is centred on the body's bounding box (CT above :data:`BODY_HU`).
    Along world z, its top lies ``grid.brain_margin_mm`` above the bottom of the brain, found on the
    PET as the run of 4 mm axial bins from the top whose area above :data:`BRAIN_SUV` exceeds
    :data:`BRAIN_AREA_MM2`; without a brain in the field of view, at the top of the body.
    """
    low, high = _world_extent(case.ct, case.ct.data > BODY_HU)
    if not np.isfinite(low).all():
        raise InputError(case.ct.metadata.get("source"), f"no voxel above {BODY_HU:g} HU: not a CT of a body")
    brain_bottom = _brain_bottom(case.pet, high[2], low[2])
    top = high[2] if brain_bottom is None else brain_bottom + grid.brain_margin_mm
    directions = case.ct.affine[:3, :3] / np.asarray(case.ct.spacing)
    affine = np.eye(4)
    affine[:3, :3] = directions * grid.spacing_mm
    last = np.asarray(grid.shape, float) - 1
    extent = np.abs(affine[:3, :3]) @ last                     # world extent (mm) of the box's voxel centres
    centre = np.array([(low[0] + high[0]) / 2, (low[1] + high[1]) / 2, top - extent[2] / 2])
    affine[:3, 3] = centre - affine[:3, :3] @ (last / 2)
    return affine


def _brain_bottom(pet: Volume, top: float, bottom: float) -> float | None:
    """World z (mm) of the bottom of the brain on the PET (see :func:`head_neck_box`), None without one.
    The bins are 4 mm, or one slice where slices lie further apart, so that no bin falls between slices."""
    width = max(_BIN_MM, float(np.abs(pet.affine[2, :3]).max()))
    hot = _world_points(pet, pet.data > BRAIN_SUV)[:, 2]
    bins = np.arange(top, bottom - width, -width)               # bin tops, from the top down
    area = np.array([((hot <= b) & (hot > b - width)).sum() for b in bins]) * float(np.prod(pet.spacing)) / width
    brain = area > BRAIN_AREA_MM2
    if not brain.any():
        return None
    last = int(np.argmax(brain))
    while last + 1 < brain.size and brain[last + 1]:
        last += 1
    return float(bins[last] - width)


def normalise_pet(suv: np.ndarray, suv_scale: float) -> np.ndarray:
    """SUV -> [-1, 1): ``2 (1 - exp(-SUV / suv_scale)) - 1``."""
    return (2.0 * (1.0 - np.exp(-np.maximum(suv, 0.0) / suv_scale)) - 1.0).astype(np.float32)


def normalise_ct(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """HU clipped to ``window`` -> [-1, 1]."""
    low, high = window
    return (2.0 * (np.clip(hu, low, high) - low) / (high - low) - 1.0).astype(np.float32)


def network_inputs(case: PetCtCase, grid: WorkingGrid) -> tuple[torch.Tensor, np.ndarray]:
    """The (2, *grid.shape) float32 tensor [PET, CT] in [-1, 1] on the case's working grid, and its affine."""
    affine = head_neck_box(case, grid)
    pet = normalise_pet(sample_on_grid(case.pet, affine, grid.shape, order=1, fill=0.0), grid.suv_scale)
    ct = normalise_ct(sample_on_grid(case.ct, affine, grid.shape, order=1, fill=-1000.0), grid.ct_window)
    return torch.from_numpy(np.stack([pet, ct])), affine


def label_channels(label: np.ndarray) -> torch.Tensor:
    """Integer labels (*shape) -> (2, *shape) float32 in {-1, 1}: GTVp, GTVn."""
    return torch.from_numpy(np.stack([label == k for k in SEGMENTATION_CLASSES]).astype(np.float32) * 2 - 1)


def training_example(case: PetCtCase, grid: WorkingGrid) -> torch.Tensor:
    """(4, *grid.shape): the label channels (GTVp, GTVn) then the inputs (PET, CT), on the working grid."""
    if case.label is None:
        raise InputError(case.case_id, "a training case needs its label")
    inputs, affine = network_inputs(case, grid)
    label = sample_on_grid(case.label, affine, grid.shape, order=0, fill=0.0)
    return torch.cat([label_channels(np.rint(label)), inputs])


def mirror_axis(affine: np.ndarray) -> int:
    """The working-grid axis nearest world x (left-right), along which a training example is mirrored."""
    return int(np.argmax(np.abs(affine[0, :3])))


def probabilities_on_ct(probabilities: np.ndarray, affine: np.ndarray, ct: Volume) -> np.ndarray:
    """Class probabilities (3, *working shape) -> (3, *ct.shape) on the CT grid (trilinear; background 1
    outside the box), renormalised to sum to 1."""
    out = np.stack([sample_on_grid(Volume(p.astype(np.float32), affine), ct.affine, ct.shape, order=1,
                                   fill=float(c == 0)) for c, p in enumerate(probabilities)])
    out = np.clip(out, 0.0, 1.0)        # rounding of the interpolation
    return out / np.maximum(out.sum(0, keepdims=True), 1e-12)
