"""Point-scatterer RF and delay-and-sum against hand-computed times, positions and a direct float64 sum;
scan conversion against the function it samples and against scipy's map_coordinates."""

from __future__ import annotations

import numpy as np
import torch

import pytest
from scipy.ndimage import map_coordinates

from medprior.physics.beamform import compand, delay_and_sum, demodulate, envelope, expand, log_compress, scan_convert
from medprior.physics.image_grids import cartesian_grid, polar_axes, polar_grid
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


@pytest.mark.parametrize("route", ["fine", "direct"])
def test_the_rf_is_the_direct_float64_sum_of_pulses(route):
    probe, positions, delays, apodizations, starts = _plane_waves([-10.0, 7.0])
    apodizations[1, :20] = 0
    starts = np.array([0.0, 1e-6])
    rng = np.random.default_rng(1)
    scatterers = np.stack([rng.uniform(-15e-3, 15e-3, 12), np.zeros(12), rng.uniform(3e-3, 40e-3, 12)], 1)
    amplitudes = rng.standard_normal(12)
    f0, n_ax, width, alpha = probe.center_frequency, 1600, probe.element_width, 0.5
    rf = simulate_rf(positions, scatterers, amplitudes, t0_delays=delays, tx_apodizations=apodizations,
                     initial_times=starts, sampling_frequency=FS, center_frequency=f0, n_ax=n_ax,
                     bandwidth=probe.bandwidth, element_width=width, attenuation=alpha, chunk=5,
                     route=route).numpy()
    sigma, wavelength, t = pulse_sigma(f0, probe.bandwidth), probe.wavelength(), np.arange(n_ax) / FS
    expected = np.zeros_like(rf, dtype=np.float64)
    for tx in range(2):
        for x, a in zip(scatterers, amplitudes):
            r = np.linalg.norm(x - positions, axis=1)
            t_tx = (delays[tx] + r / SOUND_SPEED)[apodizations[tx] != 0].min()
            gain = (a * np.sinc(width * (x[0] - positions[:, 0]) / r / wavelength) / np.maximum(r, wavelength)
                    * 10 ** (-alpha * f0 / 1e6 * SOUND_SPEED * (t_tx + r / SOUND_SPEED) * 100 / 20))
            lag = t[:, None] - (t_tx + r / SOUND_SPEED - starts[tx])
            expected[tx] += gain * np.exp(-lag ** 2 / (2 * sigma ** 2)) * np.cos(2 * np.pi * f0 * lag)
    assert np.abs(rf - expected).max() <= 1e-4 * np.abs(expected).max()


def test_the_direct_and_fine_routes_give_the_same_rf():
    """Both routes split each echo between the same two fine-grid points and read the same pulse samples:
    equal to float32 rounding, with attenuation, directivity, a partial aperture, a delayed start, echoes
    cut at both ends of the record and several chunks; ``auto`` takes one of them."""
    probe, positions, delays, apodizations, starts = _plane_waves([-10.0, 7.0])
    apodizations[1, :20] = 0
    starts = np.array([0.0, 1e-6])
    rng = np.random.default_rng(2)
    n = 40
    scatterers = np.stack([rng.uniform(-15e-3, 15e-3, n), np.zeros(n), rng.uniform(0.5e-3, 30e-3, n)], 1)
    amplitudes = rng.standard_normal(n)
    common = dict(t0_delays=delays, tx_apodizations=apodizations, initial_times=starts, sampling_frequency=FS,
                  center_frequency=probe.center_frequency, n_ax=700, bandwidth=probe.bandwidth,
                  element_width=probe.element_width, attenuation=0.5, chunk=7)
    fine = simulate_rf(positions, scatterers, amplitudes, **common, route="fine")
    direct = simulate_rf(positions, scatterers, amplitudes, **common, route="direct")
    peak = fine.abs().max()
    assert (fine[:, :30].abs().max() > 1e-3 * peak) and (fine[:, -30:].abs().max() > 1e-3 * peak)  # cut echoes
    assert (direct - fine).abs().max() <= 2e-6 * peak
    auto = simulate_rf(positions, scatterers, amplitudes, **common)  # 40 scatterers: the direct route
    assert torch.equal(auto, direct)
    with pytest.raises(ValueError, match="route"):
        simulate_rf(positions, scatterers, amplitudes, **common, route="fft")


