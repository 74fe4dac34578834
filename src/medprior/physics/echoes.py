"""RF channel data of point scatterers: the linear (first-order, Born) pulse-echo model, in torch.

Every scatterer ``s`` (position ``x_s`` in m, reflectivity ``a_s``) returns a copy of the transmit
pulse to every receive element ``r`` (position ``p_r``) at

    tau(s, r) = t_tx(s) + |x_s - p_r| / c - t_init,    t_tx(s) = min_e (t0_e + |x_s - p_e| / c)

(``t_tx``: when the transmitted wavefront passes the scatterer, the first arrival over the active
elements, exact for plane and diverging waves inside the insonified region; ``t_init``: the
transmit's initial time, when the first sample was recorded), with amplitude

    a_s * D(theta_sr) / max(|x_s - p_r|, lambda) * 10 ** (-alpha f0 L / 20)

where ``D(theta) = sinc(w sin(theta) / lambda)`` is the element directivity (width ``w``),
``1 / r`` the spherical spreading of the echo, and ``alpha`` the attenuation in dB/(cm MHz) at the
centre frequency ``f0`` over the round trip ``L = c (t_tx + |x_s - p_r| / c)`` in cm. The pulse is a
Gaussian-modulated cosine ``exp(-t^2 / (2 sigma^2)) cos(2 pi f0 t)`` whose -6 dB fractional
bandwidth is the probe's, kept within 6 sigma of its peak (the rest is below 2e-8 of it).

How it is computed: each echo's amplitude is split between the two nearest points of a time grid
``oversampling`` times finer than the sampling (linear interpolation of its arrival), and the pulse is
read at the sampling instants from each of the two points. That is the pulse at the exact arrival up to
``(pi f0 / (fs U))^2 / 2`` of the peak (2e-5 at ``fs = 4 f0``, ``U = 128``), below the float32
rounding of an arrival time of ~2000 samples (1e-4 sample, 2e-4 of the peak in phase). Geometry is
float32, in samples from the transmit's initial time. Two routes compute that same sum (equal up to
float32 rounding; ``route`` in :func:`simulate_rf`): the fine route adds the split impulses on the
fine grid and convolves once per transmit with the pulse (cost ~ samples x elements x ``oversampling``
x taps, whatever the scatterer count: the one for many scatterers, e.g. a cardiac frame's 200k), the
direct route adds each echo's ~30 pulse samples (interpolated between the two fine-grid phases' pulse
samples, a table) straight into the RF (cost ~ scatterers x elements x taps: the one for a few
thousand scatterers or fewer); by default the cheaper by an estimate.

Simplifications against a full spatial-impulse-response simulator (Field II, pymust's simus): the
transmit field is the wavefront arrival with unit amplitude (no transmit directivity, diffraction or
edge waves), and attenuation acts on the amplitude at f0 (no downshift of the spectrum with depth).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from medprior.physics.probes import SOUND_SPEED


def pulse_sigma(center_frequency: float, bandwidth: float) -> float:
    """Standard deviation (s) of the Gaussian envelope whose spectrum has the -6 dB fractional ``bandwidth``
    around ``center_frequency`` (Hz): the spectral sigma is ``B f0 / (2 sqrt(2 ln 2))``, the temporal
    one ``1 / (2 pi sigma_f)``."""
    sigma_f = bandwidth * center_frequency / (2 * math.sqrt(2 * math.log(2)))
    return 1 / (2 * math.pi * sigma_f)


def transmit_arrival(points: Tensor, positions: Tensor, t0_delays: Tensor, apodization: Tensor,
                     sound_speed: float = SOUND_SPEED) -> Tensor:
    """When the wavefront of one transmit passes each point (s): ``min_e (t0_e + |x - p_e| / c)`` over the
    elements with nonzero apodization. ``points`` (..., 3) m, ``positions`` (n_el, 3), ``t0_delays`` and
    ``apodization`` (n_el,); returns (...)."""
    active = apodization != 0
    distances = torch.linalg.vector_norm(points[..., None, :] - positions[active], dim=-1)
    return (t0_delays[active] + distances / sound_speed).amin(dim=-1)


def _pulse_kernels(sigma: float, center_frequency: float, sampling_frequency: float, oversampling: int,
                   device: torch.device) -> Tensor:
    """The pulse at the sampling instants around each of the ``oversampling`` phases of the fine grid, as
    conv1d weights ``(1, oversampling, 2 K + 1)`` float32: channel ``j``, tap ``i`` holds
    ``pulse((K - i - j / U) / fs)`` (flipped, as conv1d correlates), ``K = ceil(6 sigma fs)``."""
    half = int(math.ceil(6 * sigma * sampling_frequency))
    taps = torch.arange(half, -half - 1, -1, dtype=torch.float64, device=device)
    phases = torch.arange(oversampling, dtype=torch.float64, device=device) / oversampling
    t = (taps[None, :] - phases[:, None]) / sampling_frequency
    pulse = torch.exp(-t ** 2 / (2 * sigma ** 2)) * torch.cos(2 * math.pi * center_frequency * t)
    return pulse[None].float()


def _direct_table(kernels: Tensor) -> Tensor:
    """The fine route's pulse for the direct route: ``(oversampling + 1, 2 K + 2)`` float32 whose row ``p``,
    tap ``i`` is the weight that an impulse at phase ``p / U`` of a sample ``q`` of the fine grid gives
    sample ``q - 2 K + i`` in the fine route (``kernels[0, p, 2 K - i]``; row ``U`` is row 0 one sample
    later), so that splitting an echo between rows ``j`` and ``j + 1`` is the fine route's result."""
    flipped = kernels[0].flip(-1)  # (U, 2 K + 1): tap i -> pulse(i - K - p / U)
    table = torch.zeros((flipped.shape[0] + 1, flipped.shape[1] + 1), dtype=flipped.dtype, device=flipped.device)
    table[:-1, :-1] = flipped
    table[-1, 1:] = flipped[0]
    return table


