"""Reading HDF5 files with one-line errors: the opening and the JSON attributes that measurement
files (:mod:`medprior.io.measurement`) and ultrasound files (:mod:`medprior.io.ultrasound`) share."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import h5py

from medprior.errors import InputError

T = TypeVar("T")


def read_hdf5(path: str | os.PathLike, read: Callable[[h5py.File, Path], T], unreadable: str) -> T:
    """``read(file, path)`` on the HDF5 file at ``path``, opened read-only.

    A missing path, a folder, or a file h5py cannot read (truncated, not HDF5; also a KeyError,
    ValueError or TypeError raised by ``read``) is an InputError naming ``path``: ``unreadable``
    followed by the underlying error. InputErrors of ``read`` pass unchanged.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "does not exist" if not path.exists() else "is not a file")
    try:
        with h5py.File(path, "r") as file:
            return read(file, path)
    except InputError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise InputError(path, f"{unreadable} ({type(error).__name__}: {error})") from None


def json_attribute(file: h5py.File, key: str, path: Path) -> dict[str, Any]:
    """The JSON object stored in the file attribute ``key`` (InputError naming ``path`` and ``key`` if it is
    not valid JSON or not an object)."""
    try:
        value = json.loads(file.attrs[key])
    except (TypeError, ValueError) as error:
        raise InputError(path, f"{key}: attribute is not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise InputError(path, f"{key}: attribute is {type(value).__name__}; expected a JSON object")
    return value
