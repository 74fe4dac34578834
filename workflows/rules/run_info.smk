# Run information for the report: the software versions where the job ran and every seed of the
# configuration and of the prior configs the run uses. Needs PRIORS, PRIOR_CONFIGS, DIFFUSION and SYN.
RUN_PRIORS = list(dict.fromkeys([*PRIORS["train"], *DIFFUSION["priors"].values(), *SYN["models"].values()]))


rule run_info:
    input:
        priors=[f"{PRIOR_CONFIGS}/{name}.yaml" for name in RUN_PRIORS],
    output:
        csv=f"{RESULTS}/tables/run_info.csv",
        markdown=report(f"{RESULTS}/tables/run_info.md", category="Run", caption="../report/run_info.rst"),
    params:
        priors=RUN_PRIORS,
        simulate_seed=0,  # rule simulate's --seed
    log:
        "logs/run_info.log",
    benchmark:
        f"{RESULTS}/benchmarks/run_info.tsv"
    threads: 1
    resources:
        runtime=5,
        mem_mb=2000,
    script:
        "../scripts/run_info.py"
