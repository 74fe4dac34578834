"""DICOM series (one single-frame file per slice) to and from :class:`~medprior.io.volume.Volume`.

Geometry, in DICOM's LPS frame (mm): ``ImageOrientationPatient = [X, Y]`` with ``X`` the direction
of increasing column index ``c`` and ``Y`` of increasing row index ``r``; ``PixelSpacing = [dr, dc]``.
Pixel ``(r, c)`` of a slice at ``ImagePositionPatient = P`` lies at ``P + c dc X + r dr Y``.

The volume is ``data[i, j, k]`` with ``i = c``, ``j = r`` (the transposed ``pixel_array``) and ``k``
the slice index sorted by ``P . n`` ascending, ``n = X x Y``. Its LPS affine has columns
``dc X``, ``dr Y``, ``(P_last - P_first) / (N - 1)`` and translation ``P_first``; the RAS affine is
``diag(-1, -1, 1, 1)`` times that.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    PositronEmissionTomographyImageStorage,
    SecondaryCaptureImageStorage,
    generate_uid,
)
from pydicom.valuerep import DSfloat

from medprior.checks import require_finite_output
from medprior.errors import InputError
from medprior.io.atomic import atomic_path
from medprior.io.volume import Volume

DicomInput = str | os.PathLike | Sequence[str | os.PathLike]

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_SOP_CLASSES = {"CT": CTImageStorage, "MR": MRImageStorage, "PT": PositronEmissionTomographyImageStorage}
_GEOMETRY_TAGS = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")


@dataclass(frozen=True)
class DicomSeriesInfo:
    """One series found among DICOM files (from headers only).

    Args:
        series_uid: SeriesInstanceUID (``""`` when absent).
        study_uid: StudyInstanceUID (``""`` when absent).
        modality: Modality code, e.g. ``"CT"``.
        description: SeriesDescription (``""`` when absent).
        n_files: number of files of the series.
        files: their paths, sorted by name.
    """

    series_uid: str
    study_uid: str
    modality: str
    description: str
    n_files: int
    files: tuple[Path, ...]


# ----------------------------------------------------------------------------------------- reading


def _dicom_files(folder_or_files: DicomInput) -> tuple[Path, list[Path]]:
    """``(source, files)``: the folder's candidate files (hidden files and DICOMDIR skipped) or the list."""
    if isinstance(folder_or_files, (str, os.PathLike)):
        source = Path(folder_or_files)
        if not source.exists():
            raise InputError(source, "does not exist")
        if source.is_file():
            return source, [source]
        files = sorted(p for p in source.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.name.upper() != "DICOMDIR")
        if not files:
            raise InputError(source, "contains no DICOM files")
        return source, files
    files = [Path(p) for p in folder_or_files]
    if not files:
        raise InputError(None, "an empty list of DICOM files was given")
    for file in files:
        if not file.is_file():
            raise InputError(file, "does not exist" if not file.exists() else "is not a file")
    return files[0], files


def _read(path: Path, *, headers_only: bool) -> Dataset:
    """Read one DICOM file; anything pydicom cannot parse becomes an :class:`InputError`."""
    if not path.is_file():
        raise InputError(path, "does not exist")
    if path.stat().st_size == 0:
        raise InputError(path, "is empty (0 bytes)")
    try:
        return pydicom.dcmread(path, stop_before_pixels=headers_only)
    except Exception as error:
        raise InputError(path, f"is not a readable DICOM file ({type(error).__name__}: {error})") from error


def list_dicom_series(folder_or_files: DicomInput) -> list[DicomSeriesInfo]:
    """The series among a DICOM file, a folder of DICOM files or a list of files, by SeriesInstanceUID.

    Only headers are read. In a folder, hidden files and ``DICOMDIR`` are skipped, subfolders are
    not searched, and every other file must be DICOM.

    Returns:
        One :class:`DicomSeriesInfo` per series, in order of first appearance by file name.
    """
    _, files = _dicom_files(folder_or_files)
    groups: dict[str, list[tuple[Path, Dataset]]] = {}
    for file in files:
        header = _read(file, headers_only=True)
        groups.setdefault(str(header.get("SeriesInstanceUID", "")), []).append((file, header))
    infos = []
    for uid, members in groups.items():
        first = members[0][1]
        infos.append(DicomSeriesInfo(
            series_uid=uid, study_uid=str(first.get("StudyInstanceUID", "")),
            modality=str(first.get("Modality", "")), description=str(first.get("SeriesDescription", "")),
            n_files=len(members), files=tuple(sorted(f for f, _ in members))))
    return infos


