"""Atomic output: a file or folder appears complete under its final name, or not at all.

Every writer in medprior goes through :func:`atomic_path`: it hands out a temporary name next to
the target (same filesystem), and renames it over the target only when the ``with`` block ends
without an exception. A crash or a bad input therefore never leaves a partial file, and never
replaces an earlier good output. Temporaries carry the host and process id of their writer
(:func:`scratch_name`), so the next write beside them can tell a killed run's leftovers from a
live run's files and remove them (:func:`remove_stale_temporaries`). Commands group their outputs
further into one transaction: :mod:`medprior.io.outputs`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import medprior

NIFTI_SUFFIXES = (".nii.gz", ".nii")
SIDECAR_SUFFIX = ".provenance.json"
STALE_AFTER_S = 24 * 3600  # a temporary of another host is left alone for a day (it may be running)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname().split(".")[0]) or "host"


def scratch_name(prefix: str, suffix: str = "") -> str:
    """``<prefix><host>-<pid>-<random><suffix>``: a temporary name that says who made it."""
    return f"{prefix}{_host()}-{os.getpid()}-{secrets.token_hex(4)}{suffix}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, prefix: str) -> list[Path]:
    """Delete the temporaries named ``<prefix><host>-<pid>-...`` in ``folder`` whose writer is gone:
    a dead process of this host, or any other host's older than a day. Returns what was removed."""
    pattern = re.compile(re.escape(prefix) + r"(?P<host>[^.]+?)-(?P<pid>\d+)-[0-9a-f]+(\..*)?$")
    removed = []
    for entry in Path(folder).glob(glob_escape(prefix) + "*"):
        match = pattern.match(entry.name)
        if match is None:
            continue
        if match["host"] == _host():
            stale = not _alive(int(match["pid"]))
        else:
            stale = time.time() - entry.lstat().st_mtime > STALE_AFTER_S
        if stale:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def glob_escape(text: str) -> str:
    """``text`` with glob's special characters taken literally."""
    return re.sub(r"([*?[])", r"[\1]", text)


@contextmanager
def atomic_path(target: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; move it onto ``target`` on success, delete it on failure.

    Args:
        target: final file (or folder, with ``directory=True``) name.
        directory: hand out an empty temporary folder instead of a file name. An existing
            ``target`` folder is replaced only after the new one is complete.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}."
    remove_stale_temporaries(target.parent, prefix)
    temporary = target.parent / scratch_name(prefix, ".tmp" + ("" if directory else _suffix(target)))
    if directory:
        temporary.mkdir(_permissions(True))
    else:
        temporary.touch(_permissions(False), exist_ok=False)
    try:
        yield temporary
        if directory and target.exists():
            retired = target.parent / scratch_name(prefix, ".old")
            os.replace(target, retired)
            os.replace(temporary, target)
            shutil.rmtree(retired)
        else:
            os.replace(temporary, target)
    except BaseException:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)
        raise


def _permissions(directory: bool) -> int:
    """The mode a plain ``open``/``mkdir`` would give under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def _suffix(path: Path) -> str:
    """The full extension of ``path`` (``.nii.gz`` counts as one), so writers can infer formats."""
    name = path.name.lower()
    for suffix in (*NIFTI_SUFFIXES, ".tar.gz"):
        if name.endswith(suffix):
            return suffix
    return path.suffix


def sidecar_path(output: str | os.PathLike) -> Path:
    """The JSON sidecar next to an output: ``case.nii.gz`` -> ``case.nii.gz.provenance.json``,
    ``dir/`` -> ``dir.provenance.json``. The suffix is reserved: no command writes an output named so."""
    output = Path(output)
    return output.with_name(output.name + SIDECAR_SUFFIX)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, or of every file under a folder (sorted by relative path)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def write_json(path: str | os.PathLike, content: Mapping[str, Any]) -> Path:
    """Write ``content`` as indented JSON, atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(content, indent=2, sort_keys=True, default=str) + "\n")
    return Path(path)


def write_sidecar(output: str | os.PathLike, *, config: Mapping[str, Any] | None = None,
                  seeds: Mapping[str, int] | None = None,
                  inputs: list[str | os.PathLike] | tuple = ()) -> Path:
    """Write the provenance sidecar of ``output``: medprior version, config, seeds, input hashes."""
    return write_json(sidecar_path(output), {
        "medprior_version": medprior.__version__,
        "output": Path(output).name,
        "config": dict(config or {}),
        "seeds": dict(seeds or {}),
        "inputs": {str(p): file_sha256(p) for p in inputs},
    })
