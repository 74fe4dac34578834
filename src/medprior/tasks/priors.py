"""The prior stage: prior configs, training a prior from one, sampling, and the sample check.

- config: :func:`load_prior_config` reads and validates a prior config (``configs/priors/<name>.yaml``,
  schema ``prior.schema.yaml``, with ``base`` files), :func:`build_prior` makes its untrained prior
  and :func:`data_files` lists the files it reads;
- training: :func:`train_from_config` assembles the training examples
  (:mod:`medprior.tasks.datasets`), trains (:func:`medprior.diffusion.training.train_prior`) and
  writes the prior directory with its provenance;
- sampling: :func:`sample_prior` (NIfTI and figure) and :func:`draw_samples`, with the checks of
  the numbers and memory before any work (:func:`check_sampling`, :func:`require_sampling_memory`);
- check: :func:`check_prior` compares samples with held-out data by the image statistics of
  :func:`medprior.diffusion.sample_statistics.image_statistics`.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch

from medprior.challenges.brats import BRATS_CONTRASTS
from medprior.checks import require_finite_output
from medprior.checks import (available_memory_bytes, require_float, require_int, require_memory, require_schema,
                             require_seed)
from medprior.config import merged, read_yaml_mapping, validate_config
from medprior.devices import resolve_device
from medprior.diffusion import sample
from medprior.diffusion.networks import ACTIVATION_BYTES_PER_PIXEL_CHANNEL
from medprior.diffusion.normalization import Normalization
from medprior.diffusion.prior_file import load_prior, read_prior_json, require_schedule_steps, save_prior
from medprior.diffusion.priors import Prior, prior_from_description
from medprior.diffusion.training import TrainingConfig, train_prior
from medprior.errors import InputError
from medprior.figures import sample_grid
from medprior.io import atomic_path, write_json, write_sidecar
from medprior.diffusion.sample_statistics import image_statistics
from medprior.tasks.prior_geometry import training_geometry
from medprior.tasks.datasets import (ANY_CONTRAST, ECHO_GENERATOR, ECHO_PHANTOM_KEYS, PETCT_GENERATOR,
                                     condition_contrasts, examples, expand_patterns, tensor_sha256)
from medprior.tasks.echo_frames import ECHO_CONDITIONS


def _with_bases(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A prior config file's mapping merged over its ``base`` file's (recursively; relative to the file)."""
    if path.resolve() in seen:
        raise InputError(path, "config key base: the chain of base files loops back to this file")
    content = read_yaml_mapping(path)
    base = content.pop("base", None)
    if base is None:
        return content
    if not isinstance(base, str):
        raise InputError(path, f"config key base: expected a file name, got {base!r}")
    return merged(_with_bases(path.parent / base, (*seen, path.resolve())), content)


