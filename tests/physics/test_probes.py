"""Probe presets and transmit delays against hand-computed geometry."""

from __future__ import annotations

import numpy as np
import pytest

from medprior.physics.probes import (PROBES, SOUND_SPEED, Probe, diverging_wave_delays, plane_wave_delays,
                                     virtual_source)


def test_presets_have_the_published_geometry():
    linear, phased = PROBES["L11-4v"], PROBES["P4-2v"]
    assert (linear.n_elements, linear.pitch, linear.kind) == (128, 0.3e-3, "linear")
    assert (phased.n_elements, phased.kind) == (64, "phased") and phased.center_frequency == 2.7e6
    positions = linear.element_positions()
    assert positions.shape == (128, 3) and np.allclose(positions[:, 1:], 0)
    assert np.isclose(positions[0, 0], -127 * 0.15e-3) and np.isclose(positions[-1, 0], 127 * 0.15e-3)
    np.testing.assert_allclose(np.diff(positions[:, 0]), 0.3e-3)
    assert np.isclose(linear.aperture, 38.1e-3)
    assert np.isclose(phased.wavelength(), 1540 / 2.7e6)


def test_a_plane_wave_arrives_on_its_wavefront():
    positions = PROBES["L11-4v"].element_positions()
    angle = np.deg2rad(10)
    delays = plane_wave_delays(positions, angle)
    assert delays.min() == 0 and np.argmin(delays) == 0  # steered towards +x: the leftmost element fires first
    np.testing.assert_allclose(delays[-1], PROBES["L11-4v"].aperture * np.sin(angle) / SOUND_SPEED)
    # every element's firing time plus its travel to a point on the steered wavefront is the same
    direction = np.array([np.sin(angle), 0, np.cos(angle)])
    point = np.array([0.0, 0.0, 0.03])
    arrival = delays + (point - positions) @ direction / SOUND_SPEED
    np.testing.assert_allclose(arrival, arrival[0], atol=1e-15)
    np.testing.assert_allclose(plane_wave_delays(positions, 0.0), 0)


def test_a_diverging_wave_looks_like_a_point_source_behind_the_array():
    probe = PROBES["P4-2v"]
    positions = probe.element_positions()
    source = virtual_source(probe, 0.0, np.deg2rad(90))
    np.testing.assert_allclose(source, [0, 0, -probe.aperture / 2])  # 90 degrees: as deep as half the aperture
    delays = diverging_wave_delays(positions, source)
    # the centre fires first, the edges last, by the extra path sqrt(2) r - r of a 45-degree ray
    assert np.argmin(delays) in (31, 32) and np.isclose(delays.max(), delays[0]) and np.isclose(delays[0], delays[-1])
    distances = np.linalg.norm(positions - source, axis=1)
    np.testing.assert_allclose(delays, (distances - distances.min()) / SOUND_SPEED)
    steered = virtual_source(probe, np.deg2rad(20))
    assert steered[0] < 0 and steered[2] < 0  # steering towards +x puts the source at -x
    with pytest.raises(ValueError, match="behind the array"):
        diverging_wave_delays(positions, np.array([0.0, 0.0, 0.01]))


def test_bad_probes_are_refused():
    with pytest.raises(ValueError, match="element_width"):
        Probe("bad", 8, 0.3e-3, 0.4e-3, 5e6, 0.6, "linear")
    with pytest.raises(ValueError, match="kind"):
        Probe("bad", 8, 0.3e-3, 0.2e-3, 5e6, 0.6, "convex")
