"""Priors: normalisation round trips, the wavelet prior's exact encode/decode, descriptions that rebuild."""

import pytest
import torch

from medprior.diffusion.normalization import Normalization
from medprior.diffusion.priors import SlicePrior2D, WaveletPrior3D, prior_from_description
from medprior.diffusion.schedule import VPSchedule
from medprior.wavelets import dwt3

TINY_NET = {"channels": [8, 16], "attention_levels": [False, False], "num_head_channels": 8, "norm_num_groups": 8}


def test_window_normalization_round_trip_and_clipping():
    norm = Normalization("window", -1000, 1000)
    hu = torch.tensor([-1500.0, -1000.0, 0.0, 500.0, 1000.0, 3000.0])
    assert torch.allclose(norm.apply(hu), torch.tensor([-1.0, -1.0, 0.0, 0.5, 1.0, 1.0]))
    inside = hu[1:5]
    assert torch.allclose(norm.invert(norm.apply(inside)), inside)


def test_percentile_normalization_uses_the_volume_percentiles():
    volume = torch.arange(1001, dtype=torch.float32)  # percentile p is the value 10 p
    norm = Normalization("percentile", 0.5, 99.5)
    low, high = norm.range_of(volume)
    assert low == pytest.approx(5.0) and high == pytest.approx(995.0)
    normalized = norm.apply(volume)
    assert normalized.min() == -1 and normalized.max() == 1
    assert torch.allclose(norm.invert(normalized[5:996], (low, high)), volume[5:996], atol=1e-3)
    with pytest.raises(ValueError, match="intensity range"):
        norm.invert(normalized)


@pytest.mark.parametrize("bad", [("window", 1.0, 1.0), ("percentile", -1.0, 50.0), ("zscore", 0.0, 1.0)])
def test_bad_normalization_is_refused(bad):
    with pytest.raises(ValueError):
        Normalization(*bad)


def test_wavelet_prior_encode_decode_is_exact_and_scales_the_low_pass_band():
    prior = WaveletPrior3D((8, 8, 4), condition_channels=1, network=TINY_NET, schedule=VPSchedule(steps=10))
    images = torch.rand(2, 1, 8, 8, 4) * 2 - 1
    latents = prior.encode(images)
    assert latents.shape == prior.latent_shape(2) == (2, 8, 4, 4, 2)
    assert torch.allclose(latents[:, :1] * 3, dwt3(images)[:, :1], atol=1e-6)
    assert torch.allclose(latents[:, 1:], dwt3(images)[:, 1:], atol=1e-6)
    assert (prior.decode(latents) - images).abs().max() < 1e-5
    assert prior.network_spec["in_channels"] == 16 and prior.network_spec["out_channels"] == 8
    assert prior.parametrization == "x0"


def test_wavelet_prior_denoiser_concatenates_the_condition_in_the_wavelet_domain():
    prior = WaveletPrior3D((8, 8, 4), condition_channels=1, network=TINY_NET, schedule=VPSchedule(steps=10))
    condition = torch.rand(1, 1, 8, 8, 4)
    denoiser = prior.denoiser(condition=condition)
    x0 = denoiser(torch.randn(3, 8, 4, 4, 2), torch.tensor([5, 5, 5]))
    assert x0.shape == (3, 8, 4, 4, 2)
    assert torch.allclose(denoiser.condition, prior.encode(condition))
    with pytest.raises(ValueError, match="condition"):
        prior.denoiser()


def test_description_rebuilds_the_same_architecture():
    prior = SlicePrior2D((16, 16), axis=1, network=TINY_NET, schedule=VPSchedule("cosine", 100),
                         parametrization="v", normalization=Normalization("percentile", 1, 99))
    rebuilt = prior_from_description(prior.description())
    assert rebuilt.description() == prior.description()
    assert [p.shape for p in rebuilt.parameters()] == [p.shape for p in prior.parameters()]
    with pytest.raises(ValueError, match="unknown prior kind"):
        prior_from_description({**prior.description(), "kind": "latent"})


def test_bad_prior_geometry_is_refused():
    with pytest.raises(ValueError, match="even"):
        WaveletPrior3D((8, 8, 5), network=TINY_NET)
    with pytest.raises(ValueError, match="axis"):
        SlicePrior2D((16, 16), axis=3, network=TINY_NET)
    with pytest.raises(ValueError, match="attention_levels"):
        SlicePrior2D((16, 16), network={**TINY_NET, "attention_levels": [False]})


def test_image_size_not_divisible_by_the_unet_depth_is_refused_early():
    three_levels = {**TINY_NET, "channels": [8, 16, 16], "attention_levels": [False] * 3}
    with pytest.raises(ValueError, match="divisible by 4"):
        SlicePrior2D((18, 16), network=three_levels)
    with pytest.raises(ValueError, match="divisible by 2"):
        WaveletPrior3D((8, 8, 6), network=TINY_NET)
