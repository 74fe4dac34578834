"""Numbers and names out of range: refused before any work, with the CLI option or API parameter named.

Every numeric option of the ``medprior`` command exits with status 2 and one stderr line
``medprior: error: <option>: <problem>``; every public entry point raises a
:class:`~medprior.errors.ParameterError` (an InputError, and a ValueError) naming its parameter. The
ranges come from the config schemas, so the config file, the option and the API agree. Requests
whose memory can be estimated up front (views x detectors x slices, n x image size) are refused
when they exceed the free memory. Nothing here trains, samples or reconstructs for real.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from medprior.checks import SEED_MAX, require_schema, schema_property
from medprior.cli import main
from medprior.config import defaults
from medprior.diffusion.schedule import VPSchedule
from medprior.errors import InputError, ParameterError
from medprior.io import save
from medprior.io.measurement import read_measurement
from medprior.phantoms import brain_mri, ct_body
from medprior.physics.operator import LinearOperator
from medprior.solvers import admm_tv, cg_sense
from medprior.solvers.cg import conjugate_gradient
from medprior.solvers.diffusion import dds, mbir, reddiff
from medprior.solvers.problem import InverseProblem
from medprior.tasks import data, priors, recon, recon_report, synthesis
from medprior.methods import RECON_METHODS
from medprior.tasks.recon_methods import check_options

ROOT = Path(__file__).resolve().parent.parent
CT_PRIOR = ROOT / "priors" / "ct_slices"
PRIOR_CONFIG = ROOT / "configs" / "priors" / "ct_slices.yaml"
NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A small CT volume (16 x 16 x 4) and a CT measurement of it (8 views, 2 slices)."""
    folder = tmp_path_factory.mktemp("parameters")
    volume = ct_body(5, shape=(16, 16, 4), spacing=(24.0, 24.0, 80.0))
    save(volume, folder / "ct.nii.gz")
    recon.save_measurement(recon.simulate_ct(volume, views=8, slices=2), folder / "ct.h5", source=folder / "ct.nii.gz")
    (folder / "cases").mkdir()
    return {"volume": folder / "ct.nii.gz", "measurement": folder / "ct.h5", "cases": folder / "cases"}


def refused(capsys, argv: list[str], option: str, words: str = "") -> str:
    """Run ``medprior argv``: exit 2, one stderr line naming ``option`` (and ``words``), no traceback."""
    status = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"medprior: error: {option}: "), lines[0]
    assert words in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------ the CLI names the option

@pytest.mark.parametrize("args, option, words", [
    (["ct", "--size", "0", "0", "0"], "--size", ">= 4"),
    (["ct", "--size", "16", "-16", "16"], "--size", ">= 4"),
    (["brain", "--size", "8", "8", "8"], "--size", ">= 48"),
    (["ct", "--cases", "0"], "--cases", ">= 1"),
    (["ct", "--seed", "-1"], "--seed", ">= 0"),
    (["ct", "--cases", "2", "--seed", str(SEED_MAX)], "--seed", f"<= {SEED_MAX}"),  # the second case's seed
    (["petct", "--center", "sim"], "--center", "must match"),
    (["ct", "--size", "100000", "100000", "100000"], "--size", "GiB"),
])
def test_phantom_options(capsys, tmp_path, args, option, words):
    refused(capsys, ["phantom", *args, "--out", str(tmp_path / "out")], option, words)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("modality, args, option, words", [
    ("ct", ["--size", "0", "0"], "--size", ">= 8"),
    ("ct", ["--size", "-8", "8"], "--size", ">= 8"),
    ("ct", ["--views", "0"], "--views", ">= 1"),
    ("ct", ["--views", "100000000"], "--views", "GiB"),  # 8 GB and more: refused by the estimate
    ("ct", ["--arc", "0"], "--arc", "> 0"),
    ("ct", ["--arc", "nan"], "--arc", "finite"),
    ("ct", ["--start", "inf"], "--start", "finite"),
    ("ct", ["--photons", "inf"], "--photons", "finite"),
    ("ct", ["--photons", "-1"], "--photons", ">= 0"),
    ("ct", ["--photons", "1e16"], "--photons", "<= 1e+15"),
    ("ct", ["--slices", "-1"], "--slices", ">= 0"),
    ("ct", ["--seed", "-3"], "--seed", ">= 0"),
    ("mri", ["--snr-db", "nan"], "--snr-db", "finite"),
    ("mri", ["--acceleration", "0.5"], "--acceleration", ">= 1"),
    ("mri", ["--acceleration", "inf"], "--acceleration", "finite"),
    ("mri", ["--center-fraction", "0"], "--center-fraction", "> 0"),
    ("mri", ["--center-fraction", "1.5"], "--center-fraction", "<= 1"),
    ("mri", ["--coils", "0"], "--coils", ">= 1"),
    ("mri", ["--coils", "100000000"], "--coils", "GiB"),
])
def test_simulate_options(capsys, files, tmp_path, modality, args, option, words):
    refused(capsys, ["simulate", modality, str(files["volume"]), "--out", str(tmp_path / "m.h5"), *args], option,
            words)
    assert not (tmp_path / "m.h5").exists()


