"""DICOM series reading and writing (medprior.io.dicom).

The independent truth for geometry is the DICOM standard applied by hand to the tags of each file:
pixel (row r, column c) of a slice lies at ``P + c dc X + r dr Y`` in LPS mm, RAS = LPS with x and
y negated. No test below uses medprior's own affine code to compute the expected positions.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid
from scipy.spatial.transform import Rotation

from medprior.errors import InputError
from medprior.io import Volume, list_dicom_series, load_dicom_series, save_dicom_series

CT_SMALL = Path(get_testdata_file("CT_small.dcm"))


def hand_world(ds: pydicom.Dataset, r: float, c: float) -> np.ndarray:
    """RAS mm of pixel (row r, column c) of a slice, from its tags by the DICOM definition."""
    x = np.array([float(v) for v in ds.ImageOrientationPatient[:3]])
    y = np.array([float(v) for v in ds.ImageOrientationPatient[3:]])
    row_spacing, column_spacing = (float(v) for v in ds.PixelSpacing)
    lps = np.array([float(v) for v in ds.ImagePositionPatient]) + c * column_spacing * x + r * row_spacing * y
    return lps * np.array([-1.0, -1.0, 1.0])


def check_against_tags(volume: Volume, files: list[Path]) -> list[int]:
    """Every file's corner pixels sit where the affine puts them and hold the file's values.

    Returns the slice index ``k`` found for each file.
    """
    ks = []
    for file in files:
        ds = pydicom.dcmread(file)
        rows, columns = int(ds.Rows), int(ds.Columns)
        assert volume.shape[:2] == (columns, rows)
        origins = np.array([volume.affine @ [0, 0, k, 1] for k in range(volume.shape[2])])[:, :3]
        distance = np.linalg.norm(origins - hand_world(ds, 0, 0), axis=1)
        k = int(distance.argmin())
        assert distance[k] < 1e-4, f"no slice of the volume starts where {file.name} does"
        for r in (0, rows - 1):
            for c in (0, columns - 1):
                np.testing.assert_allclose((volume.affine @ [c, r, k, 1])[:3], hand_world(ds, r, c), atol=1e-4)
        values = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_allclose(volume.data[:, :, k], values.T, atol=1e-3)
        ks.append(k)
    assert sorted(ks) == list(range(volume.shape[2]))
    return ks


def rotation_affine(rotation: np.ndarray, spacing, origin) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = rotation * np.asarray(spacing, float)
    affine[:3, 3] = origin
    return affine


# ------------------------------------------------------------------------------------ round trips


def test_shuffled_oblique_series_round_trips(tmp_path: Path, make_volume) -> None:
    volume = make_volume((12, 10, 7))  # 0.7 x 0.9 x 2.5 mm, rotated about x, y and z
    folder = save_dicom_series(volume, tmp_path / "series", shuffle_names_seed=11)
    files = sorted(folder.iterdir())
    assert len(files) == 7 and not any(f.name.startswith("IM") for f in files)
    numbers = [int(pydicom.dcmread(f, stop_before_pixels=True).InstanceNumber) for f in files]
    assert numbers != sorted(numbers)  # name order is not slice order

    loaded = load_dicom_series(folder)
    np.testing.assert_allclose(loaded.affine, volume.affine, rtol=0, atol=1e-4)
    assert np.abs(loaded.data - volume.data).max() <= 0.5
    assert loaded.shape == volume.shape
    np.testing.assert_allclose(loaded.spacing, (0.7, 0.9, 2.5), atol=1e-6)
    check_against_tags(loaded, files)
    assert loaded.modality == "CT"
    assert loaded.metadata["units"] == "HU"
    assert loaded.metadata["series_description"] == "medprior"
    assert loaded.metadata["source"] == str(folder)


def test_list_of_files_in_random_order_gives_the_same_volume(tmp_path: Path, make_volume, rng) -> None:
    folder = save_dicom_series(make_volume((8, 9, 6)), tmp_path / "series")
    reference = load_dicom_series(folder)
    files = sorted(folder.iterdir())
    shuffled = [files[i] for i in rng.permutation(len(files))]
    loaded = load_dicom_series([str(f) for f in shuffled])
    np.testing.assert_array_equal(loaded.affine, reference.affine)
    np.testing.assert_array_equal(loaded.data, reference.data)
    assert loaded.metadata["source"] == str(shuffled[0])


def test_sheared_stack_gantry_tilt(tmp_path: Path, oblique) -> None:
    affine = oblique((5.0, 10.0, -20.0))
    affine[:3, 2] += 0.4 * affine[:3, 1] / np.linalg.norm(affine[:3, 1])  # slices slide along j
    volume = Volume(np.arange(6 * 5 * 4, dtype=np.float32).reshape(6, 5, 4), affine, "CT")
    folder = save_dicom_series(volume, tmp_path / "tilt", shuffle_names_seed=2)
    loaded = load_dicom_series(folder)
    np.testing.assert_allclose(loaded.affine, affine, atol=1e-4)
    check_against_tags(loaded, sorted(folder.iterdir()))


def test_left_handed_grid_reads_back_flipped_in_k_at_the_same_places(tmp_path: Path, make_volume, oblique) -> None:
    affine = oblique()
    affine[:3, 2] *= -1
    volume = make_volume((6, 5, 4), affine=affine)
    loaded = load_dicom_series(save_dicom_series(volume, tmp_path / "left"))
    k = volume.shape[2] - 1
    np.testing.assert_allclose(loaded.affine @ [0, 0, k, 1], volume.affine @ [0, 0, 0, 1], atol=1e-4)
    np.testing.assert_allclose(loaded.affine[:3, :2], volume.affine[:3, :2], atol=1e-6)
    np.testing.assert_allclose(loaded.affine[:3, 2], -volume.affine[:3, 2], atol=1e-6)
    assert np.abs(loaded.data[:, :, ::-1] - volume.data).max() <= 0.5


def test_mr_values_round_trip_to_half_a_rescale_step(tmp_path: Path, make_volume) -> None:
    volume = make_volume((7, 6, 3), modality="MR", low=0.0, high=1.0)
    folder = save_dicom_series(volume, tmp_path / "mr")
    ds = pydicom.dcmread(folder / "IM0000.dcm")
    assert ds.SOPClassUID == MRImageStorage and ds.Modality == "MR"
    stored = np.stack([pydicom.dcmread(f).pixel_array for f in folder.iterdir()])
    assert stored.min() < -32000 and stored.max() > 32000  # the 16-bit range is used
    loaded = load_dicom_series(folder)
    assert np.abs(loaded.data - volume.data).max() <= float(ds.RescaleSlope) / 2 + 1e-7
    assert loaded.modality == "MR" and "units" not in loaded.metadata


def test_unknown_modality_is_secondary_capture(tmp_path: Path, make_volume) -> None:
    folder = save_dicom_series(make_volume((4, 4, 2), modality="unknown"), tmp_path / "ot")
    assert pydicom.dcmread(folder / "IM0000.dcm").Modality == "OT"
    assert load_dicom_series(folder).modality == "unknown"


def test_written_files_are_valid_dicom(tmp_path: Path, make_volume) -> None:
    volume = make_volume((6, 5, 3))
    folder = save_dicom_series(volume, tmp_path / "ct", series_description="recon", patient_id="P7",
                               study_uid="1.2.3.4", series_uid="1.2.3.4.5")
    assert sorted(p.name for p in folder.iterdir()) == ["IM0000.dcm", "IM0001.dcm", "IM0002.dcm"]
    sops = set()
    for k in range(3):
        ds = pydicom.dcmread(folder / f"IM{k:04d}.dcm")
        assert ds.preamble == b"\0" * 128
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.SOPClassUID == CTImageStorage == ds.file_meta.MediaStorageSOPClassUID
        assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
        sops.add(ds.SOPInstanceUID)
        assert (ds.StudyInstanceUID, ds.SeriesInstanceUID) == ("1.2.3.4", "1.2.3.4.5")
        assert ds.FrameOfReferenceUID and ds.Modality == "CT" and ds.InstanceNumber == k + 1
        assert (ds.PatientID, ds.SeriesDescription) == ("P7", "recon")
        assert (ds.Rows, ds.Columns) == (5, 6)
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 16, 15, 1)
        assert (ds.SamplesPerPixel, ds.PhotometricInterpretation) == (1, "MONOCHROME2")
        assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (1.0, -1024.0)
        assert ds.pixel_array.dtype == np.int16
        np.testing.assert_allclose(float(ds.SpacingBetweenSlices), 2.5, atol=1e-9)
        np.testing.assert_allclose(float(ds.SliceThickness), 2.5, atol=1e-9)
        np.testing.assert_allclose([float(v) for v in ds.PixelSpacing], [0.9, 0.7], atol=1e-9)
        np.testing.assert_allclose(ds.pixel_array.T - 1024.0, volume.data[:, :, k], atol=0.5)
    assert len(sops) == 3


def test_failed_write_keeps_earlier_series(tmp_path: Path, make_volume, oblique) -> None:
    folder = save_dicom_series(make_volume((4, 4, 2)), tmp_path / "s")
    before = sorted(p.name for p in folder.iterdir())
    skewed = oblique()
    skewed[:3, 1] += 0.3 * skewed[:3, 0]  # i and j not perpendicular: DICOM cannot hold it
    with pytest.raises(InputError, match="perpendicular"):
        save_dicom_series(Volume(np.zeros((4, 4, 2)), skewed), folder)
    assert sorted(p.name for p in folder.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_ct_small() -> None:
    volume = load_dicom_series(CT_SMALL)
    assert volume.shape == (128, 128, 1)
    np.testing.assert_allclose(volume.spacing[:2], (0.661468, 0.661468), atol=1e-6)
    assert volume.spacing[2] == pytest.approx(5.0)  # SliceThickness, for want of a second slice
    assert volume.modality == "CT" and volume.metadata["units"] == "HU"
    assert (volume.data.min(), volume.data.max()) == (-896.0, 1167.0)
    assert volume.metadata["series_uid"] == "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322"
    assert volume.metadata["source"] == str(CT_SMALL)
    check_against_tags(volume, [CT_SMALL])
    # the affine by hand: LPS axis x -> RAS -x, origin at ImagePositionPatient negated in x and y
    np.testing.assert_allclose(volume.affine[:3, 3], [158.135803, 179.035797, -75.699997], atol=1e-6)
    np.testing.assert_allclose(np.diag(volume.affine)[:3], [-0.661468, -0.661468, 5.0], atol=1e-6)


@settings(max_examples=12, deadline=None)
@given(quaternion=st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(lambda q: np.linalg.norm(q) > 0.1),
       spacing=st.tuples(*[st.floats(0.2, 4.0)] * 3),
       origin=st.tuples(*[st.floats(-300, 300)] * 3),
       shape=st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(2, 4)))
def test_any_orientation_round_trips(quaternion, spacing, origin, shape) -> None:
    affine = rotation_affine(Rotation.from_quat(quaternion).as_matrix(), spacing, origin)
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) * 7 - 500
    with tempfile.TemporaryDirectory() as temporary:
        folder = save_dicom_series(Volume(data, affine, "CT"), Path(temporary) / "s", shuffle_names_seed=0)
        loaded = load_dicom_series(folder)
        check_against_tags(loaded, sorted(folder.iterdir()))
    np.testing.assert_allclose(loaded.affine, affine, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(loaded.data, data)


# ------------------------------------------------------------------------------------ several series


@pytest.fixture
def two_series(tmp_path: Path, make_volume) -> tuple[Path, list[str]]:
    folder = tmp_path / "mixed"
    folder.mkdir()
    uids = []
    for name, n in (("first", 3), ("second", 4)):
        uid = generate_uid()
        written = save_dicom_series(make_volume((4, 4, n)), tmp_path / name, series_description=f"{name} desc",
                                    series_uid=uid)
        for file in written.iterdir():
            shutil.copy(file, folder / f"{name}_{file.name}")
        uids.append(uid)
    return folder, uids


def test_list_dicom_series(two_series) -> None:
    folder, uids = two_series
    infos = {info.series_uid: info for info in list_dicom_series(folder)}
    assert set(infos) == set(uids)
    assert infos[uids[0]].n_files == 3 and infos[uids[1]].n_files == 4
    assert infos[uids[1]].description == "second desc" and infos[uids[1]].modality == "CT"
    assert all(f.name.startswith("second_") for f in infos[uids[1]].files)


def test_several_series_need_a_choice(two_series) -> None:
    folder, uids = two_series
    with pytest.raises(InputError) as caught:
        load_dicom_series(folder)
    message = str(caught.value)
    for fragment in (str(folder), uids[0], uids[1], "first desc", "second desc", "3 files", "4 files",
                     "series_uid="):
        assert fragment in message
    assert load_dicom_series(folder, series_uid=uids[1]).shape == (4, 4, 4)
    assert load_dicom_series(folder, series_uid=uids[0]).metadata["series_uid"] == uids[0]


def test_unknown_series_uid(two_series) -> None:
    folder, uids = two_series
    with pytest.raises(InputError, match="has no series 1.2.3.999") as caught:
        load_dicom_series(folder, series_uid="1.2.3.999")
    assert uids[0] in str(caught.value) and folder.name in str(caught.value)


# ------------------------------------------------------------------------------------ bad input


@pytest.fixture
def series(tmp_path: Path) -> Path:
    """An axial 5-slice series IM0000..IM0004 at z = 0, 2, 4, 6, 8 mm."""
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    data = np.linspace(-100, 100, 6 * 5 * 5, dtype=np.float32).reshape(6, 5, 5)
    return save_dicom_series(Volume(data, affine, "CT"), tmp_path / "series")


def edit(file: Path, **tags) -> None:
    ds = pydicom.dcmread(file)
    for keyword, value in tags.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(file)


def raises_naming(source, *fragments: str, series_uid: str | None = None) -> str:
    with pytest.raises(InputError) as caught:
        load_dicom_series(source, series_uid=series_uid)
    error = caught.value
    assert str(error).startswith(str(error.source)) and error.source is not None
    # look for the fragments in the file name and the problem, not in pytest's tmp folder names
    message = f"{Path(error.source).name}: {error.problem}"
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_missing_folder(tmp_path: Path) -> None:
    raises_naming(tmp_path / "nothing", "nothing", "does not exist")


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    raises_naming(tmp_path / "empty", "empty", "no DICOM files")


def test_missing_file_in_list(series: Path) -> None:
    raises_naming([series / "IM0000.dcm", series / "IM0099.dcm"], "IM0099.dcm", "does not exist")


def test_empty_dcm(tmp_path: Path) -> None:
    (tmp_path / "zero.dcm").write_bytes(b"")
    raises_naming(tmp_path / "zero.dcm", "zero.dcm", "empty")


def test_random_bytes(tmp_path: Path, rng) -> None:
    (tmp_path / "noise.dcm").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    raises_naming(tmp_path / "noise.dcm", "noise.dcm", "not a readable DICOM")


@pytest.mark.parametrize("fraction", [0.5, 0.05])
def test_truncated_dcm(tmp_path: Path, series: Path, fraction: float) -> None:
    content = (series / "IM0002.dcm").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(content[: int(len(content) * fraction)])
    raises_naming(tmp_path / "cut.dcm", "cut.dcm")


def test_no_pixel_data(tmp_path: Path) -> None:
    ds = pydicom.dcmread(CT_SMALL)
    del ds.PixelData
    ds.save_as(tmp_path / "header_only.dcm")
    raises_naming(tmp_path / "header_only.dcm", "header_only.dcm", "no pixel data")


@pytest.mark.parametrize("tag", ["ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"])
def test_no_geometry(tmp_path: Path, tag: str) -> None:
    ds = pydicom.dcmread(CT_SMALL)
    delattr(ds, tag)
    ds.save_as(tmp_path / "nowhere.dcm")
    raises_naming(tmp_path / "nowhere.dcm", "nowhere.dcm", tag)


def test_junk_file_in_folder(series: Path) -> None:
    (series / "notes.txt").write_text("scanned on tuesday")
    raises_naming(series, "notes.txt", "not a readable DICOM")


def test_dicomdir_and_hidden_files_are_ignored(series: Path) -> None:
    (series / "DICOMDIR").write_bytes(b"not really")
    (series / ".DS_Store").write_bytes(b"\0\1\2")
    (series / "sub").mkdir()
    assert load_dicom_series(series).shape == (6, 5, 5)


def test_duplicate_slice(series: Path) -> None:
    shutil.copy(series / "IM0003.dcm", series / "IM0003_copy.dcm")
    edit(series / "IM0003_copy.dcm", SOPInstanceUID=generate_uid())
    raises_naming(series, "series", "IM0003.dcm", "IM0003_copy.dcm", "duplicate slices")


def test_missing_slice(series: Path) -> None:
    (series / "IM0002.dcm").unlink()
    raises_naming(series, "uneven slice spacing", "IM0001.dcm", "IM0003.dcm", "jumps by 4 mm")


def test_uneven_spacing_beyond_tolerance(series: Path) -> None:
    edit(series / "IM0004.dcm", ImagePositionPatient=[-0.0, -0.0, 8.1])  # 5% of the 2 mm gap
    raises_naming(series, "uneven slice spacing", "IM0003.dcm", "IM0004.dcm")


def test_spacing_jitter_within_tolerance_is_accepted(series: Path) -> None:
    edit(series / "IM0004.dcm", ImagePositionPatient=[-0.0, -0.0, 8.01])  # 0.01 mm, below 0.02 mm
    assert load_dicom_series(series).shape == (6, 5, 5)


def test_slice_off_the_line(series: Path) -> None:
    edit(series / "IM0002.dcm", ImagePositionPatient=[-3.0, -0.0, 4.0])
    raises_naming(series, "IM0002.dcm", "off the straight line")


def test_inconsistent_orientation(series: Path) -> None:
    c, s = np.cos(0.1), np.sin(0.1)
    edit(series / "IM0001.dcm", ImageOrientationPatient=[-c, -s, 0, s, -c, 0])
    raises_naming(series, "IM0001.dcm", "ImageOrientationPatient", "inconsistent")


def test_inconsistent_pixel_spacing(series: Path) -> None:
    edit(series / "IM0001.dcm", PixelSpacing=[0.8, 0.9])
    raises_naming(series, "IM0001.dcm", "PixelSpacing", "inconsistent")


def test_inconsistent_matrix(series: Path) -> None:
    edit(series / "IM0004.dcm", Rows=6, Columns=5, PixelData=np.zeros((6, 5), "<i2").tobytes())
    raises_naming(series, "IM0004.dcm", "rows", "inconsistent")


def test_non_orthonormal_orientation(series: Path) -> None:
    for file in series.iterdir():
        edit(file, ImageOrientationPatient=[1, 0, 0, 0.5, 1, 0])
    raises_naming(series, "IM000", "orthonormal")
