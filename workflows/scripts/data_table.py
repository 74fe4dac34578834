"""Snakemake script: one row per image of the data stage, with the time its job took (benchmark TSV)."""

import csv
from pathlib import Path

from medprior.tables import write_table
from medprior.tasks.data import image_summary


def job_seconds(tsv: str) -> float:
    with open(tsv) as stream:
        return float(next(csv.DictReader(stream, delimiter="\t"))["s"])


rows = []
for dataset, case, image, is_label, benchmark in snakemake.params.images:  # noqa: F821
    rows.append({"dataset": dataset, "case": case, **image_summary(image, label=is_label),
                 "job_s": job_seconds(benchmark)})
write_table(rows, snakemake.output.csv, snakemake.output.markdown)  # noqa: F821
Path(snakemake.log[0]).write_text(f"{len(rows)} rows\n")  # noqa: F821