def _describe(infos: list[DicomSeriesInfo]) -> str:
    return "; ".join(f"{i.series_uid or '(no SeriesInstanceUID)'} ({i.description or 'no description'}, "
                     f"{i.modality or '?'}, {i.n_files} files)" for i in infos)


def load_dicom_series(folder_or_files: DicomInput, series_uid: str | None = None) -> Volume:
    """Read one DICOM series as a volume with exact RAS+ geometry (see the module docstring).

    Args:
        folder_or_files: a DICOM file, a folder of DICOM files, or a list of DICOM file paths
            (any order).
        series_uid: the SeriesInstanceUID to read; needed when there are several series.

    Returns:
        Volume with ``(columns, rows, slices)`` float32 data after RescaleSlope/Intercept (HU for
        CT), modality from the Modality tag, metadata ``source``, ``study_uid``, ``series_uid``,
        ``series_description`` (when present) and ``units`` (``"HU"`` for CT).

    Raises:
        InputError: unreadable files, several series without ``series_uid``, an unknown
            ``series_uid``, missing pixel data or geometry, inconsistent slices, duplicate or
            missing slice positions.
    """
    source, _ = _dicom_files(folder_or_files)
    infos = list_dicom_series(folder_or_files)
    if series_uid is not None:
        chosen = [i for i in infos if i.series_uid == series_uid]
        if not chosen:
            raise InputError(source, f"has no series {series_uid}; it holds: {_describe(infos)}")
        info = chosen[0]
    elif len(infos) > 1:
        raise InputError(source, f"holds {len(infos)} series: {_describe(infos)}; "
                                 "choose one with series_uid=")
    else:
        info = infos[0]
    slices = [(file, _read(file, headers_only=False)) for file in info.files]
    return _assemble(source, slices)


def _floats(file: Path, ds: Dataset, keyword: str, count: int) -> np.ndarray:
    try:
        values = np.asarray([float(v) for v in ds[keyword].value], dtype=np.float64)
    except Exception as error:
        raise InputError(file, f"has an unreadable {keyword} ({error})") from error
    if values.shape != (count,) or not np.all(np.isfinite(values)):
        raise InputError(file, f"has {keyword} {list(values)}; {count} finite numbers are needed")
    return values