@pytest.mark.parametrize("args, option, words", [
    (["--method", "dds", "--param", "steps=0"], "--param steps", ">= 1"),
    (["--method", "dds", "--param", "steps=-3"], "--param steps", ">= 1"),
    (["--method", "dds", "--param", "steps=2.5"], "--param steps", "whole number"),
    (["--method", "dds", "--param", "eta=nan"], "--param eta", "finite"),
    (["--method", "dds", "--param", "eta=2"], "--param eta", "<= 1"),
    (["--method", "mbir", "--param", "rho=0"], "--param rho", "> 0"),
    (["--method", "reddiff", "--param", "lr=-1"], "--param lr", "> 0"),
    (["--method", "dps", "--param", "step_size=inf"], "--param step_size", "finite"),
    (["--method", "dds", "--param", "stepz=3"], "--param stepz", "dds has no parameter"),
    (["--method", "dps", "--param", "lam=1"], "--param lam", "dps has no parameter"),
    (["--method", "dds", "--slice-batch", "0"], "--slice-batch", ">= 1"),
    (["--method", "dds", "--slice-batch", "abc"], "--slice-batch", "auto"),
    (["--method", "dds", "--slice-batch", "1.5"], "--slice-batch", "whole number"),
    (["--method", "dds", "--seed", "-1"], "--seed", ">= 0"),
    (["--method", "tv", "--ct-tv-lambda", "nan"], "--ct-tv-lambda", "finite"),
    (["--method", "tv", "--ct-tv-lambda", "-1"], "--ct-tv-lambda", ">= 0"),
    (["--method", "tv", "--ct-tv-rho", "0"], "--ct-tv-rho", "> 0"),
    (["--method", "tv", "--mri-tv-lambda", "-0.1"], "--mri-tv-lambda", ">= 0"),
    (["--method", "tv", "--tv-iterations", "-2"], "--tv-iterations", ">= 1"),
    (["--method", "tv", "--tv-iterations", "0"], "--tv-iterations", ">= 1"),
    (["--method", "tv", "--tv-cg-iterations", "0"], "--tv-cg-iterations", ">= 1"),
    (["--method", "fbp", "--cg-iterations", "0"], "--cg-iterations", ">= 1"),
])
def test_recon_options(capsys, files, tmp_path, args, option, words):
    # diffusion methods without --prior: the numbers are refused first, before the prior is missed
    refused(capsys, ["recon", str(files["measurement"]), "--out", str(tmp_path / "r.nii.gz"), *args], option, words)
    assert not (tmp_path / "r.nii.gz").exists()


@pytest.mark.parametrize("window", [["5", "1"], ["1", "1"], ["nan", "1"], ["0", "inf"]])
def test_evaluate_and_figure_windows(capsys, files, tmp_path, window):
    volume = str(files["volume"])
    refused(capsys, ["evaluate", "--reference", volume, "--estimate", volume, "--window", *window,
                     "--out", str(tmp_path / "e.json")], "--window")
    refused(capsys, ["figure", volume, volume, "--window", *window, "--out", str(tmp_path / "f.png")], "--window")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("args, option, words", [
    (["--n", "0"], "--n", ">= 1"),
    (["--n", "100000000"], "--n", "GiB"),  # refused by the estimate, before the prior is loaded
    (["--steps", "0"], "--steps", ">= 1"),
    (["--steps", "1001"], "--steps", "1..1000 (the prior's schedule)"),
    (["--eta", "nan"], "--eta", "finite"),
    (["--eta", "1.5"], "--eta", "<= 1"),
    (["--batch-size", "0"], "--batch-size", ">= 1"),
    (["--seed", "-1"], "--seed", ">= 0"),
])
def test_sample_options(capsys, tmp_path, args, option, words):
    refused(capsys, ["sample", "--prior", str(CT_PRIOR), "--out", str(tmp_path / "s.nii.gz"), "--device", "cpu",
                     *args], option, words)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("budget, words", [("0", "> 0"), ("-5", "> 0"), ("nan", "finite"), ("inf", "finite")])
