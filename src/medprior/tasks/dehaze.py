"""The dehazing stage: beamformed frames in, dehazed B-mode images (and haze estimates) out.

Methods (:data:`medprior.methods.DEHAZE_METHODS`, parameters in the schema's ``dehaze.<method>``):

- ``diffusion``: joint posterior sampling of tissue and haze with two diffusion priors on the
  companded beamformed RF (Stevens et al. 2024; :mod:`medprior.solvers.joint_sampling`); priors
  trained with the condition ``depth`` are told each patch's depth in the frame
  (:func:`medprior.tasks.echo_frames.depth_channel`), since near-field haze and tissue differ there;
- ``supervised``: a network of the tissue prior's size trained on the same hazy / clean patches to
  predict the tissue from the hazy frame in one evaluation (a regression-trained prior);
- ``bm3d`` and ``nlm``: BM3D and non-local means of the hazy B-mode image
  (:mod:`medprior.solvers.speckle`).

Images. A frame is beamformed RF ``(n_r, n_lines)`` (:func:`medprior.tasks.ultrasound.beamform_file`).
The learned methods see it companded, ``C(y / scale)`` with ``scale = max |y|`` (the priors'
training convention, :mod:`medprior.tasks.echo_frames`), and return tissue RF in the frame's units.
B-mode images are the envelope in dB against the hazy frame's largest envelope value, clipped to
``[-dynamic_range, 0]`` (:func:`bmode`), so the hazy, dehazed and true images share one scale. The
diffusion method draws ``samples`` tissue and haze images from the joint posterior. Its B-mode image
(``estimate``) is by default each pixel's posterior mean B-mode value when, locally, tissue and haze
are Gaussian at the levels the samples give (:func:`local_gaussian_bmode`): the least-squares estimate
on the scale the images are scored on, with the speckle taken from the measurement and the levels
from the priors, free of the few samples' Monte Carlo noise; ``samples`` takes the mean of the
samples' B-mode images instead.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.ndimage import uniform_filter
from scipy.special import exp1
from torch import Tensor

from medprior.checks import require_float, require_seed
from medprior.config import defaults
from medprior.devices import resolve_device
from medprior.diffusion.patches import extract, overlapping_corners, stitch
from medprior.diffusion.prior_file import load_prior, prior_modality, read_prior_json
from medprior.diffusion.priors import Prior
from medprior.errors import InputError, ParameterError
from medprior.io.ultrasound import write_zea
from medprior.physics.beamform import bmode, envelope, expand, reference_level
from medprior.methods import DEHAZE_METHODS
from medprior.solvers.joint_sampling import joint_posterior_sampling
from medprior.solvers.speckle import bm3d_bmode, nlm_bmode
from medprior.tasks.echo_frames import depth_channel, prior_scale, to_prior
from medprior.tasks.ultrasound import read_beamformed


@dataclasses.dataclass
class Dehazed:
    """A method's result: the B-mode image (n_r, n_lines) dB, and the tissue and haze RF where it has them
    (samples, n_r, n_lines): one for the supervised network, the posterior samples for diffusion."""

    bmode: np.ndarray
    tissue: Tensor | None = None
    haze: Tensor | None = None


def local_gaussian_bmode(hazy: Tensor, tissue: Tensor, haze: Tensor, reference: float, dynamic_range: float,
                         window: tuple[int, int]) -> np.ndarray:
    """The posterior mean of the tissue's B-mode value (n_r, n_lines) dB at each pixel of a ``hazy``
    frame (n_r, n_lines) when, locally, tissue and haze are independent circular Gaussians whose powers
    ``p_x``, ``p_h`` are the posterior samples' (``tissue``, ``haze``: (samples, n_r, n_lines) RF) mean
    envelope powers averaged over ``window`` (rows, lines).

    Given the hazy analytic value ``y``, the tissue's is then ``CN(w y, w p_h)`` with the Wiener gain
    ``w = p_x / (p_x + p_h)``, and ``E ln|x|^2 = ln|w y|^2 + E1(w |y|^2 / p_h)`` (``E1``: the exponential
    integral) exactly: the samples give the local levels, the measurement the speckle, and no Monte
    Carlo noise of a few samples reaches the image. Clipped like :func:`bmode`.
    """
    def local_power(rf: Tensor) -> np.ndarray:
        power = (envelope(rf, 1).double() ** 2).mean(0).numpy()
        return uniform_filter(power, window, mode="nearest")

    p_x, p_h = local_power(tissue), np.maximum(local_power(haze), 1e-300)
    gain = p_x / np.maximum(p_x + p_h, 1e-300)
    mean_power = np.maximum(gain ** 2 * envelope(hazy, 0).double().numpy() ** 2, 1e-300)
    log_power = np.log(mean_power) + exp1(np.maximum(mean_power / np.maximum(gain * p_h, 1e-300), 1e-300))
    decibels = 10 * np.log10(np.e) * log_power - 20 * np.log10(reference)
    return np.clip(decibels, -dynamic_range, 0).astype(np.float32)


def joint_diffusion(frame: Tensor, models: dict[str, Prior], *, reference: float, dynamic_range: float, steps: int,
                    start: float, lam: float, kappa: float, gamma: float, eta: float, gradient: str, samples: int,
                    estimate: str, window_depth: int, window_lines: int, batch: int, seed: int,
                    progress: bool = False) -> Dehazed:
    """The ``diffusion`` method: joint posterior sampling of tissue and haze (see the module docstring)."""
    tissue, haze = models["tissue"], models["haze"]
    scale = prior_scale(frame)
    y = to_prior(frame, scale)
    device = next(tissue.parameters()).device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    depth = depth_channel(tuple(y.shape)).to(device)
    conditions = [prior.encode(depth[None])[0] if prior.condition_channels else None for prior in (tissue, haze)]
    # a depth-conditioned prior's denoiser is bound to the first patch's depth; joint sampling gives each patch its own
    denoisers = [prior.denoiser(condition=None if condition is None else condition[None, :, :prior.image_size[0],
                                                                                   :prior.image_size[1]])
                 for prior, condition in zip((tissue, haze), conditions)]
    x, h = joint_posterior_sampling(y.to(device), *denoisers, patch_size=tissue.image_size, steps=steps, start=start,
                                    lam=lam, kappa=kappa, gamma=gamma, eta=eta, gradient=gradient, samples=samples,
                                    batch=batch, tissue_condition=conditions[0], haze_condition=conditions[1],
                                    generator=generator, progress=progress)
    x, h = expand(x.cpu()) * scale, expand(h.cpu()) * scale
    if estimate == "gaussian":
        image = local_gaussian_bmode(frame, x, h, reference, dynamic_range, (window_depth, window_lines))
    else:
        image = np.mean([bmode(sample, reference, dynamic_range) for sample in x], axis=0)
    return Dehazed(bmode=image, tissue=x, haze=h)


@torch.no_grad()
def supervised_network(frame: Tensor, models: dict[str, Prior], *, reference: float, dynamic_range: float, batch: int,
                       progress: bool = False) -> Dehazed:
    """The ``supervised`` method: the regression-trained network maps the hazy frame to tissue RF."""
    network = models["supervised"]
    scale = prior_scale(frame)
    y = to_prior(frame, scale)
    device = next(network.parameters()).device
    corners = overlapping_corners(y.shape, network.image_size)
    patches = extract(y[None].to(device), corners, network.image_size)
    predicted = []
    for chunk in patches.split(batch):
        denoiser = network.denoiser(condition=chunk)
        t = torch.zeros(chunk.shape[0], dtype=torch.long, device=device)
        predicted.append(denoiser(torch.zeros_like(chunk), t).clamp(-1, 1))
    x = expand(stitch(torch.cat(predicted), corners, y.shape).cpu()) * scale
    return Dehazed(bmode=bmode(x[0], reference, dynamic_range), tissue=x)


def bm3d(hazy_bmode: np.ndarray, dynamic_range: float, *, sigma: float | None) -> Dehazed:
    """The ``bm3d`` method on the hazy B-mode image (dB)."""
    return Dehazed(bmode=bm3d_bmode(hazy_bmode, dynamic_range, sigma=sigma).astype(np.float32))


def nlm(hazy_bmode: np.ndarray, dynamic_range: float, *, h: float | None, patch_size: int,
        patch_distance: int) -> Dehazed:
    """The ``nlm`` method on the hazy B-mode image (dB)."""
    return Dehazed(bmode=nlm_bmode(hazy_bmode, dynamic_range, h=h, patch_size=patch_size,
                                   patch_distance=patch_distance).astype(np.float32))


MODELS = {"diffusion": ("tissue", "haze"), "supervised": ("supervised",)}
"""The trained models each learned method needs, by role."""
CONDITIONS = {"tissue": ((), ("depth",)), "haze": ((), ("depth",)), "supervised": (("hazy",),)}
"""What each role's model may be conditioned on (its training config's ``data.conditions``): the
diffusion priors on nothing or on each pixel's depth, the supervised network on the hazy frame."""


