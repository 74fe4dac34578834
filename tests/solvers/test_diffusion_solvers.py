"""Diffusion inverse solvers (DDS, DiffusionMBIR, DPS, RED-diff) on a Gaussian prior, without training.

Problem. Every slice of a ``(K, 3, 3)`` stack is ``x0 ~ N(mu, Sigma)`` over ``d = 9`` pixels
(seeded SPD ``Sigma``, eigenvalues 0.05..1) with the exact Tweedie denoiser, measured by a
``(4, 9)`` matrix ``M`` per slice (underdetermined, noiseless). All slices share one ``y``, so the
K outputs of one run are K independent draws. The posterior is Gaussian, mean
``mu + Sigma M^T (M Sigma M^T)^{-1} (y - M mu)`` and covariance
``Sigma - Sigma M^T (M Sigma M^T)^{-1} M Sigma`` (rank ``d - m = 5``).

Statistics. With K draws a sample mean has standard error ``std / sqrt(K)`` per entry and a
whitened sample covariance at most ``sqrt(2 / K)``; a check passes within 5 standard errors plus a
stated allowance (in posterior standard deviations).

References. With ``lam = 0`` and ``cg_iterations = m`` the CG data step is the exact Euclidean
projection onto ``{M u = y}`` (``M^T M`` has m nonzero eigenvalues), so DDS and DiffusionMBIR are
affine maps of Gaussian noise and their outputs have an exact Gaussian law, :func:`chain_law`,
written here from the papers' recursions with dense matrices. Neither is an exact posterior
sampler: DDS's law converges to the posterior as the steps grow (bias 0.12 posterior std at 100
steps, 0.018 at 1000), DiffusionMBIR's does not (0.91 std at 100 steps, 0.88 at 1000: it projects
the *noisy* iterate onto the clean data, which the Tweedie step then reads as signal). So the
samples are held tightly to :func:`chain_law` (no allowance) and loosely, with the measured bias as
allowance, to the posterior; negative controls (no data step, a shifted prior mean) fail the loose
check by a wide margin.
"""

from __future__ import annotations

import math

import pytest
import torch

from medprior.diffusion import GaussianDenoiser, VPSchedule
from medprior.physics import MU_WATER_PER_MM
from medprior.physics.finite_difference import FiniteDifference
from medprior.physics.operator import LinearOperator, adjoint_mismatch
from medprior.solvers.diffusion import DataConsistency, dds, dps, mbir, reddiff
from medprior.solvers.problem import HounsfieldMap, IntensityMap, InverseProblem, PriorUnits, normal_norm
from medprior.solvers.tv import admm_tv, tv_objective

f64 = torch.float64
H = W = 3
D = H * W
M_ROWS = 4
SAMPLES = 2000  # slices = independent draws of the statistical tests
STEPS = 100

_g = torch.Generator().manual_seed(7)
_Q = torch.linalg.qr(torch.randn(D, D, generator=_g, dtype=f64)).Q
SIGMA = _Q @ torch.diag(torch.linspace(0.05, 1.0, D, dtype=f64)) @ _Q.T
MU = 0.5 * torch.randn(D, generator=_g, dtype=f64)
MATRIX = torch.randn(M_ROWS, D, generator=_g, dtype=f64) / 3
Y1 = MATRIX @ (MU + torch.linalg.cholesky(SIGMA) @ torch.randn(D, generator=_g, dtype=f64))
TALL = torch.randn(12, D, generator=_g, dtype=f64) / 3  # overdetermined, for least squares

_GAIN = SIGMA @ MATRIX.T @ torch.linalg.inv(MATRIX @ SIGMA @ MATRIX.T)
POSTERIOR_MEAN = MU + _GAIN @ (Y1 - MATRIX @ MU)
POSTERIOR_COVARIANCE = SIGMA - _GAIN @ MATRIX @ SIGMA
POSTERIOR_STD = POSTERIOR_COVARIANCE.diagonal().sqrt()
NULL = torch.linalg.svd(MATRIX).Vh[M_ROWS:].T  # (D, D - m): orthonormal basis of the null space of M

