"""A reconstruction problem: ``y = A x`` (+ noise), with the units its image is written in.

:class:`InverseProblem` holds what every solver needs and nothing about the modality:

- ``operator`` ``A`` and ``data`` ``y`` (batch axis = slices);
- ``units``: the affine map between the image's units ``d`` (what is written out: HU, magnitude)
  and the operator's unknown ``x = slope d + offset`` (CT: linear attenuation in 1/mm);
- ``direct``: the analytic inversion (FBP, zero-filled) and ``start``: a classical solution
  (CG-SENSE; default: the direct one), both in the operator's units; :attr:`InverseProblem.start_image`
  (the start in the image's units) sets a diffusion prior's intensity range; ``phase``: the smooth
  image phase that makes a complex operator act on real images. Each may be given as a tensor or as
  a function of no arguments (a solver or physics function with its arguments bound), computed on
  first use, once;
- ``nonnegative`` (the unknown cannot be negative) and ``magnitude`` (the image is ``|x|``);
- ``affine``: the image grid's voxel-to-world matrix, so a slice prior sees its training orientation.

:meth:`InverseProblem.for_denoiser` brings a problem into a diffusion prior's units, which makes
``solvers.dds(problem, prior.denoiser())`` correct in a notebook: the prior's normalisation
``d = (u + 1) / 2 (high - low) + low`` (``u`` in [-1, 1]) is folded into the data,
``y' = (y - A x(u = 0)) / (a sqrt(L))`` with ``x = a u + b``, and the operator is scaled to
``||A^T A|| = 1`` (``L`` by :func:`normal_norm`), so one set of solver weights serves every
modality and resolution; a complex operator gets the known phase
(:class:`~medprior.physics.wrappers.KnownPhase`); the denoiser is wrapped to see slices in its
training orientation. A denoiser without a normalisation (the exact Gaussian ones of the tests)
takes the problem as given. Solvers return ``problem.image(u)``: the image in its physical units.

Build problems from measurement files or plain tensors with :mod:`medprior.tasks.problems`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from medprior.diffusion.denoiser import Denoiser
from medprior.diffusion.normalization import Normalization
from medprior.diffusion.orientation import FlippedDenoiser, in_plane_flips
from medprior.physics import attenuation_to_hu
from medprior.physics.operator import LinearOperator
from medprior.physics.wrappers import KnownPhase

DTYPE = torch.float32
"""The real dtype of images and sinograms in reconstruction (complex64 for MRI data)."""
Lazy = Tensor | Callable[[], Tensor] | None
"""A tensor, or a function that computes it on first use, or nothing."""


@dataclass(frozen=True)
class IntensityMap:
    """Image units ``d`` and the operator's unknown ``x = slope * d + offset``; ``unit`` names ``d``."""

    slope: float = 1.0
    offset: float = 0.0
    unit: str = ""

    def to_image(self, x: Tensor) -> Tensor:
        """The operator's unknown ``x`` in image units."""
        if self.slope == 1.0 and self.offset == 0.0:
            return x
        return (x - self.offset) / self.slope

    def from_image(self, d: float | Tensor) -> float | Tensor:
        """The operator's unknown of the image value(s) ``d``."""
        return self.slope * d + self.offset


@dataclass(frozen=True)
class HounsfieldMap(IntensityMap):
    """CT: HU on disk, linear attenuation ``mu = mu_water (1 + HU / 1000)`` (1/mm) in the operator."""

    def to_image(self, x: Tensor) -> Tensor:
        return attenuation_to_hu(x)


@dataclass(frozen=True)
class PriorUnits(IntensityMap):
    """A prior's normalised units: ``u`` in [-1, 1] is ``d = (u + 1) / 2 (high - low) + low``."""

    low: float = -1.0
    high: float = 1.0

    def to_image(self, u: Tensor) -> Tensor:
        return u * (self.high - self.low) / 2 + (self.high + self.low) / 2

    def from_image(self, d: float | Tensor) -> float | Tensor:
        return (d - (self.high + self.low) / 2) * 2 / (self.high - self.low)


