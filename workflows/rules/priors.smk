# Prior stage: the diffusion priors (configs/priors/<name>.yaml) and checks of their samples
# against the prior's held-out data (histograms, power spectra), tabulated. The demo priors are
# shipped in priors/<name> (trained by train_prior below); priors.retrain trains them afresh into
# results/priors/<name>, and every consumer then uses those.
import os

PRIORS = config["priors"]
# A relative config_dir is relative to the repository (the Snakefile's folder), not the working directory.
PRIOR_CONFIGS = os.path.join(workflow.basedir, PRIORS["config_dir"])
PRIOR_BUDGET = f"--time-budget {PRIORS['time_budget_s']}" if PRIORS["time_budget_s"] else ""
SHIPPED_PRIORS = os.path.join(workflow.basedir, "priors")


def prior_path(name):
    """The prior folder the workflow uses: shipped, or trained by train_prior."""
    shipped = os.path.join(SHIPPED_PRIORS, name)
    if not PRIORS["retrain"] and os.path.isfile(os.path.join(shipped, "prior.json")):
        return shipped
    return f"{RESULTS}/priors/{name}"


wildcard_constraints:
    prior=r"[a-z0-9_]+",


rule train_prior:
    input:
        f"{PRIOR_CONFIGS}/{{prior}}.yaml",
    output:
        directory(f"{RESULTS}/priors/{{prior}}"),
    params:
        workdir=f"{RESULTS}/priors/{{prior}}.work",
    log:
        "logs/priors/train/{prior}.log",
    benchmark:
        f"{RESULTS}/benchmarks/priors/train/{{prior}}.tsv"
    threads: 2
    resources:
        gpu=1,
        runtime=240,
        mem_mb=16000,
    shell:
        "medprior train-prior --config {input} --out {output} --workdir {params.workdir} "
        "--device " + PRIORS["device"] + " " + PRIOR_BUDGET + " > {log} 2>&1"


rule check_prior:
    input:
        prior=lambda wc: prior_path(wc.prior),
        config=f"{PRIOR_CONFIGS}/{{prior}}.yaml",
    output:
        report=f"{RESULTS}/priors/{{prior}}.check.json",
        figure=report(f"{RESULTS}/priors/{{prior}}.samples.png", caption="../report/priors.rst", category="Priors"),
    log:
        "logs/priors/check/{prior}.log",
    benchmark:
        f"{RESULTS}/benchmarks/priors/check/{{prior}}.tsv"
    threads: 2
    resources:
        gpu=1,
        runtime=30,
        mem_mb=8000,
    shell:
        "medprior check-prior --prior {input.prior} --config {input.config} --out {output.report} "
        "--figure {output.figure} --device " + PRIORS["device"] + " > {log} 2>&1"


rule prior_table:
    input:
        reports=expand(f"{RESULTS}/priors/{{prior}}.check.json", prior=PRIORS["train"]),
        priors=[prior_path(name) for name in PRIORS["train"]],
    output:
        csv=f"{RESULTS}/tables/priors.csv",
        markdown=report(f"{RESULTS}/tables/priors.md", category="Tables", caption="../report/prior_table.rst"),
    log:
        "logs/priors/table.log",
    benchmark:
        f"{RESULTS}/benchmarks/priors/table.tsv"
    threads: 1
    resources:
        runtime=5,
        mem_mb=2000,
    script:
        "../scripts/prior_table.py"


rule priors_all:
    input:
        rules.prior_table.output,
