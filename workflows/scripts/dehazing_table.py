"""Snakemake script: dehazing scores per method (mean over the demo frames) and seconds per frame."""

import json
from pathlib import Path

from medprior.tables import write_table

KEYS = ("psnr", "psnr_hazy", "ssim", "ssim_hazy", "gcnr", "gcnr_hazy", "gcnr_truth", "cnr", "ks_septum",
        "ks_ventricle")
rows = []
for method in snakemake.params.methods:  # noqa: F821
    scores = [json.loads(Path(f"{snakemake.params.results}/{method}/{frame}.json").read_text())  # noqa: F821
              for frame in snakemake.params.frames]  # noqa: F821
    rows.append({"method": method, "frames": len(scores),
                 **{key: sum(s["mean"][key] for s in scores) / len(scores) for key in KEYS},
                 "seconds_per_frame": sum(s["seconds_per_frame"] for s in scores) / len(scores)})
write_table(rows, snakemake.output.csv, snakemake.output.markdown)  # noqa: F821
Path(snakemake.log[0]).write_text(f"{len(rows)} rows\n")  # noqa: F821
