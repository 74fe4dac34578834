"""Missing-contrast synthesis on held-out demo cases: BraSyn scores, seconds per volume and peak memory.

Makes ``--cases`` BraTS-layout brain phantoms (seeds ``--seed`` on; the shipped models trained on
seeds 2000-2031) at ``--size``, drops one contrast per case as BraSyn does (``--split-seed``) and
synthesizes every case with each ``--model NAME=FOLDER`` (default: the shipped cWDM model, its
regression baseline and the histogram-matched mean, fitted here to the cWDM config's training
volumes). Per model: the mean BraSyn scores (whole brain, tumour, healthy), seconds per volume (the
whole ``synthesize`` call over the cases: loading, sampling, writing) and the peak resident memory
of the process during it (CPU: Python and torch included, about 0.4 GB of it; CUDA: peak
allocated memory). The bar: cWDM whole-brain SSIM at
least the regression's minus 0.01 and the mean's plus 0.05.

``--full-size STEPS`` also times a 240 x 240 x 155 case (network grid 224 x 224 x 160) with a model
of the cWDM architecture (random weights: time and memory do not depend on them) for STEPS sampler
steps, and extrapolates to ``--steps``.

    python benchmarks/synthesis_quality.py --out benchmarks/out/synthesis_quality.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from measure import PeakRSS, machine_info, write_report
from medprior.challenges import brats_case_id, write_brats_case
from medprior.challenges.brasyn import drop_contrasts
from medprior.devices import resolve_device
from medprior.diffusion.prior_file import read_prior_json, save_prior
from medprior.phantoms import brain_mri
from medprior.tables import markdown_table
from medprior.tasks import synthesis
from medprior.tasks.priors import build_prior, load_prior_config

CWDM_CONFIG = Path("configs/priors/brain_cwdm.yaml")
FULL_SIZE, FULL_GRID = (240, 240, 155), [224, 224, 160]
SSIM_MARGIN = {"regression": -0.01, "mean": 0.05}


def make_split(folder: Path, cases: int, seed: int, size: tuple[int, int, int], split_seed: int) -> tuple[Path, Path]:
    """BraTS cases of seeds ``seed ...`` under ``folder/full``, split into ``inputs`` and ``truth``."""
    for subject in range(seed, seed + cases):
        case = brain_mri(subject, shape=size)
        write_brats_case({**case.contrasts, "seg": case.seg}, folder / "full", brats_case_id(subject))
    drop_contrasts(folder / "full", folder / "inputs", folder / "truth", seed=split_seed)
    return folder / "inputs", folder / "truth"


def run_model(model: Path, inputs: Path, truth: Path, out: Path, *, steps: int, device: str) -> dict:
    """Synthesize every case with ``model``; scores, seconds per volume and peak memory (MB)."""
    target = resolve_device(device)
    if target.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with PeakRSS() as memory:
        written = synthesis.synthesize(model, inputs, out / "submission", steps=steps, device=device, progress=False)
    seconds = time.perf_counter() - start
    scores = synthesis.evaluate_submission(out / "submission", truth, out / "scores.json", cases_dir=inputs)
    peak = torch.cuda.max_memory_allocated() / 2 ** 20 if target.type == "cuda" else memory.peak
    return {"model": str(model), "seconds_per_volume": seconds / len(written), "peak_mem_mb": peak, **scores["mean"],
            "per_case_ssim_brain": [row["ssim_brain"] for row in scores["rows"]]}


def full_size_timing(model: Path, steps: int, timed_steps: int, device: str) -> dict:
    """Seconds and peak memory of a 240 x 240 x 155 synthesis with the cWDM architecture at 224 x 224 x 160."""
    training = read_prior_json(model)["training"]
    config = {**training["config"], "image_size": FULL_GRID}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        save_prior(build_prior(config), folder / "model",
                   training={"config": config, "orientation": training["orientation"]})
        inputs, _ = make_split(folder / "case", 1, 9000, FULL_SIZE, 0)
        run = run_model(folder / "model", inputs, folder / "case" / "truth", folder / "run", steps=timed_steps,
                        device=device)
    return {"steps_timed": timed_steps, "seconds_timed": run["seconds_per_volume"], "peak_mem_mb": run["peak_mem_mb"],
            "seconds_per_volume_extrapolated": run["seconds_per_volume"] * steps / timed_steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/synthesis_quality.json"))
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--seed", type=int, default=500, help="first case's phantom seed (held out from training)")
    parser.add_argument("--size", type=int, nargs=3, default=None,
                        help="case grid (default: the cWDM config's data.phantom.size)")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--model", nargs="+", metavar="NAME=FOLDER",
                        default=["cwdm=priors/brain_cwdm", "regression=priors/brain_cwdm_regression", "mean=fit"],
                        help="models to run; FOLDER `fit` fits the histogram-mean baseline to --mean-config")
    parser.add_argument("--mean-config", type=Path, default=CWDM_CONFIG)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--full-size", type=int, default=0, metavar="STEPS",
                        help="also time a 240 x 240 x 155 case for STEPS steps (0 = no)")
    args = parser.parse_args()
    size = tuple(args.size or load_prior_config(CWDM_CONFIG)["data"]["phantom"]["size"])
    models = dict(item.split("=", 1) for item in args.model)

    results = {}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        inputs, truth = make_split(folder / "cases", args.cases, args.seed, size, args.split_seed)
        for name, model in models.items():
            if model == "fit":
                model = synthesis.fit_histogram_mean(args.mean_config, folder / "mean_model")
            results[name] = run_model(Path(model), inputs, truth, folder / name, steps=args.steps, device=args.device)
            print(name, {k: round(v, 4) for k, v in results[name].items() if isinstance(v, float)}, flush=True)
    report = {"benchmark": "BraSyn synthesis on held-out demo cases", **machine_info(resolve_device(args.device)),
              "cases": args.cases, "seed": args.seed, "size": list(size), "split_seed": args.split_seed,
              "steps": args.steps, "models": results}
    if "cwdm" in results:
        ssim = {name: run["ssim_brain"] for name, run in results.items()}
        report["bar"] = {f"cwdm_minus_{name}_ssim": ssim["cwdm"] - ssim[name] for name in SSIM_MARGIN if name in ssim}
        report["bar"]["meets_bar"] = all(ssim["cwdm"] >= ssim[name] + margin
                                         for name, margin in SSIM_MARGIN.items() if name in ssim)
        if args.full_size:
            report["full_size"] = full_size_timing(Path(models["cwdm"]), args.steps, args.full_size, args.device)
            print("full size", report["full_size"], flush=True)
    write_report(args.out, report)
    columns = ("ssim_brain", "psnr_brain", "mse_brain", "ssim_tumour", "ssim_healthy", "seconds_per_volume",
               "peak_mem_mb")
    rows = [{"method": name, "cases": args.cases, **{c: run[c] for c in columns}} for name, run in results.items()]
    args.out.with_suffix(".md").write_text(markdown_table(rows))
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
