"""Orthonormal 2D and 3D Haar wavelet transforms (DWT / IDWT, single and multi-level) in pure torch.

Why our own: PyWavelets is numpy/CPU only and not differentiable, and pytorch_wavelets is 2D only
(and not a dependency). cWDM-style training needs the 3D transform batched, on the GPU and under
autograd. These functions take any float dtype on any device, are differentiable (the transform is
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

import torch
from torch import Tensor

SUBBANDS_2D = ("aa", "ad", "da", "dd")
SUBBANDS_3D = ("aaa", "aad", "ada", "add", "daa", "dad", "dda", "ddd")
_DIM_NAMES = {2: "HW", 3: "DHW"}
# On CPU the transform runs over slabs of about this many elements (1 MiB of float32) so that its
# passes stay in cache; on other devices the whole tensor goes at once.
_CPU_SLAB_ELEMENTS = 2 ** 18


def _butterfly(src: Tensor, dim: int, dst: Tensor) -> None:
    """Unnormalised Haar step along a size-2 ``dim``: dst[0], dst[1] = src[0] + src[1], src[0] - src[1].

    ``dst`` may be ``src`` (in place: a, b <- a + b, (a + b) - 2b).
    """
    a, b = src.select(dim, 0), src.select(dim, 1)
    if dst is src:
        a.add_(b)
        torch.add(a, b, alpha=-2, out=b)
    else:
        torch.add(a, b, out=dst.select(dim, 0))
        torch.sub(a, b, out=dst.select(dim, 1))


def _transform(src: Tensor, dst: Tensor, n: int, inverse: bool) -> None:
    """``dst`` = orthonormal n-D Haar transform of ``src``, both viewed as (B, C, h1, 2, ..., hn, 2).

    The size-2 dims hold sample pairs (x0, x1) in the image and subband bits (a, d) in the
    coefficients. The last one (W) is interleaved in memory in the image, so it goes through a
    buffer where it is a block dim (..., 2, hn) instead; forward: W (src -> buffer), first dim
    (buffer -> dst), the middle one (3D) in place in dst; inverse: first dim (src -> buffer), the
    middle one in place, W (buffer -> dst). On CPU this runs over slabs of h1 rows so that the
    buffer and the passes stay in cache.
    """
    first, middle, last = 3, range(5, 2 * n + 1, 2), 2 * n + 1
    rows = src.shape[2]
    if src.device.type == "cpu":
        rows = max(1, _CPU_SLAB_ELEMENTS * rows // max(src.numel(), 1))
    buffer = src.new_empty(*src.shape[:2], min(rows, src.shape[2]), *src.shape[3:-2], 2, src.shape[-2])
    for s, d in zip(src.split(rows, 2), dst.split(rows, 2)):
        blocked = buffer[:, :, :s.shape[2]].transpose(-1, -2)  # shaped like s, W pairs as blocks
        if inverse:
            _butterfly(s, first, blocked)
            for dim in middle:
                _butterfly(blocked, dim, blocked)
            _butterfly(blocked, last, d)
        else:
            _butterfly(s, last, blocked)
            _butterfly(blocked, first, d)
            for dim in middle:
                _butterfly(d, dim, d)
        d.mul_(2 ** (-n / 2))


def _subband_view(y: Tensor, n: int) -> Tensor:
    """View of (B, 2^n * C, h1, ..., hn) subband-major coefficients as (B, C, h1, 2, ..., hn, 2)."""
    batch, channels, *half = y.shape
    bits = y.reshape(batch, *[2] * n, channels // 2 ** n, *half)  # (B, 2, ..., 2, C, h1, ..., hn)
    return bits.permute(0, n + 1, *[d for i in range(n) for d in (n + 2 + i, 1 + i)])


def _pairs_view(x: Tensor) -> Tensor:
    """View of (B, C, s1, ..., sn) as (B, C, s1/2, 2, ..., sn/2, 2)."""
    return x.reshape(*x.shape[:2], *[d for s in x.shape[2:] for d in (s // 2, 2)])


def _dwt(x: Tensor, n: int) -> Tensor:
    batch, channels, *size = x.shape
    out = x.new_empty(batch, 2 ** n * channels, *[s // 2 for s in size])
    _transform(_pairs_view(x), _subband_view(out, n), n, inverse=False)
    return out


def _idwt(y: Tensor, n: int) -> Tensor:
    batch, channels, *half = y.shape
    out = y.new_empty(batch, channels // 2 ** n, *[2 * h for h in half])
    _transform(_subband_view(y, n), _pairs_view(out), n, inverse=True)
    return out


class _Haar(torch.autograd.Function):
    """Autograd wrapper: orthonormal, so the backward pass of each direction is the other one."""

    @staticmethod
    def forward(ctx, x: Tensor, n: int, inverse: bool) -> Tensor:  # type: ignore[override]
        ctx.n, ctx.inverse = n, inverse
        return _idwt(x, n) if inverse else _dwt(x, n)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        return _Haar.apply(grad, ctx.n, not ctx.inverse), None, None


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
    return _Haar.apply(x, 2, False)


def idwt2(y: Tensor) -> Tensor:
    """Inverse (and adjoint) of :func:`dwt2`: (B, 4*C, h, w) -> (B, C, 2h, 2w)."""
    _inverse_input(y, 2, "idwt2")
    return _Haar.apply(y, 2, True)


def dwt3(x: Tensor) -> Tensor:
    """One-level 3D Haar DWT: (B, C, D, H, W), all even -> (B, 8*C, D/2, H/2, W/2).

    Any floating dtype and device (kept); differentiable; orthonormal (||dwt3(x)|| = ||x||).
    Channels [k*C:(k+1)*C] hold subband ``SUBBANDS_3D[k]`` (aaa, aad, ..., ddd; letters for D, H, W),
    so [0:C] is the low-pass band: 2^{3/2} times the mean of each 2x2x2 block (not rescaled here).
    Odd sizes raise ValueError.
    """
    _check(x, 3, "dwt3")
    return _Haar.apply(x, 3, False)


def idwt3(y: Tensor) -> Tensor:
    """Inverse (and adjoint) of :func:`dwt3`: (B, 8*C, d, h, w) -> (B, C, 2d, 2h, 2w)."""
    _inverse_input(y, 3, "idwt3")
    return _Haar.apply(y, 3, True)


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
        y = _Haar.apply(x, dims, False)
        x, detail = y.split([x.shape[1], y.shape[1] - x.shape[1]], dim=1)
        details.append(detail)
    return [x, *reversed(details)]


def waverec(coeffs: list[Tensor], dims: int = 3) -> Tensor:
    """Inverse of :func:`wavedec`: ``[approx_L, details_L, ..., details_1]`` -> (B, C, *size)."""
    x = coeffs[0]
    for detail in coeffs[1:]:
        y = torch.cat([x, detail], dim=1)
        _inverse_input(y, dims, "waverec")
        x = _Haar.apply(y, dims, True)
    return x
