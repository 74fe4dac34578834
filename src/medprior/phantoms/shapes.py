"""Building blocks of the analytic phantoms: grids, smooth random fields, tubes and branching trees.

Every phantom is painted in *anatomy coordinates*: millimetres of a reference patient, with
``x`` towards the patient's right, ``y`` anterior and ``z`` superior (RAS+). A phantom fills its
field of view whatever the grid, so anatomy coordinates are world coordinates scaled by
``reference_fov / fov`` per axis (equal to world millimetres at the default grid).

Grids are stored as scanners store them (LPS-like): ``i`` runs towards the patient's left,
``j`` posterior, ``k`` superior, so the affine is ``diag(-sx, -sy, sz)`` plus a translation that
puts the grid centre at a chosen world point, and ``Volume.orientation`` reads ``"LPS"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from medprior.errors import ParameterError


def check_grid(shape: Sequence[int], spacing: Sequence[float], name: str = "shape") -> tuple:
    """Validate a grid size (3 ints >= 4) and spacing (3 positive mm); return them as tuples."""
    if len(shape) != 3 or any(int(n) != n or n < 4 for n in shape):
        raise ParameterError(name, f"must be 3 integers >= 4, got {tuple(shape)}")
    if len(spacing) != 3 or any(not np.isfinite(s) or s <= 0 for s in spacing):
        raise ParameterError("spacing", f"must be 3 positive numbers in mm, got {tuple(spacing)}")
    return tuple(int(n) for n in shape), tuple(float(s) for s in spacing)


def lps_affine(shape: Sequence[int], spacing: Sequence[float],
               centre_mm: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """``(4, 4)`` RAS+ affine of an LPS-stored grid whose centre voxel position is ``centre_mm``."""
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    mid = (np.asarray(shape, dtype=np.float64) - 1.0) / 2.0
    affine[:3, 3] = np.asarray(centre_mm, dtype=np.float64) - affine[:3, :3] @ mid
    return affine


def axis_coordinates(affine: np.ndarray, shape: Sequence[int]) -> tuple[np.ndarray, ...]:
    """World coordinates (mm, float64) of the voxel centres along each axis of an axis-aligned grid."""
    return tuple(affine[a, 3] + affine[a, a] * np.arange(shape[a]) for a in range(3))


@dataclass(frozen=True)
class Grid:
    """Voxel-centre coordinates of an axis-aligned grid in anatomy mm, one 1D array per axis.

    Args:
        x, y, z: ``(I,)``, ``(J,)``, ``(K,)`` float32 coordinates (monotonic, either direction).
        voxel: voxel size in anatomy mm along each axis.
    """

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    voxel: tuple[float, float, float]

    @classmethod
    def from_world(cls, affine: np.ndarray, shape: Sequence[int], scale: Sequence[float]) -> Grid:
        """Grid of ``affine``/``shape`` with world mm multiplied by ``scale`` per axis."""
        axes = axis_coordinates(affine, shape)
        x, y, z = (np.asarray(a * s, dtype=np.float32) for a, s in zip(axes, scale))
        voxel = tuple(float(abs(affine[a, a]) * scale[a]) for a in range(3))
        return cls(x, y, z, voxel)  # type: ignore[arg-type]

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.x.size, self.y.size, self.z.size)

    def box(self, lo: Sequence[float], hi: Sequence[float]):
        """Slices of the voxels inside ``[lo, hi]`` (anatomy mm) and their broadcastable coordinates.

        Returns ``(slices, X, Y, Z)`` with ``X`` of shape ``(n, 1, 1)``, ``Y`` ``(1, m, 1)``,
        ``Z`` ``(1, 1, p)``; ``slices`` is ``None`` when the box misses the grid.
        """
        sl = []
        for axis, a, b in zip((self.x, self.y, self.z), lo, hi):
            idx = np.flatnonzero((axis >= a) & (axis <= b))
            if idx.size == 0:
                return None, None, None, None
            sl.append(slice(int(idx[0]), int(idx[-1]) + 1))
        sl = tuple(sl)
        return (sl, self.x[sl[0], None, None], self.y[None, sl[1], None], self.z[None, None, sl[2]])


def smooth_random_field(rng: np.random.Generator, shape: Sequence[int],
                        correlation_vox: float | Sequence[float]) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field of shape ``shape`` (float32).

    White noise on a lattice of pitch ``correlation_vox`` (per axis, or one number) is
    interpolated with Gaussian kernels (separable matrix products, so a 256x256x128 field costs a
    few tens of ms); the result has a correlation length of about ``correlation_vox`` voxels.
    """
    steps = np.broadcast_to(np.maximum(np.asarray(correlation_vox, dtype=np.float64), 1.0), (3,))
    coarse_n = [int(np.ceil(n / step)) + 4 for n, step in zip(shape, steps)]
    field = rng.standard_normal(coarse_n).astype(np.float32)
    for axis, (n, m, step) in enumerate(zip(shape, coarse_n, steps)):
        fine = np.arange(n, dtype=np.float32)
        nodes = (np.arange(m, dtype=np.float32) - 2.0) * step
        weights = np.exp(-0.5 * ((fine[:, None] - nodes[None, :]) / (0.8 * step)) ** 2)
        field = np.moveaxis(np.tensordot(weights, field, axes=([1], [axis])), 0, axis)
    field -= field.mean()
    field /= field.std() + 1e-12
    return np.ascontiguousarray(field, dtype=np.float32)


