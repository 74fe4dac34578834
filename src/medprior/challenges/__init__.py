"""Challenge data layouts: case naming, writers and finders for BraTS and HECKTOR folders."""

from __future__ import annotations

from medprior.challenges.brats import BRATS_CONTRASTS, brats_case_id, find_brats_cases, write_brats_case
from medprior.challenges.hecktor import find_hecktor_cases, hecktor_case_id, write_hecktor_case

__all__ = [
    "BRATS_CONTRASTS",
    "brats_case_id",
    "find_brats_cases",
    "find_hecktor_cases",
    "hecktor_case_id",
    "write_brats_case",
    "write_hecktor_case",
]
