"""The `medprior` command: what it reports, exit status 2 on bad input, no partial or lost output."""

from __future__ import annotations

import argparse
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from pydicom.data import get_testdata_file

from medprior.cli import build_parser, main

CT_SMALL = get_testdata_file("CT_small.dcm")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medprior.cli", *args], capture_output=True, text=True)


def test_help_lists_commands():
    result = run("--help")
    assert result.returncode == 0
    for command in ("info", "convert", "phantom", "qc"):
        assert command in result.stdout


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


def test_every_command_prints_its_help(capsys):
    """--help of every (sub)command exits 0 with its usage: argparse formats help texts with %, so a
    method summary such as "40 % of each region's SUVmax" once raised a TypeError traceback."""
    commands = list(_commands(build_parser()))
    assert ("segment",) in commands and ("simulate", "us") in commands
    for path in commands:
        assert main([*path, "--help"]) == 0, path
        assert capsys.readouterr().out.startswith("usage: medprior"), path


def test_info_on_pydicom_ct_small(capsys):
    assert main(["info", CT_SMALL]) == 0
    out = capsys.readouterr().out
    assert "128 x 128 x 1 voxels" in out
    assert "0.661 x 0.661" in out
    assert "modality:    CT" in out
    assert "-896.0 .. 1167.0 HU" in out


def test_bad_input_exits_2_with_one_line_and_no_traceback(tmp_path):
    bad = tmp_path / "random.dcm"
    bad.write_bytes(np.random.default_rng(0).bytes(2000))
    result = run("info", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "random.dcm" in result.stderr


def test_failed_convert_keeps_earlier_good_output(tmp_path):
    out = tmp_path / "case.nii.gz"
    assert main(["convert", CT_SMALL, str(out)]) == 0
    good = out.read_bytes()
    empty = tmp_path / "empty.nii.gz"
    empty.write_bytes(b"")
    assert main(["convert", str(empty), str(out)]) == 2
    assert out.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.nii.gz", "case.nii.gz.provenance.json", "empty.nii.gz"]


def test_convert_keeps_dicom_geometry(tmp_path):
    out = tmp_path / "ct.nii.gz"
    assert main(["convert", CT_SMALL, str(out)]) == 0
    image = nib.load(out)
    # CT_small: ImagePositionPatient (-158.135803, -179.035797, -75.699997) LPS, identity orientation
    np.testing.assert_allclose(image.affine[:3, 3], [158.135803, 179.035797, -75.699997], atol=1e-4)
    np.testing.assert_allclose(np.diag(image.affine)[:2], [-0.661468, -0.661468], atol=1e-6)
    assert image.get_fdata().min() == -896 and image.get_fdata().max() == 1167


def test_unwritable_output_exits_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["convert", CT_SMALL, str(blocker / "sub" / "out.nii.gz")]) == 2


def test_wrong_output_format_exits_2(tmp_path):
    assert main(["convert", CT_SMALL, str(tmp_path / "out.png")]) == 2
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("kind, expected", [
    ("ct", ["CT-0007", "CT-0007.nii.gz", "CT-0007.provenance.json"]),
    ("brain", ["BraTS-GLI-00007-000", "BraTS-GLI-00007-000.provenance.json"]),
    ("petct", ["SIM-007.provenance.json", "imagesTr", "labelsTr"]),
])
def test_phantom_writes_real_layouts(kind, expected, tmp_path):
    size = {"ct": ["32", "32", "12"], "brain": ["48", "48", "31"], "petct": ["32", "32", "24"]}[kind]
    assert main(["phantom", kind, "--out", str(tmp_path), "--cases", "1", "--seed", "7", "--size", *size]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == expected


def test_phantom_rejects_zero_cases(tmp_path):
    assert main(["phantom", "ct", "--out", str(tmp_path / "x"), "--cases", "0", "--size", "16", "16", "8"]) == 2
    assert not (tmp_path / "x").exists()


def test_simulate_recon_evaluate_chain(tmp_path):
    assert main(["phantom", "ct", "--out", str(tmp_path), "--seed", "4", "--size", "48", "48", "4",
                 "--format", "nifti"]) == 0
    volume, measurement = tmp_path / "CT-0004.nii.gz", tmp_path / "sv8.h5"
    assert main(["simulate", "ct", str(volume), "--views", "8", "--slices", "2", "--out", str(measurement)]) == 0
    assert main(["recon", str(measurement), "--method", "tv", "--tv-iterations", "5", "--out",
                 str(tmp_path / "tv.nii.gz")]) == 0
    assert main(["evaluate", "--reference", str(volume), "--estimate", str(tmp_path / "tv.nii.gz"),
                 "--window", "-1000", "1000", "--out", str(tmp_path / "tv.metrics.json")]) == 0
    assert (tmp_path / "tv.metrics.json").stat().st_size > 100


def test_recon_of_a_foreign_file_exits_2(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    assert main(["recon", str(bad), "--method", "fbp", "--out", str(tmp_path / "out.nii.gz")]) == 2
    assert not (tmp_path / "out.nii.gz").exists()
    assert main(["simulate", "ct", str(bad), "--out", str(tmp_path / "m.h5")]) == 2
