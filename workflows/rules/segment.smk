# Segmentation stage (HECKTOR 2022): the data stage's head-and-neck PET/CT cases segmented by every
# configured method (the conditional 3D diffusion model with its ensemble's uncertainty, SegResNet,
# UNet, the PET threshold) into a HECKTOR submission each, checked as the challenge does, scored (DSCagg,
# Dice, HD95, uncertainty AUROC, ECE), one figure per case and one table. Needs PETCT_SEEDS (data.smk)
# and prior_path (priors.smk).
SEG = config["segment"]
SEG_DIR = f"{RESULTS}/segment"
SEG_CASES = list(PETCT_SEEDS)


wildcard_constraints:
    segment_method="|".join(SEG["methods"]) or "none",


def segment_inputs(wc):
    """The case files, and the model folder of a learned method (shipped or trained)."""
    files = {f"{kind}_{case}": path for case in SEG_CASES for kind, path in (
        ("ct", f"{DATA}/hecktor/imagesTr/{case}__CT.nii.gz"), ("pet", f"{DATA}/hecktor/imagesTr/{case}__PT.nii.gz"),
        ("label", f"{DATA}/hecktor/labelsTr/{case}.nii.gz"))}
    if wc.segment_method != "threshold":
        files["model"] = prior_path(SEG["models"][wc.segment_method])
    return files


def segment_model_arg(wc, input):
    return "--method threshold" if wc.segment_method == "threshold" else f"--model {input.model}"


rule segment:
    input:
        unpack(segment_inputs),
    output:
        submission=directory(f"{SEG_DIR}/{{segment_method}}/submission"),
        uncertainty=directory(f"{SEG_DIR}/{{segment_method}}/uncertainty"),
    params:
        model=segment_model_arg,
    log:
        "logs/segment/segment/{segment_method}.log",
    benchmark:
        f"{RESULTS}/benchmarks/segment/{{segment_method}}.tsv"
    threads: 2
    resources:
        gpu=1,
        runtime=60,
        mem_mb=8000,
    shell:
        "medprior segment {params.model} --input {DATA}/hecktor --output {output.submission}"
        " --uncertainty {output.uncertainty} --device {SEG[device]} > {log} 2>&1"


rule check_segmentation:
    input:
        rules.segment.output.submission,
    output:
        f"{SEG_DIR}/{{segment_method}}/check.txt",
    log:
        "logs/segment/check/{segment_method}.log",
    benchmark:
        f"{RESULTS}/benchmarks/segment/check/{{segment_method}}.tsv"
    threads: 1
    resources:
        runtime=5,
        mem_mb=2000,
    shell:
        "medprior check-submission --challenge hecktor --submission {input} --cases {DATA}/hecktor > {output} 2> {log}"


rule evaluate_segmentation:
    input:
        submission=rules.segment.output.submission,
        uncertainty=rules.segment.output.uncertainty,
        check=rules.check_segmentation.output,
    output:
        f"{SEG_DIR}/{{segment_method}}/scores.json",
    log:
        "logs/segment/evaluate/{segment_method}.log",
    benchmark:
        f"{RESULTS}/benchmarks/segment/evaluate/{{segment_method}}.tsv"
    threads: 1
    resources:
        runtime=10,
        mem_mb=4000,
    shell:
        "medprior evaluate segmentation --submission {input.submission} --cases {DATA}/hecktor"
        " --uncertainty {input.uncertainty} --out {output} > {log} 2>&1"


rule segmentation_figure:
    input:
        submissions=expand(f"{SEG_DIR}/{{method}}/submission", method=SEG["methods"]),
        uncertainty=f"{SEG_DIR}/{SEG['methods'][0]}/uncertainty" if SEG["methods"] else [],
    output:
        report(f"{SEG_DIR}/figures/{{petct_case}}.png", category="Segmentation",
               caption="../report/segmentation_figure.rst"),
    params:
        names=" ".join(SEG["methods"]),
    log:
        "logs/segment/figure/{petct_case}.log",
    benchmark:
        f"{RESULTS}/benchmarks/segment/figure/{{petct_case}}.tsv"
    threads: 1
    resources:
        runtime=5,
        mem_mb=2000,
    shell:
        "medprior segmentation-figure --case {wildcards.petct_case} --cases {DATA}/hecktor {input.submissions}"
        " --names {params.names} --uncertainty {input.uncertainty} --out {output} > {log} 2>&1"


rule segmentation_table:
    input:
        scores=expand(f"{SEG_DIR}/{{method}}/scores.json", method=SEG["methods"]),
        times=expand(f"{RESULTS}/benchmarks/segment/{{method}}.tsv", method=SEG["methods"]),
    output:
        csv=f"{RESULTS}/tables/segmentation.csv",
        markdown=report(f"{RESULTS}/tables/segmentation.md", category="Tables",
                        caption="../report/segmentation_table.rst"),
    params:
        methods=SEG["methods"],
        cases=len(SEG_CASES),
    log:
        "logs/segment/table.log",
    benchmark:
        f"{RESULTS}/benchmarks/segment/segmentation_table.tsv"
    threads: 1
    resources:
        runtime=5,
        mem_mb=2000,
    script:
        "../scripts/segmentation_table.py"


rule segment_all:
    input:
        [f"{RESULTS}/tables/segmentation.md", *expand(f"{SEG_DIR}/figures/{{case}}.png", case=SEG_CASES)]
        if SEG_CASES and SEG["methods"] else [],
