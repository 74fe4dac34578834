"""Joint posterior sampling of two signals from their sum, each with its own diffusion prior.

Stevens et al., "Dehazing Ultrasound using Diffusion Models" (IEEE TMI 2024), model a companded
beamformed frame ``y`` as tissue plus haze, ``y = C(C^-1(x) + gamma C^-1(h))`` (``C``: mu-law
companding, :func:`medprior.physics.beamform.compand`), give ``x`` and ``h`` a diffusion prior each
and sample both given ``y``:

- both chains start from the measurement diffused to an intermediate time ``t_start``:
  ``x_t = h_t = alpha y + sigma z`` (independent ``z``); the last ``steps`` grid times from there
  down to 0 follow;
- every step each prior gives its Tweedie estimate ``x0_hat``, ``h0_hat`` (patch by patch, patches
  of the prior's size overlapping by a quarter, stitched back by averaging, so the estimates of one
  image agree where patches meet: :mod:`medprior.diffusion.patches`), a DDIM step
  (:func:`medprior.diffusion.samplers.ddim_step`) moves both chains, and each is pushed down the
  gradient of the data misfit ``||y - C(C^-1(x0_hat) + gamma C^-1(h0_hat))||^2 / 2``, with step
  sizes ``lam`` (tissue) and ``kappa`` (haze) (the squared misfit, not DPS's norm, so the steps
  shrink as the fit improves);
- ``samples`` chains run side by side from independent starting noise: independent draws from the
  joint posterior, whose mean estimates the posterior mean (the least-squares estimate of any
  function of the tissue, such as its B-mode image);
- ``gradient="network"`` takes the gradient with respect to ``x_t`` and ``h_t`` through the
  networks, as diffusion posterior sampling does and the paper does; ``gradient="tweedie"`` takes it
  with respect to the estimates (no backpropagation through the networks, about a third of the
  cost) and moves the estimates before the DDIM step, which keeps the prior's noise estimate (as
  DDS does).

Written here because no library offers posterior sampling with two priors on one measurement; the
denoisers are any :class:`~medprior.diffusion.denoiser.Denoiser` (a trained prior, or a closed form).
A prior conditioned on a property of each pixel (such as its depth in the frame) is given a condition
image, and each patch its part of it (the denoiser is then called with ``condition=``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from medprior.diffusion.denoiser import Denoiser
from medprior.diffusion.parametrization import eps_from_x0
from medprior.diffusion.patches import extract, overlapping_corners, stitch
from medprior.diffusion.samplers import ddim_step, noise_like
from medprior.errors import ParameterError
from medprior.physics.beamform import compand, expand
from medprior.progress import progress_bar

GRADIENTS = ("network", "tweedie")


def start_grid(steps: int, t_start: int) -> list[int]:
    """``steps`` timesteps from ``t_start`` down to 0, evenly spaced (the partial diffusion's grid)."""
    if not 1 <= steps <= t_start + 1:
        raise ParameterError("steps", f"need 1 <= steps <= t_start + 1 = {t_start + 1}, got {steps}")
    return torch.linspace(t_start, 0, steps, dtype=torch.float64).round().long().tolist()


class _Patched:
    """A denoiser applied patch by patch to images (S, H, W), the estimates stitched back; with a
    ``condition`` image (Cc, H, W), each patch is given its own part of it (such as its depth)."""

    def __init__(self, denoiser: Denoiser, shape: Sequence[int], size: Sequence[int], batch: int,
                 condition: Tensor | None = None) -> None:
        self.denoiser, self.shape, self.size, self.batch = denoiser, tuple(shape), tuple(size), batch
        self.corners = overlapping_corners(self.shape, self.size)
        self.condition = None if condition is None else extract(condition, self.corners, self.size)

    def __call__(self, images: Tensor, t: int) -> Tensor:
        """Estimates (S, H, W) of ``images`` (S, H, W), each image's patches through the denoiser."""
        patches = extract(images, self.corners, self.size)
        flat = patches.reshape(-1, 1, *self.size)
        conditions = None if self.condition is None else \
            self.condition.repeat_interleave(images.shape[0], dim=0).to(images)  # patch-major, like flat
        estimates = []
        for first in range(0, len(flat), self.batch):
            chunk = flat[first:first + self.batch]
            extra = {} if conditions is None else {"condition": conditions[first:first + self.batch]}
            t_chunk = torch.full((chunk.shape[0],), t, dtype=torch.long, device=chunk.device)
            estimates.append(self.denoiser(chunk, t_chunk, **extra))
        return stitch(torch.cat(estimates).reshape(patches.shape), self.corners, self.shape)


def misfit(y: Tensor, x0: Tensor, h0: Tensor, gamma: float) -> Tensor:
    """``||y - C(C^-1(x0) + gamma C^-1(h0))||`` (the companded sum clipped to [-1, 1], like ``y``), over
    all of ``x0`` and ``h0`` (one image, or a stack of samples each against ``y``)."""
    model = compand((expand(x0.clamp(-1, 1)) + gamma * expand(h0.clamp(-1, 1))).clamp(-1, 1))
    return torch.linalg.vector_norm(y - model)


def joint_posterior_sampling(y: Tensor, tissue: Denoiser, haze: Denoiser, *, patch_size: Sequence[int], steps: int = 20,
                             start: float = 0.5, lam: float = 1.0, kappa: float = 1.0, gamma: float = 1.0,
                             eta: float = 0.0, gradient: str = "network", samples: int = 1, batch: int = 64,
                             tissue_condition: Tensor | None = None, haze_condition: Tensor | None = None,
                             generator: torch.Generator | None = None,
                             progress: bool = False) -> tuple[Tensor, Tensor]:
    """Samples of tissue and haze (each (samples, H, W), companded, in [-1, 1]) given a companded frame
    ``y`` (H, W).

    Args:
        y: the hazy frame, companded, in [-1, 1].
        tissue, haze: the two priors' denoisers (one schedule between them; inputs (B, 1, h, w)).
        patch_size: (h, w) the priors were trained on.
        steps: grid times from ``t_start = round(start (T - 1))`` down to 0 (network evaluations per prior).
        start: the intermediate time, a fraction of the schedule in (0, 1].
        lam, kappa: data-term weights of the tissue and the haze chains (>= 0).
        gamma: the haze's weight in the measurement model.
        eta: DDIM stochasticity (0 deterministic, 1 ancestral).
        gradient: ``"network"`` or ``"tweedie"`` (see the module docstring).
        samples: independent chains (draws from the posterior).
        batch: patches per network call.
        tissue_condition, haze_condition: condition images (Cc, H, W) of conditional priors, each
            patch given its part (the denoiser is then called with ``condition=``); None for others.
        generator: for the starting noise (and ``eta > 0``).
        progress: show a progress bar.
    """
    if gradient not in GRADIENTS:
        raise ParameterError("gradient", f"expected one of {GRADIENTS}, got {gradient!r}")
    if not (0 < start <= 1 and lam >= 0 and kappa >= 0 and gamma > 0 and 0 <= eta <= 1 and samples >= 1):
        raise ParameterError("dehaze", f"need 0 < start <= 1, lam >= 0, kappa >= 0, gamma > 0, 0 <= eta <= 1 and "
                                       f"samples >= 1; got start={start}, lam={lam}, kappa={kappa}, gamma={gamma}, "
                                       f"eta={eta}, samples={samples}")
    schedule = tissue.schedule
    if haze.schedule.alphas_cumprod.shape != schedule.alphas_cumprod.shape or not torch.allclose(
            haze.schedule.alphas_cumprod, schedule.alphas_cumprod):
        raise ParameterError("haze", "the tissue and haze priors need the same noise schedule")
    y = y.float()
    grid = start_grid(steps, round(start * (schedule.steps - 1)))
    denoise_x = _Patched(tissue, y.shape, patch_size, batch, tissue_condition)
    denoise_h = _Patched(haze, y.shape, patch_size, batch, haze_condition)
    abar = [float(schedule.alphas_cumprod[t]) for t in grid] + [1.0]
    chains = y.expand(samples, *y.shape)
    x = math.sqrt(abar[0]) * chains + math.sqrt(1 - abar[0]) * noise_like(chains, generator)
    h = math.sqrt(abar[0]) * chains + math.sqrt(1 - abar[0]) * noise_like(chains, generator)
    for i in progress_bar(range(len(grid)), desc="dehazing", unit="step", show=progress):
        t, abar_t, abar_s = grid[i], abar[i], abar[i + 1]
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(gradient == "network")
            h_in = h.detach().requires_grad_(gradient == "network")
            with torch.set_grad_enabled(gradient == "network"):
                x0, h0 = denoise_x(x_in, t), denoise_h(h_in, t)
            if gradient == "tweedie":
                x0, h0 = x0.detach().requires_grad_(), h0.detach().requires_grad_()
            half_squared = 0.5 * misfit(y, x0, h0, gamma) ** 2
            grad_x, grad_h = torch.autograd.grad(half_squared, (x_in, h_in) if gradient == "network" else (x0, h0))
        x0, h0 = x0.detach(), h0.detach()
        eps_x = eps_from_x0(x0, x, math.sqrt(abar_t), math.sqrt(1 - abar_t))  # the prior's noise estimate, as DDS
        eps_h = eps_from_x0(h0, h, math.sqrt(abar_t), math.sqrt(1 - abar_t))
        if gradient == "tweedie":
            x0, h0 = x0 - lam * grad_x, h0 - kappa * grad_h
        if i == len(grid) - 1:
            return x0.clamp(-1, 1), h0.clamp(-1, 1)
        x = ddim_step(x, x0, eps_x, abar_t, abar_s, eta, generator)
        h = ddim_step(h, h0, eps_h, abar_t, abar_s, eta, generator)
        if gradient == "network":
            x, h = x - lam * grad_x, h - kappa * grad_h
    raise AssertionError("unreachable: the grid ends at t = 0")