def load_prior_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a prior config (defaults filled in); InputError names the bad key.

    A config may start from another: ``base: <file>`` (relative to the config) takes that file's
    settings, and this file's keys replace them (mappings key by key, lists and values whole).
    """
    config = validate_config(_with_bases(Path(path)), Path(path), schema_name="prior")
    data, kind = config["data"], config["kind"]
    if ("phantom" in data) == ("files" in data):
        raise InputError(path, "config key data: give exactly one of `phantom` and `files`")
    phantom = data.get("phantom", {})
    echo_keys = [key for key in ECHO_PHANTOM_KEYS if key in phantom]   # the schema fills them for echo only
    if echo_keys and phantom["generator"] != ECHO_GENERATOR:
        raise InputError(path, f"config key data.phantom.{echo_keys[0]}: only the echo generator reads "
                               + ", ".join(ECHO_PHANTOM_KEYS))
    expected = 2 if kind == "slice2d" else 3
    if len(config["image_size"]) != expected:
        raise InputError(path, f"config key image_size: a {kind} prior needs {expected} sizes")
    generator = phantom.get("generator")
    if (generator == PETCT_GENERATOR) != (kind == "volume3d" and "phantom" in data):
        raise InputError(path, "config key kind: volume3d models are the PET/CT segmentation models (data.phantom."
                               "generator petct, or data.files naming HECKTOR folders), and those are volume3d")
    segmenter = config["network"].get("architecture", "diffusion_unet") != "diffusion_unet"
    if segmenter != (config["training"]["objective"] == "segmentation"):
        raise InputError(path, "config key training.objective: segmentation trains the segresnet / unet "
                               "architectures, and they train only with it")
    if kind == "volume3d":
        if data["conditions"] or data["contrast"] == ANY_CONTRAST:
            raise InputError(path, "config key data: PET/CT models are conditioned on PET and CT; give no conditions")
        return config
    echo = generator == ECHO_GENERATOR
    if data["conditions"] and not (kind == "wavelet3d" or echo):
        raise InputError(path, "config key data.conditions: only wavelet3d priors and echo data take conditions")
    if echo and (kind != "slice2d" or set(data["conditions"]) - set(ECHO_CONDITIONS)):
        raise InputError(path, "config key data: echo data need a slice2d prior and take only the conditions "
                               + " and ".join(f"`{c}`" for c in ECHO_CONDITIONS))
    if not echo and set(data["conditions"]) - set(BRATS_CONTRASTS):
        raise InputError(path, "config key data.conditions: brain data take only the contrasts "
                               + ", ".join(BRATS_CONTRASTS) + " as conditions")
    if data["contrast"] == ANY_CONTRAST and (echo or data["conditions"]):
        raise InputError(path, "config key data.contrast: `any` is for brain data without data.conditions (wavelet3d: "
                               "the four contrasts are the conditions; slice2d: every contrast's slices are examples)")
    config.setdefault("parametrization", "x0" if kind == "wavelet3d" else "eps")
    return config


def build_prior(config: dict[str, Any]) -> Prior:
    """A randomly initialised prior as the config describes it."""
    description = {
        "kind": config["kind"],
        "image_size": config["image_size"],
        "channels": 2 if config["kind"] == "volume3d" else 1,   # PET/CT: the GTVp and GTVn label channels
        "condition_channels": len(condition_contrasts(config)),
        "network": config["network"],
        "schedule": config["schedule"],
        "parametrization": config["parametrization"],
        "normalization": config["normalization"],
    }
    if config["kind"] == "slice2d":
        description["axis"] = config["axis"]
    try:
        return prior_from_description(description)
    except ValueError as error:
        raise InputError(config.get("source"), str(error)) from None


def data_files(config_path: str | os.PathLike) -> list[Path]:
    """The files and folders a prior config reads (its ``data.files``, none for phantom data, and the
    ``init`` prior), so a command can keep its outputs off them."""
    config = load_prior_config(config_path)
    files = config["data"].get("files") or {}
    start = [Path(config["init"])] if "init" in config else []
    return [*expand_patterns([*files.get("train", []), *files.get("holdout", [])], config_path), *start]


def _start_from(prior: Prior, directory: str, config_path: str | os.PathLike) -> dict[str, str]:
    """Load the weights of the prior folder ``directory`` into ``prior`` (fine-tuning starts from them);
    InputError naming the config when that prior is not built as this one. Returns its provenance."""
    content = read_prior_json(directory)
    start = load_prior(directory, device="cpu", content=content)
    ours, theirs = prior.description(), start.description()
    differ = sorted(key for key in ours if ours[key] != theirs.get(key))
    if differ:
        raise InputError(config_path, f"config key init: the prior {directory} differs from this config in "
                                      f"{', '.join(differ)}; training can start only from a prior built the same way")
    prior.network.load_state_dict(start.network.state_dict())
    return {"prior": str(directory), "sha256": content["weights"]["sha256"]}


def train_from_config(config_path: str | os.PathLike, out: str | os.PathLike, *, workdir: str | os.PathLike | None = None,
                      time_budget_s: float | None = None, device: str | None = None, progress: bool = True) -> Path:
    """Train the prior a config describes and write the prior directory ``out``.

    Checkpoints and the loss log go to ``workdir`` (default ``<out>.work``), so an interrupted
    run resumes where it stopped; the prior directory appears only when training is complete.
    """
    time_budget_s = require_schema("time_budget_s", time_budget_s, "training.time_budget_s", "prior")
    config = load_prior_config(config_path)
    config["source"] = str(config_path)
    training = dict(config["training"])
    if time_budget_s is not None:
        training["time_budget_s"] = time_budget_s
    if device is not None:
        training["device"] = device
    data, names, orientation = examples(config, "train")
    torch.manual_seed(training["seed"])  # the initial weights, so a run is reproducible end to end
    prior = build_prior(config)
    start = _start_from(prior, config["init"], config_path) if "init" in config else None
    channels = prior.channels
    targets, conditions = data[:, :channels], (data[:, channels:] if data.shape[1] > channels else None)
    workdir = Path(workdir) if workdir is not None else Path(f"{out}.work")
    started = time.perf_counter()
    result = train_prior(prior, targets, TrainingConfig.from_mapping(training), workdir, conditions=conditions, progress=progress)
    provenance = {
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "config": {k: v for k, v in config.items() if k != "source"},
        "config_file": str(config_path),
        **({"init": start} if start else {}),
        "orientation": orientation,
        **({"geometry": geometry} if (geometry := training_geometry(config)) else {}),
        "data": {"volumes": names, "examples": int(data.shape[0]), "sha256": tensor_sha256(data),
                 **({"phantom": config["data"]["phantom"]} if "phantom" in config["data"] else
                    {"files": config["data"]["files"]})},
        "steps": result.steps_done,
        "stopped_by": result.stopped_by,
        "final_loss": result.final_loss,
        "wall_time_s": round(result.wall_time_s, 1),
        "session_time_s": round(time.perf_counter() - started, 1),
        "device": str(result.device),
    }
    weights_dtype = torch.float16 if config["weights_dtype"] == "float16" else torch.float32
    return save_prior(prior, out, provenance, weights_dtype=weights_dtype,
                      modality="PET/CT" if config["kind"] == "volume3d" else None)


def sample_prior(prior_dir: str | os.PathLike, out: str | os.PathLike, *, n: int, steps: int, sampler: str = "dpmpp",
                 eta: float = 0.0, seed: int = 0, batch_size: int = 16, device: str = "auto",
                 figure: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Draw ``n`` samples from an unconditional prior and write them as NIfTI (data units).

    slice2d: an (H, W, n) stack, one sample per k; wavelet3d: an (D, H, W, n) 4D image.
    Percentile-normalised priors write [0, 1]. ``figure`` writes a PNG grid of the samples.
    The numbers are checked first (ParameterError naming the parameter), and a request whose
    samples or activations would not fit in the free memory is refused before the prior is loaded.
    """
    n, steps, sampler, eta, seed, batch_size = check_sampling(n=n, steps=steps, sampler=sampler, eta=eta, seed=seed,
                                                            batch_size=batch_size)
    device = resolve_device(device)
    require_sampling_memory(read_prior_json(prior_dir), n, steps, batch_size, device)
    prior = load_prior(prior_dir, device=device)
    if prior.condition_channels:
        raise InputError(prior_dir, f"this prior needs {prior.condition_channels} condition volumes; "
                         "`sample` draws from unconditional priors")
    images = draw_samples(prior, n, steps=steps, sampler=sampler, eta=eta, seed=seed, batch_size=batch_size,
                          progress=progress)
    written_range = _written_range(prior.normalization)
    data = prior.normalization.invert(images[:, 0], written_range).cpu().numpy().astype(np.float32)
    require_finite_output(out, data, "the samples")  # a diverged prior or sampler: nothing is written
    with atomic_path(out) as temporary:  # (H, W, n) or (D, H, W, n): one sample per last index
        nib.save(nib.Nifti1Image(np.moveaxis(data, 0, -1), np.eye(4)), str(temporary))
    write_sidecar(out, config={"prior": str(prior_dir), "prior_sha256": read_prior_json(prior_dir)["weights"]["sha256"],
                               "n": n, "steps": steps, "sampler": sampler, "eta": eta,
                               "units": _units(prior.normalization)}, seeds={"sampling": seed})
    if figure is not None:
        low, high = prior.normalization.invert(torch.tensor([-1.0, 1.0]), written_range).tolist()
        sample_grid(_planes(data), figure, window=(low, high),
                    title=f"{Path(prior_dir).name}: {n} samples, {sampler}, {steps} steps")
    return Path(out)


