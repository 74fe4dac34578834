"""Diffusion reconstruction on data the priors never saw, with and without adaptation (issue 18).

The shipped priors learned phantoms: ``priors/ct_slices`` whole-body slices at about 6 mm pixels
(a 384 mm field of view on 64 x 64), ``priors/brain_slices`` T2-weighted brain phantoms, and their
``_mixed`` versions (the workflow's, so ``--ct-prior`` / ``--mri-prior``'s defaults) also zoomed,
turned views and, for the brain, every contrast. Sets
(``--sets``), each measured at the prior's slice size as :mod:`recon_quality` does, unless it says otherwise:

- ``ct-head``: head phantoms (:func:`medprior.phantoms.ct_head`, seeds ``--seed`` on), 4 mm pixels:
  skull, brain and no lungs;
- ``ct-body-3mm`` / ``ct-body-1.5mm``: body phantoms cropped to the central half / quarter of the
  field of view: the prior's anatomy at 2x / 4x finer pixels, the body filling the image;
- ``ct-real``: the real CT slices bundled with pydicom (CT_small: 128 x 128 at 0.66 mm; 693_J2KI and
  J2K_pixelrep_mismatch: 512 x 512 at 0.48 and 0.43 mm), area-averaged to 64 x 64;
- ``ct-body-native`` / ``ct-real-native``: body phantoms (256 x 256 at 1.5 mm, the prior's field of
  view) and the real slices measured at their own matrix, not averaged: TV and FBP reconstruct that
  matrix, the diffusion methods the prior's 64 x 64 over the same field of view (``resample="prior"``,
  :mod:`medprior.tasks.regrid`), interpolated back for scoring; ``mri-mni-t1-native`` /
  ``mri-t2w-native`` the same for MRI (the template padded to 233 x 233 at 1 mm, the held-out T2w
  phantoms at 240 x 240 x 1 mm; k-space cropped to the prior's 128 x 128);
- ``mri-mni-t1``: nilearn's MNI152 T1 template (real anatomy, another contrast), padded square;
- ``mri-t1n``: brain phantoms in the T1 contrast instead of the prior's T2w;
- ``ct-body`` and ``mri-t2w`` (``--in-distribution``): the held-out demo volumes of
  ``recon_quality.py``, where adaptation must cost at most 0.3 dB.

Methods: the classical ones (FBP or zero-filled, CG-SENSE, TV with its oracle weight per set), DDS,
and every ``--adapted`` variant ``<method>+<mode>`` (``dds+d3ip``: DDS with adapters shared by the
slices; ``dds+ddip``: one set per slice; ``mbir+d3ip``, ``reddiff+d3ip``) beside its method without
adaptation; ``bars`` holds each variant's gain over TV and over its unadapted method and its time ratio. PSNR and SSIM (CT in the HU window
[-1000, 1000], MRI with the slab's maximum as data range), seconds per volume and network
evaluations per slice. JSON to ``--out``, a Markdown table next to it, and a figure per set
(truth, TV, DDS, DDS + adaptation of its first case) with ``--figures``.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import yaml

from measure import default_prior, machine_info, write_report
from medprior.diffusion.prior_file import read_prior_json
from medprior.io import Volume, load
from medprior.io.crop import crop_or_pad
from medprior.phantoms import brain_mri, ct_body, ct_head
from medprior.phantoms.ct import CT_BODY_SHAPE, CT_BODY_SPACING
from medprior.tables import markdown_table
from medprior.tasks.data import same_field_of_view
from recon_quality import CT_SETTINGS, MRI_SETTINGS, best_tv, run_case, summarise, volumes

CT_SETS = ("ct-head", "ct-body-3mm", "ct-body-1.5mm", "ct-real", "ct-body-native", "ct-real-native")
NATIVE = ("ct-body-native", "ct-real-native", "mri-mni-t1-native", "mri-t2w-native")  # at their own matrix
MRI_SETS = ("mri-mni-t1", "mri-t1n", "mri-mni-t1-native", "mri-t2w-native")
IN_DISTRIBUTION = {"ct-body": "CT", "mri-t2w": "MR"}
REAL_CT = ("CT_small.dcm", "693_J2KI.dcm", "J2K_pixelrep_mismatch.dcm")


def ct_set(name: str, cases: int, seed: int) -> Iterator[tuple[str, Volume]]:
    """(case name, CT volume in HU) of a CT set."""
    if name in ("ct-real", "ct-real-native"):
        from pydicom.data import get_testdata_file
        for file in REAL_CT[:cases]:
            yield file.removesuffix(".dcm"), load(get_testdata_file(file))
        return
    for case_seed in range(seed, seed + cases):
        if name == "ct-head":
            yield f"head-{case_seed}", ct_head(case_seed)
        elif name == "ct-body":
            yield from volumes("CT", 1, case_seed)
        elif name == "ct-body-native":
            yield from ((f"body-{case_seed}-256", body) for _, body in volumes("CT", 1, case_seed))
        else:
            size = (256, 256, 128)
            body = ct_body(case_seed, shape=size, spacing=same_field_of_view(size, CT_BODY_SHAPE, CT_BODY_SPACING))
            crop = 128 if name == "ct-body-3mm" else 64
            yield f"body-{case_seed}-crop{crop}", crop_or_pad(body, (crop, crop, size[2]))


def mri_set(name: str, cases: int, seed: int) -> Iterator[tuple[str, Volume]]:
    """(case name, MR magnitude volume) of an MRI set."""
    if name in ("mri-mni-t1", "mri-mni-t1-native"):
        from nilearn.datasets import load_mni152_template
        template = load_mni152_template(resolution=1)
        volume = Volume(np.asarray(template.get_fdata(), np.float32), template.affine, "MR")
        side = max(volume.shape[:2])
        yield "mni152-t1", crop_or_pad(volume, (side, side, volume.shape[2]))
        return
    for case_seed in range(seed, seed + cases):
        if name == "mri-t2w":
            yield from volumes("MR", 1, case_seed)
        elif name == "mri-t2w-native":
            yield from ((f"brain-{case_seed}-t2w-240", brain) for _, brain in volumes("MR", 1, case_seed))
        else:
            yield f"brain-{case_seed}-t1n", brain_mri(case_seed).contrasts["t1n"]


def figure(path: Path, truth: np.ndarray, images: dict[str, np.ndarray], window: tuple[float, float] | None) -> None:
    """Central slice of the truth and of each method's image, side by side."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    k = truth.shape[2] // 2
    low, high = window or (0.0, float(truth.max()))
    panels = {"truth": truth, **images}
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9))
    for ax, (name, image) in zip(np.atleast_1d(axes), panels.items()):
        ax.imshow(image[:, :, k].T, cmap="gray", vmin=low, vmax=high, origin="lower")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/recon_ood.json"))
    parser.add_argument("--sets", nargs="+", default=[*CT_SETS, *MRI_SETS], choices=[*CT_SETS, *MRI_SETS, *IN_DISTRIBUTION])
    parser.add_argument("--in-distribution", action="store_true", help="add ct-body and mri-t2w (held-out demo seeds)")
    parser.add_argument("--cases", type=int, default=2, help="volumes per set (ct-real: up to 3, mri-mni-t1: 1)")
    parser.add_argument("--seed", type=int, default=100,
                        help="first CT phantom seed; the brain phantoms start 100 higher (default: CT 100 on, brain 200 on)")
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument("--ct-settings", nargs="+", default=list(CT_SETTINGS), choices=list(CT_SETTINGS))
    parser.add_argument("--adapted", nargs="*", default=["dds+d3ip", "mbir+d3ip"],
                        help="adapted diffusion methods, <method>+<d3ip|ddip>")
    parser.add_argument("--tv-lambdas-ct", type=float, nargs="+", default=[0.3, 1.0, 3.0, 10.0])
    parser.add_argument("--tv-lambdas-mri", type=float, nargs="+", default=[0.0003, 0.001, 0.003, 0.01])
    parser.add_argument("--ct-prior", default=default_prior("ct"), help="default: the workflow's (%(default)s)")
    parser.add_argument("--mri-prior", default=default_prior("mri"), help="default: the workflow's (%(default)s)")
    parser.add_argument("--figures", type=Path, help="folder for one figure per set and setting")
    parser.add_argument("--param", action="append", default=[], metavar="METHOD.NAME=VALUE",
                        help="a diffusion method's parameter for every run of it, adapted or not (dds.steps=200)")
    args = parser.parse_args()
    sets = list(args.sets) + (list(IN_DISTRIBUTION) if args.in_distribution else [])
    diffusion_options: dict[str, dict[str, object]] = {}
    for given in args.param:
        key, _, value = given.partition("=")
        method, _, name = key.partition(".")
        if not (value and name):
            parser.error(f"--param needs METHOD.NAME=VALUE, got {given!r}")
        diffusion_options.setdefault(method, {})[name] = yaml.safe_load(value)

    rows, runs_by_set, per_case = [], {}, {}
    for name in sets:
        modality = "CT" if name.startswith("ct") else "MR"
        prior = args.ct_prior if modality == "CT" else args.mri_prior
        size = None if name in NATIVE else tuple(read_prior_json(prior)["image_size"])
        settings = {s: CT_SETTINGS[s] for s in args.ct_settings} if modality == "CT" else MRI_SETTINGS
        classical = ("fbp", "tv") if modality == "CT" else ("zerofill", "cgsense", "tv")
        unadapted = dict.fromkeys(["dds", *(method.partition("+")[0] for method in args.adapted)])
        methods = [*classical, *unadapted, *args.adapted]
        seed = args.seed if modality == "CT" else args.seed + 100
        cases = list(ct_set(name, args.cases, seed) if modality == "CT" else mri_set(name, args.cases, seed))
        for setting, parameters in settings.items():
            key = f"{name}/{setting}"
            runs, names = [], []
            for case, volume in cases:
                print(f"{key} {case}", flush=True)
                images: dict[str, np.ndarray] = {}
                runs.append(run_case(volume, modality, parameters, methods, prior, min(args.slices, volume.shape[2]),
                                     size, args.tv_lambdas_ct if modality == "CT" else args.tv_lambdas_mri,
                                     images=images if args.figures and not names else None,
                                     diffusion_options=diffusion_options))
                if args.figures and not names:
                    figure(args.figures / f"{name}_{setting}.png", images.pop("truth"), images,
                           (-1000.0, 1000.0) if modality == "CT" else None)
                names.append(case)
            runs = best_tv(runs)
            runs_by_set[key] = runs
            per_case[key] = {case: {m: round(r["psnr"], 2) for m, r in run.items()} for case, run in zip(names, runs)}
            rows += [{"set": name, **row} for row in summarise(runs, modality, setting)]
    bars = {}
    for key, runs in runs_by_set.items():
        for method in [m for m in runs[0] if "+" in m]:
            plain = method.partition("+")[0]
            gain_tv = [run[method]["psnr"] - run["tv"]["psnr"] for run in runs]
            gain_plain = [run[method]["psnr"] - run[plain]["psnr"] for run in runs]
            bars[f"{key}/{method}"] = {
                "minus_tv_db": statistics.mean(gain_tv), "minus_unadapted_db": statistics.mean(gain_plain),
                "worst_case_minus_tv_db": min(gain_tv),
                "time_ratio_to_unadapted": statistics.mean(run[method]["seconds"] / run[plain]["seconds"] for run in runs)}
    report = {"benchmark": "diffusion reconstruction out of distribution, with and without adaptation",
              "cases": args.cases, "slices": args.slices, "diffusion_options": diffusion_options, "sets": sets, "per_case_psnr": per_case, "bars": bars,
              "runs": runs_by_set, "rows": rows, **machine_info(torch.device("cuda" if torch.cuda.is_available() else "cpu"))}
    write_report(args.out, report)
    args.out.with_suffix(".md").write_text(markdown_table(rows) + "\n")


if __name__ == "__main__":
    main()
