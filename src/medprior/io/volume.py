"""The :class:`Volume`: a 3D image with its world geometry and provenance."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import nibabel as nib
import numpy as np


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D scalar image on a grid placed in world space.

    Voxel ``(i, j, k)`` of ``data`` sits at world position ``affine @ [i, j, k, 1]`` in millimetres,
    in the RAS+ frame of NIfTI and nibabel: +x towards the patient's right, +y anterior,
    +z superior. (DICOM's LPS frame has x and y negated; the readers convert.)

    Args:
        data: ``(I, J, K)`` float32 array. Units depend on ``modality``: CT in Hounsfield units,
            PET in SUV, MRI and ultrasound in arbitrary units, labels as small integers.
        affine: ``(4, 4)`` float64 voxel-to-world matrix, RAS+ millimetres.
        modality: DICOM-style modality code: ``"CT"``, ``"MR"``, ``"PT"``, ``"US"``, ``"SEG"``
            or ``"unknown"``.
        metadata: provenance: ``source`` (path), and when known ``study_uid``, ``series_uid``,
            ``contrast`` (t1n, t1c, t2w, t2f), ``units``.
    """

    data: np.ndarray
    affine: np.ndarray
    modality: str = "unknown"
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        data = np.asarray(self.data, dtype=np.float32)
        affine = np.asarray(self.affine, dtype=np.float64)
        if data.ndim != 3:
            raise ValueError(f"Volume data must be 3D (I, J, K), got shape {data.shape}")
        if affine.shape != (4, 4) or not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
            raise ValueError("Volume affine must be a finite, invertible 4x4 matrix")
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "affine", affine)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid size ``(I, J, K)`` in voxels."""
        return tuple(int(n) for n in self.data.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size along ``i``, ``j``, ``k`` in mm (norms of the affine's columns)."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def orientation(self) -> str:
        """Three-letter axis code of the grid, e.g. ``"RAS"`` or ``"LPS"`` (nibabel's convention)."""
        return "".join(nib.aff2axcodes(self.affine))

    def with_data(self, data: np.ndarray, modality: str | None = None) -> Volume:
        """A new volume on the same grid holding ``data`` (same shape)."""
        if np.shape(data) != self.shape:
            raise ValueError(f"data of shape {np.shape(data)} does not fit grid {self.shape}")
        return replace(self, data=data, modality=modality or self.modality, metadata=dict(self.metadata))

    def to_canonical(self) -> Volume:
        """The same image resampled exactly (axis flips and permutations only) onto a RAS grid."""
        image = nib.as_closest_canonical(self.to_nifti())
        return replace(self, data=np.asarray(image.dataobj, dtype=np.float32), affine=image.affine,
                       metadata=dict(self.metadata))

    def to_orientation(self, codes: str) -> Volume:
        """The same image resampled exactly (axis flips and permutations only) onto a grid whose
        axes point as ``codes`` (e.g. ``"LPS"``); ``to_orientation(v.orientation)`` of the result
        gives ``v`` back, data and affine."""
        transform = nib.orientations.ornt_transform(nib.orientations.io_orientation(self.affine),
                                                    nib.orientations.axcodes2ornt(tuple(codes)))
        image = self.to_nifti().as_reoriented(transform)
        return replace(self, data=np.asarray(image.dataobj, dtype=np.float32), affine=image.affine,
                       metadata=dict(self.metadata))

    def to_nifti(self) -> nib.Nifti1Image:
        """A NIfTI-1 image with this geometry in both sform and qform (code 1, scanner)."""
        image = nib.Nifti1Image(self.data, self.affine)
        image.set_sform(self.affine, code=1)
        image.set_qform(self.affine, code=1)
        image.header.set_xyzt_units("mm", "sec")
        return image
