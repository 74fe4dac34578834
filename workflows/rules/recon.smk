# Reconstruction stage: simulate every configured CT and MRI setting on the demo volumes, run the
# classical baselines, score them and draw one comparison figure per case and setting.
import json

RECON = config["recon"]
RECON_CT = {s["name"]: s for s in RECON["ct"]["settings"]}
RECON_MRI = {s["name"]: s for s in RECON["mri"]["settings"]}
RECON_CT_CASES = list(CT_SEEDS)[: RECON["ct"]["cases"]]
RECON_MRI_CASES = list(BRAIN_SEEDS)[: RECON["mri"]["cases"]]
SOLVER_ARGS = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in RECON["solver"].items())
WINDOW = {"ct": "--window {} {}".format(*RECON["ct"]["window"]), "mri": ""}


wildcard_constraints:
    modality="ct|mri",
    setting=r"[a-z0-9]+",
    method=r"[a-z]+",


def recon_reference(wc):
    """The ground-truth volume of a reconstruction case."""
    if wc.modality == "ct":
        return f"{DATA}/ct/nifti/{wc.case}.nii.gz"
    return f"{DATA}/brats/{wc.case}/{wc.case}-{RECON['mri']['contrast']}.nii.gz"


def simulate_args(wc):
    """Command-line options of one configured setting."""
    if wc.modality == "ct":
        s = RECON_CT[wc.setting]
        return (f"ct --views {s['views']} --arc {s['arc_deg']} --start {s['start_deg']} --photons {s['photons']}"
                f" --slices {RECON['ct']['slices']}")
    s = RECON_MRI[wc.setting]
    return (f"mri --acceleration {s['acceleration']} --mask {s['mask']} --center-fraction {s['center_fraction']}"
            f" --coils {RECON['mri']['coils']} --snr-db {RECON['mri']['snr_db']} --slices {RECON['mri']['slices']}")


rule simulate:
    input:
        recon_reference,
    output:
        f"{RESULTS}/recon/{{modality}}/{{case}}/{{setting}}/measurement.h5",
    params:
        args=simulate_args,
    log:
        "logs/recon/simulate/{modality}/{case}/{setting}.log",
    threads: 2
    resources:
        runtime=20,
        mem_mb=8000,
    shell:
        "medprior simulate {params.args} --setting {wildcards.setting} --seed 0 {input} --out {output} > {log} 2>&1"


rule reconstruct:
    input:
        f"{RESULTS}/recon/{{modality}}/{{case}}/{{setting}}/measurement.h5",
    output:
        f"{RESULTS}/recon/{{modality}}/{{case}}/{{setting}}/{{method}}.nii.gz",
    log:
        "logs/recon/reconstruct/{modality}/{case}/{setting}/{method}.log",
    benchmark:
        f"{RESULTS}/benchmarks/recon/{{modality}}/{{case}}/{{setting}}/{{method}}.tsv"
    threads: 2
    resources:
        runtime=60,
        mem_mb=12000,
        gpu=0,
    shell:
        "medprior recon {input} --method {wildcards.method} --out {output} " + SOLVER_ARGS + " > {log} 2>&1"


rule evaluate:
    input:
        reference=recon_reference,
        estimate=f"{RESULTS}/recon/{{modality}}/{{case}}/{{setting}}/{{method}}.nii.gz",
    output:
        f"{RESULTS}/recon/{{modality}}/{{case}}/{{setting}}/{{method}}.metrics.json",
    params:
        window=lambda wc: WINDOW[wc.modality],
    log:
        "logs/recon/evaluate/{modality}/{case}/{setting}/{method}.log",
    threads: 1
    resources:
        runtime=10,
        mem_mb=4000,
    shell:
        "medprior evaluate --reference {input.reference} --estimate {input.estimate} {params.window}"
        " --out {output} > {log} 2>&1"


def recon_methods(modality):
    return RECON[modality]["methods"]


rule recon_figure:
    input:
        reference=recon_reference,
        estimates=lambda wc: expand(f"{RESULTS}/recon/{wc.modality}/{wc.case}/{wc.setting}/{{method}}.nii.gz",
                                    method=recon_methods(wc.modality)),
    output:
        report(f"{RESULTS}/recon/{{modality}}/{{case}}/{{setting}}/comparison.png", category="Reconstruction",
               subcategory="{modality} {setting}", caption="../report/recon_figure.rst"),
    params:
        names=lambda wc: " ".join(recon_methods(wc.modality)),
        window=lambda wc: WINDOW[wc.modality],
    log:
        "logs/recon/figure/{modality}/{case}/{setting}.log",
    threads: 1
    resources:
        runtime=5,
        mem_mb=4000,
    shell:
        "medprior figure {input.reference} {input.estimates} --names {params.names} {params.window}"
        " --title '{wildcards.case} {wildcards.setting}' --out {output} > {log} 2>&1"


def recon_jobs():
    """(modality, case, setting, method) of every configured reconstruction."""
    jobs = [("ct", c, s, m) for c in RECON_CT_CASES for s in RECON_CT for m in recon_methods("ct")]
    jobs += [("mri", c, s, m) for c in RECON_MRI_CASES for s in RECON_MRI for m in recon_methods("mri")]
    return jobs


rule recon_table:
    input:
        metrics=[f"{RESULTS}/recon/{m}/{c}/{s}/{x}.metrics.json" for m, c, s, x in recon_jobs()],
        benchmarks=[f"{RESULTS}/benchmarks/recon/{m}/{c}/{s}/{x}.tsv" for m, c, s, x in recon_jobs()],
    output:
        csv=f"{RESULTS}/tables/recon.csv",
        markdown=report(f"{RESULTS}/tables/recon.md", category="Tables", caption="../report/recon_table.rst"),
    params:
        jobs=recon_jobs(),
    log:
        "logs/recon/recon_table.log",
    threads: 1
    resources:
        runtime=5,
        mem_mb=2000,
    script:
        "../scripts/recon_table.py"


rule recon_all:
    input:
        f"{RESULTS}/tables/recon.md",
        [f"{RESULTS}/recon/ct/{c}/{s}/comparison.png" for c in RECON_CT_CASES for s in RECON_CT],
        [f"{RESULTS}/recon/mri/{c}/{s}/comparison.png" for c in RECON_MRI_CASES for s in RECON_MRI],
