"""A trained prior on disk: a folder with ``prior.json`` and ``weights.safetensors``.

``prior.json`` holds everything needed to rebuild the prior (its
:meth:`~medprior.diffusion.priors.Prior.description`), how it was trained (data provenance,
data hash, steps, wall time, command, config: whatever the caller records) and the weights'
SHA-256, dtype and parameter count, and the modality of its training data (``"CT"`` or ``"MR"``;
derived for priors saved without it, see :func:`prior_modality`)::

    {"format": "medprior-prior", "format_version": 1, "medprior_version": "0.1.0",
     "created": "2025-01-01T12:00:00+00:00", "kind": "slice2d", "image_size": [64, 64], ...,
     "modality": "CT", "training": {...},
     "weights": {"file": "weights.safetensors", "sha256": "...", "dtype": "float32",
                 "parameters": 123456}}

:func:`load_prior` checks all of it before a single sample is drawn: the hash (a corrupted or
swapped weights file), the format, the prior kind, every tensor name and shape (loading the
state dict strictly), and that every weight is finite. Any problem raises an
:class:`~medprior.errors.InputError` naming the file.

Example:
    >>> save_prior(prior, "priors/ct_body", training={"steps": 2000})   # doctest: +SKIP
    >>> prior = load_prior("priors/ct_body")                             # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import medprior
from medprior.checks import nonfinite_tensors
from medprior.devices import resolve_device
from medprior.diffusion.networks import parameter_count
from medprior.diffusion.orientation import training_orientation
from medprior.diffusion.priors import PRIOR_CLASSES, Prior, prior_from_description
from medprior.errors import InputError, MedpriorError, ParameterError
from medprior.io.atomic import atomic_path, file_sha256, write_json

PRIOR_FORMAT = "medprior-prior"
PRIOR_FORMAT_VERSION = 1
PRIOR_JSON = "prior.json"
WEIGHTS_FILE = "weights.safetensors"
WEIGHTS_DTYPES = {"float32": torch.float32, "float16": torch.float16}
ENVELOPE_KEYS = ("format", "format_version", "medprior_version", "created", "training", "weights", "modality")
"""Keys of prior.json that are not part of the prior's description."""
MODALITIES = ("CT", "MR", "US", "PET/CT")
UNITS = {"CT": "HU", "MR": "arbitrary units", "US": "companded beamformed RF", "PET/CT": "label channels given SUV and HU"}
"""The intensity units of each modality's images in medprior: CT in Hounsfield units, MR magnitudes
uncalibrated (their scale depends on scanner, coils and source file), ultrasound priors' patches
mu-law companded RF over the frame's largest magnitude (:mod:`medprior.tasks.echo_frames`)."""
_GENERATOR_MODALITIES = {"brain_mri": "MR", "ct_body": "CT", "ct_head": "CT", "echo": "US", "petct": "PET/CT"}


def prior_modality(content: dict[str, Any]) -> tuple[str, str]:
    """The modality (``"CT"`` or ``"MR"``) a prior was trained on, and how that was decided.

    From its prior.json content, in this order: the ``modality`` that :func:`save_prior` records
    (priors saved since it does); the phantom generator of its training data (``training.data.phantom``
    or ``training.config.data.phantom``: ``ct_*`` is CT, ``brain_mri`` MR, ``echo`` US), which decides the shipped
    priors; else its normalisation: a fixed intensity window is CT's HU convention, per-volume
    percentiles MR's (medprior's CT priors are windowed in HU, its MR priors percentile-normalised).
    """
    recorded = content.get("modality")
    if recorded in MODALITIES:
        return recorded, "recorded in prior.json"
    training = content.get("training") if isinstance(content.get("training"), dict) else {}
    for section in (training.get("data"), (training.get("config") or {}).get("data")):
        phantom = section.get("phantom") if isinstance(section, dict) else None
        generator = phantom.get("generator") if isinstance(phantom, dict) else None
        if generator in _GENERATOR_MODALITIES:
            return _GENERATOR_MODALITIES[generator], f"trained on {generator} phantoms"
    kind = (content.get("normalization") or {}).get("kind")
    if kind == "window":
        return "CT", "normalised with a fixed intensity window (the HU convention of CT)"
    return "MR", "normalised by per-volume percentiles (the convention for MR's arbitrary units)"


