"""Atomic output: a file or folder appears complete under its final name, or not at all.

Every writer in medprior goes through :func:`atomic_path`: it hands out a temporary name next to
the target (same filesystem), and renames it over the target only when the ``with`` block ends
without an exception. A crash or a bad input therefore never leaves a partial file, and never
replaces an earlier good output.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import medprior

NIFTI_SUFFIXES = (".nii.gz", ".nii")


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
    if directory:
        temporary = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=target.parent))
    else:
        handle, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp" + _suffix(target), dir=target.parent)
        os.close(handle)
        temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, _permissions(directory))  # mkstemp/mkdtemp make 0600/0700; outputs follow the umask
        if directory and target.exists():
            retired = Path(tempfile.mkdtemp(prefix=prefix, suffix=".old", dir=target.parent))
            os.replace(target, retired / target.name)
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
    """The JSON sidecar next to an output: ``case.nii.gz`` -> ``case.json``, ``dir/`` -> ``dir.json``."""
    output = Path(output)
    suffix = _suffix(output)
    stem = output.name[: len(output.name) - len(suffix)] if suffix else output.name
    return output.with_name(stem + ".json")


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
