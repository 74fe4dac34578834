"""Cartesian MRI with optional coil sensitivities (SENSE): ``y = M F S x`` with an exact adjoint.

``F`` is the centred orthonormal DFT (``fftshift(fft(ifftshift(x), norm="ortho"))`` over the
spatial axes), so k-space index ``(H // 2, W // 2)`` is DC and the fully sampled single-coil
operator is unitary. ``S`` multiplies the image by each coil's complex sensitivity ``S_c``
(``(B, *spatial) -> (B, C, *spatial)``) and ``M`` is a binary sampling mask: unsampled k-space
positions are exactly zero in ``y``. The adjoint is ``A^H y = sum_c conj(S_c) F^H (M y_c)``, and for
maps normalised so that ``sum_c |S_c|^2 = 1`` it is the SENSE-1 coil combination.

For even sizes the centring shifts are folded into the mask and the maps as ``(-1)^n`` sign
patterns (``F_c = (-1)^{N/2} D F D``, ``D = diag((-1)^n)``): no ``fftshift`` copies per call.

Example:
    >>> import torch
    >>> from medprior.physics.masks import uniform_mask_1d
    >>> from medprior.physics.coils import birdcage_sensitivities
    >>> op = CartesianMRI(uniform_mask_1d(64, 4, 0.08), birdcage_sensitivities((64, 64), 8))
    >>> op.forward(torch.ones(3, 64, 64, dtype=torch.complex64)).shape
    torch.Size([3, 8, 64, 64])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from medprior.errors import InputError
from medprior.physics.operator import LinearOperator

ArrayLike = np.ndarray | torch.Tensor

_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128,
            torch.complex64: torch.complex64, torch.complex128: torch.complex128}


def fftnc(x: torch.Tensor, dims: Sequence[int]) -> torch.Tensor:
    """Centred orthonormal DFT over ``dims``: ``fftshift(fftn(ifftshift(x), norm="ortho"))``."""
    dims = tuple(dims)
    return torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(x, dim=dims), dim=dims, norm="ortho"), dim=dims)


def ifftnc(k: torch.Tensor, dims: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`fftnc` (and its adjoint): ``fftshift(ifftn(ifftshift(k), norm="ortho"))``."""
    dims = tuple(dims)
    return torch.fft.fftshift(torch.fft.ifftn(torch.fft.ifftshift(k, dim=dims), dim=dims, norm="ortho"), dim=dims)


def _as_tensor(value: ArrayLike, name: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, torch.Tensor):
        return value.detach()
    raise InputError(None, f"{name} must be a numpy array or torch tensor, got {type(value).__name__}")


def _sign_pattern(shape: tuple[int, ...]) -> torch.Tensor:
    """``prod_i (-1)^{n_i}`` over a grid of ``shape`` (float64)."""
    total = torch.zeros(shape, dtype=torch.int64)
    for axis, n in enumerate(shape):
        view = [1] * len(shape)
        view[axis] = n
        total = total + torch.arange(n).reshape(view)
    return 1.0 - 2.0 * (total % 2).to(torch.float64)


