"""Snakemake script: the software versions and every seed of this run (config and the priors' configs)."""

import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from medprior.tables import write_table
from medprior.tasks.priors import load_prior_config


def installed(package):
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def seeds(tree, prefix):
    """(setting, value) of every key that names a seed, depth first."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if "seed" in str(key) and not isinstance(value, dict):
                yield path, value
            else:
                yield from seeds(value, path)
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield from seeds(value, f"{prefix}[{index}]")


rows = [{"kind": "version", "name": "python", "value": platform.python_version()}]
rows += [{"kind": "version", "name": package, "value": installed(package)}
         for package in ("medprior", "snakemake", "torch", "numpy", "snakemake-executor-plugin-slurm")]
rows += [{"kind": "seed", "name": f"config {path}", "value": value}
         for path, value in seeds(snakemake.config, "")]  # noqa: F821
rows += [{"kind": "seed", "name": f"simulate --seed", "value": snakemake.params.simulate_seed}]  # noqa: F821
for name, path in zip(snakemake.params.priors, snakemake.input.priors):  # noqa: F821
    rows += [{"kind": "seed", "name": f"prior {name} {setting}", "value": value}
             for setting, value in seeds(load_prior_config(path), "")]
write_table(rows, snakemake.output.csv, snakemake.output.markdown)  # noqa: F821
Path(snakemake.log[0]).write_text(f"{len(rows)} rows\n")  # noqa: F821
