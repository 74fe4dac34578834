# Reconstruction stage: simulate every configured CT and MRI setting on the demo volumes (the
# central slab, area-averaged to the slice priors' size), run the classical baselines and the
# diffusion solvers, score them against the simulated slab and draw one comparison figure per case
# and setting. Needs prior_path from priors.smk.
from medprior.methods import RECON_METHODS

RECON = config["recon"]
RECON_CT = {s["name"]: s for s in RECON["ct"]["settings"]}
RECON_MRI = {s["name"]: s for s in RECON["mri"]["settings"]}
RECON_CT_CASES = list(CT_SEEDS)[: RECON["ct"]["cases"]]
RECON_MRI_CASES = list(BRAIN_SEEDS)[: RECON["mri"]["cases"]]
SOLVER_ARGS = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in RECON["solver"].items())
DIFFUSION = RECON["diffusion"]
CLASSICAL_METHODS = RECON_METHODS.names("classical")
DIFFUSION_METHODS = RECON_METHODS.names("diffusion")
WINDOW = {"ct": "--window {} {}".format(*RECON["ct"]["window"]), "mri": ""}


wildcard_constraints:
    modality="ct|mri",
    setting=r"[a-z0-9]+",
    method="|".join(RECON_METHODS.names()),


def source_volume(wc):
    """The demo volume a reconstruction case is simulated from."""
    if wc.modality == "ct":
        return f"{DATA}/ct/nifti/{wc.case}.nii.gz"
    return f"{DATA}/brats/{wc.case}/{wc.case}-{RECON['mri']['contrast']}.nii.gz"


def size_args(modality):
    size = RECON[modality]["size"]
    return f"--size {size[0]} {size[1]}" if size else ""


def simulate_args(wc):
    """Command-line options of one configured setting."""
    if wc.modality == "ct":
        s = RECON_CT[wc.setting]
        return (f"ct --views {s['views']} --arc {s['arc_deg']} --start {s['start_deg']} --photons {s['photons']}"
                f" --slices {RECON['ct']['slices']} {size_args('ct')}")
    s = RECON_MRI[wc.setting]
    return (f"mri --acceleration {s['acceleration']} --mask {s['mask']} --center-fraction {s['center_fraction']}"
            f" --coils {RECON['mri']['coils']} --snr-db {RECON['mri']['snr_db']} --slices {RECON['mri']['slices']}"
            f" {size_args('mri')}")


rule simulate:
    input:
        source_volume,
    output:
        measurement=f"{RESULTS}/recon/{{modality}}/{{case}}/{{setting}}/measurement.h5",
        truth=f"{RESULTS}/recon/{{modality}}/{{case}}/{{setting}}/truth.nii.gz",
    params:
        args=simulate_args,
    log:
        "logs/recon/simulate/{modality}/{case}/{setting}.log",
    benchmark:
        f"{RESULTS}/benchmarks/recon/simulate/{{modality}}/{{case}}/{{setting}}.tsv"
    threads: 1  # startup and single-threaded work: two of them share the 2 cores
    resources:
        runtime=20,
        mem_mb=8000,
    shell:
        "medprior simulate {params.args} --setting {wildcards.setting} --seed 0 {input} --out {output.measurement}"
        " --truth-out {output.truth} > {log} 2>&1"


rule reconstruct:
    input:
        f"{RESULTS}/recon/{{modality}}/{{case}}/{{setting}}/measurement.h5",
    output:
        f"{RESULTS}/recon/{{modality}}/{{case}}/{{setting}}/{{method}}.nii.gz",
    wildcard_constraints:
        method="|".join(CLASSICAL_METHODS),
    log:
        "logs/recon/reconstruct/{modality}/{case}/{setting}/{method}.log",
    benchmark:
        f"{RESULTS}/benchmarks/recon/{{modality}}/{{case}}/{{setting}}/{{method}}.tsv"
    threads: 1  # startup and single-threaded work: two of them share the 2 cores
    resources:
        runtime=60,
        mem_mb=12000,
    shell:
        "medprior recon {input} --method {wildcards.method} --out {output} " + SOLVER_ARGS + " > {log} 2>&1"


def diffusion_args(wc):
    """The method's parameters (config recon.diffusion, with mri_overrides for MRI) as recon options."""
    chosen = RECON_METHODS.parameters(wc.method, "MR" if wc.modality == "mri" else "CT", config=config)
    parameters = " ".join(f"--param {k}={v}" for k, v in chosen.items())
    return (f"{parameters} --seed {DIFFUSION['seed']} --slice-batch {DIFFUSION['slice_batch']}"
            f" --device {DIFFUSION['device']} --resample {DIFFUSION['resample']}")


rule reconstruct_diffusion:
    input:
        measurement=f"{RESULTS}/recon/{{modality}}/{{case}}/{{setting}}/measurement.h5",
        prior=lambda wc: prior_path(DIFFUSION["priors"][wc.modality]),
    output:
        f"{RESULTS}/recon/{{modality}}/{{case}}/{{setting}}/{{method}}.nii.gz",
    wildcard_constraints:
        method="|".join(DIFFUSION_METHODS),
    log:
        "logs/recon/reconstruct/{modality}/{case}/{setting}/{method}.log",
    benchmark:
        f"{RESULTS}/benchmarks/recon/{{modality}}/{{case}}/{{setting}}/{{method}}.tsv"
    params:
        args=diffusion_args,
    threads: 1  # 1.35-1.6 times slower than on 2 threads, but two of them share the 2 cores
    resources:
        runtime=120,
        mem_mb=16000,
        gpu=1,
    shell:
        "medprior recon {input.measurement} --method {wildcards.method} --prior {input.prior} --out {output}"
        " {params.args} > {log} 2>&1"


rule evaluate:
    input:
        reference=f"{RESULTS}/recon/{{modality}}/{{case}}/{{setting}}/truth.nii.gz",
        estimate=f"{RESULTS}/recon/{{modality}}/{{case}}/{{setting}}/{{method}}.nii.gz",
    output:
        f"{RESULTS}/recon/{{modality}}/{{case}}/{{setting}}/{{method}}.metrics.json",
    params:
        window=lambda wc: WINDOW[wc.modality],
    log:
        "logs/recon/evaluate/{modality}/{case}/{setting}/{method}.log",
    benchmark:
        f"{RESULTS}/benchmarks/recon/evaluate/{{modality}}/{{case}}/{{setting}}/{{method}}.tsv"
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
        reference=f"{RESULTS}/recon/{{modality}}/{{case}}/{{setting}}/truth.nii.gz",
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
    benchmark:
        f"{RESULTS}/benchmarks/recon/figure/{{modality}}/{{case}}/{{setting}}.tsv"
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
    benchmark:
        f"{RESULTS}/benchmarks/recon/recon_table.tsv"
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
