# Synthesis stage (BraSyn): small BraTS-layout phantoms, one contrast dropped per case as the
# challenge does, the missing contrast synthesized by every configured method (the cWDM model, its
# regression baseline, the histogram-matched mean), each submission checked and scored, one figure
# per case and one table. Needs prior_path and PRIOR_CONFIGS from priors.smk.
from medprior.challenges import brats_case_id

SYN = config["synthesis"]
SYN_CASES = [brats_case_id(s) for s in range(SYN["seed"], SYN["seed"] + SYN["cases"])]
SYN_DIR = f"{RESULTS}/synthesis"


wildcard_constraints:
    synthesis_method="cwdm|regression|mean",
    synthesis_case=r"BraTS-GLI-\d{5}-\d{3}",


def synthesis_model(wc):
    """The model folder of a method: a shipped or trained prior, or the fitted histogram baseline."""
    if wc.synthesis_method == "mean":
        return f"{SYN_DIR}/models/mean"
    return prior_path(SYN["models"][wc.synthesis_method])


rule synthesis_phantoms:
    output:
        directory(f"{DATA}/brasyn/complete"),
    params:
        size=" ".join(str(n) for n in SYN["size"]),
    log:
        "logs/synthesis/phantoms.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthesis/phantoms.tsv"
    threads: 1
    resources:
        runtime=10,
        mem_mb=4000,
    shell:
        "medprior phantom brain --out {output} --cases {SYN[cases]} --seed {SYN[seed]} --size {params.size} > {log} 2>&1"


rule brasyn_split:
    input:
        rules.synthesis_phantoms.output,
    output:
        cases=directory(f"{DATA}/brasyn/cases"),
        truth=directory(f"{DATA}/brasyn/truth"),
    log:
        "logs/synthesis/split.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthesis/split.tsv"
    threads: 1
    resources:
        runtime=5,
        mem_mb=2000,
    shell:
        "medprior brasyn-split --cases {input} --out {output.cases} --truth {output.truth}"
        " --seed {SYN[split_seed]} > {log} 2>&1"


rule fit_histogram_mean:
    input:
        f"{PRIOR_CONFIGS}/{SYN['models']['mean']}.yaml",
    output:
        directory(f"{SYN_DIR}/models/mean"),
    log:
        "logs/synthesis/fit_histogram_mean.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthesis/fit_histogram_mean.tsv"
    threads: 1
    resources:
        runtime=10,
        mem_mb=4000,
    shell:
        "medprior fit-histogram-mean --config {input} --out {output} > {log} 2>&1"


rule synthesize:
    input:
        cases=rules.brasyn_split.output.cases,
        model=synthesis_model,
    output:
        directory(f"{SYN_DIR}/{{synthesis_method}}/submission"),
    log:
        "logs/synthesis/synthesize/{synthesis_method}.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthesis/{{synthesis_method}}.tsv"
    threads: 2
    resources:
        gpu=1,
        runtime=60,
        mem_mb=8000,
    shell:
        "medprior synthesize --model {input.model} --input {input.cases} --output {output}"
        " --steps {SYN[steps]} --sampler {SYN[sampler]} --seed {SYN[seed_sampling]} --device {SYN[device]} > {log} 2>&1"


rule evaluate_synthesis:
    input:
        submission=rules.synthesize.output,
        cases=rules.brasyn_split.output.cases,
        truth=rules.brasyn_split.output.truth,
    output:
        f"{SYN_DIR}/{{synthesis_method}}/scores.json",
    log:
        "logs/synthesis/evaluate/{synthesis_method}.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthesis/evaluate/{{synthesis_method}}.tsv"
    threads: 1
    resources:
        runtime=10,
        mem_mb=4000,
    shell:
        "(medprior check-submission --submission {input.submission} --cases {input.cases} &&"
        " medprior evaluate synthesis --submission {input.submission} --truth {input.truth}"
        " --cases {input.cases} --out {output}) > {log} 2>&1"


rule synthesis_figure:
    input:
        cases=rules.brasyn_split.output.cases,
        truth=rules.brasyn_split.output.truth,
        submissions=expand(f"{SYN_DIR}/{{method}}/submission", method=SYN["methods"]),
    output:
        report(f"{SYN_DIR}/figures/{{synthesis_case}}.png", category="Synthesis",
               caption="../report/synthesis_figure.rst"),
    params:
        submissions=" ".join(f"{m}={SYN_DIR}/{m}/submission" for m in SYN["methods"]),
    log:
        "logs/synthesis/figure/{synthesis_case}.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthesis/figure/{{synthesis_case}}.tsv"
    threads: 1
    resources:
        runtime=5,
        mem_mb=2000,
    shell:
        "medprior synthesis-figure --case {wildcards.synthesis_case} --cases {input.cases} --truth {input.truth}"
        " --submission {params.submissions}"
        " --out {output} > {log} 2>&1"


rule synthesis_table:
    input:
        scores=expand(f"{SYN_DIR}/{{method}}/scores.json", method=SYN["methods"]),
        benchmarks=expand(f"{RESULTS}/benchmarks/synthesis/{{method}}.tsv", method=SYN["methods"]),
    output:
        csv=f"{RESULTS}/tables/synthesis.csv",
        markdown=report(f"{RESULTS}/tables/synthesis.md", category="Tables",
                        caption="../report/synthesis_table.rst"),
    params:
        methods=SYN["methods"],
        cases=len(SYN_CASES),
    log:
        "logs/synthesis/table.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthesis/synthesis_table.tsv"
    threads: 1
    resources:
        runtime=5,
        mem_mb=2000,
    script:
        "../scripts/synthesis_table.py"


rule synthesis_all:
    input:
        [f"{RESULTS}/tables/synthesis.md", *expand(f"{SYN_DIR}/figures/{{case}}.png", case=SYN_CASES)]
        if SYN_CASES else [],
