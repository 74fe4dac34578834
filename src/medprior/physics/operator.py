"""The one linear-operator interface every forward model implements and every solver uses.

An operator maps a batch of images ``x`` of shape ``(B, *domain_shape)`` to a batch of
measurements ``y = A x`` of shape ``(B, *range_shape)``; the batch axis ``B`` is the slice axis
of a 3D volume (or 1 for a volume operator). ``adjoint`` is the exact conjugate transpose
``A^H`` (a test proves ``<A x, y> = <x, A^H y>`` to 1e-6 relative in float64), and ``normal`` is
``A^H A``. Tensors may live on CPU or CUDA, in float32/float64 (complex64/complex128 where the
physics is complex); operators keep their own buffers on the device and dtype they are moved to.

The domain and the range are real or complex separately (:attr:`LinearOperator.domain_complex`,
:attr:`LinearOperator.range_complex`): a real image with a known phase maps to complex k-space
(:class:`medprior.physics.wrappers.KnownPhase`). Where either side is real the operator is only
real-linear and its adjoint is taken for the real inner product ``Re <., .>`` (:func:`inner`).

Operators combine without wrappers: ``c * A`` and ``A * c`` (:class:`ScaledOperator`, ``c`` a
Python scalar), ``A @ B`` (:class:`ComposedOperator`, ``x -> A (B x)``); :meth:`LinearOperator.norm`
is the spectral norm ``||A||`` by power iteration, cached on the operator.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod

import torch

_COMPLEX_OF = {torch.float32: torch.complex64, torch.float64: torch.complex128}


class LinearOperator(ABC):
    """Abstract ``y = A x``, batched over a leading slice axis.

    Subclasses set ``domain_shape``, ``range_shape`` (per-item shapes, batch axis excluded) and
    whether ``x`` and ``y`` are complex, and implement :meth:`forward` and :meth:`adjoint`. The
    dtypes are declared either by ``complex`` (the shorthand for "``x`` and ``y`` both complex",
    False by default) or, where they differ, by ``domain_complex`` and ``range_complex``; the
    latter two default to ``complex`` and are what generic code reads.
    """

    domain_shape: tuple[int, ...]
    range_shape: tuple[int, ...]
    complex: bool = False

    @property
    def domain_complex(self) -> bool:
        """Whether ``x`` is complex (default: :attr:`complex`)."""
        return self.__dict__.get("_domain_complex", self.complex)

    @domain_complex.setter
    def domain_complex(self, value: bool) -> None:
        self.__dict__["_domain_complex"] = bool(value)

    @property
    def range_complex(self) -> bool:
        """Whether ``y = A x`` is complex (default: :attr:`complex`)."""
        return self.__dict__.get("_range_complex", self.complex)

    @range_complex.setter
    def range_complex(self, value: bool) -> None:
        self.__dict__["_range_complex"] = bool(value)

    def unseen(self) -> torch.Tensor | None:
        """Pixels the operator does not see (``A x = 0`` for every ``x`` supported there): a bool
        tensor broadcastable to ``(B, *domain_shape)``, or None where it sees every pixel (or cannot
        tell). The data say nothing about those pixels; the default is None."""
        return None

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

    def norm(self, *, batch: int = 1, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu",
             iterations: int = 200, tol: float = 1e-10, seed: int = 0) -> float:
        """Spectral norm ``||A|| = sqrt(lambda_max(A^H A))`` (largest singular value), cached.

        Power iteration on :meth:`normal` from a seeded standard-normal start ``(batch,
        *domain_shape)`` on ``device``, of ``dtype`` (its complex counterpart for a complex domain); the
        eigenvalue estimate is the Rayleigh quotient ``<v, A^H A v>`` of the unit iterate, and the
        iteration stops once it changes by less than ``tol`` relative, or after ``iterations``
        products. Batched operators are block diagonal over ``B``: the value is the largest norm
        over the ``batch`` items (``batch`` must fit operators with per-item buffers).

        The estimate approaches ``||A||`` from below, at the linear rate ``(sigma_2 / sigma_1)^2``
        per product: to 1e-12 in a few dozen products for a well separated top singular value, but
        only to about 5e-4 in 200 for undersampled MRI, whose top singular values cluster near 1.

        The result is cached on the operator per argument set: a second call with the same
        arguments returns it without touching :meth:`normal`. An operator whose buffers change in
        place must drop ``_norm_cache`` itself. ``||A^H A|| = norm() ** 2``.
        """
        if iterations < 1 or not tol >= 0:
            raise ValueError(f"need iterations >= 1 and tol >= 0, got {iterations} and {tol}")
        key = (int(batch), dtype, str(torch.device(device)), int(iterations), float(tol), int(seed))
        cache = self.__dict__.setdefault("_norm_cache", {})
        if key not in cache:
            cache[key] = self._power_iteration(batch, dtype, torch.device(device), iterations, tol, seed)
        return cache[key]

    def _power_iteration(self, batch: int, dtype: torch.dtype, device: torch.device, iterations: int, tol: float,
                         seed: int) -> float:
        generator = torch.Generator(device="cpu").manual_seed(seed)
        sample_dtype = _COMPLEX_OF[dtype] if self.domain_complex else dtype
        v = torch.randn((batch, *self.domain_shape), generator=generator, dtype=sample_dtype).to(device)
        value = 0.0
        for _ in range(iterations):
            v = v / torch.linalg.vector_norm(v)
            w = self.normal(v)
            if not self.domain_complex and w.is_complex():
                w = w.real
            previous, value = value, float(inner(v, w))
            if value <= 0.0:  # A v = 0: v is in the null space (A = 0, or an unlucky start)
                return 0.0
            if abs(value - previous) <= tol * value:
                break
            v = w
        return math.sqrt(value)

    def __mul__(self, factor: numbers.Number) -> LinearOperator:
        if not isinstance(factor, numbers.Number) or isinstance(factor, bool):
            return NotImplemented
        return ScaledOperator(self, factor)

    __rmul__ = __mul__

    def __matmul__(self, other: LinearOperator) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return ComposedOperator(self, other)


class ScaledOperator(LinearOperator):
    """``c A`` for a scalar ``c`` (``c * A`` or ``A * c``): same shapes and dtypes as ``A``.

    Forward ``c A x``, adjoint ``conj(c) A^H y`` (for complex ``c``, ``A^H (conj(c) y)``: exact
    also where ``A`` is only real-linear), normal ``|c|^2 A^H A x``, ``norm() = |c| A.norm()``.
    A real ``c`` is applied as a Python float, after ``A``. A complex ``c`` needs a complex range.
    """

    def __init__(self, operator: LinearOperator, factor: numbers.Number) -> None:
        if isinstance(factor, bool) or not isinstance(factor, numbers.Number):
            raise TypeError(f"scale factor must be a Python scalar, got {type(factor).__name__}")
        if not math.isfinite(abs(factor)):
            raise ValueError(f"scale factor must be finite, got {factor}")
        is_complex = isinstance(factor, numbers.Complex) and not isinstance(factor, numbers.Real)
        if is_complex and not operator.range_complex:
            raise ValueError(f"a complex factor {factor} needs a complex range; this operator's is real")
        self.operator = operator
        self.factor = complex(factor) if is_complex else float(factor)
        self.domain_shape, self.range_shape = operator.domain_shape, operator.range_shape
        self.domain_complex, self.range_complex = operator.domain_complex, operator.range_complex
        self.complex = operator.domain_complex and operator.range_complex

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.factor * self.operator.forward(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if isinstance(self.factor, complex):
            return self.operator.adjoint(self.factor.conjugate() * y)
        return self.factor * self.operator.adjoint(y)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        squared = abs(self.factor) ** 2 if isinstance(self.factor, complex) else self.factor ** 2
        return squared * self.operator.normal(x)

    def unseen(self) -> torch.Tensor | None:
        return self.operator.unseen()

    def norm(self, **kwargs) -> float:
        """``|c| ||A||``, from (and caching in) the wrapped operator's :meth:`LinearOperator.norm`."""
        return abs(self.factor) * self.operator.norm(**kwargs)