class InverseProblem:
    """``y = A x`` with the units of its image; see the module docstring for every field.

    Args:
        operator: ``A`` on ``(K, *domain_shape)`` (K slices).
        data: ``y`` of shape ``(K, *range_shape)``.
        start: a classical solution ``(K, *domain_shape)`` in the operator's units, or a function
            giving it; a solver that starts from an image (RED-diff) starts there, others from noise.
        direct: analytic inversion in the operator's units, or a function giving it (default ``A^H y``).
        phase: image phase ``(K, *domain_shape)`` in radians for a complex-domain operator.
        units: image units and the unknown's (default: the same).
        nonnegative: the unknown is >= 0 (CT attenuation).
        magnitude: the image is the unknown's magnitude (complex MRI).
        affine: 4 x 4 voxel-to-world matrix (RAS mm) of the image grid, if known.
        modality: what the problem images (``"CT"``, ``"MR"``), for method registries; None if unknown.
    """

    def __init__(self, operator: LinearOperator, data: Tensor, *, start: Lazy = None, direct: Lazy = None,
                 phase: Lazy = None, units: IntensityMap | None = None, nonnegative: bool = False,
                 magnitude: bool = False, affine: np.ndarray | None = None, modality: str | None = None) -> None:
        if tuple(data.shape[1:]) != tuple(operator.range_shape):
            raise ValueError(f"data of shape {tuple(data.shape)} do not fit the operator's range "
                             f"(K, {', '.join(str(n) for n in operator.range_shape)})")
        self.operator, self.data = operator, data
        self.units = units or IntensityMap()
        self.nonnegative, self.magnitude, self.affine, self.modality = nonnegative, magnitude, affine, modality
        self._lazy: dict[str, Lazy] = {"start": start, "direct": direct, "phase": phase}
        self._normal_norm: float | None = None
        self._start_image: Tensor | None = None

    def _get(self, name: str) -> Tensor | None:
        value = self._lazy[name]
        if callable(value):
            value = self._lazy[name] = value()
        return value

    @property
    def slices(self) -> int:
        """K, the batch (slice) count."""
        return self.data.shape[0]

    @property
    def start(self) -> Tensor | None:
        """The classical start solution in the operator's units (computed on first use), or None."""
        return self._get("start")

    @property
    def start_image(self) -> Tensor:
        """The start solution (default: the direct one) in the image's units: it sets a prior's
        intensity range."""
        if self._start_image is None:
            start = self.start
            self._start_image = self.image(self.direct if start is None else start)
        return self._start_image

    @property
    def direct(self) -> Tensor:
        """The analytic inversion in the operator's units (default ``A^H y``)."""
        direct = self._get("direct")
        return self.operator.adjoint(self.data) if direct is None else direct

    @property
    def phase(self) -> Tensor | None:
        """The image phase for a complex-domain operator (radians), or None."""
        return self._get("phase")

    @property
    def in_prior_units(self) -> bool:
        """Whether the problem is already in a prior's normalised units (:meth:`for_denoiser`)."""
        return isinstance(self.units, PriorUnits)

    def image(self, x: Tensor) -> Tensor:
        """A solution ``x`` (K, *domain_shape) in the image's units (its magnitude where ``magnitude``)."""
        image = self.units.to_image(x)
        return image.abs() if self.magnitude else image

    def fill_unseen(self, x: Tensor) -> Tensor:
        """``x`` (K, *domain_shape) with the pixels the operator does not see
        (:meth:`~medprior.physics.operator.LinearOperator.unseen`) set to the unknown of a zero image.

        The data say nothing there, and a coil map cropped to zero says the calibration found no
        signal: CG-SENSE from zero leaves zeros there and TV nearly so, while a diffusion prior fills
        the region with what it learnt (on a T2w brain at 240 x 240 x 1 mm, DDS with ``--resample
        pixel`` drew bright blobs beside the head and lost 0.64 dB by them).
        """
        unseen = self.operator.unseen()
        if unseen is None:
            return x
        return x.masked_fill(unseen.to(x.device), self.units.from_image(0.0))

    def _like(self) -> Tensor:
        """A real zero image (K, *domain_shape) on the data's device."""
        return torch.zeros_like(self.start_image)

    def normal_norm(self) -> float:
        """``||A^T A||`` by :func:`normal_norm` from a seeded start shaped like the image, computed once."""
        if self._normal_norm is None:
            self._normal_norm = normal_norm(self.operator, torch.ones_like(self._like()))
        return self._normal_norm

    def real(self) -> InverseProblem:
        """The problem on real images: a complex-domain operator gets the known :attr:`phase`."""
        if not self.operator.domain_complex:
            return self
        phase = self.phase
        if phase is None:
            raise ValueError("the operator takes complex images: give the problem the image phase (phase=) "
                             "to solve for real images with a real-valued prior")
        real = InverseProblem(KnownPhase(self.operator, phase), self.data, units=self.units,
                              nonnegative=self.nonnegative, magnitude=self.magnitude, affine=self.affine,
                              modality=self.modality)
        real._start_image = self.start_image
        return real

    def normalized(self, normalization: Normalization) -> InverseProblem:
        """The problem in the units of a prior trained with ``normalization``: unknown ``u`` in [-1, 1],
        operator scaled to ``||A^T A|| = 1``, the start image normalised (see the module docstring)."""
        if self.in_prior_units:
            return self
        problem = self.real()
        start = problem.start_image
        low, high = normalization.range_of(start)
        # image units d = (u + 1) / 2 (high - low) + low; the unknown x = units.slope d + units.offset
        slope = problem.units.slope * (high - low) / 2
        offset = problem.units.slope * (high + low) / 2 + problem.units.offset
        norm = problem.normal_norm()
        like = problem._like()
        data = (problem.data - problem.operator.forward(torch.full_like(like, offset))) / (slope * norm ** 0.5)
        scaled = InverseProblem(problem.operator * (1 / norm ** 0.5), data,
                                start=normalization.apply(start, (low, high)),
                                units=PriorUnits(2 / (high - low), -(high + low) / (high - low), problem.units.unit,
                                                 low=low, high=high),
                                magnitude=problem.magnitude, affine=problem.affine, modality=problem.modality)
        scaled._normal_norm = 1.0
        return scaled

    def for_denoiser(self, denoiser: Denoiser) -> tuple[InverseProblem, Denoiser, dict[str, Any]]:
        """The problem and denoiser a diffusion solver runs on, and what was done (for the record).

        A denoiser with a ``normalization`` (a prior's, :meth:`medprior.diffusion.priors.Prior.denoiser`)
        gets the problem in its units (:meth:`normalized`); one with an ``orientation`` sees slices
        flipped into it where :attr:`affine` points the other way; one with an ``image_size`` must fit
        the operator's images. A problem already in prior units, or a plain denoiser, passes as given.

        Returns:
            The problem, the denoiser, and ``{"intensity_range": [low, high], "flipped_dims": [...]}``
            (only the keys that apply).
        """
        facts: dict[str, Any] = {}
        size = getattr(denoiser, "image_size", None)
        if size is not None and tuple(size) != tuple(self.operator.domain_shape):
            raise ValueError(f"the prior models {tuple(size)} slices but the problem has "
                             f"{tuple(self.operator.domain_shape)} images")
        normalization = getattr(denoiser, "normalization", None)
        problem = self.normalized(normalization) if normalization is not None else self
        if isinstance(problem.units, PriorUnits):
            facts["intensity_range"] = [problem.units.low, problem.units.high]
        orientation = getattr(denoiser, "orientation", None)
        if orientation is not None and self.affine is not None:
            flips = in_plane_flips(self.affine, orientation)
            facts["flipped_dims"] = list(flips)
            denoiser = FlippedDenoiser(denoiser, flips) if flips else denoiser
        return problem, denoiser, facts


