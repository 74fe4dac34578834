"""Statistics of a set of images against a reference set, which check a diffusion prior's samples
against held-out training data (``medprior check-prior``): intensity histograms and distributions
(:func:`image_statistics`) and radially averaged power spectra (:func:`radial_power_spectrum`).
Images are torch tensors ``(N, H, W)`` in the prior's normalised units ([-1, 1]).
"""

from __future__ import annotations

import torch


def radial_power_spectrum(images: torch.Tensor) -> torch.Tensor:
    """Mean radially averaged power spectrum of (N, H, W) images: (R,) for integer radii 0..min(H, W)//2 - 1."""
    images = images.double()
    power = torch.fft.fftshift(torch.fft.fft2(images - images.mean(dim=(1, 2), keepdim=True)), dim=(1, 2))
    power = power.abs().pow(2).mean(0)
    height, width = power.shape
    yy, xx = torch.meshgrid(torch.arange(height) - height // 2, torch.arange(width) - width // 2, indexing="ij")
    radius = torch.sqrt(yy.double() ** 2 + xx.double() ** 2).round().long().flatten()
    bins = min(height, width) // 2
    keep = radius < bins
    total = torch.zeros(bins, dtype=torch.float64).index_add_(0, radius[keep], power.flatten()[keep])
    count = torch.zeros(bins, dtype=torch.float64).index_add_(0, radius[keep], torch.ones_like(power.flatten()[keep]))
    return total / count


def image_statistics(images: torch.Tensor, reference: torch.Tensor, scale: float = 1.0) -> dict[str, float]:
    """How close a set of images is to a reference set, both (N, H, W) in [-1, 1].

    ``histogram_intersection``: sum of min of the two 64-bin intensity histograms (1 = identical);
    ``wasserstein``: 1-Wasserstein distance of the intensity distributions, times ``scale``
    (data units per normalised unit); ``spectrum_db``: mean absolute difference of the radially
    averaged power spectra, in dB, over the non-zero radii; means and standard deviations.
    """
    values, ref_values = images.flatten().double(), reference.flatten().double()
    edges = torch.linspace(-1, 1, 65, dtype=torch.float64)
    hist = torch.histogram(values.clamp(-1, 1), edges).hist / values.numel()
    ref_hist = torch.histogram(ref_values.clamp(-1, 1), edges).hist / ref_values.numel()
    quantiles = torch.linspace(0.0005, 0.9995, 2000, dtype=torch.float64)
    wasserstein = (_quantile(values, quantiles) - _quantile(ref_values, quantiles)).abs().mean()
    spectrum, ref_spectrum = radial_power_spectrum(images), radial_power_spectrum(reference)
    spectrum_db = (10 * torch.log10(spectrum[1:] / ref_spectrum[1:])).abs().mean()
    return {"histogram_intersection": float(torch.minimum(hist, ref_hist).sum()),
            "wasserstein": float(wasserstein) * scale, "spectrum_db": float(spectrum_db),
            "mean": float(values.mean()) * scale, "std": float(values.std()) * scale,
            "reference_mean": float(ref_values.mean()) * scale, "reference_std": float(ref_values.std()) * scale,
            "images": int(images.shape[0])}


def _quantile(values: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    step = max(1, values.numel() // 2 ** 23)
    return torch.quantile(values[::step], q)
