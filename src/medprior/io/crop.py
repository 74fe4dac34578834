"""Centred crop / zero pad of a volume to another grid size, keeping every voxel's world position.

Networks want grid sizes divisible by their downsampling (cWDM runs BraTS' 240 x 240 x 155 mm box on a
224 x 224 x 160 grid: 8 voxels cropped from each in-plane side, 5 slices of zeros added). Per axis,
``crop_or_pad`` removes ``(n - m) // 2`` voxels before and the rest after (n > m), or adds
``(m - n) // 2`` zeros before and the rest after (n < m), and shifts the affine so that a kept voxel
keeps its world position. The split is the same in both directions, so ``crop_or_pad(crop_or_pad(v,
grid), v.shape)`` is ``v`` exactly wherever ``v`` lies inside ``grid`` (zero elsewhere): for BraTS
volumes, skull-stripped and zero near the box edges, the round trip is exact.

>>> import numpy as np
>>> from medprior.io import Volume
>>> v = Volume(np.ones((240, 240, 155), np.float32), np.diag([-1.0, -1.0, 1.0, 1.0]))
>>> crop_or_pad(v, (224, 224, 160)).affine[:3, 3].tolist()
[-8.0, -8.0, -2.0]
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from medprior.io.volume import Volume


def crop_or_pad(volume: Volume, shape: tuple[int, int, int]) -> Volume:
    """``volume`` on a centred ``shape`` grid (I', J', K'): cropped where smaller, zero-padded where larger."""
    if len(shape) != 3 or any(int(m) < 1 for m in shape):
        raise ValueError(f"crop_or_pad needs three positive sizes, got {shape}")
    starts = [(n - m) // 2 if n >= m else -((m - n) // 2) for n, m in zip(volume.shape, map(int, shape))]  # < 0: padding
    out = np.zeros(tuple(int(m) for m in shape), dtype=np.float32)
    source, target = [], []
    for n, m, start in zip(volume.shape, shape, starts):
        first = max(start, 0)
        stop = min(start + int(m), n)
        source.append(slice(first, stop))
        target.append(slice(first - start, stop - start))
    out[tuple(target)] = volume.data[tuple(source)]
    affine = volume.affine.copy()
    affine[:3, 3] = volume.affine[:3, :3] @ np.asarray(starts, dtype=np.float64) + volume.affine[:3, 3]
    return replace(volume, data=out, affine=affine, metadata=dict(volume.metadata))