def normal_norm(operator: LinearOperator, like: Tensor, iterations: int = 20, seed: int = 0) -> float:
    """``||A^T A||`` (largest eigenvalue) by power iteration from a seeded random start shaped like ``like``.

    The estimate the diffusion solvers scale by (20 products in ``like``'s dtype): it approaches the
    true value from below; :meth:`~medprior.physics.operator.LinearOperator.norm` iterates to a
    tolerance in float64 where accuracy matters more than a stable, cheap scale.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(like.shape, generator=generator, dtype=like.dtype).to(like.device)
    value = 0.0
    for _ in range(iterations):
        v = v / torch.linalg.vector_norm(v)
        w = operator.normal(v)
        value = float(torch.linalg.vector_norm(w))
        v = w.real if w.is_complex() else w
    return value


def to_slices(data: np.ndarray, dtype: torch.dtype = DTYPE) -> torch.Tensor:
    """``(I, J, K)`` array -> ``(K, I, J)`` tensor."""
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(data, 2, 0))).to(dtype)


def from_slices(x: torch.Tensor) -> np.ndarray:
    """``(K, I, J)`` tensor -> ``(I, J, K)`` float32 array."""
    return np.ascontiguousarray(np.moveaxis(x.detach().cpu().numpy(), 0, 2)).astype(np.float32)
