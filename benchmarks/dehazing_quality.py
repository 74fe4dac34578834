"""Ultrasound dehazing on held-out simulated frames and on shifted splits: PSNR, SSIM, gCNR, KS, seconds.

Frames are apical views of seeds never used in training (the shipped priors saw seeds 5000-5031,
their held-out check 5100-5101, the workflow demo 600 on): ``--frames`` per split from ``--seed``.
Three splits, each frame's haze strength drawn from its seed:

- ``in-distribution``: multipath haze, gamma in [0.25, 0.75] (the training range);
- ``strong haze``: multipath haze, gamma in [1.0, 1.5], beyond the training range;
- ``reverberation``: the other haze model (chest-wall reverberation), gamma in [0.25, 0.75].

Methods: the hazy input, NLM and BM3D (each given an oracle: of ``--sigmas`` noise levels on the
[0, 1] B-mode scale, or the estimated one, the best mean PSNR per split is kept and reported), the
supervised network and the diffusion dehazer (the shipped priors, the schema's parameters). Scores
are :func:`medprior.tasks.dehaze_report.score_frame`'s, as ``medprior evaluate dehazing`` gives
them; seconds per frame are the dehazing alone.

    python benchmarks/dehazing_quality.py --out benchmarks/out/dehazing_quality.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from measure import machine_info, write_report
from medprior.devices import resolve_device
from medprior.diffusion.prior_file import load_prior
from medprior.tables import markdown_table
from medprior.physics.beamform import bmode, reference_level
from medprior.tasks.dehaze import dehaze
from medprior.tasks.dehaze_report import score_frame
from medprior.tasks.cardiac_scan import CardiacScan
from medprior.tasks.echo_frames import beamform, frame_gamma, hazy_pair, simulate_frame

SPLITS = {"in-distribution": ("multipath", (0.25, 0.75)), "strong haze": ("multipath", (1.0, 1.5)),
          "reverberation": ("reverberation", (0.25, 0.75))}
KEYS = ("psnr", "ssim", "gcnr", "cnr", "ks_septum", "ks_ventricle")


def frames(split: str, seeds: range, scan: CardiacScan) -> list[dict]:
    """The hazy and true beamformed RF and the regions of each frame of a split."""
    haze, gamma_range = SPLITS[split]
    made = []
    for seed in seeds:
        frame = simulate_frame(seed, scan, haze=haze)
        gamma = frame_gamma(seed, gamma_range)
        pair = hazy_pair(beamform(frame.tissue, scan), beamform(frame.haze, scan), gamma, frame.regions["sector"])
        made.append({"seed": seed, "gamma": gamma, "hazy": pair["hazy"], "truth": pair["tissue"],
                     "regions": frame.regions})
    return made


def run(method: str, data: list[dict], models: dict, dynamic_range: float, **options) -> dict:
    """Mean scores and seconds per frame of one method (``hazy``: the input itself) over a split."""
    scores, seconds = [], []
    for frame in data:
        reference = reference_level(frame["hazy"])
        started = time.perf_counter()
        if method == "hazy":
            image = bmode(frame["hazy"], reference, dynamic_range)
        else:
            image = dehaze(frame["hazy"], method, models=models, dynamic_range=dynamic_range, reference=reference,
                           **options).bmode
        seconds.append(time.perf_counter() - started)
        scores.append(score_frame(image, frame["hazy"], frame["truth"], frame["regions"], dynamic_range))
    mean = {key: float(np.mean([s[key] for s in scores])) for key in scores[0]}
    return {**mean, "psnr_std": float(np.std([s["psnr"] for s in scores])),
            "seconds_per_frame": float(np.mean(seconds)), "options": options}


def oracle(method: str, data: list[dict], dynamic_range: float, sigmas: list[float | None]) -> dict:
    """The classical method at its best noise level (mean PSNR) of ``sigmas`` (None: estimated)."""
    key = "sigma" if method == "bm3d" else "h"
    results = [run(method, data, {}, dynamic_range, **{key: sigma}) for sigma in sigmas]
    best = max(results, key=lambda r: r["psnr"])
    best["tried"] = {str(r["options"][key]): round(r["psnr"], 3) for r in results}
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=4, help="frames per split")
    parser.add_argument("--seed", type=int, default=700, help="seed of the first frame of the first split")
    parser.add_argument("--splits", nargs="+", choices=tuple(SPLITS), default=list(SPLITS))
    parser.add_argument("--methods", nargs="+", default=["hazy", "nlm", "bm3d", "supervised", "diffusion"])
    parser.add_argument("--tissue-prior", type=Path, default=Path("priors/echo_tissue"))
    parser.add_argument("--haze-prior", type=Path, default=Path("priors/echo_haze"))
    parser.add_argument("--model", type=Path, default=Path("priors/echo_supervised"))
    parser.add_argument("--sigmas", type=float, nargs="*", default=[0.02, 0.05, 0.1, 0.2, 0.3],
                        help="noise levels the classical methods' oracle tries, besides the estimated one")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="diffusion parameter")
    parser.add_argument("--dynamic-range", type=float, default=60.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/dehazing_quality.json"))
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.set_grad_enabled(False)
    models = {role: load_prior(path, device) for role, path in
              (("tissue", args.tissue_prior), ("haze", args.haze_prior), ("supervised", args.model))}
    diffusion_options = {}
    for text in args.param:
        name, _, value = text.partition("=")
        diffusion_options[name] = value if value.isidentifier() else float(value) if "." in value else int(value)
    scan = CardiacScan()
    report = {"machine": machine_info(device), "frames_per_split": args.frames, "splits": {}}
    rows = []
    for index, split in enumerate(args.splits):
        seeds = range(args.seed + 100 * index, args.seed + 100 * index + args.frames)
        data = frames(split, seeds, scan)
        results = {}
        for method in args.methods:
            if method in ("nlm", "bm3d"):
                results[method] = oracle(method, data, args.dynamic_range, [None, *args.sigmas])
            else:
                options = diffusion_options if method == "diffusion" else {}
                results[method] = run(method, data, models, args.dynamic_range, **options)
            rows.append({"split": split, "method": method, **{k: round(results[method][k], 4) for k in KEYS},
                         "seconds_per_frame": round(results[method]["seconds_per_frame"], 2)})
            print(split, method, {k: round(results[method][k], 3) for k in (*KEYS, "seconds_per_frame")}, flush=True)
        report["splits"][split] = {"seeds": list(seeds), "gammas": [round(d["gamma"], 3) for d in data],
                                   "haze": SPLITS[split][0], "methods": results}
    report["table"] = rows
    write_report(args.out, report)
    args.out.with_suffix(".md").write_text(markdown_table(rows) + "\n")


if __name__ == "__main__":
    main()