def test_train_prior_time_budget(capsys, tmp_path, budget, words):
    refused(capsys, ["train-prior", "--config", str(PRIOR_CONFIG), "--out", str(tmp_path / "p"), "--device", "cpu",
                     "--time-budget", budget], "--time-budget", words)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("args, option", [(["--steps", "0"], "--steps"), (["--seed", "-1"], "--seed")])
def test_synthesize_options(capsys, files, tmp_path, args, option):
    refused(capsys, ["synthesize", "--model", str(ROOT / "priors" / "brain_cwdm"), "--input", str(files["cases"]),
                     "--output", str(tmp_path / "sub"), "--device", "cpu", *args], option)


def test_brasyn_split_seed(capsys, files, tmp_path):
    refused(capsys, ["brasyn-split", "--cases", str(files["cases"]), "--out", str(tmp_path / "o"),
                     "--truth", str(tmp_path / "t"), "--seed", "-1"], "--seed", ">= 0")


def test_non_numbers_are_usage_errors_in_one_line(capsys, files, tmp_path):
    status = main(["simulate", "ct", str(files["volume"]), "--views", "many", "--out", str(tmp_path / "m.h5")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and "--views" in lines[0]


# ------------------------------------------------------------------ boundary values are accepted

def test_all_slices_and_noiseless_ct_are_accepted(capsys, files, tmp_path):
    out = tmp_path / "m.h5"
    assert main(["simulate", "ct", str(files["volume"]), "--slices", "0", "--photons", "0", "--views", "1",
                 "--seed", "0", "--out", str(out)]) == 0
    measurement = read_measurement(out)
    assert measurement.data.shape[0] == 4  # --slices 0: every slice
    assert measurement.metadata["photons"] == 0 and measurement.metadata["views"] == 1
    noiseless = recon.simulate_ct(ct_body(5, shape=(16, 16, 4), spacing=(24.0, 24.0, 80.0)), views=1)
    np.testing.assert_array_equal(measurement.data, noiseless.data)


def test_fully_sampled_single_coil_mri_is_accepted(files, tmp_path):
    assert main(["simulate", "mri", str(files["volume"]), "--acceleration", "1", "--center-fraction", "1",
                 "--coils", "1", "--size", "8", "8", "--slices", "1", "--out", str(tmp_path / "k.h5")]) == 0


def test_zero_tv_weight_and_one_iteration_are_accepted(files, tmp_path):
    assert main(["recon", str(files["measurement"]), "--method", "tv", "--ct-tv-lambda", "0", "--tv-iterations", "1",
                 "--tv-cg-iterations", "1", "--out", str(tmp_path / "tv.nii.gz")]) == 0


def test_small_phantom_grid_is_accepted(tmp_path):
    assert main(["phantom", "ct", "--size", "4", "4", "4", "--seed", "0", "--format", "nifti",
                 "--out", str(tmp_path / "ct")]) == 0


def test_boundary_parameters_pass_the_checks():
    assert RECON_METHODS.check("dds", {"eta": 0, "lam": 0, "cg_iterations": 0, "steps": 1}) == \
        {"eta": 0.0, "lam": 0.0, "cg_iterations": 0, "steps": 1}
    assert RECON_METHODS.check("mbir", {"eta": 1}) == {"eta": 1.0}
    assert recon.check_simulation("ct", slices=0, photons=0, size=None, seed=0) == \
        {"slices": 0, "photons": 0.0, "size": None, "seed": 0}
    assert recon.check_simulation("mri", center_fraction=1, acceleration=1, coils=1)["center_fraction"] == 1.0
    assert check_options("dds", {"slice_batch": "auto", "steps": 3.0}) == {"slice_batch": "auto", "steps": 3}
    assert priors.check_sampling(n=1, steps=1, sampler="ddim", eta=0, seed=0, batch_size=1) == (1, 1, "ddim", 0.0, 0, 1)


# ------------------------------------------------------------------ one schema for config, option and API

def test_every_default_is_within_its_own_range():
    config = defaults()
    for modality, keys in recon.SIMULATION_KEYS.items():
        section = config["recon"][modality]
        for name, path in keys.items():
            if "[]" in path:
                for setting in section["settings"]:
                    if name in setting:
                        require_schema(name, setting[name], path)
            elif name in section:
                require_schema(name, section[name], path)
    check_options("tv", config["recon"]["solver"])
    for method in RECON_METHODS.names("diffusion"):
        for modality in ("CT", "MR"):
            RECON_METHODS.check(method, RECON_METHODS.parameters(method, modality))
    for kind in ("ct", "brain", "petct"):
        require_schema("size", config["data"][kind]["size"], f"data.{kind}.size")
    require_schema("size", config["synthesis"]["size"], "synthesis.size")


def test_schema_ranges_are_read_as_written():
    assert schema_property("recon.ct.settings[].views")["minimum"] == 1
    assert require_schema("s", [48, 48, 30], "data.brain.size") == [48, 48, 30]
    with pytest.raises(ParameterError, match=r"^s: must be >= 30, got 29$"):
        require_schema("s", [48, 48, 29], "data.brain.size")
    with pytest.raises(ParameterError, match=r"^s: needs 3 values, got 2$"):
        require_schema("s", [48, 48], "data.brain.size")
    assert require_schema("t", None, "priors.time_budget_s") is None
    with pytest.raises(ParameterError, match=r"^t: must be > 0, got 0$"):
        require_schema("t", 0, "priors.time_budget_s")
    with pytest.raises(ParameterError, match="unknown sampler 'euler'"):
        require_schema("sampler", "euler", "synthesis.sampler")


def test_an_mri_override_out_of_range_is_named_by_its_config_key():
    diffusion = defaults()["recon"]["diffusion"]
    diffusion["mri_overrides"]["dds"]["steps"] = 0
    with pytest.raises(InputError, match=r"^recon\.diffusion\.mri_overrides\.dds\.steps: must be >= 1"):
        RECON_METHODS.parameters("dds", "MR", config={"recon": {"diffusion": diffusion}})


# ------------------------------------------------------------------ the API names the parameter

def raises(parameter: str, words: str = ""):
    """pytest.raises for a ParameterError (InputError and ValueError) naming ``parameter`` first."""
    return pytest.raises(ParameterError, match=rf"^{parameter}: .*{words}")


@pytest.fixture(scope="module")
def volume():
    return ct_body(5, shape=(16, 16, 4), spacing=(24.0, 24.0, 80.0))


@pytest.mark.parametrize("kwargs, parameter, words", [
    ({"views": 0}, "views", ">= 1"),
    ({"views": 8.5}, "views", "whole number"),
    ({"views": True}, "views", "whole number"),
    ({"views": 10**8}, "views", "GiB"),
    ({"views": 8, "photons": INF}, "photons", "finite"),
    ({"views": 8, "arc_deg": -90}, "arc_deg", "> 0"),
    ({"views": 8, "start_deg": NAN}, "start_deg", "finite"),
    ({"views": 8, "size": (0, 0)}, "size", ">= 8"),
    ({"views": 8, "size": (16, 16, 16)}, "size", "needs 2 values"),
    ({"views": 8, "slices": -1}, "slices", ">= 0"),
    ({"views": 8, "seed": -1}, "seed", ">= 0"),
])
def test_simulate_ct_names_the_parameter(volume, kwargs, parameter, words):
    with raises(parameter, words):
        recon.simulate_ct(volume, **kwargs)


@pytest.mark.parametrize("kwargs, parameter, words", [
    ({"acceleration": 0.5}, "acceleration", ">= 1"),
    ({"acceleration": NAN}, "acceleration", "finite"),
    ({"acceleration": 4, "snr_db": NAN}, "snr_db", "finite"),
    ({"acceleration": 4, "coils": 0}, "coils", ">= 1"),
    ({"acceleration": 4, "coils": 10**8}, "coils", "GiB"),
    ({"acceleration": 4, "center_fraction": 0}, "center_fraction", "> 0"),
    ({"acceleration": 4, "mask": "spiral"}, "mask", "unknown mask"),
])
def test_simulate_mri_names_the_parameter(volume, kwargs, parameter, words):
    with raises(parameter, words):
        recon.simulate_mri(volume, **kwargs)


def test_reconstructions_name_the_parameter(files, tmp_path):
    measurement = read_measurement(files["measurement"])
    with raises("ct_tv_lambda", "finite"):
        recon.reconstruct(measurement, "tv", ct_tv_lambda=NAN)
    with raises("tv_iterations", ">= 1"):
        recon.reconstruct(measurement, "tv", tv_iterations=-1)
    with raises("lam", "fbp has no parameter"):
        recon.reconstruct(measurement, "fbp", lam=1)
    missing = tmp_path / "missing.h5"  # the options are refused before the file is read
    for options, parameter in [({"steps": 0}, "steps"), ({"slice_batch": 0}, "slice_batch"), ({"seed": -1}, "seed"),
                               ({"eta": NAN}, "eta"), ({"stepz": 1}, "stepz")]:
        with raises(parameter):
            recon.reconstruct_file(missing, "dds", tmp_path / "out.nii.gz", prior=tmp_path / "none", **options)
    with raises("tv_cg_iterations", ">= 1"):
        recon.reconstruct_file(missing, "tv", tmp_path / "out.nii.gz", tv_cg_iterations=0)
    with raises("method", "unknown method"):
        recon.reconstruct_file(missing, "art", tmp_path / "out.nii.gz")
    with raises("eta", "<= 1"):  # before the prior is loaded
        recon.reconstruct(measurement, "dds", prior=tmp_path / "none", eta=1.5)
    with raises("steps", r"1\.\.1000 \(the prior's schedule\)"):  # before the coil maps, start image and prior
        recon.reconstruct(measurement, "dds", prior=CT_PRIOR, steps=5000)
    assert not (tmp_path / "out.nii.gz").exists()


def test_evaluation_windows_name_the_parameter(files, tmp_path):
    volume = str(files["volume"])
    for window in [(1, 1), (2, 1), (NAN, 1), (0, INF), (1,)]:
        with raises("window"):
            recon_report.evaluate_files(volume, volume, tmp_path / "e.json", window=window)
        with raises("window"):
            recon_report.comparison_figure(volume, [volume], tmp_path / "f.png", window=window)
    assert not any(tmp_path.iterdir())


def test_prior_tasks_name_the_parameter(tmp_path):
    missing = tmp_path / "no-prior"  # the numbers are refused before the prior is read
    good = {"n": 4, "steps": 5, "sampler": "ddim", "eta": 0.0, "seed": 0, "batch_size": 2}
    for bad, parameter in [({"n": 0}, "n"), ({"steps": 0}, "steps"), ({"eta": NAN}, "eta"), ({"seed": -1}, "seed"),
                           ({"batch_size": 0}, "batch_size"), ({"sampler": "euler"}, "sampler")]:
        with raises(parameter):
            priors.sample_prior(missing, tmp_path / "s.nii.gz", **{**good, **bad}, device="cpu")
    with raises("n", "GiB"):
        priors.sample_prior(CT_PRIOR, tmp_path / "s.nii.gz", **{**good, "n": 10**8}, device="cpu")
    with raises("steps", r"1\.\.1000 \(the prior's schedule\)"):
        priors.sample_prior(CT_PRIOR, tmp_path / "s.nii.gz", **{**good, "steps": 1001}, device="cpu")
    for budget in (0, -1, NAN):
        with raises("time_budget_s"):
            priors.train_from_config(PRIOR_CONFIG, tmp_path / "p", time_budget_s=budget, device="cpu")
    assert not any(tmp_path.iterdir())


def test_sampling_memory_estimate_grows_with_n_and_the_batch():
    description = {"kind": "slice2d", "image_size": [64, 64], "channels": 1, "network": {"channels": [16, 32, 64]}}
    samples, activations = priors.sampling_bytes(description, 16, 16)
    assert samples == 6 * 4 * 16 * 64 * 64 and activations == 160 * 16 * 64 * 64 * 112
    assert priors.sampling_bytes(description, 32, 16) == (2 * samples, activations)
    priors.require_sampling_memory(description, 16, 50, 16, torch.device("cpu"))  # the CLI default fits


def test_synthesis_and_split_name_the_parameter(files, tmp_path):
    model = ROOT / "priors" / "brain_cwdm"
    for kwargs, parameter in [({"steps": 0}, "steps"), ({"steps": 2.5}, "steps"), ({"seed": -1}, "seed"),
                              ({"sampler": "ddpm"}, "sampler")]:
        with raises(parameter):
            synthesis.synthesize(model, files["cases"], tmp_path / "sub", progress=False, **kwargs)
    from medprior.challenges.brasyn import drop_contrasts
    with raises("seed"):
        drop_contrasts(files["cases"], tmp_path / "o", tmp_path / "t", seed=-1)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("make, kwargs, parameter, words", [
    (data.make_ct_dataset, {"cases": 0}, "cases", ">= 1"),
    (data.make_ct_dataset, {"size": (0, 0, 0)}, "size", ">= 4"),
    (data.make_ct_dataset, {"size": (16, 16)}, "size", "needs 3 values"),
    (data.make_ct_dataset, {"seed": -1}, "seed", ">= 0"),
    (data.make_ct_dataset, {"anatomy": "leg"}, "anatomy", "unknown anatomy"),
    (data.make_ct_dataset, {"size": (10**5,) * 3}, "size", "GiB"),
    (data.make_brain_dataset, {"size": (8, 8, 8)}, "size", ">= 48"),
    (data.make_petct_dataset, {"center": "sim"}, "center", "must match"),
])
def test_datasets_name_the_parameter(tmp_path, make, kwargs, parameter, words):
    with raises(parameter, words):
        make(tmp_path / "out", **{"cases": 1, "seed": 0, "size": (16, 16, 4), **kwargs})
    assert not (tmp_path / "out").exists()


def test_phantoms_and_schedule_name_the_parameter():
    with raises("shape", ">= 4"):
        ct_body(0, shape=(0, 0, 0))
    with raises("seed", ">= 0"):
        ct_body(-1, shape=(8, 8, 8))
    with raises("seed", ">= 0"):
        brain_mri(-1, shape=(48, 48, 30))
    with raises("steps", r"1\.\.1000"):
        VPSchedule().timesteps(5000)


class _Identity(LinearOperator):
    domain_shape = range_shape = (4, 4)

    def forward(self, x):
        return x

    def adjoint(self, y):
        return y


class _Denoiser:
    """Never called: the parameters are refused first."""
    schedule = VPSchedule()

    def __call__(self, x, t):
        raise AssertionError("the denoiser ran")


@pytest.mark.parametrize("solve, kwargs, parameter", [
    (admm_tv, {"lam": NAN, "rho": 1.0}, "lam"),
    (admm_tv, {"lam": 0.1, "rho": 0.0}, "rho"),
    (admm_tv, {"lam": 0.1, "rho": 1.0, "iterations": -1}, "iterations"),
    (admm_tv, {"lam": 0.1, "rho": 1.0, "cg_iterations": 0}, "cg_iterations"),
    (cg_sense, {"iterations": -1}, "iterations"),
    (cg_sense, {"damping": NAN}, "damping"),
])
def test_classical_solvers_name_the_parameter(solve, kwargs, parameter):
    with raises(parameter):
        solve(_Identity(), torch.zeros(2, 4, 4), **kwargs)
    with raises("iterations"):
        conjugate_gradient(lambda x: x, torch.zeros(2, 4), iterations=2.5)


@pytest.mark.parametrize("solve, kwargs, parameter", [
    (dds, {"steps": 0}, "steps"),
    (dds, {"eta": NAN}, "eta"),
    (dds, {"samples": 0}, "samples"),
    (dds, {"admm_iterations": 0}, "admm_iterations"),
    (dds, {"slice_batch": 0}, "slice_batch"),
    (mbir, {"rho": -1.0}, "rho"),
    (reddiff, {"lr": 0.0}, "lr"),
    (reddiff, {"lam": -math.inf}, "lam"),
])
def test_diffusion_solvers_name_the_parameter(solve, kwargs, parameter):
    with raises(parameter):
        solve(InverseProblem(_Identity(), torch.zeros(2, 4, 4)), _Denoiser(), **kwargs)
