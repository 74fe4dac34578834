"""What a diffusion network predicts, and the conversions between the three choices.

With ``x_t = alpha x0 + sigma eps`` (``alpha^2 + sigma^2 = 1``):

- ``eps``: the noise; ``x0 = (x_t - sigma eps) / alpha``;
- ``x0``: the clean signal itself (cWDM predicts it);
- ``v``: ``v = alpha eps - sigma x0`` (Salimans & Ho); ``x0 = alpha x_t - sigma v``,
  ``eps = sigma x_t + alpha v``.

``alpha`` and ``sigma`` are tensors broadcastable to ``x_t`` (see ``schedule.broadcast``).
"""

from __future__ import annotations

from torch import Tensor

PARAMETRIZATIONS = ("eps", "x0", "v")


def check(parametrization: str) -> str:
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"parametrization {parametrization!r}: expected one of {PARAMETRIZATIONS}")
    return parametrization


def to_x0(output: Tensor, x_t: Tensor, alpha: Tensor, sigma: Tensor, parametrization: str) -> Tensor:
    """The Tweedie estimate x0_hat from a network output in the given parametrization."""
    if check(parametrization) == "eps":
        return (x_t - sigma * output) / alpha
    if parametrization == "x0":
        return output
    return alpha * x_t - sigma * output


def target(x0: Tensor, noise: Tensor, alpha: Tensor, sigma: Tensor, parametrization: str) -> Tensor:
    """The regression target of training for a clean ``x0`` noised with ``noise``."""
    if check(parametrization) == "eps":
        return noise
    if parametrization == "x0":
        return x0
    return alpha * noise - sigma * x0


def eps_from_x0(x0: Tensor, x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """The noise implied by an x0 estimate: (x_t - alpha x0) / sigma."""
    return (x_t - alpha * x0) / sigma
