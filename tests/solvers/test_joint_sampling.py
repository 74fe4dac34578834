"""Joint posterior sampling of tissue and haze on exact Gaussian priors, without training.

Tissue patches (4 x 4) are smooth, ``N(0, Sigma_x)`` with a squared-exponential covariance, haze
patches white, ``N(0, s^2 I)``; the measurement is ``y = C(C^-1(x) + C^-1(h))``. The exact Tweedie
denoisers of :mod:`medprior.diffusion.gaussian` stand in for trained priors. Checks: with no haze
the tissue estimate is the measurement and the haze nothing (and the other way round), and with
both the tissue estimate is closer to the true tissue than the measurement is (the priors separate
what the sum mixed), for both ways of taking the data gradient; a prior with another schedule is refused.
"""

from __future__ import annotations

import pytest
import torch

from medprior.diffusion import GaussianDenoiser, VPSchedule
from medprior.errors import ParameterError
from medprior.physics.beamform import compand, expand
from medprior.solvers.joint_sampling import _Patched, joint_posterior_sampling, misfit, start_grid

SCHEDULE = VPSchedule("cosine", 1000)
PATCH = (4, 4)
SHAPE = (8, 10)


def smooth_covariance(shape, variance, length):
    rows, cols = torch.meshgrid(torch.arange(shape[0]), torch.arange(shape[1]), indexing="ij")
    points = torch.stack([rows.flatten(), cols.flatten()], 1).double()
    distance = torch.cdist(points, points)
    return variance * torch.exp(-distance ** 2 / (2 * length ** 2)) + 1e-6 * torch.eye(points.shape[0])


def white(variance, size=16):
    return GaussianDenoiser(torch.zeros(size), variance * torch.eye(size), SCHEDULE)


def draw(seed, x_variance=0.04, h_variance=0.01):
    generator = torch.Generator().manual_seed(seed)
    factor = torch.linalg.cholesky(smooth_covariance(SHAPE, x_variance, 2.0))
    x = (factor @ torch.randn(factor.shape[0], generator=generator, dtype=torch.float64)).reshape(SHAPE)
    h = h_variance ** 0.5 * torch.randn(SHAPE, generator=generator, dtype=torch.float64)
    return x.float(), h.float(), compand(expand(x) + expand(h)).float()


def run(y, tissue, haze, gradient="network", seed=0, samples=1, **options):
    x, h = joint_posterior_sampling(y, tissue, haze, patch_size=PATCH, steps=options.pop("steps", 30),
                                    gradient=gradient, samples=samples, generator=torch.Generator().manual_seed(seed),
                                    **options)
    assert x.shape == h.shape == (samples, *y.shape)
    return (x[0], h[0]) if samples == 1 else (x, h)


@pytest.mark.parametrize("gradient", ["network", "tweedie"])
def test_without_haze_the_tissue_is_the_measurement(gradient):
    _, _, y = draw(1, h_variance=0.0)
    tissue = GaussianDenoiser(torch.zeros(16), smooth_covariance(PATCH, 0.04, 2.0), SCHEDULE)
    x, h = run(y, tissue, white(1e-8), gradient, start=0.3, lam=STEP[gradient], kappa=STEP[gradient])
    assert torch.linalg.vector_norm(x - y) < 0.1 * torch.linalg.vector_norm(y)
    assert h.abs().max() < 1e-2


STEP = {"network": 1.0, "tweedie": 0.5}  # tweedie: lam + kappa = 1 moves the sum of the estimates onto y


def separation(gradient, tissue, haze):
    """Error of the tissue estimate over the measurement's, summed over 4 draws; the misfit likewise."""
    errors_x, errors_y, misfits = 0.0, 0.0, 0.0
    for seed in range(4):
        x_true, _, y = draw(seed)
        x, h = run(y, tissue, haze, gradient, seed=seed, start=0.5, lam=STEP[gradient], kappa=STEP[gradient])
        errors_x += float(torch.linalg.vector_norm(x - x_true))
        errors_y += float(torch.linalg.vector_norm(y - x_true))
        misfits += float(misfit(y, x, h, 1.0))
    return errors_x / errors_y, misfits / errors_y


