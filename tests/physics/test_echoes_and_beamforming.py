"""Point-scatterer RF and delay-and-sum against hand-computed times and positions."""

from __future__ import annotations

import numpy as np
import torch

from medprior.physics.beamform import (cartesian_grid, compand, delay_and_sum, demodulate, envelope, expand,
                                       log_compress)
from medprior.physics.echoes import pulse_sigma, simulate_rf
from medprior.physics.probes import PROBES, SOUND_SPEED, diverging_wave_delays, plane_wave_delays, virtual_source

FS = 4 * 5.2083e6  # 4 samples per period at the L11-4v's centre frequency


def _plane_waves(angles_deg):
    probe = PROBES["L11-4v"]
    positions = probe.element_positions()
    delays = np.stack([plane_wave_delays(positions, np.deg2rad(a)) for a in angles_deg])
    return probe, positions, delays, np.ones_like(delays), np.zeros(len(angles_deg))


def test_an_echo_arrives_at_the_hand_computed_time_on_every_element():
    probe, positions, delays, apodizations, starts = _plane_waves([0.0, 12.0])
    scatterer = np.array([[3e-3, 0.0, 20e-3]])
    rf = simulate_rf(positions, scatterer, np.ones(1), t0_delays=delays, tx_apodizations=apodizations,
                     initial_times=starts, sampling_frequency=FS, center_frequency=probe.center_frequency, n_ax=1600,
                     bandwidth=probe.bandwidth)
    assert rf.shape == (2, 1600, 128) and rf.dtype == torch.float32
    for tx, angle in enumerate(np.deg2rad([0.0, 12.0])):
        # the plane wave passes the scatterer at (x s + z c) / c after the first element fired
        t_tx = (scatterer[0, 0] * np.sin(angle) + scatterer[0, 2] * np.cos(angle)) / SOUND_SPEED
        t_tx -= min(0.0, positions[:, 0].min() * np.sin(angle)) / SOUND_SPEED
        expected = (t_tx + np.linalg.norm(positions - scatterer[0], axis=1) / SOUND_SPEED) * FS
        peaks = envelope(rf[tx], dim=0).argmax(dim=0).numpy()
        assert np.abs(peaks - expected).max() <= 1.0  # within one sample on every element


def test_the_beamformed_point_lies_where_it_was_put():
    probe, positions, delays, apodizations, starts = _plane_waves([-8.0, 0.0, 8.0])
    target = np.array([-2e-3, 0.0, 25e-3])
    rf = simulate_rf(positions, target[None], np.ones(1), t0_delays=delays, tx_apodizations=apodizations,
                     initial_times=starts, sampling_frequency=FS, center_frequency=probe.center_frequency, n_ax=1800,
                     bandwidth=probe.bandwidth, element_width=probe.element_width)
    wavelength = probe.wavelength()
    grid = cartesian_grid((-5e-3, 1e-3), (22e-3, 28e-3), wavelength / 8)
    image = envelope(delay_and_sum(rf, positions, grid, t0_delays=delays, tx_apodizations=apodizations,
                                   initial_times=starts, sampling_frequency=FS), dim=0)
    peak = np.unravel_index(int(image.argmax()), image.shape)
    assert np.linalg.norm(grid[peak] - target) <= wavelength / 4


def test_a_diverging_wave_images_a_point_too():
    probe = PROBES["P4-2v"]
    positions = probe.element_positions()
    delays = diverging_wave_delays(positions, virtual_source(probe, 0.0))[None]
    fs = 4 * probe.center_frequency
    target = np.array([4e-3, 0.0, 40e-3])
    rf = simulate_rf(positions, target[None], np.ones(1), t0_delays=delays, tx_apodizations=np.ones_like(delays),
                     initial_times=np.zeros(1), sampling_frequency=fs, center_frequency=probe.center_frequency,
                     n_ax=1400, bandwidth=probe.bandwidth)
    grid = cartesian_grid((0.0, 8e-3), (36e-3, 44e-3), probe.wavelength() / 8)
    image = envelope(delay_and_sum(rf, positions, grid, t0_delays=delays, tx_apodizations=np.ones_like(delays),
                                   initial_times=np.zeros(1), sampling_frequency=fs, f_number=1.0), dim=0)
    peak = np.unravel_index(int(image.argmax()), image.shape)
    assert np.linalg.norm(grid[peak] - target) <= probe.wavelength() / 4


def test_the_pulse_has_the_probe_bandwidth():
    f0, bandwidth = 5e6, 0.6
    t = np.arange(-2000, 2001) / (50 * f0)
    pulse = np.exp(-t ** 2 / (2 * pulse_sigma(f0, bandwidth) ** 2)) * np.cos(2 * np.pi * f0 * t)
    spectrum = np.abs(np.fft.rfft(pulse, 1 << 16))
    freqs = np.fft.rfftfreq(1 << 16, t[1] - t[0])
    band = freqs[spectrum >= spectrum.max() / 2]
    assert abs((band.max() - band.min()) / f0 - bandwidth) < 0.01


def test_companding_inverts_and_log_compression_is_relative():
    x = torch.linspace(-1, 1, 1001, dtype=torch.float64)
    torch.testing.assert_close(expand(compand(x)), x)
    assert float(compand(torch.tensor(1.0))) == 1.0 and float(compand(torch.tensor(0.0))) == 0.0
    bmode = log_compress(torch.tensor([1.0, 0.1, 0.001, 0.0]), dynamic_range_db=50)
    torch.testing.assert_close(bmode, torch.tensor([0.0, -20.0, -50.0, -50.0]))


def test_iq_demodulation_gives_the_envelope_and_the_phase():
    f0, fs = 5e6, 40e6
    t = np.arange(800) / fs
    phase = 0.7
    pulse = np.exp(-(t - 10e-6) ** 2 / (2 * pulse_sigma(f0, 0.6) ** 2)) * np.cos(2 * np.pi * f0 * t + phase)
    rf = torch.from_numpy(pulse)
    iq = demodulate(rf, fs, f0)
    assert iq.dtype == torch.complex64
    np.testing.assert_allclose(iq.abs().numpy(), envelope(rf).numpy(), atol=2e-3)
    peak = int(iq.abs().argmax())
    assert abs(float(iq[peak].angle()) - phase) < 1e-3
    np.testing.assert_allclose(iq.abs().max().item(), 1.0, atol=1e-3)
