"""PET/CT tumour segmentation on held-out phantom cases: DSCagg, Dice, HD95, uncertainty, seconds, memory.

Cases are head-and-neck phantoms of seeds never used in training (the shipped models saw seeds
3000-3063, their held-out check 3100-3101, the workflow demo 300 on): ``--cases`` per split from
``--seed`` (split n starts at ``seed + 100 n``). Splits:

- ``in-distribution``: the phantom as the models were trained on it (CT 128 x 128 x 96 at 1 x 1 x 2 mm);
- ``low-count PET``: PSF 7-9 mm FWHM and 6-12 counts per SUV per voxel (training: 4-7 mm, 15-60),
  a blurrier and noisier scanner than any training case;
- ``fine CT grid``: CT 192 x 192 x 120 (0.67 x 0.67 x 1.6 mm) and its PET on a finer grid: other pixel sizes.

Methods: the diffusion ensemble (N = 1, 5 and 10: the first n of one run's 10 samples), SegResNet, UNet,
the automatic PET threshold and, as the threshold's upper bound, the threshold seeded at each true
lesion's SUVmax (``threshold (true seeds)``, not a method a submission can use). Scores are those of
``medprior evaluate segmentation`` (:mod:`medprior.tasks.segment_report`): DSCagg per class and mean,
mean per-case Dice and HD95, pooled AUROC of entropy and variance and ECE in the 10 mm band. Seconds
per case are the segmentation alone (the seconds of the smaller ensembles are the full run's scaled
by n / N: the samples are drawn side by side). Peak memory is that of ``medprior segment`` on the
split's first case, written as a HECKTOR folder, in a process of its own (``peak_mb``, torch
included; ``peak_mb_in_process`` is the RSS growth while segmenting in this process, which reads
near 0 once the allocator holds the memory of earlier cases).

    python benchmarks/segmentation_quality.py --out benchmarks/out/segmentation_quality.json

``--methods`` runs some of the methods and merges their rows into an existing ``--out`` of the same
cases (models trained one after the other can be measured as each is done).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi

from measure import PeakRSS, command_peak_mb, machine_info, write_report
from medprior.challenges.hecktor import hecktor_case_id, write_hecktor_case
from medprior.devices import resolve_device
from medprior.diffusion.prior_file import load_prior
from medprior.metrics import aggregated_dice, dice, expected_calibration_error, hd95, uncertainty_auroc
from medprior.phantoms.petct import petct_head_neck
from medprior.tables import markdown_table
from medprior.tasks.data import petct_grids
from medprior.tasks.petct_cases import SEGMENTATION_CLASSES, PetCtCase, pet_on_ct
from medprior.methods import SEGMENT_METHODS
from medprior.tasks.segment import Segmentation, ensemble_on_ct, segment_case
from medprior.tasks.segment_report import uncertainty_band

SPLITS = {
    "in-distribution": {"size": (128, 128, 96)},
    "low-count PET": {"size": (128, 128, 96), "psf_range_mm": (7.0, 9.0), "counts_range": (6.0, 12.0)},
    "fine CT grid": {"size": (192, 192, 120)},
}


def make_cases(split: str, seeds: range) -> list[PetCtCase]:
    settings = dict(SPLITS[split])
    size = settings.pop("size")
    cases = []
    for seed in seeds:
        raw = petct_head_neck(seed, **petct_grids(size), **settings)
        cases.append(PetCtCase(f"petct-{seed}", raw.ct, pet_on_ct(raw.pet, raw.ct), raw.label))
    return cases


def process_peak_mb(split: str, seed: int, methods: list[str], models: Path, options: dict[str, list[str]],
                    device: str, threads: int) -> dict[str, float]:
    """Peak RSS (MB) of ``medprior segment`` per method on the phantom of ``seed``, in a fresh process."""
    settings = dict(SPLITS[split])
    raw = petct_head_neck(seed, **petct_grids(settings.pop("size")), **settings)
    with tempfile.TemporaryDirectory() as folder:
        case_id = hecktor_case_id("SIM", seed % 1000)
        write_hecktor_case(raw.ct, raw.pet, raw.label, Path(folder) / "cases", case_id)
        return {method: command_peak_mb(["segment", "--input", f"{folder}/cases", "--output", f"{folder}/{method}",
                                         *(["--method", method] if method == "threshold"
                                           else ["--model", str(models / f"petct_{method}"), "--device", device]),
                                         *options.get(method, [])], threads)
                for method in methods}


def true_seed_threshold(case: PetCtCase, fraction: float) -> Segmentation:
    """40 % of each true lesion's SUVmax, grown from the voxel of that SUVmax (connected components of
    the truth name the lesions and their classes)."""
    truth = np.rint(case.label.data).astype(np.uint8)
    pet = case.pet.data
    label = np.zeros(truth.shape, np.uint8)
    components, count = ndi.label(truth > 0)
    for n in range(1, count + 1):
        lesion = components == n
        index = np.unravel_index(np.argmax(np.where(lesion, pet, -np.inf)), pet.shape)
        regions, _ = ndi.label(pet >= fraction * pet[index])
        label[(regions == regions[index]) & (label == 0)] = truth[index]
    probabilities = np.stack([label == k for k in range(3)]).astype(np.float32)
    return Segmentation(label, probabilities, np.zeros(truth.shape, np.float32))


def score(cases: list[PetCtCase], results: list[Segmentation]) -> dict:
    """The aggregate scores of ``medprior evaluate segmentation`` for in-memory results."""
    truths = [np.rint(c.label.data).astype(np.uint8) for c in cases]
    labels = [r.label for r in results]
    agg = aggregated_dice(truths, labels, tuple(SEGMENTATION_CLASSES))
    row = {f"DSCagg_{name}": agg[k] for k, name in SEGMENTATION_CLASSES.items()}
    row["DSCagg_mean"] = agg["mean"]
    for k, name in SEGMENTATION_CLASSES.items():
        dices = [dice(t, p, k) for t, p in zip(truths, labels)]
        row[f"dice_{name}"] = float(np.nanmean(dices)) if not all(map(math.isnan, dices)) else math.nan
        distances = [hd95(t, p, k, c.ct.spacing) for t, p, c in zip(truths, labels, cases)]
        finite = [d for d in distances if math.isfinite(d)]
        row[f"hd95_{name}"] = float(np.mean(finite)) if finite else math.nan
    bands = [uncertainty_band(t, r.label, c.ct.spacing) for t, r, c in zip(truths, results, cases)]
    wrong = np.concatenate([(t != r.label)[b] for t, r, b in zip(truths, results, bands)])
    row["auroc_entropy"] = uncertainty_auroc(np.concatenate([r.entropy[b] for r, b in zip(results, bands)]), wrong)
    if all(r.variance is not None for r in results):
        row["auroc_variance"] = uncertainty_auroc(np.concatenate([r.variance[b] for r, b in zip(results, bands)]), wrong)
    row["ece"] = expected_calibration_error(np.concatenate([r.probabilities[:, b] for r, b in zip(results, bands)], 1),
                                            np.concatenate([t[b] for t, b in zip(truths, bands)]))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8, help="cases per split")
    parser.add_argument("--seed", type=int, default=3500, help="seed of the first case of the first split")
    parser.add_argument("--splits", nargs="+", choices=tuple(SPLITS), default=list(SPLITS))
    parser.add_argument("--samples", type=int, default=10, help="diffusion ensemble size (N = 1, 5 and this)")
    parser.add_argument("--steps", type=int, default=10, help="diffusion steps per sample")
    parser.add_argument("--sampler", default="ddim")
    parser.add_argument("--models", type=Path, default=Path("priors"), help="folder of petct_{diffusion,segresnet,unet}")
    parser.add_argument("--methods", nargs="+", choices=("diffusion", "segresnet", "unet", "threshold"),
                        default=["diffusion", "segresnet", "unet", "threshold"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/segmentation_quality.json"))
    args = parser.parse_args()
    device = resolve_device(args.device)
    models = {m: load_prior(args.models / f"petct_{m}", device=device) for m in args.methods if m != "threshold"}
    settings = {"cases_per_split": args.cases, "samples": args.samples, "steps": args.steps, "sampler": args.sampler,
                "seed": args.seed}
    report = {"machine": machine_info(device), **settings, "splits": {}}
    if args.out.exists() and set(args.methods) != {"diffusion", "segresnet", "unet", "threshold"}:
        earlier = json.loads(args.out.read_text())
        if all(earlier.get(k) == v for k, v in settings.items()):
            report["splits"] = earlier["splits"]
    for n, split in enumerate(args.splits):
        seeds = range(args.seed + 100 * n, args.seed + 100 * n + args.cases)
        cases = make_cases(split, seeds)
        rows, results, seconds, memory = {}, {}, {}, {}
        process_mb = process_peak_mb(split, seeds.start, args.methods, args.models,
                                     {"diffusion": ["--samples", str(args.samples), "--steps", str(args.steps),
                                                    "--param", f"sampler={args.sampler}"]},
                                     args.device, torch.get_num_threads())
        for method in args.methods:
            options = {"samples": args.samples, "steps": args.steps, "sampler": args.sampler} if method == "diffusion" else {}
            parameters = SEGMENT_METHODS.parameters(method, "PET/CT", options)
            results[method], seconds[method], memory[method] = [], [], []
            for case in cases:
                with PeakRSS() as peak:
                    started = time.perf_counter()
                    results[method].append(segment_case(case, method, models.get(method), parameters))
                    seconds[method].append(time.perf_counter() - started)
                memory[method].append(peak.mb)
        if "threshold" in args.methods:
            results["threshold (true seeds)"] = [true_seed_threshold(c, 0.4) for c in cases]
        for size in sorted({1, min(5, args.samples), args.samples}) if "diffusion" in args.methods else ():
            name = f"diffusion N={size}"
            results[name] = [r if size == args.samples else ensemble_on_ct(r.samples[:size], r.affine, c)
                             for r, c in zip(results["diffusion"], cases)]
            rows[name] = score(cases, results[name])
            rows[name].update(seconds_per_case=float(np.mean(seconds["diffusion"])) * size / args.samples)
            if size == args.samples:
                rows[name].update(peak_mb=process_mb["diffusion"], peak_mb_in_process=float(np.max(memory["diffusion"])))
        for method in [m for m in ("segresnet", "unet", "threshold", "threshold (true seeds)") if m in results]:
            rows[method] = score(cases, results[method])
            if method in seconds:
                rows[method].update(seconds_per_case=float(np.mean(seconds[method])), peak_mb=process_mb[method],
                                    peak_mb_in_process=float(np.max(memory[method])))
        rows = {**report["splits"].get(split, {}).get("methods", {}), **rows}
        order = [m for m in ("diffusion N=1", "diffusion N=5", f"diffusion N={args.samples}", "segresnet", "unet",
                             "threshold", "threshold (true seeds)") if m in rows]
        report["splits"][split] = {"seeds": [seeds.start, seeds.stop - 1], "methods": {m: rows[m] for m in order}}
        print(f"\n{split} (seeds {seeds.start}-{seeds.stop - 1})")
        print(markdown_table([{"method": m, **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[m].items()}}
                              for m in order]))
    write_report(args.out, report)


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