@pytest.mark.parametrize("gradient", ["network", "tweedie"])
def test_the_priors_separate_smooth_tissue_from_white_haze(gradient):
    smooth = GaussianDenoiser(torch.zeros(16), smooth_covariance(PATCH, 0.04, 2.0), SCHEDULE)
    error, data_misfit = separation(gradient, smooth, white(0.01))
    assert error < 0.9 and data_misfit < 0.5  # measured 0.76 / 0.31 (network), 0.83 / 0.16 (tweedie)
    swapped, _ = separation(gradient, white(0.01), smooth)  # the wrong priors put the haze into the tissue
    assert swapped > 1.2


def test_the_mean_of_posterior_samples_is_nearer_the_truth_than_one_sample():
    smooth = GaussianDenoiser(torch.zeros(16), smooth_covariance(PATCH, 0.04, 2.0), SCHEDULE)
    one, mean, spread = 0.0, 0.0, 0.0
    for seed in range(4):
        x_true, _, y = draw(seed)
        x, _ = run(y, smooth, white(0.01), seed=seed, samples=8, start=0.5, eta=1.0)
        one += float(torch.linalg.vector_norm(x[0] - x_true) ** 2)
        mean += float(torch.linalg.vector_norm(x.mean(0) - x_true) ** 2)
        spread += float(x.var(0).sum())
    assert spread > 0.05 * one  # the chains are distinct draws, not copies of one
    assert mean < 0.9 * one


class WhiteWhereTold:
    """Closed-form Tweedie denoiser of white noise whose variance each pixel's condition sets: ``variance``
    where the condition is negative, none elsewhere (a haze prior told each pixel's depth)."""

    schedule = SCHEDULE

    def __init__(self, variance):
        self.variance = variance

    def __call__(self, x_t, t, condition):
        abar = SCHEDULE.alphas_cumprod[t].to(x_t).reshape(-1, 1, 1, 1)
        variance = torch.where(condition < 0, self.variance, 1e-10).to(x_t)
        return abar.sqrt() * variance / (abar * variance + 1 - abar) * x_t


def test_each_patch_is_given_its_own_part_of_the_condition():
    condition = torch.arange(SHAPE[0] * SHAPE[1], dtype=torch.float32).reshape(1, *SHAPE)
    given = _Patched(lambda x_t, t, condition: condition, SHAPE, PATCH, batch=3, condition=condition)
    assert torch.equal(given(torch.zeros(2, *SHAPE), 5), condition.expand(2, *SHAPE))  # 2 samples, patches in 3s


def test_a_conditioned_haze_prior_puts_the_haze_only_where_its_condition_allows():
    _, _, y = draw(2, h_variance=0.01)
    depth = torch.linspace(-1, 1, SHAPE[0])[None, :, None].expand(1, *SHAPE)
    tissue = GaussianDenoiser(torch.zeros(16), smooth_covariance(PATCH, 0.04, 2.0), SCHEDULE)
    _, h = run(y, tissue, WhiteWhereTold(0.01), haze_condition=depth, start=0.5)
    near, far = h[depth[0] < 0], h[depth[0] > 0]
    assert float(near.square().mean()) > 1e-4 and float(far.square().mean()) < 1e-6 * float(near.square().mean())


def test_the_start_grid_and_the_settings_are_checked():
    assert start_grid(3, 10) == [10, 5, 0]
    with pytest.raises(ParameterError, match="steps"):
        start_grid(12, 10)
    y = torch.zeros(SHAPE)
    with pytest.raises(ParameterError, match="same noise schedule"):
        joint_posterior_sampling(y, white(0.1), GaussianDenoiser(torch.zeros(16), torch.eye(16), VPSchedule("linear")),
                                 patch_size=PATCH)
    with pytest.raises(ParameterError, match="gradient"):
        joint_posterior_sampling(y, white(0.1), white(0.1), patch_size=PATCH, gradient="adjoint")
