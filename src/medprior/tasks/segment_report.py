"""Scoring and showing segmentations: HECKTOR 2022 scores of a submission, uncertainty quality, figures.

:func:`evaluate_segmentation` scores a submission folder against the cases' labels: the aggregated
Dice per class over all cases (DSCagg, HECKTOR 2022's ranking metric) and its mean, per-case Dice and
HD95 (mm), and, with the uncertainty folder of ``medprior segment``, the AUROC of the voxel entropy
(and variance) for telling wrong voxels from right ones and the expected calibration error (ECE) of the
class probabilities. The uncertainty scores are computed in a band around the tumours: the voxels
within :data:`BAND_MM` of a true or predicted GTV voxel, where segmentations can be wrong; counting the
far background, which every method gets right with full confidence, would inflate both.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
from scipy import ndimage as ndi

from medprior.challenges.hecktor import check_hecktor_submission, find_hecktor_cases
from medprior.errors import InputError
from medprior.figures import save_figure
from medprior.io.nifti import load_nifti
from medprior.metrics import aggregated_dice, dice, expected_calibration_error, hd95, uncertainty_auroc
from medprior.tasks.petct_cases import SEGMENTATION_CLASSES, UNCERTAINTY_FILES, read_case, read_truth

BAND_MM = 10.0


def uncertainty_band(truth: np.ndarray, prediction: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Voxels within :data:`BAND_MM` of a foreground voxel of ``truth`` or ``prediction`` (bool, same shape)."""
    foreground = (truth > 0) | (prediction > 0)
    if not foreground.any():
        return foreground
    return ndi.distance_transform_edt(~foreground, sampling=spacing) <= BAND_MM


