"""The outputs of one command as a transaction: checked before any work, written aside, moved together.

Every ``medprior`` subcommand declares what it reads and what it writes; :func:`command_outputs`
then gives one guarantee for all of them:

- Before any work, an output is refused (:class:`~medprior.errors.InputError`, exit 2) when it is
  an input of the same command, lies inside an input folder or contains an input; when a file would
  replace a folder or the reverse; when a folder output would replace a folder that is not an earlier
  output of the same command (one without the :data:`MARKER` medprior writes into every folder
  output, and not empty); when two outputs coincide; and when its name is reserved for provenance
  sidecars (``*.provenance.json``), so a sidecar can never collide with another output.
- The command writes into a hidden staging folder beside each final place
  (``.medprior-stage-<host>-<pid>-<random>``); the task sees the staged paths, so everything it
  writes there (sidecars included) is part of the transaction.
- Only when the command succeeds is every staged entry checked once more and moved onto its final
  name, folders replacing folders only under the rule above; a failure while moving undoes the moves
  already made. A failed or interrupted command leaves nothing new and loses nothing.
- Staging folders and atomic-write temporaries left by killed runs (``kill -9``) are removed by the
  next run that writes beside them.

Why not per-file atomicity alone (:func:`~medprior.io.atomic.atomic_path`)? It makes each file
appear whole, but a command that writes several files (an image and its sidecar, a sample stack and
its figure, a split's inputs and truth) could still stop halfway with some of them replaced.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import medprior
from medprior.errors import InputError
from medprior.io.atomic import SIDECAR_SUFFIX, remove_stale_temporaries, scratch_name

MARKER = ".medprior-output"
STAGE_PREFIX = ".medprior-stage-"

OutputKind = Literal["file", "folder", "entries"]


@dataclass(frozen=True)
class Output:
    """One output of a command.

    Args:
        path: where it goes.
        kind: ``"file"``; ``"folder"`` (replaced as a whole); or ``"entries"``, a folder the
            command adds the files and folders of ``members`` to (``phantom --out``), keeping the
            rest of its content.
        option: the command-line option that names it, for error messages.
        members: with ``"entries"``: each file or folder the command writes in ``path``, sidecars
            included, so they are checked before any work and only they are moved there.
    """

    path: Path
    kind: OutputKind = "file"
    option: str = ""
    members: tuple[Output, ...] = ()


def _resolved(path: str | os.PathLike) -> Path:
    return Path(os.path.abspath(path)).resolve()


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_outputs(command: str, inputs: Iterable[str | os.PathLike], outputs: Sequence[Output]) -> None:
    """Refuse, before any work, outputs that would destroy an input, each other, or user data."""
    inputs = [(Path(p), _resolved(p)) for p in inputs]
    seen: dict[Path, Output] = {}
    for output in (*outputs, *(m for o in outputs for m in o.members)):
        target = _resolved(output.path)
        name = output.option or str(output.path)
        if not target.name:
            raise InputError(output.path, f"is not a usable name for {name}")
        if output in outputs and output.path.name.endswith(SIDECAR_SUFFIX):  # members may be sidecars
            raise InputError(output.path, f"names ending in {SIDECAR_SUFFIX} are reserved for medprior's "
                                          f"provenance sidecars; choose another name for {name}")
        if target in seen:
            raise InputError(output.path, f"is given as both {seen[target].option} and {output.option}")
        seen[target] = output
        for given, source in inputs:
            if target == source:
                raise InputError(output.path, f"is an input of this command; {name} must not overwrite it")
            if output.kind != "entries" and _within(target, source):
                raise InputError(output.path, f"lies inside the input folder {given}; choose another {name}")
            if _within(source, target):
                raise InputError(output.path, f"contains the input {given}; choose another {name}")
        _check_replaceable(command, output.path, output.kind)
        for parent in target.parents:
            if parent.exists() and not parent.is_dir():
                raise InputError(output.path, f"cannot be written: {parent} is a file, not a folder")


def _check_replaceable(command: str, path: Path, kind: OutputKind) -> None:
    """A file never replaces a folder nor the reverse; a folder only replaces an earlier output of
    ``command`` (marked) or an empty folder."""
    if not path.exists() and not path.is_symlink():
        return
    if kind == "file" and path.is_dir():
        raise InputError(path, "is a folder; a file output never replaces a folder")
    if kind in ("folder", "entries") and not path.is_dir():
        raise InputError(path, "is a file; a folder output never replaces a file")
    if kind == "folder" and any(path.iterdir()) and marker_command(path) != command:
        found = marker_command(path)
        owner = f"written by `medprior {found}`" if found else "not written by medprior"
        raise InputError(path, f"is a folder {owner}; `medprior {command}` replaces only its own earlier "
                               "output folders: give a new or empty folder")


def marker_command(folder: Path) -> str | None:
    """The command recorded in a folder output's marker, or None when the folder has none."""
    try:
        return json.loads((folder / MARKER).read_text()).get("command")
    except (OSError, ValueError, AttributeError):
        return None