def simulate_rf(positions: np.ndarray, scatterers: np.ndarray, amplitudes: np.ndarray, *, t0_delays: np.ndarray,
                tx_apodizations: np.ndarray, initial_times: np.ndarray, sampling_frequency: float,
                center_frequency: float, n_ax: int, bandwidth: float = 0.67, element_width: float = 0.0,
                attenuation: float = 0.5, sound_speed: float = SOUND_SPEED, device: str | torch.device = "cpu",
                chunk: int = 16384, oversampling: int = 128, route: str = "auto") -> Tensor:
    """RF channel data ``(n_tx, n_ax, n_el)`` float32 of point scatterers (see the module docstring).

    Args:
        positions: element centres (n_el, 3) m.
        scatterers, amplitudes: scatterer positions (N, 3) m (z > 0) and reflectivities (N,).
        t0_delays, tx_apodizations: per transmit and element (n_tx, n_el), s and weights.
        initial_times: time of the first recorded sample of each transmit (n_tx,) s.
        sampling_frequency, center_frequency: Hz.
        n_ax: samples per channel.
        bandwidth: -6 dB fractional bandwidth of the pulse.
        element_width: element width (m) for the directivity (0: omnidirectional).
        attenuation: dB / (cm MHz).
        device: where to compute; ``chunk``: scatterers per step (bounds the memory, ~100 bytes x chunk x n_el;
            the direct route takes fewer, at most ``2 ** 22 / (n_el x pulse taps)``).
        oversampling: fine-grid points per sample for the arrival times (see the module docstring).
        route: ``"fine"`` (impulses on the fine grid, one convolution per transmit: cost ~ n_ax x n_el x
            oversampling x taps, whatever the scatterer count), ``"direct"`` (each echo written as its
            interpolated pulse samples: cost ~ N x n_el x taps) or ``"auto"``: the cheaper by an estimate.
            Both give the same RF up to float32 rounding (the same split of each echo between two
            fine-grid points, the same pulse samples); only the order of the sums differs.
    """
    if route not in ("auto", "fine", "direct"):
        raise ValueError(f"route must be 'auto', 'fine' or 'direct'; got {route!r}")
    device = torch.device(device)

    def tensor(array):
        return torch.as_tensor(np.asarray(array, dtype=np.float64), device=device)

    positions_t, points, weights = tensor(positions), tensor(scatterers), tensor(amplitudes)
    # in order of distance from the array, so that each chunk's echoes land close together (cache-friendly adds)
    order = torch.argsort(torch.linalg.vector_norm(points - positions_t.mean(dim=0), dim=-1))
    points, weights = points[order], weights[order]
    n_tx, n_el = np.shape(t0_delays)
    n_points = points.shape[0]
    samples_per_metre = sampling_frequency / sound_speed
    kernels = _pulse_kernels(pulse_sigma(center_frequency, bandwidth), center_frequency, sampling_frequency,
                             oversampling, device)
    half = (kernels.shape[-1] - 1) // 2
    taps = 2 * half + 1
    n_fine = (n_ax + 2 * half) * oversampling  # fine grid from sample -half to n_ax - 1 + half
    if route == "auto":
        # per transmit, in ns as measured on one CPU thread: the direct route ~8.5 per echo and tap, the
        # fine route ~0.65 per multiply-add of its convolution and ~20 per echo for its two scatter-adds
        # (the geometry, the same for both, left out); equal for ~16k scatterers on the L11-4v
        direct = 8.5 * n_points * n_el * (taps + 1)
        fine = 0.65 * (n_ax + 2 * half) * n_el * oversampling * taps + 20 * n_points * n_el
        route = "direct" if direct < fine else "fine"
    wavelength = sound_speed / center_frequency
    # amplitude loss per metre of round trip, as a natural-log rate
    nepers_per_metre = attenuation * center_frequency / 1e6 * 100 / 20 * math.log(10)
    positions_32 = positions_t.float()
    if route == "direct":
        chunk = max(1, min(chunk, 2 ** 22 // (n_el * (taps + 1))))
        table = _direct_table(kernels)
        span = n_ax + 4 * half + 1  # the direct route's samples, from -2 half to n_ax + 2 half
        element_offsets = torch.arange(n_el, device=device) * span
        shifts = torch.arange(taps + 1, device=device)
    else:
        element_offsets = torch.arange(n_el, device=device) * n_fine
    rf = torch.empty((n_tx, n_ax, n_el), dtype=torch.float32, device=device)
    for tx in range(n_tx):
        fired = (tensor(t0_delays[tx]) - float(initial_times[tx])) * sampling_frequency  # (n_el,) samples
        active = tensor(tx_apodizations[tx]) != 0
        fired = torch.where(active, fired, torch.inf).float()
        first = float(initial_times[tx]) * sampling_frequency
        size = n_el * (span if route == "direct" else n_fine)
        impulses = torch.zeros(size, dtype=torch.float32, device=device)
        for start in range(0, n_points, chunk):
            x, a = points[start:start + chunk].float(), weights[start:start + chunk].float()
            to_element = x[:, None, :] - positions_32[None]  # (n, n_el, 3) m
            r = torch.linalg.vector_norm(to_element, dim=-1)  # (n, n_el) m
            r_samples = r * samples_per_metre
            t_tx = (fired + r_samples).amin(dim=1, keepdim=True)  # (n, 1) samples from the initial time
            amplitude = a[:, None] / r.clamp_min(wavelength)
            # round trip from the transmit's start: (t_tx + t_rx) fs = t_tx + r_samples + initial time x fs
            amplitude = amplitude * torch.exp(-nepers_per_metre / samples_per_metre * (t_tx + r_samples + first))
            if element_width > 0:
                amplitude = amplitude * torch.sinc(element_width / wavelength * to_element[..., 0] / r.clamp_min(1e-12))
            fine = (t_tx + r_samples + half) * oversampling  # (n, n_el) on the fine grid
            low = fine.floor()
            upper = fine - low
            inside = (low >= 0) & (low < n_fine - 1)
            amplitude = amplitude * inside
            if route == "direct":
                # the echo's share (1 - upper) at fine point low = q U + j and upper at low + 1 give sample
                # q - 2 half + i the weights table[j, i] and table[j + 1, i] (see _direct_table)
                low = low.clamp(0, n_fine - 2).long()
                sample, phase = torch.div(low, oversampling, rounding_mode="floor"), low % oversampling
                values = ((amplitude * (1 - upper)).unsqueeze(-1) * table[phase]
                          + (amplitude * upper).unsqueeze(-1) * table[phase + 1])  # (n, n_el, taps + 1)
                index = (sample + element_offsets).unsqueeze(-1) + shifts
                impulses.index_add_(0, index.ravel(), values.ravel())
            else:
                index = low.clamp(0, n_fine - 2).long() + element_offsets
                impulses.index_add_(0, index.ravel(), (amplitude * (1 - upper)).ravel())
                impulses.index_add_(0, (index + 1).ravel(), (amplitude * upper).ravel())
        if route == "direct":
            rf[tx] = impulses.reshape(n_el, span)[:, 2 * half:2 * half + n_ax].T
        else:
            phases = impulses.reshape(n_el, n_fine // oversampling, oversampling).transpose(1, 2)
            rf[tx] = torch.nn.functional.conv1d(phases, kernels)[:, 0].T
    return rf
