"""Orthonormal 2D and 3D Haar wavelet transforms (DWT / IDWT, single and multi-level) on torch tensors.

Why our own: PyWavelets is numpy/CPU only and not differentiable, and pytorch_wavelets is 2D only
(and not a dependency). cWDM-style training needs the 3D transform batched, on the GPU and under
autograd. float32 and float64 on the CPU go through one compiled pass per transform
(:mod:`medprior.haar_kernels`, numba); GPUs and float16/bfloat16 through the torch ops below.

These functions take any float dtype on any device, are differentiable (the transform is
orthonormal, so the gradient of ``dwt`` is ``idwt`` of the incoming gradient and vice versa, and
nothing is saved for the backward pass) and give the coefficients of ``pywt.dwtn(x, "haar",
axes=...)`` and ``pywt.wavedecn`` to float rounding.

Conventions (d = 2 or 3 spatial dims, the last d dims of the tensor):

- Per dim, with x0 = x[..., 0::2] and x1 = x[..., 1::2]: low-pass ``a = (x0 + x1) / sqrt(2)``,
  high-pass ``d = (x0 - x1) / sqrt(2)`` (PyWavelets' signs). Sizes must be even; with even sizes
  the Haar filters never reach past the border, so no padding mode is involved.
- Subband names have one letter per dim in dim order, ``a`` = low-pass (approximation), ``d`` =
  high-pass (detail): :data:`SUBBANDS_2D` = aa, ad, da, dd (letters for H, W) and
  :data:`SUBBANDS_3D` = aaa, aad, ada, add, daa, dad, dda, ddd (letters for D, H, W), the keys of
  ``pywt.dwtn``. Subband k is binary k read with 0 = a, 1 = d.
- Channel layout is subband-major: ``dwt3`` maps (B, C, D, H, W) to (B, 8*C, D/2, H/2, W/2) with
  channels [k*C:(k+1)*C] = subband k of the C input channels, so [0:C] is the low-pass ``aaa``
  (cWDM's 8 subbands as channels at half resolution). ``dwt2`` likewise gives 4*C channels.
- Orthonormal: ||dwt(x)|| = ||x|| and idwt is both the inverse and the adjoint of dwt. One level
  multiplies the local mean by 2^{d/2} in the low-pass band (2^{3/2} = 2.83 in 3D, so data in
  [-1, 1] gives a low-pass band in [-2.83, 2.83]). Rescaling that band (cWDM divides it by 3
  before diffusion) is the prior's job (:class:`medprior.diffusion.priors.WaveletPrior3D`), not done here.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from medprior import haar_kernels

SUBBANDS_2D = ("aa", "ad", "da", "dd")
SUBBANDS_3D = ("aaa", "aad", "ada", "add", "daa", "dad", "dda", "ddd")
_DIM_NAMES = {2: "HW", 3: "DHW"}
# float32 and float64 on the CPU go through the compiled kernels; everything else through torch.
_COMPILED_DTYPES = (torch.float32, torch.float64)
# On CPU the torch transform runs over slabs of about this many elements (2 MiB of float32) so that its
# passes stay in cache; on other devices the whole tensor goes at once.
_CPU_SLAB_ELEMENTS = 2 ** 19
# CPU outputs of at least this many bytes (numpy's own huge-page threshold) are allocated through
# numpy (see _empty).
_HUGE_PAGE_BYTES = 2 ** 22
_NUMPY_DTYPES = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}


def _empty(shape: tuple[int, ...], like: Tensor) -> Tensor:
    """Uninitialised output tensor of ``shape`` with the dtype and device of ``like``.

    glibc serves torch's large CPU allocations with fresh mmap'd pages, and the first touch of each
    4 KiB page faults: at 256^3 float32 (64 MiB) that costs about 15 ms, as much as the transform's
    arithmetic, and at 128^3 (8 MiB) about 1 ms of a 5 ms round trip. numpy asks the kernel for
    transparent huge pages on arrays of 4 MiB and more (512x fewer faults), so such CPU outputs are
    numpy arrays shared with torch (freed with the tensor; the one difference is that such a tensor
    cannot be resized in place).
    """
    dtype = _NUMPY_DTYPES.get(like.dtype)
    nbytes = like.element_size() * int(np.prod(shape))
    if like.device.type == "cpu" and dtype is not None and nbytes >= _HUGE_PAGE_BYTES:
        return torch.from_numpy(np.empty(shape, dtype=dtype))
    return like.new_empty(shape)


def _butterfly(a: Tensor, b: Tensor, dim: int, dst: Tensor) -> None:
    """Unnormalised Haar step into the size-2 ``dim`` of ``dst``: dst[0], dst[1] = a + b, a - b."""
    torch.add(a, b, out=dst.select(dim, 0))
    torch.sub(a, b, out=dst.select(dim, 1))


def _butterfly_in_place(x: Tensor, dim: int) -> None:
    """:func:`_butterfly` of the two halves of ``x`` along its size-2 ``dim`` into themselves."""
    a, b = x.select(dim, 0), x.select(dim, 1)
    a.add_(b)
    torch.add(a, b, alpha=-2, out=b)


def _slab_rows(dst: Tensor) -> int:
    """Rows of the first spatial dim per slab: about _CPU_SLAB_ELEMENTS elements on CPU, all elsewhere."""
    rows = dst.shape[2]
    if dst.device.type == "cpu":
        rows = max(1, min(rows, _CPU_SLAB_ELEMENTS * rows // max(dst.numel(), 1)))
    return rows


def _buffer(pairs: Tensor, rows: int) -> Tensor:
    """Scratch for ``rows`` rows of the pairs view ``pairs`` (B, C, h1, 2, ..., hn, 2), stored as
    (B, C, rows, 2, h2, ..., h(n-1), 2^(n-1), hn): the bits of dims 2..n are one block dim, W last."""
    return pairs.new_empty(*pairs.shape[:2], rows, 2, *pairs.shape[4:-3], 2 ** (pairs.dim() // 2 - 2), pairs.shape[-2])


def _blocked(buffer: Tensor) -> Tensor:
    """:func:`_buffer`'s scratch viewed like the pairs view (B, C, rows, 2, ..., hn, 2)."""
    return buffer.unflatten(-2, [2] * (buffer.shape[-2].bit_length() - 1)).transpose(-1, -2)


def _forward(src: Tensor, dst: Tensor, n: int) -> None:
    """``dst`` = orthonormal n-D Haar transform of ``src``, both viewed as (B, C, h1, 2, ..., hn, 2).

    The size-2 dims hold sample pairs (x0, x1) in the image and subband bits (a, d) in the
    coefficients. The last one (W) is interleaved in memory in the image, so it goes first, into a
    buffer where it is a block dim; then the first dim (buffer -> dst), then the middle one (3D) in
    place in dst. On CPU this runs over slabs of h1 rows so that the buffer and passes stay in cache.
    """
    first, last = 3, 2 * n + 1
    rows = _slab_rows(src)
    buffer = _buffer(src, rows)
    for s, d in zip(src.split(rows, 2), dst.split(rows, 2)):
        blocked = _blocked(buffer[:, :, :s.shape[2]])
        _butterfly(s.select(last, 0), s.select(last, 1), last, blocked)
        _butterfly(blocked.select(first, 0), blocked.select(first, 1), first, d)
        for dim in range(5, last, 2):
            _butterfly_in_place(d, dim)
        d.mul_(2 ** (-n / 2))


def _inverse(approx: Tensor, details: Tensor, dst: Tensor, n: int) -> None:
    """``dst`` (the image's pairs view) = inverse n-D Haar of ``approx`` (B, C, h1, ..., hn) and
    ``details`` (B, (2^n - 1) C, h1, ..., hn), which need not share memory (``waverec`` never
    concatenates them).

    The first dim goes first: subband k (first bit a) pairs with k + 2^(n-1) (first bit d), and the
    other bits of k index the buffer's bit block, so the approximation is one butterfly and the
    other 2^(n-1) - 1 pairs, consecutive in both ``details`` and the buffer, are another. Then the
    middle dim (3D) in place, then W (buffer -> dst), slab by slab as in :func:`_forward`.
    """
    half, last = 2 ** (n - 1), 2 * n + 1
    bands = details.unflatten(1, (2 ** n - 1, approx.shape[1]))  # (B, 2^n - 1, C, h1, ..., hn)
    rows = _slab_rows(dst)
    buffer = _buffer(dst, rows)
    for start, d in zip(range(0, dst.shape[2], rows), dst.split(rows, 2)):
        block = buffer[:, :, :d.shape[2]]
        slab = bands[:, :, :, start:start + d.shape[2]]
        _butterfly(approx[:, :, start:start + d.shape[2]], slab[:, half - 1], 3, block.select(-2, 0))
        _butterfly(slab[:, :half - 1].movedim(1, -2), slab[:, half:].movedim(1, -2), 3, block[..., 1:, :])
        blocked = _blocked(block)
        for dim in range(5, last, 2):
            _butterfly_in_place(blocked, dim)
        _butterfly(blocked.select(last, 0), blocked.select(last, 1), last, d)
        d.mul_(2 ** (-n / 2))