def _write_markers(command: str, staged: Path) -> None:
    """Mark ``staged`` (a folder output) and every folder in it, so reruns may replace them."""
    record = json.dumps({"command": command, "medprior_version": medprior.__version__}) + "\n"
    for folder in (staged, *(p for p in staged.rglob("*") if p.is_dir())):
        (folder / MARKER).write_text(record)


class _Stage:
    """The staging folders of one command run: one per destination folder of plain outputs, and
    one inside each ``"entries"`` folder, standing for it."""

    def __init__(self) -> None:
        self.folders: dict[tuple[Path, bool], Path] = {}
        self.created: list[Path] = []  # destination folders this run made, removed again if it fails

    def folder_for(self, destination: Path, *, entries: bool = False) -> Path:
        destination = _resolved(destination)
        if (destination, entries) not in self.folders:
            missing = [f for f in (destination, *destination.parents) if not f.exists()]
            destination.mkdir(parents=True, exist_ok=True)
            self.created.extend(missing)
            remove_stale_temporaries(destination, STAGE_PREFIX)
            self.folders[destination, entries] = destination / scratch_name(STAGE_PREFIX)
            self.folders[destination, entries].mkdir()
        return self.folders[destination, entries]

    def remove(self, *, failed: bool) -> None:
        for folder in self.folders.values():
            shutil.rmtree(folder, ignore_errors=True)
        for folder in self.created if failed else ():  # deepest first; only if still empty
            try:
                folder.rmdir()
            except OSError:
                pass


def _planned_moves(command: str, stage: _Stage, outputs: Sequence[Output]) -> list[tuple[Path, Path]]:
    """Every staged entry with its final place, each checked against what is there now: all that a
    plain output's staging folder holds (the output and what the task wrote beside it, such as its
    sidecar), and the declared members of each ``"entries"`` output."""
    candidates = []  # (staged, target, kind)
    kinds = {_resolved(o.path): o.kind for o in outputs}
    for (destination, entries), folder in stage.folders.items():
        if not entries:
            candidates += [(entry, destination / entry.name, kinds.get(destination / entry.name, "file"))
                           for entry in sorted(folder.iterdir()) if not entry.name.startswith(".")]
    for output in outputs:
        root = _resolved(output.path)
        for member in output.members:
            target = _resolved(member.path)
            candidates.append((stage.folder_for(root, entries=True) / target.relative_to(root), target, member.kind))
    moves = []
    for staged, target, kind in candidates:
        if not staged.exists():  # a declared member this run did not write (an optional sidecar)
            continue
        if staged.is_dir():
            _write_markers(command, staged)
        _check_replaceable(command, target, "folder" if staged.is_dir() else kind)
        moves.append((staged, target))
    return moves


def _move_all(moves: list[tuple[Path, Path]]) -> None:
    """Rename every staged entry onto its target, whatever is there set aside first; if one rename
    fails, undo every rename made so far (and remove the folders made for them), so the targets are
    as they were."""
    done: list[tuple[Path, Path]] = []
    made: list[Path] = []

    def rename(source: Path, target: Path) -> None:
        os.replace(source, target)
        done.append((source, target))

    try:
        for entry, target in moves:
            missing = [f for f in target.parents if not f.exists()]
            target.parent.mkdir(parents=True, exist_ok=True)
            made = missing + made  # deepest first
            if target.exists() or target.is_symlink():  # set aside until every move has succeeded
                rename(target, entry.parent / (entry.name + ".retired"))
            rename(entry, target)
    except BaseException:
        for source, target in reversed(done):
            os.replace(target, source)
        for folder in made:
            try:
                folder.rmdir()
            except OSError:  # another run (a parallel workflow job) has put something there
                pass
        raise


@contextmanager
def command_outputs(command: str, inputs: Iterable[str | os.PathLike],
                    outputs: Sequence[Output]) -> Iterator[list[Path]]:
    """Check ``outputs`` against ``inputs``, yield the staged path of each output, commit on success.

    The staged path has the output's name inside a staging folder beside it (for ``"entries"``
    outputs, a staging folder inside it that stands for the folder itself). Everything the command
    writes there is moved to its final place together when the block ends without an exception,
    and deleted otherwise.
    """
    check_outputs(command, inputs, outputs)
    stage = _Stage()
    try:
        targets = [_resolved(o.path) for o in outputs]
        staged = [stage.folder_for(t, entries=True) if o.kind == "entries" else stage.folder_for(t.parent) / t.name
                  for o, t in zip(outputs, targets)]
        yield staged
        _move_all(_planned_moves(command, stage, outputs))
    except BaseException:
        stage.remove(failed=True)
        raise
    stage.remove(failed=False)