SCHEDULE = VPSchedule()
PRIOR = GaussianDenoiser(MU, SIGMA, SCHEDULE)


class MatrixOperator(LinearOperator):
    """``A u = M vec(u)`` for every slice ``u`` of shape ``(H, W)``; ``M`` (m, H W)."""

    def __init__(self, matrix: torch.Tensor) -> None:
        self.matrix = matrix
        self.domain_shape, self.range_shape = (H, W), (matrix.shape[0],)
        self.complex = matrix.is_complex()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1).to(self.matrix.dtype) @ self.matrix.T

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return (y @ self.matrix.conj()).reshape(y.shape[0], H, W)


OPERATOR = MatrixOperator(MATRIX)


def stack(k: int) -> torch.Tensor:
    """The measurements of ``k`` slices, all ``Y1``."""
    return Y1.expand(k, -1).clone()


def problem(k: int) -> InverseProblem:
    """``M u = Y1`` for ``k`` slices (plain units: the solvers return ``u``)."""
    return InverseProblem(OPERATOR, stack(k))


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def relative_residual(u: torch.Tensor, y: torch.Tensor, matrix: torch.Tensor = MATRIX) -> float:
    return float(torch.linalg.vector_norm(u.reshape(len(u), -1) @ matrix.T - y) / torch.linalg.vector_norm(y))


def chain_law(method: str, steps: int, eta: float, mean: torch.Tensor = MU) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact (mean, covariance) of one slice of ``dds`` / ``mbir`` (lam = 0, exact projection).

    ``x_T ~ N(0, I)``; at grid time t, ``x0_hat = T x + (I - a_t T) mean`` with
    ``T = a_t Sigma (a_t^2 Sigma + s_t^2 I)^{-1}``, the projection is ``P x + q`` with
    ``P = I - M^+ M``, ``q = M^+ y``, ``eps = (x - a_t x0_hat) / s_t`` and DDIM (Song et al. eq. 12)
    ``x_s = a_s x0' + k eps + c z`` with ``c^2 = eta^2 s_s^2 / s_t^2 (1 - a_t^2 / a_s^2)``,
    ``k = sqrt(s_s^2 - c^2)``. DDS takes ``x0' = P x0_hat + q``; DiffusionMBIR takes ``x0' = x0_hat``
    and projects the VE iterate, ``x_s <- a_s (P x_s / a_s + q)``. The last step returns the
    projected ``x0_hat`` (both). ``mean`` is the prior mean the denoiser assumes.
    """
    identity = torch.eye(D, dtype=f64)
    pinv = torch.linalg.pinv(MATRIX)
    project, offset = identity - pinv @ MATRIX, pinv @ Y1
    grid = SCHEDULE.timesteps(steps).tolist()
    m, c = torch.zeros(D, dtype=f64), identity.clone()
    for i, t in enumerate(grid):
        abar_t = float(SCHEDULE.alphas_cumprod[t])
        a_t, s_t = math.sqrt(abar_t), math.sqrt(1 - abar_t)
        tweedie = a_t * SIGMA @ torch.linalg.inv(abar_t * SIGMA + s_t**2 * identity)
        b0 = mean - a_t * tweedie @ mean
        if i == len(grid) - 1:
            gain = project @ tweedie
            return gain @ m + project @ b0 + offset, gain @ c @ gain.T
        abar_s = float(SCHEDULE.alphas_cumprod[grid[i + 1]])
        a_s = math.sqrt(abar_s)
        c2 = eta**2 * (1 - abar_s) / (1 - abar_t) * (1 - abar_t / abar_s)
        k = math.sqrt(max(1 - abar_s - c2, 0.0))
        eps_gain, eps_offset = (identity - a_t * tweedie) / s_t, -a_t * b0 / s_t
        if method == "dds":
            gain = a_s * project @ tweedie + k * eps_gain
            shift = a_s * (project @ b0 + offset) + k * eps_offset
            noise = c2 * identity
        else:
            gain = project @ (a_s * tweedie + k * eps_gain)
            shift = project @ (a_s * b0 + k * eps_offset) + a_s * offset
            noise = c2 * project @ project.T
        m, c = gain @ m + shift, gain @ c @ gain.T + noise
    raise AssertionError("unreachable")


def posterior_bias(samples: torch.Tensor) -> float:
    """Largest |sample mean - posterior mean| in posterior standard deviations, per pixel."""
    return float(((samples.reshape(len(samples), -1).mean(0) - POSTERIOR_MEAN) / POSTERIOR_STD).abs().max())


def assert_chain_law(samples: torch.Tensor, mean: torch.Tensor, covariance: torch.Tensor) -> None:
    """Samples' null-space part matches N(mean, covariance) there, 5 standard errors, no allowance."""
    n, x = len(samples), samples.reshape(len(samples), -1) @ NULL
    whiten = torch.linalg.inv(torch.linalg.cholesky(NULL.T @ covariance @ NULL))
    mean_error = float((whiten @ (x.mean(0) - NULL.T @ mean)).abs().max())
    covariance_error = float((whiten @ torch.cov(x.T) @ whiten.T - torch.eye(D - M_ROWS, dtype=f64)).abs().max())
    assert mean_error <= 5 / math.sqrt(n), f"whitened mean error {mean_error:.4f}"
    assert covariance_error <= 5 * math.sqrt(2 / n), f"whitened covariance error {covariance_error:.4f}"


@pytest.fixture(scope="module")
def dds_samples() -> torch.Tensor:
    return dds(problem(SAMPLES), PRIOR, steps=STEPS, eta=0.85, cg_iterations=M_ROWS, generator=seeded(1))


@pytest.fixture(scope="module")
def mbir_samples() -> torch.Tensor:
    return mbir(problem(SAMPLES), PRIOR, steps=STEPS, eta=1.0, cg_iterations=M_ROWS, generator=seeded(2))


# --- the references ---------------------------------------------------------------------------


def test_matrix_operator_is_exact_and_problem_is_underdetermined():
    assert adjoint_mismatch(OPERATOR, dtype=f64) < 1e-12
    assert adjoint_mismatch(MatrixOperator(TALL), dtype=f64) < 1e-12
    assert torch.linalg.matrix_rank(MATRIX) == M_ROWS < D
    torch.testing.assert_close(MATRIX @ POSTERIOR_MEAN, Y1, rtol=0, atol=1e-12)


def test_dds_chain_law_converges_to_the_posterior():
    """The reference law of DDS, at 1000 steps, is the posterior (so the reference is the right recursion)."""
    mean, covariance = chain_law("dds", 1000, 0.85)
    assert float(((mean - POSTERIOR_MEAN) / POSTERIOR_STD).abs().max()) < 0.03  # measured 0.018
    whiten = torch.linalg.inv(torch.linalg.cholesky(NULL.T @ POSTERIOR_COVARIANCE @ NULL))
    error = whiten @ NULL.T @ covariance @ NULL @ whiten.T - torch.eye(D - M_ROWS, dtype=f64)
    assert float(error.abs().max()) < 0.03  # measured 0.011
    torch.testing.assert_close(MATRIX @ mean, Y1, rtol=0, atol=1e-10)


# --- DDS and DiffusionMBIR sample (approximately) the posterior --------------------------------


def test_dds_is_data_consistent_and_samples_its_exact_law(dds_samples):
    assert relative_residual(dds_samples, stack(SAMPLES)) < 1e-10  # measured 2e-16
    assert_chain_law(dds_samples, *chain_law("dds", STEPS, 0.85))


def test_dds_mean_is_the_posterior_mean_and_wrong_solvers_are_not(dds_samples):
    """Within 5 standard errors plus 0.2 posterior std (the 100-step discretisation bias is 0.12)."""
    tolerance = 5 / math.sqrt(SAMPLES) + 0.2
    assert posterior_bias(dds_samples) <= tolerance  # measured 0.14
    no_data = dds(problem(200), PRIOR, steps=STEPS, cg_iterations=0, generator=seeded(3))
    assert relative_residual(no_data, stack(200)) > 0.3  # measured 0.82
    assert posterior_bias(no_data) > 3 * tolerance  # measured 3.9
    shifted = GaussianDenoiser(MU + 1.0, SIGMA, SCHEDULE)
    wrong_prior = dds(problem(200), shifted, steps=STEPS, cg_iterations=M_ROWS, generator=seeded(3))
    assert relative_residual(wrong_prior, stack(200)) < 1e-10
    assert posterior_bias(wrong_prior) > 3 * tolerance  # measured 3.3


def test_dds_sample_average_has_the_chain_mean_and_a_quarter_of_its_covariance():
    """Four averaged runs: the same mean, covariance / 4 (independent draws), still data-consistent."""
    averaged = dds(problem(SAMPLES), PRIOR, steps=STEPS, eta=0.85, cg_iterations=M_ROWS, samples=4,
                   generator=seeded(4))
    assert relative_residual(averaged, stack(SAMPLES)) < 1e-10
    mean, covariance = chain_law("dds", STEPS, 0.85)
    assert_chain_law(averaged, mean, covariance / 4)
    with pytest.raises(AssertionError):  # the check can fail: one run's spread is twice as wide
        assert_chain_law(averaged, mean, covariance)
    with pytest.raises(ValueError, match="samples"):
        dds(problem(2), PRIOR, steps=5, samples=0)


def test_mbir_is_data_consistent_and_samples_its_exact_law(mbir_samples):
    assert relative_residual(mbir_samples, stack(SAMPLES)) < 1e-10  # measured 2e-16
    assert_chain_law(mbir_samples, *chain_law("mbir", STEPS, 1.0))


def test_mbir_mean_is_near_the_posterior_mean(mbir_samples):
    """Loose: DiffusionMBIR's mean sits 0.91 posterior std off (0.88 at 1000 steps, a property of the
    method, see the module docstring), so the allowance is 1.2 std. A prior mean shifted by 1 (2.4
    std off) or no data step (3.9) still fail; a shift by 0.25 would not be detected."""
    tolerance = 5 / math.sqrt(SAMPLES) + 1.2
    assert posterior_bias(mbir_samples) <= tolerance
    no_data = mbir(problem(200), PRIOR, steps=STEPS, cg_iterations=0, generator=seeded(4))
    assert relative_residual(no_data, stack(200)) > 0.3
    assert posterior_bias(no_data) > tolerance + 1.0
    shifted = GaussianDenoiser(MU + 1.0, SIGMA, SCHEDULE)
    wrong_prior = mbir(problem(SAMPLES), shifted, steps=STEPS, cg_iterations=M_ROWS, generator=seeded(4))
    assert posterior_bias(wrong_prior) > tolerance + 0.5


# --- z-TV data consistency ----------------------------------------------------------------------


def noisy_identity_stack(k: int = 6) -> tuple[MatrixOperator, torch.Tensor]:
    """``A = I`` and a stack of ``k`` copies of one image plus independent noise (0.3)."""
    base = torch.randn(D, generator=seeded(5), dtype=f64)
    y = base + 0.3 * torch.randn(k, D, generator=seeded(6), dtype=f64)
    return MatrixOperator(torch.eye(D, dtype=f64)), y


def z_variation(u: torch.Tensor) -> float:
    return float((u[1:] - u[:-1]).abs().sum())


def test_z_tv_smooths_along_z_and_carries_its_admm_state():
    """From ``u = y`` (A = I), ADMM starts with ``v = D_z y``, ``w = 0``, so its first iteration
    returns ``y`` and only the carried ``(v, w)`` move the second; a fresh state would stay at ``y``."""
    operator, y = noisy_identity_stack()
    start = y.reshape(-1, H, W).clone()
    plain = DataConsistency(operator, y, cg_iterations=10)(start)
    torch.testing.assert_close(plain, start, rtol=0, atol=1e-12)  # lam = 0, A = I: u = y
    tv = DataConsistency(operator, y, cg_iterations=10, lam=0.3, rho=1.0)
    first = tv(start)
    torch.testing.assert_close(first, start, rtol=0, atol=1e-12)
    assert tv.v is not None and tv.w is not None and float(tv.w.abs().max()) > 0.1
    second = tv(first)
    assert z_variation(second) < 0.9 * z_variation(plain)  # measured 0.37
    in_one_call = DataConsistency(operator, y, cg_iterations=10, lam=0.3, rho=1.0)(start, iterations=2)
    torch.testing.assert_close(second, in_one_call, rtol=0, atol=1e-12)
    restarted = DataConsistency(operator, y, cg_iterations=10, lam=0.3, rho=1.0)(first)  # fresh (v, w)
    torch.testing.assert_close(restarted, start, rtol=0, atol=1e-12)
    assert float((second - start).abs().max()) > 0.05


