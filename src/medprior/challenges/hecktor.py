"""HECKTOR 2022 folder layouts (head-and-neck PET/CT) and the segmentation submission.

A case ``<ID>`` = ``<CENTER>-<NNN>`` (e.g. ``CHUM-001``) has a CT in HU, a PET in SUV on its own
(coarser) grid and, in training data, labels on the CT grid (0 background, 1 GTVp, 2 GTVn).
:func:`find_hecktor_cases` reads both layouts the challenge's data come in::

    ROOT/<ID>__CT.nii.gz  ROOT/<ID>__PT.nii.gz  ROOT/<ID>.nii.gz        flat (label optional)

    ROOT/imagesTr/<ID>__CT.nii.gz  ROOT/imagesTr/<ID>__PT.nii.gz        split (labels optional;
    ROOT/labelsTr/<ID>.nii.gz                                           imagesTs/labelsTs alike)

:func:`write_hecktor_case` writes the split layout. A submission is one flat folder holding, per
case, ``<ID>.nii.gz``: integer labels in {0, 1, 2} (uint8 recommended) on exactly the case's CT
grid, the CT's shape and affine. :func:`write_hecktor_prediction` writes one such file and
:func:`check_hecktor_submission` checks a folder of them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from medprior.errors import InputError
from medprior.io import Volume, atomic_path, write_sidecar
from medprior.io.atomic import SIDECAR_SUFFIX
from medprior.io.nifti import save_nifti

#: Label values of a HECKTOR segmentation: 0 background, 1 primary tumour (GTVp), 2 lymph nodes (GTVn).
HECKTOR_LABELS: tuple[int, ...] = (0, 1, 2)
#: The most a submission's affine may differ from its CT's, entry by entry, in mm.
AFFINE_TOLERANCE_MM = 1e-4
_CASE_PATTERN = re.compile(r"^[A-Z]{2,6}-\d{3}$")
_IMAGE_FILE = re.compile(r"^(?P<id>.+)__(?P<kind>CT|PT)\.nii\.gz$")
_SPLITS = {"train": "Tr", "test": "Ts"}
_LAYOUTS = ("<ID>__CT.nii.gz and <ID>__PT.nii.gz files (labels <ID>.nii.gz optional) in it, or in its "
            "imagesTr/ (or imagesTs/) folder with labels in labelsTr/ (labelsTs/)")
# The header fields that place a NIfTI image in space; a prediction copies them from its CT.
_GEOMETRY_FIELDS = ("qform_code", "sform_code", "quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y",
                    "qoffset_z", "srow_x", "srow_y", "srow_z", "xyzt_units")


def hecktor_case_id(center: str, number: int) -> str:
    """``<CENTER>-<NNN>``, e.g. ``CHUM-001``."""
    case_id = f"{center}-{number:03d}"
    if not _CASE_PATTERN.match(case_id):
        raise ValueError(f"HECKTOR ids are 2-6 capital letters and a number below 1000, got {case_id!r}")
    return case_id


def hecktor_paths(root: str | os.PathLike, case_id: str) -> dict[str, Path]:
    """The three files of a case in the split layout: ``{"ct", "pet", "label"}`` -> path
    (``root/imagesTr/``, ``root/labelsTr/``), as :func:`write_hecktor_case` writes them."""
    root = Path(root)
    return {
        "ct": root / "imagesTr" / f"{case_id}__CT.nii.gz",
        "pet": root / "imagesTr" / f"{case_id}__PT.nii.gz",
        "label": root / "labelsTr" / f"{case_id}.nii.gz",
    }


def write_hecktor_case(ct: Volume, pet: Volume, label: Volume, root: str | os.PathLike, case_id: str,
                       *, provenance: Mapping[str, Any] | None = None) -> dict[str, Path]:
    """Write a case's CT, PET and label files; all three appear together or none does.

    Args:
        ct: CT in HU. pet: PET in SUV on its own grid. label: 0/1/2 on the CT grid.
        root: dataset folder; the sidecar goes to ``root/<case_id>.provenance.json``.
    """
    if not _CASE_PATTERN.match(case_id):
        raise ValueError(f"{case_id!r} is not a HECKTOR case id")
    if label.shape != ct.shape:
        raise ValueError(f"the label grid {label.shape} must be the CT grid {ct.shape}")
    paths = hecktor_paths(root, case_id)
    with ExitStack() as stack:
        for key, volume in (("ct", ct), ("pet", pet), ("label", label)):
            save_nifti(volume, stack.enter_context(atomic_path(paths[key])))
    write_sidecar(Path(root) / case_id, **dict(provenance or {}))
    return paths


def find_hecktor_cases(root: str | os.PathLike, *, split: str | None = None) -> dict[str, dict[str, Path]]:
    """Map each case id of a HECKTOR folder (either layout, see the module) to its files.

    Args:
        root: the dataset folder: the flat layout (all files in ``root``) or the split layout
            (``root/imagesTr``, ``root/labelsTr``, or ``imagesTs`` / ``labelsTs``).
        split: ``"train"`` (``imagesTr``) or ``"test"`` (``imagesTs``), needed only when ``root``
            holds both; ``None`` takes the one there is.

    Returns:
        ``{case_id: {"ct": path, "pet": path, "label": path}}`` sorted by id; ``"label"`` only
        where the case has one. An empty ``imagesTr`` folder gives ``{}``.

    Raises:
        InputError: ``root`` is not a folder or holds neither layout; a CT without its PET or the
            reverse; a label or other NIfTI file that belongs to no case (each naming the file).
    """
    root = Path(root)
    if split is not None and split not in _SPLITS:
        raise ValueError(f"split must be one of {sorted(_SPLITS)} or None, got {split!r}")
    if not root.is_dir():
        raise InputError(root, "is not a folder" if root.exists() else "does not exist")
    present = [s for s in _SPLITS.values() if (root / f"images{s}").is_dir()]
    flat_images = [p for p in _visible_files(root) if _IMAGE_FILE.match(p.name)]
    if split is not None:
        suffix = _SPLITS[split]
        if suffix not in present:
            raise InputError(root, f"has no images{suffix} folder (split={split!r})")
        present = [suffix]
    if not present:
        if not flat_images:
            raise InputError(root, f"holds no HECKTOR cases: expected {_LAYOUTS}")
        return _pair_files(root, root)
    if len(present) > 1:
        raise InputError(root, "holds both imagesTr and imagesTs; choose one with split='train' or 'test' "
                               "(or give one of the two folders itself)")
    if flat_images:
        raise InputError(flat_images[0], f"lies beside images{present[0]}/; a HECKTOR folder has one layout, "
                                         "flat or split, not both")
    return _pair_files(root / f"images{present[0]}", root / f"labels{present[0]}")


def _visible_files(folder: Path) -> list[Path]:
    """The files of ``folder`` whose names do not start with a dot, sorted."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file())


