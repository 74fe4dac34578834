"""The format-dispatching entry points medprior.io.load and medprior.io.save."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydicom.data import get_testdata_file

from medprior.errors import InputError
from medprior.io import Volume, load, save, save_dicom_series

CT_SMALL = Path(get_testdata_file("CT_small.dcm"))


def test_nifti_round_trip_through_load_and_save(tmp_path: Path, make_volume) -> None:
    volume = make_volume((5, 4, 3))
    path = save(volume, tmp_path / "out" / "case.nii.gz")
    assert path == tmp_path / "out" / "case.nii.gz"
    loaded = load(path, need_3d=True)
    np.testing.assert_array_equal(loaded.data, volume.data)
    np.testing.assert_allclose(loaded.affine, volume.affine, atol=1e-5)
    assert load(str(save(volume, tmp_path / "case.nii"))).shape == (5, 4, 3)


def test_dicom_folder_file_and_list(tmp_path: Path, make_volume) -> None:
    volume = make_volume((6, 5, 4))
    folder = save_dicom_series(volume, tmp_path / "ct", shuffle_names_seed=5)
    files = sorted(folder.iterdir())
    from_folder = load(folder, need_3d=True)
    from_list = load(tuple(reversed(files)))
    np.testing.assert_allclose(from_folder.affine, volume.affine, atol=1e-4)
    np.testing.assert_array_equal(from_list.data, from_folder.data)
    assert load(files[0]).shape == (6, 5, 1)


def test_dicom_without_dcm_suffix_is_sniffed(tmp_path: Path) -> None:
    target = tmp_path / "IMG00017"
    target.write_bytes(CT_SMALL.read_bytes())
    assert load(target).modality == "CT"


def test_ct_small_is_2d() -> None:
    volume = load(CT_SMALL)
    assert volume.shape == (128, 128, 1) and volume.modality == "CT"
    with pytest.raises(InputError, match=r"is a 2D image \(128x128x1\); a 3D volume is needed") as caught:
        load(CT_SMALL, need_3d=True)
    assert "CT_small.dcm" in str(caught.value)


def test_2d_nifti_where_3d_is_needed(tmp_path: Path) -> None:
    path = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 9), np.float32), np.eye(4)), path)
    assert load(path).shape == (8, 9, 1)
    with pytest.raises(InputError, match=r"slice.nii.gz: is a 2D image \(8x9x1\)"):
        load(path, need_3d=True)


def test_4d_nifti_through_load(tmp_path: Path) -> None:
    path = tmp_path / "bold.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3, 4), np.float32), np.eye(4)), path)
    with pytest.raises(InputError, match="bold.nii.gz"):
        load(path)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="ghost.nii.gz: does not exist"):
        load(tmp_path / "ghost.nii.gz")


def test_unrecognised_file(tmp_path: Path) -> None:
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="table.csv: has an unrecognised format"):
        load(tmp_path / "table.csv")


def test_series_uid_with_nifti_is_an_error(tmp_path: Path, make_volume) -> None:
    path = save(make_volume((3, 3, 3)), tmp_path / "v.nii.gz")
    with pytest.raises(InputError, match="v.nii.gz"):
        load(path, series_uid="1.2.3")


def test_save_refuses_other_formats(tmp_path: Path, make_volume) -> None:
    for name in ("case.png", "series_folder", "case.nii.bz2"):
        with pytest.raises(InputError, match=name):
            save(make_volume((3, 3, 3)), tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_save_keeps_geometry_of_canonical_volume(tmp_path: Path, make_volume) -> None:
    volume = make_volume((5, 6, 7)).to_canonical()
    loaded = load(save(volume, tmp_path / "canonical.nii.gz"))
    assert loaded.orientation == "RAS"
    assert isinstance(loaded, Volume)
