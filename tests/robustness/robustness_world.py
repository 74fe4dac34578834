"""The robustness suite's shared good inputs (the *world*), built once per session.

The session builds one folder of small, good inputs (the *world*): CT and MR volumes, a DICOM
series, measurement files, BraTS cases, a truth folder and a submission, copies of the shipped
priors (and broken copies of them), tiny prior configs. Each row copies the items it uses into its
own folder, breaks what it needs to, runs ``medprior.cli.main`` in-process and compares the whole
folder (hidden entries included) before and after.

Inputs are built with nibabel, h5py and the lowest-level medprior functions (phantoms, the
simulators, ``write_measurement``), never with the commands under test, so a broken command cannot
break the inputs of the other rows.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np

from robustness_harness import sha256

REPO = Path(__file__).resolve().parents[2]
SHIPPED_PRIORS = REPO / "priors"
CASE = "BraTS-GLI-00400-000"
CONTRASTS = ("t1n", "t1c", "t2w", "t2f")
DROPPED = "t2w"  # the contrast missing from world/cases (kept in world/truth)

TINY_NETWORK = {"channels": [8, 16], "attention_levels": [False, False], "num_head_channels": 8,
                "norm_num_groups": 8}


def save_nifti(data: np.ndarray, affine: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), np.asarray(affine, float)), str(path))


def _yaml(path: Path, content: dict) -> None:
    import yaml
    path.write_text(yaml.safe_dump(content, sort_keys=False))


def _ct(seed: int, shape: tuple[int, int, int]):
    from medprior.phantoms import ct_body
    from medprior.phantoms.ct import CT_BODY_SHAPE, CT_BODY_SPACING
    from medprior.tasks.data import same_field_of_view
    return ct_body(seed, shape=shape, spacing=same_field_of_view(shape, CT_BODY_SHAPE, CT_BODY_SPACING))


def _measurements(world: Path, ct16, ct64, ct128, mr) -> None:
    from medprior.io.measurement import write_measurement
    from medprior.tasks.recon import reconstruct, simulate_ct, simulate_mri
    ct = simulate_ct(ct16, views=8, slices=2)
    write_measurement(ct, world / "ct.h5")
    write_measurement(simulate_mri(mr, acceleration=2, coils=4, slices=2, size=(32, 32)), world / "mr.h5")
    write_measurement(simulate_ct(ct64, views=8, slices=1), world / "ct64.h5")
    write_measurement(simulate_mri(mr, acceleration=2, coils=4, slices=1, size=(64, 64)), world / "mr64.h5")
    write_measurement(simulate_ct(ct128, views=8, slices=1), world / "ct128.h5")
    estimate = reconstruct(ct, "fbp")
    save_nifti(estimate.data.astype(np.float32), estimate.affine, world / "rec.nii.gz")


def _brain(world: Path):
    """One complete BraTS case (full/), the same case without t2w (cases/), its truth and a
    submission (the true t2w, which is on the right grid)."""
    from medprior.phantoms import brain_mri
    case = brain_mri(400, shape=(48, 48, 30))
    images = {**case.contrasts, "seg": case.seg}
    for name, volume in images.items():
        data = volume.data.astype(np.uint8 if name == "seg" else np.float32)
        save_nifti(data, volume.affine, world / "full" / CASE / f"{CASE}-{name}.nii.gz")
        if name in CONTRASTS and name != DROPPED:
            save_nifti(data, volume.affine, world / "cases" / CASE / f"{CASE}-{name}.nii.gz")
        else:
            save_nifti(data, volume.affine, world / "truth" / CASE / f"{CASE}-{name}.nii.gz")
    save_nifti(case.contrasts[DROPPED].data.astype(np.float32), case.contrasts[DROPPED].affine,
               world / "sub" / f"{CASE}-{DROPPED}.nii.gz")
    t2w = case.contrasts["t2w"]
    save_nifti(t2w.data.astype(np.float32), t2w.affine, world / "mr.nii.gz")
    save_nifti(case.seg.data.astype(np.uint8), case.seg.affine, world / "seg.nii.gz")
    (world / "hist").mkdir()
    (world / "hist" / "histogram_mean.json").write_text(json.dumps({
        "format": "medprior-histogram-mean", "levels": 1001,
        "quantiles": {c: np.linspace(0, 1, 1001).tolist() for c in CONTRASTS},
        "training": {"config_file": "none", "volumes": [], "sha256": "0" * 64}}))
    return case


def break_weights(prior: Path, value: float, *, update_sha: bool = True) -> None:
    """Put ``value`` (NaN, Inf) into one weight of a prior folder; with ``update_sha`` also record
    the new file's sha256 in prior.json, so that only a finiteness check can catch it."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    weights = prior / "weights.safetensors"
    with safe_open(str(weights), "pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(weights))
    name = next(n for n in sorted(tensors) if tensors[n].is_floating_point() and n.endswith("weight")
                and tensors[n].numel() > 8)
    tensor = tensors[name].clone()
    tensor.view(-1)[0] = value
    tensors[name] = tensor
    save_file(tensors, str(weights), metadata=metadata)
    if update_sha:
        content = json.loads((prior / "prior.json").read_text())
        content["weights"]["sha256"] = sha256(weights)
        (prior / "prior.json").write_text(json.dumps(content, indent=2))


def _configs(world: Path) -> None:
    """Tiny prior configs; ``{t}`` is replaced by the row's folder when a row copies them."""
    tiny = {"schedule": {"kind": "cosine", "steps": 50}, "network": TINY_NETWORK,
            "training": {"steps": 2, "batch_size": 2, "checkpoint_every": 2, "log_every": 1},
            "check": {"samples": 2, "steps": 1, "sampler": "ddim"}}
    _yaml(world / "train.yaml", {
        "name": "tiny_ct", "kind": "slice2d", "image_size": [16, 16], "axis": 2,
        "data": {"files": {"train": ["{t}/ct.nii.gz"], "holdout": ["{t}/ct2.nii.gz"]}},
        "normalization": {"kind": "window", "low": -1000, "high": 1000}, **tiny})
    _yaml(world / "hist.yaml", {
        "name": "tiny_any", "kind": "wavelet3d", "image_size": [16, 16, 8],
        "data": {"files": {"train": [f"{{t}}/full/{CASE}"], "holdout": [f"{{t}}/full/{CASE}"]}, "contrast": "any"},
        "normalization": {"kind": "percentile", "low": 0.5, "high": 99.5}, **tiny,
        "schedule": {"kind": "linear", "steps": 50}})
    shipped = (REPO / "configs" / "priors" / "ct_slices.yaml").read_text()
    import yaml
    check = yaml.safe_load(shipped)
    check.update(name="check_ct", data={"files": {"train": ["{t}/ct64.nii.gz"], "holdout": ["{t}/ct64.nii.gz"]}},
                 check={"samples": 2, "steps": 1, "sampler": "ddim"})
    _yaml(world / "check.yaml", check)


def build_world(world: Path) -> Path:
    """Write the shared good inputs into ``world`` (see the module docstring)."""
    ct16, ct2 = _ct(7, (16, 16, 8)), _ct(8, (16, 16, 8))
    ct64, ct128 = _ct(7, (64, 64, 4)), _ct(7, (128, 128, 4))
    for name, volume in {"ct": ct16, "ct2": ct2, "ct64": ct64}.items():
        save_nifti(volume.data.astype(np.float32), volume.affine, world / f"{name}.nii.gz")
    from medprior.io.dicom import save_dicom_series
    save_dicom_series(ct16, world / "dcm", shuffle_names_seed=7)
    case = _brain(world)
    _measurements(world, ct16, ct64, ct128, case.contrasts["t2w"])
    priors = world / "priors"
    for name, shipped in {"ct_prior": "ct_slices", "brain_prior": "brain_slices", "cwdm": "brain_cwdm",
                          "reg": "brain_cwdm_regression"}.items():
        shutil.copytree(SHIPPED_PRIORS / shipped, priors / name)
    for name, source, value, update in (("ct_prior_nan", "ct_prior", float("nan"), True),
                                        ("ct_prior_inf", "ct_prior", float("inf"), True),
                                        ("ct_prior_badsha", "ct_prior", float("nan"), False),
                                        ("reg_nan", "reg", float("nan"), True),
                                        ("cwdm_nan", "cwdm", float("nan"), True)):
        shutil.copytree(priors / source, priors / name)
        break_weights(priors / name, value, update_sha=update)
    _configs(world)
    for entry in list(world.rglob("*")):  # writers' sidecars and markers are not part of the inputs
        if entry.is_file() and (entry.name.endswith(".provenance.json") or entry.name == ".medprior-output"):
            entry.unlink()
    return world
