"""Intensity normalisation a prior is trained with, stored in the prior file.

Two kinds, both mapping into [-1, 1]:

- ``window``: a fixed intensity window ``(low, high)`` in the data's units (for CT, HU), values
  outside it are clipped; the same for every volume, so it inverts without side information.
- ``percentile``: per volume, the ``low``/``high`` percentiles (e.g. 0.5 and 99.5, as BraTS
  synthesis does) are mapped to -1/+1 and values outside are clipped; inverting needs the
  volume's own two intensities, which :meth:`Normalization.range_of` returns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

KINDS = ("window", "percentile")


@dataclass(frozen=True)
class Normalization:
    """``kind`` ``window`` (``low``/``high`` intensities) or ``percentile`` (``low``/``high`` in %)."""

    kind: str = "window"
    low: float = -1000.0
    high: float = 1000.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"normalization kind {self.kind!r}: expected one of {KINDS}")
        if not self.low < self.high:
            raise ValueError(f"normalization needs low < high, got {self.low} and {self.high}")
        if self.kind == "percentile" and not 0 <= self.low < self.high <= 100:
            raise ValueError(f"percentiles must lie in [0, 100], got {self.low} and {self.high}")

    def range_of(self, volume: Tensor) -> tuple[float, float]:
        """The intensities (in data units) that map to -1 and +1 for this volume."""
        if self.kind == "window":
            return self.low, self.high
        flat = volume.detach().flatten().float()
        if flat.numel() > 2 ** 24:
            flat = flat[:: flat.numel() // 2 ** 24 + 1]
        quantiles = torch.quantile(flat, torch.tensor([self.low, self.high], device=flat.device) / 100)
        low, high = (float(q) for q in quantiles)
        return low, max(high, low + 1e-6)

    def apply(self, volume: Tensor, intensity_range: tuple[float, float] | None = None) -> Tensor:
        """Data units -> [-1, 1] (clipped); ``intensity_range`` defaults to :meth:`range_of`."""
        low, high = intensity_range or self.range_of(volume)
        return ((volume - low) / (high - low) * 2 - 1).clamp(-1, 1)

    def invert(self, normalized: Tensor, intensity_range: tuple[float, float] | None = None) -> Tensor:
        """[-1, 1] -> data units; a percentile normalisation needs the volume's ``intensity_range``."""
        if intensity_range is None:
            if self.kind != "window":
                raise ValueError("inverting a percentile normalisation needs the volume's intensity range")
            intensity_range = (self.low, self.high)
        low, high = intensity_range
        return (normalized + 1) / 2 * (high - low) + low

    def to_dict(self) -> dict:
        return asdict(self)
