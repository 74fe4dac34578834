"""Shared pytest fixtures: seeded random generators and test volumes with oblique geometry."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from medprior.io import Volume


def oblique_affine(angles_deg: tuple[float, float, float] = (17.0, -32.0, 51.0),
                   spacing: tuple[float, float, float] = (0.7, 0.9, 2.5),
                   origin: tuple[float, float, float] = (-91.3, 12.7, -40.2)) -> np.ndarray:
    """RAS affine: rotation by intrinsic x-y-z Euler angles (degrees) times the voxel sizes (mm)."""
    affine = np.eye(4)
    affine[:3, :3] = Rotation.from_euler("XYZ", angles_deg, degrees=True).as_matrix() * np.asarray(spacing)
    affine[:3, 3] = origin
    return affine


@pytest.fixture
def rng() -> np.random.Generator:
    """A generator with a fixed seed, fresh for every test."""
    return np.random.default_rng(20240601)


@pytest.fixture
def make_volume(rng: np.random.Generator) -> Callable[..., Volume]:
    """Factory of random volumes: ``make_volume(shape, affine=None, modality="CT", low, high)``.

    Values are uniform in ``[low, high)`` (HU-like by default); the default affine is oblique with
    0.7 x 0.9 x 2.5 mm voxels.
    """

    def make(shape: tuple[int, int, int] = (12, 10, 6), affine: np.ndarray | None = None,
             modality: str = "CT", low: float = -1000.0, high: float = 2000.0) -> Volume:
        data = rng.uniform(low, high, size=shape).astype(np.float32)
        return Volume(data, oblique_affine() if affine is None else affine, modality=modality)

    return make


@pytest.fixture
def oblique() -> Callable[..., np.ndarray]:
    """The :func:`oblique_affine` helper, as a fixture."""
    return oblique_affine
