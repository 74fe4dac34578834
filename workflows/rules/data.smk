# Data stage: demo phantoms in real layouts (CT as DICOM series, BraTS, HECKTOR), DICOM ingest to
# canonical NIfTI, and one QC montage per case. Case n of a dataset uses seed + n and is named after it.
from medprior.challenges import BRATS_CONTRASTS, brats_case_id, hecktor_case_id
from medprior.tasks.data import ct_case_id

CT = config["data"]["ct"]
BRAIN = config["data"]["brain"]
PETCT = config["data"]["petct"]

CT_SEEDS = {ct_case_id(s): s for s in range(CT["seed"], CT["seed"] + CT["cases"])}
BRAIN_SEEDS = {brats_case_id(s): s for s in range(BRAIN["seed"], BRAIN["seed"] + BRAIN["cases"])}
PETCT_SEEDS = {
    hecktor_case_id(PETCT["center"], s % 1000): s
    for s in range(PETCT["seed"], PETCT["seed"] + PETCT["cases"])
}


def size_arg(dataset):
    return " ".join(str(n) for n in dataset["size"])


wildcard_constraints:
    ct_case=r"CT-\d{4}",
    brain_case=r"BraTS-GLI-\d{5}-\d{3}",
    petct_case=r"[A-Z]{2,6}-\d{3}",


rule ct_phantom_dicom:
    output:
        directory(f"{DATA}/ct/dicom/{{ct_case}}"),
    params:
        seed=lambda wc: CT_SEEDS[wc.ct_case],
        size=size_arg(CT),
        anatomy=CT["anatomy"],
    log:
        f"logs/data/ct_phantom_dicom/{{ct_case}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/data/ct_phantom_dicom/{{ct_case}}.tsv"
    threads: 1
    resources:
        runtime=10,
        mem_mb=4000,
    shell:
        "medprior phantom ct --out {DATA}/ct/dicom --cases 1 --seed {params.seed} --size {params.size}"
        " --anatomy {params.anatomy} --format dicom > {log} 2>&1"


rule ingest_ct:
    input:
        f"{DATA}/ct/dicom/{{ct_case}}",
    output:
        f"{DATA}/ct/nifti/{{ct_case}}.nii.gz",
    log:
        f"logs/data/ingest_ct/{{ct_case}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/data/ingest_ct/{{ct_case}}.tsv"
    threads: 1
    resources:
        runtime=10,
        mem_mb=4000,
    shell:
        "medprior convert {input} {output} --canonical > {log} 2>&1"


rule brain_phantom:
    output:
        expand(f"{DATA}/brats/{{{{brain_case}}}}/{{{{brain_case}}}}-{{name}}.nii.gz", name=[*BRATS_CONTRASTS, "seg"]),
    params:
        seed=lambda wc: BRAIN_SEEDS[wc.brain_case],
        size=size_arg(BRAIN),
    log:
        f"logs/data/brain_phantom/{{brain_case}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/data/brain_phantom/{{brain_case}}.tsv"
    threads: 1
    resources:
        runtime=10,
        mem_mb=6000,
    shell:
        "medprior phantom brain --out {DATA}/brats --cases 1 --seed {params.seed} --size {params.size} > {log} 2>&1"


rule petct_phantom:
    output:
        ct=f"{DATA}/hecktor/imagesTr/{{petct_case}}__CT.nii.gz",
        pet=f"{DATA}/hecktor/imagesTr/{{petct_case}}__PT.nii.gz",
        label=f"{DATA}/hecktor/labelsTr/{{petct_case}}.nii.gz",
    params:
        seed=lambda wc: PETCT_SEEDS[wc.petct_case],
        size=size_arg(PETCT),
        center=PETCT["center"],
    log:
        f"logs/data/petct_phantom/{{petct_case}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/data/petct_phantom/{{petct_case}}.tsv"
    threads: 1
    resources:
        runtime=10,
        mem_mb=4000,
    shell:
        "medprior phantom petct --out {DATA}/hecktor --cases 1 --seed {params.seed} --size {params.size}"
        " --center {params.center} > {log} 2>&1"