def _pair_files(images: Path, labels: Path) -> dict[str, dict[str, Path]]:
    """Cases from the ``<ID>__CT`` / ``<ID>__PT`` files of ``images`` and the ``<ID>.nii.gz`` labels
    of ``labels`` (the same folder in the flat layout; may be absent)."""
    found: dict[str, dict[str, Path]] = {}
    strays = []  # NIfTI files named neither <ID>__CT nor <ID>__PT
    for path in _visible_files(images):
        match = _IMAGE_FILE.match(path.name)
        if match:
            found.setdefault(match["id"], {})["ct" if match["kind"] == "CT" else "pet"] = path
        elif _is_nifti(path):
            strays.append(path)
    for case_id, files in sorted(found.items()):
        for have, lack, suffix in (("ct", "pet", "PT"), ("pet", "ct", "CT")):
            if lack not in files:
                raise InputError(files[have], f"has no {case_id}__{suffix}.nii.gz beside it; a HECKTOR case "
                                              "needs both its CT and its PET")
    if labels == images:  # flat: the other NIfTI files are the labels
        candidates, strays = strays, []
    else:
        candidates = [p for p in _visible_files(labels) if _is_nifti(p)] if labels.is_dir() else []
    if strays:
        raise InputError(strays[0], "is not a HECKTOR image name (<ID>__CT.nii.gz or <ID>__PT.nii.gz)")
    for path in candidates:
        case_id = path.name.removesuffix(".nii.gz")
        if not path.name.endswith(".nii.gz") or case_id not in found:
            raise InputError(path, "is no case's label: a label is <ID>.nii.gz of a case with <ID>__CT.nii.gz "
                                   f"and <ID>__PT.nii.gz in {images}")
        found[case_id]["label"] = path
    return {case_id: found[case_id] for case_id in sorted(found)}


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith((".nii", ".nii.gz"))


