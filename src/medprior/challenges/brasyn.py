"""BraSyn, the BraTS missing-MRI synthesis challenge: the split, the submission layout, the scores.

Each BraSyn test case comes with one of its four contrasts (t1n, t1c, t2w, t2f) removed; a method
synthesizes the missing one. This module holds the data side of that task (no models):
:func:`drop_contrasts` builds such a split from complete BraTS cases, :func:`missing_contrast`
tells which contrast a case lacks, :func:`check_submission` checks a folder of syntheses and
:func:`evaluate_synthesis` (per case: :func:`brasyn_scores`) scores it against the dropped truth.

What the organisers' public code does, carried over as facts (the code here is our own):

- Split: ``dropout_modality.py`` of github.com/hongweilibran/BraSyn and ``drop_modality.py`` of
  github.com/WinstonHuTiger/BraSyn_tutorial take the case folders in sorted order, draw one
  integer in 0..3 per case indexing ``("t1c", "t1n", "t2f", "t2w")`` (:data:`DROP_ORDER`) and
  copy every other file unchanged. They seed numpy's legacy global generator
  (``np.random.seed(123456)``, ``np.random.randint``); here the draw is
  ``numpy.random.default_rng(seed).integers(0, 4, size=n_cases)``, so their list is not reproduced.
- Normalisation: ``ssim.py`` of hongweilibran/BraSyn (taken from the BraTS 2023 inpainting
  metrics, github.com/BraTS-inpainting/inpainting) maps each image on its own to [0, 1]: the 0.5th
  and 99.5th percentiles of the whole volume (background included), the lower one raised to 0 if
  negative, clip, rescale. A prediction off by a constant factor therefore scores as exact.
- SSIM: the same script calls torchmetrics' 3D SSIM with its defaults (Gaussian window sigma 1.5,
  11 taps, K1 = 0.01, K2 = 0.03, data range = the larger peak-to-peak of the two inputs) on both
  images multiplied by the region mask, and averages the SSIM map over the region's voxels. Here
  :func:`medprior.metrics.ssim3d` computes it with those settings.
- PSNR and MSE: BraSyn's script scores SSIM only; PSNR and MSE follow the BraTS 2023 inpainting
  metrics that its normalisation comes from: over the region's voxels of the normalised images,
  PSNR with peak 1 (their ``psnr_01``).
- Regions: tumour is ``seg > 0`` as in ``ssim.py``, whose other region is every voxel outside the
  tumour, background included. Here ``healthy`` is the brain minus the tumour and ``brain`` the
  whole brain: the voxels where the truth is nonzero (BraTS images are skull-stripped) or tumour.
  Counting the zero background would push SSIM towards 1 and MSE towards 0.

Layouts::

    cases_root/<case>/<case>-{t1n,t1c,t2w,t2f,seg}.nii.gz      complete BraTS cases
    out_root/<case>/<case>-<3 present contrasts>.nii.gz        the split's inputs, + missing.json
    truth_root/<case>/<case>-{<dropped contrast>,seg}.nii.gz   what is scored against
    submission/<case>-<missing contrast>.nii.gz                one flat folder, one file per case
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from medprior import metrics
from medprior.challenges.brats import BRATS_CONTRASTS, find_brats_cases
from medprior.checks import require_seed
from medprior.errors import InputError
from medprior.io import atomic_path, load_nifti, write_json, write_sidecar

#: Contrasts in the order the drawn index picks from (BraSyn's ``dropout_modality.py``).
DROP_ORDER: tuple[str, ...] = ("t1c", "t1n", "t2f", "t2w")
#: Scored regions and metrics; :func:`brasyn_scores` keys are ``f"{metric}_{region}"``.
REGIONS: tuple[str, ...] = ("brain", "tumour", "healthy")
METRICS: tuple[str, ...] = ("ssim", "psnr", "mse")
_PERCENTILES = (0.5, 99.5)
_AFFINE_TOLERANCE_MM = 1e-4
_BRATS_FILE = re.compile(r"^(.+)-(t1n|t1c|t2w|t2f|seg)\.nii\.gz$")


def drop_contrasts(cases_root: str | os.PathLike, out_root: str | os.PathLike, truth_root: str | os.PathLike,
                   *, seed: int) -> dict[str, str]:
    """Build a BraSyn split: drop one contrast per case; returns ``{case: dropped contrast}``.

    Case ``n`` of the sorted case ids loses ``DROP_ORDER[draws[n]]`` with
    ``draws = numpy.random.default_rng(seed).integers(0, 4, size=n_cases)``. Its three other
    contrasts are copied byte for byte to ``out_root/<case>/``, the dropped one and the seg (if
    any) to ``truth_root/<case>/``; ``out_root/missing.json`` holds the returned mapping, and
    ``out_root.json`` / ``truth_root.json`` the provenance sidecars. Inputs are checked before
    anything is written (every image is read: :func:`check_case_volumes`), and each folder
    appears complete or not at all.

    Args:
        cases_root: BraTS cases (see :func:`~medprior.challenges.brats.find_brats_cases`), each
            with all four contrasts.
        out_root: new (or empty) folder for the split's inputs.
        truth_root: new (or empty) folder for the dropped contrasts; separate from the other two.
        seed: non-negative integer.
    """
    seed = require_seed("seed", seed)
    cases = find_brats_cases(cases_root)
    if not cases:
        raise InputError(cases_root, "holds no BraTS case folders")
    for case_id, files in cases.items():
        lacking = [c for c in BRATS_CONTRASTS if c not in files]
        if lacking:
            raise InputError(Path(cases_root) / case_id, f"lacks {', '.join(lacking)}; every case needs all "
                             "four contrasts to drop one")
        check_case_volumes(files)
    _check_new_folders(cases_root, out_root, truth_root)

    case_ids = sorted(cases)
    draws = np.random.default_rng(seed).integers(0, len(DROP_ORDER), size=len(case_ids))
    dropped = {case_id: DROP_ORDER[int(draw)] for case_id, draw in zip(case_ids, draws, strict=True)}
    with ExitStack() as stack:
        out_dir = stack.enter_context(atomic_path(out_root, directory=True))
        truth_dir = stack.enter_context(atomic_path(truth_root, directory=True))
        for case_id in case_ids:
            for name, path in cases[case_id].items():
                folder = (truth_dir if name in (dropped[case_id], "seg") else out_dir) / case_id
                folder.mkdir(exist_ok=True)
                shutil.copyfile(path, folder / path.name)
        write_json(out_dir / "missing.json", dropped)
    for root in (out_root, truth_root):
        write_sidecar(root, config={"cases_root": str(cases_root), "drop_order": list(DROP_ORDER)},
                      seeds={"drop_contrasts": int(seed)})
    return dropped


def check_case_volumes(files: Mapping[str, str | os.PathLike]) -> None:
    """Read every image of one case and check it: a readable, complete 3D NIfTI with finite voxels
    and a finite, invertible affine (:func:`~medprior.io.load_nifti`), all on one grid (the same
    shape, affines within 1e-4 mm).

    Raises:
        InputError: naming the offending file and the problem.
    """
    first: tuple[Path, tuple[int, ...], np.ndarray] | None = None
    for name in sorted(files, key=lambda n: (n not in BRATS_CONTRASTS, n)):
        path = Path(files[name])
        volume = load_nifti(path)
        if first is None:
            first = (path, volume.shape, volume.affine)
            continue
        if volume.shape != first[1]:
            raise InputError(path, f"has shape {volume.shape}, but {first[0].name} of the same case has {first[1]}; "
                                   "a case's images share one grid")
        deviation = float(np.max(np.abs(volume.affine - first[2])))
        if deviation > _AFFINE_TOLERANCE_MM:
            raise InputError(path, f"has an affine {deviation:.3g} mm off {first[0].name} of the same case "
                                   f"(allowed {_AFFINE_TOLERANCE_MM:g} mm); a case's images share one grid")


def missing_contrast(case_files: Mapping[str, str | os.PathLike]) -> str:
    """The one contrast of t1n, t1c, t2w, t2f that a case lacks.

    Args:
        case_files: one case's ``{name: path}`` as :func:`find_brats_cases` returns it.

    Raises:
        InputError: naming the case folder, when no contrast or more than one is missing.
    """
    lacking = [c for c in BRATS_CONTRASTS if c not in case_files]
    if len(lacking) != 1:
        folder = next((Path(p).parent for p in case_files.values()), None)
        present = ", ".join(c for c in BRATS_CONTRASTS if c in case_files) or "none"
        raise InputError(folder, f"has contrasts {present}; a BraSyn case lacks exactly one of "
                         f"{', '.join(BRATS_CONTRASTS)}")
    return lacking[0]


def check_submission(submission_dir: str | os.PathLike, cases_root: str | os.PathLike) -> list[Path]:
    """Check a BraSyn submission folder against the cases it answers; returns its files by case.

    The folder must hold exactly one ``<case>-<missing contrast>.nii.gz`` per case of
    ``cases_root`` and nothing else (no subfolders, no other files; hidden files such as
    Snakemake's ``.snakemake_timestamp`` or ``.DS_Store`` are ignored). Each must be a 3D NIfTI of
    the case's shape, with its affine within 1e-4 mm of the case's present contrasts' affine, and
    finite real values.

    Args:
        submission_dir: the flat submission folder.
        cases_root: the split's inputs (``out_root`` of :func:`drop_contrasts`): BraTS cases with
            exactly one contrast missing.

    Raises:
        InputError: naming the offending (or the missing expected) file and the problem.
    """
    cases = find_brats_cases(cases_root)
    if not cases:
        raise InputError(cases_root, "holds no BraTS case folders")
    expected = {}
    for case_id, files in cases.items():
        contrast = missing_contrast(files)
        expected[case_id] = (contrast, next(files[c] for c in BRATS_CONTRASTS if c in files))
    return _check_files(submission_dir, expected)


def evaluate_synthesis(submission_dir: str | os.PathLike, truth_root: str | os.PathLike,
                       *, cases_root: str | os.PathLike | None = None) -> dict[str, Any]:
    """Score a BraSyn submission: SSIM, PSNR and MSE per case in the brain, tumour and healthy regions.

    The submission is checked first: against ``cases_root`` with :func:`check_submission` (and the
    truth must hold exactly the contrasts those cases lack), or against the truth files' names and
    geometry when ``cases_root`` is None. Scores per case are those of :func:`brasyn_scores`.

    Args:
        submission_dir: flat folder of ``<case>-<contrast>.nii.gz`` syntheses.
        truth_root: ``truth_root`` of :func:`drop_contrasts`: per case the dropped contrast and seg.
        cases_root: optionally, the split's inputs the submission answers.

    Returns:
        ``{"rows": [...], "mean": {...}}``: one row per case (sorted) with ``case``, ``contrast``
        and the :func:`brasyn_scores` keys; ``mean`` averages each key over the cases that have a
        value (NaN, a case without tumour, is left out). PSNR is in dB (``inf`` for an exact
        synthesis, which makes the mean ``inf``), MSE in squared normalised units, SSIM unitless.
    """
    truth = _truth_cases(truth_root)
    if cases_root is None:
        _check_files(submission_dir, {case: (contrast, path) for case, (contrast, path, _) in truth.items()})
    else:
        check_submission(submission_dir, cases_root)
        lacking = {case: missing_contrast(files) for case, files in find_brats_cases(cases_root).items()}
        for case in sorted(set(lacking) | set(truth)):
            if case not in truth or lacking.get(case) != truth[case][0]:
                held = truth[case][0] if case in truth else "no truth case"
                raise InputError(Path(truth_root) / case, f"holds {held}, but {cases_root} case {case} "
                                 f"lacks {lacking.get(case, 'nothing (no such case)')}")
    rows = []
    for case, (contrast, truth_path, seg_path) in truth.items():
        reference = load_nifti(truth_path).data
        seg = load_nifti(seg_path).data
        if seg.shape != reference.shape:
            raise InputError(seg_path, f"has shape {seg.shape}; the truth {truth_path.name} has {reference.shape}")
        estimate = load_nifti(Path(submission_dir) / f"{case}-{contrast}.nii.gz").data
        rows.append({"case": case, "contrast": contrast, **brasyn_scores(reference, estimate, seg)})
    keys = [f"{metric}_{region}" for region in REGIONS for metric in METRICS]
    return {"rows": rows, "mean": {key: _mean([row[key] for row in rows]) for key in keys}}


def brasyn_scores(reference: Any, estimate: Any, seg: Any) -> dict[str, float]:
    """SSIM, PSNR and MSE of one synthesized contrast in the brain, tumour and healthy regions.

    Both images are first normalised on their own (0.5/99.5 percentiles of the whole volume,
    lower bound at least 0, clipped, mapped to [0, 1]; an image with equal percentiles becomes 0).
    Regions: ``tumour = seg > 0``, ``brain = (reference != 0) | tumour``, ``healthy = brain &
    ~tumour``. In each region: SSIM of both normalised images multiplied by the region mask,
    averaged over the region (data range: the larger peak-to-peak of the two masked images, 1 if
    both are constant); PSNR (dB, peak 1) and MSE over the region's voxels.

    Args:
        reference: the true contrast ``(I, J, K)``, any intensity unit, 0 outside the brain.
        estimate: the synthesis, same shape, any intensity scale.
        seg: tumour labels, same shape (BraTS: 1 NCR, 2 ED, 3 ET; 0 elsewhere).

    Returns:
        ``{f"{metric}_{region}": value}`` for ``metric`` in :data:`METRICS` and ``region`` in
        :data:`REGIONS`; NaN for all three metrics of an empty region (a case without tumour).
    """
    reference, estimate = np.asarray(reference, dtype=np.float64), np.asarray(estimate, dtype=np.float64)
    tumour = np.asarray(seg) > 0
    if not reference.shape == estimate.shape == tumour.shape:
        raise InputError(None, f"reference {reference.shape}, estimate {estimate.shape} and seg "
                         f"{tumour.shape} must have one shape")
    brain = (reference != 0) | tumour
    if not brain.any():
        raise InputError(None, "the true image is 0 everywhere: there is no brain to score")
    reference, estimate = _normalise(reference), _normalise(estimate)
    scores = {}
    for region, mask in zip(REGIONS, (brain, tumour, brain & ~tumour), strict=True):
        if not mask.any():
            scores.update({f"{metric}_{region}": float("nan") for metric in METRICS})
            continue
        masked_reference, masked_estimate = reference * mask, estimate * mask
        data_range = max(np.ptp(masked_reference), np.ptp(masked_estimate)) or 1.0
        scores[f"ssim_{region}"] = metrics.ssim3d(masked_reference, masked_estimate, data_range, mask=mask)
        scores[f"psnr_{region}"] = metrics.psnr(reference, estimate, 1.0, mask=mask)
        scores[f"mse_{region}"] = metrics.mse(reference, estimate, mask=mask)
    return scores


def _normalise(image: np.ndarray) -> np.ndarray:
    """BraSyn's percentile normalisation of a whole volume to [0, 1] (see :func:`brasyn_scores`)."""
    low, high = np.percentile(image, _PERCENTILES)
    low = max(float(low), 0.0)
    if not high > low:
        return np.zeros_like(image)
    return (np.clip(image, low, high) - low) / (high - low)


def _mean(values: list[float]) -> float:
    """Mean of the non-NaN values; NaN if there are none."""
    kept = [v for v in values if not np.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


def nifti_geometry(path: str | os.PathLike) -> tuple[tuple[int, ...], np.ndarray]:
    """Shape and affine (RAS+ mm) from a NIfTI header, without reading the voxels."""
    try:
        image = nib.load(path)
        return tuple(int(n) for n in image.shape), np.asarray(image.affine, dtype=np.float64)
    except Exception as error:  # nibabel, gzip and OS errors of unreadable files
        raise InputError(path, f"cannot be read as NIfTI ({type(error).__name__}: {error})") from error


def _check_new_folders(cases_root: str | os.PathLike, *outputs: str | os.PathLike) -> None:
    """Outputs must be new or empty folders, none inside, equal to or around another or the input."""
    for output in map(Path, outputs):
        if output.exists() and (not output.is_dir() or any(output.iterdir())):
            raise InputError(output, "already exists and is not empty; give a new folder")
    for a, b in itertools.combinations([Path(p).resolve() for p in (cases_root, *outputs)], 2):
        if a == b or a in b.parents or b in a.parents:
            raise InputError(b, f"overlaps {a}; the cases, output and truth folders must be separate")


def _truth_cases(truth_root: str | os.PathLike) -> dict[str, tuple[str, Path, Path]]:
    """``{case: (contrast, truth file, seg file)}`` of a truth folder made by :func:`drop_contrasts`."""
    cases = find_brats_cases(truth_root)
    if not cases:
        raise InputError(truth_root, "holds no BraTS case folders")
    truth = {}
    for case_id, files in cases.items():
        contrasts = [c for c in BRATS_CONTRASTS if c in files]
        if len(contrasts) != 1:
            raise InputError(Path(truth_root) / case_id, f"holds {len(contrasts)} contrasts; a truth case holds "
                             "the one dropped contrast and the seg")
        if "seg" not in files:
            raise InputError(Path(truth_root) / case_id, "has no seg file; the tumour and healthy regions need it")
        truth[case_id] = (contrasts[0], files[contrasts[0]], files["seg"])
    return truth


def _check_files(submission_dir: str | os.PathLike, expected: Mapping[str, tuple[str, Path]]) -> list[Path]:
    """Check a flat submission against ``{case: (contrast, reference file)}``; the reference file
    gives the shape and affine the case's synthesis must have. Returns the files in case order."""
    folder = Path(submission_dir)
    if not folder.is_dir():
        raise InputError(folder, "is not a folder")
    names = {f"{case}-{contrast}.nii.gz": case for case, (contrast, _) in sorted(expected.items())}
    for entry in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
        if entry.is_dir():
            raise InputError(entry, "is a folder; a BraSyn submission is one flat folder of "
                             "<case>-<missing contrast>.nii.gz files")
        if entry.name not in names:
            match = _BRATS_FILE.match(entry.name)
            if match and match.group(1) in expected:
                case, wanted = match.group(1), expected[match.group(1)][0]
                raise InputError(entry, f"is {match.group(2)}, but case {case} lacks {wanted}: name it "
                                 f"{case}-{wanted}.nii.gz")
            raise InputError(entry, "is not part of a BraSyn submission (one <case>-<missing contrast>.nii.gz "
                             "per case, nothing else)")
    checked = []
    for name, case in names.items():
        path = folder / name
        if not path.is_file():
            raise InputError(path, f"is missing: case {case} lacks {expected[case][0]}, whose synthesis this is")
        (shape, affine), (want_shape, want_affine) = nifti_geometry(path), nifti_geometry(expected[case][1])
        if shape != want_shape:
            raise InputError(path, f"has shape {shape}; a 3D image of the case's shape {want_shape} is needed")
        deviation = float(np.max(np.abs(affine - want_affine)))
        if deviation > _AFFINE_TOLERANCE_MM:
            raise InputError(path, f"has an affine {deviation:.3g} mm off the case's contrasts "
                             f"(allowed {_AFFINE_TOLERANCE_MM:g} mm)")
        load_nifti(path)  # raises InputError for non-finite, complex or unreadable voxel data
        checked.append(path)
    return checked
