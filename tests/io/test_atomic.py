"""Atomic output, sidecar naming and file hashes (medprior.io.atomic)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest

import medprior
from medprior.io import atomic_path, file_sha256, save_nifti, sidecar_path, write_sidecar
from medprior.io import nifti as nifti_module


class Boom(RuntimeError):
    pass


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_atomic_file_appears_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out" / "result.txt"
    with atomic_path(target) as temporary:
        assert temporary.parent == target.parent and temporary != target
        temporary.write_text("good")
        assert not target.exists()
    assert target.read_text() == "good"
    assert _leftovers(target.parent, {"result.txt"}) == []


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "result.nii.gz"
    with pytest.raises(Boom):
        with atomic_path(target) as temporary:
            temporary.write_bytes(b"partial")
            raise Boom
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_earlier_file(tmp_path: Path) -> None:
    target = tmp_path / "result.txt"
    target.write_text("earlier")
    with pytest.raises(Boom):
        with atomic_path(target) as temporary:
            temporary.write_text("half-")
            raise Boom
    assert target.read_text() == "earlier"
    assert _leftovers(tmp_path, {"result.txt"}) == []


def test_failed_folder_write_keeps_earlier_folder(tmp_path: Path) -> None:
    target = tmp_path / "series"
    with atomic_path(target, directory=True) as temporary:
        (temporary / "a.dcm").write_text("one")
    with pytest.raises(Boom):
        with atomic_path(target, directory=True) as temporary:
            (temporary / "b.dcm").write_text("two")
            raise Boom
    assert sorted(p.name for p in target.iterdir()) == ["a.dcm"]
    assert _leftovers(tmp_path, {"series"}) == []
    with atomic_path(target, directory=True) as temporary:
        (temporary / "c.dcm").write_text("three")
    assert sorted(p.name for p in target.iterdir()) == ["c.dcm"]
    assert _leftovers(tmp_path, {"series"}) == []


def test_crashing_nifti_writer_keeps_earlier_output(tmp_path: Path, make_volume, monkeypatch) -> None:
    target = tmp_path / "case.nii.gz"
    save_nifti(make_volume(), target)
    before = target.read_bytes()

    def crash(image, filename):
        Path(filename).write_bytes(b"\x1f\x8b half a file")
        raise Boom

    monkeypatch.setattr(nifti_module.nib, "save", crash)
    with pytest.raises(Boom):
        save_nifti(make_volume(), target)
    assert target.read_bytes() == before
    assert _leftovers(tmp_path, {"case.nii.gz"}) == []


@pytest.mark.parametrize(("output", "sidecar"), [
    ("case.nii.gz", "case.nii.gz.provenance.json"), ("case.nii", "case.nii.provenance.json"),
    ("series", "series.provenance.json"), ("metrics.json", "metrics.json.provenance.json"),
    ("case.json", "case.json.provenance.json"), ("sub/dir/t1.2.nii.gz", "sub/dir/t1.2.nii.gz.provenance.json"),
])
def test_sidecar_path(output: str, sidecar: str) -> None:
    assert sidecar_path(output) == Path(sidecar)


def test_file_sha256_of_file_and_folder(tmp_path: Path) -> None:
    file = tmp_path / "data" / "a.bin"
    file.parent.mkdir()
    payload = np.arange(300_000, dtype=np.uint32).tobytes()  # more than one 1 MiB block
    file.write_bytes(payload)
    assert file_sha256(file) == hashlib.sha256(payload).hexdigest()
    (tmp_path / "data" / "b.bin").write_bytes(b"b")
    folder_hash = file_sha256(tmp_path / "data")
    assert folder_hash != file_sha256(file)
    (tmp_path / "data" / "b.bin").rename(tmp_path / "data" / "c.bin")
    assert file_sha256(tmp_path / "data") != folder_hash  # names count, not only bytes


def test_write_sidecar_records_inputs(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("input")
    output = tmp_path / "out.nii.gz"
    path = write_sidecar(output, config={"steps": 3}, seeds={"noise": 7}, inputs=[source])
    content = json.loads(path.read_text())
    assert path == tmp_path / "out.nii.gz.provenance.json"
    assert content["medprior_version"] == medprior.__version__
    assert content["config"] == {"steps": 3} and content["seeds"] == {"noise": 7}
    assert content["inputs"] == {str(source): hashlib.sha256(b"input").hexdigest()}


def test_outputs_get_the_usual_permissions_not_the_temporary_ones(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "out.txt") as temporary:
            temporary.write_text("x")
        with atomic_path(tmp_path / "folder", directory=True) as temporary:
            (temporary / "f").write_text("y")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o755


def test_next_write_removes_a_killed_writers_temporaries_only(tmp_path):
    """Leftovers of a dead process are removed by the next write of the same target; a live
    process's temporary, another target's and files of other names stay."""
    dead = _dead_pid()
    host = socket.gethostname().split(".")[0]
    killed = tmp_path / f".case.nii.gz.{host}-{dead}-0badc0de.tmp.nii.gz"
    killed_folder = tmp_path / f".series.{host}-{dead}-0badc0de.tmp"
    live = tmp_path / f".case.nii.gz.{host}-{os.getpid()}-12345678.tmp.nii.gz"
    other = tmp_path / f".case.nii.gz.provenance.json.{host}-{dead}-0badc0de.tmp"
    for path in (killed, live, other, tmp_path / "notes.txt"):
        path.write_text("x")
    killed_folder.mkdir()
    with atomic_path(tmp_path / "case.nii.gz") as temporary:
        temporary.write_text("new")
    assert not killed.exists() and live.exists() and other.exists() and killed_folder.exists()
    with atomic_path(tmp_path / "series", directory=True):
        pass
    assert not killed_folder.exists()


def _dead_pid() -> int:
    """The id of a process that has exited."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid
