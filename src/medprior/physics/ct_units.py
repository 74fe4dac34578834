"""CT units and low-dose noise: Hounsfield units <-> linear attenuation (1/mm), Poisson transmission.

On disk CT is in HU; inside the CT operator it is the linear attenuation ``mu`` in 1/mm, so a
sinogram of line integrals ``p = integral mu dl`` (dl in mm) is dimensionless and the detected
photon count of a ray is ``N ~ Poisson(I0 exp(-p))`` (Beer-Lambert).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from medprior.errors import InputError

MU_WATER_PER_MM = 0.0192
"""Linear attenuation of water in 1/mm at about 70 keV (the effective energy of a 120 kVp CT
spectrum): 0.192 /cm (NIST XCOM, water, 60-80 keV: 0.206-0.184 /cm)."""

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor, float)


def hu_to_attenuation(hu: ArrayT, mu_water: float = MU_WATER_PER_MM) -> ArrayT:
    """``mu = mu_water * (1 + HU / 1000)`` in 1/mm, clamped at 0 (air is -1000 HU).

    Works on numpy arrays, torch tensors (kept on their device and dtype) and floats.
    """
    mu = mu_water * (1.0 + hu / 1000.0)
    if isinstance(mu, torch.Tensor):
        return mu.clamp_min(0.0)
    if isinstance(mu, np.ndarray):
        return np.maximum(mu, 0.0)
    return max(float(mu), 0.0)  # type: ignore[return-value]


def attenuation_to_hu(mu: ArrayT, mu_water: float = MU_WATER_PER_MM) -> ArrayT:
    """``HU = 1000 * (mu / mu_water - 1)`` for ``mu`` in 1/mm (the inverse of :func:`hu_to_attenuation`)."""
    return 1000.0 * (mu / mu_water - 1.0)


def poisson_transmission_noise(sinogram: torch.Tensor, incident_photons: float,
                               generator: torch.Generator | None = None) -> torch.Tensor:
    """Low-dose line integrals ``-log(max(N, 1) / I0)`` with ``N ~ Poisson(I0 exp(-p))``.

    For large counts the result has mean about ``p`` and variance about ``exp(p) / I0``.

    Args:
        sinogram: noiseless line integrals ``p`` (dimensionless), any shape, float32/float64.
        incident_photons: ``I0``, photons per ray entering the object (> 0).
        generator: torch generator on the sinogram's device, for reproducible noise.

    Returns:
        Noisy line integrals, same shape, dtype and device; a ray with zero counts gives
        ``log(I0)`` (the count is clamped at one photon).
    """
    if not incident_photons > 0:
        raise InputError(None, f"incident_photons must be > 0, got {incident_photons}")
    rate = incident_photons * torch.exp(-sinogram.to(torch.float64))
    counts = torch.poisson(rate, generator=generator).clamp_min(1.0)
    return (-torch.log(counts / incident_photons)).to(sinogram.dtype)
