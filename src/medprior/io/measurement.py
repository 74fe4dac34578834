"""Measurement files: one self-describing HDF5 file per simulated or acquired scan.

Layout (``format = "medprior-measurement"``, ``version = 1``)::

    /            attrs: format, version, medprior_version, modality ("CT" | "MR"),
                        geometry (JSON: operator name and every parameter needed to rebuild it),
                        metadata (JSON: setting name, seeds, noise level, source file, units),
                        image_shape (I, J, K), affine (4x4, RAS+ mm) of the image grid
    /data        sinogram (K, n_angles, n_detectors) float32 line integrals, or
                 k-space (K, C, H, W) complex64
    /arrays/...  further arrays the geometry refers to (sampling mask, angles, ...); MRI may carry
                 coil_maps (K, C, H, W) complex64, coil sensitivities every reconstruction uses
                 (``medprior simulate`` stores the ESPIRiT maps; without them they are estimated)

A reconstruction rebuilds the operator from ``geometry`` and ``arrays`` and writes its result on
the image grid given by ``image_shape`` and ``affine``, so it carries the original geometry.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

import medprior
from medprior.checks import count_nonfinite
from medprior.errors import InputError, MedpriorError
from medprior.io.atomic import atomic_path
from medprior.io.hdf5 import json_attribute, read_hdf5

FORMAT = "medprior-measurement"
VERSION = 1


@dataclass(frozen=True, eq=False)
class Measurement:
    """A scan's raw data with everything needed to reconstruct it.

    Args:
        modality: ``"CT"`` or ``"MR"``.
        data: sinogram ``(K, n_angles, n_detectors)`` float32, or k-space ``(K, C, H, W)`` complex64.
        geometry: JSON-able operator description, e.g. ``{"operator": "ParallelBeamCT", ...}``.
        image_shape: ``(I, J, K)`` of the image grid.
        affine: ``(4, 4)`` RAS+ voxel-to-world matrix of the image grid (mm).
        arrays: named arrays the geometry refers to (``"mask"``, ``"angles_deg"``, ...).
        metadata: setting name, seeds, noise level, source, units.
    """

    modality: str
    data: np.ndarray
    geometry: dict[str, Any]
    image_shape: tuple[int, int, int]
    affine: np.ndarray
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


OPERATOR_MODALITIES = {"ParallelBeamCT": "CT", "CartesianMRI": "MR"}
"""The operators a measurement's ``geometry`` may name, with the modality each belongs to."""
ATTRIBUTES = ("modality", "geometry", "image_shape", "affine", "metadata")
_PIXEL_TOLERANCE = 1e-3  # relative: geometry pixel_size_mm against the affine's in-plane voxel size


def check_measurement(measurement: Measurement, source: str | os.PathLike | None) -> None:
    """Check that a measurement is complete, finite and consistent with its own geometry.

    The geometry must describe the data: the modality its operator, the attribute ``image_shape``
    its ``geometry.image_shape``; a CT sinogram ``(K, n_angles, n_detectors)`` real with one view
    per angle of ``arrays/angles_deg`` and ``geometry.n_detectors`` bins covering the image; MRI
    k-space ``(K, coils, H, W)`` complex with ``geometry.coils`` coils and a ``arrays/mask`` of the
    image's lines. The affine must be a finite, invertible 4x4 whose in-plane voxel size is the
    CT ``geometry.pixel_size_mm``; data and arrays must be finite.

    Raises:
        InputError: ``source`` (the file) and the key at fault, in one line.
    """

    def fail(key: str, problem: str) -> None:
        raise InputError(source, f"{key}: {problem}")

    if measurement.modality not in ("CT", "MR"):
        fail("modality", f"is {measurement.modality!r}; expected 'CT' or 'MR'")
    shape = tuple(measurement.image_shape)
    if len(shape) != 3 or not all(_is_count(n) for n in shape):
        fail("image_shape", f"is {list(shape)}; expected three positive integers (I, J, K)")
    affine = np.asarray(measurement.affine)
    if affine.shape != (4, 4) or affine.dtype.kind not in "fiu":
        fail("affine", f"has shape {affine.shape}; expected a 4x4 matrix of numbers")
    if not np.isfinite(affine).all():
        fail("affine", "holds NaN or Inf")
    if abs(np.linalg.det(affine[:3, :3].astype(np.float64))) < 1e-12:
        fail("affine", "is singular (its 3x3 part has determinant 0): the image grid has no valid geometry")
    if not isinstance(measurement.metadata, dict):
        fail("metadata", f"is {type(measurement.metadata).__name__}; expected a JSON object")
    geometry = measurement.geometry
    if not isinstance(geometry, dict):
        fail("geometry", f"is {type(geometry).__name__}; expected a JSON object")
    operator = geometry.get("operator")
    if operator not in OPERATOR_MODALITIES:
        fail("geometry.operator", f"is {operator!r}; expected one of {sorted(OPERATOR_MODALITIES)}")
    if OPERATOR_MODALITIES[operator] != measurement.modality:
        fail("geometry.operator", f"{operator} is a {OPERATOR_MODALITIES[operator]} operator, but the file's "
                                  f"modality is {measurement.modality}")
    plane = geometry.get("image_shape")
    if not isinstance(plane, list) or len(plane) != 2 or not all(_is_count(n) for n in plane):
        fail("geometry.image_shape", f"is {plane!r}; expected two positive integers (H, W)")
    if tuple(plane) != shape[:2]:
        fail("image_shape", f"is {list(shape)}, but geometry.image_shape is {plane}: the in-plane grid must agree")
    data = np.asarray(measurement.data)
    for name, array in measurement.arrays.items():
        if np.asarray(array).dtype.kind not in "biufc":
            fail(f"arrays/{name}", f"has dtype {np.asarray(array).dtype}; expected numbers")
        bad = count_nonfinite(array)
        if bad:
            fail(f"arrays/{name}", f"holds {bad} non-finite values (NaN or Inf)")
    if operator == "ParallelBeamCT":
        _check_ct(measurement, data, shape, affine, fail)
    else:
        _check_mri(measurement, data, shape, fail)
    bad = count_nonfinite(data)
    if bad:
        fail("data", f"holds {bad} non-finite values (NaN or Inf)")


