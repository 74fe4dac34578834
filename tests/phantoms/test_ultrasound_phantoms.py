"""Echogenicity maps and scatterers: densities, powers and anatomy where they were put."""

from __future__ import annotations

import numpy as np
import pytest

from medprior.errors import ParameterError
from medprior.phantoms.ultrasound import (BLOOD, EchoMap, apical_view, cyst_phantom, draw_scatterers,
                                          resolution_cell_area)
from medprior.physics.probes import PROBES


def test_scatterers_follow_the_map_in_density_and_power():
    x, z = np.linspace(-10e-3, 10e-3, 201), np.linspace(0, 20e-3, 201)
    values = np.ones((201, 201))
    values[:, 100:] = 4.0  # right half four times brighter
    values[:50] = 0.0  # an anechoic band near the probe
    probe = PROBES["L11-4v"]
    cell = resolution_cell_area(probe.wavelength(), probe.bandwidth)
    points, amplitudes = draw_scatterers(EchoMap(values, x, z), cell_area=cell, per_cell=10, seed=1)
    drawn = len(points) / (1 - 50 / 200)  # scatterers in the anechoic band carry no amplitude and are dropped
    assert drawn == pytest.approx(20e-3 * 20e-3 / cell * 10, rel=0.03)
    assert (points[:, 2] >= z[50] - 0.05e-3).all()
    left = amplitudes[points[:, 0] < -0.5e-3] ** 2
    right = amplitudes[points[:, 0] > 0.5e-3] ** 2
    assert left.mean() == pytest.approx(1.0, rel=0.05) and right.mean() == pytest.approx(4.0, rel=0.05)
    assert abs(amplitudes.mean()) < 0.05 * amplitudes.std()  # zero mean: speckle, not a DC offset
    with pytest.raises(ParameterError, match="per_cell"):
        draw_scatterers(EchoMap(values, x, z), cell_area=cell, per_cell=0)


def test_the_cyst_phantom_has_its_cysts_and_targets():
    echo, targets = cyst_phantom(3)
    assert echo.values.shape == (echo.z.size, echo.x.size)
    assert set(np.unique(echo.values)) == {0.0, 1.0, 4.0}
    anechoic = (echo.values == 0).sum() * (echo.x[1] - echo.x[0]) ** 2
    assert 3 * np.pi * 2e-3 ** 2 * 0.9 <= anechoic <= 3 * np.pi * 4e-3 ** 2 * 1.1  # three cysts of radius 2-4 mm
    assert targets.shape == (5, 3) and (np.diff(targets[:, 2]) > 0).all()
    assert (np.abs(targets[:, 0]) <= 18e-3).all() and (targets[:, 1] == 0).all()
    assert np.array_equal(cyst_phantom(3)[0].values, echo.values)  # deterministic in the seed


def test_the_apical_view_has_a_dark_ventricle_inside_a_bright_wall_in_a_sector():
    echo = apical_view(0)
    zz, xx = np.meshgrid(echo.z, echo.x, indexing="ij")
    angle = np.degrees(np.arctan2(xx, zz))
    assert (echo.values[np.abs(angle) > 38] == 0).all()  # outside the 75-degree sector
    on_axis = echo.values[:, np.argmin(np.abs(echo.x - 5e-3))]
    depths = echo.z[on_axis == BLOOD]  # blood (0 is outside the sector)
    assert depths.size and 25e-3 <= depths.min() <= 45e-3 and 80e-3 <= depths.max() <= 110e-3  # the LV cavity
    assert (echo.values == 1.5).any() and (echo.values == 3.0).any()  # septum and valve leaflets
    assert not np.array_equal(apical_view(1).values, echo.values)