@pytest.mark.parametrize("matrix", ["identity", "tall"])
def test_z_tv_data_consistency_reaches_the_admm_tv_minimiser(matrix):
    """Many iterations minimise ``0.5 ||A u - y||^2 + lam ||D_z u||_1``: same objective as
    :func:`admm_tv`, and the ADMM dual ``p = rho w`` certifies optimality (``A^T (A u - y) + D_z^T p = 0``,
    ``|p| <= lam``, ``p = lam sign(D_z u)`` where ``D_z u != 0``)."""
    lam, rho, k = 0.3, 2.0, 6
    operator, y = noisy_identity_stack(k)
    if matrix == "tall":
        operator = MatrixOperator(TALL)
        y = y @ TALL.T
    start = operator.adjoint(y)
    consistency = DataConsistency(operator, y, cg_iterations=10, lam=lam, rho=rho)
    u = consistency(start, iterations=200)
    reference = admm_tv(operator, y, lam=lam, rho=rho, iterations=300, cg_iterations=20, axes=("z",), x0=start,
                        cg_tolerance=1e-14)
    ours, theirs = (tv_objective(operator, y, x, lam=lam, axes=("z",)) for x in (u, reference))
    assert abs(ours - theirs) <= 1e-8 * abs(theirs)  # measured 1e-14
    dual = rho * consistency.w
    difference = FiniteDifference((H, W), axes=("z",))
    stationarity = operator.normal(u) - operator.adjoint(y) + difference.adjoint(dual)
    assert float(stationarity.abs().max()) < 1e-8  # measured 2e-15
    assert float(dual.abs().max()) <= lam * (1 + 1e-12)
    du = difference.forward(u)
    jumps = du.abs() > 1e-6
    assert jumps.any() and (~jumps).any()  # the minimiser is neither y nor constant along z
    torch.testing.assert_close(dual[jumps], lam * du[jumps].sign(), rtol=0, atol=1e-10)


def test_dds_and_mbir_with_z_tv_reduce_z_variation():
    operator, y = noisy_identity_stack()
    denoiser = GaussianDenoiser(torch.zeros(D, dtype=f64), torch.eye(D, dtype=f64), SCHEDULE)
    for method in (dds, mbir):
        plain = method(InverseProblem(operator, y), denoiser, steps=20, cg_iterations=10, generator=seeded(7))
        tv = method(InverseProblem(operator, y), denoiser, steps=20, cg_iterations=10, lam=0.3, generator=seeded(7))
        assert z_variation(tv) < 0.9 * z_variation(plain), method.__name__  # measured 0.19 (DDS), 0.35 (MBIR)


# --- DPS and RED-diff ---------------------------------------------------------------------------


def test_dps_and_reddiff_fit_the_data():
    """Mean per-slice residual below half the prior mean's; DPS without guidance does not get there."""
    k = 32
    prior_residual = float(torch.linalg.vector_norm(MATRIX @ MU - Y1))

    def mean_residual(u):
        return float(torch.linalg.vector_norm(u.reshape(k, -1) @ MATRIX.T - stack(k), dim=1).mean()) / prior_residual

    assert mean_residual(dps(problem(k), PRIOR, steps=STEPS, generator=seeded(8))) < 0.5  # measured 0.15
    assert mean_residual(dps(problem(k), PRIOR, steps=STEPS, step_size=0.0, generator=seeded(8))) > 0.8
    assert mean_residual(reddiff(problem(k), PRIOR, steps=STEPS, generator=seeded(8))) < 0.3  # measured 0.07


