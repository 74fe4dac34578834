"""Speed and memory of ParallelBeamCT forward + adjoint against scikit-image's radon + iradon.

Volume: 64 slices of a 256 x 256 Shepp-Logan phantom (slightly scaled per slice). For 8, 60 and
180 views over 180 degrees it times, in the same run and on the same data:

- ours: ``op.forward`` then ``op.adjoint`` of the whole (64, 256, 256) batch, float32, median of
  ``--repeats`` runs after one warm-up, excluding the one-off matrix construction (``build_s``,
  timed separately with the geometry cache cleared);
- scikit-image: ``radon`` then ``iradon(filter_name=None)`` slice by slice (its back-projector),
  median of ``--repeats`` runs.

Memory: ``peak_mem_mb`` is the peak resident set size (sampled every 2 ms from /proc/self/statm)
above the level before building the operator, over build + one forward + adjoint, so it includes
the matrices, their transposes and the float32 copies (CPU); on CUDA it is
``torch.cuda.max_memory_allocated``. ``skimage_peak_mem_mb`` is the same RSS measure for
scikit-image. torch's thread count is left at its default.

Usage: ``python benchmarks/ct_operator.py --out benchmarks/out/ct_operator.json [--device cuda]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from skimage.data import shepp_logan_phantom
from skimage.transform import iradon, radon, resize

from measure import PeakRSS, machine_info, median_time, timing_device, write_report
from medprior.physics.ct import ParallelBeamCT, sparse_view_angles
from medprior.physics.ct_parallel import _parallel_matrices

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/ct_operator.json"))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--views", type=int, nargs="+", default=[8, 60, 180])
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-skimage", action="store_true", help="time only ours")
    args = parser.parse_args()
    device, sync = timing_device(parser, args.device)

    phantom = resize(shepp_logan_phantom(), (args.size, args.size), anti_aliasing=True).astype(np.float32)
    volume = phantom[None] * np.linspace(0.9, 1.1, args.slices, dtype=np.float32)[:, None, None]
    x = torch.from_numpy(volume).to(device)
    results: dict[str, dict[str, float]] = {}
    for views in args.views:
        angles = sparse_view_angles(views)
        _parallel_matrices.cache_clear()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with PeakRSS() as memory:
            start = time.perf_counter()
            op = ParallelBeamCT((args.size, args.size), angles, n_detectors=args.size, device=device,
                                dtype=torch.float32)
            build_s = time.perf_counter() - start
            op.adjoint(op.forward(x))  # warm-up
        ours_s = median_time(lambda: op.adjoint(op.forward(x)), args.repeats, sync)
        peak = torch.cuda.max_memory_allocated() / 2 ** 20 if device.type == "cuda" else memory.mb
        row = {"ours_s": ours_s, "build_s": build_s, "peak_mem_mb": peak, "nnz": int(op.matrix.nnz)}
        if not args.skip_skimage:
            def skimage_run() -> None:
                for image in volume:
                    iradon(radon(image, angles), angles, filter_name=None)

            with PeakRSS() as sk_memory:
                skimage_s = median_time(skimage_run, args.repeats, lambda: None)
            row.update(skimage_s=skimage_s, ratio=skimage_s / ours_s, skimage_peak_mem_mb=sk_memory.mb)
        results[str(views)] = row
        print(views, json.dumps(row), flush=True)
        del op
    report = {"benchmark": "ParallelBeamCT forward+adjoint vs skimage radon+iradon(filter_name=None)",
              "volume": [args.slices, args.size, args.size], "dtype": "float32", **machine_info(device),
              "repeats": args.repeats,
              "peak_mem": "peak RSS above the pre-build level (CPU) / torch.cuda.max_memory_allocated (CUDA)",
              "views": results}
    write_report(args.out, report)


if __name__ == "__main__":
    main()
