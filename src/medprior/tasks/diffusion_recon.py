"""Diffusion reconstructions of measurement files with a 2D slice prior (DDS, DiffusionMBIR, DPS, RED-diff).

What happens between a measurement file and :mod:`medprior.solvers.diffusion`:

0. The prior must fit the measurement, judged from its prior.json before any work
   (:func:`check_prior_fits`): the same modality, an intensity convention the images have, the
   same slice size.
1. A classical start image in data units (CT: FBP in HU; MRI: CG-SENSE magnitude) gives the
   prior's intensity range (a fixed HU window, or the volume's percentiles).
2. The prior's normalisation ``x = a u + b`` (``u`` in [-1, 1]; CT ``x`` is attenuation in 1/mm,
   MRI ``x`` the real image ``m`` with the calibration phase, see
   :mod:`medprior.physics.wrappers`) is folded into the data: ``y' = (y - A b) / a``.
3. The operator is scaled to ``||A^T A|| = 1`` (power iteration), so one set of weights (TV
   ``lam``, ``rho``, RED-diff ``lam``) serves every modality and resolution.
4. The solver returns ``u`` (K, H, W); the volume is ``a u + b`` in data units (CT HU, MRI magnitude).

The prior's slice size must equal the measurement's image size (simulate with ``--size``). The
denoiser sees slices in the prior's training orientation: the stack is flipped in plane where the
measurement's grid points the other way (a RAS-canonical NIfTI against the LPS phantoms the demo
priors learned from), so a prior never denoises upside-down anatomy.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nibabel as nib
import torch
from torch import Tensor

from medprior.devices import resolve_device
from medprior.diffusion.denoiser import Denoiser
from medprior.diffusion.prior_file import PRIOR_JSON, intensity_convention, load_prior, prior_modality, read_prior_json
from medprior.diffusion.priors import SlicePrior2D
from medprior.errors import InputError
from medprior.io.measurement import Measurement
from medprior.physics import MU_WATER_PER_MM, attenuation_to_hu
from medprior.physics.wrappers import KnownPhase, calibration_phase
from medprior.solvers import cg_sense, fbp
from medprior.solvers.diffusion import METHODS, dds, dps, mbir, normal_norm, reddiff
from medprior.tasks.priors import training_orientation

SOLVERS = {"dds": dds, "mbir": mbir, "dps": dps, "reddiff": reddiff}
# Bytes of activations per pixel of a slice per UNet channel, forward only: an estimate (about 40
# float32 tensors of every level's width), not a measurement; on a 256^3 CT volume it picks 9 slices
# and DDS peaks at 3.05 GB RSS (benchmarks/recon_memory.py). On an H200 the same run measured 0.33 GB
# of CUDA memory per 256 x 256 slice against the 1.17 GB estimated here: safe, by a factor of 3.6.
# DPS backpropagates: assumed 3 times more.
_ACTIVATION_BYTES_PER_PIXEL_CHANNEL = 160


_OPPOSITE = dict(zip("LRAPSI", "RLPAIS"))


def in_plane_flips(affine, prior_orientation: str) -> tuple[int, ...]:
    """Dims of a (b, 1, I, J) batch to flip so that its I and J axes point as the prior's first two axes."""
    codes = nib.aff2axcodes(affine)
    flips = []
    for dim, (have, want) in enumerate(zip(codes[:2], prior_orientation[:2]), start=2):
        if have == _OPPOSITE[want]:
            flips.append(dim)
        elif have != want:
            raise InputError(None, f"the measurement grid is {''.join(codes)} and the prior's slices "
                                   f"{prior_orientation}: in-plane axes are swapped; reorient the volume first")
    return tuple(flips)


class FlippedDenoiser:
    """A denoiser applied to in-plane flipped slices, its output flipped back (flips are their own inverse)."""

    def __init__(self, denoiser: Denoiser, dims: tuple[int, ...]) -> None:
        self.denoiser, self.dims, self.schedule = denoiser, dims, denoiser.schedule

    def __call__(self, x_t: Tensor, t: Tensor) -> Tensor:
        return self.denoiser(x_t.flip(self.dims), t).flip(self.dims)


