"""BraTS and HECKTOR layouts: exact file names, atomic cases, finders that reject foreign folders."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from medprior.challenges import (brats_case_id, find_brats_cases, find_hecktor_cases, hecktor_case_id,
                                 write_brats_case, write_hecktor_case)
from medprior.errors import InputError
from medprior.io import Volume


def _volume(shape=(6, 5, 4), spacing=1.0, value=1.0, modality="MR"):
    return Volume(np.full(shape, value, np.float32), np.diag([-spacing, -spacing, spacing, 1.0]), modality)


def test_case_ids():
    assert brats_case_id(200) == "BraTS-GLI-00200-000"
    assert hecktor_case_id("CHUM", 7) == "CHUM-007"
    with pytest.raises(ValueError):
        hecktor_case_id("chum", 7)
    with pytest.raises(ValueError):
        brats_case_id(100_000)


def test_brats_case_files_and_sidecar(tmp_path):
    images = {name: _volume(value=i) for i, name in enumerate(["t1n", "t1c", "t2w", "t2f", "seg"])}
    case_dir = write_brats_case(images, tmp_path, "BraTS-GLI-00200-000", provenance={"seeds": {"phantom": 200}})
    assert sorted(p.name for p in case_dir.iterdir()) == sorted(
        f"BraTS-GLI-00200-000-{n}.nii.gz" for n in ["t1n", "t1c", "t2w", "t2f", "seg"])
    assert nib.load(case_dir / "BraTS-GLI-00200-000-t2w.nii.gz").get_fdata().max() == 2
    sidecar = json.loads((tmp_path / "BraTS-GLI-00200-000.provenance.json").read_text())
    assert sidecar["seeds"] == {"phantom": 200}
    assert find_brats_cases(tmp_path)["BraTS-GLI-00200-000"].keys() == images.keys()


def test_brats_rejects_unknown_names_and_foreign_folders(tmp_path):
    with pytest.raises(ValueError, match="unknown BraTS image names"):
        write_brats_case({"flair": _volume()}, tmp_path, "BraTS-GLI-00001-000")
    assert not (tmp_path / "BraTS-GLI-00001-000").exists()
    (tmp_path / "subject01").mkdir()
    with pytest.raises(InputError, match="subject01"):
        find_brats_cases(tmp_path)


def test_hecktor_case_files(tmp_path):
    ct = _volume((8, 8, 6), 1.0, -100.0, "CT")
    pet = _volume((4, 4, 3), 2.0, 1.0, "PT")
    label = _volume((8, 8, 6), 1.0, 0.0, "SEG")
    paths = write_hecktor_case(ct, pet, label, tmp_path, "SIM-300")
    assert paths["ct"] == tmp_path / "imagesTr" / "SIM-300__CT.nii.gz"
    assert paths["pet"] == tmp_path / "imagesTr" / "SIM-300__PT.nii.gz"
    assert paths["label"] == tmp_path / "labelsTr" / "SIM-300.nii.gz"
    assert nib.load(paths["pet"]).header.get_zooms() == (2.0, 2.0, 2.0)
    assert find_hecktor_cases(tmp_path) == {"SIM-300": paths}
    assert sorted(p.name for p in (tmp_path / "imagesTr").iterdir()) == ["SIM-300__CT.nii.gz", "SIM-300__PT.nii.gz"]


def test_hecktor_label_must_be_on_ct_grid(tmp_path):
    with pytest.raises(ValueError, match="label grid"):
        write_hecktor_case(_volume((8, 8, 6)), _volume(), _volume((4, 4, 3)), tmp_path, "SIM-001")
    assert not (tmp_path / "imagesTr").exists() or not any((tmp_path / "imagesTr").iterdir())
