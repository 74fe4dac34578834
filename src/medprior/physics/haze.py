"""Haze: the clutter echoes that fill cardiac cavities, as extra point scatterers for the RF simulator.

Haze in transthoracic echocardiography comes mostly from the chest wall: waves that bounce between
its layers (and between them and the probe face) before or after reaching the heart return late,
so they appear deeper than the structures that made them, where the heart's cavities should be
dark. Two models, both linear in the scatterers they return, so a haze-only RF acquisition can be
simulated (:func:`medprior.physics.echoes.simulate_rf`) and added to the tissue's at any strength
``gamma``: ``y = x + gamma h`` holds exactly for the channel data and for the beamformed RF.

- :func:`multipath_scatterers`, after Byram and Shu's pseudo-nonlinear model of reverberation
  clutter (Byram & Shu 2013, "Pseudononlinear ultrasound simulation approach for reverberation
  clutter"; Byram et al. 2015, "A model and regularization scheme for ultrasonic beamforming clutter
  reduction"): each near-field scatterer gets delayed copies, its echo after an extra round trip
  ``d`` drawn from an exponential distribution (short extra paths are the likely ones, so the clutter
  is strongest near the near field and decays with depth), re-emitted from beside the original
  (lateral spread) with a random phase (the sign of a Gaussian amplitude) and the reflection loss
  of each extra bounce. The copies lie where the echo's delay puts them, whatever tissue or blood is
  there, so they fill the cavities.
- :func:`reverberation_scatterers`: mirror sources of layered interfaces parallel to the probe face
  (skin, fat, muscle, ribs' fascia at depths ``d_k``): an echo that bounces ``n`` times between the
  face and interface ``k`` arrives as from depth ``n d_k`` with amplitude ``R_k^n``; rough
  interfaces jitter the mirror sources in depth and laterally, so every order is a band of speckle.

Positions are metres in the probe frame (:mod:`medprior.physics.probes`), amplitudes in the
units of the tissue scatterers' (:func:`medprior.phantoms.ultrasound.draw_scatterers`).
"""

from __future__ import annotations

import numpy as np

from medprior.errors import ParameterError


def multipath_scatterers(scatterers: np.ndarray, amplitudes: np.ndarray, *, rng: np.random.Generator,
                         near_field: float = 15e-3, mean_extra_path: float = 50e-3, copies: int = 2,
                         lateral_spread: float = 2e-3, bounce_loss: float = 0.5,
                         max_depth: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Delayed copies of the near-field scatterers' echoes (see the module docstring).

    Args:
        scatterers, amplitudes: the tissue's scatterers (N, 3) m and reflectivities (N,).
        rng: the random generator (the haze of a frame is fixed by its seed).
        near_field: scatterers shallower than this (m) make clutter.
        mean_extra_path: mean of the exponentially distributed extra round-trip path (m); a copy
            appears ``extra / 2`` further from the probe's centre, along the line through its source.
        copies: copies per near-field scatterer.
        lateral_spread: standard deviation (m) of a copy's lateral offset.
        bounce_loss: amplitude factor per ``mean_extra_path`` of extra path (``bounce_loss ** (extra /
            mean_extra_path)``), the loss of the extra reflections.
        max_depth: drop copies deeper than this (m; default: keep all).

    Returns:
        Haze scatterers (M, 3) m and amplitudes (M,).
    """
    if not (near_field > 0 and mean_extra_path > 0 and copies >= 1 and lateral_spread >= 0 and 0 < bounce_loss <= 1):
        raise ParameterError("haze", "multipath clutter needs near_field > 0, mean_extra_path > 0, copies >= 1, "
                                     "lateral_spread >= 0 and bounce_loss in (0, 1]")
    near = scatterers[:, 2] < near_field
    sources = np.repeat(scatterers[near], copies, axis=0)
    strength = np.repeat(np.abs(amplitudes[near]), copies)
    extra = rng.exponential(mean_extra_path, sources.shape[0])
    radius = np.linalg.norm(sources, axis=1, keepdims=True).clip(min=1e-12)
    points = sources * (radius + extra[:, None] / 2) / radius
    points[:, 0] += rng.normal(0.0, lateral_spread, sources.shape[0]) if lateral_spread > 0 else 0.0
    weights = strength * rng.standard_normal(sources.shape[0]) * bounce_loss ** (extra / mean_extra_path)
    keep = np.ones(points.shape[0], dtype=bool) if max_depth is None else points[:, 2] <= max_depth
    return points[keep], weights[keep]


def reverberation_scatterers(layer_depths: np.ndarray, reflectivities: np.ndarray, *, rng: np.random.Generator,
                             width: float, max_depth: float, density: float = 2e3, depth_jitter: float = 0.3e-3,
                             lateral_jitter: float = 1e-3, min_amplitude: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Mirror sources of chest-wall layers (see the module docstring).

    Args:
        layer_depths: depths ``d_k`` (K,) m of the interfaces, parallel to the probe face.
        reflectivities: their amplitude reflection coefficients ``R_k`` (K,) in (0, 1).
        rng: the random generator.
        width: lateral extent (m) of the bands, centred on x = 0.
        max_depth: the deepest mirror source (m); orders ``n >= 2`` up to it.
        density: mirror sources per metre of band (per order).
        depth_jitter: depth standard deviation (m) of order 2, growing as ``sqrt(n - 1)`` (the roughness
            met on every bounce).
        lateral_jitter: lateral standard deviation (m) of each source.
        min_amplitude: orders whose ``R_k^n`` falls below this are left out.

    Returns:
        Haze scatterers (M, 3) m and amplitudes (M,) (Gaussian, standard deviation ``R_k^n``).
    """
    depths, reflections = np.asarray(layer_depths, float), np.asarray(reflectivities, float)
    if depths.shape != reflections.shape or depths.ndim != 1 or not np.all(depths > 0):
        raise ParameterError("haze", "reverberation needs positive layer depths and one reflectivity per layer")
    if not (np.all((reflections > 0) & (reflections < 1)) and width > 0 and max_depth > 0 and density > 0):
        raise ParameterError("haze", "reverberation needs reflectivities in (0, 1), width > 0, max_depth > 0 and "
                                     "density > 0")
    count = max(1, int(round(width * density)))
    points, weights = [], []
    for depth, reflection in zip(depths, reflections):
        order = 2
        while order * depth <= max_depth and reflection ** order >= min_amplitude:
            band = np.zeros((count, 3))
            band[:, 0] = rng.uniform(-width / 2, width / 2, count) + rng.normal(0.0, lateral_jitter, count)
            band[:, 2] = order * depth + rng.normal(0.0, depth_jitter * np.sqrt(order - 1), count)
            points.append(band)
            weights.append(reflection ** order * rng.standard_normal(count))
            order += 1
    if not points:
        return np.zeros((0, 3)), np.zeros(0)
    return np.concatenate(points), np.concatenate(weights)
