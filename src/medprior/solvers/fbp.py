"""Filtered back-projection (FBP) for the CT operators, batched over slices, in torch.

Parallel beam (Kak & Slaney, "Principles of Computerized Tomographic Imaging", ch. 3.3):

    ``f(x) = sum_v w_v Q_v(x cos theta_v + y sin theta_v)``,  ``Q_v = p_v * h``,

with ``h`` the spatially sampled ramp (``h(0) = 1/(4 tau^2)``, ``h(n tau) = -1/(pi n tau)^2`` for
odd ``n``, 0 for even ``n``: no DC bias), applied by FFT with zero padding to a power of two
``>= 2 n_detectors``, and ``w_v`` the angular step (``pi / n_views`` for views over 180 degrees).
The back-projection is the operator's exact adjoint: our system matrix satisfies
``sum_k a_kj = pixel_area / d`` for every view, so ``A^T`` is ``pixel_area / d`` times a
footprint-interpolating back-projector, and the output is ``f = w / pixel_area * A^T (p * h_1)``
in 1/mm when ``p`` are line integrals of 1/mm (``h_1``: the ramp for unit spacing).

Fan beam (flat detector): the weighted fan-beam FBP of Kak & Slaney ch. 3.4.2 (the 2D case of
FDK), not rebinning: cosine pre-weighting ``D_so / sqrt(D_so^2 + s^2)`` on the detector scaled to
the isocentre (``s = t D_so / D_sd``), ramp filtering at that spacing with the factor 1/2 of a
360-degree scan, then a pixel-driven back-projection with linear interpolation and distance
weight ``1 / U^2``, ``U = (D_so + X . d) / D_so``, held as a cached sparse matrix. It assumes a full
scan (360 degrees); short scans would need Parker weights (not implemented).
"""

from __future__ import annotations

import logging
import math
from functools import lru_cache

import numpy as np
import scipy.sparse
import torch

from medprior.errors import InputError
from medprior.physics.ct_fan import FanBeamCT, fan_detector_coordinates
from medprior.physics.ct_footprint import to_torch_csr, pixel_centres
from medprior.physics.ct_parallel import ParallelBeamCT
from medprior.physics.operator import LinearOperator

FILTERS = ("ramp", "shepp-logan", "hann")

logger = logging.getLogger(__name__)


def padded_size(n_detectors: int) -> int:
    """FFT length: the power of two ``>= max(64, 2 * n_detectors)``."""
    return max(64, 1 << int(math.ceil(math.log2(2 * n_detectors))))


def ramp_response(size: int, filter: str = "ramp") -> np.ndarray:
    """Frequency response ``(size,)`` of the spatially sampled ramp for unit spacing, times a window.

    ``ramp``: none; ``shepp-logan``: ``sinc(f)``; ``hann``: ``(1 + cos(2 pi f)) / 2`` (``f`` in
    cycles per sample, from ``np.fft.fftfreq``).
    """
    if filter not in FILTERS:
        raise InputError(None, f"unknown FBP filter {filter!r}; choose from {FILTERS}")
    n = np.minimum(np.arange(size), size - np.arange(size))
    kernel = np.zeros(size)
    kernel[0] = 0.25
    odd = n % 2 == 1
    kernel[odd] = -1.0 / (np.pi * n[odd]) ** 2
    response = np.real(np.fft.fft(kernel))
    freq = np.fft.fftfreq(size)
    if filter == "shepp-logan":
        response = response * np.sinc(freq)
    elif filter == "hann":
        response = response * 0.5 * (1.0 + np.cos(2.0 * np.pi * freq))
    return response


