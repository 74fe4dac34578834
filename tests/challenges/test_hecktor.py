"""HECKTOR: both dataset layouts, the prediction writer's geometry against hand-computed positions,
the submission checker (one bad file at a time) and its command line."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from medprior.challenges import (check_hecktor_submission, find_hecktor_cases, write_hecktor_case,
                                 write_hecktor_prediction)
from medprior.cli import build_parser, main
from medprior.errors import InputError
from medprior.io import Volume, load_nifti

CT_SHAPE, PET_SHAPE = (8, 8, 6), (4, 4, 3)
# Oblique on purpose: i runs along -y (0.8 mm), j along +x (0.9 mm), k along +z (2.5 mm); every
# entry is exact in float32, so the header stores it without rounding.
CT_AFFINE = np.array([[0.0, 0.9, 0.0, 10.5],
                      [-0.8, 0.0, 0.0, -20.25],
                      [0.0, 0.0, 2.5, 30.125],
                      [0.0, 0.0, 0.0, 1.0]])
PET_AFFINE = np.diag([-2.0, -2.0, 4.0, 1.0])


def _nifti(path, data, affine=CT_AFFINE, *, sform_code=1, qform_code=1):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(np.asarray(data), affine)
    image.set_sform(affine, code=sform_code)
    image.set_qform(affine, code=qform_code)
    nib.save(image, path)
    return path


def _flat_case(folder, case_id, *, label=True, pet=True, ct=True):
    files = {}
    if ct:
        files["ct"] = _nifti(folder / f"{case_id}__CT.nii.gz", np.full(CT_SHAPE, -100, np.int16))
    if pet:
        files["pet"] = _nifti(folder / f"{case_id}__PT.nii.gz", np.ones(PET_SHAPE, np.float32), PET_AFFINE)
    if label:
        files["label"] = _nifti(folder / f"{case_id}.nii.gz", np.zeros(CT_SHAPE, np.uint8))
    return files


def _volume(shape, affine, value, modality):
    return Volume(np.full(shape, value, np.float32), affine, modality)


def _split_case(root, case_id):
    return write_hecktor_case(_volume(CT_SHAPE, CT_AFFINE, -100.0, "CT"), _volume(PET_SHAPE, PET_AFFINE, 1.0, "PT"),
                              _volume(CT_SHAPE, CT_AFFINE, 0.0, "SEG"), root, case_id)


# ------------------------------------------------------------------ finding cases

def test_split_layout_with_labels(tmp_path):
    paths = {case: _split_case(tmp_path, case) for case in ("MDA-002", "CHUM-001")}
    found = find_hecktor_cases(tmp_path)
    assert list(found) == ["CHUM-001", "MDA-002"]  # sorted by id
    assert found == paths
    assert find_hecktor_cases(tmp_path, split="train") == paths


def test_split_test_layout_without_labels(tmp_path):
    files = _flat_case(tmp_path / "imagesTs", "CHUP-010", label=False)
    assert find_hecktor_cases(tmp_path) == {"CHUP-010": files}
    _nifti(tmp_path / "labelsTs" / "CHUP-010.nii.gz", np.zeros(CT_SHAPE, np.uint8))
    assert find_hecktor_cases(tmp_path)["CHUP-010"]["label"] == tmp_path / "labelsTs" / "CHUP-010.nii.gz"


def test_flat_layout_labels_optional(tmp_path):
    first = _flat_case(tmp_path, "HGJ-001")
    second = _flat_case(tmp_path, "HGJ-002", label=False)
    (tmp_path / "HGJ-001.provenance.json").write_text("{}")  # other files are not the finder's business
    (tmp_path / "clinical_info.csv").write_text("PatientID\n")
    (tmp_path / ".DS_Store").write_text("")
    assert find_hecktor_cases(tmp_path) == {"HGJ-001": first, "HGJ-002": second}
    assert set(first) == {"ct", "pet", "label"} and set(second) == {"ct", "pet"}


def test_both_splits_need_a_choice(tmp_path):
    train = _split_case(tmp_path, "CHUM-001")
    test = _flat_case(tmp_path / "imagesTs", "CHUM-050", label=False)
    with pytest.raises(InputError, match="holds both imagesTr and imagesTs"):
        find_hecktor_cases(tmp_path)
    assert find_hecktor_cases(tmp_path, split="train") == {"CHUM-001": train}
    assert find_hecktor_cases(tmp_path, split="test") == {"CHUM-050": test}
    assert find_hecktor_cases(tmp_path / "imagesTs") == {"CHUM-050": test}  # the folder itself is flat


@pytest.mark.parametrize("where", ["flat", "imagesTr"])
def test_ct_without_pet_is_named(tmp_path, where):
    folder = tmp_path if where == "flat" else tmp_path / "imagesTr"
    _flat_case(folder, "CHUM-001")
    _flat_case(folder, "CHUM-002", pet=False, label=False)
    with pytest.raises(InputError, match=r"CHUM-002__CT\.nii\.gz: has no CHUM-002__PT\.nii\.gz beside it"):
        find_hecktor_cases(tmp_path)


def test_pet_without_ct_is_named(tmp_path):
    _flat_case(tmp_path, "CHUM-003", ct=False, label=False)
    with pytest.raises(InputError, match=r"CHUM-003__PT\.nii\.gz: has no CHUM-003__CT\.nii\.gz"):
        find_hecktor_cases(tmp_path)


def test_folder_without_either_layout(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(InputError, match=r"holds no HECKTOR cases: expected <ID>__CT\.nii\.gz.*imagesTr"):
        find_hecktor_cases(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        find_hecktor_cases(tmp_path / "absent")
    (tmp_path / "empty" / "imagesTr").mkdir(parents=True)
    assert find_hecktor_cases(tmp_path / "empty") == {}


@pytest.mark.parametrize("stray, message", [
    ("labelsTr/CHUM-009.nii.gz", r"CHUM-009\.nii\.gz: is no case's label"),
    ("imagesTr/CHUM-001__MR.nii.gz", r"CHUM-001__MR\.nii\.gz: is not a HECKTOR image name"),
])
def test_files_of_no_case_are_named(tmp_path, stray, message):
    _split_case(tmp_path, "CHUM-001")
    _nifti(tmp_path / stray, np.zeros(CT_SHAPE, np.uint8))
    with pytest.raises(InputError, match=message):
        find_hecktor_cases(tmp_path)


def test_flat_files_beside_a_split_layout(tmp_path):
    _split_case(tmp_path, "CHUM-001")
    _flat_case(tmp_path, "CHUM-002")
    with pytest.raises(InputError, match=r"CHUM-002__CT\.nii\.gz: lies beside imagesTr/"):
        find_hecktor_cases(tmp_path)


# ------------------------------------------------------------------ writing a prediction

def test_prediction_is_on_the_ct_grid(tmp_path):
    ct_path = _nifti(tmp_path / "CHUM-001__CT.nii.gz", np.zeros(CT_SHAPE, np.int16), sform_code=2, qform_code=1)
    label = np.zeros(CT_SHAPE, np.int64)
    label[3, 1, 2], label[0, 7, 5] = 1, 2
    out = write_hecktor_prediction(label, ct_path, tmp_path / "sub" / "CHUM-001.nii.gz")
    assert out == tmp_path / "sub" / "CHUM-001.nii.gz"
    assert sorted(p.name for p in out.parent.iterdir()) == ["CHUM-001.nii.gz"]  # no temporary, no sidecar

    image, ct = nib.load(out), nib.load(ct_path)
    assert image.shape == CT_SHAPE
    assert image.get_data_dtype() == np.uint8 and np.asarray(image.dataobj).dtype == np.uint8
    np.testing.assert_array_equal(np.asarray(image.dataobj), label)
    for field in ("sform_code", "qform_code", "srow_x", "srow_y", "srow_z", "quatern_b", "quatern_c",
                  "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z"):
        np.testing.assert_array_equal(image.header[field], ct.header[field], err_msg=field)
    np.testing.assert_array_equal(image.header["pixdim"][:4], ct.header["pixdim"][:4])
    np.testing.assert_array_equal(image.affine, ct.affine)
    assert image.header.get_zooms() == pytest.approx((0.8, 0.9, 2.5))
    # voxel (3, 1, 2) by hand: x = 0.9 * 1 + 10.5, y = -0.8 * 3 - 20.25, z = 2.5 * 2 + 30.125
    assert image.affine @ [3, 1, 2, 1] == pytest.approx([11.4, -22.65, 35.125, 1.0], abs=1e-5)
    assert image.affine @ [0, 7, 5, 1] == pytest.approx([16.8, -20.25, 42.625, 1.0], abs=1e-5)
    assert load_nifti(out).modality == "SEG"


def test_prediction_from_a_volume(tmp_path):
    ct = _volume(CT_SHAPE, CT_AFFINE, -100.0, "CT")
    label = np.zeros(CT_SHAPE, bool)
    label[2, 2, 2] = True
    out = write_hecktor_prediction(label, ct, tmp_path / "CHUM-001.nii.gz")
    image = nib.load(out)
    assert image.get_data_dtype() == np.uint8
    np.testing.assert_allclose(image.affine, CT_AFFINE, atol=1e-6)
    assert int(image.header["sform_code"]) == int(image.header["qform_code"]) == 1
    assert np.asarray(image.dataobj)[2, 2, 2] == 1 and np.asarray(image.dataobj).sum() == 1


@pytest.mark.parametrize("label, message", [
    (np.full(CT_SHAPE, 0.5), "non-integer"),
    (np.full(CT_SHAPE, 3), r"labels \{3\} not in 0, 1, 2"),
    (np.full(CT_SHAPE, -1.0), r"labels \{-1\} not in 0, 1, 2"),
    (np.full(CT_SHAPE, np.nan), "NaN"),
    (np.zeros((8, 8, 5)), r"shape \(8, 8, 5\) is not the CT grid \(8, 8, 6\)"),
    (np.full(CT_SHAPE, "1"), "real numbers"),
])
def test_prediction_refuses_bad_labels(tmp_path, label, message):
    ct_path = _nifti(tmp_path / "CHUM-001__CT.nii.gz", np.zeros(CT_SHAPE, np.int16))
    with pytest.raises(ValueError, match=message):
        write_hecktor_prediction(label, ct_path, tmp_path / "sub" / "CHUM-001.nii.gz")
    assert not (tmp_path / "sub").exists()


def test_prediction_needs_a_gzipped_nifti_name(tmp_path):
    with pytest.raises(ValueError, match="<ID>.nii.gz"):
        write_hecktor_prediction(np.zeros(CT_SHAPE), _volume(CT_SHAPE, CT_AFFINE, 0.0, "CT"), tmp_path / "a.nii")


# ------------------------------------------------------------------ checking a submission

@pytest.fixture
def submission(tmp_path):
    """Two split-layout cases and a good submission for them, written by write_hecktor_prediction."""
    cases = tmp_path / "cases"
    for case_id in ("CHUM-001", "MDA-002"):
        files = _split_case(cases, case_id)
        label = np.zeros(CT_SHAPE, np.uint8)
        label[2:4, 2:4, 1:3], label[6, 6, 4] = 1, 2
        write_hecktor_prediction(label, files["ct"], tmp_path / "sub" / f"{case_id}.nii.gz")
    return cases, tmp_path / "sub"


def test_good_submission_passes(submission):
    cases, sub = submission
    expected = {"CHUM-001": sub / "CHUM-001.nii.gz", "MDA-002": sub / "MDA-002.nii.gz"}
    assert check_hecktor_submission(sub, cases) == expected
    for hidden in (".snakemake_timestamp", ".DS_Store", "CHUM-001.nii.gz.provenance.json"):
        (sub / hidden).write_text("")
    assert check_hecktor_submission(sub, cases) == expected


def test_flat_cases_and_other_integer_or_whole_float_labels(tmp_path):
    for case_id in ("HGJ-001", "HGJ-002"):
        _flat_case(tmp_path / "cases", case_id, label=False)
    _nifti(tmp_path / "sub" / "HGJ-001.nii.gz", np.full(CT_SHAPE, 2, np.int16))
    _nifti(tmp_path / "sub" / "HGJ-002.nii.gz", np.ones(CT_SHAPE, np.float32))
    assert list(check_hecktor_submission(tmp_path / "sub", tmp_path / "cases")) == ["HGJ-001", "HGJ-002"]


def test_affine_tolerance_is_a_tenth_micrometre(submission):
    cases, sub = submission
    shifted = CT_AFFINE.copy()
    shifted[2, 3] += 5e-5
    _nifti(sub / "CHUM-001.nii.gz", np.zeros(CT_SHAPE, np.uint8), shifted)
    assert len(check_hecktor_submission(sub, cases)) == 2


def _first(sub):
    return sub / "CHUM-001.nii.gz"


def _wrong_shape(sub):
    _nifti(_first(sub), np.zeros((8, 8, 5), np.uint8))
    return r"CHUM-001\.nii\.gz: wrong grid: shape \(8, 8, 5\), CT \(8, 8, 6\)"


def _four_d(sub):
    _nifti(_first(sub), np.zeros((*CT_SHAPE, 2), np.uint8))
    return r"CHUM-001\.nii\.gz: wrong grid: shape \(8, 8, 6, 2\), CT \(8, 8, 6\)"


def _shifted_affine(sub):
    shifted = CT_AFFINE.copy()
    shifted[0, 3] += 0.5
    _nifti(_first(sub), np.zeros(CT_SHAPE, np.uint8), shifted)
    return r"CHUM-001\.nii\.gz: affine differs from the CT by 0\.5 mm"


def _label_three(sub):
    data = np.zeros(CT_SHAPE, np.uint8)
    data[1, 1, 1] = 3
    _nifti(_first(sub), data)
    return r"CHUM-001\.nii\.gz: labels \{3\} not in 0, 1, 2"


def _half_labels(sub):
    _nifti(_first(sub), np.full(CT_SHAPE, 0.5, np.float32))
    return r"CHUM-001\.nii\.gz: holds 384 voxels with non-integer values \(e\.g\. 0\.5\)"


def _nan(sub):
    data = np.zeros(CT_SHAPE, np.float32)
    data[4, 4, 4] = np.nan
    _nifti(_first(sub), data)
    return r"CHUM-001\.nii\.gz: contains 1 non-finite voxels"


def _missing_case(sub):
    _first(sub).unlink()
    return r"CHUM-001\.nii\.gz: is missing: case CHUM-001 of .* has no prediction"


def _extra_file(sub):
    (sub / "notes.txt").write_text("hi")
    return r"notes\.txt: is not part of a HECKTOR submission"


def _unknown_case(sub):
    _nifti(sub / "CHUM-099.nii.gz", np.zeros(CT_SHAPE, np.uint8))
    return r"CHUM-099\.nii\.gz: is not a case of"


def _uncompressed(sub):
    _nifti(sub / "CHUM-001.nii", np.zeros(CT_SHAPE, np.uint8))
    _first(sub).unlink()
    return r"CHUM-001\.nii: is an uncompressed NIfTI; name it CHUM-001\.nii\.gz"


def _subfolder(sub):
    (sub / "extra").mkdir()
    return r"extra: is a folder; a HECKTOR submission is one flat folder"


def _truncated(sub):
    raw = _first(sub).read_bytes()
    _first(sub).write_bytes(raw[: len(raw) // 2])
    return r"CHUM-001\.nii\.gz: cannot be read as NIfTI"


@pytest.mark.parametrize("spoil", [_wrong_shape, _four_d, _shifted_affine, _label_three, _half_labels, _nan,
                                   _missing_case, _extra_file, _unknown_case, _uncompressed, _subfolder, _truncated])
def test_bad_submission_is_named(submission, spoil):
    cases, sub = submission
    message = spoil(sub)
    with pytest.raises(InputError, match=message) as error:
        check_hecktor_submission(sub, cases)
    assert "\n" not in str(error.value)


def test_cases_folder_must_hold_cases(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "cases" / "imagesTs").mkdir(parents=True)
    with pytest.raises(InputError, match="cases: holds no HECKTOR cases"):
        check_hecktor_submission(tmp_path / "sub", tmp_path / "cases")


# ------------------------------------------------------------------ the command line

def test_cli_checks_hecktor_and_defaults_to_brasyn(submission, capsys):
    cases, sub = submission
    argv = ["check-submission", "--challenge", "hecktor", "--submission", str(sub), "--cases", str(cases)]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == f"{sub}: a valid HECKTOR submission (2 cases)"

    _label_three(sub)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("medprior: error: ")
    assert "CHUM-001.nii.gz: labels {3} not in 0, 1, 2" in err

    assert build_parser().parse_args(["check-submission", "--submission", "s", "--cases", "c"]).challenge == "brasyn"
