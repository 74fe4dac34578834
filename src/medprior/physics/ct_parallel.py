"""2D parallel-beam CT, slice by slice: ``y = A x`` with an exact sparse adjoint.

Geometry (scikit-image's ``radon`` convention, so its sinograms match ours bin for bin): at angle
``theta`` the detector coordinate of a point ``(x, y)`` (mm, ``y`` up, origin at pixel
``(H // 2, W // 2)``) is ``s = x cos(theta) + y sin(theta)``; bin ``k`` sits at
``s = (k - n_detectors // 2) * detector_spacing * pixel_size_mm``. ``y[b, v, k]`` is the mean over
bin ``k`` of the line integrals ``integral mu dl`` of slice ``b`` at angle ``v`` (dimensionless
for ``mu`` in 1/mm). See :mod:`medprior.physics.ct_footprint` for the system matrix and why we
do not use the papers' Radon transform.

Example:
    >>> import torch
    >>> op = ParallelBeamCT((64, 64), sparse_view_angles(30))
    >>> op.forward(torch.ones(2, 64, 64)).shape
    torch.Size([2, 30, 94])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import scipy.sparse
import torch

from medprior.errors import InputError
from medprior.physics.ct_footprint import SparseCT, checked_geometry, footprint_matrix, pixel_centres


def sparse_view_angles(n_views: int, arc_deg: float = 180.0, start_deg: float = 0.0) -> np.ndarray:
    """``n_views`` equispaced angles (degrees) over ``[start_deg, start_deg + arc_deg)``."""
    if n_views < 1:
        raise InputError(None, f"n_views must be >= 1, got {n_views}")
    return start_deg + arc_deg * np.arange(n_views) / n_views


def limited_angle_angles(start_deg: float, stop_deg: float, n_views: int) -> np.ndarray:
    """``n_views`` equispaced angles (degrees) over the wedge ``[start_deg, stop_deg]`` (both ends)."""
    if n_views < 1 or stop_deg <= start_deg:
        raise InputError(None, f"need n_views >= 1 and stop_deg > start_deg, got {n_views}, {start_deg}..{stop_deg}")
    return np.linspace(start_deg, stop_deg, n_views)


def default_n_detectors(image_shape: tuple[int, int], detector_spacing: float) -> int:
    """Enough bins of ``detector_spacing`` pixels to see every pixel at every angle."""
    return int(math.ceil((math.hypot(*image_shape) + 2.0) / detector_spacing)) + 1


@lru_cache(maxsize=4)
def _parallel_matrices(image_shape: tuple[int, int], angles_deg: tuple[float, ...], n_detectors: int,
                       detector_spacing: float, pixel_size_mm: float
                       ) -> tuple[scipy.sparse.csr_matrix, scipy.sparse.csr_matrix]:
    """``(A, A^T)`` as float64 CSR for one geometry (cached: repeated construction is free)."""
    x, y = pixel_centres(image_shape, 1.0)  # pixel units
    theta = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))

    def footprints(views: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cos, sin = np.cos(theta[views])[:, None], np.sin(theta[views])[:, None]
        centre = (x * cos + y * sin) / detector_spacing + n_detectors // 2
        a, b = np.abs(cos), np.abs(sin)
        half = np.stack([-(a + b), -np.abs(a - b), np.abs(a - b), a + b], axis=-1) / (2 * detector_spacing)
        tau = centre[..., None] + half
        height = np.broadcast_to(pixel_size_mm / np.maximum(a, b), centre.shape)
        return tau, height

    matrix = footprint_matrix(footprints, len(theta), image_shape[0] * image_shape[1], n_detectors)
    return matrix, matrix.T.tocsr()


class ParallelBeamCT(SparseCT):
    """2D parallel-beam projector ``y = A x`` applied to every slice of a batch.

    Shapes: ``x`` ``(B, H, W)`` attenuation (1/mm) -> ``y`` ``(B, n_angles, n_detectors)`` line
    integrals (dimensionless); float32 or float64, CPU or CUDA (the matrices follow the input).

    Args:
        image_shape: ``(H, W)`` of a slice.
        angles_deg: projection angles in degrees, any sequence (sparse, limited wedge, full).
        n_detectors: detector bins (default: enough for the image diagonal).
        detector_spacing: bin width in pixels (default 1).
        pixel_size_mm: square pixel side in mm; matrix entries are lengths in mm.
        device: where the matrices live first.
        dtype: their first dtype (float32 or float64).
    """

    def __init__(self, image_shape: Sequence[int], angles_deg: Sequence[float] | np.ndarray, *,
                 n_detectors: int | None = None, detector_spacing: float = 1.0, pixel_size_mm: float = 1.0,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> None:
        shape, angles = checked_geometry(image_shape, angles_deg, pixel_size_mm)
        if not (detector_spacing > 0 and pixel_size_mm > 0):
            raise InputError(None, "detector_spacing and pixel_size_mm must be > 0, "
                                   f"got {detector_spacing}, {pixel_size_mm}")
        n_det = default_n_detectors(shape, detector_spacing) if n_detectors is None else int(n_detectors)
        if n_det < 1:
            raise InputError(None, f"n_detectors must be >= 1, got {n_detectors}")
        self.angles_deg = np.asarray(angles)
        self.n_detectors = n_det
        self.detector_spacing = float(detector_spacing)
        self.pixel_size_mm = float(pixel_size_mm)
        matrices = _parallel_matrices(shape, angles, n_det, self.detector_spacing, self.pixel_size_mm)
        super().__init__(shape, matrices, (len(angles), n_det), device, dtype)

    @property
    def detector_spacing_mm(self) -> float:
        """Bin width in mm."""
        return self.detector_spacing * self.pixel_size_mm

    def detector_positions_mm(self) -> np.ndarray:
        """Bin centres ``s_k`` in mm, ``(n_detectors,)``."""
        return (np.arange(self.n_detectors) - self.n_detectors // 2) * self.detector_spacing_mm

    def __repr__(self) -> str:
        return (f"ParallelBeamCT(image_shape={self.domain_shape}, n_angles={len(self.angles_deg)}, "
                f"n_detectors={self.n_detectors}, detector_spacing={self.detector_spacing}, "
                f"pixel_size_mm={self.pixel_size_mm})")