def filter_sinogram(sinogram: torch.Tensor, filter: str = "ramp") -> torch.Tensor:
    """Convolve each projection (last axis) with the unit-spacing ramp ``h_1``: ``(..., n) -> (..., n)``."""
    n = sinogram.shape[-1]
    size = padded_size(n)
    response = torch.as_tensor(ramp_response(size, filter), dtype=sinogram.dtype, device=sinogram.device)
    spectrum = torch.fft.rfft(sinogram, n=size, dim=-1) * response[: size // 2 + 1]
    return torch.fft.irfft(spectrum, n=size, dim=-1)[..., :n]


def angular_weights(angles_deg: np.ndarray, full_arc_deg: float) -> float:
    """Angular step ``w`` (radians) per view: the median gap, at most ``pi / n`` for a 180-degree
    arc (``full_arc_deg=180``, parallel) or ``2 pi / n`` for 360 (fan), where a full scan is needed."""
    full = math.radians(full_arc_deg) / len(angles_deg)
    gaps = np.diff(np.sort(np.deg2rad(np.asarray(angles_deg, dtype=np.float64))))
    gaps = gaps[gaps > 1e-9]
    return float(min(np.median(gaps), full)) if gaps.size else full


@lru_cache(maxsize=4)
def _fan_backprojector(image_shape: tuple[int, int], angles_deg: tuple[float, ...], n_detectors: int,
                       detector_spacing_mm: float, pixel_size_mm: float, source_to_isocentre_mm: float,
                       source_to_detector_mm: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Sparse ``(H * W, n_views * n_detectors)``: linear interpolation at ``t(X)`` times ``1 / U^2``."""
    x, y = pixel_centres(image_shape, pixel_size_mm)
    rows, cols, vals = [], [], []
    pixels = np.arange(x.size)
    for view, beta in enumerate(np.deg2rad(angles_deg)):
        t, u = fan_detector_coordinates(x, y, np.float64(beta), source_to_isocentre_mm, source_to_detector_mm)
        position = t / detector_spacing_mm + n_detectors // 2
        lower = np.floor(position).astype(np.int64)
        frac = position - lower
        for bins, weight in ((lower, 1.0 - frac), (lower + 1, frac)):
            keep = (bins >= 0) & (bins < n_detectors) & (weight > 0)
            rows.append(pixels[keep])
            cols.append(view * n_detectors + bins[keep])
            vals.append(weight[keep] / u[keep] ** 2)
    shape = (x.size, len(angles_deg) * n_detectors)
    matrix = scipy.sparse.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                                     shape=shape).tocsr()
    return to_torch_csr(matrix, dtype, device)


def _fbp_parallel(operator: ParallelBeamCT, sinogram: torch.Tensor, filter: str) -> torch.Tensor:
    weight = angular_weights(operator.angles_deg, 180.0)
    return operator.adjoint(filter_sinogram(sinogram, filter)) * (weight / operator.pixel_size_mm ** 2)


def _fbp_fan(operator: FanBeamCT, sinogram: torch.Tensor, filter: str) -> torch.Tensor:
    d_so, d_sd = operator.source_to_isocentre_mm, operator.source_to_detector_mm
    spacing = operator.detector_spacing_mm * d_so / d_sd  # bin width scaled to the isocentre
    s = torch.as_tensor(operator.detector_positions_mm() * d_so / d_sd, dtype=sinogram.dtype, device=sinogram.device)
    filtered = filter_sinogram(sinogram * (d_so / torch.sqrt(d_so ** 2 + s ** 2)), filter) / (2 * spacing)
    matrix = _fan_backprojector(operator.domain_shape, tuple(float(a) for a in operator.angles_deg),
                                operator.n_detectors, operator.detector_spacing_mm, operator.pixel_size_mm,
                                d_so, d_sd, sinogram.dtype, sinogram.device)
    columns = filtered.reshape(filtered.shape[0], -1).t().contiguous()
    image = (matrix @ columns).t().reshape(filtered.shape[0], *operator.domain_shape)
    return image * angular_weights(operator.angles_deg, 360.0)


def fbp(operator: LinearOperator, sinogram: torch.Tensor, filter: str = "ramp") -> torch.Tensor:
    """Filtered back-projection of a batch of sinograms.

    Args:
        operator: a :class:`ParallelBeamCT` or :class:`FanBeamCT`.
        sinogram: ``(B, n_views, n_detectors)`` line integrals (dimensionless), float32/float64,
            on any device.
        filter: ``"ramp"``, ``"shepp-logan"`` or ``"hann"``.

    Returns:
        ``(B, H, W)`` attenuation in 1/mm (the units of the image the sinogram came from), same
        dtype and device as ``sinogram``.
    """
    if tuple(sinogram.shape[1:]) != tuple(operator.range_shape) or sinogram.dim() != 3:
        raise InputError(None, f"sinogram must be (B, {', '.join(map(str, operator.range_shape))}), "
                               f"got {tuple(sinogram.shape)}")
    if filter not in FILTERS:
        raise InputError(None, f"unknown FBP filter {filter!r}; choose from {FILTERS}")
    logger.debug("FBP (%s): %d slices of %d views x %d detectors, %s filter", type(operator).__name__,
                 sinogram.shape[0], sinogram.shape[1], sinogram.shape[2], filter)
    if isinstance(operator, ParallelBeamCT):
        return _fbp_parallel(operator, sinogram, filter)
    if isinstance(operator, FanBeamCT):
        return _fbp_fan(operator, sinogram, filter)
    raise InputError(None, f"FBP needs a ParallelBeamCT or FanBeamCT, got {type(operator).__name__}")