def ellipsoid_radius(X, Y, Z, centre: Sequence[float], semi: Sequence[float], angle_deg: float = 0.0):
    """Normalised radius of an ellipsoid rotated by ``angle_deg`` about z (< 1 inside)."""
    dx, dy, dz = X - centre[0], Y - centre[1], Z - centre[2]
    if angle_deg:
        c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
        dx, dy = c * dx + s * dy, -s * dx + c * dy
    return np.sqrt((dx / semi[0]) ** 2 + (dy / semi[1]) ** 2 + (dz / semi[2]) ** 2)


def paint_tubes(grid: Grid, segments: np.ndarray, layers: Sequence[tuple[np.ndarray, float]],
                mask: np.ndarray | None = None) -> None:
    """Paint tapered tubes with partial-volume edges into one or more volumes, in place.

    Each voxel is blended towards the layer's value by the fraction of it the tube covers
    (a linear ramp one voxel wide across the wall), only where ``mask`` is true if given.

    Args:
        grid: the grid of the volumes.
        segments: ``(n, 8)`` rows ``x0, y0, z0, x1, y1, z1, r0, r1`` in anatomy mm; the radius
            varies linearly from ``r0`` at the first end to ``r1`` at the second.
        layers: ``(volume, value)`` pairs; each volume has the grid's shape.
        mask: optional boolean volume restricting where the tubes are painted.
    """
    edge = float(np.mean(grid.voxel))
    for x0, y0, z0, x1, y1, z1, r0, r1 in np.asarray(segments, dtype=np.float64).reshape(-1, 8):
        p0, p1 = np.array([x0, y0, z0]), np.array([x1, y1, z1])
        pad = max(r0, r1) + edge
        sl, X, Y, Z = grid.box(np.minimum(p0, p1) - pad, np.maximum(p0, p1) + pad)
        if sl is None:
            continue
        d = p1 - p0
        length2 = max(float(d @ d), 1e-9)
        t = np.clip(((X - x0) * d[0] + (Y - y0) * d[1] + (Z - z0) * d[2]) / length2, 0.0, 1.0)
        dist = np.sqrt((X - x0 - t * d[0]) ** 2 + (Y - y0 - t * d[1]) ** 2 + (Z - z0 - t * d[2]) ** 2)
        w = np.clip((r0 + t * (r1 - r0) - dist) / edge + 0.5, 0.0, 1.0).astype(np.float32)
        if mask is not None:
            w *= mask[sl]
        for volume, value in layers:
            view = volume[sl]
            view += w * (np.float32(value) - view)


def branching_tree(rng: np.random.Generator, root: Sequence[float], direction: Sequence[float],
                   radius: float, length: float, min_radius: float,
                   inside: Callable[[np.ndarray], bool], spread_deg: float = 32.0,
                   taper: float = 0.74, shrink: float = 0.82, max_depth: int = 9) -> np.ndarray:
    """Random bifurcating tree of tapering segments, grown while its tips stay ``inside``.

    Each segment continues its parent's direction with a random wiggle, then splits in two
    children rotated by about ``spread_deg`` either side, radius times ``taper`` and length
    times ``shrink``; growth stops below ``min_radius`` or after ``max_depth`` generations.

    Returns:
        ``(n, 8)`` segments for :func:`tube_weights` (anatomy mm).
    """
    segments = []
    tips = [(np.asarray(root, float), _unit(np.asarray(direction, float)), radius, length)]
    for _ in range(max_depth):
        grown = []
        for p, d, r, L in tips:
            q = None
            for attempt in range(4):                     # wiggle more when the tip leaves the organ
                d_try = _unit(d + (0.25 + 0.35 * attempt) * rng.standard_normal(3))
                for frac in (1.0, 0.5):
                    if inside(p + frac * L * d_try):
                        q, d = p + frac * L * d_try, d_try
                        break
                if q is not None:
                    break
            if q is None:
                continue
            segments.append([*p, *q, r, r * 0.9])
            if r * taper < min_radius:
                continue
            axis = _unit(np.cross(d, rng.standard_normal(3)))
            angle = np.radians(spread_deg) * (0.7 + 0.6 * rng.random())
            for sign in (1.0, -1.0):
                child = d * np.cos(angle) + sign * np.cross(axis, d) * np.sin(angle)
                grown.append((q, child, r * taper, L * shrink))
        tips = grown
        if not tips:
            break
    return np.asarray(segments, dtype=np.float64).reshape(-1, 8)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) + 1e-12)