def _check_ct(measurement: Measurement, data: np.ndarray, shape: tuple[int, ...], affine: np.ndarray, fail) -> None:
    from medprior.physics.ct_parallel import default_n_detectors  # here: the physics package imports torch

    geometry = measurement.geometry
    for key in ("pixel_size_mm", "detector_spacing"):
        value = geometry.get(key)
        if not _is_positive_number(value):
            fail(f"geometry.{key}", f"is {value!r}; expected a finite number > 0")
    n_detectors = geometry.get("n_detectors")
    if not _is_count(n_detectors):
        fail("geometry.n_detectors", f"is {n_detectors!r}; expected a positive integer")
    needed = default_n_detectors(shape[:2], float(geometry["detector_spacing"]))
    if n_detectors < needed:
        fail("geometry.n_detectors", f"is {n_detectors}, too few bins of {geometry['detector_spacing']:g} pixels to "
                                     f"see a {shape[0]} x {shape[1]} image (it needs {needed})")
    spacing = np.linalg.norm(affine[:3, :2].astype(np.float64), axis=0)
    pixel = float(geometry["pixel_size_mm"])
    if np.any(np.abs(spacing - pixel) > _PIXEL_TOLERANCE * pixel):
        fail("geometry.pixel_size_mm", f"is {pixel:g} mm, but the affine's in-plane voxels are "
                                       f"{spacing[0]:.4g} x {spacing[1]:.4g} mm")
    if "angles_deg" not in measurement.arrays:
        fail("arrays/angles_deg", "is missing; a CT measurement needs its projection angles")
    angles = np.asarray(measurement.arrays["angles_deg"])
    if angles.ndim != 1 or angles.size == 0 or angles.dtype.kind not in "iuf":
        fail("arrays/angles_deg", f"has shape {angles.shape} and dtype {angles.dtype}; expected a non-empty 1D "
                                  "array of angles in degrees")
    if data.dtype.kind != "f":
        fail("data", f"has dtype {data.dtype}; a CT sinogram is real floating point")
    expected = (shape[2], angles.size, n_detectors)
    if data.shape != expected:
        fail("data", f"has shape {data.shape}, but the geometry needs (K, n_angles, n_detectors) = {expected} "
                     f"({shape[2]} slices, {angles.size} angles in arrays/angles_deg, "
                     f"geometry.n_detectors {n_detectors})")


def _check_mri(measurement: Measurement, data: np.ndarray, shape: tuple[int, ...], fail) -> None:
    geometry = measurement.geometry
    coils = geometry.get("coils")
    if not _is_count(coils):
        fail("geometry.coils", f"is {coils!r}; expected a positive integer")
    lines = geometry.get("calibration_lines")
    if not _is_count(lines) or lines > shape[1]:
        fail("geometry.calibration_lines", f"is {lines!r}; expected an integer in 1..{shape[1]} (the image width)")
    if "mask" not in measurement.arrays:
        fail("arrays/mask", "is missing; an MRI measurement needs its sampling mask")
    mask = np.asarray(measurement.arrays["mask"])
    if mask.shape not in ((shape[1],), shape[:2]):
        fail("arrays/mask", f"has shape {mask.shape}; expected ({shape[1]},) phase-encode lines or {shape[:2]}")
    if mask.dtype.kind not in "biuf" or not np.isin(mask, (0, 1)).all():
        fail("arrays/mask", "must hold only 0/1 (or booleans)")
    if not mask.any():
        fail("arrays/mask", "samples nothing")
    if data.dtype.kind != "c":
        fail("data", f"has dtype {data.dtype}; MRI k-space is complex")
    expected = (shape[2], coils, shape[0], shape[1])
    if data.shape != expected:
        fail("data", f"has shape {data.shape}, but the geometry needs (K, coils, H, W) = {expected} "
                     f"({shape[2]} slices, geometry.coils {coils}, image_shape {shape[0]} x {shape[1]})")
    if "coil_maps" in measurement.arrays:
        maps = np.asarray(measurement.arrays["coil_maps"])
        if maps.shape != data.shape or maps.dtype.kind != "c":
            fail("arrays/coil_maps", f"has shape {maps.shape} and dtype {maps.dtype}; expected complex coil "
                                     f"sensitivities of the k-space's shape {data.shape} (K, coils, H, W)")


