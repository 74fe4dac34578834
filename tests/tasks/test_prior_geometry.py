"""The geometry a slice prior learned: hand-computed pixel sizes for phantom and file data, the range
augmentation adds, the factor-2 warning, and the reconstruction's record of it."""

from __future__ import annotations

import json
import logging

import nibabel as nib
import numpy as np
import pytest
import yaml

from medprior.cli import main
from medprior.diffusion.prior_file import read_prior_json
from medprior.errors import InputError
from medprior.tasks.prior_geometry import pixel_matrix, pixel_mismatch, prior_geometry, training_geometry
from medprior.tasks.priors import load_prior_config


def _config(tmp_path, data, **extra):
    config = {"name": "g", "kind": "slice2d", "image_size": [64, 64], "data": data, **extra}
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(config))
    return load_prior_config(path)


def test_phantom_priors_learned_their_field_of_view_over_image_size(tmp_path):
    body = _config(tmp_path, {"phantom": {"generator": "ct_body", "seeds": [1], "size": [128, 128, 64]}})
    assert training_geometry(body) == {"pixel_mm": [6.0, 6.0], "field_of_view_mm": [384.0, 384.0], "axis": 2}
    head = _config(tmp_path, {"phantom": {"generator": "ct_head", "seeds": [1]}}, axis=0)
    assert training_geometry(head)["pixel_mm"] == [4.0, 192.0 / 64]     # (J, K) = 256 x 1.0 and 128 x 1.5 mm
    augmented = _config(tmp_path, {"phantom": {"generator": "ct_body", "seeds": [1]}},
                        training={"augmentation": {"source_size": [256, 256], "zoom_range": [1.0, 4.0]}})
    assert training_geometry(augmented)["pixel_mm_range"] == [1.5, 6.0]
    assert training_geometry(_config(tmp_path, {"phantom": {"generator": "echo", "seeds": [1]}})) is None


def test_file_priors_take_the_median_field_and_the_range(tmp_path):
    for name, (shape, zoom) in {"a": ((100, 80, 4), 2.0), "b": ((128, 128, 4), 1.0), "c": ((64, 64, 4), 4.0)}.items():
        nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), np.diag([zoom, zoom, 3.0, 1.0])), tmp_path / f"{name}.nii")
    geometry = training_geometry(_config(tmp_path, {"files": {"train": [str(tmp_path / "*.nii")]}}))
    # fields (mm): a 200 x 160, b 128 x 128, c 256 x 256 -> medians 200 x 160; pixels 2-4 by 2.5-4
    assert geometry["field_of_view_mm"] == [200.0, 160.0] and geometry["pixel_mm"] == [3.125, 2.5]
    assert geometry["pixel_mm_range"] == [2.0, 4.0]


def test_the_warning_starts_beyond_a_factor_of_two(caplog):
    content = {"training": {"geometry": {"pixel_mm": [6.0, 6.0], "field_of_view_mm": [384.0, 384.0], "axis": 2}}}
    assert "geometry_warning" not in pixel_mismatch(3.0, content, "p") and "geometry_warning" not in pixel_mismatch(12.0, content, "p")
    with caplog.at_level(logging.WARNING, logger="medprior"):
        fine = pixel_mismatch(1.3, content, "p")
    assert "4.6 times smaller than the 6 mm" in fine["geometry_warning"] and len(caplog.records) == 1
    ranged = {"training": {"geometry": {"pixel_mm": [6.0, 6.0], "pixel_mm_range": [1.5, 6.0], "axis": 2}}}
    assert "geometry_warning" not in pixel_mismatch(1.0, ranged, "p")
    assert "1.5-6 mm" in pixel_mismatch(0.5, ranged, "p")["geometry_warning"]
    assert pixel_mismatch(1.0, {}, "p") == {}


