"""Ultrasound image grids: pixel centres (m) of a Cartesian image or of a sector, on which
:mod:`medprior.physics.beamform` beamforms. NumPy only, so that describing a scan (its grid, as the
CLI's defaults do) needs no torch."""

from __future__ import annotations

import numpy as np


def cartesian_grid(x_range: tuple[float, float], z_range: tuple[float, float], spacing: float) -> np.ndarray:
    """Pixel centres ``(n_z, n_x, 3)`` m of a Cartesian grid over ``x_range`` x ``z_range`` (m, inclusive
    starts) at ``spacing`` (m), y = 0; depth ``z`` along the first axis."""
    xs = np.arange(x_range[0], x_range[1] + spacing / 2, spacing)
    zs = np.arange(z_range[0], z_range[1] + spacing / 2, spacing)
    grid = np.zeros((zs.size, xs.size, 3))
    grid[..., 0], grid[..., 2] = xs[None, :], zs[:, None]
    return grid


def polar_axes(angle_range: tuple[float, float], depth_range: tuple[float, float], n_angles: int,
               depth_spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """The angles ``(n_theta,)`` rad (``n_angles`` evenly from ``angle_range[0]`` to ``angle_range[1]``) and
    radii ``(n_r,)`` m (from ``depth_range[0]`` by ``depth_spacing``, up to ``depth_range[1]`` inclusive)
    of :func:`polar_grid`."""
    if n_angles < 2 or not angle_range[1] > angle_range[0] or not depth_spacing > 0:
        raise ValueError(f"a polar grid needs n_angles >= 2, an increasing angle range and depth_spacing > 0, got "
                         f"{n_angles}, {angle_range}, {depth_spacing}")
    radii = np.arange(depth_range[0], depth_range[1] + depth_spacing / 2, depth_spacing)
    return np.linspace(angle_range[0], angle_range[1], n_angles), radii


def polar_grid(angle_range: tuple[float, float], depth_range: tuple[float, float], n_angles: int,
               depth_spacing: float, origin: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """Pixel centres ``(n_r, n_theta, 3)`` m of a sector (the phased array's image): radius ``r`` along the
    first axis, angle ``theta`` (rad, from the z axis towards +x) along the second, ``x = r sin(theta)``,
    ``z = r cos(theta)`` from ``origin`` (m), y = 0. Axes as :func:`polar_axes`; beamform on it with
    :func:`medprior.physics.beamform.delay_and_sum`, then
    :func:`medprior.physics.beamform.scan_convert` the image to a Cartesian one."""
    angles, radii = polar_axes(angle_range, depth_range, n_angles, depth_spacing)
    grid = np.zeros((radii.size, angles.size, 3))
    grid[..., 0] = radii[:, None] * np.sin(angles)[None, :]
    grid[..., 2] = radii[:, None] * np.cos(angles)[None, :]
    return grid + np.asarray(origin, dtype=np.float64)
