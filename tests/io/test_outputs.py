"""Command outputs as one transaction (medprior.io.outputs): refusals before work, all-or-nothing moves."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
from pathlib import Path

import pytest

from medprior.errors import InputError
from medprior.io import outputs as outputs_module
from medprior.io.outputs import MARKER, Output, command_outputs, marker_command


class Boom(RuntimeError):
    pass


def tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` (hidden ones too) -> sha256 of its bytes ('dir' for folders)."""
    return {str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    (tmp_path / "cases" / "a").mkdir(parents=True)
    (tmp_path / "cases" / "a" / "t1.nii.gz").write_text("t1")
    (tmp_path / "in.nii.gz").write_text("image")
    return tmp_path


@pytest.mark.parametrize(("output", "kind", "problem"), [
    ("in.nii.gz", "file", "is an input of this command"),
    ("cases", "folder", "is an input of this command"),
    ("cases/a/out.png", "file", "lies inside the input folder"),
    (".", "folder", "contains the input"),
    ("cases/a/t1.nii.gz.provenance.json", "file", "reserved for medprior's provenance sidecars"),
])
def test_outputs_that_touch_inputs_are_refused_before_any_work(inputs, output, kind, problem):
    before = tree(inputs)
    with pytest.raises(InputError, match=problem):
        with command_outputs("x", [inputs / "in.nii.gz", inputs / "cases"], [Output(inputs / output, kind)]):
            raise AssertionError("the command must not start")
    assert tree(inputs) == before


def test_same_path_twice_is_refused(tmp_path):
    with pytest.raises(InputError, match="both --out and --truth"):
        with command_outputs("x", [], [Output(tmp_path / "o", "folder", "--out"), Output(tmp_path / "o", "folder", "--truth")]):
            pass


@pytest.mark.parametrize(("existing", "kind", "problem"), [
    ("folder", "file", "a file output never replaces a folder"),
    ("file", "folder", "a folder output never replaces a file"),
    ("user_folder", "folder", "not written by medprior"),
    ("other_command_folder", "folder", "written by `medprior phantom`"),
])
def test_what_an_output_may_not_replace(tmp_path, existing, kind, problem):
    target = tmp_path / "out"
    if existing == "file":
        target.write_text("user data")
    else:
        target.mkdir()
        (target / "notes.txt").write_text("user data")
        if existing == "other_command_folder":
            (target / MARKER).write_text('{"command": "phantom"}')
    before = tree(tmp_path)
    with pytest.raises(InputError, match=problem):
        with command_outputs("synthesize", [], [Output(target, kind)]):
            raise AssertionError("the command must not start")
    assert tree(tmp_path) == before


def test_folder_output_replaces_its_own_earlier_output_and_an_empty_folder(tmp_path):
    target = tmp_path / "submission"
    target.mkdir()  # empty: a folder the user made for it
    for content in ("first", "second"):
        with command_outputs("synthesize", [], [Output(target, "folder")]) as (staged,):
            staged.mkdir()
            (staged / "case.nii.gz").write_text(content)
            (staged / "sub").mkdir()
        assert (target / "case.nii.gz").read_text() == content
        assert marker_command(target) == "synthesize" and marker_command(target / "sub") == "synthesize"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["submission"]


def test_all_outputs_appear_together_with_what_the_task_wrote_beside_them(tmp_path):
    data = tmp_path / "data"
    (data / "imagesTr").mkdir(parents=True)
    (data / "imagesTr" / "A__CT.nii.gz").write_text("an earlier case")
    members = (Output(data / "CT-0001", "folder"), Output(data / "imagesTr" / "B__CT.nii.gz"),
               Output(data / "labelsTr" / "B.nii.gz"), Output(data / "B.provenance.json"))
    outputs = [Output(tmp_path / "r.nii.gz"), Output(tmp_path / "figures" / "r.png"), Output(data, "entries", members=members)]
    with command_outputs("x", [], outputs) as (image, figure, entries):
        image.write_text("image")
        image.with_name(image.name + ".provenance.json").write_text("{}")
        figure.write_text("png")
        (entries / "CT-0001").mkdir()
        for name in ("imagesTr", "labelsTr"):
            (entries / name).mkdir()
        (entries / "imagesTr" / "B__CT.nii.gz").write_text("ct")
        (entries / "labelsTr" / "B.nii.gz").write_text("label")
        assert not (tmp_path / "r.nii.gz").exists()  # nothing in place before the command ends
    assert sorted(tree(tmp_path)) == ["data", "data/CT-0001", f"data/CT-0001/{MARKER}", "data/imagesTr",
                                      "data/imagesTr/A__CT.nii.gz", "data/imagesTr/B__CT.nii.gz", "data/labelsTr",
                                      "data/labelsTr/B.nii.gz", "figures", "figures/r.png",
                                      "r.nii.gz", "r.nii.gz.provenance.json"]


def test_a_failed_command_leaves_nothing_new_and_keeps_earlier_outputs(tmp_path):
    (tmp_path / "r.nii.gz").write_text("earlier")
    before = tree(tmp_path)
    with pytest.raises(Boom):
        with command_outputs("x", [], [Output(tmp_path / "r.nii.gz"), Output(tmp_path / "r.png")]) as (image, figure):
            image.write_text("new")
            figure.write_text("new")
            raise Boom
    assert tree(tmp_path) == before


def test_entries_never_replace_user_folders(tmp_path):
    (tmp_path / "CT-0001").mkdir()
    (tmp_path / "CT-0001" / "mine.dcm").write_text("user")
    before = tree(tmp_path)
    members = (Output(tmp_path / "CT-0001", "folder"), Output(tmp_path / "CT-0001.nii.gz"))
    with pytest.raises(InputError, match="not written by medprior"):
        with command_outputs("phantom", [], [Output(tmp_path, "entries", members=members)]):
            raise AssertionError("the command must not start")
    assert tree(tmp_path) == before


def test_a_failing_move_undoes_the_moves_before_it(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text("earlier a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / MARKER).write_text('{"command": "x"}')
    before = tree(tmp_path)
    real_replace, calls = os.replace, []

    def flaky_replace(source, target):
        calls.append(target)
        if len(calls) == 4:  # a.txt moved, old b retired, new b moved: the next one fails
            raise OSError(28, "No space left on device", str(target))
        return real_replace(source, target)

    monkeypatch.setattr(outputs_module.os, "replace", flaky_replace)
    with pytest.raises(OSError):
        with command_outputs("x", [], [Output(tmp_path / "a.txt"), Output(tmp_path / "b", "folder"),
                                       Output(tmp_path / "c.txt")]) as (a, b, c):
            a.write_text("new a")
            b.mkdir()
            c.write_text("new c")
    assert tree(tmp_path) == before


def test_next_run_removes_stage_folders_of_killed_runs(tmp_path):
    process = subprocess.Popen(["true"])
    process.wait()
    host = socket.gethostname().split(".")[0]
    killed = tmp_path / f".medprior-stage-{host}-{process.pid}-0badc0de"
    (killed / "r.nii.gz").parent.mkdir()
    (killed / "r.nii.gz").write_text("half")
    with command_outputs("x", [], [Output(tmp_path / "r.nii.gz")]) as (image,):
        image.write_text("whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.nii.gz"]


def test_a_failed_command_removes_the_folders_it_made_for_its_outputs(tmp_path):
    with pytest.raises(Boom):
        with command_outputs("x", [], [Output(tmp_path / "new" / "deeper" / "r.png"), Output(tmp_path / "d", "entries")]):
            raise Boom
    assert list(tmp_path.iterdir()) == []