def intensity_convention(content: dict[str, Any]) -> str:
    """A prior's intensity convention in words: its window and units, or its percentiles."""
    normalization = content.get("normalization") or {}
    low, high = (f"{v:g}" if isinstance(v, (int, float)) else repr(v)
                 for v in (normalization.get("low"), normalization.get("high")))
    if normalization.get("kind") == "window":
        return f"a fixed window [{low}, {high}] {UNITS[prior_modality(content)[0]]}"
    return f"per-volume percentiles {low}..{high}"


def save_prior(prior: Prior, directory: str | os.PathLike, training: dict[str, Any],
               weights_dtype: torch.dtype = torch.float32, modality: str | None = None) -> Path:
    """Write ``prior`` (its network's current weights) as a prior folder, atomically.

    Args:
        prior: the prior to save.
        directory: the folder to create; an existing one is replaced only once the new one is
            complete.
        training: provenance stored under ``"training"`` in prior.json (JSON-serialisable).
        weights_dtype: ``torch.float32``, or ``torch.float16`` for half-size files (shipped
            demo priors); loading always gives float32.
        modality: ``"CT"``, ``"MR"`` or ``"US"``, recorded in prior.json; ``None`` derives it from
            ``training`` and the normalisation (:func:`prior_modality`).

    Returns:
        ``directory`` as a Path.

    Raises:
        MedpriorError: a weight is NaN or Inf, in the network or once cast to ``weights_dtype``
            (float16 overflows above 65504); nothing is written and an earlier prior stays.
    """
    names = {dtype: name for name, dtype in WEIGHTS_DTYPES.items()}
    if weights_dtype not in names:
        raise ValueError(f"weights_dtype {weights_dtype}: expected one of {list(WEIGHTS_DTYPES.values())}")
    directory = Path(directory)
    tensors = {name: (tensor.detach().to("cpu", weights_dtype) if tensor.is_floating_point()
                      else tensor.detach().cpu()).contiguous().clone()
               for name, tensor in prior.network.state_dict().items()}
    bad = nonfinite_tensors(tensors)
    if bad:
        overflow = (f"in {names[weights_dtype]} (which holds at most {torch.finfo(weights_dtype).max:g}) "
                    if weights_dtype != torch.float32 else "")
        raise MedpriorError(f"{directory}: not written: {len(bad)} weight tensor(s) hold NaN or Inf {overflow}"
                            f"({_few(bad)}); the training diverged")
    if modality is None:
        modality = prior_modality({**prior.description(), "training": training})[0]
    elif modality not in MODALITIES:
        raise ValueError(f"modality {modality!r}: expected one of {MODALITIES}")
    with atomic_path(directory, directory=True) as temporary:
        save_file(tensors, temporary / WEIGHTS_FILE, metadata={"format": PRIOR_FORMAT})
        write_json(temporary / PRIOR_JSON, {
            "format": PRIOR_FORMAT,
            "format_version": PRIOR_FORMAT_VERSION,
            "medprior_version": medprior.__version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **prior.description(),
            "modality": modality,
            "training": training,
            "weights": {
                "file": WEIGHTS_FILE,
                "sha256": file_sha256(temporary / WEIGHTS_FILE),
                "dtype": names[weights_dtype],
                "parameters": parameter_count(prior.network),
            },
        })
    return directory


def read_prior_json(directory: str | os.PathLike) -> dict[str, Any]:
    """The checked content of ``directory/prior.json`` (format, version, kind and weights entry).

    Raises:
        InputError: a missing folder or file, invalid JSON, or a file that is not a medprior
            prior of a supported format version and a known kind.
    """
    directory = Path(directory)
    if not directory.exists():
        raise InputError(directory, "no such prior folder")
    if not directory.is_dir():
        raise InputError(directory, f"a prior is a folder with {PRIOR_JSON} and {WEIGHTS_FILE}, not a file")
    path = directory / PRIOR_JSON
    if not path.is_file():
        raise InputError(path, f"missing: a prior folder holds {PRIOR_JSON} and {WEIGHTS_FILE}")
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(path, f"unreadable or invalid JSON ({error})") from None
    if not isinstance(content, dict) or content.get("format") != PRIOR_FORMAT:
        found = content.get("format") if isinstance(content, dict) else type(content).__name__
        raise InputError(path, f"not a medprior prior (format {found!r}, expected {PRIOR_FORMAT!r})")
    if content.get("format_version") != PRIOR_FORMAT_VERSION:
        raise InputError(path, f"prior format_version {content.get('format_version')!r} is not supported by "
                               f"medprior {medprior.__version__} (it reads version {PRIOR_FORMAT_VERSION})")
    if content.get("kind") not in PRIOR_CLASSES:
        raise InputError(path, f"unknown prior kind {content.get('kind')!r}: expected one of {sorted(PRIOR_CLASSES)}")
    weights = content.get("weights")
    if (not isinstance(weights, dict) or not isinstance(weights.get("file"), str)
            or not isinstance(weights.get("sha256"), str) or weights.get("dtype") not in WEIGHTS_DTYPES):
        raise InputError(path, 'invalid "weights" entry: expected {"file", "sha256", "dtype": '
                               f'{"|".join(WEIGHTS_DTYPES)}, "parameters"}}')
    if Path(weights["file"]).name != weights["file"]:
        raise InputError(path, f"weights file {weights['file']!r} must be a plain file name in the prior folder")
    if "modality" in content and content["modality"] not in MODALITIES:
        raise InputError(path, f"modality: is {content['modality']!r}; expected one of {list(MODALITIES)}")
    return content


