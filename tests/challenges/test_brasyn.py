"""BraSyn: the seeded split, the submission checks (one bad file at a time), scores against hand values."""

from __future__ import annotations

import filecmp
import json
import math
import shutil

import nibabel as nib
import numpy as np
import pytest

from medprior.challenges import brats_case_id, find_brats_cases, write_brats_case
from medprior.challenges.brasyn import (DROP_ORDER, brasyn_scores, check_submission, drop_contrasts,
                                        evaluate_synthesis, missing_contrast)
from medprior.errors import InputError
from medprior.io import Volume
from medprior.metrics import mse, ssim3d
from medprior.phantoms.brain import brain_mri

CONTRASTS = ("t1n", "t1c", "t2w", "t2f")
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _write_cases(root, n, shape=(6, 5, 4), seg=True):
    """``n`` complete cases; contrast ``c`` of case ``i`` is the constant ``10 * i + index(c) + 1``."""
    for i in range(n):
        images = {c: Volume(np.full(shape, 10.0 * i + k + 1, np.float32), LPS, "MR") for k, c in enumerate(CONTRASTS)}
        if seg:
            images["seg"] = Volume(np.zeros(shape, np.float32), LPS, "SEG")
        write_brats_case(images, root, brats_case_id(i))
    return root


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------ the split

def test_split_follows_the_documented_draw_and_copies_bytes(tmp_path):
    cases = _write_cases(tmp_path / "cases", 6)
    dropped = drop_contrasts(cases, tmp_path / "out", tmp_path / "truth", seed=7)
    draws = np.random.default_rng(7).integers(0, 4, size=6)
    assert dropped == {brats_case_id(i): DROP_ORDER[d] for i, d in enumerate(draws)}
    assert json.loads((tmp_path / "out" / "missing.json").read_text()) == dropped
    assert json.loads((tmp_path / "out.provenance.json").read_text())["seeds"] == {"drop_contrasts": 7}
    for case, contrast in dropped.items():
        kept = sorted(f"{case}-{c}.nii.gz" for c in CONTRASTS if c != contrast)
        assert _names(tmp_path / "out" / case) == kept
        assert _names(tmp_path / "truth" / case) == sorted([f"{case}-{contrast}.nii.gz", f"{case}-seg.nii.gz"])
        for name in kept + [f"{case}-{contrast}.nii.gz"]:
            copy = tmp_path / ("truth" if name.endswith(f"-{contrast}.nii.gz") else "out") / case / name
            assert filecmp.cmp(cases / case / name, copy, shallow=False)


def test_split_is_reproducible_and_depends_on_the_seed(tmp_path):
    cases = _write_cases(tmp_path / "cases", 6)
    first = drop_contrasts(cases, tmp_path / "a", tmp_path / "ta", seed=3)
    again = drop_contrasts(cases, tmp_path / "b", tmp_path / "tb", seed=3)
    other = drop_contrasts(cases, tmp_path / "c", tmp_path / "tc", seed=4)
    assert first == again and first != other
    assert (tmp_path / "a" / "missing.json").read_bytes() == (tmp_path / "b" / "missing.json").read_bytes()


def test_every_contrast_can_be_dropped(tmp_path):
    cases = _write_cases(tmp_path / "cases", 1)
    case = brats_case_id(0)
    seen = set()
    for seed in range(40):
        out, truth = tmp_path / f"out{seed}", tmp_path / f"truth{seed}"
        contrast = drop_contrasts(cases, out, truth, seed=seed)[case]
        seen.add(contrast)
        assert missing_contrast(find_brats_cases(out)[case]) == contrast
        truth_image = nib.load(truth / case / f"{case}-{contrast}.nii.gz")
        assert truth_image.get_fdata().max() == CONTRASTS.index(contrast) + 1
        if seen == set(CONTRASTS):
            break
    assert seen == set(CONTRASTS)


