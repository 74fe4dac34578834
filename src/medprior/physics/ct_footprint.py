"""The CT system matrix shared by parallel- and fan-beam CT: separable-footprint strip integrals.

Why our own projector rather than the Radon transform of the papers' code (a torch port of
scikit-image's ``radon``/``iradon``): their back-projector is ``iradon`` without a filter, a
pixel-driven interpolation that is neither the transpose of their forward projector nor scaled
like it (it is about ``pi / (2 V)`` times ``A^T`` for ``V`` views, i.e. ``A^T`` is about ``2V/pi``
times it, and ``<A x, y> != <x, B y>`` beyond interpolation error). Model-based solvers (CG,
ADMM, DDS) need the exact adjoint, so here the operator *is* a sparse matrix ``A`` and the
adjoint is ``A^T``, exact by construction in float32 and float64, on CPU and CUDA.

The model (Long, Fessler & Balter, "3D forward and back-projection for X-ray CT using separable
footprints", IEEE TMI 2010): a sinogram bin is the mean line integral over the rays that hit the
bin, ``a_kj = (1/d) * integral over bin k of F_j(t) dt`` where ``F_j(t)`` is the chord length (mm)
through square pixel ``j`` of the ray that hits the detector at ``t``. ``F_j`` is a trapezoid
whose corners are the detector positions of the pixel's four corners and whose height is the
chord through its centre (``pixel / max(|cos phi|, |sin phi|)`` for ray direction ``phi``). For
parallel beams this is exact (the strip-pixel intersection area over the strip width), so
``sum_k a_kj = pixel_area / d`` for every view: back-projection has no ray-driven ripple and
forward projection no pixel-driven moire. Entries are lengths in mm.

Image convention (as scikit-image): pixel ``(i, j)`` of an ``(H, W)`` slice sits at
``x = (j - W // 2) * pixel``, ``y = (H // 2 - i) * pixel`` (rows run towards -y); detector bin
``k`` sits at ``t = (k - n_detectors // 2) * d``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse
import torch

from medprior.errors import InputError
from medprior.physics.operator import LinearOperator

# footprints(views) -> (tau (V, P, 4) corner positions in detector-bin units, sorted; height (V, P) in mm)
FootprintFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def pixel_centres(image_shape: tuple[int, int], pixel_size_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """World coordinates ``(x, y)`` in mm of the pixel centres, each ``(H * W,)`` in row-major order."""
    height, width = image_shape
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    x = (cols.ravel() - width // 2) * pixel_size_mm
    y = (height // 2 - rows.ravel()) * pixel_size_mm
    return x.astype(np.float64), y.astype(np.float64)


def _ramp_integral(u: np.ndarray, start: np.ndarray, width: np.ndarray) -> np.ndarray:
    """``integral_{-inf}^u clip((v - start) / width, 0, 1) dv`` (a step when ``width == 0``)."""
    rel = u - start
    inside = np.maximum(rel, 0.0) ** 2 / (2.0 * np.maximum(width, 1e-12))
    return np.where(rel >= width, rel - 0.5 * width, inside)


def _trapezoid_cdf(u: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Integral up to ``u`` of the unit-height trapezoid with corners ``tau[..., 0..3]``."""
    t0, t1, t2, t3 = (tau[..., i] for i in range(4))
    return _ramp_integral(u, t0, t1 - t0) - _ramp_integral(u, t2, t3 - t2)


def footprint_matrix(footprints: FootprintFn, n_views: int, n_pixels: int, n_detectors: int,
                     max_chunk: int = 1 << 21) -> scipy.sparse.csr_matrix:
    """Assemble ``A`` (``(n_views * n_detectors, n_pixels)``, float64, mm) from per-view footprints.

    Row ``v * n_detectors + k`` is bin ``k`` of view ``v``; ``footprints`` gives the trapezoid
    corners in bin units (bin ``k`` covers ``[k - 1/2, k + 1/2]``) and the height in mm.
    """
    chunk = max(1, max_chunk // max(n_pixels, 1))
    rows, cols, vals = [], [], []
    pixels = np.arange(n_pixels, dtype=np.int64)
    for start in range(0, n_views, chunk):
        views = np.arange(start, min(start + chunk, n_views))
        tau, height = footprints(views)
        first = np.floor(tau[..., 0] + 0.5).astype(np.int64)
        n_bins = int(np.ceil(float((tau[..., 3] - tau[..., 0]).max()))) + 2
        lower = _trapezoid_cdf(first - 0.5, tau)
        for offset in range(n_bins):
            bins = first + offset
            upper = _trapezoid_cdf(bins + 0.5, tau)
            value = height * (upper - lower)
            lower = upper
            keep = (value > 0) & (bins >= 0) & (bins < n_detectors)
            v_idx, p_idx = np.nonzero(keep)
            rows.append(views[v_idx] * n_detectors + bins[keep])
            cols.append(pixels[p_idx])
            vals.append(value[keep])
    shape = (n_views * n_detectors, n_pixels)
    coo = scipy.sparse.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape)
    return coo.tocsr()


