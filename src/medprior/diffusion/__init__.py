"""Diffusion priors: schedules, the Tweedie-denoiser interface, exact test denoisers and samplers."""

from __future__ import annotations

from medprior.diffusion.denoiser import Denoiser, NetworkDenoiser
from medprior.diffusion.gaussian import GaussianDenoiser, GaussianMixtureDenoiser
from medprior.diffusion.samplers import ddim, ddpm, dpmpp_2m, sample
from medprior.diffusion.schedule import VPSchedule

__all__ = [
    "Denoiser",
    "GaussianDenoiser",
    "GaussianMixtureDenoiser",
    "NetworkDenoiser",
    "VPSchedule",
    "ddim",
    "ddpm",
    "dpmpp_2m",
    "sample",
]
