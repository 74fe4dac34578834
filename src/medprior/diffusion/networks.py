"""Networks of priors and segmentation models, built from a JSON-serialisable spec.

``architecture`` (default ``diffusion_unet``) picks MONAI's DiffusionModelUNet, a denoiser of
``(x_t, t)``; ``segresnet`` and ``unet`` pick MONAI's SegResNet and UNet, deterministic segmentation
baselines that see only the conditioning channels (:class:`ConditionsOnly`): they are trained with
the ``segmentation`` objective of :mod:`medprior.diffusion.training` and output class logits.

A spec is a plain dict (stored verbatim in ``prior.json``) with the keyword arguments of
:class:`monai.networks.nets.DiffusionModelUNet`: ``spatial_dims`` (2 or 3), ``in_channels``,
``out_channels``, ``channels``, ``attention_levels``, ``num_res_blocks``, ``num_head_channels``,
``norm_num_groups``. Conditioning is by channel concatenation, so ``in_channels`` counts the
diffused channels plus the conditioning channels. The network maps
``(B, in_channels, *spatial)`` and timesteps ``(B,)`` to ``(B, out_channels, *spatial)``; every
spatial size must be divisible by ``2 ** (len(channels) - 1)``.
"""

from __future__ import annotations

from typing import Any

from monai.networks.nets import DiffusionModelUNet, SegResNet, UNet
from torch import Tensor, nn

ACTIVATION_BYTES_PER_PIXEL_CHANNEL = 160
"""Bytes of activations per pixel of one network input per UNet channel (summed over the levels'
widths), forward only: an estimate (about 40 float32 tensors of every level's width), not a
measurement. On a 256^3 CT volume it lets DDS pick 9 slices per call and peak at 3.05 GB RSS
(benchmarks/recon_memory.py); on an H200 a 256 x 256 slice measured 0.33 GB of CUDA memory against
the 1.17 GB estimated: safe, by a factor of 3.6. Backpropagation (DPS): assume 3 times more."""

ARCHITECTURES = ("diffusion_unet", "segresnet", "unet")

UNET_DEFAULTS: dict[str, Any] = {
    "channels": [32, 64, 64],
    "attention_levels": [False, False, True],
    "num_res_blocks": 1,
    "num_head_channels": 32,
    "norm_num_groups": 16,
}


def unet_spec(spatial_dims: int, in_channels: int, out_channels: int, **overrides: Any) -> dict[str, Any]:
    """A complete network spec: the defaults above, the given channel counts, then ``overrides``."""
    spec = {**UNET_DEFAULTS, **overrides}
    spec.update(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels)
    if spec.get("architecture", "diffusion_unet") not in ARCHITECTURES:
        raise ValueError(f"network architecture {spec['architecture']!r}: expected one of {ARCHITECTURES}")
    if spec.get("architecture", "diffusion_unet") == "diffusion_unet" and len(spec["attention_levels"]) != len(spec["channels"]):
        raise ValueError(f"attention_levels {spec['attention_levels']} needs one entry per level of "
                         f"channels {spec['channels']}")
    return spec


class ConditionsOnly(nn.Module):
    """A segmentation network called like a denoiser, ``(input, t) -> logits``, that ignores ``t`` and the
    first ``skip`` input channels (the diffused ones, zero for the regression-style objectives)."""

    def __init__(self, network: nn.Module, skip: int) -> None:
        super().__init__()
        self.network, self.skip = network, skip

    def forward(self, inputs: Tensor, timesteps: Tensor) -> Tensor:
        return self.network(inputs[:, self.skip:])


def build_unet(spec: dict[str, Any]) -> nn.Module:
    """The network described by ``spec`` (randomly initialised).

    For ``segresnet`` / ``unet``, ``skip_channels`` (the diffused channels, ignored) are left out of
    the input; SegResNet takes ``channels[0]`` initial filters and ``len(channels)`` levels
    (blocks 1, 2, 2, 4, ...), UNet ``channels`` with stride 2 between levels and 2 residual units.
    """
    architecture = spec.get("architecture", "diffusion_unet")
    if architecture == "diffusion_unet":
        kwargs = {k: v for k, v in spec.items() if k not in ("architecture", "skip_channels")}
        return DiffusionModelUNet(**{**kwargs, "channels": tuple(spec["channels"]),
                                     "attention_levels": tuple(spec["attention_levels"])})
    skip = int(spec.get("skip_channels", 0))
    inputs, levels = spec["in_channels"] - skip, len(spec["channels"])
    if architecture == "segresnet":
        network = SegResNet(spatial_dims=spec["spatial_dims"], in_channels=inputs, out_channels=spec["out_channels"],
                            init_filters=spec["channels"][0], blocks_down=(1, 2, 2, 4, 4)[:levels],
                            blocks_up=(1,) * (levels - 1))
    else:
        network = UNet(spec["spatial_dims"], inputs, spec["out_channels"], channels=tuple(spec["channels"]),
                       strides=(2,) * (levels - 1), num_res_units=2)
    return ConditionsOnly(network, skip)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
