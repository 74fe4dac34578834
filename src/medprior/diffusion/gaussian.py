"""Exact Tweedie denoisers of Gaussian and Gaussian-mixture data, for testing without training.

For data ``x0 ~ N(mu, Sigma)`` over flattened samples (``d = prod(shape)``) and
``x_t = alpha x0 + sigma eps``, ``x_t ~ N(alpha mu, alpha^2 Sigma + sigma^2 I)`` and

    E[x0 | x_t] = mu + alpha Sigma (alpha^2 Sigma + sigma^2 I)^{-1} (x_t - alpha mu),

computed in float64 in the eigenbasis of ``Sigma`` (``Sigma = U diag(lam) U^T``, so the inverse is
elementwise). A mixture ``sum_k pi_k N(mu_k, Sigma_k)`` averages the components' estimates with
the posterior responsibilities ``w_k ∝ pi_k N(x_t; alpha mu_k, alpha^2 Sigma_k + sigma^2 I)``.
Both follow the :class:`~medprior.diffusion.denoiser.Denoiser` protocol.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from medprior.diffusion.schedule import VPSchedule


class GaussianMixtureDenoiser:
    """Exact x0_hat for data ``sum_k weights_k N(means_k, covariances_k)``.

    Args:
        weights: (K,) mixture weights, positive, summing to 1 (to 1e-6).
        means: (K, d) component means.
        covariances: (K, d, d) symmetric positive semi-definite component covariances.
        schedule: the diffusion schedule x_t is noised with.
    """

    def __init__(self, weights: Tensor, means: Tensor, covariances: Tensor, schedule: VPSchedule) -> None:
        weights, means, covariances = (torch.as_tensor(v, dtype=torch.float64) for v in (weights, means, covariances))
        k, d = means.shape
        if weights.shape != (k,) or covariances.shape != (k, d, d):
            raise ValueError(f"mixture needs weights (K,), means (K, d), covariances (K, d, d); got "
                             f"{tuple(weights.shape)}, {tuple(means.shape)}, {tuple(covariances.shape)}")
        if (weights <= 0).any() or not math.isclose(float(weights.sum()), 1.0, abs_tol=1e-6):
            raise ValueError(f"mixture weights must be positive and sum to 1, got {weights.tolist()}")
        if not torch.allclose(covariances, covariances.mT):
            raise ValueError("covariances must be symmetric")
        self.eigenvalues, self.eigenvectors = torch.linalg.eigh(covariances)
        if (self.eigenvalues < -1e-12 * self.eigenvalues.abs().amax()).any():
            raise ValueError(f"covariances must be positive semi-definite, eigenvalues {self.eigenvalues.tolist()}")
        self.eigenvalues = self.eigenvalues.clamp_min(0)
        self.log_weights, self.means, self.schedule = (weights / weights.sum()).log(), means, schedule

    def __call__(self, x_t: Tensor, t: Tensor) -> Tensor:
        """x_t (B, *shape) with prod(shape) = d, t (B,) long -> x0_hat (B, *shape) in x_t's dtype."""
        alpha = self.schedule.alpha(t).to(x_t.device)[:, None, None]  # (B, 1, 1)
        sigma = self.schedule.sigma(t).to(x_t.device)[:, None, None]
        means, eigenvalues, eigenvectors = (v.to(x_t.device) for v in (self.means, self.eigenvalues, self.eigenvectors))
        x = x_t.reshape(x_t.shape[0], 1, -1).double()  # (B, 1, d)
        z = torch.einsum("bkd,kde->bke", x - alpha * means, eigenvectors)  # (B, K, d) in each eigenbasis
        variance = alpha**2 * eigenvalues + sigma**2  # (B, K, d): Cov(x_t | component k), diagonalised
        component_x0 = means + torch.einsum("bke,kde->bkd", alpha * eigenvalues / variance * z, eigenvectors)
        if len(means) == 1:
            return component_x0.reshape(x_t.shape).to(x_t.dtype)
        log_likelihood = -0.5 * (z**2 / variance + variance.log()).sum(-1)  # (B, K), up to a constant
        responsibilities = torch.softmax(self.log_weights.to(x_t.device) + log_likelihood, dim=-1)
        x0 = torch.einsum("bk,bkd->bd", responsibilities, component_x0)
        return x0.reshape(x_t.shape).to(x_t.dtype)


class GaussianDenoiser(GaussianMixtureDenoiser):
    """Exact x0_hat for data ``N(mean, covariance)``: mean (d,), covariance (d, d)."""

    def __init__(self, mean: Tensor, covariance: Tensor, schedule: VPSchedule) -> None:
        mean, covariance = torch.as_tensor(mean), torch.as_tensor(covariance)
        super().__init__(torch.ones(1), mean[None], covariance[None], schedule)
