"""Batched conjugate gradients and CGLS against dense linear algebra (torch.linalg)."""

from __future__ import annotations

import pytest
import torch

from dense_operator import Dense
from medprior.solvers.cg import cgls, conjugate_gradient

DTYPES = [torch.float64, torch.complex128]


def positive_definite(batch: int, n: int, dtype: torch.dtype, seed: int, shift: float = 0.5) -> torch.Tensor:
    """``(batch, n, n)`` Hermitian positive definite matrices ``Q Q^H / n + shift I`` (condition ~ 10-20)."""
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, n, n, dtype=dtype, generator=generator)
    return q @ q.mH / n + shift * torch.eye(n, dtype=dtype)


def batched(matrices: torch.Tensor, calls: list[int] | None = None):
    """``x -> M_b x_b`` for items ``x_b`` of any shape with ``n`` elements."""

    def apply(x: torch.Tensor) -> torch.Tensor:
        if calls is not None:
            calls.append(1)
        flat = x.reshape(x.shape[0], -1, 1)
        return (matrices @ flat).reshape(x.shape)

    return apply


@pytest.mark.parametrize("dtype", DTYPES)
def test_cg_solves_batched_positive_definite_systems(dtype: torch.dtype) -> None:
    m = positive_definite(4, 12, dtype, seed=0)
    b = torch.randn(4, 3, 4, dtype=dtype, generator=torch.Generator().manual_seed(1))  # items of shape (3, 4)
    x = conjugate_gradient(batched(m), b, iterations=100, tolerance=1e-13)
    expected = torch.linalg.solve(m, b.reshape(4, 12)).reshape(4, 3, 4)
    assert x.dtype == dtype and x.shape == b.shape
    assert torch.allclose(x, expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cg_converges_in_n_steps(dtype: torch.dtype) -> None:
    """In exact arithmetic CG solves an n x n system in n steps; in float64 to rounding for mild conditioning."""
    m = positive_definite(3, 8, dtype, seed=2, shift=1.0)
    b = torch.randn(3, 8, dtype=dtype, generator=torch.Generator().manual_seed(3))
    x = conjugate_gradient(batched(m), b, iterations=8, tolerance=0.0)
    assert torch.allclose(x, torch.linalg.solve(m, b), atol=1e-9, rtol=0)


def test_cg_items_are_independent() -> None:
    """A batch gives each item the answer it gets alone (one alpha, beta per item)."""
    m = positive_definite(3, 10, torch.float64, seed=4)
    m[1] *= 100.0  # very different scales across the batch
    b = torch.randn(3, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    together = conjugate_gradient(batched(m), b, iterations=5, tolerance=0.0)
    for k in range(3):
        alone = conjugate_gradient(batched(m[k:k + 1]), b[k:k + 1], iterations=5, tolerance=0.0)
        assert torch.allclose(together[k:k + 1], alone, atol=1e-12, rtol=1e-12)


def test_cg_stops_early_at_tolerance() -> None:
    m = positive_definite(2, 40, torch.float64, seed=6, shift=2.0)  # well conditioned: fast convergence
    b = torch.randn(2, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    loose, tight = [], []
    x_loose = conjugate_gradient(batched(m, loose), b, iterations=200, tolerance=1e-3)
    conjugate_gradient(batched(m, tight), b, iterations=200, tolerance=1e-12)
    assert len(loose) < len(tight) < 40
    residual = torch.linalg.vector_norm(batched(m)(x_loose) - b, dim=1)
    assert torch.all(residual <= 1e-3 * torch.linalg.vector_norm(b, dim=1))


def test_cg_warm_start_and_zero_rhs() -> None:
    m = positive_definite(2, 6, torch.float64, seed=8)
    b = torch.randn(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    solution = torch.linalg.solve(m, b)
    calls: list[int] = []
    x = conjugate_gradient(batched(m, calls), b, solution, iterations=10, tolerance=1e-8)
    assert len(calls) == 1 and torch.equal(x, solution)  # only the initial residual
    start = solution + 0.1
    assert torch.allclose(conjugate_gradient(batched(m), b, start, iterations=30, tolerance=1e-13), solution, atol=1e-10)
    zero = conjugate_gradient(batched(m), torch.zeros_like(b), iterations=5)
    assert torch.count_nonzero(zero) == 0 and not torch.isnan(zero).any()


def test_cg_float32() -> None:
    m = positive_definite(2, 10, torch.float32, seed=10)
    b = torch.randn(2, 10, generator=torch.Generator().manual_seed(11))
    x = conjugate_gradient(batched(m), b, iterations=50, tolerance=1e-6)
    assert x.dtype == torch.float32
    assert torch.allclose(x, torch.linalg.solve(m, b), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cgls_is_least_squares(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(12)
    matrix = torch.randn(30, 10, dtype=dtype, generator=generator)
    y = torch.randn(5, 30, dtype=dtype, generator=generator)
    x = cgls(Dense(matrix), y, iterations=60, tolerance=1e-14)
    assert torch.allclose(x, torch.linalg.lstsq(matrix, y.T).solution.T, atol=1e-10, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cgls_damping_is_tikhonov(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(13)
    matrix = torch.randn(20, 15, dtype=dtype, generator=generator)
    y = torch.randn(3, 20, dtype=dtype, generator=generator)
    damping = 2.5
    x = cgls(Dense(matrix), y, iterations=60, damping=damping, tolerance=1e-14)
    normal = matrix.mH @ matrix + damping * torch.eye(15, dtype=dtype)
    assert torch.allclose(x, torch.linalg.solve(normal, matrix.mH @ y.T).T, atol=1e-10, rtol=0)


def test_cgls_underdetermined_gives_minimum_norm() -> None:
    """From zero, CG on the normal equations stays in range(A^H): the minimum-norm solution."""
    generator = torch.Generator().manual_seed(14)
    matrix = torch.randn(8, 20, dtype=torch.float64, generator=generator)
    y = torch.randn(2, 8, dtype=torch.float64, generator=generator)
    x = cgls(Dense(matrix), y, iterations=40, tolerance=1e-14)
    assert torch.allclose(x, (torch.linalg.pinv(matrix) @ y.T).T, atol=1e-9, rtol=0)


def test_converged_items_stop_moving_on_a_nearly_singular_system():
    # item 0: rank-1 M with b in its range converges in one step; item 1 needs more. Without freezing,
    # item 0's rounding-level rr / p^T M p ratio becomes a huge step.
    import torch
    from medprior.solvers.cg import conjugate_gradient
    u = torch.tensor([1.0, 2.0, 0.5]) / 2.29128784747792
    rank_one = torch.outer(u, u) * 1e-3
    full = torch.diag(torch.tensor([1.0, 10.0, 100.0]))
    matrices = torch.stack([rank_one, full])
    b = torch.stack([rank_one @ torch.tensor([3.0, -1.0, 2.0]), torch.tensor([1.0, 1.0, 1.0])])

    def apply(x):
        return torch.einsum("bij,bj->bi", matrices, x)

    x = conjugate_gradient(apply, b, iterations=50, tolerance=1e-7)
    assert torch.isfinite(x).all()
    torch.testing.assert_close(apply(x), b, rtol=1e-4, atol=1e-7)
