"""Ultrasound RF files: zea round trips bit-identically, PICMUS reads with the right axes, bad files
raise one-line InputErrors naming the file and the key, and `medprior info` describes both."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import h5py
import numpy as np
import pytest

from medprior.cli import main
from medprior.errors import InputError, MedpriorError
from medprior.io.ultrasound import (RFData, describe_rf, detect_format, read_picmus, read_zea, read_zea_derived,
                                    read_zea_extras, write_zea)
from medprior.physics.probes import PROBES, plane_wave_delays

N_TX, N_EL, N_AX = 3, 16, 200
PITCH = 0.3e-3


def _rf(n_ch: int = 1, n_ax: int = N_AX, n_frames: int = 2) -> RFData:
    rng = np.random.default_rng(0)
    positions = np.zeros((N_EL, 3))
    positions[:, 0] = (np.arange(N_EL) - (N_EL - 1) / 2) * PITCH
    angles = np.deg2rad([-10.0, 0.0, 10.0])
    return RFData(
        raw_data=rng.standard_normal((n_frames, N_TX, n_ax, N_EL, n_ch)).astype(np.float32),
        probe_geometry=positions, sampling_frequency=20e6, center_frequency=5e6,
        demodulation_frequency=5e6 if n_ch == 2 else 0.0, initial_times=np.array([1e-6, 2e-6, 3e-6]),
        t0_delays=np.stack([plane_wave_delays(positions, a, 1540.0) for a in angles]),
        tx_apodizations=rng.random((N_TX, N_EL)), focus_distances=np.zeros(N_TX),
        transmit_origins=rng.standard_normal((N_TX, 3)) * 1e-3, polar_angles=angles, sound_speed=1540.0,
        metadata={"probe": "test-16", "seed": 0})


FIELDS = ("raw_data", "probe_geometry", "initial_times", "t0_delays", "tx_apodizations", "focus_distances",
          "transmit_origins", "polar_angles")


@pytest.mark.parametrize("n_ch", [1, 2])
def test_zea_round_trip_is_exact(tmp_path, n_ch):
    original = _rf(n_ch)
    derived = {"beamformed": np.arange(12.0).reshape(3, 4), "envelope": np.ones((2, 5), np.float32),
               "image": np.arange(6, dtype=np.uint8).reshape(2, 3)}
    loaded = read_zea(write_zea(original, tmp_path / "rf.hdf5", **derived))
    for name in FIELDS:
        a, b = getattr(loaded, name), getattr(original, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    for name in ("sampling_frequency", "center_frequency", "demodulation_frequency", "sound_speed"):
        assert getattr(loaded, name) == getattr(original, name)
    assert loaded.metadata == original.metadata
    assert loaded.is_iq == (n_ch == 2)
    got = read_zea_derived(tmp_path / "rf.hdf5")
    assert sorted(got) == ["beamformed_data", "envelope_data", "image"]
    assert np.array_equal(got["image"], derived["image"]) and got["image"].dtype == np.uint8
    with h5py.File(tmp_path / "rf.hdf5") as f:
        assert f.attrs["probe"] == "test-16" and "description" in f.attrs
        assert f["data/raw_data"].shape == (2, N_TX, N_AX, N_EL, n_ch)
        assert [int(f[f"scan/{k}"][()]) for k in ("n_frames", "n_tx", "n_ax", "n_el")] == [2, N_TX, N_AX, N_EL]


def test_properties_and_depth():
    rf = _rf(n_ax=2000, n_frames=1)
    assert (rf.n_frames, rf.n_tx, rf.n_ax, rf.n_el, rf.is_iq) == (1, 3, 2000, 16, False)
    assert rf.depth == pytest.approx(0.077)  # 2000 / 20 MHz = 100 us; * 1540 / 2 = 77 mm


def test_derived_only_what_is_present(tmp_path):
    assert read_zea_derived(write_zea(_rf(), tmp_path / "rf.hdf5")) == {}
    assert read_zea_extras(tmp_path / "rf.hdf5") == {}


def test_extras_round_trip_and_refuse_nan(tmp_path):
    mask = np.zeros((5, 4), dtype=bool)
    mask[1:3] = True
    written = write_zea(_rf(), tmp_path / "rf.hdf5", extras={"ventricle": mask, "haze": np.ones((5, 4), np.float32)})
    extras = read_zea_extras(written)
    assert np.array_equal(extras["ventricle"], mask) and extras["ventricle"].dtype == bool
    assert np.array_equal(extras["haze"], np.ones((5, 4), np.float32))
    with pytest.raises(MedpriorError, match="medprior/haze"):
        write_zea(_rf(), tmp_path / "bad.hdf5", extras={"haze": np.full((2, 2), np.nan)})
    assert not (tmp_path / "bad.hdf5").exists()


@pytest.mark.parametrize("change, field", [
    ({"t0_delays": np.zeros((2, N_EL))}, "t0_delays"),
    ({"tx_apodizations": np.zeros((N_TX, N_EL - 1))}, "tx_apodizations"),
    ({"initial_times": np.zeros(N_TX + 1)}, "initial_times"),
    ({"focus_distances": np.zeros(1)}, "focus_distances"),
    ({"transmit_origins": np.zeros((N_TX, 2))}, "transmit_origins"),
    ({"polar_angles": np.zeros((N_TX, 1))}, "polar_angles"),
    ({"probe_geometry": np.zeros((N_EL, 2))}, "probe_geometry"),
    ({"raw_data": np.zeros((1, N_TX, N_AX, N_EL, 3), np.float32)}, "raw_data"),
    ({"raw_data": np.zeros((1, N_TX, N_AX, N_EL, 1))}, "raw_data"),  # float64
    ({"sampling_frequency": 0.0}, "sampling_frequency"),
    ({"center_frequency": -5e6}, "center_frequency"),
    ({"sound_speed": 0}, "sound_speed"),
    ({"sound_speed": float("nan")}, "sound_speed"),
    ({"demodulation_frequency": -1.0}, "demodulation_frequency"),
    ({"t0_delays": np.full((N_TX, N_EL), np.inf)}, "t0_delays"),
    ({"probe_geometry": np.full((N_EL, 3), np.nan)}, "probe_geometry"),
])
def test_check_names_source_and_field(change, field):
    with pytest.raises(InputError, match=rf"^src\.hdf5: {field}: "):
        replace(_rf(), **change).check("src.hdf5")


def test_check_nan_raw_data_and_iq_without_demodulation():
    rf = _rf()
    rf.raw_data[0, 1, 2, 3, 0] = np.nan
    with pytest.raises(InputError, match="raw_data: holds 1 non-finite"):
        rf.check("x")
    with pytest.raises(InputError, match="demodulation_frequency: is 0, but the data are IQ"):
        replace(_rf(2), demodulation_frequency=0.0).check("x")
    _rf(2).check("x")  # a good one passes


def test_write_refuses_nonfinite_and_keeps_earlier_file(tmp_path):
    path = write_zea(_rf(), tmp_path / "rf.hdf5")
    before = path.read_bytes()
    bad = _rf()
    bad.raw_data[0, 0, 0, 0, 0] = np.inf
    with pytest.raises(MedpriorError, match="rf.hdf5.*data/raw_data"):
        write_zea(bad, path)
    with pytest.raises(MedpriorError, match="data/image"):
        write_zea(_rf(), path, image=np.array([np.nan]))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rf.hdf5"]


def _edit(path, edit):
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def test_zea_older_layout(tmp_path):
    original = _rf()
    path = _edit(write_zea(original, tmp_path / "old.hdf5"),
                 lambda f: (f.__delitem__("scan/demodulation_frequency"), f.__delitem__("scan/transmit_origins")))
    loaded = read_zea(path)
    assert loaded.demodulation_frequency == 0.0
    assert np.array_equal(loaded.transmit_origins, np.zeros((N_TX, 3)))
    assert np.array_equal(loaded.raw_data, original.raw_data)
    iq = _edit(write_zea(_rf(2), tmp_path / "iq.hdf5"), lambda f: f.__delitem__("scan/demodulation_frequency"))
    with pytest.raises(InputError, match=r"iq\.hdf5: scan/demodulation_frequency: missing"):
        read_zea(iq)


@pytest.mark.parametrize("key", ["scan/sampling_frequency", "scan/t0_delays", "scan/probe_geometry",
                                 "scan/sound_speed", "data/raw_data", "scan"])
def test_zea_missing_key(tmp_path, key):
    path = _edit(write_zea(_rf(), tmp_path / "f.hdf5"), lambda f: f.__delitem__(key))
    with pytest.raises(InputError, match=rf"f\.hdf5: {key}: missing"):
        read_zea(path)


def test_zea_bad_files(tmp_path):
    good = write_zea(_rf(), tmp_path / "good.hdf5")
    truncated = tmp_path / "truncated.hdf5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "text.hdf5"
    text.write_text("not hdf5\n")
    for path in (truncated, text):
        with pytest.raises(InputError, match=rf"{path.name}: cannot be read"):
            read_zea(path)
    with pytest.raises(InputError, match="nothing.hdf5: does not exist"):
        read_zea(tmp_path / "nothing.hdf5")
    wrong = _edit(write_zea(_rf(), tmp_path / "wrong.hdf5"), lambda f: f["scan/n_el"].write_direct(np.array(5)))
    with pytest.raises(InputError, match="wrong.hdf5: scan/n_el: is 5"):
        read_zea(wrong)
    nan = _edit(write_zea(_rf(), tmp_path / "nan.hdf5"),
                lambda f: f["scan/sampling_frequency"].write_direct(np.array(np.nan)))
    with pytest.raises(InputError, match="nan.hdf5: scan/sampling_frequency: is nan"):
        read_zea(nan)


# ------------------------------------------------------------------ PICMUS


def _picmus(path, *, iq: bool, geometry=None, drop=(), pulse: float | None = 5.2e6, initial=None):
    rng = np.random.default_rng(1)
    if geometry is None:  # asymmetric: x, y and z differ, so a missed transposition shows
        geometry = np.stack([np.linspace(-2e-3, 2.5e-3, N_EL), np.linspace(0, 1e-4, N_EL), np.linspace(0, 3e-5, N_EL)])
    shape = (N_TX, N_EL, N_AX)
    values = {"data/real": rng.standard_normal(shape), "data/imag": rng.standard_normal(shape),
              "angles": np.deg2rad([-8.0, 0.0, 12.0]), "probe_geometry": geometry,
              "sampling_frequency": np.array([20.832e6]), "modulation_frequency": np.array([5.208e6 if iq else 0.0]),
              "sound_speed": np.array([1540.0]), "initial_time": np.array([2e-6]) if initial is None else initial}
    if pulse is not None:
        values["pulse_frequency"] = np.array([pulse])
    with h5py.File(path, "w") as f:
        for key, value in values.items():
            if key not in drop:
                f[f"US/US_DATASET0000/{key}"] = value
    return path, values


@pytest.mark.parametrize("iq", [False, True])
def test_picmus(tmp_path, iq):
    path, values = _picmus(tmp_path / "picmus.hdf5", iq=iq, initial=np.array([1e-6, 2e-6, 3e-6]))
    rf = read_picmus(path)
    n_ch = 2 if iq else 1
    assert rf.raw_data.shape == (1, N_TX, N_AX, N_EL, n_ch) and rf.raw_data.dtype == np.float32
    assert rf.is_iq == iq
    # sample a of element e of transmit t
    assert rf.raw_data[0, 2, 7, 5, 0] == np.float32(values["data/real"][2, 5, 7])
    assert np.array_equal(rf.raw_data[0, ..., 0], values["data/real"].transpose(0, 2, 1).astype(np.float32))
    if iq:
        assert np.array_equal(rf.raw_data[0, ..., 1], values["data/imag"].transpose(0, 2, 1).astype(np.float32))
    assert rf.probe_geometry.shape == (N_EL, 3)
    assert np.array_equal(rf.probe_geometry[:, 0], values["probe_geometry"][0])
    assert np.array_equal(rf.probe_geometry[:, 2], values["probe_geometry"][2])
    expected = np.stack([plane_wave_delays(rf.probe_geometry, a, 1540.0) for a in values["angles"]])
    assert np.allclose(rf.t0_delays, expected, rtol=0, atol=1e-15)
    assert rf.t0_delays[0, -1] == 0 and rf.t0_delays[2, 0] == 0  # negative angle fires from +x first
    assert np.array_equal(rf.polar_angles, values["angles"])
    assert np.array_equal(rf.initial_times, [1e-6, 2e-6, 3e-6])
    assert rf.demodulation_frequency == (5.208e6 if iq else 0.0)
    assert rf.center_frequency == 5.2e6 and rf.sampling_frequency == 20.832e6 and rf.sound_speed == 1540.0
    assert np.array_equal(rf.tx_apodizations, np.ones((N_TX, N_EL)))
    assert not rf.focus_distances.any() and not rf.transmit_origins.any()


def test_picmus_scalar_initial_time_and_center_from_modulation(tmp_path):
    path, _ = _picmus(tmp_path / "p.hdf5", iq=True, pulse=None, initial=np.float64(4e-6))
    rf = read_picmus(path)
    assert np.array_equal(rf.initial_times, [4e-6] * N_TX)
    assert rf.center_frequency == 5.208e6
    rf_path, _ = _picmus(tmp_path / "rf.hdf5", iq=False, pulse=None)
    with pytest.raises(InputError, match=r"rf\.hdf5: US/US_DATASET0000/pulse_frequency: missing"):
        read_picmus(rf_path)


@pytest.mark.parametrize("key", ["data/real", "angles", "probe_geometry", "sampling_frequency", "sound_speed",
                                 "initial_time", "modulation_frequency", "data/imag"])
def test_picmus_missing_key(tmp_path, key):
    path, _ = _picmus(tmp_path / "p.hdf5", iq=True, drop=(key,))
    with pytest.raises(InputError, match=rf"p\.hdf5: US/US_DATASET0000/{key}: missing"):
        read_picmus(path)


def test_picmus_rf_needs_no_imag_and_geometry_must_be_3_by_n(tmp_path):
    path, _ = _picmus(tmp_path / "p.hdf5", iq=False, drop=("data/imag",))
    assert read_picmus(path).raw_data.shape[-1] == 1
    bad, _ = _picmus(tmp_path / "b.hdf5", iq=False, geometry=np.zeros((N_EL, 3)))
    with pytest.raises(InputError, match="b.hdf5: US/US_DATASET0000/probe_geometry: has shape"):
        read_picmus(bad)


# ------------------------------------------------------------------ description and `medprior info`


def test_describe_rf():
    probe = PROBES["L11-4v"]
    rf = _rf(n_ax=2000, n_frames=1)
    rf = replace(rf, raw_data=np.zeros((1, N_TX, 2000, probe.n_elements, 2), np.float32),
                 probe_geometry=probe.element_positions(), t0_delays=np.zeros((N_TX, probe.n_elements)),
                 tx_apodizations=np.ones((N_TX, probe.n_elements)), demodulation_frequency=5e6)
    text = describe_rf(rf)
    assert "128 elements, pitch 0.300 mm" in text
    assert "3 plane waves, angles -10.0 .. 10.0 deg" in text
    assert "IQ" in text and "sampling 20.000 MHz, centre 5.000 MHz" in text
    assert "2000 per element, depth 77.0 mm" in text
    assert "frames:      1" in text
    assert "diverging waves" in describe_rf(replace(rf, focus_distances=-np.ones(N_TX)))


def test_detect_format(tmp_path):
    assert detect_format(write_zea(_rf(), tmp_path / "z.hdf5")) == "zea"
    assert detect_format(_picmus(tmp_path / "p.h5", iq=True)[0]) == "picmus"
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["format"] = "medprior-measurement"
    assert detect_format(tmp_path / "other.h5") is None


def test_info_on_zea_and_picmus(tmp_path, capsys):
    assert main(["info", str(write_zea(_rf(), tmp_path / "z.hdf5"))]) == 0
    out = capsys.readouterr().out
    assert "16 elements" in out and "zea" in out and "RF" in out
    assert main(["info", str(_picmus(tmp_path / "p.hdf5", iq=True)[0])]) == 0
    out = capsys.readouterr().out
    assert "16 elements" in out and "PICMUS" in out and "IQ" in out


def test_info_on_foreign_hdf5_keeps_load_behaviour(tmp_path, capsys):
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f.attrs["format"] = "medprior-measurement"
    assert main(["info", str(tmp_path / "m.h5")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "m.h5" in err[0] and "unrecognised format" in err[0]


def test_info_on_truncated_zea_exits_2_with_one_line(tmp_path):
    good = write_zea(_rf(), tmp_path / "good.hdf5")
    bad = tmp_path / "cut.hdf5"
    bad.write_bytes(good.read_bytes()[:2000])
    result = subprocess.run([sys.executable, "-m", "medprior.cli", "info", str(bad)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "cut.hdf5" in result.stderr
