"""The reconstruction methods (:data:`medprior.methods.RECON_METHODS`) and how each runs on a problem.

Classical (no prior): ``fbp`` (CT) and ``zerofill`` (MRI) are the problem's analytic inversion;
``cgsense`` (MRI) is CG on the normal equations; ``tv`` (both) is 3D anisotropic ADMM-TV started at
the analytic image, with weights relative to its 99th magnitude percentile (so one value serves many
volumes). Their parameters are the schema's ``recon.solver`` (shared with the CLI's options).

Diffusion (a 2D slice prior, :mod:`medprior.solvers.diffusion`): ``dds``, ``mbir``, ``dps``,
``reddiff``, with the parameters of the schema's ``recon.diffusion.<method>`` and, for MRI, the
``recon.diffusion.mri_overrides.<method>`` over them. The prior must fit the problem, judged from its
prior.json before any work (:func:`check_prior_fits`): the same modality, an intensity convention the
images have, the same slice size (or ``resample="prior"``: the measurement put on the prior's matrix;
``resample="pixel"``: on the matrix of the pixel size the prior learned, where its convolutional
network then runs; :mod:`medprior.tasks.regrid`). The solver brings the problem into the prior's units
(:meth:`~medprior.solvers.problem.InverseProblem.for_denoiser`).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import Tensor

import numpy as np

from medprior.checks import require_finite_output, require_schema, require_seed
from medprior.config import defaults
from medprior.devices import resolve_device
from medprior.diffusion.adaptation import TweedieAdaptation, adapter_state
from medprior.diffusion.prior_file import (PRIOR_JSON, UNITS, intensity_convention, load_prior, prior_modality,
                                          read_prior_json, require_schedule_steps)
from medprior.io import Volume, save, write_sidecar
from medprior.io.measurement import Measurement, read_measurement
from medprior.diffusion.networks import ACTIVATION_BYTES_PER_PIXEL_CHANNEL
from medprior.diffusion.priors import Prior, SlicePrior2D, unet_downsampling
from medprior.errors import InputError, ParameterError
from medprior.methods import RECON_METHODS
from medprior.solvers import admm_tv, cg_sense
from medprior.solvers.problem import InverseProblem, from_slices
from medprior.tasks.prior_geometry import pixel_matrix, pixel_mismatch
from medprior.tasks.problems import problem_from_measurement
from medprior.tasks.regrid import back_to_measured_grid, consistent_on_grid, on_grid

GENERAL_DIFFUSION_OPTIONS = ("slice_batch", "seed", "device", "resample")
"""Options of every diffusion method besides its parameters (schema ``recon.diffusion``)."""
REGRID_CG_ITERATIONS = 5
"""CG iterations on the measurement's grid after a method without ``cg_iterations`` ran on the prior's."""
log = logging.getLogger(__name__)


def analytic(problem: InverseProblem) -> Tensor:
    """FBP (CT) or zero-filled (MRI): the problem's direct inversion, as an image."""
    return problem.image(problem.direct)


def cgsense(problem: InverseProblem, *, cg_iterations: int) -> Tensor:
    """CG-SENSE: conjugate gradients on the normal equations."""
    return problem.image(cg_sense(problem.operator, problem.data, iterations=cg_iterations))


