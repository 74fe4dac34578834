"""Echogenicity maps and the scatterers drawn from them, for the point-scatterer RF simulator.

An :class:`EchoMap` is the relative backscattered power (1 = soft tissue, 0 = anechoic blood or fluid)
on a 2D grid of the imaging plane: lateral ``x`` and depth ``z`` in metres (the probe frame of
:mod:`medprior.physics.probes`). :func:`draw_scatterers` turns it into a speckle-producing cloud,
about ``per_cell`` (default 10) scatterers per resolution cell, uniformly placed, each with a
zero-mean Gaussian amplitude scaled by ``sqrt(echogenicity)`` at its position, so that the expected
backscattered power is proportional to the map (fully developed speckle needs about 10 per cell).

- :func:`cyst_phantom`: the usual image-quality phantom: uniform tissue with anechoic cysts, a
  hyperechoic inclusion and bright point targets at known positions (for resolution and gCNR).
- :func:`apical_view`: a cardiac apical view for a phased array: a sector of tissue with the left
  ventricle (a blood-filled cavity), the myocardium around it, the brighter interventricular septum,
  the right ventricle beside it and the mitral valve leaflets at the base; dark outside the sector.
  A schematic, not a segmented anatomy: the shapes are ellipses and bands whose sizes vary with the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medprior.errors import ParameterError

BLOOD = 1e-3
"""Echogenicity of blood against soft tissue's 1 (-30 dB): cardiac cavities and cysts are dark."""


