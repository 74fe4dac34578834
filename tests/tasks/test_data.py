"""Data-stage tasks: the DICOM and NIfTI copies of a phantom agree; summaries count labels in mL."""

from __future__ import annotations

import numpy as np

from medprior.io import Volume, load, save
from medprior.tasks.data import image_summary, make_ct_dataset, same_field_of_view


def test_ct_dataset_dicom_and_nifti_copies_agree(tmp_path):
    make_ct_dataset(tmp_path, cases=1, seed=3, size=(32, 32, 10), formats=("dicom", "nifti"))
    from_dicom = load(tmp_path / "CT-0003")
    from_nifti = load(tmp_path / "CT-0003.nii.gz")
    np.testing.assert_allclose(from_dicom.affine, from_nifti.affine, atol=1e-4)
    np.testing.assert_allclose(from_dicom.data, from_nifti.data, atol=0.5)
    assert from_dicom.modality == "CT" and from_dicom.metadata["units"] == "HU"
    np.testing.assert_allclose(from_nifti.spacing, (12.0, 12.0, 32.0))  # default 384 x 384 x 320 mm field of view


def test_same_field_of_view():
    assert same_field_of_view((128, 64, 10), (256, 256, 128), (1.5, 1.5, 2.5)) == (3.0, 6.0, 32.0)


def test_label_volumes_in_ml(tmp_path):
    data = np.zeros((10, 10, 10), np.float32)
    data[:5, :5, :5] = 1  # 125 voxels of 8 mm^3 = 1.0 mL
    data[6:, 6:, 6:8] = 2  # 32 voxels = 0.256 mL
    path = save(Volume(data, np.diag([2.0, 2.0, 2.0, 1.0]), "SEG"), tmp_path / "label.nii.gz")
    summary = image_summary(path, label=True)
    assert summary["label_ml"] == "1:1.0 2:0.3"
    assert summary["grid"] == "10x10x10" and summary["spacing_mm"] == "2x2x2"
