"""Trainable diffusion priors: a network, its schedule, parametrization and normalisation.

A prior works in its own *diffusion space*; ``encode``/``decode`` map image batches (normalised
to [-1, 1] by the prior's :class:`~medprior.diffusion.normalization.Normalization`) there and
back, and :meth:`Prior.denoiser` gives the Tweedie estimate in that space, which is all the
samplers and inverse solvers see.

- :class:`SlicePrior2D`: 2D slices (B, C, H, W) taken along one axis of a volume; the diffusion
  space is the image itself. Used slice by slice (batched over slices) by DiffusionMBIR and DDS.
- :class:`VolumePrior3D`: 3D volumes (B, C, D, H, W) in image space, such as the label channels of
  the segmentation model (PET and CT as conditions, Dong and Gong's 3D diffusion segmentation).
- :class:`WaveletPrior3D`: cWDM-style 3D prior. A volume (B, C, D, H, W) becomes 8*C subbands at
  half resolution with :func:`medprior.wavelets.dwt3` (low-pass band first); the low-pass band
  is divided by 3, as cWDM does, so that its range (up to 2^{3/2} = 2.83 for data in [-1, 1])
  matches the detail bands'. Conditioning volumes (B, Cc, D, H, W) are transformed the same way
  and concatenated to the network input (8*Cc more channels). cWDM predicts x0.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from medprior.diffusion import parametrization as param
from medprior.diffusion.denoiser import NetworkDenoiser
from medprior.diffusion.networks import build_unet, unet_spec
from medprior.diffusion.normalization import Normalization
from medprior.diffusion.schedule import VPSchedule
from medprior.wavelets import dwt3, idwt3

LOW_PASS_SCALE = 3.0


def unet_downsampling(network_spec: dict[str, Any]) -> int:
    """The factor a UNet of ``network_spec`` (prior.json ``network``) divides a side of its input by:
    2 per level below the first."""
    return 2 ** (len(network_spec["channels"]) - 1)


class Prior(nn.Module):
    """Base class: subclasses set ``kind`` and implement ``encode``/``decode``/``latent_shape``.

    Args:
        image_size: spatial size of one training example in image space (2 or 3 ints).
        channels: image channels diffused (1 for a single contrast).
        condition_channels: image channels given as conditions (0 = unconditional).
        network: UNet spec overrides (see :func:`medprior.diffusion.networks.unet_spec`).
        schedule, parametrization, normalization: as their classes.
    """

    kind = ""
    spatial_dims = 0
    subbands = 1
    latent_clip: tuple[float, float] | None = None  # the range of the data in diffusion space, when bounded

    def __init__(self, image_size: tuple[int, ...] | list[int], channels: int = 1, condition_channels: int = 0,
                 network: dict[str, Any] | None = None, schedule: VPSchedule | None = None,
                 parametrization: str = "eps", normalization: Normalization | None = None) -> None:
        super().__init__()
        self.image_size = self._sizes(image_size)
        self.channels = channels
        self.condition_channels = condition_channels
        self.schedule = schedule or VPSchedule()
        self.parametrization = param.check(parametrization)
        self.normalization = normalization or Normalization()
        network = dict(network or {})
        outputs = self.subbands * channels
        if network.get("architecture", "diffusion_unet") != "diffusion_unet":
            network["skip_channels"], outputs = outputs, channels + 1   # class logits, background first
        self.network_spec = unet_spec(self.spatial_dims, self.subbands * (channels + condition_channels),
                                      outputs, **network)
        self.network = build_unet(self.network_spec)
        self.record: dict[str, Any] = {}
        """The prior.json content of a loaded prior (modality, training, weights); empty for a new one."""
        self.orientation: str | None = None
        """Grid orientation of the training volumes (``"LPS"``), set when loaded; None if unknown."""
        self.folder: str | None = None
        """The folder a loaded prior came from (as given to ``load_prior``); None for a new one."""
        self._check_size()

    @property
    def downsampling(self) -> int:
        """The factor the network's levels divide a side of its input by (its sides must be multiples of it)."""
        return unet_downsampling(self.network_spec)

    def _sizes(self, image_size: tuple[int, ...] | list[int]) -> tuple[int, ...]:
        sizes = tuple(int(s) for s in image_size)
        if len(sizes) != self.spatial_dims:
            raise ValueError(f"{self.kind} prior: image_size {sizes} needs {self.spatial_dims} sizes")
        return sizes

    def _check_size(self) -> None:
        if any(size % self.downsampling for size in self.latent_shape(1)[2:]):
            raise ValueError(f"{self.kind} prior: image_size {self.image_size} gives a network input of "
                             f"{self.latent_shape(1)[2:]}, which must be divisible by {self.downsampling} "
                             f"({len(self.network_spec['channels'])} UNet levels)")

    def on_matrix(self, image_size: tuple[int, ...] | list[int]) -> Prior:
        """This prior, the same network and weights, for images of ``image_size`` (the UNet is
        convolutional, so it runs on any sides that are multiples of :attr:`downsampling`; what it
        learned holds where the pixels are of the size it learned). ``self`` is left as it is.

        Raises:
            ValueError: sides the network cannot take.
        """
        resized = copy.copy(self)  # a shallow copy: the network is shared, only the matrix differs
        resized.image_size = self._sizes(image_size)
        resized._check_size()
        return resized

    def encode(self, images: Tensor) -> Tensor:
        """Normalised images (B, C, *image_size) -> diffusion space."""
        raise NotImplementedError

    def decode(self, latents: Tensor) -> Tensor:
        """Diffusion space -> normalised images (B, C, *image_size)."""
        raise NotImplementedError

    def latent_shape(self, batch: int) -> tuple[int, ...]:
        """Shape of a batch in diffusion space."""
        raise NotImplementedError

    def denoiser(self, condition: Tensor | None = None, clip: bool = True) -> NetworkDenoiser:
        """The Tweedie denoiser in diffusion space; ``condition`` (B or 1, Cc, *image_size) images.

        ``clip`` clamps x0_hat to the data range (``latent_clip``) when it is bounded: near
        t = T-1 an eps-network's ``(x_t - sigma eps) / alpha`` divides by alpha ~ 5e-5 (cosine
        schedule), and without the clamp samples blow up.
        """
        if (condition is None) != (self.condition_channels == 0):
            raise ValueError(f"this prior takes {self.condition_channels} condition channels, "
                             f"got {'none' if condition is None else condition.shape[1]}")
        encoded = None if condition is None else self.encode(condition)
        return NetworkDenoiser(self.network, self.schedule, self.parametrization, encoded,
                               self.latent_clip if clip else None, normalization=self.normalization,
                               orientation=self.orientation, image_size=self.image_size)

    def description(self) -> dict[str, Any]:
        """Everything needed to rebuild this prior (without weights); stored in prior.json."""
        return {
            "kind": self.kind,
            "image_size": list(self.image_size),
            "channels": self.channels,
            "condition_channels": self.condition_channels,
            "network": dict(self.network_spec),
            "schedule": self.schedule.to_dict(),
            "parametrization": self.parametrization,
            "normalization": self.normalization.to_dict(),
            **self.extra_description(),
        }

    def extra_description(self) -> dict[str, Any]:
        return {}


