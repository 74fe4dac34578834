"""Measurement files round-trip every field; foreign or truncated files raise InputError."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from medprior.errors import InputError
from medprior.io.measurement import Measurement, read_measurement, write_measurement


def _measurement():
    rng = np.random.default_rng(0)
    kspace = (rng.standard_normal((3, 2, 8, 8)) + 1j * rng.standard_normal((3, 2, 8, 8))).astype(np.complex64)
    return Measurement("MR", kspace, {"operator": "CartesianMRI", "image_shape": [8, 8], "coils": 2,
                                         "calibration_lines": 2}, (8, 8, 3),
                       np.diag([-1.0, -1.0, 2.0, 1.0]), {"mask": rng.random(8) > 0.5}, {"setting": "x4", "seed": 3})


def test_round_trip(tmp_path):
    original = _measurement()
    loaded = read_measurement(write_measurement(original, tmp_path / "m.h5"))
    np.testing.assert_array_equal(loaded.data, original.data)
    assert loaded.data.dtype == np.complex64
    np.testing.assert_array_equal(loaded.arrays["mask"], original.arrays["mask"])
    np.testing.assert_array_equal(loaded.affine, original.affine)
    assert (loaded.modality, loaded.geometry, loaded.image_shape, loaded.metadata) == (
        "MR", original.geometry, (8, 8, 3), original.metadata)


def test_foreign_hdf5_and_truncated_file(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as file:
        file["x"] = 1
    with pytest.raises(InputError, match="foreign.h5.*not a medprior measurement"):
        read_measurement(foreign)
    good = write_measurement(_measurement(), tmp_path / "good.h5")
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError, match="truncated.h5"):
        read_measurement(truncated)
    with pytest.raises(InputError, match="missing.h5.*does not exist"):
        read_measurement(tmp_path / "missing.h5")
