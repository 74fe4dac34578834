"""Diffusion inverse solvers on slice stacks: DDS, DiffusionMBIR, DPS and RED-diff.

Written here because no maintained library has them for 3D volumes with a 2D prior: the papers'
code (DiffusionMBIR, DDS) is research code tied to score_sde checkpoints, runs one configuration
per script and loads weights with ``strict=False``; deepinv's DPS is 2D and needs torchvision.

Every solver takes an :class:`~medprior.solvers.problem.InverseProblem` (``y = A x``, batch axis =
slices) and the Tweedie estimate of a 2D prior (:class:`~medprior.diffusion.denoiser.Denoiser` on
``(b, 1, H, W)``), applied to ``slice_batch`` slices at a time under ``torch.no_grad`` (only DPS
differentiates it), and returns the image ``(K, H, W)`` in the problem's units (HU, magnitude).
Inside, it solves for ``u`` in the prior's normalised space with ``||A^T A|| = 1``
(:meth:`~medprior.solvers.problem.InverseProblem.for_denoiser`: the prior's intensity
normalisation, an affine map, and for MRI the image phase folded into ``A`` and ``y``; slices
flipped into the prior's training orientation). Time grid, ``abar``, ``alpha``, ``sigma`` and the DDIM
step are those of :mod:`medprior.diffusion.samplers`; ``steps`` is the number of network
evaluations per slice (NFE; DPS costs two when the stack needs more than one slice batch).

- :func:`dds` (Chung, Lee, Ye, "Decomposed Diffusion Sampler", ICLR 2024): at every step, data
  consistency on the Tweedie estimate ``x0_hat`` by a few CG iterations started at ``x0_hat``
  (the Krylov subspace keeps the update on the data manifold's tangent; no backpropagation
  through the network), then DDIM re-noising with ``eta`` and the network's ``eps_hat``. With
  ``lam > 0`` the data step is ``admm_iterations`` ADMM iterations on ``0.5 ||A u - y||^2 +
  lam ||D_z u||_1`` (z-direction TV, the 3D coupling), warm-started at ``x0_hat``.
- :func:`mbir` (Chung et al., "Solving 3D inverse problems using pre-trained 2D diffusion
  models", CVPR 2023): a prior step (DDIM with ``eta``, 1 = ancestral) on all slices, then one
  ADMM iteration of the same z-TV problem on the new iterate, with the ADMM state ``(z, w)``
  carried across steps. The paper's VE iterate ``x`` is our VP ``x / alpha``, so the ADMM step
  acts on ``x_s / alpha_s`` and the result is scaled back. Projecting the still-noisy iterate onto
  the data biases it: with an exact Gaussian prior its mean stays about 0.9 posterior standard
  deviations from the posterior mean at 100 and at 1000 steps, where DDS's comes within 0.12 and
  0.02 (tests/solvers/test_diffusion_solvers.py).
- :func:`dps` (Chung et al., "Diffusion posterior sampling", ICLR 2023): the DDIM step minus
  ``step_size * grad_x ||A x0_hat(x) - y||``, the residual norm differentiated through the
  network (the paper's step ``zeta' / ||y - A x0_hat||`` on the squared norm's gradient).
- :func:`reddiff` (Mardani et al., "A variational perspective on solving inverse problems with
  diffusion models", ICLR 2024): Adam on the image ``u``; at each grid time ``t`` (descending),
  ``x_t = alpha u + sigma eps`` and the loss gradient is ``A^T (A u - y) / L + lam (u - x0_hat(x_t))``,
  ``L = ||A^T A||``: the paper's SNR-inverse weight ``lam sigma / alpha`` times
  ``eps_hat - eps = alpha / sigma (u - x0_hat)``.

DDS, DiffusionMBIR and RED-diff can adapt the prior to the measurement while sampling
(``adapt="d3ip"`` or ``"ddip"``, :class:`Adapt`): their Tweedie estimates then come from low-rank
adapters on the network that learn the estimate's data misfit (:mod:`medprior.diffusion.adaptation`, DDIP / D3IP).

The z-direction differences are non-periodic (:class:`~medprior.physics.finite_difference.FiniteDifference`
with ``axes=("z",)``, zero past the last slice).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from medprior.checks import require_int, require_schema
from medprior.diffusion.adaptation import TweedieAdaptation
from medprior.diffusion.denoiser import Denoiser
from medprior.diffusion.samplers import ddim_step, grid, noise_like
from medprior.physics.finite_difference import FiniteDifference
from medprior.physics.operator import LinearOperator
from medprior.solvers.cg import conjugate_gradient
from medprior.solvers.problem import InverseProblem, normal_norm
from medprior.solvers.tv import soft_threshold


def denoise_slices(denoiser: Denoiser, x: Tensor, t: int, slice_batch: int) -> Tensor:
    """x0_hat of every slice of ``x`` (K, H, W) at grid time ``t``, ``slice_batch`` slices at a time."""
    out = torch.empty_like(x)
    with torch.no_grad():
        for start in range(0, x.shape[0], slice_batch):
            chunk = x[start:start + slice_batch, None]
            timesteps = torch.full((chunk.shape[0],), t, dtype=torch.long, device=x.device)
            out[start:start + slice_batch] = denoiser(chunk, timesteps)[:, 0]
    return out


def _check(method: str, slice_batch: int, **parameters: float | str) -> None:
    """Refuse parameters outside the ranges of the schema's ``recon.diffusion.<method>`` before any
    work (:class:`~medprior.errors.ParameterError`, a ValueError, naming the parameter)."""
    for name, value in parameters.items():
        require_schema(name, value, f"recon.diffusion.{method}.{name}")
    require_int("slice_batch", slice_batch, minimum=1)


def _grid(denoiser: Denoiser, steps: int, progress: bool, name: str) -> Iterator[tuple[tuple[int, float], ...]]:
    """The samplers' respaced grid with a progress bar named ``name`` that stays (one per volume)."""
    if steps < 1:
        raise ValueError(f"{name}: steps must be >= 1, got {steps}")
    return grid(denoiser.schedule, steps, progress, desc=name, leave=True)