class _ImageSpacePrior(Prior):
    """A prior whose diffusion space is image space, bounded by [-1, 1]: (B, C, *image_size)."""

    latent_clip = (-1.0, 1.0)

    def encode(self, images: Tensor) -> Tensor:
        return images

    def decode(self, latents: Tensor) -> Tensor:
        return latents

    def latent_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, self.channels, *self.image_size)


class SlicePrior2D(_ImageSpacePrior):
    """2D prior over slices taken along ``axis`` (0, 1 or 2 of an (I, J, K) volume).

    Diffusion space = image space: (B, C, H, W) with ``(H, W) = image_size``.
    """

    kind = "slice2d"
    spatial_dims = 2

    def __init__(self, image_size, axis: int = 2, **kwargs: Any) -> None:
        super().__init__(image_size, **kwargs)
        if axis not in (0, 1, 2):
            raise ValueError(f"slice axis must be 0, 1 or 2, got {axis}")
        self.axis = axis

    def extra_description(self) -> dict[str, Any]:
        return {"axis": self.axis}


class VolumePrior3D(_ImageSpacePrior):
    """3D prior over whole volumes (B, C, D, H, W) with ``(D, H, W) = image_size``; diffusion space =
    image space, bounded by [-1, 1] (the segmentation model's label channels)."""

    kind = "volume3d"
    spatial_dims = 3


class WaveletPrior3D(Prior):
    """cWDM-style 3D prior in the Haar wavelet domain (see the module docstring).

    Diffusion space: (B, 8*C, D/2, H/2, W/2) for ``(D, H, W) = image_size`` (all even).
    """

    kind = "wavelet3d"
    spatial_dims = 3
    subbands = 8

    def __init__(self, image_size, parametrization: str = "x0", **kwargs: Any) -> None:
        if any(int(s) % 2 for s in image_size):
            raise ValueError(f"wavelet prior: image_size {tuple(image_size)} must be even in every dimension")
        super().__init__(image_size, parametrization=parametrization, **kwargs)

    def encode(self, images: Tensor) -> Tensor:
        subbands = dwt3(images)
        low_pass = images.shape[1]
        return torch.cat([subbands[:, :low_pass] / LOW_PASS_SCALE, subbands[:, low_pass:]], dim=1)

    def decode(self, latents: Tensor) -> Tensor:
        low_pass = latents.shape[1] // self.subbands
        return idwt3(torch.cat([latents[:, :low_pass] * LOW_PASS_SCALE, latents[:, low_pass:]], dim=1))

    def latent_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, self.subbands * self.channels, *(s // 2 for s in self.image_size))


PRIOR_CLASSES: dict[str, type[Prior]] = {cls.kind: cls for cls in (SlicePrior2D, VolumePrior3D, WaveletPrior3D)}


def prior_from_description(description: dict[str, Any]) -> Prior:
    """Rebuild a (randomly initialised) prior from :meth:`Prior.description`."""
    description = dict(description)
    kind = description.pop("kind", None)
    if kind not in PRIOR_CLASSES:
        raise ValueError(f"unknown prior kind {kind!r}: expected one of {sorted(PRIOR_CLASSES)}")
    network = dict(description.pop("network"))
    for derived in ("spatial_dims", "in_channels", "out_channels", "skip_channels"):
        network.pop(derived, None)
    return PRIOR_CLASSES[kind](
        network=network,
        schedule=VPSchedule.from_dict(description.pop("schedule")),
        normalization=Normalization(**description.pop("normalization")),
        **description,
    )