def test_shipped_priors_have_a_derived_geometry():
    assert prior_geometry(read_prior_json("priors/ct_slices"))["pixel_mm"] == [6.0, 6.0]
    assert prior_geometry(read_prior_json("priors/brain_slices"))["pixel_mm"] == [1.875, 1.875]


def test_the_reconstruction_records_the_mismatch(tmp_path):
    data = np.full((64, 64, 2), -1000.0, np.float32)
    data[16:48, 16:48] = 40.0
    nib.save(nib.Nifti1Image(data, np.diag([1.3, 1.3, 2.0, 1.0])), tmp_path / "ct.nii.gz")
    assert main(["simulate", "ct", str(tmp_path / "ct.nii.gz"), "--views", "8", "--slices", "2", "--out", str(tmp_path / "m.h5")]) == 0
    assert main(["recon", str(tmp_path / "m.h5"), "--method", "dds", "--prior", "priors/ct_slices", "--param", "steps=2",
                 "--device", "cpu", "--out", str(tmp_path / "r.nii.gz"), "-q"]) == 0
    facts = json.loads((tmp_path / "r.nii.gz.provenance.json").read_text())["config"]
    assert facts["pixel_mm"] == pytest.approx(1.3) and "4.6 times smaller" in facts["geometry_warning"]


CT_MIXED = {"training": {"geometry": {"pixel_mm": [6.0, 6.0], "pixel_mm_range": [1.5, 6.0]}}}
BRAIN_MIXED = {"training": {"geometry": {"pixel_mm": [1.875, 1.875], "pixel_mm_range": [0.9375, 1.875]}}}
CT_ONE_SIZE = {"training": {"geometry": {"pixel_mm": [6.0, 6.0]}}}


@pytest.mark.parametrize("shape, pixel, content, multiple, expected", [
    ((512, 512), 0.48, CT_MIXED, 4, (160, 160)),     # 245.76 mm / 1.5 = 163.8 -> down to 160 (1.536 mm)
    ((128, 128), 0.66, CT_MIXED, 4, (56, 56)),       # 84.48 / 1.5 = 56.3 -> 56 (1.509 mm)
    ((256, 256), 1.5, CT_MIXED, 4, (256, 256)),      # learned pixels: the grid as it is
    ((64, 64), 8.0, CT_MIXED, 4, (88, 88)),          # 512 / 6 = 85.3 -> up to 88 (5.82 mm)
    ((128, 128), 2.0, CT_ONE_SIZE, 4, (40, 40)),     # 256 / 6 = 42.7 -> down to 40 (6.4 mm)
    ((233, 233), 1.0, BRAIN_MIXED, 8, (240, 240)),   # in range, rounded up to a multiple of 8 (0.971 mm)
    ((256, 128), 0.5, BRAIN_MIXED, 8, (128, 64)),    # 2:1 kept, 1 mm pixels
    ((256, 232), 1.0, BRAIN_MIXED, 8, (256, 232)),
])
def test_pixel_matrix_moves_the_pixels_into_the_range_the_prior_learned(shape, pixel, content, multiple, expected):
    assert pixel_matrix(shape, pixel, content, multiple) == expected
    low, high = (content["training"]["geometry"].get("pixel_mm_range") or [6.0, 6.0])
    new_pixel = shape[0] * pixel / expected[0]
    assert expected[0] * shape[1] == expected[1] * shape[0]  # square pixels
    assert all(n % multiple == 0 for n in expected)
    assert new_pixel >= low - 1e-9 or pixel >= low  # never finer than learned, unless measured so


def test_pixel_matrix_refuses_a_prior_without_geometry_and_sides_no_matrix_near_holds():
    with pytest.raises(InputError, match="m.h5.*does not record"):
        pixel_matrix((64, 64), 1.0, {"training": {}}, 4, "m.h5")
    with pytest.raises(InputError, match="m.h5.*240 x 233.*1920 x 1864"):
        pixel_matrix((240, 233), 1.0, BRAIN_MIXED, 8, "m.h5")