class DataConsistency:
    """Approximate ``argmin_u 0.5 ||A u - y||^2 + lam ||D_z u||_1`` from a start, with ADMM state kept.

    ``lam = 0``: ``cg_iterations`` CG iterations on ``A^T A u = A^T y`` from the start, one system
    per slice. ``lam > 0``: scaled ADMM with ``v = D_z u`` (penalty ``rho``): per iteration,
    CG (``cg_iterations``, warm start) on ``(A^T A + rho D_z^T D_z) u = A^T y + rho D_z^T (v - w)``
    over the whole stack (D_z couples slices), ``v = soft(D_z u + w, lam / rho)``, ``w += D_z u - v``.
    ``v`` and ``w`` persist between calls (DiffusionMBIR carries them across sampling steps).
    """

    def __init__(self, operator: LinearOperator, y: Tensor, *, cg_iterations: int, lam: float = 0.0,
                 rho: float = 1.0) -> None:
        if cg_iterations < 0 or lam < 0 or not rho > 0:
            raise ValueError(f"need cg_iterations >= 0, lam >= 0, rho > 0; got {cg_iterations}, {lam}, {rho}")
        self.operator, self.y, self.cg_iterations, self.lam, self.rho = operator, y, cg_iterations, lam, rho
        self.aty = operator.adjoint(y)
        # CG stops at rounding level: iterating past it on a nearly singular A^T A (2-view CT) only adds noise
        self.tolerance = 10 * torch.finfo(self.aty.dtype).eps
        if self.aty.is_complex():
            raise ValueError("the diffusion solvers need an operator with a real domain (see the module docstring)")
        self.difference = FiniteDifference(operator.domain_shape, axes=("z",))
        self.v: Tensor | None = None
        self.w: Tensor | None = None

    def __call__(self, start: Tensor, iterations: int = 1) -> Tensor:
        """``iterations`` ADMM iterations (lam > 0) or one CG run (lam = 0) from ``start`` (K, H, W)."""
        if self.cg_iterations == 0:
            return start
        if self.lam == 0:
            return conjugate_gradient(self.operator.normal, self.aty, start, iterations=self.cg_iterations,
                                      tolerance=self.tolerance)
        d = self.difference
        if self.v is None:
            self.v, self.w = d.forward(start), torch.zeros_like(d.forward(start))

        def apply_m(flat: Tensor) -> Tensor:  # (1, K, H, W): one system for the whole stack
            return (self.operator.normal(flat[0]) + self.rho * d.adjoint(d.forward(flat[0])))[None]

        u = start
        for _ in range(iterations):
            rhs = self.aty + self.rho * d.adjoint(self.v - self.w)
            u = conjugate_gradient(apply_m, rhs[None], u[None], iterations=self.cg_iterations, tolerance=self.tolerance)[0]
            du = d.forward(u)
            self.v = soft_threshold(du + self.w, self.lam / self.rho)
            self.w = self.w + du - self.v
        return u


