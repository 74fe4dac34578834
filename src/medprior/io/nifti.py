"""NIfTI-1 files (``.nii``, ``.nii.gz``) to and from :class:`~medprior.io.volume.Volume`.

The affine nibabel reports (sform if set, else qform) is taken as the RAS+ voxel-to-world matrix
in mm. Data are read as float32 with the header's scaling applied.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nibabel as nib
import numpy as np

from medprior.checks import require_finite_output
from medprior.errors import InputError
from medprior.io.atomic import NIFTI_SUFFIXES, atomic_path
from medprior.io.volume import Volume

_MODALITY_TAG = re.compile(r"medprior modality=([A-Za-z]+)")


def is_nifti_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named like a NIfTI file (``.nii`` or ``.nii.gz``, any case)."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def load_nifti(path: str | os.PathLike) -> Volume:
    """Read a NIfTI file as a 3D volume.

    A 2D image ``(I, J)`` becomes ``(I, J, 1)``; trailing singleton dimensions beyond the third are
    dropped. Modality is ``"unknown"`` unless the file was written by :func:`save_nifti`, which
    records it in the header's ``descrip`` field.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.

    Returns:
        Volume with ``(I, J, K)`` float32 data and the file's RAS+ affine (mm);
        ``metadata["source"] = str(path)``.

    Raises:
        InputError: missing, empty, truncated or corrupt file; more than 3 non-singleton
            dimensions; complex data; NaN or Inf voxels.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "does not exist" if not path.exists() else "is not a file")
    if path.stat().st_size == 0:
        raise InputError(path, "is empty (0 bytes)")
    try:
        image = nib.load(path)
        if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
            raise InputError(path, f"is not a NIfTI image (nibabel read it as {type(image).__name__})")
        affine = np.asarray(image.affine, dtype=np.float64)
        data = np.asarray(image.dataobj)
    except InputError:
        raise
    except Exception as error:  # nibabel, gzip, zlib and OS errors for truncated or corrupt files
        raise InputError(path, f"cannot be read as NIfTI ({type(error).__name__}: {error})") from error
    if np.iscomplexobj(data):
        raise InputError(path, f"holds complex data ({data.dtype}); a real-valued image is needed")
    shape = data.shape
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[:, :, np.newaxis]
    if data.ndim != 3:
        raise InputError(path, f"has shape {shape}; a 3D (or 2D) image is needed, not {len(shape)}D")
    data = data.astype(np.float32)
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise InputError(path, f"contains {bad} non-finite voxels (NaN or Inf)")
    form = _affine_source(image.header)
    if not np.all(np.isfinite(affine)):
        raise InputError(path, f"affine ({form}): holds NaN or Inf; the image cannot be placed in space")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputError(path, f"affine ({form}): is singular (a zero voxel size or collinear axes); "
                               "the image cannot be placed in space")
    descrip = image.header.get("descrip")
    match = _MODALITY_TAG.search(bytes(descrip).decode("ascii", "ignore") if descrip is not None else "")
    modality = match.group(1) if match else "unknown"
    return Volume(data, affine, modality=modality, metadata={"source": str(path)})


def _affine_source(header) -> str:
    """Which header fields nibabel took the affine from: the sform, the qform, or pixdim alone."""
    try:
        if int(header["sform_code"]) > 0:
            return "sform srow_x/srow_y/srow_z"
        if int(header["qform_code"]) > 0:
            return "qform quatern_*/qoffset_*/pixdim"
    except (KeyError, ValueError, TypeError):
        pass
    return "pixdim"


def save_nifti(volume: Volume, path: str | os.PathLike) -> Path:
    """Write ``volume`` as float32 NIfTI-1 (sform = qform = its affine), atomically.

    The modality is recorded in the header's ``descrip`` as ``"medprior modality=CT"`` so that
    :func:`load_nifti` gets it back.

    Args:
        volume: the image to write.
        path: target ending in ``.nii`` or ``.nii.gz`` (gzip-compressed).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        MedpriorError: the image holds NaN or Inf (nothing is written; an earlier file stays).
    """
    path = Path(path)
    if not is_nifti_path(path):
        raise InputError(path, "is not a NIfTI file name; use a .nii or .nii.gz suffix")
    require_finite_output(path, volume.data, "the image")
    image = volume.to_nifti()
    image.set_data_dtype(np.float32)
    image.header["descrip"] = f"medprior modality={volume.modality}"[:79].encode("ascii", "replace")
    with atomic_path(path) as temporary:
        nib.save(image, temporary)
    return path
