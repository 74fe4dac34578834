"""Classical dehazing baselines on B-mode images: non-local means (NLM) and BM3D.

The diffusion dehazer ("Dehazing Ultrasound using Diffusion Models", Stevens et al.) is measured
against these two denoisers, as in the paper and the DehazingEcho2025 challenge. Both work on the
log-compressed B-mode image in dB, ``(H, W)`` with values in ``[-dynamic_range, 0]``: the image is
mapped linearly to ``[0, 1]`` (``(x + dynamic_range) / dynamic_range``, input values outside the
range clipped first), denoised, clipped to ``[0, 1]`` and mapped back, so the output has the input's
shape, units (dB) and range. When no noise level is given it is estimated on the ``[0, 1]`` image by
:func:`skimage.restoration.estimate_sigma` (wavelet median absolute deviation, Donoho & Johnstone).

NLM is :func:`skimage.restoration.denoise_nl_means` (Buades et al. 2005), in fast mode with
``h = 0.8 sigma`` as scikit-image recommends. BM3D (Dabov et al. 2007) comes from the ``bm3d``
package of Tampere University, whose licence allows non-commercial use only; it is therefore an
optional extra, ``pip install 'medprior[bm3d]'``, imported only when :func:`bm3d_bmode` runs.
"""

from __future__ import annotations

import numpy as np
from skimage.restoration import denoise_nl_means, estimate_sigma

from medprior.errors import ParameterError


def _to_unit(bmode_db: np.ndarray, dynamic_range: float) -> np.ndarray:
    """Validated B-mode ``(H, W)`` in dB mapped from ``[-dynamic_range, 0]`` to ``[0, 1]`` (float64)."""
    if not np.isfinite(dynamic_range) or dynamic_range <= 0:
        raise ParameterError("dynamic_range", f"must be a positive number of dB, got {dynamic_range}")
    image = np.asarray(bmode_db)
    if image.ndim != 2 or image.dtype.kind not in "fiu":
        raise ParameterError("bmode_db", f"must be a real 2D (H, W) image in dB, got shape {image.shape} "
                                         f"and dtype {image.dtype}")
    if not np.all(np.isfinite(image)):
        raise ParameterError("bmode_db", f"has {int(np.sum(~np.isfinite(image)))} non-finite (NaN or Inf) values")
    return (np.clip(image.astype(np.float64), -dynamic_range, 0.0) + dynamic_range) / dynamic_range


def _to_db(unit: np.ndarray, dynamic_range: float) -> np.ndarray:
    """The inverse of :func:`_to_unit` after clipping to ``[0, 1]``: dB in ``[-dynamic_range, 0]``."""
    return np.clip(unit, 0.0, 1.0) * dynamic_range - dynamic_range


def _estimated_sigma(unit: np.ndarray) -> float:
    """Noise standard deviation of a ``[0, 1]`` image, estimated by scikit-image (wavelet MAD)."""
    return float(estimate_sigma(unit, channel_axis=None))


def _positive(value: float, name: str) -> float:
    if not np.isfinite(value) or value <= 0:
        raise ParameterError(name, f"must be a positive number (on the [0, 1] scale), got {value}")
    return float(value)


def nlm_bmode(bmode_db: np.ndarray, dynamic_range: float = 60.0, h: float | None = None,
              patch_size: int = 5, patch_distance: int = 6) -> np.ndarray:
    """Non-local means of a B-mode image in dB (scikit-image, fast mode).

    Args:
        bmode_db: ``(H, W)`` B-mode image in dB, values in ``[-dynamic_range, 0]``.
        dynamic_range: displayed dynamic range in dB (> 0).
        h: filter strength on the ``[0, 1]`` scale; default ``0.8 sigma`` with sigma estimated.
        patch_size: side of the square patches compared, in pixels.
        patch_distance: search radius for similar patches, in pixels.

    Returns:
        ``(H, W)`` float64 denoised image in dB, values in ``[-dynamic_range, 0]``.
    """
    unit = _to_unit(bmode_db, dynamic_range)
    strength = 0.8 * _estimated_sigma(unit) if h is None else _positive(h, "h")
    denoised = denoise_nl_means(unit, h=strength, patch_size=patch_size, patch_distance=patch_distance,
                                fast_mode=True, channel_axis=None)
    return _to_db(denoised, dynamic_range)


def bm3d_bmode(bmode_db: np.ndarray, dynamic_range: float = 60.0, sigma: float | None = None) -> np.ndarray:
    """BM3D of a B-mode image in dB (the ``bm3d`` package: the optional extra ``medprior[bm3d]``).

    Args:
        bmode_db: ``(H, W)`` B-mode image in dB, values in ``[-dynamic_range, 0]``.
        dynamic_range: displayed dynamic range in dB (> 0).
        sigma: noise standard deviation on the ``[0, 1]`` scale; default estimated.

    Returns:
        ``(H, W)`` float64 denoised image in dB, values in ``[-dynamic_range, 0]``.

    Raises:
        ParameterError: the ``bm3d`` package is not installed (the CLI's one line, exit status 2).
    """
    unit = _to_unit(bmode_db, dynamic_range)
    noise = _estimated_sigma(unit) if sigma is None else _positive(sigma, "sigma")
    try:
        import bm3d
    except ImportError:
        raise ParameterError("method", "bm3d needs the optional bm3d package (free for non-commercial use only): "
                                       "pip install 'medprior[bm3d]'") from None
    return _to_db(np.asarray(bm3d.bm3d(unit, noise), dtype=np.float64), dynamic_range)
