"""Reconstruction tasks: measurement files rebuild their operator exactly; outputs keep the geometry."""

from __future__ import annotations

import numpy as np
import pytest

from medprior.errors import InputError
from medprior.io import Volume
from medprior.io.measurement import read_measurement, write_measurement
from medprior.phantoms import brain_mri, ct_body
from medprior.tasks import recon, recon_report


@pytest.fixture(scope="module")
def ct_volume():
    return ct_body(5, shape=(64, 64, 6), spacing=(6.0, 6.0, 20.0))


def test_central_slab_keeps_world_positions(ct_volume):
    slab = recon.central_slab(ct_volume, 2)
    assert slab.shape == (64, 64, 2)
    np.testing.assert_array_equal(slab.data, ct_volume.data[:, :, 2:4])
    np.testing.assert_allclose(slab.affine @ [0, 0, 0, 1], ct_volume.affine @ [0, 0, 2, 1])


def test_ct_round_trip_through_file_is_exact(ct_volume, tmp_path):
    measurement = recon.simulate_ct(ct_volume, views=8, slices=2)
    loaded = read_measurement(write_measurement(measurement, tmp_path / "m.h5"))
    direct, from_file = recon.reconstruct(measurement, "fbp"), recon.reconstruct(loaded, "fbp")
    np.testing.assert_array_equal(direct.data, from_file.data)
    np.testing.assert_allclose(from_file.affine, recon.central_slab(ct_volume, 2).affine)


def test_full_view_fbp_recovers_hu(ct_volume):
    measurement = recon.simulate_ct(ct_volume, views=180, slices=2)
    estimate = recon.reconstruct(measurement, "fbp")
    body = recon.central_slab(ct_volume, 2).data > -500
    error = np.abs(estimate.data - recon.central_slab(ct_volume, 2).data)[body]
    assert np.median(error) < 60  # HU, at 6 mm pixels the edges blur, the bulk is right


def test_fully_sampled_single_coil_mri_is_exact():
    case = brain_mri(3, shape=(48, 48, 30))
    truth = case.contrasts["t2w"]
    measurement = recon.simulate_mri(truth, acceleration=1, coils=1, snr_db=200, slices=2)
    estimate = recon.reconstruct(measurement, "zerofill")
    np.testing.assert_allclose(estimate.data, recon.central_slab(truth, 2).data, atol=1e-3 * truth.data.max())


def test_wrong_method_is_an_input_error(ct_volume):
    with pytest.raises(InputError, match="does not apply to CT"):
        recon.reconstruct(recon.simulate_ct(ct_volume, views=4, slices=1), "cgsense")
    with pytest.raises(InputError, match="fbp has no parameter 'lam'"):
        recon.reconstruct(recon.simulate_ct(ct_volume, views=4, slices=1), "fbp", lam=1)


def test_evaluate_resamples_reference_onto_estimate_grid(ct_volume):
    slab = recon.central_slab(ct_volume, 2)
    scores = recon_report.evaluate(ct_volume, Volume(slab.data, slab.affine, "CT"), window=(-1000, 1000))
    assert scores["psnr"] == np.inf or scores["psnr"] > 100
    assert scores["ssim"] == pytest.approx(1.0)
