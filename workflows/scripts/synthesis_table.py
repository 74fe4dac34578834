"""Snakemake script: BraSyn scores (mean over cases) per synthesis method, seconds per volume and peak memory."""

import csv
import json
from pathlib import Path

from medprior.challenges.brasyn import METRICS, REGIONS
from medprior.tables import write_table

rows = []
for method, scores_path, benchmark in zip(snakemake.params.methods, snakemake.input.scores,  # noqa: F821
                                          snakemake.input.benchmarks):  # noqa: F821
    mean = json.loads(Path(scores_path).read_text())["mean"]
    with open(benchmark) as stream:
        job = next(csv.DictReader(stream, delimiter="\t"))
    rows.append({"method": method, "cases": snakemake.params.cases,  # noqa: F821
                 **{f"{metric}_{region}": mean[f"{metric}_{region}"] for region in REGIONS for metric in METRICS},
                 "seconds_per_volume": float(job["s"]) / snakemake.params.cases,  # noqa: F821
                 "peak_rss_mb": float(job["max_rss"])})
write_table(rows, snakemake.output.csv, snakemake.output.markdown)  # noqa: F821
Path(snakemake.log[0]).write_text(f"{len(rows)} rows\n")  # noqa: F821
