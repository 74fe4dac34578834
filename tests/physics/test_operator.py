"""The generic operator interface: separate domain and range dtypes, the exact adjoint of every
operator (the physics, the known phase, scaled and composed ones), and the cached spectral norm."""

from __future__ import annotations

import math

import pytest
import torch
from dense_operator import Dense

from medprior.physics import (CartesianMRI, ComposedOperator, FiniteDifference, LinearOperator, ParallelBeamCT,
                              ScaledOperator, birdcage_sensitivities, sparse_view_angles, uniform_mask_1d)
from medprior.physics.operator import adjoint_mismatch
from medprior.physics.wrappers import KnownPhase

f64, c128 = torch.float64, torch.complex128


class Weight(LinearOperator):
    """Real elementwise weights ``x -> w x`` on (16, 16) images: a real-to-real operator to compose with."""

    def __init__(self) -> None:
        self.domain_shape = self.range_shape = (16, 16)
        self.weights = torch.linspace(0.5, 2.0, 256, dtype=f64).reshape(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weights * x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.weights * y


def matrix(rows: int, cols: int, dtype: torch.dtype = f64, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, cols, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def mri() -> CartesianMRI:
    return CartesianMRI(uniform_mask_1d(16, 4, 0.25), birdcage_sensitivities((16, 16), 4), image_shape=(16, 16),
                        dtype=c128)


def ct() -> ParallelBeamCT:
    return ParallelBeamCT((16, 16), sparse_view_angles(6), dtype=f64)


def known_phase() -> KnownPhase:
    i, j = torch.meshgrid(torch.linspace(-1, 1, 16, dtype=f64), torch.linspace(-1, 1, 16, dtype=f64), indexing="ij")
    return KnownPhase(mri(), torch.stack([0.8 * i - 0.5 * j ** 2 + k for k in range(2)]))


OPERATORS = {
    "dense real": lambda: Dense(matrix(7, 5)),
    "dense complex": lambda: Dense(matrix(5, 7, c128)),
    "ct": ct,
    "mri": mri,
    "known phase (real -> complex)": known_phase,
    "finite difference": lambda: FiniteDifference((16, 16), axes=("y", "x")),
    "0.3 ct": lambda: 0.3 * ct(),
    "dense * -2": lambda: Dense(matrix(7, 5)) * -2,
    "mri * complex": lambda: mri() * (0.5 - 1.5j),
    "complex * known phase": lambda: (1 + 2j) * known_phase(),
    "dense @ dense": lambda: Dense(matrix(4, 6, seed=1)) @ Dense(matrix(6, 5, seed=2)),
    "known phase @ weight": lambda: known_phase() @ Weight(),
    "finite difference @ scaled weight": lambda: FiniteDifference((16, 16), axes=("x",)) @ (Weight() * 0.5),
    "complex dense @ 2 dense @ dense": lambda: Dense(matrix(3, 256, c128)) @ ComposedOperator(ScaledOperator(Dense(
        matrix(256, 4, c128, seed=3)), 2.0), Dense(matrix(4, 6, c128, seed=4))),
}


@pytest.mark.parametrize("name", OPERATORS)
def test_every_operator_has_an_exact_adjoint_for_its_declared_dtypes(name):
    operator = OPERATORS[name]()
    assert adjoint_mismatch(operator, dtype=f64) < 1e-12
    x_dtype = c128 if operator.domain_complex else f64
    x = torch.randn((2, *operator.domain_shape), dtype=x_dtype, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(operator.normal(x), operator.adjoint(operator.forward(x)), rtol=1e-10, atol=1e-10)


def test_domain_and_range_dtypes_are_separate_and_complex_means_both():
    phase, physics = known_phase(), mri()
    assert (phase.domain_complex, phase.range_complex, phase.complex) == (False, True, False)
    assert (physics.domain_complex, physics.range_complex, physics.complex) == (True, True, True)
    assert (ct().domain_complex, ct().range_complex) == (False, False)
    composed = phase @ Weight()
    assert (composed.domain_shape, composed.range_shape) == ((16, 16), (4, 16, 16))
    assert (composed.domain_complex, composed.range_complex) == (False, True)


def test_adjoint_mismatch_rejects_an_operator_returning_the_wrong_dtype():
    class Liar(Dense):
        def forward(self, x):
            return super().forward(x).to(c128)

    with pytest.raises(ValueError, match="declares torch.float64 -> torch.float64"):
        adjoint_mismatch(Liar(matrix(3, 3)))


def test_scaling_and_composition_check_their_operands():
    with pytest.raises(ValueError, match="needs a complex range"):
        ct() * 1j
    with pytest.raises(ValueError, match="must be finite"):
        ScaledOperator(ct(), math.inf)
    with pytest.raises(TypeError):
        ct() * torch.tensor(2.0)
    with pytest.raises(TypeError):
        ct() * True
    with pytest.raises(ValueError, match=r"takes items of shape \(16, 16\), the inner one returns \(6, 26\)"):
        ct() @ ct()
    with pytest.raises(ValueError, match="takes complex items, the inner one returns real ones"):
        mri() @ Weight()
    with pytest.raises(ValueError, match="needs an operator on complex images"):
        KnownPhase(ct(), torch.zeros(1, 16, 16))


def test_scaled_forward_adjoint_and_normal_are_the_scaled_ones():
    base, c = mri(), 0.5 - 1.5j
    scaled = base * c
    x = torch.randn(2, 16, 16, dtype=c128, generator=torch.Generator().manual_seed(1))
    y = base.forward(x)
    torch.testing.assert_close(scaled.forward(x), c * y)
    torch.testing.assert_close(scaled.adjoint(y), c.conjugate() * base.adjoint(y))
    torch.testing.assert_close(scaled.normal(x), abs(c) ** 2 * base.normal(x))
    real = base * 0.25  # a real factor multiplies after the operator, as a Python float
    assert isinstance(real.factor, float)
    assert torch.equal(real.adjoint(y), 0.25 * base.adjoint(y))


@pytest.mark.parametrize("dtype", [f64, c128])
def test_norm_is_the_largest_singular_value(dtype):
    m = matrix(9, 6, dtype)
    exact = float(torch.linalg.matrix_norm(m, ord=2))
    assert math.isclose(Dense(m).norm(), exact, rel_tol=1e-4)
    assert math.isclose((Dense(m) * -3).norm(), 3 * exact, rel_tol=1e-4)
    outer = matrix(4, 9, dtype, seed=7)
    composed = Dense(outer) @ Dense(m)
    assert math.isclose(composed.norm(), float(torch.linalg.matrix_norm(outer @ m, ord=2)), rel_tol=1e-4)


def test_norm_of_a_real_to_complex_operator_approaches_its_dense_matrix_from_below():
    phase = known_phase()
    single = KnownPhase(phase.operator, torch.angle(phase.rotation[:1]))
    # the real-linear map m -> A (m exp(i phi)) as a real matrix: [Re, Im] of the images of the unit vectors
    columns = single.forward(torch.eye(256, dtype=f64).reshape(256, 16, 16)).reshape(256, -1)
    exact = float(torch.linalg.matrix_norm(torch.cat([columns.real, columns.imag], dim=1), ord=2))
    # undersampled MRI has clustered top singular values: power iteration creeps up (0.99937 of
    # 0.99983 after 200 products), from below, as a Rayleigh quotient does
    assert exact * (1 - 1e-3) < single.norm() <= exact * (1 + 1e-12)


def test_norm_is_cached_per_argument_set():
    calls = []

    class Counted(Dense):
        def normal(self, x):
            calls.append(1)
            return super().normal(x)

    operator = Counted(matrix(9, 6))
    first = operator.norm()
    assert 0 < len(calls) <= 200
    count = len(calls)
    assert operator.norm() == first and len(calls) == count  # cached: no work
    operator.norm(iterations=3)  # another argument set is computed, and stops at its iteration count
    assert len(calls) == count + 3
    scaled = operator * 2.0
    assert scaled.norm() == 2.0 * first and len(calls) == count + 3  # from the wrapped operator's cache
    with pytest.raises(ValueError, match="iterations >= 1"):
        operator.norm(iterations=0)


def test_norm_is_deterministic_and_zero_for_the_zero_operator():
    m = matrix(9, 6)
    assert Dense(m).norm(tol=0.0, iterations=50) == Dense(m).norm(tol=0.0, iterations=50)
    assert Dense(torch.zeros(3, 4, dtype=f64)).norm() == 0.0
