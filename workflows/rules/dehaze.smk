# Dehazing stage (Stevens et al., DehazingEcho2025): simulated cardiac apical views (P4-2v), each as
# a hazy RF acquisition (tissue plus gamma times haze, added on the channel data, which equals adding
# it to the beamformed RF) and its haze-free truth with the region masks; both beamformed; the hazy
# frame dehazed by every configured method; each scored against the truth and the hazy input; one
# figure per frame and one table. Needs prior_path from priors.smk.
DEHAZE = config["dehaze"]
ECHO_FRAMES = [f"echo-{s}" for s in range(DEHAZE["seed"], DEHAZE["seed"] + DEHAZE["frames"])]
ECHO_DIR = f"{DATA}/echo"
DEHAZE_DIR = f"{RESULTS}/dehaze"
DEHAZE_MODELS = {
    "diffusion": {"tissue_prior": "tissue", "haze_prior": "haze"},
    "supervised": {"model": "supervised"},
}


wildcard_constraints:
    dehaze_method="|".join(DEHAZE["methods"]) or "none",
    echo_frame=r"echo-\d+",
    echo_content="hazy|truth",


def dehaze_models(wc):
    """The model folders (shipped or trained priors) a dehazing method reads, by CLI option."""
    roles = DEHAZE_MODELS.get(wc.dehaze_method, {})
    return {option: prior_path(DEHAZE["models"][role]) for option, role in roles.items()}


def dehaze_model_args(wc, input):
    return " ".join(f"--{option.replace('_', '-')} {input[option]}" for option in DEHAZE_MODELS.get(wc.dehaze_method, {}))


rule simulate_echo:
    output:
        hazy=f"{ECHO_DIR}/{{echo_frame}}/hazy_rf.hdf5",
        truth=f"{ECHO_DIR}/{{echo_frame}}/truth_rf.hdf5",
    params:
        seed=lambda wc: wc.echo_frame.removeprefix("echo-"),
    log:
        "logs/dehaze/simulate/{echo_frame}.log",
    benchmark:
        f"{RESULTS}/benchmarks/dehaze/simulate/{{echo_frame}}.tsv"
    threads: 1
    resources:
        runtime=10,
        mem_mb=4000,
    shell:
        "medprior simulate us --seed {params.seed} --haze {DEHAZE[haze]} --gamma {DEHAZE[gamma]}"
        " --out {output.hazy} --truth-out {output.truth} > {log} 2>&1"


rule beamform_echo:
    input:
        f"{ECHO_DIR}/{{echo_frame}}/{{echo_content}}_rf.hdf5",
    output:
        f"{ECHO_DIR}/{{echo_frame}}/{{echo_content}}.hdf5",
    log:
        "logs/dehaze/beamform/{echo_frame}_{echo_content}.log",
    benchmark:
        f"{RESULTS}/benchmarks/dehaze/beamform/{{echo_frame}}_{{echo_content}}.tsv"
    threads: 1
    resources:
        runtime=10,
        mem_mb=4000,
    shell:
        "medprior beamform {input} --out {output} --device {DEHAZE[device]} > {log} 2>&1"


rule dehaze:
    input:
        unpack(dehaze_models),
        hazy=f"{ECHO_DIR}/{{echo_frame}}/hazy.hdf5",
    output:
        f"{DEHAZE_DIR}/{{dehaze_method}}/{{echo_frame}}.hdf5",
    params:
        models=dehaze_model_args,
    log:
        "logs/dehaze/dehaze/{dehaze_method}/{echo_frame}.log",
    benchmark:
        f"{RESULTS}/benchmarks/dehaze/{{dehaze_method}}/{{echo_frame}}.tsv"
    threads: lambda wc: 2 if wc.dehaze_method == "diffusion" else 1  # the others pair on the 2 cores
    resources:
        gpu=1,
        runtime=30,
        mem_mb=8000,
    shell:
        "medprior dehaze {input.hazy} --method {wildcards.dehaze_method} {params.models} --out {output}"
        " --dynamic-range {DEHAZE[dynamic_range]} --device {DEHAZE[device]} > {log} 2>&1"


rule evaluate_dehazing:
    input:
        dehazed=rules.dehaze.output,
        hazy=f"{ECHO_DIR}/{{echo_frame}}/hazy.hdf5",
        truth=f"{ECHO_DIR}/{{echo_frame}}/truth.hdf5",
    output:
        f"{DEHAZE_DIR}/{{dehaze_method}}/{{echo_frame}}.json",
    log:
        "logs/dehaze/evaluate/{dehaze_method}/{echo_frame}.log",
    benchmark:
        f"{RESULTS}/benchmarks/dehaze/evaluate/{{dehaze_method}}/{{echo_frame}}.tsv"
    threads: 1
    resources:
        runtime=5,
        mem_mb=2000,
    shell:
        "medprior evaluate dehazing --estimate {input.dehazed} --hazy {input.hazy} --truth {input.truth}"
        " --out {output} > {log} 2>&1"


rule dehazing_figure:
    input:
        hazy=f"{ECHO_DIR}/{{echo_frame}}/hazy.hdf5",
        truth=f"{ECHO_DIR}/{{echo_frame}}/truth.hdf5",
        dehazed=expand(f"{DEHAZE_DIR}/{{method}}/{{{{echo_frame}}}}.hdf5", method=DEHAZE["methods"]),
    output:
        report(f"{DEHAZE_DIR}/figures/{{echo_frame}}.png", category="Dehazing", caption="../report/dehazing_figure.rst"),
    params:
        names=" ".join(DEHAZE["methods"]),
    log:
        "logs/dehaze/figure/{echo_frame}.log",
    benchmark:
        f"{RESULTS}/benchmarks/dehaze/figure/{{echo_frame}}.tsv"
    threads: 1
    resources:
        runtime=5,
        mem_mb=2000,
    shell:
        "medprior dehazing-figure {input.hazy} {input.truth} {input.dehazed} --names {params.names}"
        " --title '{wildcards.echo_frame}: haze {DEHAZE[haze]}, gamma {DEHAZE[gamma]}' --out {output} > {log} 2>&1"


rule dehazing_table:
    input:
        scores=expand(f"{DEHAZE_DIR}/{{method}}/{{frame}}.json", method=DEHAZE["methods"], frame=ECHO_FRAMES),
    output:
        csv=f"{RESULTS}/tables/dehazing.csv",
        markdown=report(f"{RESULTS}/tables/dehazing.md", category="Tables", caption="../report/dehazing_table.rst"),
    params:
        methods=DEHAZE["methods"],
        frames=ECHO_FRAMES,
        results=DEHAZE_DIR,
    log:
        "logs/dehaze/table.log",
    benchmark:
        f"{RESULTS}/benchmarks/dehaze/dehazing_table.tsv"
    threads: 1
    resources:
        runtime=5,
        mem_mb=2000,
    script:
        "../scripts/dehazing_table.py"


rule dehaze_all:
    input:
        [f"{RESULTS}/tables/dehazing.md", *expand(f"{DEHAZE_DIR}/figures/{{frame}}.png", frame=ECHO_FRAMES)]
        if ECHO_FRAMES and DEHAZE["methods"] else [],
