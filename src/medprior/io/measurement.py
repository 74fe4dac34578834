"""Measurement files: one self-describing HDF5 file per simulated or acquired scan.

Layout (``format = "medprior-measurement"``, ``version = 1``)::

    /            attrs: format, version, medprior_version, modality ("CT" | "MR"),
                        geometry (JSON: operator name and every parameter needed to rebuild it),
                        metadata (JSON: setting name, seeds, noise level, source file, units),
                        image_shape (I, J, K), affine (4x4, RAS+ mm) of the image grid
    /data        sinogram (K, n_angles, n_detectors) float32 line integrals, or
                 k-space (K, C, H, W) complex64
    /arrays/...  further arrays the geometry refers to (sampling mask, angles, ...)

A reconstruction rebuilds the operator from ``geometry`` and ``arrays`` and writes its result on
the image grid given by ``image_shape`` and ``affine``, so it carries the original geometry.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

import medprior
from medprior.errors import InputError
from medprior.io.atomic import atomic_path

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


def write_measurement(measurement: Measurement, path: str | os.PathLike) -> Path:
    """Write ``measurement`` to an HDF5 file, atomically."""
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
    """Read a measurement file; anything missing or foreign raises InputError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "does not exist" if not path.exists() else "is not a file")
    try:
        with h5py.File(path, "r") as file:
            if file.attrs.get("format") != FORMAT:
                raise InputError(path, f"is not a medprior measurement file (no format={FORMAT!r} attribute)")
            if int(file.attrs["version"]) > VERSION:
                raise InputError(path, f"has format version {int(file.attrs['version'])}; "
                                       f"this medprior reads up to {VERSION}")
            return Measurement(
                modality=str(file.attrs["modality"]),
                data=file["data"][()],
                geometry=json.loads(file.attrs["geometry"]),
                image_shape=tuple(int(n) for n in file.attrs["image_shape"]),
                affine=np.asarray(file.attrs["affine"], np.float64),
                arrays={name: dataset[()] for name, dataset in file["arrays"].items()},
                metadata=json.loads(file.attrs["metadata"]),
            )
    except InputError:
        raise
    except (OSError, KeyError, ValueError) as error:
        raise InputError(path, f"cannot be read as a measurement file ({type(error).__name__}: {error})") from None
