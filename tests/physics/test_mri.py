"""Cartesian MRI operators: exact adjoints (2D, 3D, coils, per-slice maps), unitarity, FFT centring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from medprior.errors import InputError
from medprior.physics.coils import birdcage_sensitivities
from medprior.physics.mri import CartesianMRI, CartesianMRI3D, fftnc, ifftnc
from medprior.physics.operator import adjoint_mismatch


def numpy_centred_fft(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    return np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(x, axes=axes), axes=axes, norm="ortho"), axes=axes)


@settings(max_examples=15, deadline=None)
@given(h=st.integers(4, 32), w=st.integers(4, 32), coils=st.integers(0, 8), batch=st.integers(1, 3),
       line_mask=st.booleans(), per_slice=st.booleans(), density=st.floats(0.0, 1.0), seed=st.integers(0, 2 ** 16))
def test_adjoint_2d(h: int, w: int, coils: int, batch: int, line_mask: bool, per_slice: bool, density: float,
                    seed: int) -> None:
    rng = np.random.default_rng(seed)
    mask = rng.random(w if line_mask else (h, w)) < density
    mask.flat[rng.integers(mask.size)] = True  # an empty mask makes A = 0 (mismatch 0/0)
    if coils == 0:
        sens = None
    elif per_slice:
        sens = torch.from_numpy(rng.standard_normal((batch, coils, h, w)) + 1j * rng.standard_normal((batch, coils, h, w)))
    else:
        sens = birdcage_sensitivities((h, w), coils)
    op = CartesianMRI(mask, sens, image_shape=(h, w), dtype=torch.complex128)
    assert op.range_shape == (max(coils, 1), h, w)
    assert adjoint_mismatch(op, batch=batch, dtype=torch.float64, seed=seed) < 1e-6
    x = torch.randn(batch, h, w, dtype=torch.complex128)
    torch.testing.assert_close(op.normal(x), op.adjoint(op.forward(x)), atol=1e-10, rtol=1e-10)


@settings(max_examples=15, deadline=None)
@given(d=st.integers(2, 12), h=st.integers(4, 16), w=st.integers(4, 16), coils=st.integers(0, 8),
       batch=st.integers(1, 2), full_mask=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_adjoint_3d(d: int, h: int, w: int, coils: int, batch: int, full_mask: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    mask = rng.random((d, h, w) if full_mask else (h, w)) < 0.4
    mask.flat[0] = True
    sens = birdcage_sensitivities((d, h, w), coils, coils_per_ring=4) if coils else None
    op = CartesianMRI3D(mask, sens, image_shape=(d, h, w), dtype=torch.complex128)
    assert op.range_shape == (max(coils, 1), d, h, w)
    assert adjoint_mismatch(op, batch=batch, dtype=torch.float64, seed=seed) < 1e-6
    x = torch.randn(batch, d, h, w, dtype=torch.complex128)
    torch.testing.assert_close(op.normal(x), op.adjoint(op.forward(x)), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("shape", [(16, 16), (15, 12), (9, 7)])
def test_matches_numpy_centred_fft_and_is_unitary(shape: tuple[int, int]) -> None:
    op = CartesianMRI(np.ones(shape, dtype=bool), dtype=torch.complex128)
    x = torch.randn(3, *shape, dtype=torch.complex128)
    y = op.forward(x)
    np.testing.assert_allclose(y[:, 0].numpy(), numpy_centred_fft(x.numpy(), (-2, -1)), atol=1e-12)
    torch.testing.assert_close(torch.linalg.vector_norm(y), torch.linalg.vector_norm(x))
    torch.testing.assert_close(op.adjoint(y), x)  # F^H F = I
    torch.testing.assert_close(ifftnc(fftnc(x, (-2, -1)), (-2, -1)), x)


@pytest.mark.parametrize("shape", [(16, 16), (9, 12)])
def test_centring_delta_and_constant(shape: tuple[int, int]) -> None:
    h, w = shape
    op = CartesianMRI(np.ones(shape, dtype=bool), dtype=torch.complex128)
    delta = torch.zeros(1, h, w, dtype=torch.complex128)
    delta[0, h // 2, w // 2] = 1
    k = op.forward(delta)[0, 0]
    torch.testing.assert_close(k, torch.full_like(k, 1 / np.sqrt(h * w)))  # flat, zero phase
    k = op.forward(torch.ones(1, h, w, dtype=torch.complex128))[0, 0]
    expected = torch.zeros_like(k)
    expected[h // 2, w // 2] = np.sqrt(h * w)
    torch.testing.assert_close(k, expected, atol=1e-12, rtol=0)


def test_masked_kspace_is_zero_and_line_mask_broadcasts() -> None:
    lines = np.zeros(12, dtype=bool)
    lines[[0, 5, 6, 9]] = True
    sens = birdcage_sensitivities((10, 12), 3, dtype=torch.complex128)
    op_lines = CartesianMRI(lines, sens, dtype=torch.complex128)
    op_full = CartesianMRI(np.broadcast_to(lines, (10, 12)), sens, dtype=torch.complex128)
    x = torch.randn(2, 10, 12, dtype=torch.complex128)
    y = op_lines.forward(x)
    assert bool((y[..., ~torch.from_numpy(lines)] == 0).all())
    assert bool((y[..., torch.from_numpy(lines)] != 0).all())
    torch.testing.assert_close(y, op_full.forward(x))
    full = CartesianMRI(np.ones((10, 12), dtype=bool), sens, dtype=torch.complex128).forward(x)
    torch.testing.assert_close(y[..., torch.from_numpy(lines)], full[..., torch.from_numpy(lines)])


def test_forward_equals_coil_images_then_fft() -> None:
    sens = birdcage_sensitivities((8, 10), 4, normalize=False, dtype=torch.complex128)
    mask = np.random.default_rng(1).random((8, 10)) < 0.5
    op = CartesianMRI(mask, sens, dtype=torch.complex128)
    x = torch.randn(2, 8, 10, dtype=torch.complex128)
    expected = numpy_centred_fft((x[:, None] * sens).numpy(), (-2, -1)) * mask
    np.testing.assert_allclose(op.forward(x).numpy(), expected, atol=1e-12)


def test_3d_is_a_3d_fft_with_readout_along_depth() -> None:
    shape = (6, 8, 5)
    mask = np.random.default_rng(2).random(shape[1:]) < 0.5
    op = CartesianMRI3D(mask, image_shape=shape, dtype=torch.complex128)
    x = torch.randn(1, *shape, dtype=torch.complex128)
    expected = numpy_centred_fft(x.numpy(), (-3, -2, -1)) * mask[None]
    np.testing.assert_allclose(op.forward(x)[:, 0].numpy(), expected, atol=1e-12)


def test_per_slice_sensitivities_and_dtypes() -> None:
    sens = torch.stack([birdcage_sensitivities((8, 8), 2), birdcage_sensitivities((8, 8), 2).conj()])
    op = CartesianMRI(np.ones(8, dtype=bool), sens)
    x = torch.randn(2, 8, 8, dtype=torch.complex64)
    y = op.forward(x)
    assert y.dtype == torch.complex64 and y.shape == (2, 2, 8, 8)
    torch.testing.assert_close(op.adjoint(y), x, atol=1e-5, rtol=1e-5)  # normalised maps, full sampling
    assert op.forward(x.real).dtype == torch.complex64  # real input is promoted
    with pytest.raises(InputError, match="per item"):
        op.forward(torch.randn(3, 8, 8, dtype=torch.complex64))
    assert op.to("cpu", torch.complex128) is op and op.forward(x.to(torch.complex128)).dtype == torch.complex128


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="image_shape"):
        CartesianMRI(np.ones(8, dtype=bool))
    with pytest.raises(InputError, match="mask shape"):
        CartesianMRI(np.ones((8, 9), dtype=bool), birdcage_sensitivities((8, 8), 2))
    with pytest.raises(InputError, match="binary"):
        CartesianMRI(np.full((4, 4), 0.5))
    op = CartesianMRI(np.ones((4, 4), dtype=bool))
    with pytest.raises(InputError, match=r"\(B, 4, 4\)"):
        op.forward(torch.zeros(1, 4, 5, dtype=torch.complex64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    op = CartesianMRI(np.random.default_rng(0).random(16) < 0.5, birdcage_sensitivities((16, 16), 4))
    x = torch.randn(2, 16, 16, dtype=torch.complex64)
    torch.testing.assert_close(op.forward(x.cuda()).cpu(), op.forward(x), atol=1e-5, rtol=1e-5)
    assert adjoint_mismatch(op, device="cuda") < 1e-6
