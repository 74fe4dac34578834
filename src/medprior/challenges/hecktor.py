"""HECKTOR 2022 folder layout (head-and-neck PET/CT).

::

    ROOT/imagesTr/<CENTER>-<NNN>__CT.nii.gz   CT in HU
    ROOT/imagesTr/<CENTER>-<NNN>__PT.nii.gz   PET in SUV, on its own (coarser) grid
    ROOT/labelsTr/<CENTER>-<NNN>.nii.gz       labels on the CT grid: 1 GTVp, 2 GTVn
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from medprior.errors import InputError
from medprior.io import Volume, atomic_path, write_sidecar
from medprior.io.nifti import save_nifti

_CASE_PATTERN = re.compile(r"^[A-Z]{2,6}-\d{3}$")


def hecktor_case_id(center: str, number: int) -> str:
    """``<CENTER>-<NNN>``, e.g. ``CHUM-001``."""
    case_id = f"{center}-{number:03d}"
    if not _CASE_PATTERN.match(case_id):
        raise ValueError(f"HECKTOR ids are 2-6 capital letters and a number below 1000, got {case_id!r}")
    return case_id


def hecktor_paths(root: str | os.PathLike, case_id: str) -> dict[str, Path]:
    """The three files of a case: ``{"ct", "pet", "label"}`` -> path."""
    root = Path(root)
    return {
        "ct": root / "imagesTr" / f"{case_id}__CT.nii.gz",
        "pet": root / "imagesTr" / f"{case_id}__PT.nii.gz",
        "label": root / "labelsTr" / f"{case_id}.nii.gz",
    }


def write_hecktor_case(ct: Volume, pet: Volume, label: Volume, root: str | os.PathLike, case_id: str,
                       *, provenance: Mapping[str, Any] | None = None) -> dict[str, Path]:
    """Write a case's CT, PET and label files; all three appear together or none does.

    Args:
        ct: CT in HU. pet: PET in SUV on its own grid. label: 0/1/2 on the CT grid.
        root: dataset folder; the sidecar goes to ``root/case_id.json``.
    """
    if not _CASE_PATTERN.match(case_id):
        raise ValueError(f"{case_id!r} is not a HECKTOR case id")
    if label.shape != ct.shape:
        raise ValueError(f"the label grid {label.shape} must be the CT grid {ct.shape}")
    paths = hecktor_paths(root, case_id)
    with ExitStack() as stack:
        for key, volume in (("ct", ct), ("pet", pet), ("label", label)):
            save_nifti(volume, stack.enter_context(atomic_path(paths[key])))
    write_sidecar(Path(root) / case_id, **dict(provenance or {}))
    return paths


def find_hecktor_cases(root: str | os.PathLike) -> dict[str, dict[str, Path]]:
    """Map each case id with a CT in ``root/imagesTr`` to its existing files."""
    images = Path(root) / "imagesTr"
    if not images.is_dir():
        raise InputError(root, "has no imagesTr folder (not a HECKTOR dataset)")
    cases = {}
    for ct in sorted(images.glob("*__CT.nii.gz")):
        case_id = ct.name.removesuffix("__CT.nii.gz")
        cases[case_id] = {key: p for key, p in hecktor_paths(root, case_id).items() if p.is_file()}
    return cases
