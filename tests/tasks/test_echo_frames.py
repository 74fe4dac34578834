"""Simulated echo frames and ultrasound files: exact linearity of hazy = tissue + gamma haze, the haze
scaled to the asked RMS ratio, regions on the image grid, zea files that read back and beamform."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from medprior.errors import InputError, ParameterError
from medprior.io.ultrasound import read_zea, read_zea_derived, read_zea_extras, write_zea
from medprior.physics.beamform import expand
from medprior.tasks.cardiac_scan import CardiacScan
from medprior.tasks.echo_frames import (beamform, depth_channel, frame_gamma, hazy_pair, rms, simulate_frame,
                                        training_patches)
from medprior.tasks.ultrasound import beamform_file, read_beamformed, simulate_case

SMALL = CardiacScan(depth=(5e-3, 30e-3), n_lines=24, sector_deg=50, anatomy_scale=0.28, transmits=1)


@pytest.fixture(scope="module")
def frame():
    return simulate_frame(3, SMALL)


def test_a_frame_has_tissue_and_haze_channel_data_and_regions_on_the_grid(frame):
    n_r, n_lines = SMALL.grid().shape[:2]
    assert frame.tissue.raw_data.shape == (1, 1, SMALL.n_ax(), 64, 1) == frame.haze.raw_data.shape
    assert n_lines == 24 and np.isclose(np.diff(SMALL.radii()).mean(), 1540 / (2 * SMALL.sampling_frequency))
    for name in ("ventricle", "septum", "sector"):
        assert frame.regions[name].shape == (n_r, n_lines) and frame.regions[name].any()
    assert not (frame.regions["ventricle"] & frame.regions["septum"]).any()
    tissue = beamform(frame.tissue, SMALL)
    envelope_ventricle = tissue[torch.as_tensor(frame.regions["ventricle"])].abs().mean()
    envelope_septum = tissue[torch.as_tensor(frame.regions["septum"])].abs().mean()
    assert envelope_ventricle < 0.5 * envelope_septum  # the cavity is dark, the septum bright


def test_the_hazy_pair_adds_haze_at_the_asked_rms_ratio(frame):
    tissue, haze = beamform(frame.tissue, SMALL), beamform(frame.haze, SMALL)
    pair = hazy_pair(tissue, haze, 0.4, frame.regions["sector"])
    assert rms(pair["haze"], frame.regions["sector"]) == pytest.approx(0.4 * rms(tissue, frame.regions["sector"]),
                                                                      rel=1e-5)
    assert torch.allclose(pair["hazy"], pair["tissue"] + pair["haze"])
    assert pair["scale"] == pytest.approx(float(pair["hazy"].abs().max()))
    assert torch.allclose(expand(pair["companded"][0]) * pair["scale"], pair["hazy"], atol=1e-4 * pair["scale"])
    with pytest.raises(ParameterError, match="gamma"):
        hazy_pair(tissue, haze, -1.0, frame.regions["sector"])


def test_the_depth_channel_runs_from_the_first_radius_to_the_last():
    assert torch.equal(depth_channel((5, 2)), torch.tensor([[[-1.0, -1.0], [-0.5, -0.5], [0.0, 0.0], [0.5, 0.5],
                                                             [1.0, 1.0]]]))


def test_training_patches_are_the_companded_images_cut_alike():
    patches = training_patches(3, haze="reverberation", gamma_range=(0.2, 0.2), size=(64, 16), stride=(32, 8),
                               scan=SMALL)
    assert set(patches) == {"hazy", "tissue", "haze", "depth"}
    assert patches["hazy"].shape == patches["tissue"].shape == patches["depth"].shape
    assert patches["hazy"].shape[1:] == (64, 16)
    depth = patches["depth"]
    assert float(depth.min()) == -1.0 and torch.equal(depth, depth[:, :, :1].expand_as(depth))  # rows' depth
    assert torch.allclose(depth[:, 1:, 0] - depth[:, :-1, 0], depth[0, 1, 0] - depth[0, 0, 0])
    summed = expand(patches["tissue"]) + expand(patches["haze"])
    assert torch.allclose(expand(patches["hazy"]), summed, atol=1e-4)
    assert frame_gamma(3, (0.2, 0.6)) == frame_gamma(3, (0.2, 0.6)) and 0.2 <= frame_gamma(3, (0.2, 0.6)) <= 0.6


def test_simulated_files_are_linear_and_beamform_on_their_own_grid(tmp_path):
    hazy, truth = simulate_case(3, tmp_path / "hazy.hdf5", tmp_path / "truth.hdf5", gamma=0.3, scan=SMALL)
    hazy_rf = read_zea(hazy)
    assert hazy_rf.metadata["scan"]["n_lines"] == 24 and hazy_rf.metadata["gamma"] == 0.3
    assert set(read_zea_extras(truth)) == {"ventricle", "septum", "myocardium", "sector"}
    beamform_file(hazy, tmp_path / "hazy_bf.hdf5")
    beamform_file(truth, tmp_path / "truth_bf.hdf5")
    y, _, _ = read_beamformed(tmp_path / "hazy_bf.hdf5")
    x, rf, extras = read_beamformed(tmp_path / "truth_bf.hdf5")
    sector = extras["sector"]
    assert y.shape == x.shape == (1, *SMALL.grid().shape[:2]) and rf.metadata["grid"]["kind"] == "polar"
    assert rms(y[0] - x[0], sector) == pytest.approx(0.3 * rms(x[0], sector), rel=1e-3)  # haze at gamma, by linearity
    beamform_file(truth, tmp_path / "other_grid.hdf5", lines=20)
    assert read_zea_extras(tmp_path / "other_grid.hdf5") == {}  # masks of another grid are not carried


def test_plane_wave_files_beamform_on_a_cartesian_grid(tmp_path, frame):
    from medprior.physics.probes import PROBES, plane_wave_delays
    from medprior.physics.echoes import simulate_rf

    probe = PROBES["L11-4v"]
    positions = probe.element_positions()
    delays = plane_wave_delays(positions, 0.0)[None]
    fs = 4 * probe.center_frequency
    rf = simulate_rf(positions, np.array([[0.0, 0.0, 10e-3]]), np.ones(1), t0_delays=delays,
                     tx_apodizations=np.ones_like(delays), initial_times=np.zeros(1), sampling_frequency=fs,
                     center_frequency=probe.center_frequency, n_ax=600)
    data = dataclasses.replace(frame.tissue, raw_data=rf.numpy()[None, ..., None], probe_geometry=positions,
                               t0_delays=delays, tx_apodizations=np.ones_like(delays), initial_times=np.zeros(1),
                               focus_distances=np.zeros(1), transmit_origins=np.zeros((1, 3)), polar_angles=np.zeros(1),
                               sampling_frequency=fs, center_frequency=probe.center_frequency, metadata={})
    write_zea(data, tmp_path / "plane.hdf5")
    beamform_file(tmp_path / "plane.hdf5", tmp_path / "plane_bf.hdf5", depth=(5e-3, 15e-3))
    image, rf_out, _ = read_beamformed(tmp_path / "plane_bf.hdf5")
    grid = rf_out.metadata["grid"]
    assert grid["kind"] == "cartesian"
    row, column = np.unravel_index(int(image[0].abs().argmax()), image.shape[1:])
    (x0, dx, _), (z0, dz, _) = grid["x"], grid["z"]
    assert abs(x0 + column * dx) < probe.wavelength() / 2 and abs(z0 + row * dz - 10e-3) < probe.wavelength() / 4
    with pytest.raises(ParameterError, match="Cartesian"):
        beamform_file(tmp_path / "plane.hdf5", tmp_path / "x.hdf5", lines=10)


def test_a_file_without_beamformed_data_is_refused(tmp_path, frame):
    write_zea(frame.tissue, tmp_path / "raw.hdf5")
    with pytest.raises(InputError, match="beamformed_data: missing"):
        read_beamformed(tmp_path / "raw.hdf5")
    assert "beamformed_data" not in read_zea_derived(tmp_path / "raw.hdf5")
