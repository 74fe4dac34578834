"""The robustness suite's machinery: folder snapshots, copying world items, running one command
in-process under a time and memory guard, and checking a row's outcome."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import resource
import shutil
import signal
import time
import traceback
from pathlib import Path

MEMORY_HEADROOM = 4 * 2**30
"""Address space a row may add to the test process (RLIMIT_AS) before an allocation fails, so that
a runaway request on unguarded code fails fast instead of exhausting the shared machine."""
MARKER = ".medprior-output"
SIDECAR = ".provenance.json"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root``, hidden ones included: relative path -> sha256 / "<dir>" / "<link ...>"."""
    tree: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            relative = str(path.relative_to(root))
            if path.is_symlink():
                tree[relative] = f"<link {os.readlink(path)}>"
            elif path.is_dir():
                tree[relative] = "<dir>"
            else:
                try:
                    tree[relative] = sha256(path)
                except OSError as error:
                    tree[relative] = f"<unreadable {error}>"
    return tree


def copy_world(world: Path, target: Path, uses: tuple[str, ...]) -> None:
    """Copy the world items ``uses`` into ``target`` (priors/<name> lands as <name>); ``{t}`` in
    copied YAML files becomes ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for item in uses:
        source = world / item
        if not source.exists():
            source = world / "priors" / item
        destination = target / Path(item).name if source.parent.name == "priors" else target / item
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, destination, symlinks=True)
        else:
            shutil.copy2(source, destination)
        if destination.suffix == ".yaml":
            destination.write_text(destination.read_text().replace("{t}", str(target)))


# ---------------------------------------------------------------- running one command


class RowTimeout(BaseException):
    """Raised by SIGALRM in a row that ran past its time limit (a BaseException, so no handler in
    medprior swallows it)."""


def _alarm(signum, frame):
    raise RowTimeout()


def _vm_size() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def run_cli(argv: list[str], timeout: int) -> tuple[object, str | None, float]:
    """``medprior.cli.main(argv)`` under SIGALRM after ``timeout`` s and an address-space limit.

    Returns (exit code, or "timeout" / "escaped"; the traceback of an exception that escaped
    main; seconds).
    """
    from medprior.cli import main
    previous = signal.signal(signal.SIGALRM, _alarm)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _vm_size() + MEMORY_HEADROOM
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    escaped = None
    start = time.perf_counter()
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        signal.alarm(timeout)
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except RowTimeout:
        code = "timeout"
    except BaseException:  # noqa: BLE001 - anything escaping main is a traceback for the user
        code, escaped = "escaped", traceback.format_exc()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    return code, escaped, time.perf_counter() - start


# ---------------------------------------------------------------- checking the outcome


def _few(paths, n: int = 6) -> str:
    paths = sorted(paths)
    return ", ".join(paths[:n]) + (f" (+{len(paths) - n} more)" if len(paths) > n else "")


def _short(text: str, n: int = 300) -> str:
    text = text.strip().replace("\n", " | ")
    return text if len(text) <= n else text[:n] + "..."


def _matches(path: str, patterns) -> bool:
    return any(fnmatch.fnmatchcase(path, p) for p in patterns)


def names(text: str, name: str) -> bool:
    """Whether ``text`` names ``name`` as a word of its own: not inside a longer name, and not as
    part of a hidden temporary (``.out.nii.gz.x1y2.tmp`` does not name ``out.nii.gz``)."""
    before = "\\s/'\"(\\[=,`" + ("" if "." in name else ".")
    pattern = rf"(?:^|(?<=[{before}])){re.escape(name)}(?=$|[\s:'\"/),;\]`=\[]|\.(?:\s|$))"
    return re.search(pattern, text) is not None


def _exit_problems(row, code, escaped, detail: str) -> list[str]:
    """An exception that escaped main, a timeout, or an exit status other than the row's."""
    if escaped is not None:
        return [f"[traceback] an exception escaped main: {_short(escaped.strip().splitlines()[-1])}"]
    if code == "timeout":
        return [f"[timeout] still running after {row.timeout} s"]
    if code != row.code:
        return [f"[exit] exit status {code}, expected {row.code}{detail}"]
    return []


