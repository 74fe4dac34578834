"""Samplers tested without training, with the exact Tweedie denoisers of Gaussian and mixture data.

Statistics. With N samples and a reference law N(m, C) whitened by ``W = chol(C)^{-1}``, the
whitened sample mean ``W (mean - m)`` has standard error 1/sqrt(N) per entry and the whitened
sample covariance ``W cov W^T - I`` at most sqrt(2/N); a check passes within 5 standard errors
plus a stated allowance. The data are 3-D, correlated, with covariance eigenvalues 0.05, 0.5, 2.

References. At 1000 steps every sampler is compared with the data law itself. On 50 and 10
steps the discretisation error is large (DDIM keeps 27% of the variance of the 0.05 direction at
10 linear-schedule steps, 79% at 50), so no small allowance would do; there every sampler is
compared with the exact law of its own discretisation on Gaussian data, :func:`discretised_law`,
written independently of the samplers and itself checked against the data law at 1000 steps.
Ancestral DDPM and DDIM with eta = 1 are different formulas for the same chain: they must agree
draw for draw. ``test_corrupted_samplers_are_rejected`` shows that the checks have teeth.
"""

from __future__ import annotations

import math

import pytest
import torch

from medprior.diffusion import (GaussianDenoiser, GaussianMixtureDenoiser, VPSchedule, ddim, ddpm,
                                dpmpp_2m, sample)
from medprior.diffusion import parametrization as param

f64 = torch.float64
EIGENVALUES = torch.tensor([0.05, 0.5, 2.0], dtype=f64)
EIGENVECTORS = torch.linalg.qr(torch.tensor([[1.0, 0.4, -0.3], [0.2, 1.0, 0.5], [-0.6, 0.1, 1.0]], dtype=f64)).Q
MEAN = torch.tensor([1.0, -0.8, 0.5], dtype=f64)
COVARIANCE = EIGENVECTORS @ torch.diag(EIGENVALUES) @ EIGENVECTORS.T

WEIGHTS = torch.tensor([0.2, 0.3, 0.5], dtype=f64)
MEANS = torch.tensor([[-2.0, 1.0], [2.0, 1.5], [0.5, -2.0]], dtype=f64)
COVARIANCES = torch.tensor([[[0.2, 0.05], [0.05, 0.1]], [[0.1, 0.0], [0.0, 0.3]], [[0.25, -0.1], [-0.1, 0.15]]],
                           dtype=f64)

SAMPLERS = {"ddpm": {"sampler": "ddpm"}, "ddim": {"sampler": "ddim"}, "ddim-eta1": {"sampler": "ddim", "eta": 1.0},
            "dpmpp": {"sampler": "dpmpp"}}
KINDS = ("linear", "cosine")
# Whitened distance of the 1000-step laws from the data: ancestral sampling's first-order variance
# error (3.1% on the 0.05 direction, linear schedule) and the N(0, I) start (mean <= 0.008).
DISCRETISATION_1000 = 0.035


def draw(denoiser, shape: tuple[int, int], steps: int, seed: int = 0, **kwargs) -> torch.Tensor:
    return sample(denoiser, shape, steps, generator=torch.Generator().manual_seed(seed), **kwargs)


def whitened_errors(mean, covariance, reference_mean, reference_covariance) -> tuple[float, float]:
    """Largest |entry| of ``W (mean - reference_mean)`` and of ``W covariance W^T - I``."""
    whiten = torch.linalg.inv(torch.linalg.cholesky(reference_covariance))
    identity = torch.eye(len(mean), dtype=f64)
    return (float((whiten @ (mean - reference_mean)).abs().max()),
            float((whiten @ covariance @ whiten.T - identity).abs().max()))


def assert_gaussian(samples: torch.Tensor, mean: torch.Tensor, covariance: torch.Tensor, allowance: float = 0.0):
    """Samples (N, d) match N(mean, covariance) within 5 standard errors plus ``allowance`` (whitened)."""
    n = samples.shape[0]
    x = samples.to(f64)
    mean_error, covariance_error = whitened_errors(x.mean(0), torch.cov(x.T), mean, covariance)
    assert mean_error <= 5 / math.sqrt(n) + allowance, f"whitened mean error {mean_error:.4f}"
    assert covariance_error <= 5 * math.sqrt(2 / n) + allowance, f"whitened covariance error {covariance_error:.4f}"


