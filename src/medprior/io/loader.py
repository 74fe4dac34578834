"""One entry point to read any supported image (:func:`load`) and one to write it (:func:`save`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from medprior.errors import InputError
from medprior.io.dicom import load_dicom_series
from medprior.io.nifti import is_nifti_path, load_nifti, save_nifti
from medprior.io.volume import Volume


def _looks_like_dicom(path: Path) -> bool:
    """A ``.dcm``/``.dicom``/``.ima`` name, or the ``DICM`` magic at byte 128."""
    if path.suffix.lower() in (".dcm", ".dicom", ".ima"):
        return True
    try:
        with open(path, "rb") as stream:
            return stream.read(132)[128:] == b"DICM"
    except OSError as error:
        raise InputError(path, f"cannot be read ({error.strerror or error})") from error


def load(path: str | os.PathLike | Sequence[str | os.PathLike], *, series_uid: str | None = None,
         need_3d: bool = False) -> Volume:
    """Read a NIfTI file, a DICOM file, a folder of DICOM files or a list of DICOM files.

    Args:
        path: ``.nii``/``.nii.gz`` file, DICOM file, DICOM folder, or list/tuple of DICOM files.
        series_uid: SeriesInstanceUID to pick when a DICOM folder holds several series.
        need_3d: reject images with fewer than 2 slices along ``k``.

    Returns:
        :class:`Volume` with ``(I, J, K)`` float32 data and a RAS+ affine in mm.

    Raises:
        InputError: the path is missing or unreadable, its format is not recognised, or it is not
            a usable 3D image (see :func:`load_nifti` and :func:`load_dicom_series`).
    """
    if isinstance(path, (list, tuple)):
        volume = load_dicom_series(path, series_uid=series_uid)
    else:
        path = Path(path)
        if not path.exists():
            raise InputError(path, "does not exist")
        if path.is_dir():
            volume = load_dicom_series(path, series_uid=series_uid)
        elif is_nifti_path(path):
            if series_uid is not None:
                raise InputError(path, "is a NIfTI file; series_uid= applies only to DICOM input")
            volume = load_nifti(path)
        elif _looks_like_dicom(path):
            volume = load_dicom_series(path, series_uid=series_uid)
        else:
            raise InputError(path, "has an unrecognised format; expected .nii, .nii.gz, a DICOM file "
                                   "or a folder of DICOM files")
    if need_3d and volume.shape[2] < 2:
        i, j, k = volume.shape
        raise InputError(volume.metadata.get("source", path),
                         f"is a 2D image ({i}x{j}x{k}); a 3D volume is needed")
    return volume


def save(volume: Volume, path: str | os.PathLike) -> Path:
    """Write ``volume`` atomically; only NIfTI (``.nii``, ``.nii.gz``) is supported.

    Use :func:`medprior.io.save_dicom_series` to write a DICOM series.
    """
    if not is_nifti_path(path):
        raise InputError(path, "cannot be written: only .nii and .nii.gz outputs are supported")
    return save_nifti(volume, path)
