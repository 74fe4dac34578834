"""Interrupted runs (issue 14, §5): ``kill -9`` and SIGINT while convert, phantom, recon,
synthesize, segment, simulate us, beamform and dehaze are writing, onto an earlier good output.

Each run is a real process, forked from a server process that imported medprior once (so a row
costs its work, not a Python start). The test watches the output's folder and sends the signal as
soon as the run has written its first byte there (a temporary or staging entry). Afterwards:

- kill -9: nothing visible is new (only hidden temporaries may remain), the earlier output and its
  sidecar are byte-identical, and a second, successful run onto the same output leaves no hidden
  temporary or staging entry behind and changes nothing but the output and its sidecar;
- SIGINT: exit 130, one stderr line, no traceback, and the folder exactly as before.
"""

from __future__ import annotations

import fnmatch
import multiprocessing
import os
import shutil
import signal
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from robustness_harness import child_main, copy_world, run_cli, snapshot, staged_bytes
from robustness_rows import CASE, hecktor, us

KILL_WAIT_S = 90


@pytest.fixture(scope="module")
def server():
    """A forkserver context that has imported medprior.cli (and this suite's harness) once."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["medprior.cli", "robustness_harness"])
    return context


def _big_nifti(path: Path) -> None:
    rng = np.random.default_rng(0)
    data = (rng.normal(0, 300, (192, 192, 96)) - 500).astype(np.float32)
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    nib.save(nib.Nifti1Image(data, affine), str(path))


def _big_measurement(t: Path) -> None:
    from medprior.io.measurement import write_measurement
    from medprior.tasks.recon import simulate_ct
    from robustness_world import _ct
    write_measurement(simulate_ct(_ct(9, (256, 256, 24)), views=16, slices=0), t / "big.h5")


def _many_cases(t: Path) -> None:
    for n in range(1, 4):
        other = CASE.replace("00400", f"0040{n}")
        shutil.copytree(t / "cases" / CASE, t / "many" / other)
        for file in (t / "many" / other).iterdir():
            file.rename(file.with_name(file.name.replace(CASE, other)))
    shutil.copytree(t / "cases" / CASE, t / "many" / CASE)


def _hecktor_cases(t: Path) -> None:
    """Small HECKTOR cases ``hk/`` (the earlier good run) and three phantom cases at full demo size ``big/``."""
    from medprior.challenges import write_hecktor_case
    from medprior.phantoms import petct_head_neck
    from medprior.tasks.data import petct_grids
    hecktor()(t)
    for seed in (300, 301, 302):
        raw = petct_head_neck(seed, **petct_grids((128, 128, 96)))
        write_hecktor_case(raw.ct, raw.pet, raw.label, t / "big", f"SIM-{seed}")


# command: (world items, preparation, earlier good run, interrupted run, watched folder, output patterns[,
# "entry": signal at the run's first new entry (its staging folder, made before the work starts) instead of
# its first written byte, for a command that writes its files in a few milliseconds at the end: polling for
# bytes raced its commit, so the signal could land after the outputs were in place)
CASES = {
    "convert": (("ct.nii.gz",), lambda t: _big_nifti(t / "big.nii.gz"),
                ["convert", "{t}/ct.nii.gz", "{t}/c.nii.gz"], ["convert", "{t}/big.nii.gz", "{t}/c.nii.gz"],
                ".", ("c.nii.gz", "c.nii.gz.provenance.json", "c.json")),
    # six cases, so the commit comes about 4.5 s after the first byte (three left 2-3 s, which a poll delayed
    # by a busy machine could miss, sending the signal after the outputs were in place)
    "phantom": ((), None, ["phantom", "ct", "--size", "16", "16", "8", "--seed", "7", "--out", "{t}/data"],
                ["phantom", "ct", "--size", "96", "96", "64", "--seed", "7", "--cases", "6", "--out", "{t}/data"],
                "data", ("data/CT-*",)),
    "recon": (("ct.h5",), _big_measurement, ["recon", "{t}/ct.h5", "--method", "fbp", "--out", "{t}/r.nii.gz"],
              ["recon", "{t}/big.h5", "--method", "fbp", "--out", "{t}/r.nii.gz"],
              ".", ("r.nii.gz", "r.nii.gz.provenance.json", "r.json")),
    "synthesize": (("reg", "cases"), _many_cases,
                   ["synthesize", "--model", "{t}/reg", "--input", "{t}/cases", "--device", "cpu", "--output",
                    "{t}/sub"],
                   ["synthesize", "--model", "{t}/reg", "--input", "{t}/many", "--device", "cpu", "--output",
                    "{t}/sub"],
                   ".", ("sub", "sub/*", "sub.provenance.json", "sub.json")),
    "segment": ((), _hecktor_cases,
                ["segment", "--method", "threshold", "--input", "{t}/hk", "--device", "cpu", "--output", "{t}/seg",
                 "--uncertainty", "{t}/unc"],
                ["segment", "--method", "threshold", "--input", "{t}/big", "--device", "cpu", "--output", "{t}/seg",
                 "--uncertainty", "{t}/unc"],
                ".", ("seg", "seg/*", "seg.provenance.json", "seg.json", "unc", "unc/*", "unc.provenance.json",
                      "unc.json"), "entry"),
    "simulate-us": ((), None, ["simulate", "us", "--seed", "1", "--out", "{t}/h.hdf5", "--truth-out", "{t}/tr.hdf5"],
                    ["simulate", "us", "--seed", "2", "--out", "{t}/h.hdf5", "--truth-out", "{t}/tr.hdf5"],
                    ".", ("h.hdf5", "tr.hdf5"), "entry"),
    "beamform": ((), us("hazy_rf.hdf5"), ["beamform", "{t}/hazy_rf.hdf5", "--device", "cpu", "--out", "{t}/bf.hdf5"],
                 ["beamform", "{t}/hazy_rf.hdf5", "--device", "cpu", "--lines", "16", "--out", "{t}/bf.hdf5"],
                 ".", ("bf.hdf5",), "entry"),
    "dehaze": ((), us("hazy.hdf5"), ["dehaze", "{t}/hazy.hdf5", "--method", "nlm", "--out", "{t}/d.hdf5"],
               ["dehaze", "{t}/hazy.hdf5", "--method", "nlm", "--param", "h=0.1", "--out", "{t}/d.hdf5"],
               ".", ("d.hdf5",), "entry"),
}


def _args(argv, t):
    return [a.format(t=t) for a in argv]


def _interrupt(server, argv, cwd: Path, watch: Path, signum: int, logs: Path, trigger: str = "byte"):
    """Run argv in a forked process, send ``signum`` at its first written byte under ``watch`` (with
    ``trigger="entry"``: its first new entry there); returns (exit code, stderr, whether the signal was
    sent before the run ended)."""
    known = set(p.name for p in watch.iterdir()) if watch.is_dir() else set()
    logs.mkdir(exist_ok=True)
    process = server.Process(target=child_main, args=(argv, str(cwd), str(logs / "out"), str(logs / "err")))
    process.start()
    sent = False
    deadline = time.monotonic() + KILL_WAIT_S
    while process.is_alive() and time.monotonic() < deadline:
        if staged_bytes(watch, known) if trigger == "byte" else _new_entry(watch, known):
            os.kill(process.pid, signum)
            sent = True
            break
        time.sleep(0.001)
    process.join(KILL_WAIT_S)
    if process.is_alive():
        process.kill()
        process.join()
    return process.exitcode, (logs / "err").read_text(), sent


def _new_entry(folder: Path, known: set[str]) -> bool:
    try:
        return any(name not in known for name in os.listdir(folder))
    except OSError:
        return False


INTERRUPTS = [(command, signame) for command in CASES for signame in ("sigkill", "sigint")]


@pytest.mark.interrupt
@pytest.mark.parametrize("command, signame", INTERRUPTS, ids=[f"interrupt-{c}-{s}" for c, s in INTERRUPTS])
def test_interrupt(command, signame, server, world, tmp_path, monkeypatch, capsys):
    uses, prepare, first, second, watched, outputs, *trigger = CASES[command]
    t = tmp_path / "w"
    copy_world(world, t, uses)
    monkeypatch.chdir(t)
    if prepare is not None:
        prepare(t)
    code, escaped, _ = run_cli(_args(first, t), 120)
    assert code == 0 and escaped is None, f"[setup] the earlier good run failed: {capsys.readouterr().err}"
    before = snapshot(t)
    signum = signal.SIGKILL if signame == "sigkill" else signal.SIGINT
    exitcode, stderr, sent = _interrupt(server, _args(second, t), t, t / watched, signum, tmp_path / "logs", *trigger)
    problems = []
    if not sent:
        problems.append(f"[not-interrupted] the run ended (exit {exitcode}) before it wrote a byte under {watched}")
    after = snapshot(t)
    changed = sorted(p for p in before if before[p] != after.get(p))
    new = sorted(p for p in after if p not in before)
    if changed:
        problems.append(f"[inputs-changed] earlier output or input changed or removed: {changed[:6]}")
    if signame == "sigint":
        lines = stderr.strip().splitlines()
        if exitcode != 130:
            problems.append(f"[exit] exit status {exitcode} after SIGINT, expected 130")
        if "Traceback" in stderr:
            problems.append("[traceback] 'Traceback' on stderr")
        if len(lines) != 1:
            problems.append(f"[lines] stderr has {len(lines)} lines after SIGINT, expected 1: "
                            f"{' | '.join(lines[-3:])[:300]}")
        if new:
            problems.append(f"[new-files] left behind by the interrupted run: {new[:6]}")
    else:
        if exitcode != -signal.SIGKILL:
            problems.append(f"[exit] exit status {exitcode}, expected -9 (killed)")
        visible = [p for p in new if not any(part.startswith(".") for part in Path(p).parts)]
        if visible:
            problems.append(f"[partial-output] visible entries after kill -9: {visible[:6]}")
        code, escaped, _ = run_cli(_args(second, t), 120)  # the next successful run cleans up
        capsys.readouterr()
        if code != 0 or escaped is not None:
            problems.append(f"[second-run] the run after the kill failed: exit {code} {escaped or ''}"[:400])
        final = snapshot(t)
        leftovers = [p for p in final if p not in before and not fnmatch.fnmatchcase(Path(p).name, ".medprior-output")
                     and not any(fnmatch.fnmatchcase(p, o) for o in outputs)]
        if leftovers:
            problems.append(f"[leftover] after a second successful run: {leftovers[:6]}")
        touched = [p for p in before if before[p] != final.get(p) and not any(fnmatch.fnmatchcase(p, o)
                                                                                for o in outputs)]
        if touched:
            problems.append(f"[inputs-changed] by the second run: {touched[:6]}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
