"""The reconstruction problem from plain tensors (a notebook) and from a file (the CLI): same numbers.

Also the shape of the task layer: a measurement's walk through ``reconstruct_file`` enters each task
module once (no callback climbs back up), and the problem folds a prior's units in exactly.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medprior.diffusion.normalization import Normalization
from medprior.diffusion.prior_file import load_prior
from medprior.errors import InputError
from medprior.io import load
from medprior.io.measurement import read_measurement, write_measurement
from medprior.phantoms import brain_mri, ct_body
from medprior.physics import MU_WATER_PER_MM
from medprior.solvers import dds
from medprior.solvers.problem import InverseProblem, from_slices
from medprior.tasks import recon
from medprior.tasks.problems import HOUNSFIELD, ct_problem, mri_problem, problem_from_measurement
from medprior.methods import RECON_METHODS
from dense_operator import Dense

PRIORS = Path(__file__).resolve().parents[2] / "priors"


def _cli_recon(measurement, out, *args):
    done = subprocess.run([sys.executable, "-m", "medprior.cli", "recon", str(measurement), "--out", str(out), *args],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return load(out).data


def test_a_notebook_ct_problem_from_plain_tensors_matches_the_cli(tmp_path):
    volume = ct_body(5, shape=(128, 128, 8), spacing=(3.0, 3.0, 5.0))
    measurement = write_measurement(recon.simulate_ct(volume, views=8, slices=2, size=(64, 64)), tmp_path / "ct.h5")
    cli = _cli_recon(measurement, tmp_path / "dds.nii.gz", "--method", "dds", "--prior", str(PRIORS / "ct_slices"),
                     "--param", "steps=4", "--slice-batch", "2", "--seed", "3", "--device", "cpu")
    # a notebook: plain arrays, a loaded prior, the solver called directly
    import h5py
    with h5py.File(measurement) as file:
        sinogram, angles = file["data"][()], file["arrays/angles_deg"][()]
    prior = load_prior(PRIORS / "ct_slices", "cpu")
    problem = ct_problem(torch.from_numpy(sinogram), angles, image_shape=(64, 64), pixel_size_mm=6.0)
    parameters = RECON_METHODS.parameters("dds", "CT", {"steps": 4})
    image = dds(problem, prior.denoiser(), **parameters, slice_batch=2, generator=torch.Generator().manual_seed(3))
    assert image.shape == (2, 64, 64)
    # HU; identical in a fresh process, up to 0.007 HU after other tests ran in it on one thread (the CPU
    # convolution kernels picked then round differently, 2026-11-30)
    np.testing.assert_allclose(from_slices(image), cli, rtol=0, atol=0.02)
    assert abs(float(image.mean()) - float(cli.mean())) < 1e-3 and float(image.std()) > 100  # an image, not a constant


def test_a_notebook_mri_problem_from_plain_tensors_matches_the_cli(tmp_path):
    truth = brain_mri(3, shape=(128, 128, 40)).contrasts["t2w"]
    measurement = write_measurement(recon.simulate_mri(truth, acceleration=4, coils=4, slices=2, size=(128, 128)),
                                    tmp_path / "mr.h5")
    cli = _cli_recon(measurement, tmp_path / "dds.nii.gz", "--method", "dds", "--prior", str(PRIORS / "brain_slices"),
                     "--param", "steps=2", "--slice-batch", "2", "--device", "cpu")
    stored = read_measurement(measurement)
    # plain arrays; the coil maps estimated here (the file's stored ones are the same ESPIRiT maps)
    problem = mri_problem(torch.from_numpy(stored.data), stored.arrays["mask"], calibration_lines=10)
    prior = load_prior(PRIORS / "brain_slices", "cpu")
    parameters = RECON_METHODS.parameters("dds", "MR", {"steps": 2})
    assert parameters["samples"] == 4 and parameters["lam"] == 0.01  # the MRI defaults, resolved in one place
    image = dds(problem, prior.denoiser(), **parameters, slice_batch=2, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(from_slices(image), cli, rtol=0, atol=1e-3 * float(cli.max()))
    assert (image >= 0).all()


def test_one_problem_serves_every_method_with_the_stored_coil_maps(monkeypatch):
    truth = brain_mri(3, shape=(48, 48, 30)).contrasts["t2w"]
    measurement = recon.simulate_mri(truth, acceleration=4, coils=4, slices=2, size=(32, 32))
    assert measurement.arrays["coil_maps"].shape == measurement.data.shape
    expected = {method: recon.reconstruct(measurement, method).data
                for method in RECON_METHODS.names(family="classical", modality="MR")}

    def no_espirit(*args, **kwargs):
        raise AssertionError("ESPIRiT ran again")

    monkeypatch.setattr("medprior.tasks.problems.espirit_maps", no_espirit)
    problem = problem_from_measurement(measurement)
    for method, data in expected.items():
        np.testing.assert_array_equal(recon.reconstruct(problem, method).data, data)
    with pytest.raises(InputError, match="does not apply to MR"):
        recon.reconstruct(problem, "fbp")


def test_the_prior_units_fold_exactly():
    """With a window prior, a solution u maps to HU and back to attenuation exactly as documented."""
    rng = np.random.default_rng(0)
    operator = Dense(torch.from_numpy(rng.standard_normal((12, 9))))
    hu = torch.from_numpy(rng.uniform(-900, 900, (2, 9)))
    mu = MU_WATER_PER_MM * (1 + hu / 1000)
    problem = InverseProblem(operator, operator.forward(mu), units=HOUNSFIELD)
    scaled = problem.normalized(Normalization("window", -1000, 1000))
    u = hu / 1000  # the window [-1000, 1000] HU is u in [-1, 1]
    torch.testing.assert_close(scaled.operator.forward(u), scaled.data)  # y' = A' u exactly (up to rounding)
    torch.testing.assert_close(scaled.image(u), hu)
    assert abs(scaled.operator.norm(batch=2) ** 2 - 1) < 1e-2  # ||A'^T A'|| = 1 (20-product estimate)


def test_a_reconstruction_enters_each_task_module_once(tmp_path):
    volume = ct_body(5, shape=(64, 64, 6), spacing=(6.0, 6.0, 20.0))
    measurement = write_measurement(recon.simulate_ct(volume, views=8, slices=1, size=(64, 64)), tmp_path / "m.h5")
    entries: dict[str, int] = {}

    def module_of(frame):
        return frame.f_globals.get("__name__", "")

    def trace(frame, event, arg):
        if event == "call":
            here, caller = module_of(frame), module_of(frame.f_back) if frame.f_back else ""
            if here.startswith("medprior.tasks.") and here != caller:
                entries[here] = entries.get(here, 0) + 1

    reconstruct_file = recon.reconstruct_file  # looked up before tracing: recon imports it on first use
    sys.setprofile(trace)
    try:
        reconstruct_file(measurement, "dds", tmp_path / "dds.nii.gz", prior=PRIORS / "ct_slices", steps=1)
    finally:
        sys.setprofile(None)
    assert entries == {"medprior.tasks.recon_methods": 1, "medprior.tasks.problems": 1,
                       "medprior.tasks.prior_geometry": 1}   # the prior's pixel size against the measurement's


def test_diffusion_leaves_zero_where_the_coil_maps_see_nothing(monkeypatch):
    """ESPIRiT crops its maps to zero outside the head; the data say nothing there, and a prior would
    paint there what it learnt. DDS writes zero there, as CG-SENSE does."""
    truth = brain_mri(3, shape=(128, 128, 40)).contrasts["t2w"]
    measurement = recon.simulate_mri(truth, acceleration=4, coils=4, slices=2, size=(128, 128))
    unseen = (np.abs(measurement.arrays["coil_maps"]) ** 2).sum(1) == 0  # (K, H, W)
    assert 0.05 < unseen.mean() < 0.9
    options = {"prior": PRIORS / "brain_slices", "steps": 3, "samples": 1, "slice_batch": 2, "seed": 0}
    image = np.moveaxis(recon.reconstruct(measurement, "dds", **options).data, -1, 0)
    assert np.abs(image[unseen]).max() == 0.0 and np.abs(image[~unseen]).max() > 0
    np.testing.assert_array_equal(np.moveaxis(recon.reconstruct(measurement, "cgsense").data, -1, 0)[unseen], 0)
    monkeypatch.setattr(InverseProblem, "fill_unseen", lambda self, x: x)
    image = np.moveaxis(recon.reconstruct(measurement, "dds", **options).data, -1, 0)
    assert np.abs(image[unseen]).max() > 0.05 * image.max()  # without it, the prior fills the region