def _slice_geometry(file: Path, ds: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(orientation (6,), spacing [dr, dc], position (3,))`` of one slice, validated."""
    missing = [tag for tag in _GEOMETRY_TAGS if tag not in ds or ds[tag].value in (None, "")]
    if missing:
        raise InputError(file, f"has no geometry ({', '.join(missing)} missing); cannot place it in space")
    orientation = _floats(file, ds, "ImageOrientationPatient", 6)
    spacing = _floats(file, ds, "PixelSpacing", 2)
    position = _floats(file, ds, "ImagePositionPatient", 3)
    x, y = orientation[:3], orientation[3:]
    if (abs(np.linalg.norm(x) - 1) > 1e-3 or abs(np.linalg.norm(y) - 1) > 1e-3 or abs(x @ y) > 1e-3):
        raise InputError(file, f"has ImageOrientationPatient {list(orientation)}, not two orthonormal vectors")
    if np.any(spacing <= 0):
        raise InputError(file, f"has non-positive PixelSpacing {list(spacing)}")
    return orientation, spacing, position


def _pixels(file: Path, ds: Dataset) -> np.ndarray:
    """Rescaled ``(columns, rows)`` float64 pixels of one single-frame slice."""
    if "PixelData" not in ds:
        raise InputError(file, "has no pixel data (not an image)")
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise InputError(file, "is a multi-frame DICOM; only single-frame series are supported")
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise InputError(file, f"has {ds.SamplesPerPixel} samples per pixel; a grey-scale image is needed")
    try:
        pixels = np.asarray(ds.pixel_array, dtype=np.float64)
    except Exception as error:
        raise InputError(file, f"has unreadable pixel data ({type(error).__name__}: {error})") from error
    try:
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
    except (TypeError, ValueError) as error:
        raise InputError(file, f"has an unreadable RescaleSlope or RescaleIntercept ({error})") from error
    if not (np.isfinite(slope) and np.isfinite(intercept)):
        raise InputError(file, f"RescaleSlope {slope} / RescaleIntercept {intercept}: must be finite numbers")
    bad = int(pixels.size - np.count_nonzero(np.isfinite(pixels)))
    if bad:
        raise InputError(file, f"PixelData: holds {bad} non-finite values (NaN or Inf)")
    return (pixels * slope + intercept).T


def _assemble(source: Path, slices: list[tuple[Path, Dataset]]) -> Volume:
    """Sort slices along the normal, check they form a regular grid, and build the volume."""
    geometry = [_slice_geometry(file, ds) for file, ds in slices]
    (file0, ds0), (orientation0, spacing0, _) = slices[0], geometry[0]
    shape0 = (int(ds0.get("Rows", 0)), int(ds0.get("Columns", 0)))
    for (file, ds), (orientation, spacing, _) in zip(slices, geometry):
        if np.max(np.abs(orientation - orientation0)) > 1e-4:
            raise InputError(file, f"has ImageOrientationPatient {list(orientation)}, unlike "
                                   f"{list(orientation0)} in {file0.name}; inconsistent series")
        if np.max(np.abs(spacing - spacing0)) > 1e-4 * max(1.0, float(spacing0.max())):
            raise InputError(file, f"has PixelSpacing {list(spacing)}, unlike {list(spacing0)} in "
                                   f"{file0.name}; inconsistent series")
        shape = (int(ds.get("Rows", 0)), int(ds.get("Columns", 0)))
        if shape != shape0:
            raise InputError(file, f"has {shape[0]} rows x {shape[1]} columns, unlike "
                                   f"{shape0[0]} x {shape0[1]} in {file0.name}; inconsistent series")
    x, y = orientation0[:3], orientation0[3:]
    normal = np.cross(x, y)
    positions = np.array([g[2] for g in geometry])
    order = np.argsort(positions @ normal, kind="stable")
    slices = [slices[o] for o in order]
    positions = positions[order]
    _check_spacing(source, slices, positions, normal)
    n = len(slices)
    if n > 1:
        step = (positions[-1] - positions[0]) / (n - 1)
    else:
        gap = ds0.get("SpacingBetweenSlices") or ds0.get("SliceThickness") or 1.0
        step = normal * abs(float(gap))
    lps = np.eye(4)
    lps[:3, 0] = x * spacing0[1]
    lps[:3, 1] = y * spacing0[0]
    lps[:3, 2] = step
    lps[:3, 3] = positions[0]
    data = np.stack([_pixels(file, ds) for file, ds in slices], axis=-1).astype(np.float32)
    modality = str(ds0.get("Modality", "") or "unknown")
    modality = "unknown" if modality == "OT" else modality
    metadata = {"source": str(source), "modality": modality,
                "study_uid": str(ds0.get("StudyInstanceUID", "")),
                "series_uid": str(ds0.get("SeriesInstanceUID", ""))}
    if ds0.get("SeriesDescription"):
        metadata["series_description"] = str(ds0.SeriesDescription)
    if modality == "CT":
        metadata["units"] = "HU"
    return Volume(data, LPS_FROM_RAS @ lps, modality=modality, metadata=metadata)


def _check_spacing(source: Path, slices: list[tuple[Path, Dataset]], positions: np.ndarray,
                   normal: np.ndarray) -> None:
    """Reject duplicate positions, uneven gaps (missing slices) and positions off one straight line."""
    if len(slices) < 2:
        return
    along = positions @ normal
    gaps = np.diff(along)
    for k, gap in enumerate(gaps):
        if gap < 1e-3:
            raise InputError(source, f"has duplicate slices: {slices[k][0].name} and {slices[k + 1][0].name} "
                                     f"share the position {[round(float(v), 4) for v in positions[k]]} mm")
    median = float(np.median(gaps))
    tolerance = max(0.01 * median, 0.01)
    for k, gap in enumerate(gaps):
        if abs(gap - median) > tolerance:
            raise InputError(source, f"has uneven slice spacing: the position jumps by {gap:.4g} mm from "
                             f"{along[k]:.4f} mm ({slices[k][0].name}) to {along[k + 1]:.4f} mm "
                             f"({slices[k + 1][0].name}), median gap {median:.4g} mm (missing slices?)")
    step = (positions[-1] - positions[0]) / (len(slices) - 1)
    expected = positions[0] + np.arange(len(slices))[:, None] * step
    off = np.linalg.norm(positions - expected, axis=1)
    if off.max() > tolerance:
        k = int(off.argmax())
        raise InputError(source, f"has an irregular series: {slices[k][0].name} lies {off[k]:.4g} mm off the "
                                 "straight line through the other slice positions")


# ----------------------------------------------------------------------------------------- writing


def _ds(values: np.ndarray | float) -> list[DSfloat] | DSfloat:
    """Decimal-string values (16 characters at most) as DICOM stores them."""
    if np.ndim(values) == 0:
        return DSfloat(float(values), auto_format=True)
    return [DSfloat(float(v), auto_format=True) for v in np.ravel(values)]


def _rescale(data: np.ndarray, modality: str) -> tuple[float, float]:
    """``(slope, intercept)`` for int16 storage: HU with intercept -1024 for CT, else the full range."""
    lo, hi = float(data.min()), float(data.max())
    if modality == "CT" and lo >= -32768 - 1024 + 1 and hi <= 32767 - 1024 - 1:
        return 1.0, -1024.0
    if hi == lo:
        return 1.0, float(_ds(lo))
    slope = float(_ds((hi - lo) / 65000.0))
    intercept = float(_ds((hi + lo) / 2.0))
    return slope, intercept


def save_dicom_series(volume: Volume, folder: str | os.PathLike, *, series_description: str = "medprior",
                      patient_id: str = "MEDPRIOR", study_uid: str | None = None,
                      series_uid: str | None = None, shuffle_names_seed: int | None = None) -> Path:
    """Write ``volume`` as a folder of single-frame DICOM files, one per k-slice, atomically.

    CT volumes are CT Image Storage with pixels in HU (RescaleIntercept -1024, slope 1), MR are MR
    Image Storage, PT are PET Image Storage, anything else Secondary Capture (Modality ``"OT"`` for
    ``"unknown"``); non-CT pixel values are scaled to span the int16 range. Stored values
    round-trip to within half a rescale step (0.5 HU for CT). Geometry tags are derived exactly
    from the RAS affine (oblique grids included); a grid whose k axis points against
    ``X x Y`` is written in reverse slice order, so it reads back with ``k`` flipped but the same
    world positions.

    Args:
        volume: the image; its affine's i and j columns must be perpendicular.
        folder: target folder (replaced as a whole if it exists).
        series_description: SeriesDescription.
        patient_id: PatientID and PatientName.
        study_uid: StudyInstanceUID; generated when ``None``.
        series_uid: SeriesInstanceUID; generated when ``None``.
        shuffle_names_seed: when given, files get random names written in random order, instead
            of ``IM0000.dcm``, ``IM0001.dcm``, ... in slice order.

    Returns:
        ``folder`` as a :class:`~pathlib.Path`.
    """
    folder = Path(folder)
    require_finite_output(folder, volume.data, "the image")
    lps = LPS_FROM_RAS @ volume.affine
    dc, dr = np.linalg.norm(lps[:3, 0]), np.linalg.norm(lps[:3, 1])
    x, y = lps[:3, 0] / dc, lps[:3, 1] / dr
    if abs(x @ y) > 1e-6:
        raise InputError(folder, "cannot hold this volume: its affine's i and j axes are not perpendicular")
    normal = np.cross(x, y)
    step, origin = lps[:3, 2], lps[:3, 3]
    n_slices = volume.shape[2]
    ks = np.arange(n_slices) if step @ normal > 0 else np.arange(n_slices)[::-1]
    modality = volume.modality if volume.modality != "unknown" else "OT"
    slope, intercept = _rescale(volume.data, modality)
    stored = np.clip(np.rint((volume.data.astype(np.float64) - intercept) / slope), -32768, 32767).astype("<i2")
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    frame_uid = generate_uid()
    sop_class = _SOP_CLASSES.get(modality, SecondaryCaptureImageStorage)
    orientation = _ds(np.concatenate([x, y]))
    if shuffle_names_seed is None:
        names, write_order = [f"IM{k:04d}.dcm" for k in range(n_slices)], range(n_slices)
    else:
        rng = np.random.default_rng(shuffle_names_seed)
        tokens = rng.choice(10**8, size=n_slices, replace=False)
        names, write_order = [f"{t:08d}.dcm" for t in tokens], rng.permutation(n_slices)
    with atomic_path(folder, directory=True) as temporary:
        for number in write_order:
            k = int(ks[number])
            position = origin + k * step
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = sop_class
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
            ds = FileDataset(names[number], {}, file_meta=meta, preamble=b"\0" * 128)
            ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
            ds.PatientName, ds.PatientID = patient_id, patient_id
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
            ds.Modality, ds.SeriesDescription = modality, series_description[:64]
            ds.SeriesNumber, ds.InstanceNumber = 1, int(number) + 1
            ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
            ds.ImagePositionPatient = _ds(position)
            ds.ImageOrientationPatient = orientation
            ds.PixelSpacing = _ds(np.array([dr, dc]))
            ds.SliceThickness = _ds(abs(step @ normal))
            ds.SpacingBetweenSlices = _ds(abs(step @ normal))
            ds.SliceLocation = _ds(position @ normal)
            ds.Rows, ds.Columns = volume.shape[1], volume.shape[0]
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            ds.RescaleSlope, ds.RescaleIntercept = _ds(slope), _ds(intercept)
            if modality == "CT":
                ds.RescaleType = "HU"
            ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
            pydicom.dcmwrite(temporary / names[number], ds, enforce_file_format=True)
    return folder