class ComposedOperator(LinearOperator):
    """``A B``, i.e. ``x -> A (B x)`` (``A @ B``): domain of ``B``, range of ``A``.

    ``A.domain_shape`` must equal ``B.range_shape`` and ``A.domain_complex`` ``B.range_complex``.
    Adjoint ``B^H A^H y``, normal ``B^H (A^H A) B x`` (using ``A``'s own normal).
    """

    def __init__(self, outer: LinearOperator, inner: LinearOperator) -> None:
        if tuple(outer.domain_shape) != tuple(inner.range_shape):
            raise ValueError(f"cannot compose: the outer operator takes items of shape {tuple(outer.domain_shape)}, "
                             f"the inner one returns {tuple(inner.range_shape)}")
        if outer.domain_complex != inner.range_complex:
            kinds = {True: "complex", False: "real"}
            raise ValueError(f"cannot compose: the outer operator takes {kinds[outer.domain_complex]} items, "
                             f"the inner one returns {kinds[inner.range_complex]} ones")
        self.outer, self.inner = outer, inner
        self.domain_shape, self.range_shape = inner.domain_shape, outer.range_shape
        self.domain_complex, self.range_complex = inner.domain_complex, outer.range_complex
        self.complex = inner.domain_complex and outer.range_complex

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outer.forward(self.inner.forward(x))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.inner.adjoint(self.outer.adjoint(y))

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.adjoint(self.outer.normal(self.inner.forward(x)))


def inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Real part of ``<a, b> = sum(conj(a) * b)`` over all axes (a 0-d tensor)."""
    return torch.vdot(a.reshape(-1), b.reshape(-1)).real if a.is_complex() else (a * b).sum()


def adjoint_mismatch(operator: LinearOperator, *, batch: int = 2, dtype: torch.dtype = torch.float64,
                     device: str | torch.device = "cpu", seed: int = 0) -> float:
    """Relative mismatch ``|<A x, y> - <x, A^H y>| / (||A x|| ||y||)`` for random ``x``, ``y``.

    ``dtype`` is the real precision; ``x`` ``(batch, *domain_shape)`` is drawn complex of it where
    the domain is complex, ``y`` ``(batch, *range_shape)`` where the range is. With both complex
    the complex inner product is compared in full (real and imaginary parts); with either real the
    operator is only real-linear and its real parts ``Re <., .>`` are compared.

    Raises:
        ValueError: ``A x`` or ``A^H y`` does not have the dtype the operator declares.
    """
    generator = torch.Generator(device=device).manual_seed(seed)
    x_dtype = _COMPLEX_OF[dtype] if operator.domain_complex else dtype
    y_dtype = _COMPLEX_OF[dtype] if operator.range_complex else dtype
    x = torch.randn((batch, *operator.domain_shape), generator=generator, dtype=x_dtype, device=device)
    y = torch.randn((batch, *operator.range_shape), generator=generator, dtype=y_dtype, device=device)
    forward, back = operator.forward(x), operator.adjoint(y)
    if forward.dtype != y_dtype or back.dtype != x_dtype:
        raise ValueError(f"{type(operator).__name__} declares {x_dtype} -> {y_dtype} but maps "
                         f"{x_dtype} -> {forward.dtype} and back {y_dtype} -> {back.dtype}")
    lhs = torch.vdot(forward.reshape(-1), y.reshape(-1))
    rhs = torch.vdot(x.reshape(-1), back.reshape(-1))
    if not (operator.domain_complex and operator.range_complex):
        lhs, rhs = lhs.real, rhs.real
    scale = torch.linalg.vector_norm(forward) * torch.linalg.vector_norm(y)
    return float(abs(lhs - rhs) / scale)
