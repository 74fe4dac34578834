"""NIfTI reading and writing (medprior.io.nifti): exact round trips and bad files."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medprior.errors import InputError
from medprior.io import Volume, load_nifti, save_nifti


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_round_trip_is_exact_with_oblique_affine(tmp_path: Path, make_volume, suffix: str) -> None:
    volume = make_volume((9, 7, 5))
    path = save_nifti(volume, tmp_path / f"case{suffix}")
    loaded = load_nifti(path)
    np.testing.assert_array_equal(loaded.data, volume.data)
    # NIfTI-1 stores the sform in float32: exact to that precision, and so within 1e-5 mm
    np.testing.assert_array_equal(loaded.affine, volume.affine.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(loaded.affine, volume.affine, rtol=0, atol=1e-5)
    assert loaded.data.dtype == np.float32
    assert loaded.modality == "CT"
    assert loaded.metadata["source"] == str(path)
    image = nib.load(path)
    assert image.get_data_dtype() == np.float32
    assert image.header["sform_code"] == 1 and image.header["qform_code"] == 1
    np.testing.assert_allclose(image.get_qform(), volume.affine, atol=1e-5)
    if suffix == ".nii.gz":
        assert path.read_bytes()[:2] == b"\x1f\x8b"


def test_world_positions_survive(tmp_path: Path, make_volume) -> None:
    volume = make_volume((5, 6, 7))
    loaded = load_nifti(save_nifti(volume, tmp_path / "v.nii.gz"))
    corners = np.array([[i, j, k, 1] for i in (0, 4) for j in (0, 5) for k in (0, 6)], float).T
    np.testing.assert_allclose(loaded.affine @ corners, volume.affine @ corners, atol=1e-4)


def test_foreign_file_has_unknown_modality(tmp_path: Path) -> None:
    path = tmp_path / "plain.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((3, 4, 5), np.int16), np.diag([2.0, 2.0, 3.0, 1.0])), path)
    loaded = load_nifti(path)
    assert loaded.modality == "unknown"
    assert loaded.data.dtype == np.float32 and loaded.shape == (3, 4, 5)
    assert loaded.spacing == (2.0, 2.0, 3.0)


def test_scaled_integers_are_rescaled(tmp_path: Path) -> None:
    image = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4))
    image.header.set_slope_inter(0.5, -10.0)
    path = tmp_path / "scaled.nii"
    nib.save(image, path)
    np.testing.assert_allclose(load_nifti(path).data, np.arange(24).reshape(2, 3, 4) * 0.5 - 10)


def test_2d_image_becomes_one_slice(tmp_path: Path) -> None:
    path = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(np.arange(12, dtype=np.float32).reshape(3, 4), np.eye(4)), path)
    loaded = load_nifti(path)
    assert loaded.shape == (3, 4, 1)
    np.testing.assert_array_equal(loaded.data[:, :, 0], np.arange(12).reshape(3, 4))


def test_4d_with_trailing_singleton_becomes_3d(tmp_path: Path) -> None:
    path = tmp_path / "one_frame.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((3, 4, 5, 1), np.float32), np.eye(4)), path)
    assert load_nifti(path).shape == (3, 4, 5)


def _bad(path: Path, *fragments: str) -> InputError:
    with pytest.raises(InputError) as caught:
        load_nifti(path)
    message = f"{Path(caught.value.source).name}: {caught.value.problem}"  # not pytest's folder names
    assert str(caught.value).startswith(str(path))
    for fragment in fragments:
        assert fragment in message
    return caught.value


def test_real_4d_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "dynamic.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((3, 4, 5, 2), np.float32), np.eye(4)), path)
    _bad(path, "(3, 4, 5, 2)")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_voxels_are_rejected(tmp_path: Path, value: float) -> None:
    data = np.zeros((4, 4, 4), np.float32)
    data[0, 0, :3] = value
    path = tmp_path / "holes.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    _bad(path, "contains 3 non-finite voxels")


def test_missing_file(tmp_path: Path) -> None:
    _bad(tmp_path / "nowhere.nii.gz", "does not exist")


@pytest.mark.parametrize("name", ["empty.nii.gz", "empty.nii"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"")
    _bad(tmp_path / name, "empty")


@pytest.fixture
def written(tmp_path: Path, make_volume) -> dict[str, bytes]:
    volume = make_volume((16, 16, 8))
    return {suffix: save_nifti(volume, tmp_path / f"good{suffix}").read_bytes() for suffix in (".nii", ".nii.gz")}


def test_gzip_cut_in_half(tmp_path: Path, written: dict[str, bytes]) -> None:
    path = tmp_path / "cut.nii.gz"
    path.write_bytes(written[".nii.gz"][: len(written[".nii.gz"]) // 2])
    _bad(path, "cannot be read")


@pytest.mark.parametrize("keep", [100, 352 + 1000])  # inside the header, inside the data
def test_uncompressed_cut(tmp_path: Path, written: dict[str, bytes], keep: int) -> None:
    path = tmp_path / "cut.nii"
    path.write_bytes(written[".nii"][:keep])
    _bad(path, "cannot be read")


def test_gzip_of_garbage(tmp_path: Path) -> None:
    path = tmp_path / "garbage.nii.gz"
    path.write_bytes(gzip.compress(b"not a nifti header" * 40))
    _bad(path)


def test_complex_data_rejected(tmp_path: Path) -> None:
    path = tmp_path / "kspace.nii"
    nib.save(nib.Nifti1Image(np.ones((2, 2, 2), np.complex64), np.eye(4)), path)
    _bad(path, "complex")


def test_save_rejects_other_suffix(tmp_path: Path, make_volume) -> None:
    with pytest.raises(InputError, match="case.png"):
        save_nifti(make_volume(), tmp_path / "case.png")
    assert list(tmp_path.iterdir()) == []


def test_volume_rejects_non_3d() -> None:
    with pytest.raises(ValueError):
        Volume(np.zeros((2, 2)), np.eye(4))


def test_singular_affine_rejected(tmp_path: Path) -> None:
    path = tmp_path / "flat.nii.gz"
    image = nib.Nifti1Image(np.ones((2, 2, 2), np.float32), None)
    image.set_sform(np.diag([1.0, 1.0, 0.0, 1.0]), code=1)
    nib.save(image, path)
    _bad(path, "singular")