def test_bad_split_inputs_write_nothing(tmp_path):
    cases = _write_cases(tmp_path / "cases", 2)
    (cases / brats_case_id(1) / f"{brats_case_id(1)}-t2w.nii.gz").unlink()
    with pytest.raises(InputError, match=f"{brats_case_id(1)}: lacks t2w"):
        drop_contrasts(cases, tmp_path / "out", tmp_path / "truth", seed=0)
    assert not (tmp_path / "out").exists() and not (tmp_path / "truth").exists()

    cases = _write_cases(tmp_path / "complete", 1)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("earlier work")
    with pytest.raises(InputError, match="used: already exists and is not empty"):
        drop_contrasts(cases, tmp_path / "used", tmp_path / "truth", seed=0)
    assert (tmp_path / "used" / "keep.txt").read_text() == "earlier work"
    with pytest.raises(InputError, match="overlaps"):
        drop_contrasts(cases, tmp_path / "same", tmp_path / "same", seed=0)
    with pytest.raises(InputError, match="seed"):
        drop_contrasts(cases, tmp_path / "out", tmp_path / "truth", seed=-1)
    assert not (tmp_path / "out").exists() and not (tmp_path / "same").exists()


def test_missing_contrast_needs_exactly_one_gap(tmp_path):
    folder = tmp_path / "BraTS-GLI-00001-000"
    files = {c: folder / f"{folder.name}-{c}.nii.gz" for c in (*CONTRASTS, "seg")}
    assert missing_contrast({k: v for k, v in files.items() if k != "t2f"}) == "t2f"
    with pytest.raises(InputError, match=f"{folder.name}: has contrasts t1n, t1c, t2w, t2f"):
        missing_contrast(files)
    with pytest.raises(InputError, match=f"{folder.name}: has contrasts t1n, t1c;"):
        missing_contrast({k: v for k, v in files.items() if k not in ("t2w", "t2f")})


# ------------------------------------------------------------------ the submission layout

@pytest.fixture
def split(tmp_path):
    """Three cases split with seed 1, and a correct submission: the truth copied under the right names."""
    dropped = drop_contrasts(_write_cases(tmp_path / "cases", 3), tmp_path / "out", tmp_path / "truth", seed=1)
    submission = tmp_path / "submission"
    submission.mkdir()
    for case, contrast in dropped.items():
        name = f"{case}-{contrast}.nii.gz"
        shutil.copyfile(tmp_path / "truth" / case / name, submission / name)
    return tmp_path / "out", submission, dropped


def test_correct_submission_passes(split):
    cases_root, submission, dropped = split
    assert check_submission(submission, cases_root) == [submission / f"{c}-{m}.nii.gz" for c, m in dropped.items()]
    (submission / ".snakemake_timestamp").write_text("")  # hidden files (a workflow's markers) are not entries
    assert len(check_submission(submission, cases_root)) == len(dropped)


def _save(path, data, affine=LPS):
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), affine), path)


def _first(dropped):
    case = sorted(dropped)[0]
    return case, dropped[case], f"{case}-{dropped[case]}.nii.gz"


def _extra_file(folder, dropped):
    (folder / "notes.txt").write_text("hi")
    return "notes.txt: is not part of a BraSyn submission"


def _missing_file(folder, dropped):
    name = _first(dropped)[2]
    (folder / name).unlink()
    return f"{name}: is missing"


def _subfolder(folder, dropped):
    (folder / "extra").mkdir()
    return "extra: is a folder"


def _wrong_contrast(folder, dropped):
    case, contrast, name = _first(dropped)
    other = next(c for c in CONTRASTS if c != contrast)
    (folder / name).rename(folder / f"{case}-{other}.nii.gz")
    return f"{case}-{other}.nii.gz: is {other}, but case {case} lacks {contrast}"


def _wrong_shape(folder, dropped):
    name = _first(dropped)[2]
    _save(folder / name, np.ones((6, 5, 5)))
    return rf"{name}: has shape \(6, 5, 5\)"


def _wrong_affine(folder, dropped):
    name = _first(dropped)[2]
    shifted = LPS.copy()
    shifted[0, 3] = 0.01
    _save(folder / name, np.ones((6, 5, 4)), shifted)
    return f"{name}: has an affine 0.01 mm off"


def _four_d(folder, dropped):
    name = _first(dropped)[2]
    _save(folder / name, np.ones((6, 5, 4, 2)))
    return rf"{name}: has shape \(6, 5, 4, 2\); a 3D image"


def _nans(folder, dropped):
    name = _first(dropped)[2]
    data = np.ones((6, 5, 4))
    data[2, 2, 2] = np.nan
    _save(folder / name, data)
    return f"{name}: contains 1 non-finite voxels"


