"""Delay-and-sum beamforming of RF channel data on an image grid, in torch, and B-mode display.

For every pixel ``x`` and transmit, each receive element's channel is read (linear interpolation) at
the pulse-echo delay ``t_tx(x) + |x - p_r| / c - t_init`` (the same transmit arrival as
:func:`medprior.physics.echoes.transmit_arrival`), weighted by a receive apodisation of f-number
``F`` (a Hann window over the elements within ``|x_x - p_x| <= z / (2 F)`` of the pixel), and summed
over elements and, coherently, over transmits (compounding). The result is beamformed RF on the
grid; :func:`envelope` (the magnitude of the analytic signal along depth), :func:`demodulate` (IQ
baseband), :func:`log_compress`
(B-mode dB) and mu-law companding (:func:`compand`, :func:`expand`, mu = 255) make images of it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from medprior.physics.echoes import transmit_arrival
from medprior.physics.probes import SOUND_SPEED

MU_LAW = 255.0


def cartesian_grid(x_range: tuple[float, float], z_range: tuple[float, float], spacing: float) -> np.ndarray:
    """Pixel centres ``(n_z, n_x, 3)`` m of a Cartesian grid over ``x_range`` x ``z_range`` (m, inclusive
    starts) at ``spacing`` (m), y = 0; depth ``z`` along the first axis."""
    xs = np.arange(x_range[0], x_range[1] + spacing / 2, spacing)
    zs = np.arange(z_range[0], z_range[1] + spacing / 2, spacing)
    grid = np.zeros((zs.size, xs.size, 3))
    grid[..., 0], grid[..., 2] = xs[None, :], zs[:, None]
    return grid


def delay_and_sum(rf: Tensor | np.ndarray, positions: np.ndarray, grid: np.ndarray, *, t0_delays: np.ndarray,
                  tx_apodizations: np.ndarray, initial_times: np.ndarray, sampling_frequency: float,
                  f_number: float = 1.5, sound_speed: float = SOUND_SPEED) -> Tensor:
    """Beamformed RF ``grid.shape[:-1]`` (float32) of RF channel data ``(n_tx, n_ax, n_el)``, compounded
    over the transmits (see the module docstring); on ``rf``'s device."""
    rf = torch.as_tensor(rf)
    device = rf.device

    def tensor(array):
        return torch.as_tensor(np.asarray(array, dtype=np.float64), device=device)

    elements, delays, apodizations, starts = (tensor(a) for a in (positions, t0_delays, tx_apodizations, initial_times))
    pixels = tensor(grid).reshape(-1, 3)
    n_tx, n_ax, n_el = rf.shape
    to_element = pixels[:, None, :] - elements[None]  # (P, n_el, 3)
    t_rx = torch.linalg.vector_norm(to_element, dim=-1) / sound_speed
    half_aperture = pixels[:, 2:3] / (2 * f_number)
    lateral = to_element[..., 0].abs() / half_aperture.clamp_min(1e-12)
    receive = torch.where(lateral <= 1, 0.5 + 0.5 * torch.cos(math.pi * lateral), torch.zeros_like(lateral))
    columns = torch.arange(n_el, device=device)
    image = torch.zeros(pixels.shape[0], dtype=torch.float64, device=device)
    for tx in range(n_tx):
        delay = transmit_arrival(pixels, elements, delays[tx], apodizations[tx], sound_speed)[:, None] + t_rx
        position = (delay - starts[tx]) * sampling_frequency  # fractional sample index (P, n_el)
        low = position.floor().long()
        weight = position - low
        valid = (low >= 0) & (low + 1 < n_ax)
        low = low.clamp(0, n_ax - 2)
        channel = rf[tx].to(torch.float64)
        samples = (1 - weight) * channel[low, columns] + weight * channel[low + 1, columns]
        image += (samples * receive * valid).sum(dim=1)
    return image.reshape(grid.shape[:-1]).float()


def envelope(beamformed: Tensor, dim: int = 0) -> Tensor:
    """The magnitude of the analytic signal of beamformed RF along ``dim`` (depth), by the FFT Hilbert
    transform (positive frequencies doubled, negative ones zeroed)."""
    n = beamformed.shape[dim]
    spectrum = torch.fft.fft(beamformed.to(torch.float64), dim=dim)
    gain = torch.zeros(n, dtype=torch.float64, device=beamformed.device)
    gain[0] = 1
    gain[1:(n + 1) // 2] = 2
    if n % 2 == 0:
        gain[n // 2] = 1
    shape = [1] * beamformed.dim()
    shape[dim] = n
    return torch.fft.ifft(spectrum * gain.reshape(shape), dim=dim).abs().float()


def demodulate(rf: Tensor, sampling_frequency: float, demodulation_frequency: float, dim: int = 0,
               cutoff: float | None = None) -> Tensor:
    """IQ (complex baseband) of real RF along ``dim`` (time, sample ``n`` at ``n / fs``):
    ``2 lowpass(rf exp(-2 pi i f_d t))``, an ideal FFT low-pass at ``cutoff`` (default ``f_d``, which
    removes the ``2 f_d`` image). Then ``|IQ|`` is the envelope and ``angle(IQ)`` the phase against
    ``cos(2 pi f_d t)``."""
    n = rf.shape[dim]
    shape = [1] * rf.dim()
    shape[dim] = n
    t = (torch.arange(n, dtype=torch.float64, device=rf.device) / sampling_frequency).reshape(shape)
    mixed = rf.to(torch.float64) * torch.exp(-2j * math.pi * demodulation_frequency * t)
    frequencies = torch.fft.fftfreq(n, 1 / sampling_frequency, dtype=torch.float64, device=rf.device).reshape(shape)
    keep = frequencies.abs() <= (demodulation_frequency if cutoff is None else cutoff)
    return (2 * torch.fft.ifft(torch.fft.fft(mixed, dim=dim) * keep, dim=dim)).to(torch.complex64)


def log_compress(envelope_image: Tensor, dynamic_range_db: float = 60.0) -> Tensor:
    """B-mode in dB relative to the image maximum, clipped at ``-dynamic_range_db``."""
    peak = envelope_image.max().clamp_min(torch.finfo(envelope_image.dtype).tiny)
    return (20 * torch.log10(envelope_image.clamp_min(0) / peak + 1e-30)).clamp_min(-dynamic_range_db)


def compand(x: Tensor, mu: float = MU_LAW) -> Tensor:
    """mu-law companding of ``x`` in [-1, 1]: ``sign(x) log(1 + mu |x|) / log(1 + mu)``."""
    return torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)


def expand(y: Tensor, mu: float = MU_LAW) -> Tensor:
    """The inverse of :func:`compand`: ``sign(y) ((1 + mu)^|y| - 1) / mu``."""
    return torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu
