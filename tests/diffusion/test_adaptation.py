"""Low-rank adaptation of a prior during reconstruction (DDIP / D3IP): adapters that start as the
prior and merge into plain convolutions, gradients that do not depend on how slices are batched,
per-slice adapters that see only their slice, and a data misfit that goes down."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medprior.diffusion import GaussianDenoiser, VPSchedule
from medprior.diffusion.adaptation import (LowRankConv2d, LowRankLinear, TweedieAdaptation, adapter_state,
                                           add_adapters)
from medprior.diffusion.orientation import FlippedDenoiser
from medprior.diffusion.priors import SlicePrior2D
from medprior.physics.operator import LinearOperator
from medprior.solvers.diffusion import dds, mbir, reddiff
from medprior.solvers.problem import InverseProblem

SIZE = 16
NETWORK = {"channels": [8, 16], "attention_levels": [False, True], "num_head_channels": 8, "norm_num_groups": 8}


def prior(seed: int = 0) -> SlicePrior2D:
    torch.manual_seed(seed)
    made = SlicePrior2D((SIZE, SIZE), network=NETWORK, schedule=VPSchedule(steps=100), parametrization="x0")
    with torch.no_grad():  # a prior's weights, not the zero output layer of a fresh MONAI network
        for parameter in made.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return made.eval()


class RandomRays(LinearOperator):
    """``A u``: 40 fixed random projections of each slice (K, 40); slice by slice, exact adjoint."""

    domain_shape, range_shape, complex = (SIZE, SIZE), (40,), False
    matrix = torch.randn((40, SIZE * SIZE), generator=torch.Generator().manual_seed(7)) / SIZE

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1) @ self.matrix.T

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return (y @ self.matrix).reshape(y.shape[0], SIZE, SIZE)


def stack(k: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, y): a noisy stack of ``k`` slices and the projections of a different image."""
    generator = torch.Generator().manual_seed(seed)
    truth = torch.rand((k, SIZE, SIZE), generator=generator) * 2 - 1
    return torch.randn((k, SIZE, SIZE), generator=generator), RandomRays().forward(truth)


def test_adapters_start_as_the_prior_and_leave_it_untouched():
    denoiser = prior().denoiser()
    before = {k: v.clone() for k, v in denoiser.state_dict().items()}
    adapted, parameters = add_adapters(denoiser, rank=4)
    x, _ = stack(3)
    t = torch.full((3,), 40)
    with torch.no_grad():
        assert torch.equal(adapted(x[:, None], t), denoiser(x[:, None], t))
    wrapped = [m for m in adapted.modules() if isinstance(m, (LowRankConv2d, LowRankLinear))]
    convolutions = [m for m in denoiser.modules() if isinstance(m, nn.Conv2d)]
    assert sum(isinstance(m, LowRankConv2d) for m in wrapped) == len(convolutions)
    linear = [name.rsplit(".", 1)[-1] for name, m in adapted.named_modules() if isinstance(m, LowRankLinear)]
    attentions = [name for name, _ in denoiser.named_modules() if name.endswith(".attn")]
    assert sorted(linear) == sorted(["to_q", "to_k", "to_v", "out_proj"] * len(attentions)) and attentions
    assert {id(p) for p in adapted.parameters() if p.requires_grad} == {id(p) for p in parameters}
    assert len(parameters) == 3 * len(wrapped)
    assert all(torch.equal(before[k], v) for k, v in denoiser.state_dict().items())


def test_decoder_adapters_sit_on_the_up_path_only_and_leave_the_encoder_without_gradient():
    denoiser = prior().denoiser()
    adapted, parameters = add_adapters(denoiser, rank=2, layers="decoder")
    wrapped = [name for name, m in adapted.named_modules() if isinstance(m, (LowRankConv2d, LowRankLinear))]
    assert wrapped and all(".up_blocks." in f".{name}" or ".out." in f".{name}" for name in wrapped)
    every = [name for name, m in add_adapters(denoiser, rank=2)[0].named_modules()
             if isinstance(m, (LowRankConv2d, LowRankLinear))]
    assert set(wrapped) < set(every) and any(".up_blocks." in f".{name}" for name in wrapped)
    x, y = stack(2)
    encoder = [m for name, m in adapted.named_modules() if ".down_blocks." in f".{name}" and isinstance(m, nn.Conv2d)]
    seen = []
    hooks = [m.register_full_backward_hook(lambda *_: seen.append(1)) for m in encoder]
    adaptation = TweedieAdaptation(denoiser, RandomRays(), y, mode="d3ip", rank=2, lr=1e-3, iterations=1,
                                   layers="decoder")
    adaptation.groups[0] = (adapted, torch.optim.Adam(parameters, lr=1e-3), [0, 1])
    adaptation.estimate(x, 40)
    assert not seen and any(p.grad is not None and p.grad.abs().sum() > 0 for p in parameters)
    for hook in hooks:
        hook.remove()
    with pytest.raises(ValueError, match="layers"):
        add_adapters(denoiser, rank=2, layers="encoder")


def test_a_low_rank_convolution_is_the_convolution_with_the_merged_kernel():
    torch.manual_seed(0)
    conv = nn.Conv2d(5, 7, 3, padding=1)
    adapted = LowRankConv2d(conv, rank=2)
    nn.init.normal_(adapted.up.weight)
    nn.init.normal_(adapted.bias_offset)
    merged = nn.Conv2d(5, 7, 3, padding=1)
    with torch.no_grad():  # W + sum_r up[o, r] down[r, i]: the update is rank 2 per kernel position
        merged.weight.copy_(conv.weight + torch.einsum("or,rikl->oikl", adapted.up.weight[:, :, 0, 0],
                                                       adapted.down.weight))
        merged.bias.copy_(conv.bias + adapted.bias_offset)
    x = torch.randn(2, 5, 9, 9)
    assert torch.allclose(adapted(x), merged(x), atol=1e-5)
    with torch.no_grad():  # the path that merges the kernel itself
        assert torch.allclose(adapted(x), merged(x), atol=1e-5)


def test_a_low_rank_projection_without_gradients_is_the_one_with_them():
    torch.manual_seed(0)
    adapted = LowRankLinear(nn.Linear(6, 5), rank=2)
    nn.init.normal_(adapted.up.weight)
    nn.init.normal_(adapted.bias_offset)
    x = torch.randn(3, 6)
    with torch.no_grad():
        merged = adapted(x)
    assert torch.allclose(adapted(x), merged, atol=1e-5) and adapted(x).requires_grad


def test_shared_adapters_get_the_same_gradient_however_the_slices_are_batched():
    x, y = stack(4)
    runs = []
    for slice_batch in (4, 3, 1):   # one graph; a residual pass then per-call gradients
        adaptation = TweedieAdaptation(prior().denoiser(), RandomRays(), y, mode="d3ip", lr=1e-2, slice_batch=slice_batch)
        estimate = adaptation.estimate(x, 40)
        gradients = [p.grad for p in adaptation.denoisers[0].network.parameters() if p.requires_grad]
        runs.append((estimate, torch.cat([g.flatten() for g in gradients])))
    # (Adam's first step is lr * sign(g): it would amplify the rounding of gradients that are zero in
    # exact arithmetic, such as a bias before a group norm; so the gradients are compared.)
    scale = float(runs[0][1].abs().max())
    assert scale > 0
    for estimate, gradient in runs[1:]:
        assert torch.allclose(estimate, runs[0][0], atol=1e-6)
        assert float((gradient - runs[0][1]).abs().max()) < 1e-4 * scale


