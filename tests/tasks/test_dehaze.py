"""The dehazing stage on a small simulated frame: every method runs from files to files, the scores
are the metrics of the images they name, and models that do not fit are refused before any work.

The learned methods run with tiny untrained networks: what is checked is the plumbing (patches,
scales, units, files), not the quality, which benchmarks/dehazing_quality.py measures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from medprior.cli import main
from medprior.diffusion.normalization import Normalization
from medprior.diffusion.prior_file import load_prior, save_prior
from medprior.diffusion.priors import SlicePrior2D
from medprior.errors import InputError, ParameterError
from medprior.io.ultrasound import read_zea, read_zea_derived, read_zea_extras
from medprior.metrics import gcnr, psnr, region_ks
from medprior.methods import DEHAZE_METHODS
from medprior.physics.beamform import bmode, reference_level
from medprior.tasks.dehaze import dehaze, dehaze_file, local_gaussian_bmode
from medprior.tasks.dehaze_report import evaluate_dehazing
from medprior.tasks.cardiac_scan import CardiacScan
from medprior.tasks.ultrasound import beamform_file, read_beamformed, simulate_case

SMALL = CardiacScan(depth=(5e-3, 30e-3), n_lines=24, sector_deg=50, anatomy_scale=0.28, transmits=1)
TINY = {"channels": [8, 8], "attention_levels": [False, False], "num_res_blocks": 1, "num_head_channels": 8,
        "norm_num_groups": 4}


def tiny(path, conditions=(), parametrization="v", modality="US"):
    """A tiny untrained prior conditioned on ``conditions`` (recorded as its training config's)."""
    torch.manual_seed(0)
    prior = SlicePrior2D((32, 16), network=TINY, parametrization=parametrization, condition_channels=len(conditions),
                         normalization=Normalization("window", -1, 1))
    training = {"steps": 0, "config": {"data": {"conditions": list(conditions)}}}
    return save_prior(prior, path, training=training, modality=modality)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("echo")
    simulate_case(3, folder / "hazy_rf.hdf5", folder / "truth_rf.hdf5", gamma=0.5, scan=SMALL)
    beamform_file(folder / "hazy_rf.hdf5", folder / "hazy.hdf5")
    beamform_file(folder / "truth_rf.hdf5", folder / "truth.hdf5")
    models = {"tissue": tiny(folder / "tissue"), "haze": tiny(folder / "haze"),
              "supervised": tiny(folder / "supervised", conditions=("hazy",), parametrization="x0")}
    return folder, models


def test_bmode_is_the_envelope_in_db_against_the_reference():
    rf = torch.zeros(64, 2)
    rf[:, 0] = torch.cos(torch.arange(64) * np.pi / 2)  # unit envelope
    rf[:, 1] = 0.1 * rf[:, 0]
    image = bmode(rf, 1.0, 60.0)
    assert np.allclose(image[8:-8, 0], 0.0, atol=0.1) and np.allclose(image[8:-8, 1], -20.0, atol=0.1)
    assert bmode(torch.zeros(8, 2), 1.0, 40.0).min() == -40.0
    assert reference_level(rf) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("method", ["diffusion", "supervised", "nlm", "bm3d"])
def test_every_method_dehazes_a_file_into_a_scored_file(case, method):
    folder, models = case
    options = {"steps": 2, "start": 0.1} if method == "diffusion" else {}
    out = dehaze_file(folder / "hazy.hdf5", method, folder / f"{method}.hdf5", models=models, options=options)
    derived, extras = read_zea_derived(out), read_zea_extras(out)
    hazy, _, _ = read_beamformed(folder / "hazy.hdf5")
    assert derived["image"].shape == tuple(hazy.shape) and derived["image"].max() <= 0
    assert ("beamformed_data" in derived) == (method in ("diffusion", "supervised"))
    assert ("haze" in extras) == (method == "diffusion")
    record = read_zea(out).metadata["dehazing"]
    assert record["method"] == method and record["seconds_per_frame"] > 0
    scores = evaluate_dehazing(out, folder / "hazy.hdf5", folder / "truth.hdf5")
    truth, _, masks = read_beamformed(folder / "truth.hdf5")
    reference = reference_level(hazy[0])
    true_image, hazy_image = bmode(truth[0], reference, 60.0), bmode(hazy[0], reference, 60.0)
    frame = scores["frames"][0]
    assert frame["psnr"] == pytest.approx(psnr(true_image, derived["image"][0], 60.0))
    assert frame["gcnr"] == pytest.approx(gcnr(derived["image"][0], masks["ventricle"], masks["septum"]))
    assert frame["gcnr_hazy"] == pytest.approx(gcnr(hazy_image, masks["ventricle"], masks["septum"]))
    assert frame["ks_septum"] == pytest.approx(region_ks(hazy_image, derived["image"][0], masks["septum"]))
    assert scores["mean"]["psnr"] == frame["psnr"]


def test_the_truth_dehazed_scores_perfectly(case):
    folder, _ = case
    hazy, _, _ = read_beamformed(folder / "hazy.hdf5")
    truth, _, masks = read_beamformed(folder / "truth.hdf5")
    reference = reference_level(hazy[0])
    result = dehaze(truth[0], "nlm", reference=reference, h=1e-6)  # nlm with almost no smoothing: the truth
    assert np.allclose(result.bmode, bmode(truth[0], reference, 60.0), atol=0.05)


def test_the_diffusion_image_is_the_mean_of_its_samples_images(case, tmp_path):
    folder, models = case
    hazy, _, _ = read_beamformed(folder / "hazy.hdf5")
    loaded = {role: load_prior(models[role]) for role in ("tissue", "haze")}
    reference = reference_level(hazy[0])
    result = dehaze(hazy[0], "diffusion", models=loaded, reference=reference, steps=2, start=0.1, samples=3,
                    estimate="samples")
    assert result.tissue.shape == result.haze.shape == (3, *hazy.shape[1:])
    images = [bmode(sample, reference, 60.0) for sample in result.tissue]
    assert not np.allclose(images[0], images[1])  # distinct draws
    assert np.allclose(result.bmode, np.mean(images, axis=0), atol=1e-4)
    out = dehaze_file(folder / "hazy.hdf5", "diffusion", tmp_path / "d.hdf5", models=models,
                      options={"steps": 2, "start": 0.1, "samples": 3, "estimate": "samples"})
    derived, extras = read_zea_derived(out), read_zea_extras(out)
    assert np.allclose(derived["image"][0], result.bmode, atol=1e-4)  # one seed: the same samples
    assert np.allclose(derived["beamformed_data"][0], result.tissue.mean(0).numpy(), rtol=1e-4, atol=1e-6)
    assert np.allclose(extras["haze"][0], result.haze.mean(0).numpy(), rtol=1e-4, atol=1e-6)


def test_the_local_gaussian_image_is_the_posterior_mean_of_the_b_mode_value():
    """Tissue, haze and hazy RF of constant envelopes A, B, C (whole cycles: the FFT Hilbert transform is
    exact): the tissue given the hazy value is CN(w C, w B^2) with w = A^2 / (A^2 + B^2), and the image
    is the mean of 20 log10 |x| over draws from it (Monte Carlo, an independent route)."""
    depth = torch.arange(64, dtype=torch.float64)[:, None].expand(64, 5)
    wave = torch.cos(2 * torch.pi * 8 * depth / 64).float()
    a, b, c, reference = 0.3, 0.2, 0.25, 1.0
    image = local_gaussian_bmode(c * wave, a * wave[None], b * wave[None], reference, 60.0, (9, 3))
    w = a ** 2 / (a ** 2 + b ** 2)
    draws = np.random.default_rng(0).standard_normal((2, 400000))
    x = w * c + np.sqrt(w * b ** 2 / 2) * (draws[0] + 1j * draws[1])
    assert np.allclose(image, np.mean(20 * np.log10(np.abs(x))), atol=0.02)
    assert abs(float(image.mean()) - 20 * np.log10(w * c)) > 0.2  # not the Wiener estimate's level
    assert np.allclose(local_gaussian_bmode(c * wave, a * wave[None], 0 * wave[None], reference, 60.0, (9, 3)),
                       20 * np.log10(c), atol=1e-3)  # without haze: the hazy frame


def test_the_diffusion_image_is_by_default_the_local_gaussian_estimate(case):
    folder, models = case
    hazy, _, _ = read_beamformed(folder / "hazy.hdf5")
    loaded = {role: load_prior(models[role]) for role in ("tissue", "haze")}
    reference = reference_level(hazy[0])
    result = dehaze(hazy[0], "diffusion", models=loaded, reference=reference, steps=2, start=0.1, samples=2)
    expected = local_gaussian_bmode(hazy[0], result.tissue, result.haze, reference, 60.0, (9, 3))
    assert np.array_equal(result.bmode, expected)


def test_depth_conditioned_priors_dehaze(case, tmp_path):
    folder, _ = case
    models = {role: tiny(tmp_path / role, conditions=("depth",)) for role in ("tissue", "haze")}
    out = dehaze_file(folder / "hazy.hdf5", "diffusion", tmp_path / "d.hdf5", models=models,
                      options={"steps": 2, "start": 0.1, "samples": 2})
    image = read_zea_derived(out)["image"]
    assert image.shape == read_beamformed(folder / "hazy.hdf5")[0].shape and np.isfinite(image).all()


def test_models_that_do_not_fit_are_refused_before_any_work(case, tmp_path):
    folder, models = case
    with pytest.raises(ParameterError, match="needs the haze"):
        dehaze_file(folder / "hazy.hdf5", "diffusion", tmp_path / "a.hdf5", models={"tissue": models["tissue"]})
    with pytest.raises(InputError, match="condition channels"):
        dehaze_file(folder / "hazy.hdf5", "supervised", tmp_path / "a.hdf5", models={"supervised": models["tissue"]})
    hazy_conditioned = tiny(tmp_path / "hazy_conditioned", conditions=("hazy",))
    with pytest.raises(InputError, match=r"condition channels \(hazy\); the tissue model takes none or depth"):
        dehaze_file(folder / "hazy.hdf5", "diffusion", tmp_path / "a.hdf5",
                    models={"tissue": hazy_conditioned, "haze": models["haze"]})
    ct = tiny(tmp_path / "ct", modality="CT")
    with pytest.raises(InputError, match="CT prior"):
        dehaze_file(folder / "hazy.hdf5", "diffusion", tmp_path / "a.hdf5", models={"tissue": ct, "haze": ct})
    with pytest.raises(ParameterError, match="gradient"):
        dehaze_file(folder / "hazy.hdf5", "diffusion", tmp_path / "a.hdf5", models=models,
                    options={"gradient": "adjoint"})
    assert not (tmp_path / "a.hdf5").exists()


def test_the_cli_runs_the_stage(case, tmp_path, capsys):
    folder, models = case
    out = tmp_path / "nlm.hdf5"
    assert main(["dehaze", str(folder / "hazy.hdf5"), "--method", "nlm", "--out", str(out),
                 "--param", "patch_size=3"]) == 0
    assert read_zea(out).metadata["dehazing"]["parameters"]["patch_size"] == 3
    assert main(["evaluate", "dehazing", "--estimate", str(out), "--hazy", str(folder / "hazy.hdf5"),
                 "--truth", str(folder / "truth.hdf5"), "--out", str(tmp_path / "scores.json")]) == 0
    assert json.loads((tmp_path / "scores.json").read_text())["method"] == "nlm"
    assert main(["dehazing-figure", str(folder / "hazy.hdf5"), str(folder / "truth.hdf5"), str(out), "--names", "nlm",
                 "--out", str(tmp_path / "figure.png")]) == 0
    assert (tmp_path / "figure.png").stat().st_size > 10_000
    assert main(["dehaze", str(folder / "hazy.hdf5"), "--method", "diffusion", "--out", str(tmp_path / "d.hdf5"),
                 "--tissue-prior", str(models["tissue"]), "--haze-prior", str(models["haze"]),
                 "--param", "gradient=tweedie", "--param", "steps=2"]) == 0
    assert main(["dehaze", str(folder / "hazy.hdf5"), "--method", "diffusion", "--out", str(tmp_path / "e.hdf5"),
                 "--tissue-prior", str(models["tissue"]), "--haze-prior", str(models["haze"]),
                 "--param", "lam=-1"]) == 2
    assert "--param lam" in capsys.readouterr().err and not (tmp_path / "e.hdf5").exists()


def test_the_registry_lists_the_methods_of_the_schema():
    from medprior.checks import schema_property

    assert set(DEHAZE_METHODS.names()) == set(schema_property("dehaze.methods")["items"]["enum"])
