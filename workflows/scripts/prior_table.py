"""Snakemake script: one row per trained prior - training facts from prior.json, sample check scores."""

import json
from pathlib import Path

from medprior.tables import write_table

rows = []
for report_path, prior_dir in zip(snakemake.input.reports, snakemake.input.priors):  # noqa: F821
    report = json.loads(Path(report_path).read_text())
    prior = json.loads((Path(prior_dir) / "prior.json").read_text())
    training = prior["training"]
    row = {"prior": Path(prior_dir).name, "kind": prior["kind"], "image_size": "x".join(map(str, prior["image_size"])),
           "parameters": prior["weights"]["parameters"], "steps": training["steps"],
           "train_s": training["wall_time_s"], "examples": training["data"]["examples"],
           "sampler": f"{report['settings']['sampler']} {report['settings']['steps']}"}
    for name in ("samples", "training", "white_noise"):
        row[f"{name}_hist"] = report[name]["histogram_intersection"]
        row[f"{name}_spectrum_db"] = report[name]["spectrum_db"]
    rows.append(row)
write_table(rows, snakemake.output.csv, snakemake.output.markdown)  # noqa: F821
Path(snakemake.log[0]).write_text(f"{len(rows)} priors\n")  # noqa: F821