def test_per_slice_adapters_see_only_their_own_slice():
    x, y = stack(3)
    other = y.clone()
    other[2] += 5.0    # another measurement of the last slice only
    states = []
    for data in (y, other):
        adaptation = TweedieAdaptation(prior().denoiser(), RandomRays(), data, mode="ddip", lr=1e-2, slice_batch=2)
        adaptation.estimate(x, 40)
        states.append([adapter_state(d) for d in adaptation.denoisers])
    assert len(states[0]) == 3
    for k in (0, 1):
        assert all(torch.equal(states[0][k][name], states[1][k][name]) for name in states[0][k])
    assert any(not torch.equal(states[0][2][name], states[1][2][name]) for name in states[0][2])


def test_adaptation_lowers_the_data_misfit_of_the_tweedie_estimate():
    x, y = stack(2)
    adaptation = TweedieAdaptation(prior().denoiser(), RandomRays(), y, mode="d3ip", lr=3e-3)
    misfits = [float(((RandomRays().forward(adaptation.estimate(x, 40)) - y) ** 2).sum()) for _ in range(30)]
    assert misfits[-1] < 0.5 * misfits[0]


def test_adaptation_goes_through_the_orientation_wrapper_and_refuses_closed_forms():
    flipped = FlippedDenoiser(prior().denoiser(), (-1,))
    adapted, parameters = add_adapters(flipped, rank=2)
    assert isinstance(adapted, FlippedDenoiser) and parameters and adapted.denoiser is not flipped.denoiser
    gaussian = GaussianDenoiser(torch.zeros(4), torch.eye(4), VPSchedule())
    with pytest.raises(ValueError, match="network denoiser"):
        add_adapters(gaussian, rank=2)


@pytest.mark.parametrize("solver", [dds, mbir, reddiff])
def test_solvers_adapt_on_request_and_hand_back_the_adapters(solver):
    x, y = stack(2)
    problem = InverseProblem(RandomRays(), y)
    denoiser = prior().denoiser()
    plain = solver(problem, denoiser, steps=4, generator=torch.Generator().manual_seed(0))
    kept = []
    adapted = solver(problem, denoiser, steps=4, adapt="d3ip", adapt_lr=1e-2, generator=torch.Generator().manual_seed(0),
                     adapted=kept.append)
    assert len(kept) == 1 and len(kept[0].denoisers) == 1
    assert torch.isfinite(adapted).all() and not torch.allclose(plain, adapted)
    again = solver(problem, denoiser, steps=4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(plain, again)    # the prior itself is unchanged by adapting
    with pytest.raises(ValueError, match="adapt"):
        solver(problem, denoiser, steps=4, adapt="lora")


def test_dds_learns_one_adapter_set_in_its_first_run_and_keeps_it_for_the_others(monkeypatch):
    """Averaging 3 runs costs the Adam steps of one (steps 2 and 3 of 4, 4 iterations each: not the
    first, whose estimate from pure noise knows nothing of the data), hands back one adapter set, and
    the later runs use it: they are not the plain prior's runs."""
    x, y = stack(2)
    problem = InverseProblem(RandomRays(), y)
    denoiser = prior().denoiser()
    taken = []
    step = TweedieAdaptation._step
    monkeypatch.setattr(TweedieAdaptation, "_step", lambda self, *args: (taken.append(1), step(self, *args)))
    kept = []

    def adapted_dds(samples: int, generator: torch.Generator) -> torch.Tensor:
        torch.manual_seed(0)  # the adapters' initial weights
        return dds(problem, denoiser, steps=4, samples=samples, adapt="d3ip", adapt_lr=1e-2, adapt_every=2,
                   generator=generator, adapted=kept.append)

    first = adapted_dds(1, torch.Generator().manual_seed(0))
    assert len(taken) == 8 and len(kept) == 1
    three = adapted_dds(3, torch.Generator().manual_seed(0))
    assert len(taken) == 16 and len(kept) == 2
    generator = torch.Generator().manual_seed(0)
    torch.testing.assert_close(adapted_dds(1, generator), first)
    later_plain = dds(problem, denoiser, steps=4, samples=2, generator=generator)
    difference = (3 * three - first - 2 * later_plain).abs().max() / later_plain.abs().max()
    assert difference > 0.01
