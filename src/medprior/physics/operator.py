"""The one linear-operator interface every forward model implements and every solver uses.

An operator maps a batch of images ``x`` of shape ``(B, *domain_shape)`` to a batch of
measurements ``y = A x`` of shape ``(B, *range_shape)``; the batch axis ``B`` is the slice axis
of a 3D volume (or 1 for a volume operator). ``adjoint`` is the exact conjugate transpose
``A^H`` (a test proves ``<A x, y> = <x, A^H y>`` to 1e-6 relative in float64), and ``normal`` is
``A^H A``. Tensors may live on CPU or CUDA, in float32/float64 (complex64/complex128 where the
physics is complex); operators keep their own buffers on the device and dtype they are moved to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch


class LinearOperator(ABC):
    """Abstract ``y = A x``, batched over a leading slice axis.

    Subclasses set ``domain_shape``, ``range_shape`` (per-item shapes, batch axis excluded) and
    ``complex`` (whether ``x`` and ``y`` are complex), and implement :meth:`forward` and
    :meth:`adjoint`.
    """

    domain_shape: tuple[int, ...]
    range_shape: tuple[int, ...]
    complex: bool = False

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``A x``: ``(B, *domain_shape)`` -> ``(B, *range_shape)``."""

    @abstractmethod
    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``A^H y``: ``(B, *range_shape)`` -> ``(B, *domain_shape)``, the exact adjoint."""

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``A^H A x`` (subclasses may override with a cheaper exact form)."""
        return self.adjoint(self.forward(x))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)


def inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Real part of ``<a, b> = sum(conj(a) * b)`` over all axes (a 0-d tensor)."""
    return torch.vdot(a.reshape(-1), b.reshape(-1)).real if a.is_complex() else (a * b).sum()


def adjoint_mismatch(operator: LinearOperator, *, batch: int = 2, dtype: torch.dtype = torch.float64,
                     device: str | torch.device = "cpu", seed: int = 0) -> float:
    """Relative mismatch ``|<A x, y> - <x, A^H y>| / (||A x|| ||y||)`` for random ``x``, ``y``.

    ``dtype`` is the real precision; complex operators get complex ``x`` and ``y`` of it, and
    the complex inner product is compared in full (real and imaginary parts).
    """
    generator = torch.Generator(device=device).manual_seed(seed)
    complex_dtype = {torch.float32: torch.complex64, torch.float64: torch.complex128}[dtype]
    sample_dtype = complex_dtype if operator.complex else dtype
    x = torch.randn((batch, *operator.domain_shape), generator=generator, dtype=sample_dtype, device=device)
    y = torch.randn((batch, *operator.range_shape), generator=generator, dtype=sample_dtype, device=device)
    forward, back = operator.forward(x), operator.adjoint(y)
    lhs = torch.vdot(forward.reshape(-1), y.reshape(-1))
    rhs = torch.vdot(x.reshape(-1), back.reshape(-1))
    scale = torch.linalg.vector_norm(forward) * torch.linalg.vector_norm(y)
    return float(abs(lhs - rhs) / scale)