def test_iq_beamforming_matches_rf_beamforming_and_boxcar_differs_from_hann():
    probe, positions, delays, apodizations, starts = _plane_waves([0.0])
    target = np.array([1e-3, 0.0, 15e-3])
    rf = simulate_rf(positions, target[None], np.ones(1), t0_delays=delays, tx_apodizations=apodizations,
                     initial_times=starts, sampling_frequency=FS, center_frequency=probe.center_frequency, n_ax=1000,
                     bandwidth=probe.bandwidth)
    grid = cartesian_grid((-2e-3, 4e-3), (13e-3, 17e-3), probe.wavelength() / 8)
    common = dict(t0_delays=delays, tx_apodizations=apodizations, initial_times=starts, sampling_frequency=FS)
    rf_image = envelope(delay_and_sum(rf, positions, grid, **common), dim=0)
    iq = demodulate(rf, FS, probe.center_frequency, dim=1)
    iq_image = delay_and_sum(iq, positions, grid, **common, demodulation_frequency=probe.center_frequency)
    assert iq_image.dtype == torch.complex64
    assert np.corrcoef(rf_image.ravel(), iq_image.abs().ravel())[0, 1] > 0.99
    boxcar = envelope(delay_and_sum(rf, positions, grid, **common, window="boxcar"), dim=0)
    assert not torch.allclose(boxcar / boxcar.max(), rf_image / rf_image.max(), atol=1e-2)
    with pytest.raises(ValueError, match="demodulation_frequency"):
        delay_and_sum(iq, positions, grid, **common)


def test_polar_grid_puts_radius_first_and_images_a_point_in_the_sector():
    grid = polar_grid((-np.pi / 4, np.pi / 4), (10e-3, 50e-3), 91, 0.1e-3, origin=(0.0, 0.0, -2e-3))
    angles, radii = polar_axes((-np.pi / 4, np.pi / 4), (10e-3, 50e-3), 91, 0.1e-3)
    assert grid.shape == (radii.size, 91, 3) and radii[-1] == pytest.approx(50e-3)
    np.testing.assert_allclose(grid[7, 30], [radii[7] * np.sin(angles[30]), 0.0, radii[7] * np.cos(angles[30]) - 2e-3])
    probe = PROBES["P4-2v"]
    positions, fs = probe.element_positions(), 4 * probe.center_frequency
    delays = diverging_wave_delays(positions, virtual_source(probe, 0.0))[None]
    target = np.array([30e-3 * np.sin(0.3), 0.0, 30e-3 * np.cos(0.3)])
    rf = simulate_rf(positions, target[None], np.ones(1), t0_delays=delays, tx_apodizations=np.ones_like(delays),
                     initial_times=np.zeros(1), sampling_frequency=fs, center_frequency=probe.center_frequency,
                     n_ax=700, bandwidth=probe.bandwidth)
    sector = polar_grid((0.2, 0.4), (27e-3, 33e-3), 81, probe.wavelength() / 8)
    image = envelope(delay_and_sum(rf, positions, sector, t0_delays=delays, tx_apodizations=np.ones_like(delays),
                                   initial_times=np.zeros(1), sampling_frequency=fs, f_number=1.0), dim=0)
    peak = np.unravel_index(int(image.argmax()), image.shape)
    assert np.linalg.norm(sector[peak] - target) <= probe.wavelength() / 2  # laterally, 81 beams over 0.2 rad


def _smooth(r, theta):
    return np.cos(150 * r) * np.sin(3 * theta) + 2 * r * 1e2


def test_scan_conversion_interpolates_a_smooth_function_and_agrees_with_map_coordinates():
    angles, radii = polar_axes((-0.6, 0.6), (5e-3, 60e-3), 121, 0.25e-3)
    polar = torch.from_numpy(_smooth(radii[:, None], angles[None, :]))
    x, z = np.linspace(-40e-3, 40e-3, 161), np.linspace(0.0, 65e-3, 131)
    image = scan_convert(polar, angles, radii, x, z, fill=-1.0)
    assert image.shape == (131, 161) and image.dtype == torch.float64 and not image.isnan().any()
    r, theta = np.hypot(*np.meshgrid(x, z)), np.arctan2(*np.meshgrid(x, z))
    inside = (r >= radii[0]) & (r <= radii[-1]) & (np.abs(theta) <= 0.6)
    assert (image.numpy()[~inside] == -1).all() and inside.sum() > 5000
    np.testing.assert_allclose(image.numpy()[inside], _smooth(r, theta)[inside], atol=2e-3)
    rows = (r - radii[0]) / (radii[1] - radii[0])
    columns = (theta - angles[0]) / (angles[1] - angles[0])
    reference = map_coordinates(polar.numpy(), [rows, columns], order=1)
    np.testing.assert_allclose(image.numpy()[inside], reference[inside], atol=1e-12)
    batched = scan_convert(torch.stack([polar, 2 * polar]).float(), angles, radii, x, z)
    torch.testing.assert_close(batched[1], 2 * batched[0])
    assert batched.dtype == torch.float32 and (batched[:, ~torch.from_numpy(inside)] == 0).all()