@pytest.mark.parametrize("spoil", [_extra_file, _missing_file, _subfolder, _wrong_contrast, _wrong_shape,
                                   _wrong_affine, _four_d, _nans])
def test_bad_submission_is_named(split, spoil):
    cases_root, submission, dropped = split
    message = spoil(submission, dropped)
    with pytest.raises(InputError, match=message) as error:
        check_submission(submission, cases_root)
    assert "\n" not in str(error.value)


def test_affine_tolerance_is_a_tenth_micrometre(split):
    cases_root, submission, dropped = split
    shifted = LPS.copy()
    shifted[2, 3] = 5e-5
    _save(submission / _first(dropped)[2], np.ones((6, 5, 4)), shifted)
    assert len(check_submission(submission, cases_root)) == 3


# ------------------------------------------------------------------ scores

def test_mse_against_hand_values():
    reference, estimate = np.zeros((2, 2, 1)), np.array([[[1.0], [2.0]], [[0.0], [-3.0]]])
    assert mse(reference, estimate) == pytest.approx((1 + 4 + 9) / 4)
    assert mse(reference, estimate, mask=estimate < 0) == pytest.approx(9.0)


M = 600.0  # the 99.5th percentile of the constructed truth (a plateau of 40 voxels)


@pytest.fixture
def constructed():
    """Truth (16, 16, 12): 0 outside a 12 x 12 x 8 brain (1152 voxels); integer intensities 100-500,
    a plateau of 40 voxels at 600 (so percentiles 0.5/99.5 are 0 and 600 exactly) and a
    4 x 4 x 3 tumour (48 voxels) of 200-400."""
    rng = np.random.default_rng(5)
    truth, seg = np.zeros((16, 16, 12)), np.zeros((16, 16, 12))
    truth[2:14, 2:14, 2:10] = rng.integers(100, 501, (12, 12, 8))
    truth[2:12, 2:6, 9] = M
    seg[5:9, 5:9, 4:7] = 2
    truth[seg > 0] = rng.integers(200, 401, 48)
    return truth, seg


def test_offset_inside_the_tumour_only_costs_there(constructed):
    truth, seg = constructed
    tumour = seg > 0
    estimate = truth + 50.0 * tumour
    scores = brasyn_scores(truth, estimate, seg)
    assert scores["mse_tumour"] == pytest.approx((50 / M) ** 2, rel=1e-12)
    assert scores["psnr_tumour"] == pytest.approx(20 * math.log10(M / 50), rel=1e-12)
    assert scores["mse_brain"] == pytest.approx((50 / M) ** 2 * 48 / 1152, rel=1e-12)
    assert scores["mse_healthy"] == 0.0 and scores["psnr_healthy"] == math.inf
    assert scores["ssim_healthy"] == pytest.approx(1.0, abs=1e-12)
    # SSIM of the tumour-masked normalised images over the tumour, data range = their larger peak-to-peak
    masked_truth, masked_estimate = truth / M * tumour, estimate / M * tumour
    expected = ssim3d(masked_truth, masked_estimate, np.ptp(masked_estimate), mask=tumour)
    assert scores["ssim_tumour"] == pytest.approx(expected, rel=1e-12) and 0.0 < expected < 0.999


def test_normalisation_ignores_scale_and_clips_outliers(constructed):
    truth, seg = constructed
    scaled = brasyn_scores(truth, 3.7 * truth, seg)
    for region in ("brain", "tumour", "healthy"):
        assert scaled[f"ssim_{region}"] == pytest.approx(1.0, abs=1e-12)
        assert scaled[f"mse_{region}"] == pytest.approx(0.0, abs=1e-25)
    spiked = truth.copy()
    spiked[3, 3, 3] = 1e6  # one healthy voxel; clipped to the 99.5th percentile (600), i.e. 1 after scaling
    scores = brasyn_scores(truth, spiked, seg)
    error = (1.0 - truth[3, 3, 3] / M) ** 2
    assert scores["mse_healthy"] == pytest.approx(error / (1152 - 48), rel=1e-12)
    assert scores["mse_brain"] == pytest.approx(error / 1152, rel=1e-12)
    assert scores["mse_tumour"] == 0.0
    # percentiles below 0 are raised to 0 (BraSyn's strictlyPositive): a shift by -100 is not undone
    brain = truth != 0
    expected = np.mean((np.clip(truth - 100.0, 0.0, M - 100.0) / (M - 100.0) - truth / M)[brain] ** 2)
    assert brasyn_scores(truth, truth - 100.0, seg)["mse_brain"] == pytest.approx(expected, rel=1e-12)


