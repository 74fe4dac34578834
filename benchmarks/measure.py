"""Measurement helpers shared by the benchmarks: peak resident memory and median wall time."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

from medprior.config import defaults
from medprior.devices import resolve_device

PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def default_prior(modality: str) -> str:
    """The shipped prior folder the workflow reconstructs ``modality`` (``ct`` or ``mri``) with (the
    schema's ``recon.diffusion.priors``), as a path that holds from any working directory."""
    name = defaults()["recon"]["diffusion"]["priors"][modality]
    return str(Path(__file__).resolve().parent.parent / "priors" / name)


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_MB


class PeakRSS:
    """Context manager: peak RSS (MB) above the level at entry, sampled by a thread."""

    def __enter__(self) -> PeakRSS:
        self.start = rss_mb()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb())
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())

    @property
    def mb(self) -> float:
        return self.peak - self.start


def timing_device(parser: argparse.ArgumentParser, spec: str) -> tuple[torch.device, Callable[[], None]]:
    """The device ``--device`` names (auto, cpu, cuda[:N]) and the synchronisation to time it by;
    a usage error (exit 2) when it is not on this machine."""
    try:
        device = resolve_device(spec)
    except ValueError as error:
        parser.error(f"--device: {error}")
    return device, (torch.cuda.synchronize if device.type == "cuda" else (lambda: None))


def command_peak_mb(arguments: list[str], threads: int | None = None) -> float:
    """Peak resident memory (MB, the process's ``VmHWM``, so torch's import included) of
    ``medprior ARGUMENTS`` run in a fresh Python process; it must exit 0.

    A fresh process is what a user's job is, and it has no allocator cache from earlier work, which
    an in-process RSS difference (:class:`PeakRSS`) reads as zero. Not ``ru_maxrss``: Linux carries
    it across ``exec`` from the forked copy of this (large) process.
    """
    probe = ("import sys\n"
             "from medprior.cli import main\n"
             "status = main(sys.argv[1:])\n"
             "print(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')))")
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    done = subprocess.run([sys.executable, "-c", probe + "\nsys.exit(status)", *arguments, "-q"], env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"medprior {' '.join(arguments)} failed: {done.stderr.strip()}")
    return int(done.stdout.split()[-1]) / 1024


def median_time(fn: Callable[[], object], repeats: int, sync: Callable[[], None], warmup_s: float = 1.0) -> float:
    """Median wall time (s) of ``repeats`` calls of ``fn``, after calling it for ``warmup_s`` seconds.

    The warm-up matters on this VM: a process's first large allocations land on guest pages the
    host has not backed yet, and the same 128^3 wavelet round trip then takes 2-5x longer for its
    first few dozen calls (measured: 23.6 ms before, 4.6 ms after, in one process).
    """
    sync()
    end = time.perf_counter() + warmup_s
    while True:
        fn()
        sync()
        if time.perf_counter() >= end:
            break
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (else what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict[str, object]:
    """Where a benchmark ran: CPU model, cores, torch version and threads, GPU name."""
    info = {"machine": cpu_name(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def write_report(path: os.PathLike, report: dict) -> None:
    """Write a benchmark's JSON report atomically and say where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(report, indent=2))
    temporary.replace(path)
    print(f"wrote {path}")