def write_hecktor_prediction(label: Any, ct: str | os.PathLike | Volume, path: str | os.PathLike) -> Path:
    """Write one submission file: ``label`` as uint8 on exactly the CT's grid, atomically.

    The file's header copies the fields of the CT's header that place it in space (sform and qform
    with their codes, voxel sizes, qfac, units), so its shape, spacing, origin and direction are the
    CT's to the bit; from a :class:`~medprior.io.Volume`, its affine goes to both sform and qform
    (code 1) as :func:`~medprior.io.save_nifti` writes it. No sidecar is written: a submission
    folder holds the predictions alone, and whoever writes the folder records its provenance
    beside it.

    Args:
        label: ``(I, J, K)`` integer-valued array (any integer, bool or float dtype; a Volume's
            data) with values in {0, 1, 2}: 0 background, 1 GTVp, 2 GTVn.
        ct: the case's CT file (``<ID>__CT.nii.gz``), or the CT as a Volume.
        path: the file to write, ``<submission>/<ID>.nii.gz``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: labels not integer-valued, not finite or outside {0, 1, 2}, a shape other than
            the CT's, or a ``path`` not ending in ``.nii.gz``; nothing is written.
        InputError: the CT file cannot be read as a 3D NIfTI.
    """
    path = Path(path)
    if not path.name.endswith(".nii.gz") or path.name == ".nii.gz":
        raise ValueError(f"a HECKTOR prediction is named <ID>.nii.gz, got {path.name!r}")
    values = np.asarray(label.data if isinstance(label, Volume) else label)
    if values.dtype.kind not in "biuf":
        raise ValueError(f"labels must be real numbers, got dtype {values.dtype}")
    if isinstance(ct, Volume):
        reference, shape = ct.to_nifti().header, ct.shape
    else:
        image = _read_header(ct)
        reference, shape = image.header, _spatial_shape(ct, image.shape)
    if values.shape != shape:
        raise ValueError(f"the labels' shape {values.shape} is not the CT grid {shape}")
    if values.dtype.kind == "f":
        if not np.isfinite(values).all():
            raise ValueError("the labels hold NaN or Inf")
        if np.any(values != np.round(values)):
            raise ValueError("the labels hold non-integer values; they are the integers 0, 1, 2")
    unexpected = _unexpected_labels(values)
    if unexpected:
        raise ValueError(f"labels {unexpected} not in {', '.join(map(str, HECKTOR_LABELS))}")
    header = type(reference)()
    header.set_data_shape(shape)
    header.set_data_dtype(np.uint8)
    for name in _GEOMETRY_FIELDS:
        header[name] = reference[name]
    pixdim = header["pixdim"].copy()
    pixdim[:4] = reference["pixdim"][:4]
    header["pixdim"] = pixdim
    header["descrip"] = b"medprior modality=SEG"
    image_class = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
    prediction = image_class(values.astype(np.uint8), None, header)
    with atomic_path(path) as temporary:
        nib.save(prediction, temporary)
    return path


def check_hecktor_submission(submission_dir: str | os.PathLike, cases_root: str | os.PathLike) -> dict[str, Path]:
    """Check a HECKTOR segmentation submission against the cases it answers; returns its files by case.

    The folder must hold exactly one ``<ID>.nii.gz`` per case of ``cases_root`` and nothing else
    (no subfolders, no other files; hidden files such as Snakemake's ``.snakemake_timestamp`` or
    ``.DS_Store``, and ``*.provenance.json`` sidecars, are ignored). Each must be a 3D NIfTI of the
    case CT's shape, with an affine within 1e-4 mm of the CT's (entry by entry), holding finite,
    integer-valued labels in {0, 1, 2}: any integer dtype (uint8 recommended), or floats that are
    whole numbers.

    Args:
        submission_dir: the flat submission folder.
        cases_root: the cases, in either layout of :func:`find_hecktor_cases` (labels not needed).

    Returns:
        ``{case_id: file}``, sorted by case id.

    Raises:
        InputError: naming the offending (or the missing expected) file and the problem.
    """
    cases = find_hecktor_cases(cases_root)
    if not cases:
        raise InputError(cases_root, "holds no HECKTOR cases")
    folder = Path(submission_dir)
    if not folder.is_dir():
        raise InputError(folder, "is not a folder" if folder.exists() else "does not exist")
    expected = {f"{case_id}.nii.gz": case_id for case_id in cases}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.name.endswith(SIDECAR_SUFFIX):
            continue
        if entry.is_dir():
            raise InputError(entry, "is a folder; a HECKTOR submission is one flat folder of <ID>.nii.gz files")
        if entry.name not in expected:
            raise InputError(entry, _stranger(entry.name, cases, cases_root))
    checked = {}
    for name, case_id in expected.items():
        path = folder / name
        if not path.is_file():
            raise InputError(path, f"is missing: case {case_id} of {cases_root} has no prediction")
        _check_prediction(path, cases[case_id]["ct"])
        checked[case_id] = path
    return checked


