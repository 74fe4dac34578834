"""Peak memory of a diffusion reconstruction of a 256^3 volume, bounded by the slice batch.

A CT body phantom of ``--size`` (256^3 by default) is measured at 8 views and reconstructed by
``--method`` (DDS by default) with a slice prior of the demo CT prior's architecture at the same
in-plane size (random weights: memory and time per step do not depend on the weights), for
``--steps`` steps (memory does not depend on the number of steps) and each ``--slice-batch``
(``auto`` = what fits in half the free memory). Reports the peak RSS above the level before the
reconstruction (CPU) or ``torch.cuda.max_memory_allocated`` (CUDA), the wall time and, as an upper
bound, that time per step (setup included) times the method's default steps. JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from measure import PeakRSS, machine_info, write_report
from medprior.devices import resolve_device
from medprior.diffusion.normalization import Normalization
from medprior.diffusion.prior_file import read_prior_json, save_prior
from medprior.diffusion.priors import SlicePrior2D
from medprior.diffusion.schedule import VPSchedule
from medprior.phantoms import ct_body
from medprior.tasks import recon
from medprior.methods import RECON_METHODS


def random_prior(size: int, folder: Path, template: str) -> Path:
    """A slice prior with the template's network, schedule and normalisation at ``size`` x ``size``."""
    description = read_prior_json(template)
    network = {k: v for k, v in description["network"].items()
               if k not in ("spatial_dims", "in_channels", "out_channels")}
    prior = SlicePrior2D((size, size), network=network, parametrization=description["parametrization"],
                         schedule=VPSchedule.from_dict(description["schedule"]),
                         normalization=Normalization(**description["normalization"]))
    return save_prior(prior, folder, training={"steps": 0, "note": "random weights, memory benchmark"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/recon_memory.json"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--method", default="dds", choices=RECON_METHODS.names("diffusion"))
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--slice-batch", nargs="+", default=["auto", "16"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--template", default="priors/ct_slices")
    args = parser.parse_args()
    device = resolve_device(args.device)
    size = args.size
    volume = ct_body(0, shape=(size, size, size), spacing=(384 / size,) * 3)
    measurement = recon.simulate_ct(volume, views=8)
    runs = {}
    with tempfile.TemporaryDirectory() as folder:
        prior = random_prior(size, Path(folder) / "prior", args.template)
        for batch in args.slice_batch:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            with PeakRSS() as memory:
                estimate = recon.reconstruct(measurement, args.method, prior=prior, steps=args.steps,
                                             slice_batch=batch if batch == "auto" else int(batch),
                                             device=str(device))
            facts = estimate.metadata["reconstruction"]
            seconds = time.perf_counter() - start
            peak = torch.cuda.max_memory_allocated() / 2 ** 20 if device.type == "cuda" else memory.mb
            per_step = seconds / args.steps
            runs[batch] = {"slice_batch": facts["slice_batch"], "peak_mem_mb": peak, "seconds": seconds,
                           "seconds_per_step": per_step,
                           "seconds_per_volume_at_default_steps":
                               per_step * RECON_METHODS.parameters(args.method, "CT")["steps"]}
            print(batch, runs[batch], flush=True)
    write_report(args.out, {"benchmark": f"peak memory of {args.method} on a {size}^3 volume",
                            **machine_info(device), "steps": args.steps, "runs": runs})


if __name__ == "__main__":
    main()