# (wavelet3d networks run at half the resolution per axis: ACTIVATION_BYTES_PER_PIXEL_CHANNEL counts network inputs)
_SAMPLE_COPIES = 6  # drawn batches, their concatenation, the inverted normalisation, float32 numpy, NIfTI


def check_sampling(*, n: int, steps: int, sampler: str, eta: float, seed: int, batch_size: int) -> tuple:
    """The numbers of :func:`sample_prior`, checked before any work with the prior schema's ranges
    (``check.samples``, ``check.steps``, ``check.sampler``, ``check.seed``; ``eta`` in [0, 1],
    ``batch_size`` >= 1): a ParameterError names the parameter. Returns them typed, in order."""
    return (require_schema("n", n, "check.samples", "prior"), require_schema("steps", steps, "check.steps", "prior"),
            require_schema("sampler", sampler, "check.sampler", "prior"),
            require_float("eta", eta, minimum=0, maximum=1), require_seed("seed", seed),
            require_int("batch_size", batch_size, minimum=1))


def sampling_bytes(description: dict[str, Any], n: int, batch_size: int) -> tuple[float, float]:
    """Estimated memory (bytes) of drawing ``n`` samples from the prior ``description`` (its
    prior.json): the samples on the host, and the network activations of one batch."""
    pixels = float(np.prod(description.get("image_size", [1]), dtype=np.float64))
    samples = _SAMPLE_COPIES * 4.0 * n * description.get("channels", 1) * pixels
    coarser = 8 if description.get("kind") == "wavelet3d" else 1
    activations = (ACTIVATION_BYTES_PER_PIXEL_CHANNEL * min(n, batch_size) * pixels / coarser
                   * sum(description.get("network", {}).get("channels", [1])))
    return samples, activations


