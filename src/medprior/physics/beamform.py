"""Delay-and-sum beamforming of RF channel data on an image grid, in torch, and B-mode display.

For every pixel ``x`` and transmit, each receive element's channel is read (linear interpolation) at
the pulse-echo delay ``t_tx(x) + |x - p_r| / c - t_init`` (the same transmit arrival as
:func:`medprior.physics.echoes.transmit_arrival`), weighted by a receive apodisation of f-number
``F`` (a Hann window, or a boxcar as MUST's ``dasmtx``, over the elements within
``|x_x - p_x| <= z / (2 F)`` of the pixel), and summed over elements and, coherently, over transmits
(compounding). IQ channel data are read the same way and rotated back by ``exp(2 pi i f_d t)``.
Geometry is float32 in samples (1e-4 sample of rounding at 2000 samples); only the elements of
each pixel's aperture are read.

The result is beamformed RF (or IQ) on the grid: a Cartesian one or a sector (radius first; both of
:mod:`medprior.physics.image_grids`), which :func:`scan_convert` resamples onto Cartesian pixels.
:func:`envelope` (the magnitude of the analytic signal along depth), :func:`demodulate` (IQ
baseband), :func:`log_compress` (B-mode dB against the image's maximum), :func:`bmode` (B-mode dB
against a given reference, such as a frame's :func:`reference_level`) and mu-law companding
(:func:`compand`, :func:`expand`, mu = 255) make images of it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from medprior.physics.probes import SOUND_SPEED

MU_LAW = 255.0


def scan_convert(image: Tensor, angles: np.ndarray, radii: np.ndarray, x: np.ndarray, z: np.ndarray,
                 fill: float = 0.0, origin: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Tensor:
    """A sector image ``(..., n_r, n_theta)`` on evenly spaced ``radii`` (m) and ``angles`` (rad) (those
    of :func:`medprior.physics.image_grids.polar_axes`) resampled onto the Cartesian pixels ``x`` (n_x,)
    x ``z`` (n_z,) m: ``(..., n_z, n_x)``, bilinear in (r, theta) at each pixel's ``r = |p - origin|``,
    ``theta = atan2(x - x_o, z - z_o)``, and ``fill`` outside the sector. Same dtype and device as ``image``."""
    radii, angles = np.asarray(radii, dtype=np.float64), np.asarray(angles, dtype=np.float64)
    n_r, n_theta = image.shape[-2:]
    if (n_r, n_theta) != (radii.size, angles.size) or n_r < 2 or n_theta < 2:
        raise ValueError(f"image (..., {n_r}, {n_theta}) does not match {radii.size} radii x {angles.size} angles "
                         "(at least 2 each)")
    dx, dz = np.meshgrid(np.asarray(x, dtype=np.float64) - origin[0], np.asarray(z, dtype=np.float64) - origin[2])
    rows = (np.hypot(dx, dz) - radii[0]) / (radii[1] - radii[0])  # fractional indices (n_z, n_x)
    columns = (np.arctan2(dx, dz) - angles[0]) / (angles[1] - angles[0])
    tolerance = 1e-9
    inside = (rows >= -tolerance) & (rows <= n_r - 1 + tolerance) & (columns >= -tolerance) & (
        columns <= n_theta - 1 + tolerance)
    row0 = np.clip(np.floor(rows), 0, n_r - 2).astype(np.int64)
    column0 = np.clip(np.floor(columns), 0, n_theta - 2).astype(np.int64)
    device, real = image.device, image.real.dtype
    u = torch.as_tensor(np.clip(rows - row0, 0, 1), dtype=real, device=device)
    v = torch.as_tensor(np.clip(columns - column0, 0, 1), dtype=real, device=device)
    i, j = torch.as_tensor(row0, device=device), torch.as_tensor(column0, device=device)
    resampled = ((1 - u) * ((1 - v) * image[..., i, j] + v * image[..., i, j + 1])
                 + u * ((1 - v) * image[..., i + 1, j] + v * image[..., i + 1, j + 1]))
    return torch.where(torch.as_tensor(inside, device=device), resampled,
                       torch.tensor(fill, dtype=image.dtype, device=device))


def delay_and_sum(rf: Tensor | np.ndarray, positions: np.ndarray, grid: np.ndarray, *, t0_delays: np.ndarray,
                  tx_apodizations: np.ndarray, initial_times: np.ndarray, sampling_frequency: float,
                  f_number: float = 1.5, sound_speed: float = SOUND_SPEED, window: str = "hann",
                  demodulation_frequency: float | None = None, chunk: int = 2 ** 22) -> Tensor:
    """Beamformed RF ``grid.shape[:-1]`` (float32) of RF channel data ``(n_tx, n_ax, n_el)``, compounded
    over the transmits (see the module docstring); on ``rf``'s device.

    Args:
        rf: real RF, or complex IQ (:func:`demodulate`, time zero at the first sample), ``(n_tx, n_ax, n_el)``.
        positions: element centres (n_el, 3) m; ``grid``: pixel centres (..., 3) m.
        t0_delays, tx_apodizations: per transmit and element (n_tx, n_el), s and weights.
        initial_times: time of the first recorded sample of each transmit (n_tx,) s.
        f_number: receive aperture ``z / (2 F)`` either side of the pixel (0: all elements, unweighted).
        window: receive apodisation over that aperture, ``"hann"`` or ``"boxcar"`` (MUST's ``dasmtx``).
        demodulation_frequency: Hz, for IQ input: each interpolated IQ sample is rotated by
            ``exp(2 pi i f_d t)`` at its delay ``t`` (s from the first sample); the result is complex64 IQ.
        chunk: pixel-element pairs per step, counted per transmit in the window or over all elements
            (bounds the memory: ~300 MB for IQ at the default).

    How: the elements are taken in order of lateral position, so each pixel's receive aperture is a
    contiguous run of them (found by binary search); the pixels are sorted by the length of that run and
    beamformed in chunks, each over a window of elements as long as the chunk's longest run (those of
    the window outside the aperture weigh 0). The receive distances, apodisation and, for IQ, the
    receive part ``exp(2 pi i f_d t_rx)`` of the rotation serve all transmits; the transmit arrival is
    one number per pixel and transmit (the earliest over the firing elements), whose rotation applies
    to the sum over the window. The interpolation is one gather per pixel, transmit and element, of a
    sample and its difference to the next (zero rows for delays off the record), and the sum over the
    window a batched product.
    """
    if window not in ("hann", "boxcar"):
        raise ValueError(f"window must be 'hann' or 'boxcar', got {window!r}")
    rf = torch.as_tensor(rf)
    iq = rf.is_complex()
    if iq != (demodulation_frequency is not None):
        raise ValueError("complex IQ input needs demodulation_frequency, and real RF input takes none")
    device = rf.device
    rf = rf.to(torch.complex64 if iq else torch.float32)
    n_tx, n_ax, n_el = rf.shape
    positions = np.asarray(positions, dtype=np.float64)
    pixels = np.asarray(grid, dtype=np.float64).reshape(-1, 3)
    n_pixels = pixels.shape[0]

    # elements in lateral order: each pixel's aperture |x_x - p_x| <= z / (2 F) is then one run of them
    order = np.argsort(positions[:, 0], kind="stable")
    positions = positions[order]
    if f_number == 0:
        first, width = np.zeros(n_pixels, dtype=np.int64), np.full(n_pixels, n_el, dtype=np.int64)
    else:  # a margin wider than float32 rounding: the exact test below zeroes the extra elements
        half = np.maximum(pixels[:, 2] / (2 * f_number), 1e-12) * (1 + 1e-4) + 1e-7
        first = np.searchsorted(positions[:, 0], pixels[:, 0] - half, side="left")
        width = np.maximum(np.searchsorted(positions[:, 0], pixels[:, 0] + half, side="right") - first, 0)
    by_width = np.argsort(width, kind="stable")  # pixels by increasing aperture
    width, first, pixels = width[by_width], first[by_width], pixels[by_width]
    bounds = [0]  # chunks of at most ``chunk`` pixel-element pairs (per transmit in the window, or all elements)
    while bounds[-1] < n_pixels:
        cost = np.arange(1, n_pixels - bounds[-1] + 1) * np.maximum(n_tx * width[bounds[-1]:], n_el)
        bounds.append(bounds[-1] + max(int(np.searchsorted(cost, chunk, side="right")), 1))

    def tensor(array):  # float32, rounded from float64 as torch would
        return torch.as_tensor(np.asarray(array, dtype=np.float64).astype(np.float32), device=device)

    to_samples = sampling_frequency / sound_speed
    fired = (np.asarray(t0_delays, dtype=np.float64) - np.asarray(initial_times, dtype=np.float64)[:, None])
    fired = tensor(np.where(np.asarray(tx_apodizations) != 0, fired * sampling_frequency, np.inf)[:, order])
    elements, points = tensor(positions), tensor(pixels)  # float32 m, (n_el, 3) and (P, 3)
    half = np.maximum(pixels[:, 2].astype(np.float32) / np.float32(2 * f_number or 1), np.float32(1e-12))
    half = torch.as_tensor(half, device=device)  # float32 m, the half aperture z / (2 F) as _receive_apodization's
    first = tensor(first)
    omega = 2 * math.pi * demodulation_frequency / sampling_frequency if iq else 0.0

    # rows (n_ax + 1) x n_tx x n_el of [sample, next sample - sample] (re, im for IQ), rows 0 and n_ax
    # zero: a delay s in [0, n_ax - 1) samples reads row floor(s) + 1, any other a zero row
    data = torch.view_as_real(rf) if iq else rf[..., None]
    if (order != np.arange(n_el)).any():
        data = data[:, :, torch.as_tensor(order, device=device)]
    data = data.transpose(0, 1)  # (n_ax, n_tx, n_el, parts)
    table = torch.empty((n_ax + 1, n_tx, n_el, 2, data.shape[-1]), dtype=torch.float32, device=device)
    table[1:n_ax, :, :, 0] = data[:-1]
    torch.sub(data[1:], data[:-1], out=table[1:n_ax, :, :, 1])
    table[0] = 0
    table[n_ax] = 0
    # one element of 8 (RF) or 16 (IQ) bytes per row, for a fast one-dimensional gather
    table = table.reshape(-1, 2 * data.shape[-1]).view(torch.complex128 if iq else torch.float64).reshape(-1)
    stride = float(n_tx * n_el)
    exact = table.numel() < 2 ** 24  # row numbers exact in float32
    transmit_rows = (torch.arange(n_tx, device=device, dtype=torch.float32) * n_el + stride)[:, None]  # row 1

    image = torch.empty(n_pixels, dtype=rf.dtype, device=device)
    for begin, end in zip(bounds[:-1], bounds[1:]):
        span = int(width[end - 1])
        if span == 0:
            image[begin:end] = 0
            continue
        rx_all = torch.cdist(points[begin:end], elements, compute_mode="donot_use_mm_for_euclid_dist")
        rx_all.mul_(to_samples)  # samples, (C, n_el)
        # the transmit arrival, from the first element to reach the pixel, (C, n_tx) samples
        if (end - begin) * n_tx * n_el <= 2 * chunk:
            arrival = (rx_all[:, None, :] + fired).amin(dim=2)
        else:
            arrival = torch.stack([torch.add(rx_all, fired[tx]).amin(dim=1) for tx in range(n_tx)], 1)
        column = first[begin:end, None].clamp(max=n_el - span) + torch.arange(span, device=device)  # (C, span)
        columns = column.long()
        rx = rx_all.gather(1, columns)
        if f_number == 0:
            weights = torch.ones_like(rx)
        else:  # as _receive_apodization
            distance = (points[begin:end, :1] - elements[:, 0][columns]).abs_().div_(half[begin:end, None])
            weights = (distance <= 1).float() if window == "boxcar" else torch.where(
                distance <= 1, distance.mul_(math.pi).cos_().mul_(0.5).add_(0.5), 0.0)
        if iq:  # with the receive part of the rotation exp(2 pi i f_d t)
            weights = torch.polar(weights, rx * omega)
        position = (rx[:, None, :] + arrival[:, :, None]).clamp_(-1, n_ax - 1)  # (C, n_tx, span) samples
        low = position.floor()
        fraction = position.sub_(low).unsqueeze_(-1)
        offset = column[:, None, :] + transmit_rows  # (C, n_tx, span): row 1 of the transmit's element
        if exact:
            index = torch.addcmul(offset, low, torch.tensor(stride, device=device)).int()
        else:
            index = low.long().mul_(int(stride)).add_(offset.long())
        pair = table.index_select(0, index.view(-1)).view(torch.float32).view(*index.shape, 2, -1)
        samples = torch.addcmul(pair[..., 0, :], pair[..., 1, :], fraction)  # (C, n_tx, span, parts)
        samples = torch.view_as_complex(samples) if iq else samples.squeeze(-1)
        summed = torch.bmm(samples, weights.unsqueeze(-1)).squeeze(-1)  # (C, n_tx)
        if iq:  # with the transmit part of the rotation: sum over transmits of summed exp(2 pi i f_d t_tx)
            torch.linalg.vecdot(torch.exp(arrival * (-1j * omega)), summed, out=image[begin:end])
        else:
            torch.sum(summed, dim=1, out=image[begin:end])
    result = torch.empty_like(image)
    result[torch.as_tensor(by_width, device=device)] = image
    return result.reshape(grid.shape[:-1])


def _receive_apodization(lateral: Tensor, depth: Tensor, f_number: float, window: str) -> Tensor:
    """Receive weights ``(P, n)`` of pixels ``lateral`` (P, n) m from each element and ``depth`` (P, 1) m."""
    if f_number == 0:
        return torch.ones_like(lateral)
    distance = lateral.abs() / (depth / (2 * f_number)).clamp_min(1e-12)  # 1 at the aperture's edge
    inside = distance <= 1
    if window == "boxcar":
        return inside.to(lateral.dtype)
    return torch.where(inside, 0.5 + 0.5 * torch.cos(math.pi * distance), torch.zeros_like(distance))


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


def bmode(rf: Tensor, reference: float, dynamic_range: float) -> np.ndarray:
    """B-mode (n_r, n_lines) in dB of beamformed RF: its envelope along depth over ``reference``, in
    ``[-dynamic_range, 0]``."""
    decibels = 20 * torch.log10(envelope(rf, 0).double() / reference + 1e-30)
    return decibels.clamp(-dynamic_range, 0).numpy().astype(np.float32)


def reference_level(hazy: Tensor) -> float:
    """The B-mode reference of a frame: its largest envelope value."""
    return float(envelope(hazy, 0).max().clamp_min(1e-30))


def compand(x: Tensor, mu: float = MU_LAW) -> Tensor:
    """mu-law companding of ``x`` in [-1, 1]: ``sign(x) log(1 + mu |x|) / log(1 + mu)``."""
    return torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)


def expand(y: Tensor, mu: float = MU_LAW) -> Tensor:
    """The inverse of :func:`compand`: ``sign(y) ((1 + mu)^|y| - 1) / mu``."""
    return torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu
