"""Finite differences (exact adjoint, values) and ADMM-TV against independent solvers.

Truths used: the dense matrix of the difference operator (adjoint = transpose), exact 1D TV
denoising (box-constrained dual by L-BFGS-B, polished on its active set and certified by a zero
duality gap), a long Chambolle-Pock run with an independently built dense gradient, and
``torch.linalg.lstsq`` for ``lam = 0``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch

from dense_operator import Dense
from medprior.physics.finite_difference import FiniteDifference
from medprior.physics.operator import LinearOperator, adjoint_mismatch
from medprior.solvers.tv import admm_tv, soft_threshold, tv_objective


class Identity(LinearOperator):
    """``A = I`` on items of ``shape``."""

    def __init__(self, shape: tuple[int, ...], complex: bool = False) -> None:
        self.domain_shape = self.range_shape = tuple(shape)
        self.complex = complex

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y.clone()


# ------------------------------------------------------------------ independent references


def difference_matrix(n: int) -> np.ndarray:
    """Forward differences with a zero last row, ``(n, n)``."""
    d = np.zeros((n, n))
    d[np.arange(n - 1), np.arange(n - 1)] = -1.0
    d[np.arange(n - 1), np.arange(1, n)] = 1.0
    return d


def tv1d_denoise(y: np.ndarray, lam: float) -> tuple[np.ndarray, float]:
    """Exact ``argmin 0.5 ||x - y||^2 + lam sum |x[i+1] - x[i]|`` and its objective.

    The dual ``min_{|p| <= lam} 0.5 ||y - D^T p||^2`` is solved by L-BFGS-B; its active set gives
    the jumps, ``x`` is then exact on each constant segment (segment mean shifted by the boundary
    duals), and the recomputed dual ``p`` certifies optimality: feasible, sign-consistent, and a
    duality gap at rounding level (asserted here).
    """
    y = np.asarray(y, dtype=np.float64)
    n = y.size

    def d_t(p: np.ndarray) -> np.ndarray:
        return np.concatenate([[0.0], p]) - np.concatenate([p, [0.0]])

    def dual(p: np.ndarray) -> tuple[float, np.ndarray]:
        r = y - d_t(p)
        return 0.5 * r @ r, -np.diff(r)

    p = scipy.optimize.minimize(dual, np.zeros(n - 1), jac=True, method="L-BFGS-B", bounds=[(-lam, lam)] * (n - 1),
                                options={"maxiter": 20000, "ftol": 1e-15, "gtol": 1e-12}).x
    jumps = np.flatnonzero(np.abs(p) > lam * (1 - 1e-5))
    boundary = np.zeros(n + 1)  # boundary[i + 1] = p_i, zero at both ends
    boundary[jumps + 1] = lam * np.sign(p[jumps])
    x = np.empty(n)
    for start, stop in zip(np.r_[0, jumps + 1], np.r_[jumps + 1, n], strict=True):
        x[start:stop] = y[start:stop].mean() - (boundary[start] - boundary[stop]) / (stop - start)
    p = np.cumsum(x - y)[:-1]  # from x = y - D^T p
    assert np.all(np.abs(p) <= lam * (1 + 1e-9)), "reference dual infeasible"
    step = np.diff(x)
    moving = np.abs(step) > 1e-9
    assert np.allclose(p[moving], lam * np.sign(step[moving]), atol=1e-9 * lam), "reference KKT sign mismatch"
    primal = 0.5 * np.sum((x - y) ** 2) + lam * np.abs(step).sum()
    gap = primal - (0.5 * y @ y - 0.5 * x @ x)
    assert abs(gap) <= 1e-10 * max(primal, 1.0), f"reference duality gap {gap}"
    return x, primal


def chambolle_pock(a: np.ndarray, d: np.ndarray, y: np.ndarray, lam: float, iterations: int) -> np.ndarray:
    """Long-run primal-dual for ``min 0.5 ||a x - y||^2 + lam ||d x||_1`` (dense, real)."""
    norm = np.linalg.norm(np.vstack([a, d]), 2)
    tau = sigma = 0.99 / norm
    x = np.zeros(a.shape[1])
    bar, q, p = x.copy(), np.zeros(a.shape[0]), np.zeros(d.shape[0])
    for _ in range(iterations):
        q = (q + sigma * (a @ bar - y)) / (1 + sigma)
        p = np.clip(p + sigma * (d @ bar), -lam, lam)
        new = x - tau * (a.T @ q + d.T @ p)
        bar, x = 2 * new - x, new
    return x


def piecewise_signal(n: int, pieces: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    clean = np.repeat(rng.uniform(-1, 1, pieces), -(-n // pieces))[:n]
    return clean, clean + noise * rng.standard_normal(n)


# ------------------------------------------------------------------ finite differences


CASES = [((4, 5), ("z", "y", "x"), (2.5, 1.0, 0.7)), ((4, 5), ("z",), None), ((6,), ("x", "z"), (1.0, 3.0)),
         ((2, 3, 4), ("z", "y", "x"), None), ((1, 3), ("y", "z"), None)]


@pytest.mark.parametrize(("domain", "axes", "weights"), CASES)
def test_finite_difference_adjoint_is_transpose(domain, axes, weights) -> None:
    batch = 3
    op = FiniteDifference(domain, axes, weights)
    size, out = batch * int(np.prod(domain)), batch * int(np.prod(op.range_shape))
    eye_in = torch.eye(size, dtype=torch.float64).reshape(size, batch, *domain)
    eye_out = torch.eye(out, dtype=torch.float64).reshape(out, batch, *op.range_shape)
    forward = torch.stack([op.forward(e).reshape(-1) for e in eye_in], dim=1)  # (out, size)
    adjoint = torch.stack([op.adjoint(e).reshape(-1) for e in eye_out], dim=1)  # (size, out)
    assert torch.equal(adjoint, forward.T)
    assert adjoint_mismatch(op, batch=5) < 1e-12


@pytest.mark.parametrize(("domain", "axes", "weights"), CASES)
def test_finite_difference_adjoint_complex(domain, axes, weights) -> None:
    op = FiniteDifference(domain, axes, weights)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn((7, *domain), dtype=torch.complex128, generator=generator)
    g = torch.randn((7, *op.range_shape), dtype=torch.complex128, generator=generator)
    lhs, rhs = torch.vdot(op.forward(x).reshape(-1), g.reshape(-1)), torch.vdot(x.reshape(-1), op.adjoint(g).reshape(-1))
    assert abs(lhs - rhs) / (torch.linalg.vector_norm(op.forward(x)) * torch.linalg.vector_norm(g)) < 1e-10


def test_finite_difference_values_and_z_is_batch() -> None:
    b, h, w = 4, 3, 5
    z, yy, xx = torch.meshgrid(torch.arange(b), torch.arange(h), torch.arange(w), indexing="ij")
    volume = (2.0 * z + 3.0 * yy + 5.0 * xx).double()
    d = FiniteDifference((h, w), weights=(1.0, 1.0, 0.5))(volume)
    assert d.shape == (b, 3, h, w)
    expected = [(2.0, 0), (3.0, 1), (2.5, 2)]  # (value inside, dim along which the last entry is 0)
    for k, (value, dim) in enumerate(expected):
        component = d[:, k]
        last = component.narrow(dim, component.shape[dim] - 1, 1)
        assert torch.all(last == 0)
        assert torch.all(component.narrow(dim, 0, component.shape[dim] - 1) == value)
    assert torch.count_nonzero(FiniteDifference((h, w))(torch.full((b, h, w), 7.0))) == 0


def test_finite_difference_norm_bound() -> None:
    op = FiniteDifference((6, 7), weights=(2.0, 1.0, 0.5))
    x = torch.randn(5, 6, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for _ in range(200):  # power iteration on D^T D
        x = op.normal(x)
        x = x / torch.linalg.vector_norm(x)
    assert float(torch.linalg.vector_norm(op.normal(x))) <= op.squared_norm_bound


@pytest.mark.parametrize("bad", [{"axes": ("w",)}, {"axes": ("x", "x")}, {"axes": ()}, {"axes": ("y",), "domain": (5,)},
                                 {"weights": (1.0, 0.0, 1.0)}, {"weights": (1.0,)}])
def test_finite_difference_rejects(bad) -> None:
    with pytest.raises(ValueError):
        FiniteDifference(bad.pop("domain", (4, 4)), **bad)


# ------------------------------------------------------------------ ADMM-TV


def test_soft_threshold_real_and_complex() -> None:
    v = torch.tensor([-3.0, -0.5, 0.0, 0.2, 2.0], dtype=torch.float64)
    assert torch.allclose(soft_threshold(v, 1.0), torch.tensor([-2.0, 0.0, 0.0, 0.0, 1.0], dtype=torch.float64))
    c = torch.tensor([3 + 4j, 0.3 - 0.4j, 0j], dtype=torch.complex128)
    assert torch.allclose(soft_threshold(c, 1.0), torch.tensor([2.4 + 3.2j, 0, 0], dtype=torch.complex128))


@pytest.mark.parametrize("layout", ["x", "z"])
def test_tv_denoising_matches_exact_1d(layout: str) -> None:
    """A = I: ADMM reaches the exact 1D TV solution, along x of one item or along z across the batch."""
    lam = 0.5
    _, noisy = piecewise_signal(200, 8, 0.2, seed=3)
    reference, optimum = tv1d_denoise(noisy, lam)
    if layout == "x":
        op, y = Identity((200,)), torch.from_numpy(noisy)[None]
    else:
        op, y = Identity((1, 1)), torch.from_numpy(noisy)[:, None, None]
    x = admm_tv(op, y, lam=lam, rho=10 * lam, iterations=200, cg_iterations=10, axes=(layout,), cg_tolerance=1e-10)
    objective = tv_objective(op, y, x, lam=lam, axes=(layout,))
    assert abs(objective - optimum) <= 1e-7 * optimum
    assert np.abs(x.reshape(-1).numpy() - reference).max() < 1e-5


def test_tv_weights_scale_lambda() -> None:
    """A per-axis weight w on x is the same as lam * w (1D); rho scales as w^-2 to keep the pace."""
    _, noisy = piecewise_signal(120, 5, 0.3, seed=4)
    reference, _ = tv1d_denoise(noisy, 0.3 * 2.5)
    x = admm_tv(Identity((120,)), torch.from_numpy(noisy)[None], lam=0.3, rho=1.2, iterations=300, cg_iterations=10,
                axes=("x",), weights=(2.5,), cg_tolerance=1e-10)
    assert np.abs(x[0].numpy() - reference).max() < 1e-4


def test_z_only_tv_is_columnwise_1d_tv() -> None:
    """z-only TV with A = I splits into independent 1D problems along z, one per in-plane pixel."""
    lam, depth = 0.4, 60
    columns = [piecewise_signal(depth, 4, 0.25, seed=10 + k)[1] for k in range(6)]
    y = torch.from_numpy(np.stack(columns, axis=1).reshape(depth, 2, 3))
    x = admm_tv(Identity((2, 3)), y, lam=lam, rho=2.0, iterations=300, cg_iterations=10, axes=("z",), cg_tolerance=1e-10)
    for k, column in enumerate(columns):
        reference, _ = tv1d_denoise(column, lam)
        assert np.abs(x.reshape(depth, 6)[:, k].numpy() - reference).max() < 1e-4


def test_lam_zero_is_least_squares() -> None:
    generator = torch.Generator().manual_seed(5)
    matrix = torch.randn(30, 12, dtype=torch.float64, generator=generator)
    y = torch.randn(4, 30, dtype=torch.float64, generator=generator)
    x = admm_tv(Dense(matrix), y, lam=0.0, rho=1.0, iterations=30, cg_iterations=12, axes=("z", "x"), cg_tolerance=1e-14)
    expected = torch.linalg.lstsq(matrix, y.T).solution.T
    assert torch.allclose(x, expected, atol=1e-8, rtol=0)


def test_z_only_tv_keeps_in_plane_structure() -> None:
    """A volume constant along z is a minimiser of z-only TV when the data fit it exactly."""
    generator = torch.Generator().manual_seed(6)
    plane = torch.randn(1, 8, 9, dtype=torch.float64, generator=generator)
    truth = plane.expand(5, 8, 9).clone()
    op = Identity((8, 9))
    kept = admm_tv(op, truth, lam=2.0, rho=1.0, iterations=20, cg_iterations=5, axes=("z",), x0=truth)
    assert torch.allclose(kept, truth, atol=1e-12, rtol=0)
    recovered = admm_tv(op, truth, lam=2.0, rho=1.0, iterations=100, cg_iterations=10, axes=("z",))
    assert torch.allclose(recovered, truth, atol=1e-6, rtol=0)
    smoothed = admm_tv(op, truth, lam=2.0, rho=1.0, iterations=100, cg_iterations=10, axes=("z", "y", "x"))
    assert (smoothed - truth).abs().max() > 0.1  # 3D TV does change the in-plane structure


def _dense_problem(dtype: torch.dtype, seed: int) -> tuple[Dense, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    matrix = torch.randn(30, 40, dtype=dtype, generator=generator) / 30 ** 0.5
    truth = torch.randn(6, 40, dtype=dtype, generator=generator).cumsum(0)
    op = Dense(matrix)
    return op, op(truth) + 0.05 * torch.randn(6, 30, dtype=dtype, generator=generator)


def test_objective_decreases_to_the_primal_dual_optimum() -> None:
    """Random dense A, TV along z (across the batch) and x; optimum from Chambolle-Pock on dense matrices."""
    lam, axes = 0.05, ("z", "x")
    op, y = _dense_problem(torch.float64, seed=7)
    values: list[float] = []
    admm_tv(op, y, lam=lam, rho=0.2, iterations=60, cg_iterations=30, axes=axes, cg_tolerance=1e-12,
            callback=lambda k, x: values.append(tv_objective(op, y, x, lam=lam, axes=axes)))
    values = np.asarray(values)
    assert len(values) == 60
    assert np.all(np.diff(values) <= 1e-4 * values[0])  # ADMM is not monotone in general; here nearly so
    assert values[-1] < 0.95 * values[0]
    x = admm_tv(op, y, lam=lam, rho=0.05, iterations=200, cg_iterations=30, axes=axes, cg_tolerance=1e-12)

    b, n = 6, 40
    a = np.kron(np.eye(b), op.matrix.numpy())  # acts on the flattened (B, n) volume
    d = np.vstack([np.kron(difference_matrix(b), np.eye(n)), np.kron(np.eye(b), difference_matrix(n))])
    dense_objective = lambda v: 0.5 * np.sum((a @ v - y.numpy().ravel()) ** 2) + lam * np.abs(d @ v).sum()  # noqa: E731
    assert tv_objective(op, y, x, lam=lam, axes=axes) == pytest.approx(dense_objective(x.numpy().ravel()), rel=1e-12)
    optimum = dense_objective(chambolle_pock(a, d, y.numpy().ravel(), lam, 5000))
    assert tv_objective(op, y, x, lam=lam, axes=axes) == pytest.approx(optimum, rel=1e-6)


def test_complex_tv_is_phase_equivariant() -> None:
    """Complex data: a global phase factors out of the objective, so it factors out of the solution."""
    lam = 0.5
    _, noisy = piecewise_signal(150, 6, 0.2, seed=8)
    reference, _ = tv1d_denoise(noisy, lam)
    phase = np.exp(0.7j)
    y = torch.from_numpy(noisy * phase)[None]
    x = admm_tv(Identity((150,), complex=True), y, lam=lam, rho=2.5, iterations=200, cg_iterations=10, axes=("x",),
                cg_tolerance=1e-10)
    assert x.dtype == torch.complex128
    assert np.abs(x[0].numpy() - reference * phase).max() < 1e-4


def test_complex_dense_objective_decreases_and_lam_zero_is_lstsq() -> None:
    op, y = _dense_problem(torch.complex128, seed=9)
    values: list[float] = []
    admm_tv(op, y, lam=0.05, rho=0.2, iterations=40, cg_iterations=30, axes=("z", "x"),
            callback=lambda k, x: values.append(tv_objective(op, y, x, lam=0.05, axes=("z", "x"))))
    assert np.all(np.diff(values) <= 1e-4 * values[0]) and values[-1] < 0.8 * values[0]
    tall = Dense(op.matrix[:, :20])
    x = admm_tv(tall, y, lam=0.0, rho=0.01, iterations=40, cg_iterations=20, axes=("x",), cg_tolerance=1e-14)
    assert torch.allclose(x, torch.linalg.lstsq(tall.matrix, y.T).solution.T, atol=1e-8, rtol=0)


def test_nonnegative_matches_clipped_1d_solution() -> None:
    """For 1D TV denoising the nonnegative solution is the clipped unconstrained one."""
    lam = 0.3
    clean, noisy = piecewise_signal(160, 8, 0.2, seed=11)
    reference, _ = tv1d_denoise(noisy, lam)
    x = admm_tv(Identity((160,)), torch.from_numpy(noisy)[None], lam=lam, rho=1.5, iterations=400, cg_iterations=10,
                axes=("x",), nonnegative=True, cg_tolerance=1e-10)
    assert float(x.min()) >= 0.0
    assert np.abs(x[0].numpy() - np.clip(reference, 0, None)).max() < 1e-4


def test_float32_and_x0_dtype() -> None:
    _, noisy = piecewise_signal(64, 4, 0.1, seed=12)
    y = torch.from_numpy(noisy).float().reshape(4, 4, 4)
    x = admm_tv(Identity((4, 4)), y, lam=0.1, rho=0.5, iterations=5, cg_iterations=3, x0=y.double())
    assert x.dtype == torch.float32 and x.shape == y.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    op, y = _dense_problem(torch.complex64, seed=13)
    cpu = admm_tv(op, y, lam=0.05, rho=0.2, iterations=10, cg_iterations=5, axes=("z", "x"))
    gpu_op = Dense(op.matrix.cuda())
    gpu = admm_tv(gpu_op, y.cuda(), lam=0.05, rho=0.2, iterations=10, cg_iterations=5, axes=("z", "x"))
    assert gpu.is_cuda and torch.allclose(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("bad", [{"lam": -1.0}, {"rho": 0.0}, {"iterations": -1}, {"cg_iterations": 0}])
def test_admm_rejects_bad_parameters(bad) -> None:
    arguments = {"lam": 0.1, "rho": 1.0, "iterations": 2, "cg_iterations": 2, **bad}
    with pytest.raises(ValueError):
        admm_tv(Identity((3, 3)), torch.zeros(2, 3, 3), **arguments)


def test_nonnegative_rejects_complex() -> None:
    with pytest.raises(ValueError, match="real"):
        admm_tv(Identity((3,), complex=True), torch.zeros(2, 3, dtype=torch.complex64), lam=0.1, rho=1.0,
                axes=("x",), nonnegative=True)