def check_models(method: str, models: dict[str, str | os.PathLike]) -> None:
    """Before any work: the method's models are given, are priors, and fit it (one schedule for the two
    diffusion priors; a regression-trained, conditional supervised network)."""
    needed = MODELS.get(method, ())
    missing = [role for role in needed if not models.get(role)]
    if missing:
        raise ParameterError("models", f"method {method} needs the {' and '.join(missing)} model(s)")
    records = {role: read_prior_json(models[role]) for role in needed}
    for role, record in records.items():
        modality, how = prior_modality(record)
        if modality != "US":
            raise InputError(models[role], f"is a {modality} prior ({how}); dehazing needs ultrasound priors")
        if record.get("kind") != "slice2d":
            raise InputError(models[role], f"is a {record.get('kind')} prior; dehazing needs slice2d patch priors")
        channels = int(record.get("condition_channels", 0))
        names = record.get("training", {}).get("config", {}).get("data", {}).get("conditions")
        conditions = tuple(names) if names is not None else ("unknown",) * channels
        allowed = CONDITIONS[role]
        if conditions not in allowed or len(conditions) != channels:
            takes = " or ".join(", ".join(c) if c else "none" for c in allowed)
            raise InputError(models[role], f"has {channels} condition channels ({', '.join(conditions) or 'none'}); "
                                           f"the {role} model takes {takes}")
    if method == "diffusion" and records["tissue"]["schedule"] != records["haze"]["schedule"]:
        raise InputError(models["haze"], "has another noise schedule than the tissue prior; joint sampling needs one")


