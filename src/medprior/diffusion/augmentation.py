"""Random views of training slices: zoom into the field of view, rotate, jitter the intensities.

A slice prior trained only on whole-body slices at 6 mm pixels has never seen a body that fills the
image, or anatomy at 1.5 mm pixels. :class:`SliceAugmentation` shows it both: each training example
is kept at a finer ``source_size`` and every time it is drawn, a square window of ``1 / zoom`` of
its field of view (``zoom`` log-uniform in ``zoom_range``; 1 = the whole slice), at a random place
inside it and turned by a random angle within ``rotate_deg``, is resampled to the prior's
``image_size``: pixel sizes from the slice's own down to ``zoom_range[1]`` times finer, bodies that
fill the image or sit in air. The intensities then get a random gain and offset (``intensity``: the
largest change, in the prior's [-1, 1] units) and are clipped to [-1, 1]. A fraction ``whole`` of the
draws is the plain whole slice instead (no zoom, turn or jitter), so the prior keeps seeing its
data as they come.

Resampling is bilinear (``torch.nn.functional.grid_sample``) from the level of an area-averaged
pyramid whose pixels are closest to, and not larger than, the output's, so zooming out does not
alias. Every draw comes from the trainer's generator, so a resumed run draws the same views.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class SliceAugmentation:
    """Random zoom / field-of-view crop, rotation and intensity jitter of 2D slices.

    Args:
        source_size: (H, W) the examples are kept at (finer than the prior's ``image_size``).
        zoom_range: (low, high) of the zoom, >= 1 each: 1 shows the whole slice, 4 a quarter of its
            width at 4 times finer pixels.
        rotate_deg: largest rotation either way, degrees.
        intensity: largest gain change (relative) and offset (in [-1, 1] units).
        whole: fraction of draws that are the plain whole slice.
    """

    source_size: tuple[int, int]
    zoom_range: tuple[float, float] = (1.0, 4.0)
    rotate_deg: float = 180.0
    intensity: float = 0.05
    whole: float = 0.0

    def __post_init__(self) -> None:
        low, high = self.zoom_range
        if not 1 <= low <= high:
            raise ValueError(f"zoom_range must satisfy 1 <= low <= high, got {self.zoom_range}")
        if not 0 <= self.rotate_deg <= 180 or not 0 <= self.intensity < 1 or not 0 <= self.whole <= 1:
            raise ValueError(f"need 0 <= rotate_deg <= 180, 0 <= intensity < 1 and 0 <= whole <= 1, got "
                             f"{self.rotate_deg}, {self.intensity}, {self.whole}")

    @classmethod
    def from_mapping(cls, section: dict[str, Any]) -> SliceAugmentation:
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in section.items()})

    def to_dict(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    def __call__(self, slices: Tensor, size: tuple[int, int], generator: torch.Generator) -> Tensor:
        """Random views (B, C, *size) of ``slices`` (B, C, *source_size) in [-1, 1]."""
        batch = slices.shape[0]

        def uniform(low: float, high: float) -> Tensor:
            return low + (high - low) * torch.rand(batch, generator=generator, dtype=torch.float64)

        zoom = torch.exp(uniform(math.log(self.zoom_range[0]), math.log(self.zoom_range[1])))
        angle = torch.deg2rad(uniform(-self.rotate_deg, self.rotate_deg))
        # the window's centre may go as far as keeps a window of half-width 1/zoom inside the slice
        reach = (1 - 1 / zoom) * uniform(-1, 1), (1 - 1 / zoom) * uniform(-1, 1)
        gain, offset = 1 + uniform(-self.intensity, self.intensity), uniform(-self.intensity, self.intensity)
        plain = uniform(0, 1) < self.whole
        zoom, angle, gain = torch.where(plain, 1.0, zoom), torch.where(plain, 0.0, angle), torch.where(plain, 1.0, gain)
        reach, offset = (torch.where(plain, 0.0, reach[0]), torch.where(plain, 0.0, reach[1])), torch.where(plain, 0.0, offset)
        out = torch.empty((batch, slices.shape[1], *size), dtype=slices.dtype, device=slices.device)
        for b in range(batch):
            scale = 1 / float(zoom[b])
            source = _pyramid_level(slices[b:b + 1], scale, size)
            cos, sin = math.cos(float(angle[b])), math.sin(float(angle[b]))
            theta = torch.tensor([[scale * cos, -scale * sin, float(reach[0][b])],
                                  [scale * sin, scale * cos, float(reach[1][b])]], dtype=slices.dtype,
                                 device=slices.device)[None]
            grid = F.affine_grid(theta, [1, slices.shape[1], *size], align_corners=False)
            view = F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=False)
            out[b] = (view[0] * float(gain[b]) + float(offset[b])).clamp(-1, 1)
        return out


def _pyramid_level(image: Tensor, scale: float, size: tuple[int, int]) -> Tensor:
    """``image`` (1, C, H, W) area-averaged by the largest power of 2 that keeps its pixels no larger
    than those of a ``size`` view covering ``scale`` of it."""
    factor = 1
    while image.shape[-1] // (2 * factor) >= size[-1] / scale and image.shape[-2] // (2 * factor) >= size[-2] / scale:
        factor *= 2
    return F.avg_pool2d(image, factor) if factor > 1 else image
