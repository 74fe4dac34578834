"""Missing-contrast synthesis end to end on tiny priors: model folders, submission layout, geometry, errors."""

import json
import shutil

import numpy as np
import pytest
import torch
import yaml

from medprior.challenges import BRATS_CONTRASTS, brats_case_id, write_brats_case
from medprior.challenges.brasyn import check_submission, drop_contrasts
from medprior.cli import main
from medprior.errors import InputError
from medprior.io import load_nifti, save_nifti
from medprior.phantoms import brain_mri
from medprior.tasks import datasets, priors, synthesis

TINY = {
    "kind": "wavelet3d", "image_size": [16, 16, 8],
    "normalization": {"kind": "percentile", "low": 0.5, "high": 99.5},
    "network": {"channels": [8, 16], "attention_levels": [False, False], "num_head_channels": 8, "norm_num_groups": 8},
    "schedule": {"kind": "linear", "steps": 50},
    "training": {"steps": 3, "batch_size": 2, "checkpoint_every": 3, "log_every": 1},
}
SHAPE = (48, 48, 30)


def train(tmp_path, name, contrast, conditions, out, objective="denoising"):
    config = {"name": name, **TINY, "data": {"phantom": {"generator": "brain_mri", "seeds": [7], "size": list(SHAPE)},
                                             "contrast": contrast, "conditions": conditions},
              "training": {**TINY["training"], "objective": objective}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return priors.train_from_config(path, out, workdir=tmp_path / f"{name}.work", device="cpu", progress=False)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A one-for-any model and a one-per-contrast model (the t2f prior missing from the latter)."""
    tmp = tmp_path_factory.mktemp("models")
    unified = train(tmp, "tiny_any", "any", [], tmp / "unified")
    per_contrast = tmp / "per_contrast"
    for target in ("t1n", "t1c", "t2w"):
        train(tmp, f"tiny_{target}", target, [c for c in BRATS_CONTRASTS if c != target], per_contrast / target)
    return unified, per_contrast


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """Two phantom cases with one contrast dropped each (seed 3 drops t2w and t1c)."""
    tmp = tmp_path_factory.mktemp("split")
    for subject in (30, 31):
        case = brain_mri(subject, shape=SHAPE)
        write_brats_case({**case.contrasts, "seg": case.seg}, tmp / "full", brats_case_id(subject))
    dropped = drop_contrasts(tmp / "full", tmp / "inputs", tmp / "truth", seed=3)
    assert set(dropped.values()) <= {"t1n", "t1c", "t2w"}, dropped
    return tmp / "inputs", dropped


def test_both_model_kinds_write_a_checked_submission_on_the_cases_grid(models, split, tmp_path):
    inputs, dropped = split
    for model in models:
        out = tmp_path / model.name
        written = synthesis.synthesize(model, inputs, out, steps=3, sampler="ddim", progress=False)
        assert [p.name for p in written] == sorted(f"{case}-{target}.nii.gz" for case, target in dropped.items())
        assert check_submission(out, inputs)
        for case, target in dropped.items():
            volume = load_nifti(out / f"{case}-{target}.nii.gz")
            present = [load_nifti(inputs / case / f"{case}-{c}.nii.gz") for c in BRATS_CONTRASTS if c != target]
            np.testing.assert_allclose(volume.affine, present[0].affine, atol=1e-5)
            brain = np.any([v.data != 0 for v in present], axis=0)
            assert volume.data[~brain].max() == 0 and 0 <= volume.data.min() and volume.data.max() <= 1
            assert volume.data[brain].std() > 0
            # outside the 16 x 16 x 8 network grid the synthesis is 0 (crop_or_pad's exact inverse)
            assert volume.data[:16].max() == 0 and volume.data[:, :, :11].max() == 0


def test_same_seed_same_synthesis(models, split, tmp_path):
    inputs, dropped = split
    case, target = next(iter(dropped.items()))
    files = {c: inputs / case / f"{case}-{c}.nii.gz" for c in BRATS_CONTRASTS if c != target}
    model = synthesis.SynthesisModel(models[0], device="cpu")
    first = synthesis.synthesize_case(model, files, steps=3, seed=4)[1].data
    np.testing.assert_array_equal(first, synthesis.synthesize_case(model, files, steps=3, seed=4)[1].data)
    assert not np.array_equal(first, synthesis.synthesize_case(model, files, steps=3, seed=5)[1].data)


def test_a_case_stored_in_another_orientation_gets_the_same_synthesis(models, split, tmp_path):
    """The prior sees the case in its training orientation (LPS phantoms) however the files are stored."""
    inputs, dropped = split
    case, target = next(iter(dropped.items()))
    files = {c: inputs / case / f"{case}-{c}.nii.gz" for c in BRATS_CONTRASTS if c != target}
    ras = {}
    for c, path in files.items():
        ras[c] = save_nifti(load_nifti(path).to_canonical(), tmp_path / f"{case}-{c}.nii.gz")
    model = synthesis.SynthesisModel(models[0], device="cpu")
    lps_result = synthesis.synthesize_case(model, files, steps=3, seed=2)[1]
    ras_result = synthesis.synthesize_case(model, ras, steps=3, seed=2)[1]
    assert ras_result.orientation == "RAS"
    np.testing.assert_allclose(ras_result.to_orientation("LPS").data, lps_result.data, atol=1e-6)


def test_a_regression_model_is_deterministic_and_ignores_the_sampler(split, tmp_path):
    inputs, dropped = split
    model_dir = train(tmp_path, "tiny_regression", "any", [], tmp_path / "regression", objective="regression")
    first = synthesis.synthesize(model_dir, inputs, tmp_path / "a", steps=3, seed=0, progress=False)
    second = synthesis.synthesize(model_dir, inputs, tmp_path / "b", steps=7, sampler="ddim", seed=9, progress=False)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(load_nifti(a).data, load_nifti(b).data)
    assert synthesis.SynthesisModel(model_dir).regression("t2w")


def test_histogram_mean_by_hand():
    present = [np.array([[[2.0, 0.0, 1.0, 5.0]]]), np.array([[[4.0, 2.0, 3.0, 5.0]]])]  # mean 3, 1, 2, 5
    brain = np.array([[[True, True, True, False]]])
    out = synthesis.histogram_mean(present, brain, np.linspace(10, 20, synthesis.QUANTILE_LEVELS))
    np.testing.assert_allclose(out, [[[20.0, 10.0, 15.0, 0.0]]])


def test_histogram_mean_baseline_end_to_end(split, tmp_path):
    inputs, dropped = split
    config = {"name": "tiny_any", **TINY, "data": {"phantom": {"generator": "brain_mri", "seeds": [7], "size": list(SHAPE)},
                                                   "contrast": "any"}}
    path = tmp_path / "any.yaml"
    path.write_text(yaml.safe_dump(config))
    model_dir = synthesis.fit_histogram_mean(path, tmp_path / "mean")
    quantiles = synthesis.SynthesisModel(model_dir).histograms
    assert sorted(quantiles) == sorted(BRATS_CONTRASTS) and all(q[0] >= 0 and q[-1] <= 1 for q in quantiles.values())
    written = synthesis.synthesize(model_dir, inputs, tmp_path / "submission", progress=False)
    for file, (case, target) in zip(written, sorted(dropped.items())):
        volume = load_nifti(file).data
        brain = volume > 0
        # in-brain intensities follow the reference quantiles (up to the voxels at the reference's 0)
        assert abs(np.median(volume[brain]) - quantiles[target][500]) < 0.05
    (model_dir / synthesis.HISTOGRAM_FILE).write_text('{"quantiles": {"t1n": [1, 0]}}')
    with pytest.raises(InputError, match="non-decreasing"):
        synthesis.SynthesisModel(model_dir)
    with pytest.raises(InputError, match="contrast `any`"):
        synthesis.fit_histogram_mean(write_any_free_config(tmp_path), tmp_path / "mean2")


def write_any_free_config(tmp_path):
    config = {"name": "tiny_t2w", **TINY, "data": {"phantom": {"generator": "brain_mri", "seeds": [7], "size": list(SHAPE)},
                                                   "contrast": "t2w", "conditions": ["t1n"]}}
    path = tmp_path / "t2w.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_unified_model_blanks_the_target_channel(models):
    model = synthesis.SynthesisModel(models[0], device="cpu")
    present = {c: np.full((2, 2, 2), i + 1.0, dtype=np.float32) for i, c in enumerate(BRATS_CONTRASTS) if c != "t2w"}
    conditions = model.conditions("t2w", {c: torch.from_numpy(v) for c, v in present.items()})
    assert conditions.shape == (1, 4, 2, 2, 2)
    assert conditions[0, :, 0, 0, 0].tolist() == [1.0, 2.0, datasets.MISSING_VALUE, 4.0]


def test_bad_models_and_cases_name_the_problem(models, split, tmp_path):
    inputs, _ = split
    with pytest.raises(InputError, match="not a synthesis model"):
        synthesis.synthesize(tmp_path, inputs, tmp_path / "out", steps=2, progress=False)
    # a case lacking t2f, which the per-contrast model has no prior for: nothing is written
    cases = tmp_path / "cases"
    shutil.copytree(inputs.parent / "full", cases)
    case = sorted(p for p in cases.iterdir() if p.is_dir())[0]
    for name in ("t2f", "seg"):
        (case / f"{case.name}-{name}.nii.gz").unlink()
    shutil.rmtree(sorted(p for p in cases.iterdir() if p.is_dir())[1])
    with pytest.raises(InputError, match="no such prior folder"):
        synthesis.synthesize(models[1], cases, tmp_path / "out", steps=2, progress=False)
    (case / f"{case.name}-t1n.nii.gz").unlink()
    with pytest.raises(InputError, match="lacks exactly one"):
        synthesis.synthesize(models[0], cases, tmp_path / "out", steps=2, progress=False)
    with pytest.raises(InputError, match="sampler"):
        synthesis.synthesize(models[0], inputs, tmp_path / "out", steps=2, sampler="euler", progress=False)
    assert not (tmp_path / "out").exists()


def test_the_brasyn_commands_end_to_end(split, tmp_path, capsys):
    """split -> histogram-mean model -> synthesize -> check-submission -> evaluate synthesis; broken inputs exit 2."""
    full = split[0].parent / "full"
    config = {"name": "tiny_any", **TINY, "data": {"phantom": {"generator": "brain_mri", "seeds": [7], "size": list(SHAPE)},
                                                   "contrast": "any"}}
    (tmp_path / "any.yaml").write_text(yaml.safe_dump(config))
    inputs, truth, model, out = (tmp_path / name for name in ("inputs", "truth", "model", "submission"))
    assert main(["brasyn-split", "--cases", str(full), "--out", str(inputs), "--truth", str(truth), "--seed", "3"]) == 0
    assert main(["fit-histogram-mean", "--config", str(tmp_path / "any.yaml"), "--out", str(model)]) == 0
    assert main(["synthesize", "--model", str(model), "--input", str(inputs), "--output", str(out)]) == 0
    assert main(["check-submission", "--submission", str(out), "--cases", str(inputs)]) == 0
    assert "valid BraSyn submission (2 cases)" in capsys.readouterr().out
    scores = tmp_path / "scores.json"
    assert main(["evaluate", "synthesis", "--submission", str(out), "--truth", str(truth), "--out", str(scores)]) == 0
    report = json.loads(scores.read_text())
    assert len(report["rows"]) == 2 and 0 < report["mean"]["ssim_brain"] < 1
    case = report["rows"][0]["case"]
    figure = tmp_path / "case.png"
    assert main(["synthesis-figure", "--case", case, "--cases", str(inputs), "--truth", str(truth),
                 "--submission", f"mean={out}", f"again={out}", "--out", str(figure)]) == 0
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000

    capsys.readouterr()
    assert main(["synthesis-figure", "--case", case, "--cases", str(inputs), "--truth", str(truth),
                 "--submission", str(out), "--out", str(tmp_path / "bad.png")]) == 2
    assert main(["synthesis-figure", "--case", "BraTS-GLI-09999-000", "--cases", str(inputs), "--truth", str(truth),
                 "--submission", f"mean={out}", "--out", str(tmp_path / "bad.png")]) == 2
    errors = capsys.readouterr().err
    assert "NAME=FOLDER" in errors and "no case BraTS-GLI-09999-000" in errors
    assert not (tmp_path / "bad.png").exists()
    next(out.iterdir()).rename(out / "extra.nii.gz")
    assert main(["check-submission", "--submission", str(out), "--cases", str(inputs)]) == 2
    assert main(["evaluate", "synthesis", "--submission", str(out), "--out", str(tmp_path / "x.json")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("medprior: error:") for line in errors)
    assert "extra.nii.gz" in errors[0] and "--truth" in errors[1]
    assert not (tmp_path / "x.json").exists()