def _finite_mean(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan


def evaluate_segmentation(submission: str | os.PathLike, cases_root: str | os.PathLike,
                          uncertainty: str | os.PathLike | None = None) -> dict[str, Any]:
    """HECKTOR scores of ``submission`` against the labels of ``cases_root`` (see the module docstring).

    Returns ``{"cases": {id: {...}}, "aggregate": {"DSCagg_GTVp", "DSCagg_GTVn", "DSCagg_mean", ...}}``;
    per case ``dice_GTVp``, ``dice_GTVn``, ``hd95_GTVp``, ``hd95_GTVn`` (NaN where the class is absent from
    both, inf where from one) and, with ``uncertainty``, ``auroc_entropy``, ``auroc_variance`` and
    ``ece``. The aggregate holds the means over cases (NaN and inf left out of the HD95 mean, which
    says how many cases it counts).
    """
    files = check_hecktor_submission(submission, cases_root)
    cases = find_hecktor_cases(cases_root)
    missing = [case_id for case_id in cases if "label" not in cases[case_id]]
    if missing:
        raise InputError(cases_root, f"case {missing[0]} has no label to score against")
    truths, predictions, rows = [], [], {}
    pooled: dict[str, list[np.ndarray]] = {"entropy": [], "variance": [], "wrong": [], "probabilities": [], "truth": []}
    for case_id, paths in cases.items():
        ct, label_volume = read_truth(paths)
        truth = np.rint(label_volume.data).astype(np.uint8)
        prediction = np.rint(load_nifti(files[case_id]).data).astype(np.uint8)
        truths.append(truth)
        predictions.append(prediction)
        row: dict[str, float] = {}
        for label, name in SEGMENTATION_CLASSES.items():
            row[f"dice_{name}"] = dice(truth, prediction, label)
            row[f"hd95_{name}"] = hd95(truth, prediction, label, ct.spacing)
        if uncertainty is not None:
            row.update(_uncertainty_scores(Path(uncertainty), case_id, truth, prediction, ct.spacing, pooled))
        rows[case_id] = row
    scores = aggregated_dice(truths, predictions, tuple(SEGMENTATION_CLASSES))
    aggregate: dict[str, Any] = {f"DSCagg_{name}": scores[label] for label, name in SEGMENTATION_CLASSES.items()}
    aggregate["DSCagg_mean"] = scores["mean"]
    for key in next(iter(rows.values())):
        values = [r[key] for r in rows.values()]
        aggregate[f"mean_{key}"] = _finite_mean([v for v in values if not math.isinf(v)])
        if key.startswith("hd95"):
            aggregate[f"cases_{key}"] = sum(1 for v in values if math.isfinite(v))
    if uncertainty is not None and pooled["wrong"]:
        wrong = np.concatenate(pooled["wrong"])
        aggregate["pooled_auroc_entropy"] = uncertainty_auroc(np.concatenate(pooled["entropy"]), wrong)
        if pooled["variance"]:
            aggregate["pooled_auroc_variance"] = uncertainty_auroc(np.concatenate(pooled["variance"]), wrong)
        aggregate["pooled_ece"] = expected_calibration_error(np.concatenate(pooled["probabilities"], axis=1),
                                                             np.concatenate(pooled["truth"]))
    return {"cases": rows, "aggregate": aggregate, "band_mm": BAND_MM}


def _uncertainty_scores(folder: Path, case_id: str, truth: np.ndarray, prediction: np.ndarray,
                        spacing: Sequence[float], pooled: dict[str, list[np.ndarray]]) -> dict[str, float]:
    """AUROC of entropy (and variance) for wrong voxels, and ECE, in the case's band; adds the band's
    voxels to ``pooled``."""
    paths = {name: folder / f"{case_id}{suffix}" for name, suffix in UNCERTAINTY_FILES.items()}
    for name in ("probabilities", "entropy"):
        if not paths[name].is_file():
            raise InputError(paths[name], "is missing from the uncertainty folder")
    probabilities = np.moveaxis(np.asarray(_read_array(paths["probabilities"])), -1, 0)
    if probabilities.shape != (3, *truth.shape):
        raise InputError(paths["probabilities"], f"holds {probabilities.shape[::-1]}, expected the CT grid "
                                                 f"{truth.shape} with 3 classes")
    band = uncertainty_band(truth, prediction, spacing)
    wrong = (truth != prediction)[band]
    entropy = _read_array(paths["entropy"])[band]
    row = {"auroc_entropy": uncertainty_auroc(entropy, wrong),
           "ece": expected_calibration_error(probabilities[:, band], truth[band])}
    pooled["entropy"].append(entropy)
    pooled["wrong"].append(wrong)
    pooled["probabilities"].append(probabilities[:, band])
    pooled["truth"].append(truth[band])
    if paths["variance"].is_file():
        variance = _read_array(paths["variance"])[band]
        row["auroc_variance"] = uncertainty_auroc(variance, wrong)
        pooled["variance"].append(variance)
    return row


def _read_array(path: Path) -> np.ndarray:
    """A NIfTI's float32 data as stored (3D or 4D), finite."""
    import nibabel as nib
    try:
        data = np.asarray(nib.load(path).dataobj, dtype=np.float32)
    except Exception as error:
        raise InputError(path, f"cannot be read as NIfTI ({error})") from None
    if not np.isfinite(data).all():
        raise InputError(path, "holds NaN or Inf values")
    return data


_COLOURS = {1: "red", 2: "cyan"}


def segmentation_figure(case_id: str, cases_root: str | os.PathLike, submissions: Sequence[tuple[str, str | os.PathLike]],
                        out: str | os.PathLike, *, uncertainty: str | os.PathLike | None = None) -> Path:
    """PNG of one case on the axial CT slice through the most tumour: CT, PET (SUV), truth, each method's
    prediction (outlines: GTVp red, GTVn cyan) and, with ``uncertainty`` (the first method's folder), the
    entropy map."""
    cases = find_hecktor_cases(cases_root)
    if case_id not in cases:
        raise InputError(cases_root, f"has no case {case_id}")
    case = read_case(case_id, cases[case_id])
    truth = np.rint(case.label.data).astype(np.uint8) if case.label is not None else np.zeros(case.ct.shape, np.uint8)
    k = int(np.argmax((truth > 0).sum((0, 1)))) if truth.any() else case.ct.shape[2] // 2
    panels: list[tuple[str, np.ndarray, np.ndarray | None]] = [("CT", case.ct.data[:, :, k], None),
                                                              ("PET (SUV)", case.pet.data[:, :, k], None),
                                                              ("truth", case.ct.data[:, :, k], truth[:, :, k])]
    for name, folder in submissions:
        path = Path(folder) / f"{case_id}.nii.gz"
        if not path.is_file():
            raise InputError(path, "is missing: the submission has no file for this case")
        predicted = np.rint(load_nifti(path).data).astype(np.uint8)
        score = " ".join(f"{SEGMENTATION_CLASSES[c]} {dice(truth, predicted, c):.2f}" for c in SEGMENTATION_CLASSES)
        panels.append((f"{name}\n{score}", case.ct.data[:, :, k], predicted[:, :, k]))
    if uncertainty is not None:
        entropy = _read_array(Path(uncertainty) / f"{case_id}{UNCERTAINTY_FILES['entropy']}")
        panels.append(("entropy (nats)", entropy[:, :, k], None))
    figure, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.0))
    for ax, (title, image, outline) in zip(np.atleast_1d(axes), panels):
        window = {"CT": (-200, 200), "PET (SUV)": (0, max(float(np.percentile(image, 99.9)), 1.0))}.get(title)
        if title.startswith("entropy"):
            window = (0.0, float(np.log(3)))
        low, high = window if window is not None else (-200, 200)
        ax.imshow(image.T, cmap="magma" if title in ("PET (SUV)",) or title.startswith("entropy") else "gray",
                  vmin=low, vmax=high, origin="upper")
        if outline is not None:
            for label, colour in _COLOURS.items():
                if (outline == label).any():
                    ax.contour((outline == label).T.astype(float), levels=[0.5], colors=colour, linewidths=0.8)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    figure.suptitle(f"{case_id}, axial slice {k} (GTVp red, GTVn cyan)", fontsize=9)
    return save_figure(figure, out)