@dataclass(frozen=True)
class EchoMap:
    """Echogenicity ``values`` (n_z, n_x) >= 0 at pixel centres ``x`` (n_x,) and ``z`` (n_z,) m, ascending;
    ``regions``: named boolean masks (n_z, n_x) of the structures the metrics score (e.g. ``"ventricle"``)."""

    values: np.ndarray
    x: np.ndarray
    z: np.ndarray
    regions: dict[str, np.ndarray] = field(default_factory=dict)

    def region_at(self, name: str, points: np.ndarray) -> np.ndarray:
        """Whether each of ``points`` (..., 3) m lies in region ``name`` (nearest pixel; False outside)."""
        ix, iz, inside = self._pixels(points)
        out = np.zeros(points.shape[:-1], dtype=bool)
        out[inside] = self.regions[name][iz[inside], ix[inside]]
        return out

    def at(self, points: np.ndarray) -> np.ndarray:
        """Echogenicity at ``points`` (..., 3) m (nearest pixel; 0 outside the map)."""
        ix, iz, inside = self._pixels(points)
        out = np.zeros(points.shape[:-1])
        out[inside] = self.values[iz[inside], ix[inside]]
        return out

    def _pixels(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ix = np.rint((points[..., 0] - self.x[0]) / (self.x[1] - self.x[0])).astype(int)
        iz = np.rint((points[..., 2] - self.z[0]) / (self.z[1] - self.z[0])).astype(int)
        return ix, iz, (ix >= 0) & (ix < self.x.size) & (iz >= 0) & (iz < self.z.size)


def _grid(width: float, depth: tuple[float, float], spacing: float) -> tuple[np.ndarray, np.ndarray]:
    if not (width > 0 and 0 <= depth[0] < depth[1] and spacing > 0):
        raise ParameterError("depth", f"need width > 0, 0 <= depth[0] < depth[1] and spacing > 0; got {width}, "
                                      f"{depth}, {spacing}")
    x = np.arange(-width / 2, width / 2 + spacing / 2, spacing)
    z = np.arange(depth[0], depth[1] + spacing / 2, spacing)
    return x, z


def cyst_phantom(seed: int, *, width: float = 40e-3, depth: tuple[float, float] = (5e-3, 50e-3),
                 spacing: float = 0.1e-3) -> tuple[EchoMap, np.ndarray]:
    """Tissue (1) with 3 anechoic cysts (0, radius 2-4 mm), one hyperechoic disc (4, radius 3 mm) and 5
    point targets; returns the map and the point targets (5, 3) m. Cysts and disc do not overlap."""
    rng = np.random.default_rng(seed)
    x, z = _grid(width, depth, spacing)
    values = np.ones((z.size, x.size))
    zz, xx = np.meshgrid(z, x, indexing="ij")
    placed: list[tuple[float, float, float]] = []
    for radius, level in [(rng.uniform(2e-3, 4e-3), 0.0) for _ in range(3)] + [(3e-3, 4.0)]:
        for _ in range(200):
            cx = rng.uniform(x[0] + radius + 2e-3, x[-1] - radius - 2e-3)
            cz = rng.uniform(z[0] + radius + 5e-3, z[-1] - radius - 2e-3)
            if all(np.hypot(cx - px, cz - pz) > radius + pr + 1e-3 for px, pz, pr in placed):
                break
        placed.append((cx, cz, radius))
        values[(xx - cx) ** 2 + (zz - cz) ** 2 <= radius ** 2] = level
    targets = np.zeros((5, 3))
    targets[:, 0] = rng.uniform(x[0] + 2e-3, x[-1] - 2e-3, 5)
    targets[:, 2] = np.linspace(z[0] + 5e-3, z[-1] - 3e-3, 5)
    return EchoMap(values, x, z), targets


def apical_view(seed: int, *, depth: tuple[float, float] = (5e-3, 140e-3), sector_deg: float = 75.0,
                spacing: float = 0.3e-3, scale: float = 1.0) -> EchoMap:
    """A schematic apical view in a sector of ``sector_deg`` around the z axis (see the module docstring).

    Echogenicities: tissue 0.6, myocardium 1.0, septum 1.5, valve leaflets 3.0, blood 0.001 (-30 dB), outside 0.
    ``scale`` multiplies every anatomical length (1: an adult heart, the base of the left ventricle
    95-110 mm deep; 0.7 fits it in 85 mm). Regions: ``ventricle`` (the left ventricle's cavity),
    ``septum``, ``myocardium`` (the left ventricle's other walls) and ``sector``.
    """
    if not scale > 0:
        raise ParameterError("scale", f"must be > 0, got {scale}")
    rng = np.random.default_rng(seed)
    half_width = depth[1] * np.sin(np.deg2rad(sector_deg) / 2)
    x, z = _grid(2 * half_width, depth, spacing)
    zz, xx = np.meshgrid(z, x, indexing="ij")
    values = np.full(zz.shape, 0.6)
    # left ventricle: an ellipse along depth, apex near the probe, base deep; right ventricle to its left
    apex, base = scale * rng.uniform(25e-3, 35e-3), scale * rng.uniform(95e-3, 110e-3)
    centre_z, semi_z = (apex + base) / 2, (base - apex) / 2
    centre_x, semi_x = scale * rng.uniform(2e-3, 8e-3), scale * rng.uniform(18e-3, 24e-3)
    wall = scale * rng.uniform(8e-3, 11e-3)
    radius = np.sqrt(((xx - centre_x) / semi_x) ** 2 + ((zz - centre_z) / semi_z) ** 2)
    outer = np.sqrt(((xx - centre_x) / (semi_x + wall)) ** 2 + ((zz - centre_z) / (semi_z + wall)) ** 2)
    values[outer <= 1] = 1.0
    septum_x = centre_x - semi_x - wall / 2
    septum = (np.abs(xx - septum_x) <= wall / 2) & (outer <= 1.15)
    values[septum] = 1.5
    rv = np.sqrt(((xx - (septum_x - wall / 2 - scale * 14e-3)) / (scale * 13e-3)) ** 2
                 + ((zz - centre_z - scale * 8e-3) / (semi_z * 0.8)) ** 2)
    values[rv <= 1] = BLOOD
    values[radius <= 1] = BLOOD
    # mitral leaflets: two short bright bands at the base, opening into the ventricle
    for side in (-1, 1):
        tip_x = centre_x + side * semi_x * 0.5
        along = np.clip((xx - centre_x) * side / (semi_x * 0.5), 0, 1)
        leaflet_z = base - scale * (2e-3 + 10e-3 * (1 - along))
        values[(np.abs(zz - leaflet_z) <= scale * 0.8e-3) & (np.abs(xx - tip_x) <= semi_x * 0.5)] = 3.0
    r, angle = np.hypot(xx, zz), np.arctan2(xx, zz)
    sector = (np.abs(angle) <= np.deg2rad(sector_deg) / 2) & (r <= depth[1]) & (r >= depth[0])
    values[~sector] = 0.0
    regions = {"ventricle": (radius <= 1) & (values == BLOOD) & sector, "septum": septum & (values == 1.5) & sector,
               "myocardium": (outer <= 1) & (radius > 1) & (values == 1.0) & sector, "sector": sector}
    return EchoMap(values, x, z, regions)


def resolution_cell_area(wavelength: float, bandwidth: float, f_number: float = 1.5) -> float:
    """Area (m^2) of one resolution cell: lateral ``wavelength * f_number`` times axial
    ``wavelength / (2 bandwidth)`` (the -6 dB pulse length over two, for the round trip)."""
    return wavelength * f_number * wavelength / (2 * bandwidth)


def draw_scatterers(echo_map: EchoMap, *, cell_area: float, per_cell: float = 10.0,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scatterers (N, 3) m and amplitudes (N,) over the map's extent (see the module docstring)."""
    if not (cell_area > 0 and per_cell > 0):
        raise ParameterError("per_cell", f"need cell_area > 0 and per_cell > 0, got {cell_area}, {per_cell}")
    rng = np.random.default_rng(seed)
    extent = (echo_map.x[-1] - echo_map.x[0]) * (echo_map.z[-1] - echo_map.z[0])
    count = int(round(extent / cell_area * per_cell))
    points = np.zeros((count, 3))
    points[:, 0] = rng.uniform(echo_map.x[0], echo_map.x[-1], count)
    points[:, 2] = rng.uniform(echo_map.z[0], echo_map.z[-1], count)
    amplitudes = rng.standard_normal(count) * np.sqrt(echo_map.at(points))
    keep = amplitudes != 0
    return points[keep], amplitudes[keep]
