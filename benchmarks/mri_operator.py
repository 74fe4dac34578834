"""Speed and memory of multi-coil CartesianMRI forward + adjoint against the same computation in numpy.

Volume: ``--slices`` (64) slices of a ``--size`` (256) square complex64 Shepp-Logan phantom, 8
birdcage coils, a 1D equispaced mask at R = 4 (8 % centre lines). It times, on the same data:

- ours: ``op.forward`` then ``op.adjoint`` of the whole ``(64, 256, 256)`` batch, median of
  ``--repeats`` runs after one warm-up;
- numpy: ``sum_c conj(S_c) ifftc(M fftc(S_c x))`` with ``np.fft`` (``fftshift``/``ifftshift``,
  ``norm="ortho"``) on the same complex64 arrays, median of ``--repeats`` runs.

Memory: ``peak_mem_mb`` is the peak resident set size (sampled every 2 ms from /proc/self/statm) above
the level before the call, over one forward + adjoint (so it counts the coil-expanded k-space and
temporaries, not the input); on CUDA it is ``torch.cuda.max_memory_allocated`` minus the allocation
before the call. ``numpy_peak_mem_mb`` is the same RSS measure for numpy.

Usage: ``python benchmarks/mri_operator.py --out benchmarks/out/mri_operator.json [--device cuda]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from skimage.data import shepp_logan_phantom
from skimage.transform import resize

from measure import PeakRSS, machine_info, median_time, timing_device, write_report
from medprior.physics.coils import birdcage_sensitivities
from medprior.physics.masks import acceleration, uniform_mask_1d
from medprior.physics.mri import CartesianMRI

def numpy_forward_adjoint(x: np.ndarray, sens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    axes = (-2, -1)
    k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x[:, None] * sens, axes=axes), norm="ortho"), axes=axes) * mask
    images = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k * mask, axes=axes), norm="ortho"), axes=axes)
    return (images * sens.conj()).sum(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/mri_operator.json"))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--coils", type=int, default=8)
    parser.add_argument("--acceleration", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-numpy", action="store_true", help="time only ours")
    args = parser.parse_args()
    device, sync = timing_device(parser, args.device)

    n = args.size
    phantom = resize(shepp_logan_phantom(), (n, n), anti_aliasing=True)
    volume = (phantom[None] * np.linspace(0.9, 1.1, args.slices)[:, None, None]).astype(np.complex64)
    mask = uniform_mask_1d(n, args.acceleration, 0.08)
    sens = birdcage_sensitivities((n, n), args.coils)
    op = CartesianMRI(mask, sens, device=device)
    x = torch.from_numpy(volume).to(device)
    op.adjoint(op.forward(x))  # warm-up (also casts the buffers)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    with PeakRSS() as memory:
        op.adjoint(op.forward(x))
        sync()
    peak = (torch.cuda.max_memory_allocated() - base) / 2 ** 20 if device.type == "cuda" else memory.mb
    ours_s = median_time(lambda: op.adjoint(op.forward(x)), args.repeats, sync)
    result: dict[str, object] = {"ours_s": ours_s, "peak_mem_mb": peak,
                                 "normal_s": median_time(lambda: op.normal(x), args.repeats, sync)}
    if not args.skip_numpy:
        sens_np, mask_np = sens.numpy(), mask.astype(np.float32)
        numpy_forward_adjoint(volume[:2], sens_np, mask_np)
        with PeakRSS() as np_memory:
            reference = numpy_forward_adjoint(volume, sens_np, mask_np)
        numpy_s = median_time(lambda: numpy_forward_adjoint(volume, sens_np, mask_np), args.repeats, lambda: None)
        ours = op.adjoint(op.forward(x)).cpu().numpy()
        result.update(numpy_s=numpy_s, ratio=numpy_s / ours_s, numpy_peak_mem_mb=np_memory.mb,
                      max_rel_diff=float(np.abs(ours - reference).max() / np.abs(reference).max()))
    report = {"benchmark": "CartesianMRI forward+adjoint (multi-coil, 2D per slice) vs numpy np.fft",
              "volume": [args.slices, n, n], "coils": args.coils, "acceleration": acceleration(mask),
              "dtype": "complex64", **machine_info(device), "repeats": args.repeats, "numpy": np.__version__,
              "peak_mem": "peak RSS above the pre-call level over one forward+adjoint (CPU) / "
                          "torch.cuda.max_memory_allocated above the pre-call allocation (CUDA)",
              **result}
    print(json.dumps(report, indent=2))
    write_report(args.out, report)


if __name__ == "__main__":
    main()