def _write_truth_case(root, subject, truth, seg, contrast="t2f"):
    images = {contrast: Volume(truth.astype(np.float32), LPS, "MR"), "seg": Volume(seg.astype(np.float32), LPS, "SEG")}
    write_brats_case(images, root, brats_case_id(subject))


def test_evaluation_rows_and_means_from_files(tmp_path, constructed):
    truth, seg = constructed
    _write_truth_case(tmp_path / "truth", 0, truth, seg)
    _write_truth_case(tmp_path / "truth", 1, truth, np.zeros_like(seg))  # no tumour labels
    submission = tmp_path / "submission"
    submission.mkdir()
    _save(submission / f"{brats_case_id(0)}-t2f.nii.gz", truth + 50.0 * (seg > 0))
    _save(submission / f"{brats_case_id(1)}-t2f.nii.gz", truth)
    result = evaluate_synthesis(submission, tmp_path / "truth")
    first, second = result["rows"]
    assert (first["case"], first["contrast"], second["case"]) == (brats_case_id(0), "t2f", brats_case_id(1))
    assert first["mse_tumour"] == pytest.approx((50 / M) ** 2, rel=1e-6)
    assert math.isnan(second["mse_tumour"]) and second["mse_brain"] == 0.0
    assert result["mean"]["mse_tumour"] == pytest.approx((50 / M) ** 2, rel=1e-6)  # the NaN case is left out
    assert result["mean"]["mse_brain"] == pytest.approx((50 / M) ** 2 * 48 / 1152 / 2, rel=1e-6)
    assert result["mean"]["psnr_healthy"] == math.inf


def test_perfect_synthesis_of_phantoms(tmp_path):
    for subject in (0, 1):
        case = brain_mri(seed=subject, shape=(48, 48, 30))
        write_brats_case({**case.contrasts, "seg": case.seg}, tmp_path / "cases", brats_case_id(subject))
    dropped = drop_contrasts(tmp_path / "cases", tmp_path / "out", tmp_path / "truth", seed=2)
    submission = tmp_path / "submission"
    submission.mkdir()
    for case, contrast in dropped.items():
        name = f"{case}-{contrast}.nii.gz"
        shutil.copyfile(tmp_path / "truth" / case / name, submission / name)
    for cases_root in (tmp_path / "out", None):
        result = evaluate_synthesis(submission, tmp_path / "truth", cases_root=cases_root)
        assert [row["case"] for row in result["rows"]] == sorted(dropped)
        for scores in (*result["rows"], result["mean"]):
            for region in ("brain", "tumour", "healthy"):
                assert scores[f"psnr_{region}"] == math.inf and scores[f"mse_{region}"] == 0.0
                assert scores[f"ssim_{region}"] == pytest.approx(1.0, abs=1e-12)


def test_evaluation_rejects_mismatched_truth(tmp_path, split):
    cases_root, submission, dropped = split
    case, contrast, _ = _first(dropped)
    seg = tmp_path / "truth" / case / f"{case}-seg.nii.gz"
    # truth without seg
    seg.rename(tmp_path / "seg.nii.gz")
    with pytest.raises(InputError, match=f"{case}: has no seg file"):
        evaluate_synthesis(submission, tmp_path / "truth", cases_root=cases_root)
    (tmp_path / "seg.nii.gz").rename(seg)
    # truth of another contrast than the one the case lacks
    other = next(c for c in CONTRASTS if c != contrast)
    truth_file = tmp_path / "truth" / case / f"{case}-{contrast}.nii.gz"
    truth_file.rename(truth_file.with_name(f"{case}-{other}.nii.gz"))
    with pytest.raises(InputError, match=f"{case}: holds {other}, but .* lacks {contrast}"):
        evaluate_synthesis(submission, tmp_path / "truth", cases_root=cases_root)