def check_failure(row, code, escaped, elapsed, stderr, before, after) -> list[str]:
    """Problems of a row that must fail: exit status, one stderr line naming the culprit, no
    traceback, the folder exactly as before (inputs and earlier outputs byte-identical, nothing new)."""
    problems = _exit_problems(row, code, escaped, "")
    lines = stderr.strip().splitlines()
    if "Traceback" in stderr:
        problems.append("[traceback] 'Traceback' on stderr")
    if len(lines) != 1:
        problems.append(f"[lines] stderr has {len(lines)} lines, expected 1: {_short(stderr)}")
    elif not lines[0].startswith("medprior: error: "):
        problems.append(f"[format] stderr line does not start with 'medprior: error: ': {_short(lines[0])}")
    for needle in row.names:
        options = needle if isinstance(needle, tuple) else (needle,)
        if lines and not any(names(stderr, o) for o in options):
            problems.append(f"[name] stderr does not name {' or '.join(map(repr, options))}: {_short(stderr)}")
    changed = [p for p in before if p in after and before[p] != after[p]]
    removed = [p for p in before if p not in after]
    new = [p for p in after if p not in before and not _matches(p, row.may_create)]  # kept state (a workdir)
    if changed or removed:
        problems.append(f"[inputs-changed] changed: {_few(changed)}; removed: {_few(removed)}")
    if new:
        problems.append(f"[new-files] {_few(new)}")
    if row.max_seconds is not None and elapsed > row.max_seconds:
        problems.append(f"[slow] took {elapsed:.1f} s, allowed {row.max_seconds} s")
    return problems


def check_success(row, code, escaped, elapsed, stderr, before, after) -> list[str]:
    """Problems of a row that must succeed: exit 0, every expected output there, nothing else new
    (but sidecars of outputs and markers in new folders), everything else unchanged."""
    problems = _exit_problems(row, code, escaped, f": {_short(stderr)}")
    new = [p for p in after if p not in before]
    for pattern in row.creates:
        if not any(fnmatch.fnmatchcase(p, pattern) for p in after):
            problems.append(f"[missing-output] nothing matches {pattern}")
    allowed = (*row.creates, *row.may_create, *row.changes)
    allowed = (*allowed, *(p + SIDECAR for p in allowed))

    def expected(path: str) -> bool:
        if _matches(path, allowed):
            return True
        parent = str(Path(path).parent)
        return Path(path).name == MARKER and (parent not in before or _matches(parent, allowed))

    unexpected = [p for p in new if not expected(p)]
    if unexpected:
        problems.append(f"[new-files] unexpected: {_few(unexpected)}")
    changed = [p for p in before if (p not in after or before[p] != after[p]) and not _matches(p, row.changes)]
    if changed:
        problems.append(f"[inputs-changed] {_few(changed)}")
    return problems


# ---------------------------------------------------------------- interrupted runs (a real process)


def child_main(argv: list[str], cwd: str, stdout_path: str, stderr_path: str) -> None:
    """Body of an interrupted run's process (forked from a server that imported medprior once):
    stdout/stderr to files, SIGINT raising KeyboardInterrupt, exit status = main's return value."""
    import sys
    os.dup2(os.open(stdout_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 1)
    os.dup2(os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 2)
    os.chdir(cwd)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from medprior.cli import main
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        code = 99
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def staged_bytes(folder: Path, known: set[str]) -> bool:
    """Whether an entry of ``folder`` not in ``known`` holds at least one written byte (a file
    being written, or a folder with such a file in it)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    for name in names:
        if name in known:
            continue
        path = folder / name
        try:
            if path.is_file() and path.stat().st_size > 0:
                return True
            if path.is_dir():
                for sub, _, files in os.walk(path):
                    if any(os.path.getsize(os.path.join(sub, f)) > 0 for f in files
                           if os.path.isfile(os.path.join(sub, f))):
                        return True
        except OSError:
            continue
    return False
