"""Zero-filled and CG-SENSE: exact recovery when fully sampled, CG-SENSE beats zero filling at R = 4."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.data import shepp_logan_phantom
from skimage.transform import resize

from medprior.errors import InputError
from medprior.physics.coils import birdcage_sensitivities
from medprior.physics.masks import uniform_mask_1d
from medprior.physics.mri import CartesianMRI, CartesianMRI3D
from medprior.solvers.sense import cg_sense, zero_filled


def smooth_image(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """A blob-like complex image ``(1, *shape)``: smooth, zero near the edges."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    image = np.zeros(shape, dtype=np.complex128)
    for _ in range(6):
        centre, width = rng.uniform(-0.5, 0.5, len(shape)), rng.uniform(0.1, 0.3)
        r2 = sum((g - c) ** 2 for g, c in zip(grids, centre))
        image += rng.uniform(0.3, 1) * np.exp(-r2 / (2 * width ** 2)) * np.exp(1j * rng.uniform(-1, 1))
    return torch.from_numpy(image * (sum(g ** 2 for g in grids) < 0.8))[None]


def test_single_coil_fully_sampled_zero_filled_is_the_inverse() -> None:
    x = torch.randn(3, 20, 17, dtype=torch.complex128)
    op = CartesianMRI(np.ones((20, 17), dtype=bool), dtype=torch.complex128)
    assert float((zero_filled(op, op.forward(x)) - x).abs().max()) < 1e-12


@pytest.mark.parametrize("make", [
    lambda: (CartesianMRI(np.ones(32, dtype=bool), birdcage_sensitivities((32, 32), 8, dtype=torch.complex128),
                          dtype=torch.complex128), (32, 32)),
    lambda: (CartesianMRI3D(np.ones((16, 12), dtype=bool), birdcage_sensitivities((8, 16, 12), 8),
                            dtype=torch.complex128), (8, 16, 12)),
])
def test_fully_sampled_multicoil_exact(make) -> None:
    op, shape = make()
    x = torch.randn(2, *shape, dtype=torch.complex128)
    y = op.forward(x)
    assert float((cg_sense(op, y, iterations=10) - x).abs().max()) < 1e-5
    assert float((zero_filled(op, y) - x).abs().max()) < 1e-5  # SENSE-1 with normalised maps


def test_fully_sampled_unnormalised_maps_cg_converges() -> None:
    sens = birdcage_sensitivities((24, 24), 4, normalize=False, dtype=torch.complex128)
    op = CartesianMRI(np.ones((24, 24), dtype=bool), sens, dtype=torch.complex128)
    x = torch.randn(1, 24, 24, dtype=torch.complex128)
    assert float((cg_sense(op, op.forward(x), iterations=200, tolerance=1e-12) - x).abs().max()) < 1e-5


def test_cg_sense_beats_zero_filled_at_r4() -> None:
    n = 96
    x = torch.from_numpy(resize(shepp_logan_phantom(), (n, n), anti_aliasing=True)).to(torch.complex128)[None]
    op = CartesianMRI(uniform_mask_1d(n, 4, 0.08), birdcage_sensitivities((n, n), 8), dtype=torch.complex128)
    y = op.forward(x)

    def nmse(estimate: torch.Tensor) -> float:
        return float((estimate - x).abs().square().sum() / x.abs().square().sum())

    zf = nmse(zero_filled(op, y))
    assert zf > 0.1  # strongly aliased
    assert nmse(cg_sense(op, y, iterations=50)) < zf / 4  # >= 6 dB better
    assert nmse(cg_sense(op, y, iterations=150, tolerance=0.0)) < zf / 10  # and improving: >= 10 dB
    assert nmse(cg_sense(op, y, iterations=50, damping=1e-3)) < zf / 3
    with pytest.raises(InputError, match="damping"):
        cg_sense(op, y, damping=-1.0)


def test_warm_start_and_batching() -> None:
    n = 32
    op = CartesianMRI(uniform_mask_1d(n, 2, 0.25), birdcage_sensitivities((n, n), 6), dtype=torch.complex128)
    x = torch.cat([smooth_image((n, n), 1), smooth_image((n, n), 2)])
    y = op.forward(x)
    joint = cg_sense(op, y, iterations=15)
    torch.testing.assert_close(joint[1:], cg_sense(op, y[1:], iterations=15))
    warm = cg_sense(op, y, iterations=1, x0=x)
    torch.testing.assert_close(warm, x)