def _subband_view(y: Tensor, n: int) -> Tensor:
    """View of (B, 2^n * C, h1, ..., hn) subband-major coefficients as (B, C, h1, 2, ..., hn, 2)."""
    batch, channels, *half = y.shape
    bits = y.reshape(batch, *[2] * n, channels // 2 ** n, *half)  # (B, 2, ..., 2, C, h1, ..., hn)
    return bits.permute(0, n + 1, *[d for i in range(n) for d in (n + 2 + i, 1 + i)])


def _pairs_view(x: Tensor) -> Tensor:
    """View of (B, C, s1, ..., sn) as (B, C, s1/2, 2, ..., sn/2, 2)."""
    return x.reshape(*x.shape[:2], *[d for s in x.shape[2:] for d in (s // 2, 2)])


def _compiled(x: Tensor) -> bool:
    """Whether the compiled CPU kernels (:mod:`medprior.haar_kernels`) take ``x``."""
    return x.device.type == "cpu" and x.dtype in _COMPILED_DTYPES


class _Dwt(torch.autograd.Function):
    """One level, (B, C, *size) -> (B, 2^n C, *size/2). Orthonormal, so its backward is the inverse."""

    @staticmethod
    def forward(ctx, x: Tensor, n: int) -> Tensor:  # type: ignore[override]
        ctx.n = n
        batch, channels, *size = x.shape
        out = _empty((batch, 2 ** n * channels, *[s // 2 for s in size]), x)
        if _compiled(x):
            forward_kernel = haar_kernels.forward_3d if n == 3 else haar_kernels.forward_2d
            forward_kernel(x.detach().numpy(), out.unflatten(1, (2 ** n, channels)).numpy())
        else:
            _forward(_pairs_view(x), _subband_view(out, n), n)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        channels = grad.shape[1] // 2 ** ctx.n
        return _Idwt.apply(grad[:, :channels], grad[:, channels:], ctx.n), None


class _Idwt(torch.autograd.Function):
    """Inverse of one level from the approximation (B, C, *h) and the details (B, (2^n - 1) C, *h)."""

    @staticmethod
    def forward(ctx, approx: Tensor, details: Tensor, n: int) -> Tensor:  # type: ignore[override]
        ctx.n, ctx.channels = n, approx.shape[1]
        batch, channels, *half = approx.shape
        out = _empty((batch, channels, *[2 * h for h in half]), approx)
        if _compiled(approx):
            inverse_kernel = haar_kernels.inverse_3d if n == 3 else haar_kernels.inverse_2d
            inverse_kernel(approx.detach().numpy(), details.detach().unflatten(1, (2 ** n - 1, channels)).numpy(),
                           out.numpy())
        else:
            _inverse(approx, details, _pairs_view(out), n)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, None]:  # type: ignore[override]
        coefficients = _Dwt.apply(grad, ctx.n)
        return coefficients[:, :ctx.channels], coefficients[:, ctx.channels:], None


def _check(x: Tensor, n: int, name: str, divisor: int = 2) -> None:
    """Shape and dtype checks; every spatial size must be a multiple of ``divisor``."""
    if n not in _DIM_NAMES:
        raise ValueError(f"{name}: dims must be 2 or 3, got {n}")
    if x.dim() != n + 2:
        raise ValueError(f"{name}: expected a (B, C, {', '.join(_DIM_NAMES[n])}) tensor, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got {x.dtype}")
    for k, size in enumerate(x.shape[2:]):
        if size % divisor:
            raise ValueError(f"{name}: size {size} of dim {k - n} ({_DIM_NAMES[n][k]}) is not a multiple of "
                             f"{divisor}; the Haar transform here needs even sizes at every level")


def _inverse_input(y: Tensor, n: int, name: str) -> None:
    _check(y, n, name, divisor=1)
    if y.shape[1] % 2 ** n:
        raise ValueError(f"{name}: {y.shape[1]} channels is not a multiple of {2 ** n} subbands")


def dwt2(x: Tensor) -> Tensor:
    """One-level 2D Haar DWT: (B, C, H, W), H and W even -> (B, 4*C, H/2, W/2).

    Any floating dtype and device (kept); differentiable; orthonormal (||dwt2(x)|| = ||x||).
    Channels [k*C:(k+1)*C] hold subband ``SUBBANDS_2D[k]`` (aa, ad, da, dd; first letter = H), so
    [0:C] is the low-pass band: 2 times the mean of each 2x2 block. Odd sizes raise ValueError.
    """
    _check(x, 2, "dwt2")
    return _Dwt.apply(x, 2)


def idwt2(y: Tensor) -> Tensor:
    """Inverse (and adjoint) of :func:`dwt2`: (B, 4*C, h, w) -> (B, C, 2h, 2w)."""
    _inverse_input(y, 2, "idwt2")
    channels = y.shape[1] // 4
    return _Idwt.apply(y[:, :channels], y[:, channels:], 2)


def dwt3(x: Tensor) -> Tensor:
    """One-level 3D Haar DWT: (B, C, D, H, W), all even -> (B, 8*C, D/2, H/2, W/2).

    Any floating dtype and device (kept); differentiable; orthonormal (||dwt3(x)|| = ||x||).
    Channels [k*C:(k+1)*C] hold subband ``SUBBANDS_3D[k]`` (aaa, aad, ..., ddd; letters for D, H, W),
    so [0:C] is the low-pass band: 2^{3/2} times the mean of each 2x2x2 block (not rescaled here).
    Odd sizes raise ValueError.
    """
    _check(x, 3, "dwt3")
    return _Dwt.apply(x, 3)


def idwt3(y: Tensor) -> Tensor:
    """Inverse (and adjoint) of :func:`dwt3`: (B, 8*C, d, h, w) -> (B, C, 2d, 2h, 2w)."""
    _inverse_input(y, 3, "idwt3")
    channels = y.shape[1] // 8
    return _Idwt.apply(y[:, :channels], y[:, channels:], 3)


def wavedec(x: Tensor, levels: int, dims: int = 3) -> list[Tensor]:
    """Multi-level Haar DWT over the last ``dims`` (2 or 3) dims, like ``pywt.wavedecn``.

    Returns ``[approx_L, details_L, ..., details_1]``: ``approx_L`` is (B, C, *size / 2^L) and
    ``details_l`` is (B, (2^dims - 1)*C, *size / 2^l), its subbands (all but the first of
    ``SUBBANDS_2D``/``SUBBANDS_3D``) subband-major. Each spatial size must be divisible by
    2^levels (even at every level).
    """
    if levels < 1:
        raise ValueError(f"wavedec: levels must be >= 1, got {levels}")
    _check(x, dims, "wavedec", divisor=2 ** levels)
    details = []
    for _ in range(levels):
        y = _Dwt.apply(x, dims)
        x, detail = y.split([x.shape[1], y.shape[1] - x.shape[1]], dim=1)
        details.append(detail)
    return [x, *reversed(details)]


def waverec(coeffs: list[Tensor], dims: int = 3) -> Tensor:
    """Inverse of :func:`wavedec`: ``[approx_L, details_L, ..., details_1]`` -> (B, C, *size).

    Each level reads the approximation and the details where they are (no concatenation).
    """
    x = coeffs[0]
    for level, details in enumerate(coeffs[1:]):
        _check(x, dims, "waverec", divisor=1)
        expected = (x.shape[0], (2 ** dims - 1) * x.shape[1], *x.shape[2:])
        if details.shape != expected or details.dtype != x.dtype or details.device != x.device:
            raise ValueError(f"waverec: details {level + 1} of {len(coeffs) - 1} are {tuple(details.shape)} "
                             f"{details.dtype} on {details.device}; the approximation needs {expected} "
                             f"{x.dtype} on {x.device}")
        x = _Idwt.apply(x, details, dims)
    return x
