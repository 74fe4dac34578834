"""Our schedule and sampler steps agree with MONAI's schedulers wherever the two overlap."""

import pytest
import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

from medprior.diffusion import ddim, ddpm
from medprior.diffusion import parametrization as param
from medprior.diffusion.schedule import VPSchedule, broadcast


@pytest.mark.parametrize("ours, monai_name", [("linear", "linear_beta"), ("cosine", "cosine")])
def test_alphas_cumprod_equal_monai(ours, monai_name):
    schedule = VPSchedule(ours, 1000)
    reference = DDPMScheduler(num_train_timesteps=1000, schedule=monai_name).alphas_cumprod.double()
    assert torch.allclose(schedule.alphas_cumprod, reference, rtol=1e-5, atol=1e-7)
    monai_betas = DDPMScheduler(num_train_timesteps=1000, schedule=monai_name).betas.double()
    assert torch.allclose(schedule.betas, monai_betas, rtol=2e-3)  # MONAI works in float32; we keep float64


class RecordingDenoiser:
    """x0_hat = 0.6 x_t + 0.3 (a denoiser that depends on x_t), recording every x_t it is shown."""

    def __init__(self, schedule):
        self.schedule, self.inputs = schedule, []

    def __call__(self, x_t, t):
        self.inputs.append(x_t.clone())
        return 0.6 * x_t + 0.3


def monai_trajectory(scheduler, timesteps, x_T, generator=None):
    inputs, x = [], x_T.clone()
    for t in timesteps:
        inputs.append(x.clone())
        x, _ = scheduler.step(0.6 * x + 0.3, int(t), x, generator=generator)
    return inputs, x


def test_ddpm_steps_equal_monai_ddpm_scheduler():
    schedule = VPSchedule("linear", 10, beta_start=0.01, beta_end=0.2)
    scheduler = DDPMScheduler(num_train_timesteps=10, schedule="linear_beta", beta_start=0.01, beta_end=0.2,
                              prediction_type="sample", clip_sample=False)
    x_T = torch.randn(3, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    denoiser = RecordingDenoiser(schedule)
    ours = ddpm(denoiser, x_T.shape, generator=torch.Generator().manual_seed(7), x_T=x_T)
    inputs, theirs = monai_trajectory(scheduler, range(9, -1, -1), x_T, torch.Generator().manual_seed(7))
    for mine, reference in zip(denoiser.inputs, inputs, strict=True):
        assert torch.allclose(mine, reference.to(mine.dtype), atol=1e-5)
    assert torch.allclose(ours, theirs.to(ours.dtype), atol=1e-5)


def test_ddim_steps_equal_monai_ddim_scheduler():
    schedule = VPSchedule("linear", 10, beta_start=0.01, beta_end=0.2)
    scheduler = DDIMScheduler(num_train_timesteps=10, schedule="linear_beta", beta_start=0.01, beta_end=0.2,
                              prediction_type="sample", clip_sample=False, steps_offset=1)
    scheduler.set_timesteps(5)  # MONAI's grid: 9, 7, 5, 3, 1, each step to t - 2, the last to abar = 1
    grid = scheduler.timesteps.clone()
    object.__setattr__(schedule, "timesteps", lambda n: grid)
    x_T = torch.randn(3, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    denoiser = RecordingDenoiser(schedule)
    ours = ddim(denoiser, x_T.shape, 5, eta=0.0, x_T=x_T)
    inputs, theirs = monai_trajectory(scheduler, grid, x_T)
    for mine, reference in zip(denoiser.inputs, inputs, strict=True):
        assert torch.allclose(mine, reference.to(mine.dtype), atol=1e-5)
    assert torch.allclose(ours, theirs.to(ours.dtype), atol=1e-5)


@pytest.mark.parametrize("kind", ["eps", "x0", "v"])
def test_parametrizations_round_trip(kind):
    schedule = VPSchedule("cosine", 1000)
    t = torch.tensor([0, 250, 500, 999])
    x0, noise = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    alpha, sigma = broadcast(schedule.alpha(t), x0), broadcast(schedule.sigma(t), x0)
    x_t = schedule.add_noise(x0, noise, t)
    target = param.target(x0, noise, alpha, sigma, kind)
    assert torch.allclose(param.to_x0(target, x_t, alpha, sigma, kind), x0, atol=1e-6 if kind != "eps" else 1e-3)
    assert torch.allclose(param.eps_from_x0(x0, x_t, alpha, sigma), noise, atol=1e-9)


def test_respaced_timesteps_run_from_the_last_training_step_to_zero():
    schedule = VPSchedule("linear", 1000)
    for n in (1, 2, 10, 50, 1000):
        grid = schedule.timesteps(n)
        assert len(grid) == n and grid[0] == 999 and (n == 1 or grid[-1] == 0)
        assert (grid[1:] < grid[:-1]).all()
    with pytest.raises(ValueError):
        schedule.timesteps(1001)
