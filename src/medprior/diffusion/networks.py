"""Denoising networks: MONAI's DiffusionModelUNet, built from a JSON-serialisable spec.

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

from monai.networks.nets import DiffusionModelUNet
from torch import nn

ACTIVATION_BYTES_PER_PIXEL_CHANNEL = 160
"""Bytes of activations per pixel of one network input per UNet channel (summed over the levels'
widths), forward only: an estimate (about 40 float32 tensors of every level's width), not a
measurement. On a 256^3 CT volume it lets DDS pick 9 slices per call and peak at 3.05 GB RSS
(benchmarks/recon_memory.py); on an H200 a 256 x 256 slice measured 0.33 GB of CUDA memory against
the 1.17 GB estimated: safe, by a factor of 3.6. Backpropagation (DPS): assume 3 times more."""

UNET_DEFAULTS: dict[str, Any] = {
    "channels": [32, 64, 64],
    "attention_levels": [False, False, True],
    "num_res_blocks": 1,
    "num_head_channels": 32,
    "norm_num_groups": 16,
}


def unet_spec(spatial_dims: int, in_channels: int, out_channels: int, **overrides: Any) -> dict[str, Any]:
    """A complete UNet spec: the defaults above, the given channel counts, then ``overrides``."""
    spec = {**UNET_DEFAULTS, **overrides}
    spec.update(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels)
    if len(spec["attention_levels"]) != len(spec["channels"]):
        raise ValueError(f"attention_levels {spec['attention_levels']} needs one entry per level of "
                         f"channels {spec['channels']}")
    return spec


def build_unet(spec: dict[str, Any]) -> nn.Module:
    """The DiffusionModelUNet described by ``spec`` (randomly initialised)."""
    return DiffusionModelUNet(**{**spec, "channels": tuple(spec["channels"]),
                                 "attention_levels": tuple(spec["attention_levels"])})


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