def test_reddiff_without_prior_is_least_squares():
    operator, k = MatrixOperator(TALL), 3
    x = MU + 0.5 * torch.randn(k, D, generator=seeded(9), dtype=f64)
    y = x @ TALL.T + 0.1 * torch.randn(k, TALL.shape[0], generator=seeded(10), dtype=f64)
    least_squares = torch.linalg.lstsq(TALL, y.T).solution.T.reshape(k, H, W)
    u = reddiff(InverseProblem(operator, y), PRIOR, steps=1000, lr=0.1, lam=0.0, generator=seeded(11))
    torch.testing.assert_close(u, least_squares, rtol=0, atol=1e-8)  # measured 4e-15
    short = reddiff(InverseProblem(operator, y), PRIOR, steps=10, lr=0.1, lam=0.0, generator=seeded(11))
    assert float((short - least_squares).abs().max()) > 1e-3  # the check can fail


# --- slice batching -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", [dds, mbir])
def test_slice_batch_does_not_change_dds_or_mbir(method):
    k = 4
    outputs = [method(problem(k), PRIOR, steps=20, cg_iterations=M_ROWS, slice_batch=b, generator=seeded(12))
               for b in (1, 3, k)]
    for other in outputs[1:]:
        torch.testing.assert_close(other, outputs[0], rtol=0, atol=1e-12)


def test_dps_slice_batch_same_result_and_reported_cost():
    k, steps = 4, 20
    results, costs = [], []
    for batch in (k, 3, 1):
        calls = []
        results.append(dps(problem(k), PRIOR, steps=steps, slice_batch=batch, generator=seeded(13),
                           evaluations=calls.append))
        costs.append(calls)
    assert costs[0] == [1] * steps and costs[1] == costs[2] == [2] * steps
    for other in results[1:]:
        torch.testing.assert_close(other, results[0], rtol=0, atol=1e-10)


# --- normal_norm and bad input --------------------------------------------------------------------


def test_normal_norm_is_the_largest_eigenvalue():
    like = torch.zeros(3, H, W, dtype=f64)
    largest = float(torch.linalg.eigvalsh(MATRIX.T @ MATRIX)[-1])
    assert abs(normal_norm(OPERATOR, like) - largest) <= 1e-6 * largest  # measured 1e-9
    # TALL^T TALL has eigenvalue ratio 0.95 at the top: 20 iterations are 1.2% low, 400 converge
    tall = torch.linalg.eigvalsh(TALL.T @ TALL)[-1]
    assert abs(normal_norm(MatrixOperator(TALL), like, iterations=400) - float(tall)) <= 1e-6 * float(tall)


@pytest.mark.parametrize("method", [dds, mbir, dps, reddiff])
def test_zero_steps_are_rejected(method):
    with pytest.raises(ValueError, match="steps"):
        method(problem(2), PRIOR, steps=0)


def test_complex_domain_and_bad_parameters_are_rejected():
    complex_operator = MatrixOperator(MATRIX.to(torch.complex128))
    y = stack(2).to(torch.complex128)
    with pytest.raises(ValueError, match="real domain"):
        DataConsistency(complex_operator, y, cg_iterations=3)
    with pytest.raises(ValueError, match="real domain"):
        dds(InverseProblem(complex_operator, y), PRIOR, steps=5)
    for bad in ({"cg_iterations": -1}, {"cg_iterations": 3, "lam": -0.1}, {"cg_iterations": 3, "rho": 0.0}):
        with pytest.raises(ValueError):
            DataConsistency(OPERATOR, stack(2), **bad)


def test_intensity_maps_invert_to_image():
    """``from_image`` is ``to_image``'s inverse: the fill value of unseen pixels is the unknown of a zero image."""
    values = torch.tensor([-1000.0, 0.0, 250.0])
    for units in (IntensityMap(2.0, -3.0), PriorUnits(2 / 500, -300 / 500, low=-100.0, high=400.0),
                  HounsfieldMap(MU_WATER_PER_MM / 1000, MU_WATER_PER_MM)):
        for value in values.tolist():
            image = float(units.to_image(torch.tensor(units.from_image(value), dtype=torch.float64)))
            assert math.isclose(image, value, rel_tol=1e-9, abs_tol=1e-9)