@dataclass(frozen=True)
class Adapt:
    """How a solver adapts the prior while sampling (:mod:`medprior.diffusion.adaptation`).

    ``mode``: ``"none"``, ``"d3ip"`` (one adapter set shared by the slices) or ``"ddip"`` (one per
    slice); ``rank``: adapter rank; ``lr``: Adam step size; ``iterations``: Adam steps at each
    adapted step; ``every``: adapt at every ``every``-th sampling step after the first, and at the
    last (whose estimate is the result); ``layers``: ``"all"`` or ``"decoder"`` (where the adapters go).

    The first step is not adapted: its input is pure noise, so its Tweedie estimate is the prior's
    mean image whatever the data, and fitting that estimate to the data teaches the adapters the
    measurement itself (noise and aliasing included) rather than how the prior should read a sample
    of it. On MRI x8 (2026-12-01, one volume each, DDS 4 x 25) adapting there cost 0.26 dB on a T2w
    phantom with ``priors/brain_slices`` and 1.2 dB on the MNI152 T1 template with
    ``priors/brain_slices_mixed``; without it, +0.04 and -0.2 dB.
    """

    mode: str
    rank: int
    lr: float
    iterations: int
    every: int
    layers: str = "all"

    def start(self, denoiser: Denoiser, operator: LinearOperator, y: Tensor, slice_batch: int) -> TweedieAdaptation | None:
        """Fresh adapters for one sampling run on ``y = A x`` (None without adaptation)."""
        if self.mode == "none":
            return None
        return TweedieAdaptation(denoiser, operator, y, mode=self.mode, rank=self.rank,
                                 lr=self.lr, iterations=self.iterations, layers=self.layers,
                                 slice_batch=slice_batch)

    def now(self, index: int, steps: int) -> bool:
        return index > 0 and (index % self.every == 0 or index == steps - 1)

    def label(self, name: str) -> str:
        return name if self.mode == "none" else f"{name} + {self.mode.upper()}"


def _estimate(denoiser: Denoiser, adaptation: TweedieAdaptation | None, x: Tensor, t: int, slice_batch: int,
              adapt_now: bool) -> Tensor:
    """The Tweedie estimate of every slice: the prior's, or the adapted one (adapting first if ``adapt_now``)."""
    if adaptation is None:
        return denoise_slices(denoiser, x, t, slice_batch)
    return adaptation.estimate(x, t, adapt=adapt_now)


def dds(problem: InverseProblem, denoiser: Denoiser, *, steps: int = 50, eta: float = 0.85,
        cg_iterations: int = 5, lam: float = 0.0, rho: float = 1.0, admm_iterations: int = 1, samples: int = 1,
        adapt: str = "none", adapt_rank: int = 4, adapt_lr: float = 3e-4, adapt_iterations: int = 4,
        adapt_every: int = 10, adapt_layers: str = "all", slice_batch: int = 16, generator: torch.Generator | None = None,
        progress: bool = False, adapted: Callable[[TweedieAdaptation], None] | None = None) -> Tensor:
    """Decomposed Diffusion Sampler; returns the image (K, H, W) in the problem's units.

    Args:
        problem: ``y = A x`` with images ``(H, W)``, batch = slices.
        denoiser: the prior's x0_hat on ``(b, 1, H, W)``.
        steps: grid times = network evaluations per slice of one sample.
        eta: DDIM stochasticity of the re-noising (DDS uses 0.85).
        cg_iterations: CG iterations of each data step (DDS: 5; more fits noise).
        lam, rho, admm_iterations: z-TV weight (0 = none), ADMM penalty, ADMM iterations per step.
        samples: independent DDS runs averaged (a Monte Carlo posterior mean; each run draws its
            own noise from ``generator``); costs ``samples * steps`` network evaluations per slice.
        adapt, adapt_rank, adapt_lr, adapt_iterations, adapt_every, adapt_layers: adaptation of the prior to the
            measurement while sampling (:class:`Adapt`). One adapter set serves the volume (D3IP): it
            is learnt during the first run and kept, without further steps, by the others, so that
            adaptation costs about one run's extra time whatever ``samples``.
        slice_batch: slices per network call (bounds the peak memory).
        generator: seeds the start and the re-noising.
        progress: tqdm bar over the steps (one per sample).
        adapted: called with the :class:`~medprior.diffusion.adaptation.TweedieAdaptation` at the
            end of the first run (to keep the adapter weights).
    """
    _check("dds", slice_batch, steps=steps, eta=eta, cg_iterations=cg_iterations, lam=lam, rho=rho,
           admm_iterations=admm_iterations, samples=samples, adapt=adapt, adapt_rank=adapt_rank, adapt_lr=adapt_lr,
           adapt_iterations=adapt_iterations, adapt_every=adapt_every, adapt_layers=adapt_layers)
    settings = Adapt(adapt, adapt_rank, adapt_lr, adapt_iterations, adapt_every, adapt_layers)
    problem, denoiser, _ = problem.for_denoiser(denoiser)
    adaptation = settings.start(denoiser, problem.operator, problem.data, slice_batch)
    total = None
    for sample in range(samples):
        name = settings.label("DDS" if samples == 1 else f"DDS {sample + 1}/{samples}")
        consistency = DataConsistency(problem.operator, problem.data, cg_iterations=cg_iterations, lam=lam, rho=rho)
        x = noise_like(consistency.aty, generator)
        for index, ((t, abar_t), (s, abar_s)) in enumerate(_grid(denoiser, steps, progress, name)):
            x0 = _estimate(denoiser, adaptation, x, t, slice_batch, sample == 0 and settings.now(index, steps))
            x0_consistent = problem.fill_unseen(consistency(x0, admm_iterations))
            if s is None:
                break
            eps = (x - math.sqrt(abar_t) * x0) / math.sqrt(1 - abar_t)
            x = ddim_step(x, x0_consistent, eps, abar_t, abar_s, eta, generator)
        if sample == 0 and adaptation is not None and adapted is not None:
            adapted(adaptation)
        total = x0_consistent if total is None else total + x0_consistent
    return problem.image(total / samples)


