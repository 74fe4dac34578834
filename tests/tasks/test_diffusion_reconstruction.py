"""Diffusion reconstructions of measurement files: normalisation folding, size checks, CLI errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from medprior.config import defaults
from medprior.diffusion.normalization import Normalization
from medprior.diffusion.prior_file import save_prior
from medprior.diffusion.priors import SlicePrior2D
from medprior.errors import InputError
from medprior.io.measurement import write_measurement
from medprior.phantoms import brain_mri, ct_body
from medprior.tasks import recon
from medprior.methods import RECON_METHODS


def reconstruct(measurement, method, prior, **options):
    """The volume and the run's facts of a diffusion reconstruction."""
    volume = recon.reconstruct(measurement, method, prior=prior, **options)
    return volume, volume.metadata["reconstruction"]

TINY_NETWORK = {"channels": [8, 8], "attention_levels": [False, False], "num_res_blocks": 1, "num_head_channels": 8,
                "norm_num_groups": 4}


@pytest.fixture(scope="module")
def ct_volume():
    return ct_body(5, shape=(64, 64, 6), spacing=(6.0, 6.0, 20.0))


def tiny_prior(path, size=(16, 16), normalization=Normalization("window", -1000, 1000)):
    torch.manual_seed(0)
    prior = SlicePrior2D(size, network=TINY_NETWORK, parametrization="v", normalization=normalization)
    return save_prior(prior, path, training={"steps": 0})


def test_resize_in_plane_keeps_the_field_of_view(ct_volume):
    small = recon.resize_in_plane(ct_volume, (16, 16))
    assert small.shape == (16, 16, 6)
    np.testing.assert_allclose(small.spacing, (24.0, 24.0, 20.0))
    # voxel (0, 0) of the result sits at the centre of input voxels 0..3, i.e. at input index 1.5
    np.testing.assert_allclose(small.affine @ [0, 0, 0, 1], ct_volume.affine @ [1.5, 1.5, 0, 1])
    np.testing.assert_allclose(small.data[0, 0, 0], ct_volume.data[:4, :4, 0].mean(), rtol=1e-5)


@pytest.mark.parametrize("method", RECON_METHODS.names("diffusion"))
def test_every_method_runs_on_ct_and_keeps_the_geometry(ct_volume, tmp_path, method):
    prior = tiny_prior(tmp_path / "prior")
    measurement = recon.simulate_ct(ct_volume, views=8, slices=2, size=(16, 16))
    volume, facts = reconstruct(measurement, method, prior, steps=3, slice_batch=1)
    assert volume.shape == (16, 16, 2) and volume.modality == "CT"
    np.testing.assert_allclose(volume.affine, measurement.affine)
    assert np.isfinite(volume.data).all()
    samples = defaults()["recon"]["diffusion"]["dds"]["samples"] if method == "dds" else 1
    assert facts["nfe_per_slice"] == (6 if method == "dps" else 3 * samples)  # DPS: forward + backward pass per batch
    if method == "dds":
        assert facts["lam"] == 0.0 and samples == 4  # the MRI overrides stay out of CT; CT averages 4 runs


def test_mri_runs_through_the_known_phase_operator(tmp_path):
    truth = brain_mri(3, shape=(48, 48, 30)).contrasts["t2w"]
    measurement = recon.simulate_mri(truth, acceleration=4, coils=4, slices=2, size=(16, 16))
    prior = tiny_prior(tmp_path / "prior", normalization=Normalization("percentile", 0.5, 99.5))
    volume, facts = reconstruct(measurement, "dds", prior, steps=2)
    assert facts["nfe_per_slice"] == 2 * defaults()["recon"]["diffusion"]["dds"]["samples"] == 8  # 4 runs averaged
    assert volume.shape == (16, 16, 2) and volume.modality == "MR"
    assert (volume.data >= 0).all()
    assert facts["intensity_range"][1] > facts["intensity_range"][0]
    assert facts["lam"] == defaults()["recon"]["diffusion"]["mri_overrides"]["dds"]["lam"] == 0.01  # MRI's z-TV
    assert reconstruct(measurement, "dds", prior, steps=1, lam=0.2)[1]["lam"] == 0.2


