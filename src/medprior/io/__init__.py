"""Medical image I/O with exact world geometry: NIfTI, DICOM series, atomic output.

>>> from medprior.io import load, save
>>> volume = load("series_folder/")          # or a .nii.gz, or a list of .dcm files
>>> save(volume.to_canonical(), "case.nii.gz")
"""

from __future__ import annotations

from medprior.io.atomic import atomic_path, file_sha256, sidecar_path, write_json, write_sidecar
from medprior.io.volume import Volume

__all__ = ["Volume", "atomic_path", "file_sha256", "sidecar_path", "write_json", "write_sidecar"]
