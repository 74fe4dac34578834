"""Quality of the diffusion solvers against the classical baselines on held-out demo volumes.

Cases: ``--cases`` CT body phantoms (seeds ``--ct-seed`` onwards, the data stage's generator and
field of view, 256 x 256 x 128) and brain phantoms (seeds ``--brain-seed`` onwards, T2w, 240 x 240 x
155). The demo priors never saw these seeds (training 1000-1007 / 2000-2007, held out 1100 / 2100).
Each volume's central ``--slices`` slices are area-averaged to the prior's slice size and measured
in every ``--settings`` entry (sv8: 8 views over 180 degrees; la90: 90 views over 90 degrees; x8:
8-fold uniform Cartesian undersampling, 8% centre, 8 coils, 30 dB), then reconstructed by every
method with the defaults of the config schema (``recon.solver``, ``recon.diffusion``).

TV is the strongest version we can give it: its weight is chosen per setting from
``--tv-lambdas-ct`` / ``--tv-lambdas-mri`` (ADMM penalty 30 x the weight for CT, 10 x for MRI) by
the best mean PSNR over all cases, an oracle choice that can only favour TV; the table reports
the chosen weight.

Metrics (3D, :func:`medprior.metrics.image_metrics`) against the measured slab itself: CT in the
HU window [-1000, 1000] (data range 2000 HU), MRI with the slab's maximum as data range. Reported
per (setting, method): mean and standard deviation of PSNR, mean SSIM, seconds per volume and
network evaluations per slice (NFE), the DDS - TV PSNR gap with the issue's bar (1 dB CT, 0.5 dB
MRI) and the DDS : MBIR time ratio. JSON to ``--out``, a Markdown table next to it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from measure import default_prior, machine_info, write_report
from medprior.diffusion.prior_file import read_prior_json
from medprior.metrics import image_metrics
from medprior.phantoms import brain_mri, ct_body
from medprior.phantoms.ct import CT_BODY_SHAPE, CT_BODY_SPACING
from medprior.tables import markdown_table
from medprior.tasks import recon
from medprior.tasks.data import same_field_of_view
from medprior.methods import RECON_METHODS

CT_SETTINGS = {"sv8": {"views": 8}, "la90": {"views": 90, "arc_deg": 90.0}}
MRI_SETTINGS = {"x8": {"acceleration": 8, "center_fraction": 0.08, "coils": 8, "snr_db": 30.0}}
BAR_DB = {"CT": 1.0, "MR": 0.5}
CLASSICAL = {"CT": ("fbp", "tv"), "MR": ("zerofill", "cgsense", "tv")}
DIFFUSION = RECON_METHODS.names("diffusion")


def volumes(modality: str, cases: int, seed: int):
    """(name, volume) of the held-out demo cases, as the data stage makes them."""
    for case_seed in range(seed, seed + cases):
        if modality == "CT":
            size = (256, 256, 128)
            yield f"CT-{case_seed:04d}", ct_body(case_seed, shape=size,
                                                 spacing=same_field_of_view(size, CT_BODY_SHAPE, CT_BODY_SPACING))
        else:
            yield f"BraTS-{case_seed:04d}", brain_mri(case_seed).contrasts["t2w"]


def tv_options(modality: str, lam: float) -> dict[str, float]:
    key = "ct_tv" if modality == "CT" else "mri_tv"
    return {f"{key}_lambda": lam, f"{key}_rho": lam * (30 if modality == "CT" else 10)}


def run_case(volume, modality: str, setting: dict[str, Any], methods: list[str], prior: str, slices: int,
             size: tuple[int, int] | None, tv_lambdas: list[float], images: dict[str, Any] | None = None,
             diffusion_options: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, float]]:
    """Metrics, seconds and NFE per method (TV: per weight, ``tv@<lam>``; a diffusion method adapted
    while sampling: ``<method>+<mode>``, e.g. ``dds+d3ip``) for one volume in one setting, measured
    at ``size`` (None: the volume's own matrix, which the diffusion methods reconstruct on the prior's
    grid, ``resample="prior"``); with ``images``, each method's image (and the ``truth``) goes there.
    ``diffusion_options``: per diffusion method, options that replace its defaults (``{"dds": {"steps": 200}}``;
    ``{"dds": {"resample": "pixel"}}`` for the volume's own matrix)."""
    if modality == "CT":
        measurement = recon.simulate_ct(volume, slices=slices, size=size, seed=0, **setting)
        window, data_range = (-1000.0, 1000.0), 2000.0
    else:
        measurement = recon.simulate_mri(volume, slices=slices, size=size, seed=0, **setting)
        window, data_range = None, None
    truth = recon.measured_slab(volume, slices, size).data
    results = {}
    runs = [(m, {}) for m in methods if m != "tv"] + [(f"tv@{lam:g}", tv_options(modality, lam)) for lam in tv_lambdas]
    for method, options in runs:
        start = time.perf_counter()
        name, _, adapt = method.split("@")[0].partition("+")
        options = {**options, **({"resample": "prior"} if size is None and name in DIFFUSION else {}),
                   **(diffusion_options or {}).get(name, {}), **({"adapt": adapt} if adapt else {})}
        estimate = recon.reconstruct(measurement, name, prior=prior if name in DIFFUSION else None, **options)
        nfe = estimate.metadata["reconstruction"].get("nfe_per_slice", 0)  # classical methods: none
        seconds = time.perf_counter() - start
        scores = image_metrics(truth, estimate.data, data_range=data_range or float(truth.max()), window=window)
        results[method] = {"psnr": scores["psnr"], "ssim": scores["ssim"], "seconds": seconds, "nfe": nfe}
        if images is not None:
            images[method] = estimate.data
        print(f"  {method}: {scores['psnr']:.2f} dB, {seconds:.1f} s", flush=True)
    if images is not None:
        images["truth"] = truth
    return results


def best_tv(runs: list[dict[str, dict[str, float]]]) -> list[dict[str, dict[str, float]]]:
    """The runs with only the TV weight of the best mean PSNR kept, as ``tv`` (its weight in ``tv_lambda``)."""
    weights = [key for key in runs[0] if key.startswith("tv@")]
    best = max(weights, key=lambda key: statistics.mean(run[key]["psnr"] for run in runs))
    return [{**{key: value for key, value in run.items() if key not in weights},
             "tv": {**run[best], "tv_lambda": float(best[3:])}} for run in runs]


def summarise(runs: list[dict[str, dict[str, float]]], modality: str, setting: str) -> list[dict[str, Any]]:
    """One row per method over the cases of one setting."""
    rows = []
    for method in runs[0]:
        psnr = [run[method]["psnr"] for run in runs]
        rows.append({"modality": modality, "setting": setting, "method": method, "cases": len(runs),
                     "psnr": statistics.mean(psnr), "psnr_sd": statistics.stdev(psnr) if len(psnr) > 1 else 0.0,
                     "ssim": statistics.mean(run[method]["ssim"] for run in runs),
                     "seconds": statistics.mean(run[method]["seconds"] for run in runs),
                     "nfe": runs[0][method]["nfe"], "tv_lambda": runs[0][method].get("tv_lambda")})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/recon_quality.json"))
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--ct-seed", type=int, default=100)
    parser.add_argument("--brain-seed", type=int, default=200)
    parser.add_argument("--slices", type=int, default=16)
    parser.add_argument("--settings", nargs="+", default=[*CT_SETTINGS, *MRI_SETTINGS],
                        choices=[*CT_SETTINGS, *MRI_SETTINGS])
    parser.add_argument("--diffusion", nargs="+", default=["dds", "mbir"], choices=DIFFUSION,
                        help="diffusion methods for CT")
    parser.add_argument("--mri-diffusion", nargs="+", default=["dds"], choices=DIFFUSION,
                        help="diffusion methods for MRI (MBIR at 128 x 128 costs minutes per volume on CPU)")
    parser.add_argument("--tv-lambdas-ct", type=float, nargs="+", default=[0.3, 1.0, 3.0, 10.0],
                        help="CT TV weights tried per setting (relative to the image scale, as recon.solver)")
    parser.add_argument("--tv-lambdas-mri", type=float, nargs="+", default=[0.0003, 0.001, 0.003, 0.01])
    parser.add_argument("--ct-prior", default=default_prior("ct"), help="default: the workflow's (%(default)s)")
    parser.add_argument("--mri-prior", default=default_prior("mri"), help="default: the workflow's (%(default)s)")
    args = parser.parse_args()

    rows, gaps, runs_by_setting = [], {}, {}
    for modality, settings, prior, seed, tv_lambdas, diffusion in (
            ("CT", CT_SETTINGS, args.ct_prior, args.ct_seed, args.tv_lambdas_ct, args.diffusion),
            ("MR", MRI_SETTINGS, args.mri_prior, args.brain_seed, args.tv_lambdas_mri, args.mri_diffusion)):
        chosen = [name for name in settings if name in args.settings]
        if not chosen:
            continue
        size = tuple(read_prior_json(prior)["image_size"])
        runs: dict[str, list] = {name: [] for name in chosen}
        for case, volume in volumes(modality, args.cases, seed):
            for name in chosen:
                print(f"{case} {name}", flush=True)
                runs[name].append(run_case(volume, modality, settings[name], [*CLASSICAL[modality], *diffusion],
                                           prior, args.slices, size, tv_lambdas))
        runs_by_setting.update(runs)
        for name in chosen:
            runs[name] = best_tv(runs[name])
            summary = summarise(runs[name], modality, name)
            rows += summary
            by_method = {row["method"]: row for row in summary}
            gap = by_method["dds"]["psnr"] - by_method["tv"]["psnr"] if "dds" in by_method else None
            gaps[name] = {"dds_minus_tv_db": gap, "bar_db": BAR_DB[modality],
                          "meets_bar": gap is not None and gap >= BAR_DB[modality],
                          "dds_to_mbir_time": (by_method["dds"]["seconds"] / by_method["mbir"]["seconds"]
                                               if {"dds", "mbir"} <= set(by_method) else None),
                          "per_case_dds_minus_tv_db": [run["dds"]["psnr"] - run["tv"]["psnr"] for run in runs[name]]
                          if "dds" in by_method else None}
    report = {"benchmark": "diffusion vs classical reconstruction quality on held-out demo volumes",
              "cases": args.cases, "slices": args.slices, "runs": runs_by_setting, **machine_info(torch.device("cuda" if torch.cuda.is_available() else "cpu")), "rows": rows, "bar": gaps}
    write_report(args.out, report)
    args.out.with_suffix(".md").write_text(markdown_table(rows) + "\n")


if __name__ == "__main__":
    main()
