"""Variance-preserving (VP) noise schedules on a discrete time grid.

The forward process is ``x_t = alpha_t * x_0 + sigma_t * eps`` with ``alpha_t = sqrt(abar_t)``,
``sigma_t = sqrt(1 - abar_t)`` and ``abar_t = prod_{s <= t} (1 - beta_s)`` for integer
``t = 0 .. T-1`` (T training steps, ``t = 0`` the least noisy). The betas are those of DDPM
(``linear``) and of improved DDPM (``cosine``, betas clipped at 0.999), the same as MONAI's
``linear_beta`` and ``cosine`` schedules (a test proves they agree). All coefficients are kept
in float64 and cast at use, so samplers do not lose precision at small sigma.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from medprior.errors import ParameterError

SCHEDULE_KINDS = ("linear", "cosine")


@dataclass(frozen=True)
class VPSchedule:
    """A discrete VP schedule.

    Args:
        kind: ``"linear"`` (betas from ``beta_start`` to ``beta_end``) or ``"cosine"``.
        steps: number of training timesteps T.
        beta_start, beta_end: linear schedule end points (ignored by ``cosine``).
        cosine_offset: the ``s`` of improved DDPM's cosine schedule.
    """

    kind: str = "linear"
    steps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 2e-2
    cosine_offset: float = 8e-3
    alphas_cumprod: Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULE_KINDS:
            raise ValueError(f"schedule kind {self.kind!r}: expected one of {SCHEDULE_KINDS}")
        if self.steps < 2:
            raise ValueError(f"a schedule needs at least 2 steps, got {self.steps}")
        if self.kind == "linear":
            betas = torch.linspace(self.beta_start, self.beta_end, self.steps, dtype=torch.float64)
        else:
            grid = torch.linspace(0, 1, self.steps + 1, dtype=torch.float64)
            offset = self.cosine_offset
            abar = torch.cos((grid + offset) / (1 + offset) * math.pi / 2) ** 2
            betas = (1 - abar[1:] / abar[:-1]).clamp(0, 0.999)
        object.__setattr__(self, "alphas_cumprod", torch.cumprod(1 - betas, dim=0))

    @property
    def betas(self) -> Tensor:
        """beta_t, float64 (T,)."""
        previous = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
        return 1 - self.alphas_cumprod / previous

    def alpha(self, t: Tensor | int) -> Tensor:
        """Signal scale sqrt(abar_t), float64, same shape as ``t``."""
        return self.alphas_cumprod[torch.as_tensor(t).cpu()].sqrt()

    def sigma(self, t: Tensor | int) -> Tensor:
        """Noise scale sqrt(1 - abar_t), float64, same shape as ``t``."""
        return (1 - self.alphas_cumprod[torch.as_tensor(t).cpu()]).sqrt()

    def log_snr(self, t: Tensor | int) -> Tensor:
        """lambda_t = log(alpha_t / sigma_t), float64, decreasing in t."""
        return torch.log(self.alpha(t) / self.sigma(t))

    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """x_t = alpha_t x0 + sigma_t noise; ``t`` (B,) long, x0 and noise (B, ...)."""
        return broadcast(self.alpha(t), x0) * x0 + broadcast(self.sigma(t), x0) * noise

    def timesteps(self, n: int) -> Tensor:
        """``n`` respaced timesteps from T-1 down to 0, evenly spaced (long, (n,)).

        Every sampler takes one network evaluation per entry, so ``n`` is its NFE.
        """
        if not 1 <= n <= self.steps:
            raise ParameterError("steps", f"sampling steps must be in 1..{self.steps} (the prior's schedule), got {n}")
        if n == 1:
            return torch.tensor([self.steps - 1])
        return torch.linspace(self.steps - 1, 0, n, dtype=torch.float64).round().long()

    def to_dict(self) -> dict:
        """JSON-serialisable description (what a prior file stores)."""
        return {k: v for k, v in asdict(self).items() if k != "alphas_cumprod"}

    @classmethod
    def from_dict(cls, description: dict) -> VPSchedule:
        return cls(**description)


def broadcast(coefficient: Tensor, like: Tensor) -> Tensor:
    """A per-sample coefficient (B,) or scalar, cast to ``like``'s dtype/device, shaped (B, 1, ..., 1)."""
    coefficient = torch.as_tensor(coefficient).to(device=like.device, dtype=like.dtype)
    return coefficient.reshape(-1, *([1] * (like.ndim - 1))) if coefficient.ndim else coefficient
