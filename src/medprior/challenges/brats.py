"""BraTS 2023+ (BraTS-GLI) folder layout.

One folder per case, every image a NIfTI on the same 1 mm grid::

    ROOT/BraTS-GLI-00200-000/BraTS-GLI-00200-000-{t1n,t1c,t2w,t2f,seg}.nii.gz

Labels in ``seg``: 1 necrotic core (NCR), 2 edema (ED), 3 enhancing tumour (ET).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medprior.errors import InputError
from medprior.io import Volume, atomic_path, write_sidecar
from medprior.io.nifti import save_nifti

BRATS_CONTRASTS = ("t1n", "t1c", "t2w", "t2f")
_CASE_PATTERN = re.compile(r"^BraTS-GLI-(\d{5})-(\d{3})$")


def brats_case_id(subject: int, timepoint: int = 0) -> str:
    """``BraTS-GLI-{subject:05d}-{timepoint:03d}``, the challenge's case name."""
    if not 0 <= subject < 100_000 or not 0 <= timepoint < 1000:
        raise ValueError(f"BraTS ids need 0 <= subject < 100000 and 0 <= timepoint < 1000, got {subject}, {timepoint}")
    return f"BraTS-GLI-{subject:05d}-{timepoint:03d}"


def write_brats_case(images: Mapping[str, Volume], root: str | os.PathLike, case_id: str,
                     *, provenance: Mapping[str, Any] | None = None) -> Path:
    """Write one case folder atomically; returns it.

    Args:
        images: ``{"t1n", "t1c", "t2w", "t2f"}`` and optionally ``"seg"`` -> Volume, one grid.
        root: dataset folder; the case goes to ``root/case_id/``, its sidecar to ``root/case_id.json``.
        case_id: a name from :func:`brats_case_id`.
        provenance: config and seeds recorded in the sidecar.
    """
    if not _CASE_PATTERN.match(case_id):
        raise ValueError(f"{case_id!r} is not a BraTS-GLI case id")
    unknown = set(images) - {*BRATS_CONTRASTS, "seg"}
    if unknown:
        raise ValueError(f"unknown BraTS image names {sorted(unknown)}; allowed: {BRATS_CONTRASTS + ('seg',)}")
    case_dir = Path(root) / case_id
    with atomic_path(case_dir, directory=True) as temporary:
        for name, volume in images.items():
            save_nifti(volume, temporary / f"{case_id}-{name}.nii.gz")
    write_sidecar(case_dir, **dict(provenance or {}))
    return case_dir


def find_brats_cases(root: str | os.PathLike) -> dict[str, dict[str, Path]]:
    """Map each case id under ``root`` to its files ``{name: path}``; a malformed case raises InputError."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "is not a folder")
    cases = {}
    for case_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not _CASE_PATTERN.match(case_dir.name):
            raise InputError(case_dir, "is not a BraTS case folder (expected BraTS-GLI-NNNNN-NNN)")
        files = {name: case_dir / f"{case_dir.name}-{name}.nii.gz" for name in (*BRATS_CONTRASTS, "seg")}
        cases[case_dir.name] = {name: path for name, path in files.items() if path.is_file()}
    return cases
