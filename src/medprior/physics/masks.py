"""Cartesian k-space sampling masks: 1D phase-encode line masks and 2D variable-density Poisson disc.

Every function returns a boolean **numpy** array (``True`` = sampled), centred like
:mod:`medprior.physics.mri` (DC at index ``n // 2``), and every random mask is reproducible from
its integer ``seed`` (a ``numpy.random.Generator``). 1D masks are ``(n,)`` over phase-encode lines
and are broadcast along the readout by :class:`~medprior.physics.mri.CartesianMRI`.

Acceleration ``R = total / sampled`` (:func:`acceleration`): over lines for a 1D mask, over
``(ky, kz)`` positions for a 2D mask. The fully sampled centre (auto-calibration lines, ACS) is
counted among the sampled lines, as in fastMRI.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medprior.errors import InputError


def acceleration(mask: np.ndarray) -> float:
    """``R = mask.size / mask.sum()`` (inf for an empty mask); a 1D mask counts lines."""
    mask = np.asarray(mask, dtype=bool)
    sampled = int(mask.sum())
    return float("inf") if sampled == 0 else mask.size / sampled


def _centre_lines(n: int, acceleration: float, center_fraction: float) -> tuple[np.ndarray, int]:
    """The ACS mask (``round(n * center_fraction)`` lines around ``n // 2``) and the total line budget."""
    if n < 1:
        raise InputError(None, f"n must be >= 1, got {n}")
    if not acceleration >= 1:
        raise InputError(None, f"acceleration must be >= 1, got {acceleration}")
    if not 0 <= center_fraction <= 1:
        raise InputError(None, f"center_fraction must be in [0, 1], got {center_fraction}")
    n_low = int(round(n * center_fraction))
    target = max(int(round(n / acceleration)), 1)
    if n_low > target:
        raise InputError(None, f"center_fraction {center_fraction} gives {n_low} centre lines, more than the "
                               f"{target} lines of acceleration {acceleration}")
    mask = np.zeros(n, dtype=bool)
    start = n // 2 - n_low // 2
    mask[start:start + n_low] = True
    return mask, target


def uniform_mask_1d(n: int, acceleration: float, center_fraction: float = 0.08) -> np.ndarray:
    """Equispaced phase-encode lines plus a fully sampled centre (fastMRI ``EquispacedMaskFunc``).

    The outer lines sit on the grid ``round(j * a)`` with fastMRI's adjusted spacing
    ``a = R (n_low - n) / (n_low R - n)``, so that ``n_low`` centre lines plus the grid give about
    ``n / R`` lines; the offset is 0 (deterministic).

    Args:
        n: number of phase-encode lines.
        acceleration: requested ``R >= 1``.
        center_fraction: fraction of lines fully sampled around ``n // 2``.

    Returns:
        ``(n,)`` bool.
    """
    mask, target = _centre_lines(n, acceleration, center_fraction)
    n_low = int(mask.sum())
    if target >= n:
        return np.ones(n, dtype=bool)
    spacing = acceleration * (n_low - n) / (n_low * acceleration - n) if n_low * acceleration != n else np.inf
    if np.isfinite(spacing) and spacing > 0:
        mask[np.round(np.arange(0, n - 0.5, spacing)).astype(int).clip(0, n - 1)] = True
    return mask


def random_mask_1d(n: int, acceleration: float, center_fraction: float = 0.08, seed: int = 0) -> np.ndarray:
    """Fully sampled centre plus outer lines drawn uniformly at random (fastMRI ``RandomMaskFunc``).

    Unlike fastMRI's Bernoulli draw, exactly ``round(n / R) - n_low`` outer lines are drawn without
    replacement, so the achieved acceleration is ``n / round(n / R)`` for every seed.

    Returns:
        ``(n,)`` bool.
    """
    mask, target = _centre_lines(n, acceleration, center_fraction)
    outside = np.flatnonzero(~mask)
    rng = np.random.default_rng(seed)
    mask[rng.choice(outside, size=target - int(mask.sum()), replace=False)] = True
    return mask


def gaussian_mask_1d(n: int, acceleration: float, center_fraction: float = 0.04, seed: int = 0,
                     sigma: float | None = None) -> np.ndarray:
    """Variable density: centre lines plus outer lines drawn with Gaussian weights around ``n // 2``.

    Outer line ``i`` is drawn (without replacement, exactly ``round(n / R) - n_low`` of them) with
    probability proportional to ``exp(-(i - n // 2)^2 / (2 sigma^2)) + 1e-12``.

    Args:
        sigma: standard deviation in lines (default ``n / 6``).

    Returns:
        ``(n,)`` bool.
    """
    mask, target = _centre_lines(n, acceleration, center_fraction)
    sigma = n / 6.0 if sigma is None else float(sigma)
    if not sigma > 0:
        raise InputError(None, f"sigma must be > 0, got {sigma}")
    outside = np.flatnonzero(~mask)
    weights = np.exp(-0.5 * ((outside - n // 2) / sigma) ** 2) + 1e-12
    rng = np.random.default_rng(seed)
    mask[rng.choice(outside, size=target - int(mask.sum()), replace=False, p=weights / weights.sum())] = True
    return mask


def poisson_disc_radius(shape: Sequence[int], slope: float) -> np.ndarray:
    """Local minimum distance (pixels) ``r = 1 + slope * rho``, ``rho`` the elliptical distance to
    ``(H // 2, W // 2)`` normalised to 1 at the middle of each edge."""
    h, w = (int(s) for s in shape)
    y = (np.arange(h) - h // 2) / max(h / 2, 1)
    z = (np.arange(w) - w // 2) / max(w / 2, 1)
    return 1.0 + slope * np.sqrt(y[:, None] ** 2 + z[None, :] ** 2)


def _bridson(radius: np.ndarray, rng: np.random.Generator, candidates: int) -> np.ndarray:
    """Bridson's Poisson-disc sampling on the integer grid with a spatially varying radius.

    A candidate ``c`` is accepted when every accepted sample ``q`` has ``|c - q| >= max(r(c), r(q))``.
    Candidates are drawn in the annulus ``[r(p), 2 r(p)]`` around an active sample ``p`` and rounded
    to the grid.
    """
    h, w = radius.shape
    taken = np.zeros((h, w), dtype=bool)
    reach = int(np.ceil(radius.max()))
    start = (int(rng.integers(h)), int(rng.integers(w)))
    taken[start] = True
    active = [start]
    while active:
        i = int(rng.integers(len(active)))
        py, pz = active[i]
        r = radius[py, pz]
        angle = rng.uniform(0.0, 2 * np.pi, candidates)
        dist = rng.uniform(r, 2 * r, candidates)
        cy = np.rint(py + dist * np.sin(angle)).astype(int)
        cz = np.rint(pz + dist * np.cos(angle)).astype(int)
        found = False
        for y, z in zip(cy.tolist(), cz.tolist()):
            if not (0 <= y < h and 0 <= z < w) or taken[y, z]:
                continue
            y0, y1, z0, z1 = max(y - reach, 0), min(y + reach + 1, h), max(z - reach, 0), min(z + reach + 1, w)
            qy, qz = np.nonzero(taken[y0:y1, z0:z1])
            if qy.size:
                d2 = (qy + (y0 - y)) ** 2 + (qz + (z0 - z)) ** 2
                limit = np.maximum(radius[qy + y0, qz + z0], radius[y, z])
                if bool((d2 < limit ** 2).any()):
                    continue
            taken[y, z] = True
            active.append((y, z))
            found = True
            break
        if not found:
            active[i] = active[-1]
            active.pop()
    return taken


def poisson_disc_mask(shape: Sequence[int], acceleration: float, seed: int = 0,
                      calibration: Sequence[int] = (24, 24), *, tolerance: float = 0.03,
                      candidates: int = 30, max_iterations: int = 30) -> np.ndarray:
    """2D variable-density Poisson-disc ``(ky, kz)`` mask with a fully sampled calibration block.

    Samples come from Bridson's algorithm ("Fast Poisson disk sampling in arbitrary dimensions",
    2007) on the integer grid with the local radius of :func:`poisson_disc_radius`
    (``1 + slope * rho`` pixels: dense at the centre, sparse at the edge, as in SigPy's ``poisson``);
    no two non-calibration samples are closer than the larger of their local radii. ``slope`` is found
    by bisection so that the final mask (calibration included) has ``|R_achieved / R - 1| <= tolerance``
    (the closest mask found is returned if ``max_iterations`` runs out). Every Bridson run restarts
    from ``seed``, so the mask depends only on the arguments.

    Args:
        shape: ``(H, W)`` phase-encode grid.
        acceleration: requested ``R > 1``.
        seed: integer seed.
        calibration: ``(cy, cz)`` fully sampled block around ``(H // 2, W // 2)``; ``(0, 0)`` for none.
        tolerance: relative acceleration tolerance of the bisection.
        candidates: Bridson's ``k`` (candidates per active sample).
        max_iterations: bisection steps.

    Returns:
        ``(H, W)`` bool.
    """
    if len(shape) != 2 or min(shape) < 1:
        raise InputError(None, f"shape must be (H, W) positive, got {tuple(shape)}")
    h, w = int(shape[0]), int(shape[1])
    cy, cz = (int(c) for c in calibration)
    if not (0 <= cy <= h and 0 <= cz <= w):
        raise InputError(None, f"calibration {tuple(calibration)} does not fit in {(h, w)}")
    if not acceleration > 1 or h * w / acceleration < cy * cz:
        raise InputError(None, f"acceleration must be > 1 and leave room for the {cy}x{cz} calibration block, "
                               f"got {acceleration}")
    calib = np.zeros((h, w), dtype=bool)
    calib[h // 2 - cy // 2:h // 2 - cy // 2 + cy, w // 2 - cz // 2:w // 2 - cz // 2 + cz] = True

    def run(slope: float) -> tuple[np.ndarray, float]:
        mask = _bridson(poisson_disc_radius((h, w), slope), np.random.default_rng(seed), candidates) | calib
        return mask, h * w / mask.sum()

    low, high = 0.0, 1.0
    best, best_r = run(high)
    while best_r < acceleration and high < 1e4:
        low, high = high, 2 * high
        best, best_r = run(high)
    for _ in range(max_iterations):
        if abs(best_r / acceleration - 1) <= tolerance:
            break
        slope = 0.5 * (low + high)
        mask, achieved = run(slope)
        if abs(achieved / acceleration - 1) < abs(best_r / acceleration - 1):
            best, best_r = mask, achieved
        low, high = (slope, high) if achieved < acceleration else (low, slope)
    return best