def require_schedule_steps(description: dict[str, Any], steps: int) -> None:
    """Refuse more sampling ``steps`` than the schedule of the prior ``description`` (its prior.json) has."""
    most = description.get("schedule", {}).get("steps")
    if most is not None and not 1 <= steps <= most:
        raise ParameterError("steps", f"sampling steps must be in 1..{most} (the prior's schedule), got {steps}")


def load_prior(directory: str | os.PathLike, device: str | torch.device = "auto", *,
               content: dict[str, Any] | None = None) -> Prior:
    """The prior saved in ``directory``, float32, in eval mode, on ``device``.

    ``content``: its prior.json as :func:`read_prior_json` returned it, when the caller has read it
    already (the file is then not read again).

    Raises:
        InputError: anything wrong with the folder (see :func:`read_prior_json`), a missing
            weights file, a SHA-256 that differs from the one recorded (a corrupted or swapped
            file), or weights whose tensor names or shapes do not match the described network.
    """
    directory = Path(directory)
    content = read_prior_json(directory) if content is None else content
    json_path = directory / PRIOR_JSON
    weights_path = directory / content["weights"]["file"]
    if not weights_path.is_file():
        raise InputError(weights_path, f"missing: the weights file named in {PRIOR_JSON}")
    sha256 = file_sha256(weights_path)
    if sha256 != content["weights"]["sha256"]:
        raise InputError(weights_path, f"sha256 {sha256[:16]}... differs from {content['weights']['sha256'][:16]}... "
                                       f"recorded in {PRIOR_JSON}: the file is corrupted or belongs to another prior")
    description = {key: value for key, value in content.items() if key not in ENVELOPE_KEYS}
    try:
        prior = prior_from_description(description)
    except (TypeError, ValueError, KeyError, AttributeError, AssertionError) as error:
        raise InputError(json_path, f"cannot build the prior it describes ({type(error).__name__}: {error})") from None
    try:
        tensors = load_file(weights_path, device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise InputError(weights_path, f"unreadable safetensors file ({error})") from None
    _check_state(prior.network.state_dict(), tensors, weights_path)
    bad = nonfinite_tensors(tensors)
    if bad:
        raise InputError(weights_path, f"{len(bad)} weight tensor(s) hold NaN or Inf ({_few(bad)}): the prior's "
                                       "training diverged; it cannot be used")
    floats = {name: tensor.float() if tensor.is_floating_point() else tensor for name, tensor in tensors.items()}
    prior.network.load_state_dict(floats, strict=True)
    prior.record, prior.orientation = content, training_orientation(content.get("training") or {})
    prior.folder = str(directory)
    return prior.to(resolve_device(device)).eval()


def _few(names: list[str]) -> str:
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")


def _check_state(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], path: Path) -> None:
    """Raise an InputError listing (a few) missing, unexpected and wrongly shaped tensors."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = [f"{name} {tuple(found[name].shape)} (expected {tuple(expected[name].shape)})"
              for name in sorted(set(expected) & set(found)) if found[name].shape != expected[name].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensor(s): {_few(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s): {_few(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} tensor(s) of the wrong shape: {_few(shapes)}")
    if problems:
        raise InputError(path, "weights do not match the network described in prior.json: " + "; ".join(problems))
