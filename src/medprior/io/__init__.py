"""Medical image I/O with exact world geometry: NIfTI, DICOM series, atomic output.

>>> from medprior.io import load, save
>>> volume = load("series_folder/")          # or a .nii.gz, or a list of .dcm files
>>> save(volume.to_canonical(), "case.nii.gz")
"""

from __future__ import annotations

from medprior.io.atomic import atomic_path, file_sha256, sidecar_path, write_json, write_sidecar
from medprior.io.dicom import DicomSeriesInfo, list_dicom_series, load_dicom_series, save_dicom_series
from medprior.io.loader import load, save
from medprior.io.nifti import load_nifti, save_nifti
from medprior.io.volume import Volume

__all__ = ["DicomSeriesInfo", "Volume", "atomic_path", "file_sha256", "list_dicom_series", "load",
           "load_dicom_series", "load_nifti", "save", "save_dicom_series", "save_nifti", "sidecar_path",
           "write_json", "write_sidecar"]