class _CartesianSENSE(LinearOperator):
    """Shared implementation of :class:`CartesianMRI` (2D) and :class:`CartesianMRI3D` (3D)."""

    complex = True
    ndim: int

    def __init__(self, mask: ArrayLike, sensitivities: ArrayLike | None, image_shape: Sequence[int] | None,
                 device: str | torch.device, dtype: torch.dtype) -> None:
        if dtype not in _COMPLEX:
            raise InputError(None, f"dtype must be float32/float64/complex64/complex128, got {dtype}")
        nd = self.ndim
        mask_t = _as_tensor(mask, "mask")
        sens = None if sensitivities is None else _as_tensor(sensitivities, "sensitivities")
        shape = self._spatial_shape(mask_t, sens, image_shape)
        self.domain_shape = shape
        if mask_t.dim() not in self._mask_ndims() or tuple(mask_t.shape) != shape[nd - mask_t.dim():]:
            raise InputError(None, f"mask shape {tuple(mask_t.shape)} does not match the image {shape}: "
                                   f"allowed {self._mask_help()}")
        values = torch.unique(mask_t.to(torch.float64))
        if not bool(((values == 0) | (values == 1)).all()):
            raise InputError(None, "mask must be binary (bool or 0/1 values)")
        mask64 = mask_t.to(torch.float64).reshape((1,) * (nd - mask_t.dim()) + tuple(mask_t.shape))
        self.mask = mask64.to(torch.bool)
        self.fully_sampled = bool(mask64.all())
        self.per_item = False
        if sens is None:
            self.n_coils = 1
            sens64 = None
        else:
            if sens.dim() not in (nd + 1, nd + 2) or tuple(sens.shape[-nd:]) != shape:
                raise InputError(None, f"sensitivities must be (C, {', '.join(map(str, shape))}) or (B, C, ...), "
                                       f"got {tuple(sens.shape)}")
            self.per_item = sens.dim() == nd + 2
            self.n_coils = int(sens.shape[-nd - 1])
            sens64 = sens.to(torch.complex128)
        self.range_shape = (self.n_coils, *shape)
        # Centring by sign patterns (all spatial sizes even) or by explicit shifts (any odd size).
        self._modulated = all(n % 2 == 0 for n in shape)
        if self._modulated:
            pre = _sign_pattern(shape)
            post = pre * (-1.0) ** (sum(n // 2 for n in shape) % 2)
            mask_buffer = mask64 * post
            pre_buffer = pre.to(torch.complex128) if sens64 is None else sens64 * pre
        else:
            mask_buffer = mask64
            pre_buffer = sens64
        power = None if sens64 is None else (sens64.abs() ** 2).sum(-nd - 1)
        self._host = {"mask": mask_buffer, "pre": pre_buffer, "power": power}
        self._cache: dict[tuple[torch.dtype, torch.device], dict[str, torch.Tensor | None]] = {}
        self.device = torch.device(device)
        self.dtype = _COMPLEX[dtype]
        self._buffers(self.dtype, self.device)

    # -- construction helpers -------------------------------------------------------------------
    def _spatial_shape(self, mask: torch.Tensor, sens: torch.Tensor | None,
                       image_shape: Sequence[int] | None) -> tuple[int, ...]:
        nd = self.ndim
        if image_shape is not None:
            shape = tuple(int(n) for n in image_shape)
        elif sens is not None:
            shape = tuple(int(n) for n in sens.shape[-nd:])
        elif mask.dim() == nd:
            shape = tuple(int(n) for n in mask.shape)
        else:
            raise InputError(None, f"image_shape is needed with a {mask.dim()}D mask and no sensitivities")
        if len(shape) != nd or min(shape) < 1:
            raise InputError(None, f"image shape must be {nd} positive sizes, got {shape}")
        return shape

    def _mask_ndims(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _mask_help(self) -> str:
        raise NotImplementedError

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> _CartesianSENSE:
        """Move the buffers (mask, maps) to ``device`` / ``dtype`` (in place; returns ``self``)."""
        self.device = torch.device(device) if device is not None else self.device
        self.dtype = _COMPLEX[dtype] if dtype is not None else self.dtype
        self._buffers(self.dtype, self.device)
        return self

    def _buffers(self, dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor | None]:
        key = (dtype, device)
        if key not in self._cache:
            real = torch.float32 if dtype == torch.complex64 else torch.float64
            self._cache[key] = {
                "mask": self._host["mask"].to(device=device, dtype=real),
                "pre": None if self._host["pre"] is None else self._host["pre"].to(device=device, dtype=dtype),
                "power": None if self._host["power"] is None else self._host["power"].to(device=device, dtype=real),
            }
        return self._cache[key]

    @property
    def sensitivities(self) -> torch.Tensor | None:
        """The coil maps ``(C, *spatial)`` or ``(B, C, *spatial)`` (complex128, CPU), or ``None``."""
        pre = self._host["pre"]
        if pre is None or self._host["power"] is None:
            return None
        return pre * _sign_pattern(self.domain_shape) if self._modulated else pre

    def unseen(self) -> torch.Tensor | None:
        """Where every coil map is zero (``(*spatial)`` or ``(B, *spatial)``, CPU): ESPIRiT's maps
        are cropped to zero where the calibration data hold no signal; None without such pixels."""
        power = self._host["power"]
        if power is None or bool((power > 0).all()):
            return None
        return power == 0

    # -- the operator ---------------------------------------------------------------------------
    def _check(self, t: torch.Tensor, shape: tuple[int, ...], name: str) -> torch.Tensor:
        if t.dim() != len(shape) + 1 or tuple(t.shape[1:]) != shape:
            raise InputError(None, f"{name} must be (B, {', '.join(map(str, shape))}), got {tuple(t.shape)}")
        if self.per_item and t.shape[0] != self._host["pre"].shape[0]:
            raise InputError(None, f"{name} has {t.shape[0]} items but the sensitivities are per item "
                                   f"for {self._host['pre'].shape[0]}")
        return t if t.is_complex() else t.to(_COMPLEX[t.dtype])

    @property
    def _dims(self) -> tuple[int, ...]:
        return tuple(range(-self.ndim, 0))

    def _fft(self, x: torch.Tensor) -> torch.Tensor:
        if self._modulated:
            return torch.fft.fftn(x, dim=self._dims, norm="ortho")
        return fftnc(x, self._dims)

    def _ifft(self, k: torch.Tensor) -> torch.Tensor:
        if self._modulated:
            return torch.fft.ifftn(k, dim=self._dims, norm="ortho")
        return ifftnc(k, self._dims)

    def _expand(self, x: torch.Tensor, buffers: dict) -> torch.Tensor:
        """``S x`` (times the pre-modulation): ``(B, *spatial)`` -> ``(B, C, *spatial)``."""
        pre = buffers["pre"]
        x = x.unsqueeze(1)
        return x if pre is None else x * pre

    def _combine(self, images: torch.Tensor, buffers: dict) -> torch.Tensor:
        """``sum_c conj(S_c) x_c``: ``(B, C, *spatial)`` -> ``(B, *spatial)``."""
        pre = buffers["pre"]
        if pre is None:
            return images[:, 0]
        if buffers["power"] is None:  # single coil, sign pattern only
            return images[:, 0] * pre.conj()
        return (images * pre.conj()).sum(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``y = M F S x``: ``(B, *spatial)`` complex image -> ``(B, C, *spatial)`` k-space."""
        x = self._check(x, self.domain_shape, "x")
        buffers = self._buffers(x.dtype, x.device)
        return self._fft(self._expand(x, buffers)) * buffers["mask"]

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``x = sum_c conj(S_c) F^H M y_c``: ``(B, C, *spatial)`` -> ``(B, *spatial)``."""
        y = self._check(y, self.range_shape, "y")
        buffers = self._buffers(y.dtype, y.device)
        return self._combine(self._ifft(y * buffers["mask"]), buffers)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``A^H A x``: ``sum_c |S_c|^2 x`` when fully sampled, else one FFT pair with one mask product."""
        x = self._check(x, self.domain_shape, "x")
        buffers = self._buffers(x.dtype, x.device)
        if self.fully_sampled:
            return x if buffers["power"] is None else x * buffers["power"]
        kspace = self._fft(self._expand(x, buffers))
        kspace = kspace * buffers["mask"].square()  # M^H M (the sign pattern squares to one)
        return self._combine(self._ifft(kspace), buffers)


class CartesianMRI(_CartesianSENSE):
    """2D Cartesian (multi-coil) MRI slice by slice: ``y_c = M F (S_c x)`` for every slice.

    Shapes: ``x`` ``(B, H, W)`` complex image (arbitrary units; real input is promoted) ->
    ``y`` ``(B, C, H, W)`` k-space, ``C = 1`` without sensitivities. DC sits at ``(H // 2, W // 2)``.
    complex64 or complex128, CPU or CUDA (buffers are cast to the input's dtype and device, once).

    Args:
        mask: binary ``(H, W)`` k-space mask, or ``(W,)`` phase-encode lines along ``ky`` (the last
            axis; each sampled line is fully read out along ``H``), broadcast over rows.
        sensitivities: complex coil maps ``(C, H, W)`` shared by all slices, or ``(B, C, H, W)``
            per slice (then ``x`` must have exactly ``B`` slices); ``None`` for a single coil with
            unit sensitivity.
        image_shape: ``(H, W)``; needed only with a 1D mask and no sensitivities.
        device: where the buffers live.
        dtype: complex64 (default) or complex128 (float32/float64 name the same precisions).
    """

    ndim = 2

    def __init__(self, mask: ArrayLike, sensitivities: ArrayLike | None = None, *,
                 image_shape: Sequence[int] | None = None, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.complex64) -> None:
        super().__init__(mask, sensitivities, image_shape, device, dtype)

    def _mask_ndims(self) -> tuple[int, ...]:
        return (1, 2)

    def _mask_help(self) -> str:
        return "(H, W) or (W,) phase-encode lines"


class CartesianMRI3D(_CartesianSENSE):
    """3D Cartesian (multi-coil) MRI of whole volumes: ``y_c = M F_3 (S_c x)``.

    Convention: the volume is ``(D, H, W)``; the readout (frequency-encode) direction is ``D``
    (axis ``-3``, always fully sampled) and the mask selects ``(ky, kz)`` = ``(H, W)``
    phase-encode positions, broadcast along the readout. ``F_3`` is the centred orthonormal 3D DFT.

    Shapes: ``x`` ``(B, D, H, W)`` complex (``B`` volumes, usually 1) -> ``y`` ``(B, C, D, H, W)``.

    Args:
        mask: binary ``(H, W)`` phase-encode mask (e.g. :func:`~medprior.physics.masks.poisson_disc_mask`),
            or a full ``(D, H, W)`` mask.
        sensitivities: complex maps ``(C, D, H, W)``, or ``(B, C, D, H, W)`` per volume; ``None`` for
            one coil.
        image_shape: ``(D, H, W)``; needed when the mask is ``(H, W)`` and no maps are given.
        device: where the buffers live.
        dtype: complex64 (default) or complex128.
    """

    ndim = 3

    def __init__(self, mask: ArrayLike, sensitivities: ArrayLike | None = None, *,
                 image_shape: Sequence[int] | None = None, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.complex64) -> None:
        super().__init__(mask, sensitivities, image_shape, device, dtype)

    def _mask_ndims(self) -> tuple[int, ...]:
        return (2, 3)

    def _mask_help(self) -> str:
        return "(H, W) phase-encode (ky, kz) or (D, H, W)"

