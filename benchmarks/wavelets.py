"""Speed of our 3D Haar DWT + IDWT (medprior.wavelets) against PyWavelets' dwtn/idwtn and wavedecn/waverecn.

Volumes: one standard-normal (1, 1, N, N, N) float32 volume per ``--sizes`` entry (128 and 256 by
default). For each it times, in the same run and on the same data, forward then inverse:

- single level: ``idwt3(dwt3(x))`` against ``pywt.idwtn(pywt.dwtn(v, "haar"), "haar")``;
- ``--levels`` levels (3 by default): ``waverec(wavedec(x, L))`` against
  ``pywt.waverecn(pywt.wavedecn(v, "haar", level=L), "haar")``;

each the median of ``--repeats`` runs after two warm-ups. Ours runs on ``--device`` (CPU by default,
torch's thread count left at its default unless ``--threads`` is given); PyWavelets always runs on
the CPU, single-threaded. ``max_abs_error`` is the largest difference between our coefficients and
PyWavelets' over all subbands; ``roundtrip_max_abs_error`` is ours, inverse of forward, against x.
``peak_mem_mb`` is the peak RSS above the level before one forward + inverse (CPU), or
``torch.cuda.max_memory_allocated`` (CUDA); ``pywt_peak_mem_mb`` the same RSS measure for PyWavelets.

Allocation: each transform returns a fresh tensor, and at 256^3 first-touch page faults on that
64 MiB output cost about as much as the arithmetic. numpy (so PyWavelets) madvises its large arrays
to transparent huge pages, and medprior.wavelets allocates its outputs of 4 MiB and more through numpy
for that reason; torch's own allocator does so only with ``THP_MEM_ALLOC_ENABLE=1`` in the
environment (read once, at torch's first allocation). The script records that setting
(``torch_thp_alloc``).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pywt
import torch

from measure import PeakRSS, machine_info, median_time, timing_device, write_report
from medprior.wavelets import SUBBANDS_3D, dwt3, idwt3, wavedec, waverec


def subband_error(ours: torch.Tensor, bands: dict[str, np.ndarray], names: tuple[str, ...]) -> float:
    """Largest |ours - pywt| over the subband-major channel blocks of ``ours`` (one channel each)."""
    return max(float(np.abs(block.cpu().numpy()[0, 0] - bands[name]).max())
               for name, block in zip(names, ours.split(1, dim=1)))


def compare(ours: Callable[[], torch.Tensor], theirs: Callable[[], object], x: torch.Tensor, error: float,
            repeats: int, sync: Callable[[], None]) -> dict[str, float]:
    """Time ``ours`` (forward + inverse on ``x``) and ``theirs``; peak memory of the first (warm-up) run."""
    if x.is_cuda:
        torch.cuda.reset_peak_memory_stats()
    with PeakRSS() as memory:
        roundtrip = ours()
        sync()
    peak = torch.cuda.max_memory_allocated() / 2 ** 20 if x.is_cuda else memory.mb
    with PeakRSS() as pywt_memory:
        theirs()
    ours()
    theirs()
    ours_s = median_time(ours, repeats, sync)
    pywt_s = median_time(theirs, repeats, lambda: None)
    return {"ours_s": ours_s, "pywt_s": pywt_s, "speedup": pywt_s / ours_s, "max_abs_error": error,
            "roundtrip_max_abs_error": float((roundtrip - x).abs().max()), "peak_mem_mb": peak,
            "pywt_peak_mem_mb": pywt_memory.mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/wavelets.json"))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own default)")
    args = parser.parse_args()
    device, sync = timing_device(parser, args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    levels = args.levels

    results: dict[str, dict[str, dict[str, float]]] = {}
    for size in args.sizes:
        volume = np.random.default_rng(size).standard_normal((size,) * 3, dtype=np.float32)
        x = torch.from_numpy(volume)[None, None].to(device)

        single_error = subband_error(dwt3(x), pywt.dwtn(volume, "haar"), SUBBANDS_3D)
        single = compare(lambda: idwt3(dwt3(x)), lambda: pywt.idwtn(pywt.dwtn(volume, "haar"), "haar"),
                         x, single_error, args.repeats, sync)

        ours, theirs = wavedec(x, levels, dims=3), pywt.wavedecn(volume, "haar", level=levels)
        multi_error = max([float(np.abs(ours[0].cpu().numpy()[0, 0] - theirs[0]).max())]
                          + [subband_error(o, t, SUBBANDS_3D[1:]) for o, t in zip(ours[1:], theirs[1:])])
        multi = compare(lambda: waverec(wavedec(x, levels, dims=3), dims=3),
                        lambda: pywt.waverecn(pywt.wavedecn(volume, "haar", level=levels), "haar"),
                        x, multi_error, args.repeats, sync)
        results[str(size)] = {"single_level": single, f"{levels}_levels": multi}
        print(size, json.dumps(results[str(size)]), flush=True)

    report = {"benchmark": "3D Haar forward+inverse: medprior.wavelets vs PyWavelets (dwtn/idwtn, wavedecn/waverecn)",
              "volume": "(1, 1, N, N, N) standard normal", "dtype": "float32", **machine_info(device),
              "pywt": pywt.__version__, "repeats": args.repeats,
              "torch_thp_alloc": os.environ.get("THP_MEM_ALLOC_ENABLE", "unset (off)"),
              "peak_mem": "peak RSS above the pre-run level (CPU) / torch.cuda.max_memory_allocated (CUDA)",
              "sizes": results}
    write_report(args.out, report)


if __name__ == "__main__":
    main()
