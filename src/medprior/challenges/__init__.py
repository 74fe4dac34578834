"""Challenge data layouts: case naming, writers and finders for BraTS and HECKTOR folders, and the
HECKTOR submission (one label file per case on its CT grid)."""

from __future__ import annotations

from medprior.challenges.brats import BRATS_CONTRASTS, brats_case_id, find_brats_cases, write_brats_case
from medprior.challenges.hecktor import (HECKTOR_LABELS, check_hecktor_submission, find_hecktor_cases,
                                         hecktor_case_id, write_hecktor_case, write_hecktor_prediction)
from medprior.challenges.hecktor_split import split_cases, split_hecktor_folder

__all__ = [
    "BRATS_CONTRASTS",
    "HECKTOR_LABELS",
    "brats_case_id",
    "check_hecktor_submission",
    "find_brats_cases",
    "find_hecktor_cases",
    "hecktor_case_id",
    "split_cases",
    "split_hecktor_folder",
    "write_brats_case",
    "write_hecktor_case",
    "write_hecktor_prediction",
]