rule qc_ct:
    input:
        f"{DATA}/ct/nifti/{{ct_case}}.nii.gz",
    output:
        report(f"{RESULTS}/qc/ct/{{ct_case}}.png", category="QC", subcategory="CT",
               caption="../report/qc_ct.rst"),
    log:
        f"logs/data/qc_ct/{{ct_case}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/data/qc_ct/{{ct_case}}.tsv"
    threads: 1
    resources:
        runtime=5,
        mem_mb=2000,
    shell:
        "medprior qc {input} --out {output} --names CT --title {wildcards.ct_case} > {log} 2>&1"


rule qc_brain:
    input:
        images=expand(f"{DATA}/brats/{{{{brain_case}}}}/{{{{brain_case}}}}-{{name}}.nii.gz", name=BRATS_CONTRASTS),
        seg=f"{DATA}/brats/{{brain_case}}/{{brain_case}}-seg.nii.gz",
    output:
        report(f"{RESULTS}/qc/brats/{{brain_case}}.png", category="QC", subcategory="BraTS",
               caption="../report/qc_brain.rst"),
    params:
        names=" ".join(BRATS_CONTRASTS),
    log:
        f"logs/data/qc_brain/{{brain_case}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/data/qc_brain/{{brain_case}}.tsv"
    threads: 1
    resources:
        runtime=5,
        mem_mb=2000,
    shell:
        "medprior qc {input.images} --label {input.seg} --names {params.names} --out {output}"
        " --title {wildcards.brain_case} > {log} 2>&1"


rule qc_petct:
    input:
        ct=f"{DATA}/hecktor/imagesTr/{{petct_case}}__CT.nii.gz",
        pet=f"{DATA}/hecktor/imagesTr/{{petct_case}}__PT.nii.gz",
        label=f"{DATA}/hecktor/labelsTr/{{petct_case}}.nii.gz",
    output:
        report(f"{RESULTS}/qc/hecktor/{{petct_case}}.png", category="QC", subcategory="HECKTOR",
               caption="../report/qc_petct.rst"),
    log:
        f"logs/data/qc_petct/{{petct_case}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/data/qc_petct/{{petct_case}}.tsv"
    threads: 1
    resources:
        runtime=5,
        mem_mb=2000,
    shell:
        "medprior qc {input.ct} {input.pet} --label {input.label} --names CT PET --out {output}"
        " --title {wildcards.petct_case} > {log} 2>&1"


def data_table_images():
    """(dataset, case, image, is_label, benchmark TSV of the job that made it) for every image."""
    bench = f"{RESULTS}/benchmarks/data"
    images = [("ct", c, f"{DATA}/ct/nifti/{c}.nii.gz", False, f"{bench}/ingest_ct/{c}.tsv") for c in CT_SEEDS]
    for case in BRAIN_SEEDS:
        for name in [*BRATS_CONTRASTS, "seg"]:
            path = f"{DATA}/brats/{case}/{case}-{name}.nii.gz"
            images.append(("brats", case, path, name == "seg", f"{bench}/brain_phantom/{case}.tsv"))
    for case in PETCT_SEEDS:
        for path, is_label in ((f"{DATA}/hecktor/imagesTr/{case}__CT.nii.gz", False),
                               (f"{DATA}/hecktor/imagesTr/{case}__PT.nii.gz", False),
                               (f"{DATA}/hecktor/labelsTr/{case}.nii.gz", True)):
            images.append(("hecktor", case, path, is_label, f"{bench}/petct_phantom/{case}.tsv"))
    return images


rule data_table:
    input:
        [path for row in data_table_images() for path in (row[2], row[4])],
    output:
        csv=f"{RESULTS}/tables/data.csv",
        markdown=report(f"{RESULTS}/tables/data.md", category="Tables", caption="../report/data_table.rst"),
    params:
        images=data_table_images(),
    log:
        "logs/data/data_table.log",
    benchmark:
        f"{RESULTS}/benchmarks/data/data_table.tsv"
    threads: 1
    resources:
        runtime=10,
        mem_mb=4000,
    script:
        "../scripts/data_table.py"


rule data_all:
    input:
        expand(f"{DATA}/ct/nifti/{{case}}.nii.gz", case=CT_SEEDS),
        expand(f"{RESULTS}/qc/ct/{{case}}.png", case=CT_SEEDS),
        expand(f"{RESULTS}/qc/brats/{{case}}.png", case=BRAIN_SEEDS),
        expand(f"{RESULTS}/qc/hecktor/{{case}}.png", case=PETCT_SEEDS),
        f"{RESULTS}/tables/data.md",
