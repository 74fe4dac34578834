"""The Snakemake workflow: schema-validated config, a dry run of every profile, a tiny real data stage."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
TINY = {
    "data": {
        "ct": {"cases": 1, "seed": 11, "size": [64, 64, 12]},
        "brain": {"cases": 1, "seed": 12, "size": [48, 48, 31]},
        "petct": {"cases": 1, "seed": 13, "size": [32, 32, 24]},
    },
    "recon": {
        "ct": {"cases": 1, "slices": 4, "size": [32, 32], "settings": [{"name": "sv8", "views": 8}],
               "methods": ["fbp", "tv", "dds"]},
        "mri": {"cases": 1, "slices": 4, "size": [32, 32], "coils": 4, "methods": ["zerofill", "cgsense", "tv", "mbir"],
                "settings": [{"name": "x4", "acceleration": 4, "center_fraction": 0.25}]},
        "solver": {"tv_iterations": 10, "cg_iterations": 10},
        "diffusion": {"priors": {"ct": "tiny_ct", "mri": "tiny_mri"}, "dds": {"steps": 3, "samples": 1}, "mbir": {"steps": 2}},
    },
}


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, "--directory", str(workdir), *args], capture_output=True, text=True, cwd=ROOT)


def test_dry_run_of_the_demo_lists_every_data_rule(tmp_path):
    result = snakemake(tmp_path, "-n", "--configfile", str(ROOT / "configs/default.yaml"))
    assert result.returncode == 0, result.stderr
    for rule in ("ct_phantom_dicom", "ingest_ct", "brain_phantom", "petct_phantom", "qc_ct", "qc_brain", "qc_petct",
                 "data_table", "check_prior", "prior_table", "simulate", "reconstruct", "reconstruct_diffusion",
                 "recon_table", "synthesis_phantoms", "brasyn_split", "fit_histogram_mean", "synthesize",
                 "evaluate_synthesis", "synthesis_figure", "synthesis_table", "simulate_echo", "beamform_echo",
                 "dehaze", "evaluate_dehazing", "dehazing_figure", "dehazing_table", "segment", "check_segmentation",
                 "evaluate_segmentation", "segmentation_figure", "segmentation_table"):
        assert rule in result.stdout
    assert "train_prior" not in result.stdout  # the default uses the shipped priors
    (tmp_path / "retrain.yaml").write_text(yaml.safe_dump({"priors": {"retrain": True}}))
    retrain = snakemake(tmp_path, "-n", "--configfile", str(ROOT / "configs/default.yaml"), str(tmp_path / "retrain.yaml"))
    assert retrain.returncode == 0, retrain.stderr
    assert "train_prior" in retrain.stdout


def test_slurm_profile_dry_run(tmp_path):
    result = snakemake(tmp_path, "-n", "--profile", str(ROOT / "workflows/profiles/slurm"),
                       "--configfile", str(ROOT / "configs/default.yaml"))
    assert result.returncode == 0, result.stderr


def test_invalid_config_is_rejected(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"data": {"ct": {"cases": "two"}}}))
    result = snakemake(tmp_path, "-n", "--configfile", str(config))
    assert result.returncode != 0
    assert "cases" in result.stderr + result.stdout


TINY_PRIOR = {
    "name": "tiny_ct", "kind": "slice2d", "image_size": [32, 32],
    "data": {"phantom": {"generator": "ct_body", "seeds": [1], "holdout_seeds": [2], "size": [32, 32, 8]}},
    "network": {"channels": [8, 16], "attention_levels": [False, False], "num_head_channels": 8, "norm_num_groups": 8},
    "schedule": {"steps": 50}, "training": {"steps": 4, "batch_size": 4},
    "check": {"samples": 4, "steps": 4},
}
TINY_MRI_PRIOR = {  # a prior refuses measurements of another modality, so MRI gets its own
    **TINY_PRIOR, "name": "tiny_mri",
    "data": {"phantom": {"generator": "brain_mri", "seeds": [1], "holdout_seeds": [2], "size": [48, 48, 30]},
             "contrast": "t2w", "min_foreground": 0.1},
    "normalization": {"kind": "percentile", "low": 0.5, "high": 99.5},
}
TINY_SYNTHESIS = {
    "name": "tiny_any", "kind": "wavelet3d", "image_size": [48, 48, 32],
    "data": {"phantom": {"generator": "brain_mri", "seeds": [1], "holdout_seeds": [2], "size": [48, 48, 30]},
             "contrast": "any"},
    "normalization": {"kind": "percentile", "low": 0.5, "high": 99.5},
    "network": {"channels": [8, 16], "attention_levels": [False, False], "num_head_channels": 8, "norm_num_groups": 8},
    "schedule": {"steps": 50}, "training": {"steps": 2, "batch_size": 2},
}

TINY_ECHO = {  # one training frame: the plumbing of the dehazing stage, not its quality
    "name": "tiny_echo_tissue", "kind": "slice2d", "image_size": [64, 16],
    "data": {"phantom": {"generator": "echo", "seeds": [1], "holdout_seeds": [2], "content": "tissue"},
             "min_foreground": 0.0},
    "normalization": {"kind": "window", "low": -1, "high": 1},
    "network": {"channels": [8, 16], "attention_levels": [False, False], "num_head_channels": 8, "norm_num_groups": 8},
    "schedule": {"steps": 50}, "training": {"steps": 2, "batch_size": 4},
}


TINY_PETCT = {  # two training cases on a coarse grid: the plumbing of the segmentation stage, not its quality
    "name": "tiny_petct_diffusion", "kind": "volume3d", "image_size": [8, 8, 8],
    "data": {"phantom": {"generator": "petct", "seeds": [1, 2], "holdout_seeds": [3], "size": [32, 32, 24]}},
    "segmentation": {"spacing_mm": 15.0}, "normalization": {"kind": "window", "low": -1, "high": 1},
    "parametrization": "x0",
    "network": {"channels": [8, 16], "attention_levels": [False, False], "num_head_channels": 8, "norm_num_groups": 8},
    "schedule": {"steps": 50}, "training": {"steps": 2, "batch_size": 2, "label_loss": 1.0},
}


def test_tiny_workflow_runs_every_stage(tmp_path):
    (tmp_path / "priors").mkdir()
    (tmp_path / "priors/tiny_ct.yaml").write_text(yaml.safe_dump(TINY_PRIOR))
    (tmp_path / "priors/tiny_mri.yaml").write_text(yaml.safe_dump(TINY_MRI_PRIOR))
    (tmp_path / "priors/tiny_any.yaml").write_text(yaml.safe_dump(TINY_SYNTHESIS))
    (tmp_path / "priors/tiny_regression.yaml").write_text(yaml.safe_dump(
        {"base": "tiny_any.yaml", "name": "tiny_regression", "training": {"objective": "regression"}}))
    (tmp_path / "priors/tiny_echo_tissue.yaml").write_text(yaml.safe_dump(TINY_ECHO))
    (tmp_path / "priors/tiny_echo_haze.yaml").write_text(yaml.safe_dump(
        {"base": "tiny_echo_tissue.yaml", "name": "tiny_echo_haze",
         "data": {"phantom": {**TINY_ECHO["data"]["phantom"], "content": "haze"}, "min_foreground": 0.0}}))
    (tmp_path / "priors/tiny_echo_supervised.yaml").write_text(yaml.safe_dump(
        {"base": "tiny_echo_tissue.yaml", "name": "tiny_echo_supervised", "parametrization": "x0",
         "data": {**TINY_ECHO["data"], "conditions": ["hazy"]}, "training": {"objective": "regression"}}))
    (tmp_path / "priors/tiny_petct_diffusion.yaml").write_text(yaml.safe_dump(TINY_PETCT))
    (tmp_path / "priors/tiny_petct_segresnet.yaml").write_text(yaml.safe_dump(
        {"base": "tiny_petct_diffusion.yaml", "name": "tiny_petct_segresnet",
         "network": {**TINY_PETCT["network"], "architecture": "segresnet"},
         "training": {"objective": "segmentation", "label_loss": 0.0}}))
    segment = {"methods": ["diffusion", "segresnet", "threshold"], "diffusion": {"samples": 2, "steps": 2},
               "models": {"diffusion": "tiny_petct_diffusion", "segresnet": "tiny_petct_segresnet"}}
    synthesis = {"cases": 2, "seed": 40, "size": [48, 48, 30], "steps": 3,
                 "models": {"cwdm": "tiny_any", "regression": "tiny_regression", "mean": "tiny_any"}}
    dehaze = {"frames": 1, "seed": 60, "methods": ["diffusion", "supervised", "nlm"],
              "diffusion": {"steps": 2, "samples": 1},
              "models": {"tissue": "tiny_echo_tissue", "haze": "tiny_echo_haze", "supervised": "tiny_echo_supervised"}}
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "priors": {"train": ["tiny_ct", "tiny_mri"], "config_dir": str(tmp_path / "priors")},
                                      "synthesis": synthesis, "dehaze": dehaze, "segment": segment}))
    result = snakemake(tmp_path, "--cores", "2", "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    ingested = nib.load(tmp_path / "data/ct/nifti/CT-0011.nii.gz")
    assert "".join(nib.aff2axcodes(ingested.affine)) == "RAS"
    assert ingested.shape == (64, 64, 12)
    assert len(list((tmp_path / "data/ct/dicom/CT-0011").glob("*.dcm"))) == 12
    assert np.isclose(ingested.get_fdata().min(), -1000, atol=30)
    for png in ("ct/CT-0011.png", "brats/BraTS-GLI-00012-000.png", "hecktor/SIM-013.png"):
        assert (tmp_path / "results/qc" / png).stat().st_size > 10_000
    table = (tmp_path / "results/tables/data.csv").read_text().splitlines()
    assert len(table) == 1 + 1 + 5 + 3  # header, 1 CT, BraTS 4 contrasts + seg, HECKTOR CT + PET + label
    assert "BraTS-GLI-00012-000-seg.nii.gz" in (tmp_path / "results/tables/data.md").read_text()
    recon_rows = {(r["modality"], r["setting"], r["method"]): r
                  for r in csv.DictReader(open(tmp_path / "results/tables/recon.csv"))}
    assert set(recon_rows) == {("ct", "sv8", "fbp"), ("ct", "sv8", "tv"), ("ct", "sv8", "dds"), ("mri", "x4", "zerofill"),
                               ("mri", "x4", "cgsense"), ("mri", "x4", "tv"), ("mri", "x4", "mbir")}
    assert recon_rows[("ct", "sv8", "dds")]["nfe_per_slice"] == "3" and recon_rows[("ct", "sv8", "tv")]["nfe_per_slice"] == "0"
    truth = nib.load(tmp_path / "results/recon/ct/CT-0011/sv8/truth.nii.gz")
    assert truth.shape == (32, 32, 4)
    assert float(recon_rows[("ct", "sv8", "tv")]["psnr"]) > float(recon_rows[("ct", "sv8", "fbp")]["psnr"]) + 2
    assert (tmp_path / "results/recon/ct/CT-0011/sv8/comparison.png").stat().st_size > 10_000
    assert (tmp_path / "results/priors/tiny_ct/weights.safetensors").exists()
    assert (tmp_path / "results/priors/tiny_ct.samples.png").stat().st_size > 5_000
    prior_rows = list(csv.DictReader(open(tmp_path / "results/tables/priors.csv")))
    assert [row["prior"] for row in prior_rows] == ["tiny_ct", "tiny_mri"] and prior_rows[0]["steps"] == "4"
    synthesis_rows = list(csv.DictReader(open(tmp_path / "results/tables/synthesis.csv")))
    assert [row["method"] for row in synthesis_rows] == ["cwdm", "regression", "mean"]
    assert all(0 < float(row["ssim_brain"]) <= 1 and float(row["seconds_per_volume"]) > 0 for row in synthesis_rows)
    for method in ("cwdm", "regression", "mean"):
        assert len(list((tmp_path / f"results/synthesis/{method}/submission").glob("BraTS-GLI-*.nii.gz"))) == 2
    for case in ("BraTS-GLI-00040-000", "BraTS-GLI-00041-000"):
        assert (tmp_path / f"results/synthesis/figures/{case}.png").stat().st_size > 10_000
    dehazing_rows = list(csv.DictReader(open(tmp_path / "results/tables/dehazing.csv")))
    assert [row["method"] for row in dehazing_rows] == ["diffusion", "supervised", "nlm"]
    assert all(float(row["psnr_hazy"]) > 0 and 0 <= float(row["gcnr"]) <= 1 for row in dehazing_rows)
    assert (tmp_path / "results/dehaze/figures/echo-60.png").stat().st_size > 10_000
    segmentation_rows = list(csv.DictReader(open(tmp_path / "results/tables/segmentation.csv")))
    assert [row["method"] for row in segmentation_rows] == ["diffusion", "segresnet", "threshold"]
    assert all(0 <= float(row["DSCagg_mean"] or 0) <= 1 and float(row["seconds_per_case"]) > 0
               for row in segmentation_rows)
    for method in ("diffusion", "segresnet", "threshold"):
        assert "a valid HECKTOR submission (1 cases)" in (tmp_path / f"results/segment/{method}/check.txt").read_text()
    assert (tmp_path / "results/segment/figures/SIM-013.png").stat().st_size > 10_000
    run_info = list(csv.DictReader(open(tmp_path / "results/tables/run_info.csv")))
    facts = {(row["kind"], row["name"]): row["value"] for row in run_info}
    assert facts[("seed", "config data.ct.seed")] == "11" and ("version", "torch") in facts
    assert ("seed", "prior tiny_ct data.phantom.seeds") in facts
    for bench in ("data/qc_ct/CT-0011", "recon/simulate/ct/CT-0011/sv8", "priors/check/tiny_ct",
                  "synthesis/synthesis_table"):
        assert (tmp_path / f"results/benchmarks/{bench}.tsv").exists(), bench
    report = snakemake(tmp_path, "--configfile", str(config), "--report", str(tmp_path / "report.html"))
    assert report.returncode == 0, report.stderr[-3000:]
    html = re.sub(r"(\\n|\s)+", " ", (tmp_path / "report.html").read_text())  # captions, whatever their line breaks
    for caption in ("Every image of the data stage", "One row per prior", "Every configured reconstruction method",
                    "the classical baselines and the diffusion-prior solvers alike", "Missing-contrast synthesis",
                    "The software this run used", "Seeds", "Configuration", "samples drawn with the check settings",
                    "One demo case", "CT phantom CT-0011 after DICOM ingest", "Ultrasound dehazing on the demo",
                    "One demo apical view", "PET/CT tumour segmentation on the demo", "One demo head-and-neck"):
        assert caption in html, caption
    shutil.rmtree(tmp_path / ".snakemake", ignore_errors=True)
