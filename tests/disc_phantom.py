"""A disc with exact-ish partial-volume edges, the CT tests' analytic phantom."""

from __future__ import annotations

import numpy as np


def disc_image(shape: tuple[int, int], pixel_mm: float, radius_mm: float, centre_mm: tuple[float, float] = (0, 0),
               supersample: int = 8) -> np.ndarray:
    """Area fraction of each pixel inside a disc (x right, y up, origin at pixel (H//2, W//2))."""
    h, w = shape
    offsets = ((np.arange(supersample) + 0.5) / supersample - 0.5) * pixel_mm
    rows, cols = np.mgrid[:h, :w]
    x0, y0 = (cols - w // 2) * pixel_mm, (h // 2 - rows) * pixel_mm
    inside = np.zeros(shape)
    for dx in offsets:
        for dy in offsets:
            inside += (x0 + dx - centre_mm[0]) ** 2 + (y0 + dy - centre_mm[1]) ** 2 <= radius_mm ** 2
    return inside / supersample ** 2
