"""Montage geometry: radiological convention and world-coordinate alignment of different grids."""

from __future__ import annotations

import numpy as np
from PIL import Image

from medprior.figures import label_center_mm, orthogonal_montage, slice_planes
from medprior.io import Volume
from medprior.io.resample import resample_like, sample_at_world


def _lps_volume_with_blob(blob_ras_mm):
    """20^3 grid stored LPS (i -> patient left), 2 mm voxels, centred on the origin, one bright voxel."""
    affine = np.diag([-2.0, -2.0, 2.0, 1.0])
    affine[:3, 3] = [19.0, 19.0, -19.0]
    data = np.zeros((20, 20, 20), np.float32)
    ijk = np.linalg.solve(affine, [*blob_ras_mm, 1.0])[:3].round().astype(int)
    data[tuple(ijk)] = 1.0
    return Volume(data, affine, "MR")


def test_axial_view_shows_patient_right_on_image_left_and_anterior_up():
    volume = _lps_volume_with_blob([11.0, 11.0, 1.0])  # patient right, anterior, near the centre slice
    planes = slice_planes(volume, np.array([11.0, 11.0, 1.0]))
    axial = sample_at_world(volume, planes["axial"][0], order=0)
    row, column = np.unravel_index(np.argmax(axial), axial.shape)
    assert column < axial.shape[1] / 2  # right side of the patient drawn on the left
    assert row < axial.shape[0] / 2  # anterior drawn at the top
    coronal = sample_at_world(volume, planes["coronal"][0], order=0)
    assert coronal.max() == 1.0  # plane goes through the blob


def test_resample_onto_own_and_flipped_grid_is_exact():
    rng = np.random.default_rng(0)
    volume = Volume(rng.random((7, 6, 5)).astype(np.float32), np.diag([-1.5, 2.0, 3.0, 1.0]))
    np.testing.assert_allclose(resample_like(volume, volume).data, volume.data, atol=1e-6)
    canonical = volume.to_canonical()
    np.testing.assert_allclose(resample_like(volume, canonical).data, canonical.data, atol=1e-6)
    np.testing.assert_allclose(canonical.data, volume.data[::-1], atol=0)


def test_label_centre_in_world_mm():
    label = _lps_volume_with_blob([5.0, -7.0, 9.0])
    np.testing.assert_allclose(label_center_mm(label), [5.0, -7.0, 9.0], atol=1.0)
    assert label_center_mm(label.with_data(np.zeros(label.shape))) is None


def test_montage_png(tmp_path):
    volume = _lps_volume_with_blob([0.0, 0.0, 0.0])
    path = orthogonal_montage([("a", volume), ("b", volume)], tmp_path / "m.png", label=volume, title="t")
    image = Image.open(path)
    assert image.size[0] > 300 and image.size[1] > 300
    assert list(tmp_path.iterdir()) == [path]