def require_sampling_memory(description: dict[str, Any], n: int, steps: int, batch_size: int,
                            device: torch.device) -> None:
    """Refuse ``steps`` beyond the prior's schedule, and ``n`` samples (or a batch) that would not fit
    in the free memory of the host (or of the GPU), from the prior's prior.json, before it is loaded."""
    require_schedule_steps(description, steps)
    samples, activations = sampling_bytes(description, n, batch_size)
    size = " x ".join(str(v) for v in description.get("image_size", []))
    if device.type == "cuda":
        require_memory("n", samples, f"{n} samples of {size}")
        require_memory("batch_size", activations, f"a batch of {min(n, batch_size)} samples of {size}",
                       free=torch.cuda.mem_get_info(device)[0], where=f"free memory on {device}")
    elif samples + activations > available_memory_bytes() and activations > samples:
        require_memory("batch_size", samples + activations, f"a batch of {min(n, batch_size)} samples of {size}")
    else:
        require_memory("n", samples + activations, f"{n} samples of {size}")


def _written_range(normalization: Normalization) -> tuple[float, float] | None:
    """What [-1, 1] maps to in written samples: the window itself, or [0, 1] for percentile priors."""
    return None if normalization.kind == "window" else (0.0, 1.0)


def _units(normalization: Normalization) -> str:
    return "window units (HU for CT)" if normalization.kind == "window" else "normalised [0, 1]"


def _planes(images: np.ndarray | torch.Tensor) -> np.ndarray:
    """(n, I, J) slices stay; (n, I, J, K) volumes become their n*K axial slices (n*K, I, J)."""
    images = np.asarray(images)
    return images if images.ndim == 3 else np.moveaxis(images, 3, 1).reshape(-1, *images.shape[1:3])


