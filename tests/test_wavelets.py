"""Haar wavelets: PyWavelets' coefficients, exact inverse, orthonormality, gradients, layout, errors."""

from __future__ import annotations

from unittest.mock import patch

import numpy as np
import pytest
import pywt
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from medprior import haar_kernels, wavelets
from medprior.wavelets import SUBBANDS_2D, SUBBANDS_3D, dwt2, dwt3, idwt2, idwt3, wavedec, waverec

SUBBANDS = {2: SUBBANDS_2D, 3: SUBBANDS_3D}
DWT = {2: (dwt2, idwt2), 3: (dwt3, idwt3)}


@pytest.fixture(scope="module", params=["compiled", "torch"], autouse=True)
def backend(request: pytest.FixtureRequest):
    """Every test twice: float32/float64 on the CPU through the compiled kernels, and forced
    through the torch path (what GPUs and float16/bfloat16 use)."""
    with pytest.MonkeyPatch.context() as context:
        if request.param == "torch":
            context.setattr(wavelets, "_COMPILED_DTYPES", ())
        yield request.param


def random_tensor(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape)).to(dtype)


def blocks(y: torch.Tensor, channels: int) -> list[torch.Tensor]:
    """Split subband-major channels into one (B, C, ...) block per subband."""
    return list(y.split(channels, dim=1))


def assert_matches_pywt(ours: torch.Tensor, pywt_bands: dict[str, np.ndarray], names: tuple[str, ...],
                        channels: int) -> None:
    assert len(blocks(ours, channels)) == len(names)
    for name, block in zip(names, blocks(ours, channels)):
        assert block.dtype == torch.float32
        error = np.abs(block.numpy() - pywt_bands[name]).max()
        assert error < 1e-5, f"subband {name}: max abs error {error}"