def checked_geometry(image_shape: Sequence[int], angles_deg: Sequence[float] | np.ndarray,
                     pixel_size_mm: float) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Validate the geometry shared by every CT operator; returns ``(shape, angles)`` as hashable tuples."""
    shape = tuple(int(n) for n in image_shape)
    angles = tuple(float(a) for a in np.asarray(angles_deg, dtype=np.float64).ravel())
    if len(shape) != 2 or min(shape) < 1:
        raise InputError(None, f"image_shape must be (H, W) with H, W >= 1, got {tuple(image_shape)}")
    if not angles or not all(math.isfinite(a) for a in angles):
        raise InputError(None, "angles_deg must be a non-empty sequence of finite angles in degrees")
    if not pixel_size_mm > 0:
        raise InputError(None, f"pixel_size_mm must be > 0, got {pixel_size_mm}")
    return shape, angles


def to_torch_csr(matrix: scipy.sparse.csr_matrix, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    index = np.int32 if matrix.nnz < 2 ** 31 - 1 else np.int64
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        # torch 2.11 (CUDA build) warned here that invariant checks are off; the matrix comes from a
        # valid scipy CSR matrix, so there is nothing to check.
        warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
        return torch.sparse_csr_tensor(torch.from_numpy(matrix.indptr.astype(index, copy=False)),
                                       torch.from_numpy(matrix.indices.astype(index, copy=False)),
                                       torch.from_numpy(matrix.data).to(dtype), size=matrix.shape,
                                       check_invariants=False).to(device)


class SparseCT(LinearOperator):
    """A CT operator ``y = A x`` held as a sparse CSR matrix and its transpose, slice by slice.

    Shapes: ``x`` is ``(B, H, W)`` attenuation in 1/mm, ``y`` is ``(B, n_views, n_detectors)``
    line integrals (dimensionless). The matrices are kept in float64 (built once per geometry,
    cached) and cast to each ``(dtype, device)`` used, once per operator.
    """

    def __init__(self, image_shape: tuple[int, int], matrices: tuple[scipy.sparse.csr_matrix, scipy.sparse.csr_matrix],
                 range_shape: tuple[int, int], device: str | torch.device, dtype: torch.dtype) -> None:
        self.domain_shape = (int(image_shape[0]), int(image_shape[1]))
        self.range_shape = range_shape
        self._scipy = matrices
        self._torch: dict[tuple[torch.dtype, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}
        self.device = torch.device(device)
        self.dtype = dtype
        self._matrices(dtype, self.device)

    @property
    def matrix(self) -> scipy.sparse.csr_matrix:
        """``A`` as a scipy CSR matrix ``(n_views * n_detectors, H * W)``, float64, entries in mm."""
        return self._scipy[0]

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> SparseCT:
        """Move the matrices to ``device`` / ``dtype`` (in place; returns ``self``)."""
        self.device = torch.device(device) if device is not None else self.device
        self.dtype = dtype or self.dtype
        self._matrices(self.dtype, self.device)
        return self

    def _matrices(self, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        key = (dtype, device)
        if key not in self._torch:
            self._torch[key] = tuple(to_torch_csr(m, dtype, device) for m in self._scipy)  # type: ignore[assignment]
        return self._torch[key]

    @staticmethod
    def _apply(matrix: torch.Tensor, x: torch.Tensor, in_shape: tuple[int, ...],
               out_shape: tuple[int, ...]) -> torch.Tensor:
        if tuple(x.shape[1:]) != in_shape:
            raise ValueError(f"expected shape (B, {', '.join(map(str, in_shape))}), got {tuple(x.shape)}")
        columns = x.reshape(x.shape[0], -1).t().contiguous()
        return (matrix @ columns).t().reshape(x.shape[0], *out_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``y = A x``: ``(B, H, W)`` in 1/mm -> ``(B, n_views, n_detectors)`` line integrals."""
        return self._apply(self._matrices(x.dtype, x.device)[0], x, self.domain_shape, self.range_shape)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``A^T y``: ``(B, n_views, n_detectors)`` -> ``(B, H, W)``, exactly the transpose (mm)."""
        return self._apply(self._matrices(y.dtype, y.device)[1], y, self.range_shape, self.domain_shape)