def tv(problem: InverseProblem, *, lam: float, rho: float, tv_iterations: int, tv_cg_iterations: int) -> Tensor:
    """3D anisotropic ADMM-TV from the analytic image, weights relative to its 99th magnitude percentile."""
    start = problem.direct.clamp_min(0) if problem.nonnegative else problem.direct
    scale = float(torch.quantile(start.abs().flatten()[:: max(1, start.numel() // 1_000_000)], 0.99)) or 1.0
    x = admm_tv(problem.operator, problem.data / scale, lam=lam, rho=rho, iterations=tv_iterations,
                cg_iterations=tv_cg_iterations, x0=start / scale, nonnegative=problem.nonnegative)
    return problem.image(x * scale)


def check_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """Options of :func:`run` checked before any work, by name and range (a ParameterError names the
    option): a diffusion method's ``slice_batch`` (``auto`` or >= 1), ``seed``, ``device`` and
    parameters; a classical method's solver parameters. Returns them typed."""
    if RECON_METHODS[method].family != "diffusion":
        return RECON_METHODS.check(method, options)
    general: dict[str, Any] = {}
    if "slice_batch" in options:
        general["slice_batch"] = require_schema("slice_batch", options["slice_batch"], "recon.diffusion.slice_batch")
    if "seed" in options:
        general["seed"] = require_seed("seed", options["seed"])
    if "device" in options:
        general["device"] = options["device"]
    if "resample" in options:
        general["resample"] = require_schema("resample", options["resample"], "recon.diffusion.resample")
    rest = {key: value for key, value in options.items() if key not in GENERAL_DIFFUSION_OPTIONS}
    return {**general, **RECON_METHODS.check(method, rest)}


def prior_record(prior: Prior | str | os.PathLike) -> dict[str, Any]:
    """What is known of a prior without loading it: its prior.json (a folder) or its record (a Prior;
    its description where it was never saved)."""
    if isinstance(prior, Prior):
        return prior.record or prior.description()
    return read_prior_json(prior)


def check_prior_fits(modality: str, image_shape: tuple[int, ...], prior: Prior | str | os.PathLike,
                     source: str | os.PathLike | None = None, content: dict[str, Any] | None = None,
                     matrix: tuple[int, int] | None = None) -> dict[str, Any]:
    """Refuse, from its prior.json alone (before any work), a prior that cannot reconstruct images of
    ``modality`` and in-plane ``image_shape``.

    The prior must have been trained on the modality (:func:`prior_modality`; an unsaved prior in
    memory is taken at its word) with an intensity convention its images have (CT in HU: a window or
    percentiles; MR magnitudes in arbitrary units: percentiles only), and be an unconditional
    one-channel slice2d prior of the slice size (``matrix``, where its network is to run on another
    than the one it learned; a :class:`Prior` in memory: its current ``image_size``). ``source``
    names the measurement in the error; ``content``: the prior's record if already read.

    Returns:
        The prior's record (:func:`prior_record`).

    Raises:
        InputError: naming prior.json (or the prior), both modalities or conventions, and the measurement.
    """
    content = prior_record(prior) if content is None else content  # a Prior's record: no file read
    where = None if isinstance(prior, Prior) else prior
    json_path = Path(where) / PRIOR_JSON if where is not None else "the prior"
    named = f"{_a(modality)} measurement"
    named = f"{source}, {named}" if source else named
    if where is not None or "modality" in content:
        trained_on, decided = prior_modality(content)
        if trained_on != modality:
            raise InputError(json_path, f"is {_a(trained_on)} prior ({decided}) and cannot reconstruct {named}; "
                                        f"give {_a(modality)} prior")
    if UNITS.get(modality) == "arbitrary units" and (content.get("normalization") or {}).get("kind") == "window":
        raise InputError(json_path, f"is {_a(modality)} prior trained on {intensity_convention(content)}, but {named} "
                                    "gives magnitudes in arbitrary units (their scale varies by scan); such a prior "
                                    "needs per-volume percentile normalisation")
    kind, channels, conditions = content.get("kind"), content.get("channels", 1), content.get("condition_channels", 0)
    if kind != "slice2d" or channels != 1 or conditions:
        raise InputError(where, f"needs an unconditional single-channel slice2d prior, found {kind} with "
                                f"{channels} channel(s) and {conditions} condition(s)")
    size = matrix or tuple(prior.image_size if isinstance(prior, Prior) else content.get("image_size", ()))
    shape = tuple(image_shape[:2])
    if size != shape:
        raise InputError(where, f"the prior models {size} slices but the measurement has "
                                f"{shape} images; reconstruct on its grid (--resample prior or pixel) or simulate at its size "
                                "(medprior simulate --size)")
    return content


def check_prior(method: str, modality: str | None, image_shape: tuple[int, ...],
                prior: Prior | str | os.PathLike | None, parameters: dict[str, Any],
                source: str | os.PathLike | None = None, matrix: tuple[int, int] | None = None) -> dict[str, Any]:
    """Refuse, before any work, a missing prior, more ``steps`` than its schedule has, or a prior that
    does not fit (:func:`check_prior_fits`; ``matrix``: the one its network will run on, where not
    its own). Returns its record."""
    if prior is None:
        raise InputError(None, f"method {method} needs a prior (--prior DIR)")
    content = prior_record(prior)
    require_schedule_steps(content, parameters["steps"])
    return check_prior_fits(modality, image_shape, prior, source, content, matrix) if modality else content


def _resample_grid(resample: str, measurement: Measurement, prior: Prior | str | os.PathLike,
                   source: str | None) -> tuple[int, int]:
    """The in-plane matrix a diffusion method reconstructs ``measurement`` on: the prior's own
    (``"prior"``), or the one of the pixel size it learned (``"pixel"``, :func:`pixel_matrix`)."""
    content = prior_record(prior)
    if resample == "prior":
        return tuple(content["image_size"])
    return pixel_matrix(tuple(measurement.image_shape[:2]), _pixel_mm(measurement.affine), content,
                        unet_downsampling(content["network"]), source)


def _a(acronym: str) -> str:
    """``acronym`` with its article as spoken: "a CT", "an MR"."""
    return ("an " if acronym[:1] in "AEFHILMNORSX" else "a ") + acronym


def auto_slice_batch(prior: SlicePrior2D, slices: int, device: torch.device, gradients: bool = False) -> int:
    """Slices per network call that fit in half the free memory of ``device`` (at most ``slices``)."""
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
    else:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    height, width = prior.image_size
    per_slice = ACTIVATION_BYTES_PER_PIXEL_CHANNEL * height * width * sum(prior.network_spec["channels"])
    per_slice *= 3 if gradients else 1
    return max(1, min(slices, int(free // 2 // per_slice)))


def _loaded(prior: Prior | str | os.PathLike, device: torch.device) -> Prior:
    """The prior on ``device``: loaded from its folder, or the given one (which must be there)."""
    if not isinstance(prior, Prior):
        return load_prior(prior, device)
    where = next(prior.parameters()).device
    if where.type != device.type or (device.index is not None and where.index != device.index):
        raise ParameterError("device", f"the prior is on {where} but the problem on {device}; move one (.to())")
    return prior


def _pixel_mm(affine: np.ndarray | None) -> float:
    """Mean in-plane voxel size (mm) of an image grid's affine (0 without one)."""
    return 0.0 if affine is None else float(np.linalg.norm(np.asarray(affine)[:3, :2], axis=0).mean())


def run(problem: InverseProblem, method: str, *, prior: Prior | str | os.PathLike | None = None,
        config: dict[str, Any] | None = None, **options: Any) -> tuple[Tensor, dict[str, Any]]:
    """Run ``method`` on ``problem``: the image (K, H, W) in the problem's units and the run's facts.

    ``options`` (checked by :func:`check_options`) override the method's parameters resolved by the
    registry from ``config`` (default: the schema's defaults) for the problem's modality. A diffusion
    method needs ``prior`` (a :class:`~medprior.diffusion.priors.Prior` or its folder, checked to fit
    before any work) and runs where the problem's data are.
    """
    options = check_options(method, options)
    entry = RECON_METHODS.for_modality(method, problem.modality)
    general = {key: options.pop(key) for key in GENERAL_DIFFUSION_OPTIONS if key in options}
    if general.get("resample", "none") != "none":
        raise ParameterError("resample", "applies to a measurement (reconstruct), not to a problem built already")
    parameters = RECON_METHODS.parameters(method, problem.modality, options, config)
    if entry.family != "diffusion":
        return entry.runner(problem, **parameters), {"method": method, "units": problem.units.unit, **parameters}
    content = check_prior(method, problem.modality, tuple(problem.operator.domain_shape), prior, parameters)
    settings = (config or defaults())["recon"]["diffusion"]
    slice_batch = general.get("slice_batch", settings["slice_batch"])
    seed = general.get("seed", settings["seed"])
    device = problem.data.device
    loaded = _loaded(prior, device)
    geometry = pixel_mismatch(_pixel_mm(problem.affine), content, loaded.folder or "(in memory)")
    problem, denoiser, prepared = problem.for_denoiser(loaded.denoiser())
    batch = auto_slice_batch(loaded, problem.slices, device, method == "dps") if slice_batch == "auto" else slice_batch
    evaluations: list[int] = []
    adaptations: list[TweedieAdaptation] = []
    extra: dict[str, Any] = {"evaluations": evaluations.append} if method == "dps" else {}
    if parameters.get("adapt", "none") != "none":
        extra["adapted"] = adaptations.append
    image = entry.runner(problem, denoiser, slice_batch=batch, generator=torch.Generator().manual_seed(seed),
                      progress=True, **parameters, **extra)
    nfe = sum(evaluations) if evaluations else parameters["steps"] * parameters.get("samples", 1)
    facts = {"method": method, "prior": loaded.folder or "(in memory)",
             "slice_batch": batch, "nfe_per_slice": nfe, **prepared, "seed": seed, "units": problem.units.unit,
             **geometry, **parameters}
    if adaptations:
        (adaptation,) = adaptations  # one adapter set (or one per slice, DDIP) serves the volume
        facts["adapter_weights"] = {f"set{k}.{name}": tensor for k, adapted in enumerate(adaptation.denoisers)
                                    for name, tensor in adapter_state(adapted).items()}
    return image, facts


def reconstruct(source: Measurement | InverseProblem, method: str, *, prior: Prior | str | os.PathLike | None = None,
                device: str | None = None, config: dict[str, Any] | None = None,
                name: str | os.PathLike | None = None, **options: Any) -> Volume:
    """Reconstruct a measurement (or a problem built from one) with any registered method.

    Args:
        source: a :class:`~medprior.io.measurement.Measurement`, or an
            :class:`~medprior.solvers.problem.InverseProblem` (:mod:`medprior.tasks.problems`), which
            keeps its coil maps and start images across calls.
        method: a name of :data:`~medprior.tasks.recon_methods.RECON_METHODS` that applies to the modality.
        prior: a diffusion method's slice prior: a loaded :class:`~medprior.diffusion.priors.Prior`
            (not reloaded per call; it must be on the problem's device) or its folder.
        device: where a diffusion method runs when ``source`` is a measurement (default: the config's
            ``recon.diffusion.device``, ``auto``: CUDA when present); classical methods run on the CPU.
        config: a validated config whose ``recon`` section gives the parameters (default: the schema's).
        name: what errors call the measurement (its file; default: the volume it was simulated from).
        options: the method's parameters over those (``steps``, ``lam``, ``tv_iterations``, ...) and,
            for diffusion, ``slice_batch``, ``seed`` and ``resample`` (``"prior"``: reconstruct a
            measurement of another matrix on the prior's, over the same field of view, and interpolate
            the result back; ``"pixel"``: the same on the matrix whose pixels are of the size the
            prior learned (:func:`~medprior.tasks.prior_geometry.pixel_matrix`), the prior's network
            run on it; :mod:`medprior.tasks.regrid`; default the config's ``recon.diffusion.resample``).

    Returns:
        The Volume on the measurement's grid (CT in HU, MRI magnitude); its ``metadata["reconstruction"]``
        holds the run's facts (parameters, network evaluations, intensity range, ``resampled``: what
        the regridding did, ...), and with
        ``adapt`` its ``metadata["adapters"]`` the adapter weights (``set<k>.<layer>``: one set per
        volume with d3ip, per slice with ddip; :mod:`medprior.diffusion.adaptation`).
    """
    options = check_options(method, options)
    measured, regridded = source, None
    if isinstance(source, Measurement):
        resample = options.pop("resample", (config or defaults())["recon"]["diffusion"]["resample"])
        name = name or source.metadata.get("source")
        entry = RECON_METHODS.for_modality(method, source.modality, name)
        where = torch.device("cpu")
        if entry.family == "diffusion":  # the prior checked and loaded before the coil maps and the start image
            if resample != "none" and prior is not None:  # without one, check_prior says so
                source, regridded = on_grid(source, _resample_grid(resample, source, prior, name), name)
                regridded = {"resample": resample, **regridded}
                log.info("%s; result interpolated back onto the measurement's %s grid", regridded["how"],
                         " x ".join(map(str, measured.image_shape[:2])))
            grid = tuple(source.image_shape[:2])
            parameters = {key: value for key, value in options.items() if key not in GENERAL_DIFFUSION_OPTIONS}
            content = check_prior(method, source.modality, grid, prior,
                                  RECON_METHODS.parameters(method, source.modality, parameters, config), name,
                                  matrix=grid if resample == "pixel" else None)
            where = resolve_device(device or (config or defaults())["recon"]["diffusion"]["device"])
            prior = prior if isinstance(prior, Prior) else load_prior(prior, where, content=content)
            prior = prior.on_matrix(grid) if resample == "pixel" else prior
        problem, metadata = problem_from_measurement(source, device=where, name=name), dict(source.metadata)
    else:
        problem, metadata = source, {}
    image, facts = run(problem, method, prior=prior, config=config, **options)
    affine = problem.affine if problem.affine is not None else np.eye(4)
    data = from_slices(image)
    if regridded is not None and "measured_grid" in regridded:
        iterations = facts.get("cg_iterations", REGRID_CG_ITERATIONS)
        data, regridded["back_to_measured_grid"] = back_to_measured_grid(data, affine, measured)
        data = consistent_on_grid(problem_from_measurement(measured, device=where), data, iterations)
        affine = measured.affine
        regridded["cg_iterations_on_measured_grid"] = iterations
    if regridded is not None:
        facts["resampled"] = regridded
    adapters = facts.pop("adapter_weights", None)
    return Volume(data, affine, problem.modality or "", {"method": method, **metadata,
                                                                       "reconstruction": facts,
                                                                       **({"adapters": adapters} if adapters else {})})


def reconstruct_file(measurement_path: str | os.PathLike, method: str, out: str | os.PathLike, *,
                     prior: str | os.PathLike | None = None, **options: Any) -> Path:
    """Read a measurement file, reconstruct it, write the NIfTI and its sidecar (method, seconds, facts).

    ``options`` are :func:`reconstruct`'s, checked (with the method) before the file is read.
    """
    options = check_options(method, options)
    if RECON_METHODS[method].family == "diffusion" and prior is None:
        raise InputError(None, f"method {method} needs a prior (--prior DIR)")
    measurement = read_measurement(measurement_path)
    start = time.perf_counter()
    volume = reconstruct(measurement, method, prior=prior, name=measurement_path, **options)
    seconds = time.perf_counter() - start
    require_finite_output(out, volume.data, f"the {method} reconstruction")  # diverged: nothing is written
    written = save(volume, out)
    inputs = [measurement_path, *([Path(prior) / "prior.json"] if prior is not None else [])]
    facts = {**volume.metadata["reconstruction"], "seconds": seconds}
    if "adapters" in volume.metadata:
        adapters = written.with_name(adapters_name(written))
        save_file({k: v.contiguous() for k, v in volume.metadata["adapters"].items()}, str(adapters))
        facts["adapters_file"] = adapters.name
    write_sidecar(written, config=facts, inputs=inputs)
    return written


def adapters_name(output: str | os.PathLike) -> str:
    """The file beside a reconstruction that holds its adapter weights: ``<name>.adapters.safetensors``
    (``r.nii.gz`` -> ``r.adapters.safetensors``)."""
    name = Path(output).name
    for suffix in (".nii.gz", ".nii"):
        name = name.removesuffix(suffix)
    return f"{name}.adapters.safetensors"