def mbir(problem: InverseProblem, denoiser: Denoiser, *, steps: int = 100, eta: float = 1.0,
         cg_iterations: int = 5, lam: float = 0.0, rho: float = 1.0, adapt: str = "none", adapt_rank: int = 4,
         adapt_lr: float = 3e-4, adapt_iterations: int = 4, adapt_every: int = 10, adapt_layers: str = "all",
         slice_batch: int = 16,
         generator: torch.Generator | None = None, progress: bool = False,
         adapted: Callable[[TweedieAdaptation], None] | None = None) -> Tensor:
    """DiffusionMBIR: prior step on all slices, then one z-TV ADMM iteration (state carried); the image
    (K, H, W) in the problem's units.

    Arguments as :func:`dds`; ``eta = 1`` makes the prior step ancestral (the paper's predictor).
    """
    _check("mbir", slice_batch, steps=steps, eta=eta, cg_iterations=cg_iterations, lam=lam, rho=rho, adapt=adapt,
           adapt_rank=adapt_rank, adapt_lr=adapt_lr, adapt_iterations=adapt_iterations, adapt_every=adapt_every,
           adapt_layers=adapt_layers)
    settings = Adapt(adapt, adapt_rank, adapt_lr, adapt_iterations, adapt_every, adapt_layers)
    problem, denoiser, _ = problem.for_denoiser(denoiser)
    consistency = DataConsistency(problem.operator, problem.data, cg_iterations=cg_iterations, lam=lam, rho=rho)
    adaptation = settings.start(denoiser, problem.operator, problem.data, slice_batch)
    x = noise_like(consistency.aty, generator)
    for index, ((t, abar_t), (s, abar_s)) in enumerate(_grid(denoiser, steps, progress, settings.label("DiffusionMBIR"))):
        x0 = _estimate(denoiser, adaptation, x, t, slice_batch, settings.now(index, steps))
        if s is None:
            if adaptation is not None and adapted is not None:
                adapted(adaptation)
            return problem.image(problem.fill_unseen(consistency(x0)))
        eps = (x - math.sqrt(abar_t) * x0) / math.sqrt(1 - abar_t)
        x_s = ddim_step(x, x0, eps, abar_t, abar_s, eta, generator)
        x = math.sqrt(abar_s) * consistency(x_s / math.sqrt(abar_s))
    raise AssertionError("unreachable: the grid ends at t = 0")


def _residual_gradient(operator: LinearOperator, y: Tensor, denoiser: Denoiser, x: Tensor, t: int,
                       slice_batch: int) -> tuple[Tensor, Tensor, int]:
    """x0_hat(x), grad_x ||A x0_hat(x) - y|| and the network evaluations per slice it took (1 or 2)."""
    timesteps = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
    if slice_batch >= x.shape[0]:  # one graph for the whole stack
        leaf = x.detach().requires_grad_()
        with torch.enable_grad():
            x0 = denoiser(leaf[:, None], timesteps)[:, 0]
            torch.linalg.vector_norm(operator.forward(x0) - y).backward()
        return x0.detach(), leaf.grad, 1
    x0 = denoise_slices(denoiser, x, t, slice_batch)
    residual = operator.forward(x0) - y
    cotangent = operator.adjoint(residual) / torch.linalg.vector_norm(residual).clamp_min(1e-12)
    gradient = torch.empty_like(x)
    for start in range(0, x.shape[0], slice_batch):
        leaf = x[start:start + slice_batch].detach().requires_grad_()
        with torch.enable_grad():
            out = denoiser(leaf[:, None], timesteps[start:start + slice_batch])[:, 0]
            out.backward(cotangent[start:start + slice_batch].real)
        gradient[start:start + slice_batch] = leaf.grad
    return x0, gradient, 2