@torch.no_grad()
def draw_samples(prior: Prior, n: int, *, steps: int, sampler: str = "dpmpp", eta: float = 0.0, seed: int = 0,
                 conditions: torch.Tensor | None = None, batch_size: int = 16, progress: bool = False) -> torch.Tensor:
    """``n`` normalised samples (n, C, *image_size) in [-1, 1], drawn in batches.

    ``conditions`` (n, Cc, *image_size): normalised condition images, one per sample, for a
    conditional prior.
    """
    n, batch_size = require_int("n", n, minimum=1), require_int("batch_size", batch_size, minimum=1)
    device = next(prior.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for start in range(0, n, batch_size):
        count = min(batch_size, n - start)
        condition = None if conditions is None else conditions[start:start + count].to(device)
        denoiser = prior.denoiser(condition=condition)
        x_T = torch.randn(prior.latent_shape(count), generator=generator).to(device)
        latents = sample(denoiser, x_T.shape, steps, sampler=sampler, eta=eta, generator=generator, x_T=x_T,
                         progress=progress)
        batches.append(prior.decode(latents).clamp(-1, 1).cpu())
    return torch.cat(batches)


def check_prior(prior_dir: str | os.PathLike, config_path: str | os.PathLike, out: str | os.PathLike, *,
                figure: str | os.PathLike | None = None, device: str = "auto", progress: bool = True) -> dict[str, Any]:
    """Samples of a prior against its config's held-out data, with two references (JSON at ``out``).

    Rows: ``samples`` (the prior's, ``check`` settings of the config), ``training`` (as many
    training examples, drawn at random: the best a perfect prior could do) and ``white_noise``
    (Gaussian noise with the held-out mean and std: what no structure at all scores).
    """
    config = load_prior_config(config_path)
    config["source"] = str(config_path)
    check = config["check"]
    prior = load_prior(prior_dir, device=resolve_device(device))
    holdout, holdout_names, _ = examples(config, "holdout")
    training, _, _ = examples(config, "train")
    if training.shape[2:] != holdout.shape[2:]:  # augmented training keeps finer source slices: the plain view
        training = torch.nn.functional.interpolate(training, size=tuple(holdout.shape[2:]), mode="area")
    generator = torch.Generator().manual_seed(check["seed"])
    started = time.perf_counter()
    conditions = holdout[: check["samples"], 1:] if prior.condition_channels else None
    count = check["samples"] if conditions is None else conditions.shape[0]
    samples = draw_samples(prior, count, steps=check["steps"], sampler=check["sampler"], seed=check["seed"],
                           conditions=conditions, progress=progress)
    require_finite_output(out, samples, "the prior's samples")  # a diverged prior: no report of NaN statistics
    sampling_s = time.perf_counter() - started
    reference = torch.from_numpy(_planes(holdout[:, 0].numpy()))
    chosen = torch.randperm(training.shape[0], generator=generator)[:count]
    noise = reference.mean() + reference.std() * torch.randn(reference.shape, generator=generator)
    written_range = _written_range(prior.normalization)
    low, high = prior.normalization.invert(torch.tensor([-1.0, 1.0]), written_range).tolist()
    scale = (high - low) / 2
    rows = {"samples": _planes(samples[:, 0].numpy()), "training": _planes(training[chosen, 0].numpy()),
            "white_noise": noise.clamp(-1, 1).numpy()}
    report = {name: image_statistics(torch.from_numpy(np.ascontiguousarray(images)), reference, scale)
              for name, images in rows.items()}
    report["settings"] = {**check, "holdout_volumes": holdout_names, "holdout_images": int(reference.shape[0]),
                          "sampling_s": round(sampling_s, 2), "units": _units(prior.normalization)}
    write_json(out, report)
    if figure is not None:
        shown = prior.normalization.invert(torch.from_numpy(rows["samples"]), written_range)
        held = prior.normalization.invert(reference[torch.linspace(0, reference.shape[0] - 1, 8).long()],
                                          written_range)
        shown = shown[torch.linspace(0, shown.shape[0] - 1, min(shown.shape[0], 32)).long()]
        sample_grid(shown.numpy(), figure, window=(low, high), reference=held.numpy(),
                    title=f"{Path(prior_dir).name}: samples ({check['sampler']}, {check['steps']} steps) "
                          "and held-out slices (bottom row)")
    return report