def test_mismatched_prior_and_bad_parameters_are_input_errors(ct_volume, tmp_path):
    measurement = recon.simulate_ct(ct_volume, views=8, slices=1, size=(32, 32))
    prior = tiny_prior(tmp_path / "prior")
    with pytest.raises(InputError, match=r"models \(16, 16\) slices but the measurement has \(32, 32\)"):
        reconstruct(measurement, "dds", prior)
    with pytest.raises(InputError, match="dds has no parameter 'step_size'"):
        reconstruct(measurement, "dds", prior, step_size=1.0)


def test_cli_diffusion_recon_and_its_errors(ct_volume, tmp_path):
    prior = tiny_prior(tmp_path / "prior")
    measurement = write_measurement(recon.simulate_ct(ct_volume, views=8, slices=1, size=(16, 16)), tmp_path / "m.h5")
    out = tmp_path / "dds.nii.gz"

    def run(*args):
        return subprocess.run([sys.executable, "-m", "medprior.cli", "recon", str(measurement), *args],
                              capture_output=True, text=True)

    done = run("--method", "dds", "--prior", str(prior), "--param", "steps=2", "--param", "samples=3", "--out", str(out))
    assert done.returncode == 0, done.stderr
    sidecar = json.loads(out.with_name("dds.nii.gz.provenance.json").read_text())
    assert sidecar["config"]["steps"] == 2 and sidecar["config"]["nfe_per_slice"] == 6
    for args, message in [(("--method", "dds"), "needs a prior"),
                          (("--method", "dds", "--prior", str(prior), "--param", "steps"), "NAME=NUMBER"),
                          (("--method", "mbir", "--prior", str(tmp_path / "none")), "no such prior folder")]:
        failed = run(*args, "--out", str(tmp_path / "bad.nii.gz"))
        assert failed.returncode == 2 and message in failed.stderr and "Traceback" not in failed.stderr
        assert not (tmp_path / "bad.nii.gz").exists()


def test_an_interrupted_reconstruction_leaves_no_output(ct_volume, tmp_path, monkeypatch):
    prior = tiny_prior(tmp_path / "prior")
    measurement = write_measurement(recon.simulate_ct(ct_volume, views=8, slices=1, size=(16, 16)), tmp_path / "m.h5")
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return torch.zeros_like(args[1])

    monkeypatch.setattr("medprior.solvers.diffusion.denoise_slices", interrupted)
    out = tmp_path / "dds.nii.gz"
    with pytest.raises(KeyboardInterrupt):
        recon.reconstruct_file(measurement, "dds", out, prior=prior, steps=4)
    assert len(calls) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.h5", "prior"]


def test_slices_are_flipped_into_the_prior_orientation():
    from medprior.diffusion.orientation import in_plane_flips
    lps = np.diag([-1.0, -1.0, 1.0, 1.0])  # i -> L... as nibabel codes: x decreasing = R->L
    assert "".join(__import__("nibabel").aff2axcodes(lps)) == "LPS"
    assert in_plane_flips(lps, "LPS") == ()
    assert in_plane_flips(np.eye(4), "LPS") == (2, 3)  # RAS: both in-plane axes reversed
    assert in_plane_flips(np.diag([-1.0, 1.0, 1.0, 1.0]), "LPS") == (3,)  # LAS
    swapped = np.array([[0, 1.0, 0, 0], [1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])  # ARS
    with pytest.raises(InputError, match="in-plane axes are swapped"):
        in_plane_flips(swapped, "LPS")


def test_a_ras_volume_is_denoised_upright(ct_volume, tmp_path):
    prior = tiny_prior(tmp_path / "prior")
    measurement = recon.simulate_ct(ct_volume.to_canonical(), views=8, slices=1, size=(16, 16))
    _, facts = reconstruct(measurement, "dds", prior, steps=2)
    assert facts["flipped_dims"] == [2, 3]
