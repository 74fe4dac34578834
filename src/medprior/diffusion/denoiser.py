"""The one interface between priors and every sampler or inverse solver: the Tweedie estimate.

A :class:`Denoiser` has a :class:`~medprior.diffusion.schedule.VPSchedule` and returns
``x0_hat(x_t, t) = E[x_0 | x_t]`` for a batch. Samplers (DDPM, DDIM, DPM-Solver++) and the
diffusion inverse solvers use nothing else, so a trained network (:class:`NetworkDenoiser`) and
an exact closed form (:mod:`medprior.diffusion.gaussian`) are interchangeable; this is how the
samplers are tested without any training.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from medprior.devices import autocast
from medprior.diffusion import parametrization as param
from medprior.diffusion.normalization import Normalization
from medprior.diffusion.schedule import VPSchedule, broadcast


class Denoiser(Protocol):
    """x0_hat(x_t, t): ``x_t`` (B, *shape) float, ``t`` (B,) long timesteps -> (B, *shape)."""

    schedule: VPSchedule

    def __call__(self, x_t: Tensor, t: Tensor) -> Tensor: ...


class NetworkDenoiser(nn.Module):
    """Wraps a network ``net(x, t) -> output`` trained in a given parametrization.

    Args:
        network: module called as ``network(input, timesteps)``; ``input`` is ``x_t`` with the
            conditioning channels (if any) concatenated after it on dim 1.
        schedule: the schedule it was trained with.
        parametrization: ``"eps"``, ``"x0"`` or ``"v"``.
        condition: optional (B, Cc, *spatial) tensor concatenated to every input (channel
            conditioning, as cWDM and the segmentation model do); a batch of 1 is broadcast. A call
            may pass its own, item by item (such as each patch's depth in its frame).
        clip: optional (low, high) range the x0 estimate is clamped to.
        normalization: how image intensities map to the network's [-1, 1] (the prior's); inverse
            solvers use it to bring a problem into the denoiser's units
            (:meth:`medprior.solvers.problem.InverseProblem.for_denoiser`). None: the caller's
            data are already in those units.
        orientation: grid orientation of the training volumes (e.g. ``"LPS"``), for slice priors
            (:mod:`medprior.diffusion.orientation`); None: unknown, slices are denoised as given.
        image_size: the spatial size the network was trained on, None if it does not matter.
    """

    def __init__(self, network: nn.Module, schedule: VPSchedule, parametrization: str,
                 condition: Tensor | None = None, clip: tuple[float, float] | None = None, *,
                 normalization: Normalization | None = None, orientation: str | None = None,
                 image_size: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.network = network
        self.schedule = schedule
        self.parametrization = param.check(parametrization)
        self.condition = condition
        self.clip = clip
        self.normalization, self.orientation, self.image_size = normalization, orientation, image_size

    def forward(self, x_t: Tensor, t: Tensor, condition: Tensor | None = None) -> Tensor:
        """x0_hat of ``x_t`` (B, C, *spatial) at ``t`` (B,); ``condition`` (B, Cc, *spatial) in place of
        the bound one for this call."""
        t = torch.as_tensor(t, device=x_t.device).long().expand(x_t.shape[0])
        inputs = x_t
        condition = self.condition if condition is None else condition
        if condition is not None:
            condition = condition.to(x_t)
            inputs = torch.cat([x_t, condition.expand(x_t.shape[0], *condition.shape[1:])], dim=1)
        with autocast(x_t.device):  # bf16 on CUDA, nothing on CPU
            output = self.network(inputs, t).to(x_t.dtype)
        alpha, sigma = broadcast(self.schedule.alpha(t), x_t), broadcast(self.schedule.sigma(t), x_t)
        x0 = param.to_x0(output, x_t, alpha, sigma, self.parametrization)
        return x0.clamp(*self.clip) if self.clip is not None else x0
