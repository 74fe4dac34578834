"""The data stage: demo datasets in real on-disk layouts, DICOM ingest, QC montages.

Case ``n`` of a dataset made with seed ``S`` uses seed ``S + n`` and is named after that seed, so
one case can be remade alone (one Snakemake job per case) and always comes out identical.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medprior.challenges import brats_case_id, hecktor_case_id, write_brats_case, write_hecktor_case
from medprior.challenges.hecktor import hecktor_paths
from medprior.checks import require_int, require_memory, require_schema, require_seed
from medprior.errors import InputError, ParameterError
from medprior.figures import orthogonal_montage
from medprior.progress import progress_bar
from medprior.io import load, save, sidecar_path, write_sidecar
from medprior.io.dicom import save_dicom_series
from medprior.phantoms import brain_mri, ct_body, ct_head, petct_head_neck
from medprior.phantoms.ct import CT_BODY_SHAPE, CT_BODY_SPACING, CT_HEAD_SHAPE, CT_HEAD_SPACING
from medprior.phantoms.petct import PETCT_CT_SHAPE, PETCT_CT_SPACING, PETCT_PET_SHAPE, PETCT_PET_SPACING

CT_FORMATS = ("dicom", "nifti")


def ct_case_id(seed: int) -> str:
    """Name of the CT phantom made with ``seed``: ``CT-0100``."""
    return f"CT-{seed:04d}"


def same_field_of_view(size: Sequence[int], shape: Sequence[int], spacing: Sequence[float]) -> tuple[float, ...]:
    """Voxel size (mm) that makes a ``size`` grid cover the field of view of ``shape`` x ``spacing``."""
    return tuple(n0 * s0 / n for n, n0, s0 in zip(size, shape, spacing))


# Peak memory of one phantom per voxel, measured (ru_maxrss): CT body 82 B at 128^2 x 64 and 256^2 x 128,
# PET/CT 38 B, brain at most 190 B at 192^2 x 120 (of which 800 MB are the MNI templates, counted apart).
_PHANTOM_BYTES_PER_VOXEL = 128
_BRAIN_TEMPLATES_BYTES = 0.8e9


# What one case writes per voxel of its grid, uncompressed: CT int16 DICOM + float32 NIfTI; four float32
# contrasts + a uint8 label; PET/CT float32 CT + uint8 label + PET on an 8 times coarser grid.
_DISK_BYTES_PER_VOXEL = {"ct": 6, "brain": 17, "petct": 6}


def check_dataset(kind: str, out: str | os.PathLike, *, cases: int, seed: int,
                  size: Sequence[int]) -> tuple[int, int, list[int]]:
    """``cases`` (>= 1), ``seed`` and ``size`` (the schema's ``data.<kind>.size`` range) of a phantom
    dataset, checked before any work, with the memory one case needs against the free memory and the
    disk all cases need against the free disk under ``out`` (ParameterError naming the parameter)."""
    cases = require_int("cases", cases, minimum=1)
    seed = require_seed("seed", seed)
    require_seed("seed", seed + cases - 1)  # the last case's seed
    size = require_schema("size", size, f"data.{kind}.size")
    voxels = float(np.prod(size, dtype=np.float64))
    extra = _BRAIN_TEMPLATES_BYTES if kind == "brain" else 0.0
    require_memory("size", _PHANTOM_BYTES_PER_VOXEL * voxels + extra, f"a {' x '.join(map(str, size))} {kind} phantom")
    existing = next(p for p in (Path(os.path.abspath(out)), *Path(os.path.abspath(out)).parents) if p.exists())
    require_memory("cases", cases * _DISK_BYTES_PER_VOXEL[kind] * voxels, f"writing {cases} {kind} phantoms",
                   free=shutil.disk_usage(existing).free, where=f"free disk under {existing}")
    return cases, seed, size


def dataset_outputs(kind: str, out: str | os.PathLike, *, cases: int, seed: int, size: Sequence[int],
                    formats: Sequence[str] = CT_FORMATS, center: str = "SIM") -> list[tuple[Path, str]]:
    """What ``make_<kind>_dataset`` writes under ``out``, sidecars included: ``(path, "file" | "folder")``
    each, so that a command can check them all before any work (``phantom``)."""
    cases, seed, size = check_dataset(kind, out, cases=cases, seed=seed, size=size)
    out = Path(out)
    written: list[tuple[Path, str]] = []
    for case_seed in range(seed, seed + cases):
        if kind == "ct":
            case = ct_case_id(case_seed)
            written += [(out / case, "folder")] if "dicom" in formats else []
            written += [(out / f"{case}.nii.gz", "file")] if "nifti" in formats else []
        elif kind == "brain":
            case = brats_case_id(case_seed)
            written.append((out / case, "folder"))
        else:
            case = hecktor_case_id(require_schema("center", center, "data.petct.center"), case_seed % 1000)
            written += [(path, "file") for path in hecktor_paths(out, case).values()]
        written.append((sidecar_path(out / case), "file"))
    return written


def make_ct_dataset(out: str | os.PathLike, *, cases: int, seed: int, size: Sequence[int],
                    anatomy: str = "body", formats: Sequence[str] = CT_FORMATS) -> list[Path]:
    """Write CT phantoms in HU as DICOM series folders ``out/CT-SSSS/`` and/or ``out/CT-SSSS.nii.gz``.

    DICOM files get random names in random order, as many exports do, so ingest must sort by
    geometry. Returns the written paths.
    """
    cases, seed, size = check_dataset("ct", out, cases=cases, seed=seed, size=size)
    anatomy = require_schema("anatomy", anatomy, "data.ct.anatomy")
    phantom, default_shape, default_spacing = {
        "body": (ct_body, CT_BODY_SHAPE, CT_BODY_SPACING), "head": (ct_head, CT_HEAD_SHAPE, CT_HEAD_SPACING)}[anatomy]
    spacing = same_field_of_view(size, default_shape, default_spacing)
    unknown = set(formats) - set(CT_FORMATS)
    if unknown:
        raise InputError(None, f"unknown CT output formats {sorted(unknown)}; choose from {CT_FORMATS}")
    written = []
    for case_seed in progress_bar(range(seed, seed + cases), desc=f"CT {anatomy} phantoms", unit="case"):
        volume = phantom(case_seed, shape=tuple(size), spacing=spacing)
        case = ct_case_id(case_seed)
        provenance = {"config": {"anatomy": anatomy, "size": list(size)}, "seeds": {"phantom": case_seed}}
        if "dicom" in formats:
            written.append(save_dicom_series(volume, Path(out) / case, patient_id=case, shuffle_names_seed=case_seed,
                                             series_description=f"medprior CT {anatomy} phantom"))
        if "nifti" in formats:
            written.append(save(volume, Path(out) / f"{case}.nii.gz"))
        write_sidecar(Path(out) / case, **provenance)  # one sidecar per case: out/CT-SSSS.provenance.json
    return written


def make_brain_dataset(out: str | os.PathLike, *, cases: int, seed: int, size: Sequence[int]) -> list[Path]:
    """Write BraTS-layout brain MRI phantoms (t1n, t1c, t2w, t2f, seg) under ``out``; returns case folders."""
    cases, seed, size = check_dataset("brain", out, cases=cases, seed=seed, size=size)
    written = []
    for case_seed in progress_bar(range(seed, seed + cases), desc="brain MRI phantoms", unit="case"):
        case = brain_mri(case_seed, shape=tuple(size))
        written.append(write_brats_case({**case.contrasts, "seg": case.seg}, out, brats_case_id(case_seed),
                                        provenance={"config": {"size": list(size)}, "seeds": {"phantom": case_seed}}))
    return written


def petct_grids(size: Sequence[int]) -> dict[str, tuple]:
    """The phantom's grids for a CT of ``size``: the PET half as fine, both at the default fields of view."""
    pet_size = tuple(max(n // 2, 4) for n in size)
    return {"ct_shape": tuple(size), "ct_spacing": same_field_of_view(size, PETCT_CT_SHAPE, PETCT_CT_SPACING),
            "pet_shape": pet_size, "pet_spacing": same_field_of_view(pet_size, PETCT_PET_SHAPE, PETCT_PET_SPACING)}


def make_petct_dataset(out: str | os.PathLike, *, cases: int, seed: int, size: Sequence[int],
                       center: str = "SIM") -> list[Path]:
    """Write HECKTOR-layout PET/CT phantoms under ``out``.

    The CT grid is ``size``, the PET grid half as fine; both keep the default fields of view.
    """
    cases, seed, size = check_dataset("petct", out, cases=cases, seed=seed, size=size)
    center = require_schema("center", center, "data.petct.center")
    written = []
    for case_seed in progress_bar(range(seed, seed + cases), desc="PET/CT phantoms", unit="case"):
        case = petct_head_neck(case_seed, **petct_grids(size))
        paths = write_hecktor_case(case.ct, case.pet, case.label, out, hecktor_case_id(center, case_seed % 1000),
                                   provenance={"config": {"size": list(size)}, "seeds": {"phantom": case_seed}})
        written.extend(paths.values())
    return written


def convert(source: str | os.PathLike | Sequence[str | os.PathLike], out: str | os.PathLike, *,
            series_uid: str | None = None, canonical: bool = False) -> Path:
    """Read a DICOM series or NIfTI and write it as NIfTI (optionally reoriented to RAS), with a sidecar."""
    volume = load(source, series_uid=series_uid)
    if canonical:
        volume = volume.to_canonical()
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    written = save(volume, out)
    write_sidecar(written, config={"canonical": canonical, "series_uid": volume.metadata.get("series_uid")},
                  inputs=sources)
    return written


def qc_montage(images: Sequence[str | os.PathLike], out: str | os.PathLike, *,
               label: str | os.PathLike | None = None, names: Sequence[str] | None = None,
               title: str = "") -> Path:
    """Orthogonal-slice PNG of each image (first image's grid), label outlines on top."""
    names = list(names) if names else [Path(p).name for p in images]
    if len(names) != len(images):
        raise ParameterError("names", f"{len(names)} names given for {len(images)} images")
    rows = [(name, load(path)) for name, path in zip(names, images)]
    return orthogonal_montage(rows, out, label=load(label) if label else None, title=title)



def image_summary(path: str | os.PathLike, *, label: bool = False) -> dict[str, object]:
    """One table row describing an image: grid, spacing (mm), modality, value range, and for a
    label map (``label=True``) the volume of each label in mL."""
    volume = load(path)
    row: dict[str, object] = {
        "image": Path(path).name,
        "grid": "x".join(str(n) for n in volume.shape),
        "spacing_mm": "x".join(f"{s:.3g}" for s in volume.spacing),
        "orientation": volume.orientation,
        "modality": volume.modality,
        "min": float(volume.data.min()),
        "max": float(volume.data.max()),
    }
    if label:
        voxel_ml = float(np.prod(volume.spacing)) / 1000.0
        labels = np.unique(volume.data[volume.data > 0]).astype(int)
        row["label_ml"] = " ".join(f"{v}:{np.count_nonzero(volume.data == v) * voxel_ml:.1f}" for v in labels)
    return row