def dps(problem: InverseProblem, denoiser: Denoiser, *, steps: int = 100, eta: float = 1.0,
        step_size: float = 1.0, slice_batch: int = 16, generator: torch.Generator | None = None,
        progress: bool = False, evaluations: Callable[[int], None] | None = None) -> Tensor:
    """Diffusion posterior sampling; the image (K, H, W) in the problem's units.

    ``step_size`` is the paper's ``zeta'`` (the step along the residual norm's gradient, in units
    of the residual). ``evaluations`` (optional) is called with the network evaluations per slice
    of each step. Other arguments as :func:`dds`.
    """
    _check("dps", slice_batch, steps=steps, eta=eta, step_size=step_size)
    problem, denoiser, _ = problem.for_denoiser(denoiser)
    operator, y = problem.operator, problem.data
    x = noise_like(operator.adjoint(y).real, generator)
    for (t, abar_t), (s, abar_s) in _grid(denoiser, steps, progress, "DPS"):
        x0, gradient, cost = _residual_gradient(operator, y, denoiser, x, t, slice_batch)
        if evaluations is not None:
            evaluations(cost)
        if s is None:
            return problem.image(problem.fill_unseen(x0))
        eps = (x - math.sqrt(abar_t) * x0) / math.sqrt(1 - abar_t)
        x = ddim_step(x, x0, eps, abar_t, abar_s, eta, generator) - step_size * gradient
    raise AssertionError("unreachable: the grid ends at t = 0")


def reddiff(problem: InverseProblem, denoiser: Denoiser, *, steps: int = 100, lr: float = 0.1,
            lam: float = 0.25, adapt: str = "none", adapt_rank: int = 4, adapt_lr: float = 3e-4,
            adapt_iterations: int = 4, adapt_every: int = 10, adapt_layers: str = "all", slice_batch: int = 16,
            generator: torch.Generator | None = None, progress: bool = False,
            adapted: Callable[[TweedieAdaptation], None] | None = None) -> Tensor:
    """RED-diff: Adam on ``u`` (K, H, W) with the SNR-weighted denoiser regulariser; returns the image
    (K, H, W) in the problem's units.

    Starts from the problem's start image (the normalised FBP / CG-SENSE image), zeros without one.
    With adaptation the regulariser's Tweedie estimates ``x0_hat(x_t)`` come from the adapted
    network, trained on their own data misfit as in :func:`dds`.

    Args:
        lr: Adam step size (in the prior's units, images span [-1, 1]).
        lam: regulariser weight relative to the data term normalised by ``||A^T A||``.
        Others as :func:`dds`.
    """
    _check("reddiff", slice_batch, steps=steps, lr=lr, lam=lam, adapt=adapt, adapt_rank=adapt_rank,
           adapt_lr=adapt_lr, adapt_iterations=adapt_iterations, adapt_every=adapt_every, adapt_layers=adapt_layers)
    settings = Adapt(adapt, adapt_rank, adapt_lr, adapt_iterations, adapt_every, adapt_layers)
    problem, denoiser, _ = problem.for_denoiser(denoiser)
    operator, start = problem.operator, problem.start
    aty = operator.adjoint(problem.data)
    scale = normal_norm(operator, aty)
    adaptation = settings.start(denoiser, operator, problem.data, slice_batch)
    u = torch.zeros_like(aty) if start is None else start.to(aty).clone()
    u.requires_grad_()
    optimizer = torch.optim.Adam([u], lr=lr)
    for index, ((t, abar_t), _) in enumerate(_grid(denoiser, steps, progress, settings.label("RED-diff"))):
        with torch.no_grad():
            x_t = math.sqrt(abar_t) * u + math.sqrt(1 - abar_t) * noise_like(u, generator)
        x0 = _estimate(denoiser, adaptation, x_t, t, slice_batch, settings.now(index, steps))
        with torch.no_grad():
            u.grad = (operator.normal(u) - aty) / scale + lam * (u - x0)
        optimizer.step()
    if adaptation is not None and adapted is not None:
        adapted(adaptation)
    return problem.image(problem.fill_unseen(u.detach()))
