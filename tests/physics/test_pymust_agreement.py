"""Agreement with pymust (the MUST toolbox in Python): its delay-and-sum matrix (``dasmtx``, on IQ from
``rf2iq``) against our ``delay_and_sum`` on the same RF, and its simulator (``simus``) against our
``simulate_rf``, on the L11-4v with the same plane waves.

What agrees and what does not:
- Beamforming: with the same aperture (f-number 1.5, boxcar: ``dasmtx`` has no taper) the two DAS
  images of the same IQ are the same image (envelope correlation 0.999999, required >= 0.999); our RF
  route (DAS of RF, Hilbert envelope on a grid of lambda / 8 in depth) agrees to 0.998 (required 0.99).
- Simulation: arrival times agree to the sample; the images of a few points agree in position and
  main lobe (correlation 0.96, required >= 0.9) but not in detail, because simus models the transmit field
  (element directivity and diffraction on transmit, a one-cycle excitation through the probe's
  response) where ours sends a unit-amplitude wavefront with a Gaussian pulse of the probe's bandwidth.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medprior.physics.beamform import delay_and_sum, envelope
from medprior.physics.image_grids import cartesian_grid
from medprior.physics.echoes import simulate_rf
from medprior.physics.probes import PROBES, SOUND_SPEED, plane_wave_delays

pymust = pytest.importorskip("pymust")

PROBE = PROBES["L11-4v"]
FS = 4 * PROBE.center_frequency
ANGLES = np.deg2rad([-6.0, 0.0, 6.0])
F_NUMBER = 1.5
N_AX = 1100
TARGETS = np.array([[0.0, 0.0, 10e-3], [-4e-3, 0.0, 14e-3], [3e-3, 0.0, 18e-3], [0.5e-3, 0.0, 22e-3]])


def _param():
    """The pymust description of our L11-4v (bandwidth in %, linear array, no attenuation)."""
    param = pymust.utils.Param()
    param.fc, param.fs, param.c = PROBE.center_frequency, FS, SOUND_SPEED
    param.pitch, param.width, param.kerf = PROBE.pitch, PROBE.element_width, PROBE.pitch - PROBE.element_width
    param.Nelements, param.bandwidth, param.radius = PROBE.n_elements, 100 * PROBE.bandwidth, np.inf
    param.fnumber, param.attenuation = F_NUMBER, 0.0
    return param


def _transmits():
    positions = PROBE.element_positions()
    delays = np.stack([plane_wave_delays(positions, angle) for angle in ANGLES])
    return positions, delays, dict(t0_delays=delays, tx_apodizations=np.ones_like(delays),
                                   initial_times=np.zeros(len(ANGLES)), sampling_frequency=FS)


def _pymust_das(iq, grid, delays):
    """pymust's compounded DAS IQ image: one ``dasmtx`` per transmit, applied to that transmit's IQ."""
    x, z, param = grid[..., 0], grid[..., 2], _param()
    image = 0
    for channels, tx_delays in zip(iq, delays):
        matrix = pymust.dasmtx(1j * np.array(channels.shape), x, z, tx_delays, param)
        image = image + (matrix @ channels.flatten(order="F")).reshape(x.shape, order="F")
    return image


def _our_iq_das(iq, positions, grid, transmit):
    return delay_and_sum(torch.from_numpy(iq), positions, grid, **transmit, f_number=F_NUMBER, window="boxcar",
                         demodulation_frequency=PROBE.center_frequency)


def _correlation(a, b):
    a, b = np.ravel(a), np.ravel(b)
    return np.corrcoef(a / a.max(), b / b.max())[0, 1]


@pytest.fixture(scope="module")
def our_rf():
    positions, _, transmit = _transmits()
    rng = np.random.default_rng(3)
    speckle = np.stack([rng.uniform(-6e-3, 6e-3, 60), np.zeros(60), rng.uniform(8e-3, 24e-3, 60)], 1)
    scatterers = np.concatenate([TARGETS, speckle])
    amplitudes = np.concatenate([np.full(len(TARGETS), 5.0), rng.standard_normal(60)])
    return simulate_rf(positions, scatterers, amplitudes, **transmit, center_frequency=PROBE.center_frequency,
                       n_ax=N_AX, bandwidth=PROBE.bandwidth, element_width=PROBE.element_width,
                       attenuation=0.0).numpy().astype(np.float64)


def test_our_das_and_pymust_dasmtx_give_the_same_image_of_the_same_iq(our_rf):
    positions, delays, transmit = _transmits()
    fine = cartesian_grid((-6e-3, 6e-3), (8e-3, 24e-3), PROBE.wavelength() / 8)  # for the RF route's envelope
    grid = fine[::2, ::2]
    iq = np.stack([pymust.rf2iq(channels, FS, PROBE.center_frequency) for channels in our_rf])
    theirs = np.abs(_pymust_das(iq, grid, delays))
    ours = _our_iq_das(iq, positions, grid, transmit).abs().numpy()
    assert _correlation(ours, theirs) >= 0.999
    rf_route = envelope(delay_and_sum(our_rf, positions, fine, **transmit, f_number=F_NUMBER, window="boxcar"), dim=0)
    assert _correlation(rf_route.numpy()[::2, ::2], theirs) >= 0.99


def test_our_simulator_and_pymust_simus_image_the_same_points(our_rf):
    positions, delays, transmit = _transmits()
    amplitudes = np.ones(len(TARGETS))
    theirs = np.zeros((len(ANGLES), N_AX, PROBE.n_elements))
    for tx, tx_delays in enumerate(delays):
        rf, _ = pymust.simus(TARGETS[:, 0], TARGETS[:, 2], amplitudes, tx_delays[None], _param())
        theirs[tx, :rf.shape[0]] = rf[:N_AX]
    ours = simulate_rf(positions, TARGETS, amplitudes, **transmit, center_frequency=PROBE.center_frequency,
                       n_ax=N_AX, bandwidth=PROBE.bandwidth, element_width=PROBE.element_width,
                       attenuation=0.0).numpy().astype(np.float64)
    centre = PROBE.n_elements // 2
    arrivals = [np.abs(pymust.rf2iq(rf[0], FS, PROBE.center_frequency))[:, centre].argmax() for rf in (ours, theirs)]
    assert abs(arrivals[0] - arrivals[1]) <= 1
    grid = cartesian_grid((-6e-3, 6e-3), (8e-3, 24e-3), PROBE.wavelength() / 4)
    images = [_our_iq_das(np.stack([pymust.rf2iq(c, FS, PROBE.center_frequency) for c in rf]), positions, grid,
                          transmit).abs().numpy() for rf in (ours, theirs)]
    assert _correlation(*images) >= 0.9
    for target in TARGETS:  # each point is brightest where it was put, in both images
        near = np.linalg.norm(grid - target, axis=-1) <= 1.5e-3
        for image in images:
            peak = np.argmax(np.where(near, image, 0))
            assert np.linalg.norm(grid.reshape(-1, 3)[peak] - target) <= PROBE.wavelength() / 2
