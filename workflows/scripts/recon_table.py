"""Snakemake script: mean metrics, seconds and network evaluations per (modality, setting, method) over cases."""

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from medprior.tables import write_table

COLUMNS = ("psnr", "ssim", "ssim_axial", "ssim_coronal", "ssim_sagittal", "nmse")
groups = defaultdict(list)
for (modality, case, setting, method), metrics, benchmark in zip(
        snakemake.params.jobs, snakemake.input.metrics, snakemake.input.benchmarks):  # noqa: F821
    scores = json.loads(Path(metrics).read_text())
    with open(benchmark) as stream:
        seconds = float(next(csv.DictReader(stream, delimiter="\t"))["s"])
    nfe = scores["reconstruction"].get("nfe_per_slice", 0)  # the estimate's sidecar; 0 for classical methods
    groups[(modality, setting, method)].append({**{k: scores[k] for k in COLUMNS}, "seconds": seconds, "nfe": nfe})

rows = []
for (modality, setting, method), runs in groups.items():
    rows.append({"modality": modality, "setting": setting, "method": method, "cases": len(runs),
                 **{key: float(np.mean([run[key] for run in runs])) for key in (*COLUMNS, "seconds")},
                 "nfe_per_slice": runs[0]["nfe"]})
write_table(rows, snakemake.output.csv, snakemake.output.markdown)  # noqa: F821
Path(snakemake.log[0]).write_text(f"{len(rows)} rows\n")  # noqa: F821
