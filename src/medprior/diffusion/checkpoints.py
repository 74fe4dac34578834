"""The files of a training run in its workdir: the checkpoint (``checkpoint.pt``) and the loss log (``loss.jsonl``).

:func:`write_checkpoint` writes a checkpoint atomically; :func:`read_checkpoint` reads one back,
refusing a file that is not a medprior training checkpoint of this format version, and
:func:`check_resumable` refuses one that belongs to another prior, other data or a
trajectory-changing config (:data:`RESUME_KEYS`). :func:`append_log` adds a line to the loss log
and :func:`truncate_log` drops the lines past a step when a run resumes. What the files hold and
how a resumed run uses them is described in :mod:`medprior.diffusion.training`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from medprior.errors import InputError
from medprior.io.atomic import atomic_path

if TYPE_CHECKING:
    from torch import nn

    from medprior.diffusion.training import TrainingConfig

CHECKPOINT_FILE = "checkpoint.pt"
LOSS_LOG_FILE = "loss.jsonl"
CHECKPOINT_FORMAT = "medprior-training-checkpoint"
CHECKPOINT_VERSION = 1
RESUME_KEYS = ("batch_size", "learning_rate", "weight_decay", "ema_decay", "grad_clip", "seed", "log_every",
               "objective", "label_loss")
"""Config fields that change the trajectory or the log: a checkpoint resumes only if they match.
``steps``, ``time_budget_s``, ``checkpoint_every`` and ``device`` may change between runs."""


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The content of a training checkpoint (on the CPU); InputError if it is unreadable or not one."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure to read means the same to the user
        raise InputError(path, f"unreadable training checkpoint ({type(error).__name__}: {error}); "
                               "delete it to start training afresh") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise InputError(path, "not a medprior training checkpoint")
    if checkpoint.get("format_version") != CHECKPOINT_VERSION:
        raise InputError(path, f"training checkpoint format_version {checkpoint.get('format_version')!r} "
                               f"is not supported (expected {CHECKPOINT_VERSION})")
    return checkpoint


def check_resumable(checkpoint: dict[str, Any], path: Path, config: TrainingConfig,
                    description: dict[str, Any], data_sha256: str) -> None:
    """Refuse (InputError) to resume ``config``'s run of the prior ``description`` on the data
    ``data_sha256`` from ``checkpoint``, read from ``path``, if it was another run's."""
    advice = "use another workdir, or delete the checkpoint to start afresh"
    saved = checkpoint["config"]
    # a checkpoint older than a key was trained with its default
    defaults = {field.name: field.default for field in dataclasses.fields(config)}
    changed = [f"{key}={saved.get(key, defaults[key])!r} (now {getattr(config, key)!r})"
               for key in RESUME_KEYS if saved.get(key, defaults[key]) != getattr(config, key)]
    if changed:
        raise InputError(path, f"cannot resume: the checkpoint was trained with {', '.join(changed)}; {advice}")
    if checkpoint["prior"] != description:
        keys = sorted(k for k in set(description) | set(checkpoint["prior"])
                      if description.get(k) != checkpoint["prior"].get(k))
        raise InputError(path, f"cannot resume: the checkpoint belongs to a different prior "
                               f"(differs in {', '.join(keys)}); {advice}")
    if checkpoint["data_sha256"] != data_sha256:
        raise InputError(path, f"cannot resume: the checkpoint was trained on different data "
                               f"(sha256 {checkpoint['data_sha256'][:12]}..., now {data_sha256[:12]}...); {advice}")
    if checkpoint["loop"]["step"] > config.steps:
        raise InputError(path, f"cannot resume: the checkpoint is at step {checkpoint['loop']['step']}, "
                               f"past the {config.steps} steps asked for; {advice}")


def write_checkpoint(path: Path, network: nn.Module, ema: Any, optimizer: torch.optim.Optimizer, draws: Any,
                     state: Any, config: TrainingConfig, description: dict[str, Any], data_sha256: str) -> None:
    """Write a checkpoint atomically: the weights, the EMA (``ema.state_dict()``), the optimizer, the
    random draws (``draws.state_dict()``), the loop ``state`` (a dataclass), the config, the prior
    description and the data's SHA-256."""
    content = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "network": network.state_dict(),
        "ema": ema.state_dict(),
        "optimizer": optimizer.state_dict(),
        "draws": draws.state_dict(),
        "loop": asdict(state),
        "config": config.to_dict(),
        "prior": description,
        "data_sha256": data_sha256,
    }
    with atomic_path(path) as temporary:
        torch.save(content, temporary)


def append_log(path: Path, record: dict[str, Any]) -> None:
    """Add ``record`` to the loss log as one JSON line."""
    with open(path, "a") as stream:
        stream.write(json.dumps(record) + "\n")


def truncate_log(path: Path, through_step: int) -> None:
    """Keep the lines of ``loss.jsonl`` up to ``through_step`` (none for 0), atomically."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            step = json.loads(line)["step"]
        except (ValueError, KeyError, TypeError):
            continue
        if step <= through_step:
            kept.append(line + "\n")
    with atomic_path(path) as temporary:
        temporary.write_text("".join(kept))