def _stranger(name: str, cases: Mapping[str, Any], cases_root: str | os.PathLike) -> str:
    """Why the submission entry ``name`` does not belong there."""
    if name.endswith(".nii") and name[:-4] in cases:
        return f"is an uncompressed NIfTI; name it {name}.gz (gzipped)"
    if name.endswith(".nii.gz") and not _IMAGE_FILE.match(name):
        return f"is not a case of {cases_root}; a HECKTOR submission holds one <ID>.nii.gz per case, nothing else"
    return f"is not part of a HECKTOR submission (one <ID>.nii.gz per case of {cases_root}, nothing else)"


def _check_prediction(path: Path, ct_path: Path) -> None:
    """One submission file against its case's CT: grid, then labels."""
    image, ct_image = _read_header(path), _read_header(ct_path)
    shape, ct_shape = tuple(int(n) for n in image.shape), _spatial_shape(ct_path, ct_image.shape)
    if shape != ct_shape:
        raise InputError(path, f"wrong grid: shape {shape}, CT {ct_shape} ({ct_path.name}); the labels must be "
                               "a 3D image on the CT grid")
    affine = np.asarray(image.affine, dtype=np.float64)
    if not np.isfinite(affine).all():
        raise InputError(path, "has an affine with NaN or Inf; copy the CT header's sform/qform")
    deviation = float(np.max(np.abs(affine - ct_image.affine)))
    if deviation > AFFINE_TOLERANCE_MM:
        raise InputError(path, f"affine differs from the CT by {deviation:.3g} mm ({ct_path.name}; allowed "
                               f"{AFFINE_TOLERANCE_MM:g} mm); copy the CT header's sform/qform")
    try:
        data = np.asanyarray(image.dataobj)
    except Exception as error:  # nibabel, gzip, zlib and OS errors for truncated or corrupt files
        raise InputError(path, f"cannot be read as NIfTI ({type(error).__name__}: {error})") from error
    if data.dtype.kind not in "biuf":
        raise InputError(path, f"holds {data.dtype} data; integer labels 0, 1, 2 are needed (uint8)")
    if data.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(data)))
        if bad:
            raise InputError(path, f"contains {bad} non-finite voxels (NaN or Inf)")
        fractional = data[data != np.round(data)]
        if fractional.size:
            raise InputError(path, f"holds {fractional.size} voxels with non-integer values (e.g. "
                                   f"{float(fractional[0]):g}); labels are the integers 0, 1, 2 (uint8)")
    unexpected = _unexpected_labels(data)
    if unexpected:
        raise InputError(path, f"labels {unexpected} not in {', '.join(map(str, HECKTOR_LABELS))}")


def _unexpected_labels(values: np.ndarray, shown: int = 5) -> str:
    """The distinct integer values outside {0, 1, 2} as ``"{3, 7}"`` (at most ``shown``); ``""`` if none."""
    odd = np.unique(values[(values < HECKTOR_LABELS[0]) | (values > HECKTOR_LABELS[-1])])
    if not odd.size:
        return ""
    text = ", ".join(f"{float(v):g}" for v in odd[:shown])
    return "{" + text + (", ..." if odd.size > shown else "") + "}"


def _read_header(path: str | os.PathLike) -> nib.Nifti1Image:
    """The NIfTI image at ``path`` (header read, voxels not yet)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "does not exist" if not path.exists() else "is not a file")
    try:
        image = nib.load(path)
    except Exception as error:  # nibabel, gzip and OS errors of unreadable files
        raise InputError(path, f"cannot be read as NIfTI ({type(error).__name__}: {error})") from error
    if not isinstance(image, nib.Nifti1Image):  # Nifti2Image is a subclass
        raise InputError(path, f"is not a NIfTI image (nibabel read it as {type(image).__name__})")
    return image


def _spatial_shape(path: str | os.PathLike, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """A CT header's shape without trailing singleton dimensions; it must be 3D."""
    dims = [int(n) for n in shape]
    while len(dims) > 3 and dims[-1] == 1:
        dims.pop()
    if len(dims) != 3:
        raise InputError(path, f"has shape {tuple(shape)}; a 3D CT is needed")
    return tuple(dims)  # type: ignore[return-value]
