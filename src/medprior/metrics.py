"""Image-quality metrics: PSNR, MSE, NMSE, MAE, 3D SSIM and per-axis 2D SSIM, plus CT intensity windows;
and the ultrasound dehazing scores of the DehazingEcho2025 challenge: gCNR and CNR between two
regions of one image, and the two-sample Kolmogorov-Smirnov statistic (:func:`region_ks`);
and segmentation scores of HECKTOR 2022 (per-case :func:`dice`, :func:`aggregated_dice`,
:func:`hd95`) with scores of a segmentation's uncertainty (:func:`uncertainty_auroc`,
:func:`expected_calibration_error`).

Each image-quality metric takes a ``reference`` and an ``estimate`` of the same shape (numpy arrays or torch
tensors, converted to float64 numpy) and returns a Python float. Volumes are ``(I, J, K)`` with
``K`` the axial slice axis (the layout of :class:`medprior.io.Volume`). ``mask`` (boolean, same
shape) restricts a metric to the voxels inside it: voxels outside never change the value.

SSIM follows Wang et al. 2004 ("Image quality assessment: from error visibility to structural
similarity"): Gaussian window, sigma 1.5, truncated to 11 taps, population covariances, K1 = 0.01,
K2 = 0.03, computed by :func:`skimage.metrics.structural_similarity`. Without a mask the mean SSIM
ignores the 5-voxel border strip where the window leaves the image (as skimage does); along an
axis shorter than the 11-tap window the map is computed with the same reflective boundary skimage
uses and every position along that axis is averaged (skimage itself refuses such inputs). With a
mask, the SSIM map is averaged over every voxel inside the mask (border strip included), so an
all-true mask differs slightly from no mask; the map there still sees voxels up to 5 voxels
outside the mask through its window.

Example:
    >>> import numpy as np
    >>> x = np.linspace(0, 1, 16 ** 3).reshape(16, 16, 16)
    >>> round(psnr(x, x + 0.01, data_range=1.0), 6)
    40.0
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from skimage.metrics import structural_similarity

from medprior.errors import InputError, ParameterError

_SSIM_SIGMA = 1.5
_SSIM_RADIUS = int(3.5 * _SSIM_SIGMA + 0.5)  # skimage: truncate 3.5 -> 11-tap window, radius 5

#: Common CT display windows in HU as ``(low, high)`` = level -/+ width / 2.
HU_WINDOWS: dict[str, tuple[float, float]] = {
    "soft": (-160.0, 240.0),         # abdomen soft tissue, W400 L40
    "mediastinum": (-125.0, 225.0),  # W350 L50
    "liver": (-45.0, 105.0),         # W150 L30
    "lung": (-1350.0, 150.0),        # W1500 L-600
    "bone": (-500.0, 1300.0),        # W1800 L400
    "brain": (0.0, 80.0),            # W80 L40
    "subdural": (-25.0, 175.0),      # W200 L75
    "stroke": (8.0, 48.0),           # W40 L28
}

#: Plane name -> axis of an ``(I, J, K)`` volume the slices are taken along (K axial, J coronal, I sagittal).
PLANE_AXES: dict[str, int] = {"axial": 2, "coronal": 1, "sagittal": 0}


def hu_window(name: str) -> tuple[float, float]:
    """The ``(low, high)`` HU limits of a named CT window (see :data:`HU_WINDOWS`)."""
    try:
        return HU_WINDOWS[name]
    except KeyError:
        raise InputError(None, f"unknown CT window {name!r}; choose from {sorted(HU_WINDOWS)}") from None


def window(volume: Any, low: float, high: float) -> Any:
    """Clip ``volume`` to ``[low, high]`` (numpy array or torch tensor; the type is kept)."""
    if not high > low:
        raise InputError(None, f"window needs low < high, got ({low}, {high})")
    if hasattr(volume, "clamp"):
        return volume.clamp(low, high)
    return np.clip(np.asarray(volume), low, high)


_clip = window  # image_metrics' argument ``window`` shadows the function there


def _array(value: Any, name: str) -> np.ndarray:
    """numpy float64 (or complex128) copy-free view of an array or a (detached, CPU) tensor."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if np.iscomplexobj(array):
        return array.astype(np.complex128, copy=False)
    if not np.issubdtype(array.dtype, np.number) and array.dtype != bool:
        raise InputError(None, f"{name} must be numeric, got dtype {array.dtype}")
    return array.astype(np.float64, copy=False)