def dehaze(frame: Tensor, method: str, *, models: dict[str, Prior] | None = None, dynamic_range: float = 60.0,
           reference: float | None = None, progress: bool = False, **options: Any) -> Dehazed:
    """Dehaze one beamformed frame (n_r, n_lines) with ``method``; ``options`` are its parameters
    (defaults from the schema's ``dehaze.<method>``). Returns the B-mode image against ``reference``
    (default :func:`reference_level` of the frame) and, for the learned methods, the tissue RF (the
    diffusion method's samples, with their haze)."""
    parameters = DEHAZE_METHODS.parameters(method, "US", options)
    reference = reference_level(frame) if reference is None else reference
    run: Callable[..., Dehazed] = DEHAZE_METHODS[method].runner
    if method in MODELS:
        return run(frame, models or {}, reference=reference, dynamic_range=dynamic_range, progress=progress,
                   **parameters)
    return run(bmode(frame, reference, dynamic_range), dynamic_range, **parameters)


def dehaze_file(path: str | os.PathLike, method: str, out: str | os.PathLike, *,
                models: dict[str, str | os.PathLike] | None = None, options: dict[str, Any] | None = None,
                dynamic_range: float | None = None, device: str = "auto", progress: bool = False) -> Path:
    """Dehaze every frame of a beamformed zea file into a zea file: ``data/image`` the dehazed B-mode
    (n_frames, n_r, n_lines) dB, ``data/beamformed_data`` the tissue RF and ``medprior/haze`` the haze
    RF where the method estimates them (the mean of the posterior samples: the posterior mean RF); the
    method, its parameters and the seconds per frame in the metadata."""
    dynamic_range = defaults()["dehaze"]["dynamic_range"] if dynamic_range is None else dynamic_range
    require_float("dynamic_range", dynamic_range, minimum=0, exclusive_minimum=True)
    parameters = DEHAZE_METHODS.parameters(method, "US", options or {})
    if "seed" in parameters:
        require_seed("seed", parameters["seed"])
    models = {role: str(p) for role, p in (models or {}).items() if p}
    check_models(method, models)
    frames, rf, extras = read_beamformed(path)
    torch_device = resolve_device(device)
    loaded = {role: load_prior(models[role], torch_device) for role in MODELS.get(method, ())}
    for role, prior in loaded.items():
        if any(size > n for size, n in zip(prior.image_size, frames.shape[1:])):
            raise InputError(path, f"has frames of {tuple(frames.shape[1:])}, smaller than the {role} model's "
                                   f"{tuple(prior.image_size)} patches")
    images, tissues, hazes, seconds = [], [], [], []
    for frame in frames:
        started = time.perf_counter()
        result = dehaze(frame, method, models=loaded, dynamic_range=dynamic_range, progress=progress, **parameters)
        seconds.append(time.perf_counter() - started)
        images.append(result.bmode)
        if result.tissue is not None:
            tissues.append(result.tissue.mean(0).numpy())
        if result.haze is not None:
            hazes.append(result.haze.mean(0).numpy())
    metadata = {**rf.metadata, "dehazing": {"method": method, "parameters": parameters, "models": models,
                                            "dynamic_range": dynamic_range,
                                            "seconds_per_frame": round(float(np.mean(seconds)), 3)}}
    kept = {name: mask for name, mask in extras.items() if mask.dtype == bool}
    if hazes:
        kept["haze"] = np.stack(hazes).astype(np.float32)
    return write_zea(dataclasses.replace(rf, metadata=metadata), out, image=np.stack(images),
                     beamformed=np.stack(tissues).astype(np.float32) if tissues else None, extras=kept)