def auto_slice_batch(prior: SlicePrior2D, slices: int, device: torch.device, gradients: bool = False) -> int:
    """Slices per network call that fit in half the free memory of ``device`` (at most ``slices``)."""
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
    else:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    height, width = prior.image_size
    per_slice = _ACTIVATION_BYTES_PER_PIXEL_CHANNEL * height * width * sum(prior.network_spec["channels"])
    per_slice *= 3 if gradients else 1
    return max(1, min(slices, int(free // 2 // per_slice)))


def check_prior_fits(measurement: Measurement, prior_dir: str | os.PathLike,
                     source: str | os.PathLike | None = None) -> dict[str, Any]:
    """Refuse, from prior.json alone (before any work), a prior that cannot reconstruct ``measurement``.

    The prior must have been trained on the measurement's modality (:func:`prior_modality`) with an
    intensity convention its images have (CT in HU: a window or percentiles; MR magnitudes in
    arbitrary units: percentiles only), and be an unconditional one-channel slice2d prior of the
    measurement's slice size. ``source`` names the measurement (its file) in the error.

    Returns:
        The prior.json content.

    Raises:
        InputError: naming prior.json, both modalities or conventions, and the measurement.
    """
    content = read_prior_json(prior_dir)
    json_path = Path(prior_dir) / PRIOR_JSON
    named = f"{_a(measurement.modality)} measurement"
    named = f"{source}, {named}" if source else named
    modality, decided = prior_modality(content)
    if modality != measurement.modality:
        raise InputError(json_path, f"is {_a(modality)} prior ({decided}) and cannot reconstruct {named}; "
                                    f"give {_a(measurement.modality)} prior")
    if modality == "MR" and (content.get("normalization") or {}).get("kind") == "window":
        raise InputError(json_path, f"is an MR prior trained on {intensity_convention(content)}, but {named} gives "
                                    "magnitudes in arbitrary units (their scale varies by scan); an MR prior needs "
                                    "per-volume percentile normalisation")
    kind, channels, conditions = content.get("kind"), content.get("channels", 1), content.get("condition_channels", 0)
    if kind != "slice2d" or channels != 1 or conditions:
        raise InputError(prior_dir, f"needs an unconditional single-channel slice2d prior, found {kind} with "
                                    f"{channels} channel(s) and {conditions} condition(s)")
    size, shape = tuple(content.get("image_size", ())), tuple(measurement.image_shape[:2])
    if size != shape:
        raise InputError(prior_dir, f"the prior models {size} slices but the measurement has "
                                    f"{shape} images; simulate at the prior's size (medprior simulate --size)")
    return content


def _a(acronym: str) -> str:
    """``acronym`` with its article as spoken: "a CT", "an MR"."""
    return ("an " if acronym[:1] in "AEFHILMNORSX" else "a ") + acronym


def _load_slice_prior(prior_dir: str | os.PathLike, device: torch.device, shape: tuple[int, int]) -> SlicePrior2D:
    prior = load_prior(prior_dir, device)
    if not isinstance(prior, SlicePrior2D) or prior.channels != 1 or prior.condition_channels:
        raise InputError(prior_dir, f"needs an unconditional single-channel slice2d prior, found {prior.kind} with "
                                    f"{prior.channels} channel(s) and {prior.condition_channels} condition(s)")
    if tuple(prior.image_size) != tuple(shape):
        raise InputError(prior_dir, f"the prior models {tuple(prior.image_size)} slices but the measurement has "
                                    f"{tuple(shape)} images; simulate at the prior's size (medprior simulate --size)")
    return prior


def _ct_problem(measurement: Measurement, build_operator, y: torch.Tensor):
    """CT: the operator on attenuation, the FBP start in HU, and x = mu(HU)."""
    operator = build_operator(measurement)
    start_hu = attenuation_to_hu(fbp(operator, y))
    return operator, start_hu, MU_WATER_PER_MM / 1000.0, MU_WATER_PER_MM


def _mri_problem(measurement: Measurement, build_operator, y: torch.Tensor, sensitivities, cg_iterations: int):
    """MRI: the known-phase real operator, the CG-SENSE magnitude start, x = m."""
    operator = build_operator(measurement, sensitivities)
    start = cg_sense(operator, y, iterations=cg_iterations)
    phase = calibration_phase(operator, y, measurement.geometry["calibration_lines"])
    return KnownPhase(operator, phase), start.abs(), 1.0, 0.0


def reconstruct_diffusion(measurement: Measurement, method: str, prior_dir: str | os.PathLike, *,
                          build_operator, sensitivities=None, parameters: dict[str, Any], slice_batch: int | str = "auto",
                          seed: int = 0, device: str = "auto", cg_iterations: int = 30
                          ) -> tuple[torch.Tensor, dict[str, Any]]:
    """Reconstruct a measurement with a diffusion solver: (K, H, W) slices in data units and run facts.

    Data units: HU for CT, magnitude for MRI. The facts (slice batch, network evaluations per
    slice, intensity range, parameters) go into the output's sidecar. The solver runs on ``device``
    (the prior's); the operators follow their inputs there.

    ``build_operator`` rebuilds the physics from the file (:func:`medprior.tasks.recon.build_operator`);
    MRI needs the coil ``sensitivities``. ``parameters`` go to the solver (``steps``, ``eta``, ...).
    """
    if method not in METHODS:
        raise InputError(None, f"unknown diffusion method {method!r}; choose from {METHODS}")
    content = check_prior_fits(measurement, prior_dir)
    target = resolve_device(device)
    y = torch.from_numpy(measurement.data).to(target)
    if measurement.modality == "CT":
        operator, start, unit_slope, unit_offset = _ct_problem(measurement, build_operator, y)
    else:
        operator, start, unit_slope, unit_offset = _mri_problem(measurement, build_operator, y, sensitivities,
                                                                cg_iterations)
    prior = _load_slice_prior(prior_dir, target, operator.domain_shape)
    low, high = prior.normalization.range_of(start)
    # data units d = (u + 1) / 2 (high - low) + low; operator units x = unit_slope d + unit_offset
    slope = unit_slope * (high - low) / 2
    offset = unit_slope * (high + low) / 2 + unit_offset
    norm = normal_norm(operator, torch.ones_like(start))
    scaled = operator * (1 / norm ** 0.5)
    y_scaled = (y - operator.forward(torch.full_like(start, offset))) / (slope * norm ** 0.5)
    batch = auto_slice_batch(prior, start.shape[0], target, method == "dps") if slice_batch == "auto" else int(slice_batch)
    generator = torch.Generator().manual_seed(seed)
    orientation = training_orientation(content.get("training") or {})
    flips = in_plane_flips(measurement.affine, orientation)
    denoiser = FlippedDenoiser(prior.denoiser(), flips) if flips else prior.denoiser()
    evaluations: list[int] = []
    extra = {"evaluations": evaluations.append} if method == "dps" else {}
    if method == "reddiff":
        extra["start"] = prior.normalization.apply(start, (low, high))
    u = SOLVERS[method](scaled, y_scaled, denoiser, slice_batch=batch, generator=generator, progress=True,
                        **parameters, **extra)
    data = u * (high - low) / 2 + (high + low) / 2
    data = data if measurement.modality == "CT" else data.abs()
    nfe = sum(evaluations) if evaluations else parameters.get("steps") * parameters.get("samples", 1)
    facts = {"method": method, "prior": str(prior_dir), "slice_batch": batch, "nfe_per_slice": nfe,
             "flipped_dims": list(flips),
             "intensity_range": [low, high], "seed": seed, **parameters}
    return data, facts