def _pair(reference: Any, estimate: Any, mask: Any | None, *, real: bool = False
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validated ``(reference, estimate, mask)`` arrays of one shape."""
    ref, est = _array(reference, "reference"), _array(estimate, "estimate")
    if ref.shape != est.shape:
        raise InputError(None, f"reference shape {ref.shape} and estimate shape {est.shape} differ")
    if real and (np.iscomplexobj(ref) or np.iscomplexobj(est)):
        raise InputError(None, "SSIM needs real images; pass magnitudes of complex images")
    if mask is None:
        return ref, est, None
    if hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.shape != ref.shape:
        raise InputError(None, f"mask shape {mask.shape} differs from the image shape {ref.shape}")
    if mask.dtype != bool:
        if not np.issubdtype(mask.dtype, np.integer):
            raise InputError(None, f"mask must be boolean (or integer labels), got dtype {mask.dtype}")
        mask = mask != 0
    if not mask.any():
        raise InputError(None, "mask is empty")
    return ref, est, mask


def _check_range(data_range: float) -> float:
    if not np.isfinite(data_range) or data_range <= 0:
        raise InputError(None, f"data_range must be a positive number, got {data_range}")
    return float(data_range)


def _squared_error(ref: np.ndarray, est: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    error = np.abs(est - ref) ** 2
    return error if mask is None else error[mask]


def psnr(reference: Any, estimate: Any, data_range: float, mask: Any | None = None) -> float:
    """Peak signal-to-noise ratio ``10 log10(data_range^2 / MSE)`` in dB (``inf`` when equal).

    Args:
        reference: ground truth, any shape; real or complex (``|error|^2`` is used).
        estimate: same shape as ``reference``.
        data_range: peak-to-peak range of the reference's intensity scale (e.g. window width, HU).
        mask: optional boolean array; the MSE is taken over voxels inside it.
    """
    ref, est, mask = _pair(reference, estimate, mask)
    mse = float(np.mean(_squared_error(ref, est, mask)))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(_check_range(data_range) ** 2 / mse))


def mse(reference: Any, estimate: Any, mask: Any | None = None) -> float:
    """Mean squared error ``mean |estimate - reference|^2``, in the images' units squared."""
    ref, est, mask = _pair(reference, estimate, mask)
    return float(np.mean(_squared_error(ref, est, mask)))


def nmse(reference: Any, estimate: Any, mask: Any | None = None) -> float:
    """Normalised mean squared error ``||estimate - reference||^2 / ||reference||^2`` (unitless).

    Returns ``inf`` when the reference is zero (inside the mask) and the estimate is not.
    """
    ref, est, mask = _pair(reference, estimate, mask)
    error = float(np.sum(_squared_error(ref, est, mask)))
    energy = float(np.sum(np.abs(ref if mask is None else ref[mask]) ** 2))
    if energy == 0.0:
        return 0.0 if error == 0.0 else float("inf")
    return error / energy


def mae(reference: Any, estimate: Any, mask: Any | None = None) -> float:
    """Mean absolute error ``mean |estimate - reference|``, in the images' units (e.g. HU)."""
    ref, est, mask = _pair(reference, estimate, mask)
    error = np.abs(est - ref)
    return float(np.mean(error if mask is None else error[mask]))


def _ssim_map(ref: np.ndarray, est: np.ndarray, data_range: float) -> np.ndarray:
    """The SSIM map of two real 2D or 3D arrays (Wang et al. settings), same shape as the input.

    Axes shorter than the 11-tap window are padded symmetrically (the extension scipy's
    ``mode="reflect"`` filtering uses) before calling skimage and cropped after, which gives the
    map skimage's own formula would give without its size check.
    """
    shape = ref.shape
    pad = [(_SSIM_RADIUS, _SSIM_RADIUS) if n < 2 * _SSIM_RADIUS + 1 else (0, 0) for n in shape]
    if any(before for before, _ in pad):
        ref, est = np.pad(ref, pad, mode="symmetric"), np.pad(est, pad, mode="symmetric")
    _, ssim = structural_similarity(ref, est, data_range=data_range, channel_axis=None, gaussian_weights=True,
                                    sigma=_SSIM_SIGMA, use_sample_covariance=False, full=True)
    return ssim[tuple(slice(before, before + n) for (before, _), n in zip(pad, shape, strict=True))]


def _interior(shape: tuple[int, ...]) -> np.ndarray:
    """Boolean of the positions skimage averages: the border strip of the window radius removed
    along axes at least as long as the window; every position along shorter axes."""
    inside = np.zeros(shape, dtype=bool)
    inside[tuple(slice(_SSIM_RADIUS, n - _SSIM_RADIUS) if n >= 2 * _SSIM_RADIUS + 1 else slice(None)
                 for n in shape)] = True
    return inside


def _mean_ssim(ref: np.ndarray, est: np.ndarray, data_range: float, mask: np.ndarray | None) -> float:
    """Mean of the SSIM map over the interior (no mask) or inside ``mask``; ``nan`` if that is empty."""
    keep = _interior(ref.shape) if mask is None else mask
    if not keep.any():
        return float("nan")
    return float(_ssim_map(ref, est, data_range)[keep].mean(dtype=np.float64))


def ssim3d(reference: Any, estimate: Any, data_range: float, mask: Any | None = None) -> float:
    """3D SSIM of two volumes (Gaussian window sigma 1.5, Wang et al.) computed by skimage.

    Args:
        reference: real volume ``(I, J, K)`` (any 3D, or 2D, array).
        estimate: same shape.
        data_range: intensity range the stabilising constants use (e.g. window width in HU).
        mask: optional boolean; the mean of the SSIM map is taken over all voxels inside it.

    Without a mask and with every axis at least 11 long this equals
    ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=data_range)``.
    """
    ref, est, mask = _pair(reference, estimate, mask, real=True)
    return _mean_ssim(ref, est, _check_range(data_range), mask)


def ssim_per_axis(reference: Any, estimate: Any, data_range: float, mask: Any | None = None) -> dict[str, float]:
    """Mean 2D SSIM over the slices along each axis of an ``(I, J, K)`` volume (as DiffusionMBIR reports).

    ``axial`` averages the ``K`` slices ``[:, :, k]``, ``coronal`` the ``J`` slices ``[:, j, :]``,
    ``sagittal`` the ``I`` slices ``[i, :, :]``. Each slice's SSIM is the 2D mean SSIM (settings
    of :func:`ssim3d`); with a mask, each slice's map is averaged inside the mask and slices with
    no masked voxel are skipped. Slices count equally.
    """
    ref, est, mask = _pair(reference, estimate, mask, real=True)
    if ref.ndim != 3:
        raise InputError(None, f"ssim_per_axis needs 3D volumes, got shape {ref.shape}")
    data_range = _check_range(data_range)
    scores = {}
    for plane, axis in PLANE_AXES.items():
        values = []
        for index in range(ref.shape[axis]):
            take = (slice(None),) * axis + (index,)
            value = _mean_ssim(ref[take], est[take], data_range, None if mask is None else mask[take])
            if not np.isnan(value):
                values.append(value)
        scores[plane] = float(np.mean(values)) if values else float("nan")
    return scores


def image_metrics(reference: Any, estimate: Any, data_range: float | None = None,
                  window: tuple[float, float] | None = None, mask: Any | None = None) -> dict[str, float]:
    """PSNR, 3D SSIM, per-axis SSIM, NMSE and MAE of an estimate against a reference volume.

    Args:
        reference: real volume ``(I, J, K)``, ``K`` axial.
        estimate: same shape.
        data_range: range for PSNR / SSIM; default the window width, else the reference's peak-to-peak.
        window: ``(low, high)`` to clip both volumes to first (e.g. :func:`hu_window` for CT, HU).
        mask: optional boolean restricting every metric.

    Returns:
        ``{"psnr", "ssim", "ssim_axial", "ssim_coronal", "ssim_sagittal", "nmse", "mae"}``; NMSE
        and MAE are computed on the windowed volumes too.
    """
    ref, est, _ = _pair(reference, estimate, None, real=True)
    if window is not None:
        low, high = window
        ref, est = _clip(ref, low, high), _clip(est, low, high)
        if data_range is None:
            data_range = high - low
    if data_range is None:
        data_range = float(np.ptp(ref))
    per_axis = ssim_per_axis(ref, est, data_range, mask)
    return {"psnr": psnr(ref, est, data_range, mask), "ssim": ssim3d(ref, est, data_range, mask),
            **{f"ssim_{plane}": value for plane, value in per_axis.items()},
            "nmse": nmse(ref, est, mask), "mae": mae(ref, est, mask)}


# ------------------------------------------------------------------ ultrasound contrast (DehazingEcho2025)

def _real_finite(value: Any, name: str) -> np.ndarray:
    """Real, finite float64 array of ``value``; a :class:`ParameterError` (a ValueError) otherwise."""
    array = _array(value, name)
    if np.iscomplexobj(array):
        raise ParameterError(name, "must be real; pass the B-mode image (dB) or the envelope, not complex data")
    if not np.all(np.isfinite(array)):
        raise ParameterError(name, f"has {int(np.sum(~np.isfinite(array)))} non-finite (NaN or Inf) values")
    return array


def _region(image: np.ndarray, mask: Any, name: str) -> np.ndarray:
    """The values of ``image`` inside the boolean (or integer-label) ``mask`` of the same shape, 1D."""
    mask = mask.detach().cpu().numpy() if hasattr(mask, "detach") else np.asarray(mask)
    if mask.shape != image.shape:
        raise ParameterError(name, f"mask shape {mask.shape} differs from the image shape {image.shape}")
    if mask.dtype != bool:
        if not np.issubdtype(mask.dtype, np.integer):
            raise ParameterError(name, f"mask must be boolean (or integer labels), got dtype {mask.dtype}")
        mask = mask != 0
    if not mask.any():
        raise ParameterError(name, "mask is empty")
    return image[mask]


def _sample(value: Any, name: str) -> np.ndarray:
    """A non-empty, real, finite sample flattened to 1D."""
    sample = _real_finite(value, name).ravel()
    if sample.size == 0:
        raise ParameterError(name, "sample is empty")
    return sample


def gcnr(image: Any, mask_a: Any, mask_b: Any, bins: int = 256) -> float:
    """Generalized contrast-to-noise ratio ``1 - sum_k min(p_a[k], p_b[k])`` of two regions, in [0, 1].

    Rodriguez-Molares et al. 2020, "The Generalized Contrast-to-Noise Ratio: A Formal Definition
    for Lesion Detectability", as DehazingEcho2025 scores it: ``p_a`` and ``p_b`` are the regions'
    intensity histograms normalised to probabilities, over ``bins`` bins shared by both regions
    (equal widths spanning the min..max of the two regions' values together). 1 = the regions'
    intensities never overlap, 0 = identical histograms.

    Args:
        image: real image, any shape (e.g. B-mode in dB, ``(H, W)``).
        mask_a: boolean mask of the first region, same shape (e.g. the ventricle).
        mask_b: boolean mask of the second region, same shape (e.g. the septum); may overlap ``mask_a``.
        bins: number of histogram bins.
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ParameterError("bins", f"must be a positive integer, got {bins!r}")
    pixels = _real_finite(image, "image")
    a, b = _region(pixels, mask_a, "mask_a"), _region(pixels, mask_b, "mask_b")
    edges = np.histogram_bin_edges(np.concatenate([a, b]), bins=int(bins))
    p_a = np.histogram(a, bins=edges)[0] / a.size
    p_b = np.histogram(b, bins=edges)[0] / b.size
    return float(1.0 - np.minimum(p_a, p_b).sum())


def cnr(image: Any, mask_a: Any, mask_b: Any) -> float:
    """Contrast-to-noise ratio ``|mean_a - mean_b| / sqrt(var_a + var_b)`` of two regions (unitless).

    Variances are population variances (``ddof=0``). When both regions are constant the ratio is
    ``inf`` if their means differ and 0 if they are equal.

    Args:
        image: real image, any shape (e.g. B-mode in dB, ``(H, W)``).
        mask_a: boolean mask of the first region, same shape.
        mask_b: boolean mask of the second region, same shape.
    """
    pixels = _real_finite(image, "image")
    a, b = _region(pixels, mask_a, "mask_a"), _region(pixels, mask_b, "mask_b")
    contrast, noise = abs(a.mean() - b.mean()), np.sqrt(a.var() + b.var())
    if noise == 0.0:
        return float("inf") if contrast > 0.0 else 0.0
    return float(contrast / noise)


def ks_statistic(sample_a: Any, sample_b: Any) -> float:
    """Two-sample Kolmogorov-Smirnov statistic ``max_x |F_a(x) - F_b(x)|``, in [0, 1].

    ``F_a``, ``F_b`` are the empirical CDFs of the two samples (arrays of any shape, flattened;
    sizes may differ). The statistic is the exact fraction ``k / (n_a n_b)`` rounded once to float,
    which is ``scipy.stats.ks_2samp(a, b).statistic`` (bit for bit in its exact mode).
    """
    a, b = np.sort(_sample(sample_a, "sample_a")), np.sort(_sample(sample_b, "sample_b"))
    pooled = np.concatenate([a, b])
    below_a = np.searchsorted(a, pooled, side="right").astype(np.int64)  # n_a F_a(x) at every sample x
    below_b = np.searchsorted(b, pooled, side="right").astype(np.int64)
    gap = int(np.max(np.abs(below_a * b.size - below_b * a.size)))  # n_a n_b |F_a - F_b|, an integer
    return gap / (a.size * b.size)


def region_ks(hazy: Any, dehazed: Any, mask: Any) -> float:
    """KS statistic between the hazy and the dehazed image's intensities inside ``mask``, in [0, 1].

    DehazingEcho2025 uses it twice: in the septum lower is better (tissue kept), in the ventricle
    higher is better (haze removed).

    Args:
        hazy: real image before dehazing, any shape (e.g. B-mode in dB, ``(H, W)``).
        dehazed: the dehazed image, same shape and units.
        mask: boolean mask of the region, same shape.
    """
    before, after = _real_finite(hazy, "hazy"), _real_finite(dehazed, "dehazed")
    if before.shape != after.shape:
        raise ParameterError("dehazed", f"shape {after.shape} differs from the hazy image's shape {before.shape}")
    return ks_statistic(_region(before, mask, "mask"), _region(after, mask, "mask"))


# ------------------------------------------------------------------ segmentation (HECKTOR 2022) and uncertainty

def _label_map(value: Any, name: str) -> np.ndarray:
    """numpy integer (or bool) label map of an array or tensor; float maps must hold whole numbers."""
    array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
    if array.dtype == bool or np.issubdtype(array.dtype, np.integer):
        return array
    if np.issubdtype(array.dtype, np.floating) and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        return array
    raise ParameterError(name, f"must be an integer label map, got dtype {array.dtype} with non-integer values")


def _label_pair(truth: Any, prediction: Any, name: str = "prediction") -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(truth, prediction)`` label maps of one shape."""
    true, pred = _label_map(truth, "truth"), _label_map(prediction, name)
    if true.shape != pred.shape:
        raise ParameterError(name, f"shape {pred.shape} differs from the truth's shape {true.shape}")
    return true, pred


def _check_label(label: Any) -> int:
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
        raise ParameterError("label", f"must be an integer class label, got {label!r}")
    return int(label)


def _overlap(true: np.ndarray, pred: np.ndarray, label: int) -> tuple[int, int, int]:
    """``(|T ∩ P|, |T|, |P|)`` in voxels for class ``label``."""
    in_true, in_pred = true == label, pred == label
    return int(np.count_nonzero(in_true & in_pred)), int(np.count_nonzero(in_true)), int(np.count_nonzero(in_pred))


def _dice_ratio(intersection: int, total: int) -> float:
    return float("nan") if total == 0 else float(2.0 * intersection / total)


def dice(truth: Any, prediction: Any, label: int) -> float:
    """Dice ``2 |T ∩ P| / (|T| + |P|)`` of class ``label`` in one case, in [0, 1].

    ``T`` and ``P`` are the voxels labelled ``label`` in ``truth`` and ``prediction`` (integer label
    maps of one shape, numpy arrays or torch tensors). ``nan`` when the class is absent from both
    (no voxel in either): HECKTOR's per-case averages skip such cases rather than count them 0 or 1.
    """
    true, pred = _label_pair(truth, prediction)
    intersection, n_true, n_pred = _overlap(true, pred, _check_label(label))
    return _dice_ratio(intersection, n_true + n_pred)


def aggregated_dice(truths: Sequence[Any], predictions: Sequence[Any], labels: Sequence[int] = (1, 2)
                    ) -> dict[int | str, float]:
    """HECKTOR 2022's aggregated Dice per class, ``2 sum_i |T_i ∩ P_i| / sum_i (|T_i| + |P_i|)``.

    Voxels are pooled over all cases ``i`` before the ratio is taken, so large cases weigh more
    and a case where the class is absent from the truth adds only its false positives (unlike the
    mean of per-case :func:`dice`).

    Args:
        truths: label maps, one per case; shapes may differ between cases.
        predictions: label maps, one per case, each the shape of its truth.
        labels: the integer classes to score (HECKTOR: 1 = GTVp, 2 = GTVn).

    Returns:
        ``{label: DSCagg}`` for every label, plus ``"mean"``: the mean over the labels. A class with
        no voxel in any truth or prediction gets ``nan`` and the mean is over the other classes
        (``nan`` if there is none).
    """
    truths, predictions = list(truths), list(predictions)
    if len(truths) != len(predictions):
        raise ParameterError("predictions", f"{len(predictions)} predictions for {len(truths)} truths")
    if not truths:
        raise ParameterError("truths", "no cases")
    labels = [_check_label(label) for label in labels]
    if not labels or len(set(labels)) != len(labels):
        raise ParameterError("labels", f"must be distinct integer labels, at least one, got {labels}")
    totals = np.zeros((len(labels), 2), dtype=np.int64)  # per label: sum |T ∩ P|, sum |T| + |P|
    for case, (truth, prediction) in enumerate(zip(truths, predictions)):
        true, pred = _label_pair(truth, prediction, f"predictions[{case}]")
        for row, label in enumerate(labels):
            intersection, n_true, n_pred = _overlap(true, pred, label)
            totals[row] += (intersection, n_true + n_pred)
    scores: dict[int | str, float] = {label: _dice_ratio(*totals[row]) for row, label in enumerate(labels)}
    present = [value for value in scores.values() if not np.isnan(value)]
    scores["mean"] = float(np.mean(present)) if present else float("nan")
    return scores


def _spacing(spacing: Any, ndim: int) -> list[float]:
    """``ndim`` positive finite voxel sizes (mm) from one number or a sequence of ``ndim``."""
    values = np.atleast_1d(_array(spacing, "spacing"))
    if values.ndim != 1 or values.size not in (1, ndim) or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ParameterError("spacing", f"must be one positive voxel size or {ndim} (mm), got {spacing!r}")
    return [float(value) for value in np.broadcast_to(values, (ndim,))]


def hd95(truth: Any, prediction: Any, label: int, spacing: float | Sequence[float]) -> float:
    """95th-percentile symmetric Hausdorff distance of class ``label``, in mm, computed by MONAI.

    ``monai.metrics.compute_hausdorff_distance(percentile=95)``: the surface of a mask is its voxels
    with a face-neighbour outside it (the mask minus its erosion by the 6-connected cross; the
    image border counts as outside); each surface voxel's Euclidean distance (mm, with
    ``spacing``) to the nearest surface voxel of the other mask is taken, in both directions,
    and the result is the larger of the two directions' 95th percentiles (linear interpolation).
    MONAI computes in float32, so the value has float32 precision.

    Args:
        truth: integer label map, 2D or 3D (e.g. ``(I, J, K)``).
        prediction: label map of the same shape.
        label: the class to score.
        spacing: voxel size in mm, one number or one per axis (e.g. ``(0.98, 0.98, 3.0)``).

    Returns:
        the distance in mm; ``nan`` when the class is absent from both maps, ``inf`` when it is
        absent from exactly one (decided here, so MONAI's empty-mask warnings never arise).
    """
    true, pred = _label_pair(truth, prediction)
    if true.ndim not in (2, 3):
        raise ParameterError("truth", f"hd95 needs 2D or 3D label maps, got shape {true.shape}")
    label, spacing = _check_label(label), _spacing(spacing, true.ndim)
    in_true, in_pred = true == label, pred == label
    if not in_true.any() or not in_pred.any():
        return float("nan") if not in_true.any() and not in_pred.any() else float("inf")
    import torch
    from monai.metrics import compute_hausdorff_distance  # imported here: torch and MONAI take seconds to import
    with warnings.catch_warnings():  # monai 1.5/1.6 warns about its own internal use of a deprecated argument
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*", category=FutureWarning)
        one_hot_pred, one_hot_true = torch.from_numpy(in_pred)[None, None], torch.from_numpy(in_true)[None, None]
        distance = compute_hausdorff_distance(one_hot_pred, one_hot_true, include_background=True, percentile=95,
                                              spacing=spacing)
    return float(distance[0, 0])


def _flags(value: Any, name: str) -> np.ndarray:
    """Boolean array of a bool (or 0/1 integer) array or tensor."""
    array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
    if array.dtype == bool:
        return array
    if np.issubdtype(array.dtype, np.integer) and np.all((array == 0) | (array == 1)):
        return array.astype(bool)
    raise ParameterError(name, f"must be boolean (or 0/1 integers), got dtype {array.dtype}")


def uncertainty_auroc(uncertainty: Any, wrong: Any, mask: Any | None = None) -> float:
    """AUROC of voxel uncertainty as a detector of wrong voxels, in [0, 1] (0.5 = chance).

    The probability that a random wrong voxel is more uncertain than a random right one, ties
    counted half: the Mann-Whitney ``U / (n_wrong n_right)`` from average ranks (equal to
    ``sklearn.metrics.roc_auc_score(wrong, uncertainty)``).

    Args:
        uncertainty: real, finite per-voxel uncertainty, any shape (e.g. entropy in nats, ``(I, J, K)``).
        wrong: boolean, same shape: True where the prediction is wrong.
        mask: optional boolean, same shape; only voxels inside it count.

    Returns:
        the AUROC; ``nan`` when all voxels (inside the mask) are right or all are wrong.
    """
    from scipy.stats import rankdata  # imported here: scipy.stats takes ~0.7 s to import

    scores, errors = _real_finite(uncertainty, "uncertainty"), _flags(wrong, "wrong")
    if errors.shape != scores.shape:
        raise ParameterError("wrong", f"shape {errors.shape} differs from the uncertainty's shape {scores.shape}")
    if mask is not None:
        scores, errors = _region(scores, mask, "mask"), _region(errors, mask, "mask")
    scores, errors = scores.ravel(), errors.ravel()
    n_wrong = int(np.count_nonzero(errors))
    n_right = errors.size - n_wrong
    if n_wrong == 0 or n_right == 0:
        return float("nan")
    rank_sum = float(rankdata(scores)[errors].sum())
    return (rank_sum - n_wrong * (n_wrong + 1) / 2) / (n_wrong * n_right)


def expected_calibration_error(probabilities: Any, truth: Any, bins: int = 15, mask: Any | None = None) -> float:
    """Expected calibration error ``sum_b |B_b| / n |acc(B_b) - conf(B_b)|`` of voxel predictions, in [0, 1].

    Each voxel's confidence is its largest class probability and its prediction the argmax (the
    lowest class index on ties); voxels fall in ``bins`` equal-width confidence bins on [0, 1]
    (``[k / bins, (k + 1) / bins)``, the last closed at 1); ``acc`` is a bin's fraction of correct
    predictions and ``conf`` its mean confidence; ``n`` counts all voxels scored.

    Args:
        probabilities: class probabilities ``(C, *shape)``, finite, in [0, 1], summing to 1 over
            ``C`` (within 1e-3), e.g. a softmax output ``(C, I, J, K)``.
        truth: integer labels ``(*shape)`` in ``0 .. C - 1``.
        bins: number of confidence bins.
        mask: optional boolean ``(*shape)``; only voxels inside it count.
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ParameterError("bins", f"must be a positive integer, got {bins!r}")
    probs = _real_finite(probabilities, "probabilities")
    if probs.ndim < 1 or probs.size == 0:
        raise ParameterError("probabilities", f"must be (C, *shape) with C >= 1 and a voxel, got shape {probs.shape}")
    if probs.min() < 0.0 or probs.max() > 1.0:
        raise ParameterError("probabilities", f"must lie in [0, 1], got values in [{probs.min()}, {probs.max()}]")
    worst = float(np.max(np.abs(probs.sum(axis=0) - 1.0)))
    if worst > 1e-3:
        raise ParameterError("probabilities", f"must sum to 1 over axis 0 (within 1e-3), off by up to {worst:.3g}")
    labels = _label_map(truth, "truth")
    if labels.shape != probs.shape[1:]:
        raise ParameterError("truth", f"shape {labels.shape} differs from the probabilities' {probs.shape[1:]}")
    if labels.size and (labels.min() < 0 or labels.max() >= probs.shape[0]):
        raise ParameterError("truth", f"labels must lie in 0..{probs.shape[0] - 1}, got {labels.min()}..{labels.max()}")
    confidence, correct = probs.max(axis=0), probs.argmax(axis=0) == labels
    if mask is not None:
        confidence, correct = _region(confidence, mask, "mask"), _region(correct, mask, "mask")
    confidence, correct = confidence.ravel(), correct.ravel()
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, int(bins) - 1)
    gap = np.bincount(index, weights=correct, minlength=bins) - np.bincount(index, weights=confidence, minlength=bins)
    return float(np.abs(gap).sum() / confidence.size)  # |B| / n * |acc - conf| = |sum correct - sum conf| / n
