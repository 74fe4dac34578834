"""Snakemake script: HECKTOR scores per segmentation method over the demo cases, and seconds per case."""

import csv
import json
from pathlib import Path

from medprior.tables import write_table

KEYS = ("DSCagg_GTVp", "DSCagg_GTVn", "DSCagg_mean", "mean_dice_GTVp", "mean_dice_GTVn", "mean_hd95_GTVp",
        "mean_hd95_GTVn", "pooled_auroc_entropy", "pooled_auroc_variance", "pooled_ece")
rows = []
for method, scores, times in zip(snakemake.params.methods, snakemake.input.scores, snakemake.input.times):  # noqa: F821
    aggregate = json.loads(Path(scores).read_text())["aggregate"]
    with open(times) as table:
        seconds = float(next(csv.DictReader(table, delimiter="\t"))["s"])
    rows.append({"method": method, "cases": snakemake.params.cases,  # noqa: F821
                 **{key.removeprefix("mean_").removeprefix("pooled_"): aggregate.get(key, "") for key in KEYS},
                 "seconds_per_case": seconds / snakemake.params.cases})  # noqa: F821
write_table(rows, snakemake.output.csv, snakemake.output.markdown)  # noqa: F821
Path(snakemake.log[0]).write_text(f"{len(rows)} rows\n")  # noqa: F821