@st.composite
def batches(draw: st.DrawFn, dims: int, multiple: int = 2, max_size: int = 12) -> tuple[int, ...]:
    """Shapes (B, C, *spatial) with B, C in 1..3 and spatial sizes multiples of ``multiple``."""
    spatial = [multiple * draw(st.integers(1, max_size // multiple)) for _ in range(dims)]
    return (draw(st.integers(1, 3)), draw(st.integers(1, 3)), *spatial)


@pytest.mark.parametrize("dims", [2, 3])
@settings(max_examples=25, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2 ** 32 - 1), slab=st.sampled_from([1, 150, 2 ** 18]),
       numpy_outputs=st.booleans())
def test_single_level_equals_pywt_dwtn(dims: int, data: st.DataObject, seed: int, slab: int,
                                       numpy_outputs: bool) -> None:
    shape = data.draw(batches(dims))
    x = random_tensor(shape, seed)
    dwt, idwt = DWT[dims]
    # CPU slabs: one row each, a few rows, all rows; outputs from torch or (as large ones are) numpy
    huge_pages = patch.object(wavelets, "_HUGE_PAGE_BYTES", 0 if numpy_outputs else 2 ** 25)
    with patch.object(wavelets, "_CPU_SLAB_ELEMENTS", slab), huge_pages:
        y = dwt(x)
    assert y.shape == (shape[0], 2 ** dims * shape[1], *(s // 2 for s in shape[2:]))
    reference = pywt.dwtn(x.numpy(), "haar", axes=tuple(range(2, 2 + dims)))
    assert_matches_pywt(y, reference, SUBBANDS[dims], shape[1])
    with patch.object(wavelets, "_CPU_SLAB_ELEMENTS", slab), huge_pages:
        assert (idwt(y) - x).abs().max() < 1e-5


@pytest.mark.parametrize(("dims", "levels"), [(2, 2), (2, 3), (3, 2), (3, 3)])
@settings(max_examples=8, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2 ** 32 - 1))
def test_multi_level_equals_pywt_wavedecn(dims: int, levels: int, data: st.DataObject, seed: int) -> None:
    shape = data.draw(batches(dims, multiple=2 ** levels, max_size=16 if dims == 3 else 32))
    x = random_tensor(shape, seed)
    coeffs = wavedec(x, levels, dims=dims)
    reference = pywt.wavedecn(x.numpy(), "haar", level=levels, axes=tuple(range(2, 2 + dims)))
    assert len(coeffs) == len(reference) == levels + 1
    assert coeffs[0].shape == (*shape[:2], *(s // 2 ** levels for s in shape[2:]))
    assert np.abs(coeffs[0].numpy() - reference[0]).max() < 1e-5
    for ours, theirs in zip(coeffs[1:], reference[1:]):
        assert_matches_pywt(ours, theirs, SUBBANDS[dims][1:], shape[1])
    assert (waverec(coeffs, dims=dims) - x).abs().max() < 1e-5
    separate = [c.transpose(-1, -2).contiguous().transpose(-1, -2) for c in coeffs]  # own, non-contiguous memory
    assert (waverec(separate, dims=dims) - x).abs().max() < 1e-5


@pytest.mark.parametrize("dims", [2, 3])
def test_orthonormal_energy_and_adjoint_is_inverse(dims: int) -> None:
    dwt, idwt = DWT[dims]
    shape = (2, 3, *[6, 8, 4][:dims])
    x = random_tensor(shape, 1, torch.float64)
    y = random_tensor((2, 3 * 2 ** dims, *[3, 4, 2][:dims]), 2, torch.float64)
    torch.testing.assert_close(dwt(x).norm(), x.norm(), rtol=1e-12, atol=0)
    torch.testing.assert_close(idwt(y).norm(), y.norm(), rtol=1e-12, atol=0)
    torch.testing.assert_close((dwt(x) * y).sum(), (x * idwt(y)).sum(), rtol=1e-12, atol=1e-12)
    coeffs = wavedec(x, 1, dims=dims)
    torch.testing.assert_close(torch.cat([c.flatten() for c in coeffs]).norm(), x.norm(), rtol=1e-12, atol=0)


def test_gradcheck_float64() -> None:
    x3 = random_tensor((1, 2, 2, 4, 2), 3, torch.float64).requires_grad_()
    x2 = random_tensor((2, 1, 4, 4), 4, torch.float64).requires_grad_()
    y3 = random_tensor((1, 8, 1, 2, 1), 5, torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(dwt3, (x3,))
    assert torch.autograd.gradcheck(idwt3, (y3,))
    assert torch.autograd.gradcheck(dwt2, (x2,))
    assert torch.autograd.gradgradcheck(dwt3, (x3,))
    assert torch.autograd.gradgradcheck(idwt3, (y3,))
    assert torch.autograd.gradcheck(lambda x: tuple(wavedec(x, 2, dims=2)), (x2,))
    assert torch.autograd.gradcheck(lambda x: waverec(wavedec(x, 1, dims=3), dims=3), (x3,))
    approx, details = random_tensor((2, 1, 2, 2), 9, torch.float64), random_tensor((2, 3, 2, 2), 10, torch.float64)
    assert torch.autograd.gradcheck(lambda a, d: waverec([a, d], dims=2),
                                    (approx.requires_grad_(), details.requires_grad_()))


@pytest.mark.parametrize(("dims", "value"), [(2, 1.5), (3, -0.75)])
def test_constant_input_fills_only_the_low_pass_channels(dims: int, value: float) -> None:
    channels = 3
    x = torch.full((2, channels, *[4] * dims), value)
    y = DWT[dims][0](x)
    torch.testing.assert_close(y[:, :channels], torch.full_like(y[:, :channels], value * 2 ** (dims / 2)))
    assert torch.count_nonzero(y[:, channels:]) == 0


def test_channel_layout_is_subband_major() -> None:
    # channel c of the input only feeds channels k*C + c, for every subband k
    x = torch.zeros(1, 3, 4, 4, 4)
    x[:, 1] = random_tensor((4, 4, 4), 6)
    nonzero = [int(c) for c in torch.nonzero(dwt3(x).abs().amax(dim=(0, 2, 3, 4)))]
    assert nonzero == [k * 3 + 1 for k in range(8)]


def test_dtype_contiguity_and_batch_independence() -> None:
    x = random_tensor((2, 2, 8, 6, 4), 7, torch.float64)
    assert dwt3(x).dtype == torch.float64
    transposed = x.transpose(2, 4).contiguous().transpose(2, 4)  # same values, non-contiguous
    torch.testing.assert_close(dwt3(transposed), dwt3(x))
    torch.testing.assert_close(dwt3(x)[1:], dwt3(x[1:]))
    half = dwt3(x.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(idwt3(half).double(), x, rtol=0.05, atol=0.05)


def test_float32_on_the_cpu_takes_the_compiled_kernels(backend: str) -> None:
    x = random_tensor((1, 2, 4, 4, 4), 9)
    with patch.object(haar_kernels, "forward_3d", wraps=haar_kernels.forward_3d) as forward, \
            patch.object(haar_kernels, "inverse_3d", wraps=haar_kernels.inverse_3d) as inverse:
        idwt3(dwt3(x))
        idwt3(dwt3(x.to(torch.bfloat16)))
    assert forward.call_count == inverse.call_count == (1 if backend == "compiled" else 0)


def test_odd_sizes_and_bad_shapes_raise_helpful_errors() -> None:
    with pytest.raises(ValueError, match=r"dwt3: size 5 of dim -2 \(H\) is not a multiple of 2.*even sizes"):
        dwt3(torch.zeros(1, 1, 4, 5, 4))
    with pytest.raises(ValueError, match=r"dwt2: size 7 of dim -1 \(W\)"):
        dwt2(torch.zeros(1, 1, 4, 7))
    with pytest.raises(ValueError, match=r"wavedec: size 12 of dim -3 \(D\) is not a multiple of 8.*every level"):
        wavedec(torch.zeros(1, 1, 12, 16, 16), 3)
    with pytest.raises(ValueError, match=r"expected a \(B, C, D, H, W\) tensor"):
        dwt3(torch.zeros(4, 4, 4))
    with pytest.raises(ValueError, match="not a multiple of 8 subbands"):
        idwt3(torch.zeros(1, 4, 2, 2, 2))
    with pytest.raises(ValueError, match="levels must be >= 1"):
        wavedec(torch.zeros(1, 1, 4, 4), 0, dims=2)
    with pytest.raises(TypeError, match="floating-point"):
        dwt2(torch.zeros(1, 1, 4, 4, dtype=torch.int64))
    coeffs = wavedec(torch.zeros(1, 2, 8, 8, 8), 2)
    with pytest.raises(ValueError, match=r"waverec: details 2 of 2 are \(1, 7, 4, 4, 4\).*needs \(1, 14, 4, 4, 4\)"):
        waverec([coeffs[0], coeffs[1], coeffs[2][:, :7]])
    with pytest.raises(ValueError, match=r"waverec: details 1 of 2 .*float64.*needs .*float32"):
        waverec([coeffs[0], coeffs[1].double(), coeffs[2]])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_matches_cpu_and_backpropagates() -> None:
    x = random_tensor((2, 2, 8, 12, 4), 8)
    leaf = x.cuda().requires_grad_()
    y = dwt3(leaf)
    assert y.is_cuda
    torch.testing.assert_close(y.cpu(), dwt3(x))
    (y ** 2).sum().backward()  # ||dwt(x)||^2 = ||x||^2, so the gradient is 2x
    torch.testing.assert_close(leaf.grad.cpu(), 2 * x)
    coeffs = wavedec(x.cuda(), 2, dims=3)
    torch.testing.assert_close(waverec(coeffs, dims=3).cpu(), x, rtol=0, atol=1e-5)
    x16 = x.cuda().half()
    torch.testing.assert_close(idwt3(dwt3(x16)), x16, rtol=1e-2, atol=1e-2)
