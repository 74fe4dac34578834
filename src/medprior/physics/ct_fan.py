"""2D fan-beam CT with a flat detector, slice by slice: ``y = A x`` with an exact sparse adjoint.

Geometry: at view angle ``beta`` the source sits at ``S = D_so (sin beta, -cos beta)`` (mm, ``y``
up, origin at pixel ``(H // 2, W // 2)``), the central ray runs along ``d = (-sin beta, cos beta)``
through the isocentre, and the flat detector is perpendicular to it at ``D_sd`` from the source,
with axis ``u = (cos beta, sin beta)``. A point ``X`` lands on the detector at

    ``t = D_sd * (X . u) / (D_so + X . d)``  (mm),

and bin ``k`` sits at ``t = (k - n_detectors // 2) * detector_spacing_mm``. As ``D_so -> inf`` this
is :class:`~medprior.physics.ct_parallel.ParallelBeamCT` at the same angles. Entries are the
separable-footprint strip integrals of :mod:`medprior.physics.ct_footprint` (lengths in mm).
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


def fan_detector_coordinates(x: np.ndarray, y: np.ndarray, beta: np.ndarray, source_to_isocentre_mm: float,
                             source_to_detector_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Detector position ``t`` (mm) and ``U = (D_so + X . d) / D_so`` of points ``(x, y)`` at angles ``beta``.

    ``x``, ``y`` broadcast against ``beta`` (radians); ``U`` is the distance weight of fan-beam FBP.
    """
    cos, sin = np.cos(beta), np.sin(beta)
    along = source_to_isocentre_mm - x * sin + y * cos
    return source_to_detector_mm * (x * cos + y * sin) / along, along / source_to_isocentre_mm


@lru_cache(maxsize=4)
def _fan_matrices(image_shape: tuple[int, int], angles_deg: tuple[float, ...], n_detectors: int,
                  detector_spacing_mm: float, pixel_size_mm: float, source_to_isocentre_mm: float,
                  source_to_detector_mm: float) -> tuple[scipy.sparse.csr_matrix, scipy.sparse.csr_matrix]:
    """``(A, A^T)`` as float64 CSR for one fan geometry (cached)."""
    x, y = pixel_centres(image_shape, pixel_size_mm)
    beta = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    half = pixel_size_mm / 2
    corners = [(-half, -half), (-half, half), (half, -half), (half, half)]

    def footprints(views: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b = beta[views][:, None]
        tau = np.stack([fan_detector_coordinates(x + dx, y + dy, b, source_to_isocentre_mm,
                                                 source_to_detector_mm)[0] for dx, dy in corners], axis=-1)
        tau = np.sort(tau, axis=-1) / detector_spacing_mm + n_detectors // 2
        rx, ry = x - source_to_isocentre_mm * np.sin(b), y + source_to_isocentre_mm * np.cos(b)
        height = pixel_size_mm * np.hypot(rx, ry) / np.maximum(np.abs(rx), np.abs(ry))
        return tau, height

    matrix = footprint_matrix(footprints, len(beta), image_shape[0] * image_shape[1], n_detectors)
    return matrix, matrix.T.tocsr()


class FanBeamCT(SparseCT):
    """2D fan-beam projector (flat detector) ``y = A x`` applied to every slice of a batch.

    Shapes: ``x`` ``(B, H, W)`` attenuation (1/mm) -> ``y`` ``(B, n_angles, n_detectors)`` line
    integrals (dimensionless), each the mean over a detector bin; float32 or float64, CPU or CUDA.

    Args:
        image_shape: ``(H, W)`` of a slice.
        angles_deg: source angles in degrees (full scans cover 360; FBP assumes that).
        source_to_isocentre_mm: ``D_so``, larger than the image's half diagonal.
        source_to_detector_mm: ``D_sd``.
        n_detectors: detector bins (default: enough for the fan that covers the image).
        detector_spacing_mm: bin width on the detector (default: one pixel magnified, ``pixel * D_sd / D_so``).
        pixel_size_mm: square pixel side in mm.
        device: where the matrices live first.
        dtype: their first dtype (float32 or float64).
    """

    def __init__(self, image_shape: Sequence[int], angles_deg: Sequence[float] | np.ndarray, *,
                 source_to_isocentre_mm: float, source_to_detector_mm: float, n_detectors: int | None = None,
                 detector_spacing_mm: float | None = None, pixel_size_mm: float = 1.0,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> None:
        shape, angles = checked_geometry(image_shape, angles_deg, pixel_size_mm)
        radius = (math.hypot(*shape) / 2 + 1) * pixel_size_mm
        if not source_to_isocentre_mm > radius:
            raise InputError(None, f"source_to_isocentre_mm ({source_to_isocentre_mm}) must exceed the image's "
                                   f"half diagonal ({radius:.4g} mm)")
        if not source_to_detector_mm > 0:
            raise InputError(None, f"source_to_detector_mm must be > 0, got {source_to_detector_mm}")
        magnification = source_to_detector_mm / source_to_isocentre_mm
        spacing = pixel_size_mm * magnification if detector_spacing_mm is None else float(detector_spacing_mm)
        if not spacing > 0:
            raise InputError(None, f"detector_spacing_mm must be > 0, got {detector_spacing_mm}")
        if n_detectors is None:
            half_width = source_to_detector_mm * math.tan(math.asin(radius / source_to_isocentre_mm))
            n_detectors = int(math.ceil(2 * half_width / spacing)) + 2
        if n_detectors < 1:
            raise InputError(None, f"n_detectors must be >= 1, got {n_detectors}")
        self.angles_deg = np.asarray(angles)
        self.n_detectors = int(n_detectors)
        self.detector_spacing_mm = spacing
        self.pixel_size_mm = float(pixel_size_mm)
        self.source_to_isocentre_mm = float(source_to_isocentre_mm)
        self.source_to_detector_mm = float(source_to_detector_mm)
        matrices = _fan_matrices(shape, angles, self.n_detectors, spacing, self.pixel_size_mm,
                                 self.source_to_isocentre_mm, self.source_to_detector_mm)
        super().__init__(shape, matrices, (len(angles), self.n_detectors), device, dtype)

    def detector_positions_mm(self) -> np.ndarray:
        """Bin centres ``t_k`` on the detector in mm, ``(n_detectors,)``."""
        return (np.arange(self.n_detectors) - self.n_detectors // 2) * self.detector_spacing_mm

    def __repr__(self) -> str:
        return (f"FanBeamCT(image_shape={self.domain_shape}, n_angles={len(self.angles_deg)}, "
                f"n_detectors={self.n_detectors}, detector_spacing_mm={self.detector_spacing_mm:.4g}, "
                f"pixel_size_mm={self.pixel_size_mm}, source_to_isocentre_mm={self.source_to_isocentre_mm}, "
                f"source_to_detector_mm={self.source_to_detector_mm})")