def _is_count(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def _is_positive_number(value: Any) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def write_measurement(measurement: Measurement, path: str | os.PathLike) -> Path:
    """Write ``measurement`` to an HDF5 file, atomically.

    Raises:
        MedpriorError: the data hold NaN or Inf (nothing is written; an earlier file stays).
        InputError: naming ``path`` and the key, for a measurement :func:`check_measurement` refuses.
    """
    bad = count_nonfinite(measurement.data)
    if bad:
        raise MedpriorError(f"{path}: not written: the measurement data hold {bad} non-finite values (NaN or Inf)")
    check_measurement(measurement, path)
    with atomic_path(path) as temporary:
        with h5py.File(temporary, "w") as file:
            file.attrs.update({
                "format": FORMAT, "version": VERSION, "medprior_version": medprior.__version__,
                "modality": measurement.modality, "geometry": json.dumps(measurement.geometry),
                "metadata": json.dumps(measurement.metadata, default=str),
                "image_shape": np.asarray(measurement.image_shape, np.int64),
                "affine": np.asarray(measurement.affine, np.float64),
            })
            file.create_dataset("data", data=measurement.data, compression="gzip", compression_opts=1)
            group = file.create_group("arrays")
            for name, array in measurement.arrays.items():
                group.create_dataset(name, data=np.asarray(array))
    return Path(path)


def read_measurement(path: str | os.PathLike) -> Measurement:
    """Read a measurement file and check it (:func:`check_measurement`).

    Raises:
        InputError: one line naming the file and the key: a missing or foreign file, a missing
            attribute, dataset or array, non-finite data, or a geometry that disagrees with the data.
    """
    path = Path(path)
    measurement = read_hdf5(path, _read, "cannot be read as a measurement file")
    check_measurement(measurement, path)
    dtype = np.float32 if measurement.modality == "CT" else np.complex64  # what the operators work in
    return replace(measurement, data=measurement.data.astype(dtype, copy=False))


def _read(file: h5py.File, path: Path) -> Measurement:
    if file.attrs.get("format") != FORMAT:
        raise InputError(path, f"is not a medprior measurement file (no format={FORMAT!r} attribute)")
    try:
        version = int(file.attrs["version"])
    except (KeyError, TypeError, ValueError):
        raise InputError(path, "version: attribute missing or not an integer") from None
    if version > VERSION:
        raise InputError(path, f"has format version {version}; this medprior reads up to {VERSION}")
    missing = [key for key in ATTRIBUTES if key not in file.attrs]
    if missing:
        raise InputError(path, f"{', '.join(missing)}: attribute(s) missing; a measurement file has "
                               f"{', '.join(ATTRIBUTES)}")
    geometry, metadata = (json_attribute(file, key, path) for key in ("geometry", "metadata"))
    image_shape = np.asarray(file.attrs["image_shape"])
    if image_shape.shape != (3,) or image_shape.dtype.kind not in "iu":
        raise InputError(path, f"image_shape: is {image_shape.tolist()}; expected three positive integers (I, J, K)")
    affine = np.asarray(file.attrs["affine"])
    if affine.shape != (4, 4) or affine.dtype.kind not in "fiu":
        raise InputError(path, f"affine: has shape {affine.shape} and dtype {affine.dtype}; expected a 4x4 matrix")
    if not isinstance(file.get("data"), h5py.Dataset):
        raise InputError(path, "data: dataset missing; it holds the sinogram or k-space")
    if not isinstance(file.get("arrays"), h5py.Group):
        raise InputError(path, "arrays: group missing; it holds the arrays the geometry names (mask, angles)")
    arrays = {}
    for name, item in file["arrays"].items():
        if not isinstance(item, h5py.Dataset):
            raise InputError(path, f"arrays/{name}: is not a dataset")
        arrays[name] = item[()]
    modality = file.attrs["modality"]
    return Measurement(
        modality=modality.decode() if isinstance(modality, bytes) else str(modality),
        data=file["data"][()],
        geometry=geometry,
        image_shape=tuple(int(n) for n in image_shape),
        affine=affine.astype(np.float64),
        arrays=arrays,
        metadata=metadata,
    )
