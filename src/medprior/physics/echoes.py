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
bandwidth is the probe's. Each echo is written into the samples within 4 sigma of its arrival
(a scatter-add), so the cost is scatterers x elements x pulse length per transmit, not x samples.

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


def simulate_rf(positions: np.ndarray, scatterers: np.ndarray, amplitudes: np.ndarray, *, t0_delays: np.ndarray,
                tx_apodizations: np.ndarray, initial_times: np.ndarray, sampling_frequency: float,
                center_frequency: float, n_ax: int, bandwidth: float = 0.67, element_width: float = 0.0,
                attenuation: float = 0.5, sound_speed: float = SOUND_SPEED, device: str | torch.device = "cpu",
                chunk: int = 4096) -> Tensor:
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
        device: where to compute; ``chunk``: scatterers per step (bounds the memory).
    """
    def tensor(array):
        return torch.as_tensor(np.asarray(array, dtype=np.float64), device=device)

    positions_t, points, weights = tensor(positions), tensor(scatterers), tensor(amplitudes)
    delays, apodizations, starts = tensor(t0_delays), tensor(tx_apodizations), tensor(initial_times)
    n_tx, n_el = delays.shape
    wavelength = sound_speed / center_frequency
    sigma = pulse_sigma(center_frequency, bandwidth)
    half = int(math.ceil(4 * sigma * sampling_frequency))
    offsets = torch.arange(-half, half + 1, device=device)
    rf = torch.zeros((n_tx, n_ax * n_el), dtype=torch.float64, device=device)
    columns = torch.arange(n_el, device=device)
    for tx in range(n_tx):
        for start in range(0, points.shape[0], chunk):
            x, a = points[start:start + chunk], weights[start:start + chunk]
            t_tx = transmit_arrival(x, positions_t, delays[tx], apodizations[tx], sound_speed)  # (n,)
            to_element = x[:, None, :] - positions_t[None]  # (n, n_el, 3)
            r = torch.linalg.vector_norm(to_element, dim=-1)
            arrival = t_tx[:, None] + r / sound_speed - starts[tx]  # (n, n_el) s
            sine = to_element[..., 0] / r.clamp_min(1e-12)
            directivity = torch.sinc(element_width * sine / wavelength) if element_width > 0 else 1.0
            loss = 10 ** (-attenuation * center_frequency / 1e6 * (sound_speed * (t_tx[:, None] + r / sound_speed))
                          * 100 / 20)
            amplitude = a[:, None] * directivity * loss / r.clamp_min(wavelength)
            nearest = torch.round(arrival * sampling_frequency).long()
            samples = nearest[..., None] + offsets  # (n, n_el, taps)
            t = samples / sampling_frequency - arrival[..., None]
            pulse = torch.exp(-t ** 2 / (2 * sigma ** 2)) * torch.cos(2 * math.pi * center_frequency * t)
            echo = amplitude[..., None] * pulse
            inside = (samples >= 0) & (samples < n_ax)
            index = samples.clamp(0, n_ax - 1) * n_el + columns[None, :, None]
            rf[tx].index_add_(0, index[inside], echo[inside])
    return rf.reshape(n_tx, n_ax, n_el).float()