def assert_mixture(samples: torch.Tensor, weights: torch.Tensor = WEIGHTS, component_means: bool = True):
    """Samples (N, 2), assigned to the nearest component mean, have the mixture's weights (and means)."""
    n = samples.shape[0]
    x = samples.to(f64)
    label = torch.cdist(x, MEANS).argmin(1)
    for k, weight in enumerate(weights):
        members = x[label == k]
        found = len(members) / n
        assert abs(found - weight) <= 5 * math.sqrt(weight * (1 - weight) / n), f"component {k} weight {found:.4f}"
        if component_means:
            error = ((members.mean(0) - MEANS[k]) / (COVARIANCES[k].diagonal() / len(members)).sqrt()).abs().max()
            assert error <= 5, f"component {k} mean off by {error:.1f} standard errors"


def discretised_law(name: str, schedule: VPSchedule, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact (mean, covariance) of the samples of Gaussian data drawn by sampler ``name``.

    Per eigen-direction (variance ``lam``) of the data, ``y_t = x_t - alpha_t mu`` is mapped
    linearly (plus independent noise for the ancestral samplers), so the output is
    ``mu + gain y_{T-1} + noise`` with ``y_{T-1} ~ N(-alpha_{T-1} mu, I)``; the Tweedie estimate
    is ``x0_hat - mu = alpha_t lam / r_t^2 y_t`` with ``r_t^2 = alpha_t^2 lam + sigma_t^2``.

    - ``ddim``: in polar form ``y_t = r_t (cos theta_t, sin theta_t)`` over (signal, noise),
      ``tan theta_t = sigma_t / (alpha_t sqrt(lam))``, a DDIM step projects instead of rotating:
      it multiplies by ``cos(theta_t - theta_s) r_s / r_t``, the last one to theta = 0 and
      r = sqrt(lam) (the exact flow would give ``sqrt(lam) / r_{T-1}``).
    - ``ddpm`` and ``ddim-eta1``: Song et al.'s eq. 12 with eta = 1 (a different form from the
      posterior of :func:`ddpm`).
    - ``dpmpp``: Algorithm 2 of Lu et al., first order on the first and on the last step.
    """
    grid = schedule.timesteps(steps).tolist()
    alpha, sigma = (lambda t: float(schedule.alpha(t))), (lambda t: float(schedule.sigma(t)))
    lam, noise = EIGENVALUES, torch.zeros_like(EIGENVALUES)

    def tweedie(t):
        return alpha(t) * lam / (alpha(t) ** 2 * lam + sigma(t) ** 2)

    if name == "ddim":
        theta = [torch.atan2(torch.full_like(lam, sigma(t)), alpha(t) * lam.sqrt()) for t in grid] + [0 * lam]
        gain = lam.sqrt() / (alpha(grid[0]) ** 2 * lam + sigma(grid[0]) ** 2).sqrt()
        for theta_t, theta_s in zip(theta, theta[1:]):
            gain = gain * torch.cos(theta_t - theta_s)
    elif name in ("ddpm", "ddim-eta1"):
        gain = torch.ones_like(lam)
        for t, s in zip(grid, grid[1:]):
            c2 = sigma(s) ** 2 / sigma(t) ** 2 * (1 - alpha(t) ** 2 / alpha(s) ** 2)
            step = alpha(s) * tweedie(t) + math.sqrt(sigma(s) ** 2 - c2) * (1 - alpha(t) * tweedie(t)) / sigma(t)
            gain, noise = step * gain, step**2 * noise + c2
        gain, noise = tweedie(0) * gain, tweedie(0) ** 2 * noise
    else:
        gain, previous = torch.ones_like(lam), None  # previous: (Tweedie gain, h) of the last step
        for t, s in zip(grid, grid[1:]):
            h = float(schedule.log_snr(s) - schedule.log_snr(t))
            d = tweedie(t) * gain
            if previous is not None and s > 0:
                r = previous[1] / h
                d = (1 + 1 / (2 * r)) * d - 1 / (2 * r) * previous[0]
            previous = (tweedie(t) * gain, h)
            gain = sigma(s) / sigma(t) * gain + alpha(s) * (1 - math.exp(-h)) * d
        gain = tweedie(0) * gain
    matrix = EIGENVECTORS @ torch.diag(gain) @ EIGENVECTORS.T
    return MEAN - alpha(grid[0]) * matrix @ MEAN, EIGENVECTORS @ torch.diag(gain**2 + noise) @ EIGENVECTORS.T


# --- the reference denoisers are the closed forms ---------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_gaussian_denoiser_is_the_conditional_mean(kind):
    schedule = VPSchedule(kind)
    t = torch.tensor([0, 10, 300, 999])
    x_t = torch.randn(4, 3, generator=torch.Generator().manual_seed(1), dtype=f64)
    a, s = schedule.alpha(t)[:, None, None], schedule.sigma(t)[:, None, None]
    gain = a * COVARIANCE @ torch.linalg.inv(a**2 * COVARIANCE + s**2 * torch.eye(3, dtype=f64))
    expected = MEAN + (gain @ (x_t - a[:, 0] * MEAN)[..., None])[..., 0]
    torch.testing.assert_close(GaussianDenoiser(MEAN, COVARIANCE, schedule)(x_t, t), expected, rtol=1e-12, atol=1e-12)
    assert GaussianDenoiser(MEAN, COVARIANCE, schedule)(x_t.float().reshape(4, 1, 3), t).shape == (4, 1, 3)


def test_mixture_denoiser_is_the_posterior_average():
    schedule = VPSchedule("cosine")
    t = torch.tensor([5, 200, 500, 900])
    x_t = 2 * torch.randn(4, 2, generator=torch.Generator().manual_seed(2), dtype=f64)
    a, s = schedule.alpha(t)[:, None, None], schedule.sigma(t)[:, None, None]
    noisy = a[..., None] ** 2 * COVARIANCES + s[..., None] ** 2 * torch.eye(2, dtype=f64)  # (B, K, 2, 2)
    log_p = torch.distributions.MultivariateNormal(a * MEANS, noisy).log_prob(x_t[:, None])  # (B, K)
    posterior = torch.softmax(WEIGHTS.log() + log_p, dim=1)
    per_component = MEANS + (a[..., None] * COVARIANCES @ torch.linalg.solve(noisy, (x_t[:, None] - a * MEANS)[..., None]))[..., 0]
    expected = (posterior[..., None] * per_component).sum(1)
    torch.testing.assert_close(GaussianMixtureDenoiser(WEIGHTS, MEANS, COVARIANCES, schedule)(x_t, t), expected,
                               rtol=1e-10, atol=1e-10)


# --- the samplers reproduce the data ------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", SAMPLERS)
def test_discretised_law_converges_to_the_data(name, kind):
    errors = whitened_errors(*discretised_law(name, VPSchedule(kind), 1000), MEAN, COVARIANCE)
    assert max(errors) <= DISCRETISATION_1000


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", SAMPLERS)
def test_1000_steps_reproduce_gaussian_data(name, kind):
    schedule = VPSchedule(kind)
    samples = draw(GaussianDenoiser(MEAN, COVARIANCE, schedule), (10_000, 3), 1000, **SAMPLERS[name])
    assert_gaussian(samples, MEAN, COVARIANCE, DISCRETISATION_1000)
    assert_gaussian(samples, *discretised_law(name, schedule, 1000))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("steps", [50, 10])
@pytest.mark.parametrize("name", SAMPLERS)
def test_respaced_samplers_have_their_exact_discretised_law(name, steps, kind):
    schedule = VPSchedule(kind)
    samples = draw(GaussianDenoiser(MEAN, COVARIANCE, schedule), (20_000, 3), steps, **SAMPLERS[name])
    assert_gaussian(samples, *discretised_law(name, schedule, steps))


@pytest.mark.parametrize("steps", [50, 10])
def test_ddpm_is_ddim_with_eta_one(steps):
    denoiser = GaussianDenoiser(MEAN, COVARIANCE, VPSchedule("cosine"))
    x_T = torch.randn(64, 3, generator=torch.Generator().manual_seed(3), dtype=f64)
    ancestral = ddpm(denoiser, (64, 3), steps, generator=torch.Generator().manual_seed(4), x_T=x_T)
    implicit = ddim(denoiser, (64, 3), steps, eta=1.0, generator=torch.Generator().manual_seed(4), x_T=x_T)
    torch.testing.assert_close(ancestral, implicit, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["ddpm", "ddim", "dpmpp"])
def test_1000_steps_reproduce_mixture(name, kind):
    denoiser = GaussianMixtureDenoiser(WEIGHTS, MEANS, COVARIANCES, VPSchedule(kind))
    assert_mixture(draw(denoiser, (4000, 2), 1000, **SAMPLERS[name]))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("steps", [50, 10])
@pytest.mark.parametrize("name", ["ddim", "dpmpp"])
def test_respaced_samplers_keep_mixture_weights(name, steps, kind):
    denoiser = GaussianMixtureDenoiser(WEIGHTS, MEANS, COVARIANCES, VPSchedule(kind))
    assert_mixture(draw(denoiser, (8000, 2), steps, **SAMPLERS[name]), component_means=False)


# --- the checks reject wrong samplers -----------------------------------------------------------


class Corrupted:
    """A Gaussian denoiser whose estimate is ``mean + gain (x0_hat - mean) + shift``, on ``schedule``."""

    def __init__(self, schedule: VPSchedule, gain: float = 1.0, shift: float = 0.0, sampler_schedule=None):
        self.exact, self.gain, self.shift = GaussianDenoiser(MEAN, COVARIANCE, schedule), gain, shift
        self.schedule = sampler_schedule or schedule

    def __call__(self, x_t, t):
        return MEAN + self.gain * (self.exact(x_t, t) - MEAN) + self.shift


CORRUPTIONS = {
    "Tweedie gain 3% high": dict(gain=1.03),
    "Tweedie gain 3% low": dict(gain=0.97),
    "x0_hat shifted by 0.02": dict(shift=0.02),
    "sampler on the cosine schedule": dict(sampler_schedule=VPSchedule("cosine")),
}


@pytest.mark.parametrize("name", ["ddpm", "ddim", "dpmpp"])
@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_corrupted_samplers_are_rejected(corruption, name):
    schedule = VPSchedule("linear")
    samples = draw(Corrupted(schedule, **CORRUPTIONS[corruption]), (20_000, 3), 50, **SAMPLERS[name])
    with pytest.raises(AssertionError):
        assert_gaussian(samples, *discretised_law(name, schedule, 50))


def test_wrong_ddim_noise_coefficient_is_rejected(monkeypatch):
    schedule = VPSchedule("linear")
    eps_from_x0 = param.eps_from_x0
    monkeypatch.setattr(param, "eps_from_x0", lambda *args: 1.02 * eps_from_x0(*args))
    samples = draw(GaussianDenoiser(MEAN, COVARIANCE, schedule), (20_000, 3), 50)
    with pytest.raises(AssertionError):
        assert_gaussian(samples, *discretised_law("ddim", schedule, 50))


def test_wrong_mixture_weights_are_rejected():
    denoiser = GaussianMixtureDenoiser(torch.tensor([0.25, 0.25, 0.5]), MEANS, COVARIANCES, VPSchedule("cosine"))
    with pytest.raises(AssertionError, match="weight"):
        assert_mixture(draw(denoiser, (8000, 2), 50))


# --- interface -----------------------------------------------------------------------------------


class Counting:
    """Wraps a denoiser and counts its calls."""

    def __init__(self, denoiser):
        self.denoiser, self.schedule, self.calls = denoiser, denoiser.schedule, 0

    def __call__(self, x_t, t):
        assert t.shape == (x_t.shape[0],) and t.dtype == torch.long
        self.calls += 1
        return self.denoiser(x_t, t)


@pytest.mark.parametrize("steps", [1, 2, 10, 37])
@pytest.mark.parametrize("name", SAMPLERS)
def test_one_denoiser_call_per_step(name, steps):
    counting = Counting(GaussianDenoiser(MEAN, COVARIANCE, VPSchedule()))
    samples = draw(counting, (8, 3), steps, progress=steps == 10, **SAMPLERS[name])
    assert counting.calls == steps and samples.shape == (8, 3) and samples.dtype == torch.float32


def test_ddpm_defaults_to_every_training_step():
    counting = Counting(GaussianDenoiser(MEAN, COVARIANCE, VPSchedule(steps=40)))
    ddpm(counting, (2, 3))
    assert counting.calls == 40


@pytest.mark.parametrize("name", SAMPLERS)
def test_same_seed_same_samples(name):
    denoiser = GaussianDenoiser(MEAN, COVARIANCE, VPSchedule())
    torch.testing.assert_close(draw(denoiser, (16, 3), 20, seed=7, **SAMPLERS[name]),
                               draw(denoiser, (16, 3), 20, seed=7, **SAMPLERS[name]), rtol=0, atol=0)
    assert not torch.equal(draw(denoiser, (16, 3), 20, seed=7, **SAMPLERS[name]),
                           draw(denoiser, (16, 3), 20, seed=8, **SAMPLERS[name]))


@pytest.mark.parametrize("sampler", [ddim, dpmpp_2m])
def test_deterministic_samplers_depend_on_x_T_only(sampler):
    denoiser = GaussianDenoiser(MEAN, COVARIANCE, VPSchedule())
    x_T = torch.randn(16, 3, dtype=f64)
    first = sampler(denoiser, (16, 3), 20, generator=torch.Generator().manual_seed(1), x_T=x_T)
    second = sampler(denoiser, (16, 3), 20, generator=torch.Generator().manual_seed(2), x_T=x_T)
    assert first.dtype == f64 and torch.equal(first, second)


def test_unknown_sampler():
    with pytest.raises(ValueError, match="euler"):
        sample(GaussianDenoiser(MEAN, COVARIANCE, VPSchedule()), (2, 3), 10, sampler="euler")
