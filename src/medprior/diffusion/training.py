"""Training a diffusion prior: denoising regression with AdamW, EMA weights and exact resume.

This module holds the training options (:class:`TrainingConfig`), the loop (:func:`train_prior`,
whose steps are the methods of ``_Run``), the random draws, the EMA and the data checks; the
files of a run (checkpoint and loss log) are written and read by :mod:`medprior.diffusion.checkpoints`.

One step (DDPM's objective, in the prior's parametrization):

    x      = a batch of examples (B, C, *image_size), normalised to [-1, 1]
    z0     = prior.encode(x)                       (diffusion space)
    t      ~ U{0, ..., T-1},  noise ~ N(0, I)      (same shape as z0)
    z_t    = alpha_t z0 + sigma_t noise
    input  = z_t, or cat(z_t, prior.encode(condition)) on dim 1 for a conditional prior
    loss   = mean((network(input, t) - target)^2),  target = eps, x0 or v

Objective ``regression`` trains the same network as a deterministic baseline instead: input
``cat(0, prior.encode(condition))`` at ``t = 0``, target ``z0``, the same loss (needs the x0
parametrization, so that :meth:`~medprior.diffusion.priors.Prior.denoiser` at ``x_t = 0, t = 0``
returns the prediction). Objective ``segmentation`` trains a segmentation network (a ``segresnet`` or
``unet`` architecture, :mod:`medprior.diffusion.networks`) on the same input: its output are class
logits (B, C + 1, ...), the target the class of each voxel (0 where every label channel of ``z0`` is
negative, else 1 + the index of the largest), and the loss MONAI's Dice + cross-entropy (DiceCELoss,
softmax, background included). Everything else below applies unchanged.

``label_loss`` (a weight, default 0) adds, for a diffusion model of label channels in [-1, 1] (the
PET/CT segmentation model), a soft Dice + binary cross-entropy loss of the x0 estimate's foreground
probabilities ``(x0_hat + 1) / 2`` against the label, as Diff-UNet (Xing et al. 2023) does: the plain
MSE is dominated by the background, and small structures (lymph nodes of a few voxels) are learned late.

AdamW with a constant learning rate, gradient-norm clipping, and an exponential moving average
(EMA) of the weights whose decay warms up as ``min(ema_decay, (1 + k) / (10 + k))`` after ``k``
steps, so short runs are not dominated by the random initialisation. The prior handed back
holds the EMA weights. bf16 autocast on CUDA only; the loss is computed in float32.

Reproducibility: every random draw (a fresh permutation of the examples per epoch, batches
taken from it in order, possibly across an epoch boundary; t; noise) comes from one CPU
:class:`torch.Generator` seeded with ``config.seed``, drawn in that order each step. A run
therefore depends only on the seed, the data and the prior's initial weights (build the prior
under ``torch.manual_seed`` to fix those).

Files in ``workdir``:

- ``checkpoint.pt``: written atomically every ``checkpoint_every`` steps and when training
  stops. It holds the raw and EMA weights, the optimizer state, the generator state and the
  rest of the current epoch's permutation, the step, the elapsed training time, the unflushed
  loss window, the config, the prior description and a SHA-256 of the data. When it exists,
  :func:`train_prior` resumes from it, and on the CPU the resumed run is bitwise the run that
  was never interrupted (losses, log and weights). On CUDA it restores the same state but is
  not bitwise: some kernels there (cuDNN weight gradients, the backward of nearest upsampling)
  sum with atomics in a varying order. A checkpoint from a different prior, data or
  trajectory-changing config (:data:`RESUME_KEYS`) is refused with an :class:`InputError`.
  Reading, writing and the resume checks are in :mod:`medprior.diffusion.checkpoints`.
- ``loss.jsonl``: one JSON object per ``log_every`` steps, ``{"step", "loss", "lr",
  "elapsed_s", "it_per_s"}``, where ``loss`` is the mean loss over the steps since the previous
  line (the window ``(step - log_every, step]``), ``elapsed_s`` the training time so far
  (resumed parts included) and ``it_per_s`` the speed over that window. When training stops
  between two multiples of ``log_every``, a last line covers the partial window; a resumed run
  drops it (and any line past the checkpoint) and logs the full window in its place, so the log
  of an interrupted and resumed run has the same steps and losses as an uninterrupted one.

Example:
    >>> prior = SlicePrior2D((32, 32))                              # doctest: +SKIP
    >>> result = train_prior(prior, slices, TrainingConfig(steps=2000), "work/prior")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss, DiceLoss
from torch import Tensor, nn

from medprior.checks import nonfinite_tensors
from medprior.devices import autocast, resolve_device
from medprior.diffusion import parametrization as param
from medprior.diffusion.augmentation import SliceAugmentation
from medprior.diffusion.checkpoints import (CHECKPOINT_FILE, LOSS_LOG_FILE, RESUME_KEYS, check_resumable,
                                            read_checkpoint, truncate_log, write_checkpoint)
from medprior.diffusion.checkpoints import append_log as _append_log  # a name here, so a test can intercept it
from medprior.diffusion.priors import Prior
from medprior.diffusion.schedule import broadcast
from medprior.errors import DivergenceError, InputError
from medprior.progress import progress_bar

__all__ = ["CHECKPOINT_FILE", "LOSS_LOG_FILE", "OBJECTIVES", "RESUME_KEYS", "TrainingConfig", "TrainingResult",
           "train_prior"]

OBJECTIVES = ("denoising", "regression", "segmentation")


@dataclass
class TrainingConfig:
    """How to train a prior (the ``training:`` section of a run config).

    Args:
        steps: total optimizer steps (a resumed run continues up to this many).
        batch_size: examples per step.
        learning_rate: AdamW learning rate (constant).
        weight_decay: AdamW decoupled weight decay.
        ema_decay: decay of the EMA of the weights, in [0, 1); 0 keeps the raw weights.
        grad_clip: maximum global gradient norm; ``None`` or 0 disables clipping.
        seed: seed of the one generator every random draw comes from.
        time_budget_s: stop after the step at which the total training time (resumed parts
            included) reaches this many seconds; ``None`` for no limit.
        checkpoint_every: steps between checkpoints (one is also written when training stops).
        log_every: steps per line of ``loss.jsonl``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        objective: ``"denoising"`` (a diffusion prior), ``"regression"`` or ``"segmentation"``
            (the deterministic baselines described in the module docstring).
        label_loss: weight of the Dice + BCE loss of the x0 estimate of label channels (module
            docstring); 0 for none.
        augmentation: :class:`~medprior.diffusion.augmentation.SliceAugmentation` settings (a slice2d
            prior's examples are then kept at its ``source_size`` and each batch is a random view of
            them at ``image_size``); None for the examples as they are.
    """

    steps: int
    batch_size: int = 16
    learning_rate: float = 2e-4
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    grad_clip: float | None = 1.0
    seed: int = 0
    time_budget_s: float | None = None
    checkpoint_every: int = 200
    log_every: int = 10
    device: str = "auto"
    objective: str = "denoising"
    label_loss: float = 0.0
    augmentation: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"training {name} must be an integer >= 1, got {value!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"training learning_rate must be > 0, got {self.learning_rate!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"training weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"training ema_decay must lie in [0, 1), got {self.ema_decay!r}")
        if self.grad_clip is not None and not self.grad_clip >= 0:
            raise ValueError(f"training grad_clip must be >= 0 or null, got {self.grad_clip!r}")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ValueError(f"training time_budget_s must be > 0 or null, got {self.time_budget_s!r}")
        if not self.label_loss >= 0:
            raise ValueError(f"training label_loss must be >= 0, got {self.label_loss!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"training objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.augmentation is not None:
            SliceAugmentation.from_mapping(self.augmentation)  # checks the values
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"training seed must be an integer, got {self.seed!r}")

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any]) -> TrainingConfig:
        """Build from a config's ``training:`` mapping; unknown keys raise ValueError naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ValueError(f"unknown training option(s) {unknown}: expected some of {sorted(known)}")
        return cls(**section)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainingResult:
    """What :func:`train_prior` did.

    Attributes:
        steps_done: optimizer steps the prior has been trained for (resumed parts included).
        wall_time_s: total training time in seconds (resumed parts included).
        final_loss: mean loss of the last logged window (NaN if no step was ever taken).
        stopped_by: ``"steps"`` (reached ``config.steps``) or ``"time_budget"``.
        device: the device it trained on, e.g. ``"cpu"`` or ``"cuda"``.
    """

    steps_done: int
    wall_time_s: float
    final_loss: float
    stopped_by: str
    device: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_prior(prior: Prior, examples: Tensor, config: TrainingConfig, workdir: str | os.PathLike,
                conditions: Tensor | None = None, progress: bool = True) -> TrainingResult:
    """Train ``prior.network`` in place (resuming from ``workdir/checkpoint.pt`` if present).

    Args:
        prior: the prior to train; its network's current weights are the starting point of a
            fresh run. On return it holds the EMA weights, is in eval mode and on the device.
        examples: float tensor (N, C, *image_size) in CPU memory, normalised to [-1, 1]
            (``*augmentation.source_size`` with an augmentation).
        config: the training options.
        workdir: folder for ``checkpoint.pt`` and ``loss.jsonl`` (created if missing).
        conditions: (N, Cc, *image_size) condition images of a conditional prior, the i-th
            belonging to the i-th example; ``None`` for an unconditional prior.
        progress: show a tqdm progress bar.

    Raises:
        ValueError: examples or conditions that do not fit the prior.
        InputError: a checkpoint in ``workdir`` that cannot be resumed by this call, or training
            data holding NaN or Inf.
        DivergenceError: the loss or a weight became NaN or Inf (checked at every ``log_every``
            and ``checkpoint_every`` step and at the end). Nothing non-finite is written: the
            checkpoint in ``workdir`` is the last good one (if any), the log ends before the bad
            window, and the prior's weights must not be used.
    """
    run = _Run(prior, examples, config, workdir, conditions)
    if run.state.step >= config.steps:
        return run.result("steps")
    if config.time_budget_s is not None and run.state.elapsed_s >= config.time_budget_s:
        return run.result("time_budget")
    return run.train(progress)


class _Run:
    """One call of :func:`train_prior`, in named steps: set-up (or resume from the checkpoint),
    the loop of optimisation steps, the closing of a logging window, a checkpoint, and the result.

    Every step keeps the order of the random draws and floating-point operations of one loop, so a
    resumed run is bitwise the uninterrupted one on the CPU.
    """

    def __init__(self, prior: Prior, examples: Tensor, config: TrainingConfig, workdir: str | os.PathLike,
                 conditions: Tensor | None) -> None:
        """Set up the run: check the data, build the optimizer, the draws and the EMA, and resume from
        ``workdir/checkpoint.pt`` if it exists."""
        self.device = device = resolve_device(config.device)
        self.augment = SliceAugmentation.from_mapping(config.augmentation) if config.augmentation else None
        if self.augment is not None and (prior.kind != "slice2d" or conditions is not None):
            raise ValueError("augmentation applies to unconditional slice2d priors")
        size = self.augment.source_size if self.augment is not None else prior.image_size
        self.examples, self.conditions = _check_data(prior, examples, conditions, size)
        self.regression = config.objective in ("regression", "segmentation")
        if config.objective == "regression" and prior.parametrization != "x0":
            raise ValueError(f"the regression objective needs the x0 parametrization, the prior has {prior.parametrization!r}")
        segmenter = prior.network_spec.get("architecture", "diffusion_unet") != "diffusion_unet"
        if segmenter != (config.objective == "segmentation"):
            raise ValueError("the segmentation objective trains segresnet / unet architectures, and only it does")
        self.segmentation_loss = DiceCELoss(softmax=True, to_onehot_y=True) if segmenter else None
        if config.label_loss and (segmenter or self.regression):
            raise ValueError("label_loss applies to diffusion models of label channels (the denoising objective)")
        self.label_dice = DiceLoss(batch=True) if config.label_loss else None
        self.workdir = workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_path, self.log_path = workdir / CHECKPOINT_FILE, workdir / LOSS_LOG_FILE
        self.prior, self.config = prior, config

        self.network = network = prior.network
        prior.to(device)
        self.optimizer = torch.optim.AdamW(network.parameters(), lr=config.learning_rate,
                                           weight_decay=config.weight_decay)
        self.draws = _Draws(self.examples.shape[0], config.seed)
        self.state = _LoopState()
        self.description = _json_normalised(prior.description())
        self.data_sha256 = _data_sha256(self.examples, self.conditions)
        ema_state = self._resume() if self.checkpoint_path.exists() else None
        self.ema = _Ema(network, config.ema_decay, ema_state)
        self.last_checkpoint = self.state.step  # the step of the checkpoint on disk, if there is one

    def _resume(self) -> dict[str, Tensor]:
        """Load the checkpoint into the network, optimizer, draws and loop state; its EMA weights."""
        checkpoint = read_checkpoint(self.checkpoint_path)
        check_resumable(checkpoint, self.checkpoint_path, self.config, self.description, self.data_sha256)
        bad = nonfinite_tensors(checkpoint["network"]) + nonfinite_tensors(checkpoint["ema"])
        if bad:
            raise InputError(self.checkpoint_path, f"cannot resume: the checkpoint holds non-finite weights "
                                                   f"({_few(bad)}); delete it to start afresh")
        self.network.load_state_dict(checkpoint["network"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.draws.load_state_dict(checkpoint["draws"])
        self.state = _LoopState(**checkpoint["loop"])
        return checkpoint["ema"]

    def diverged(self, what: str) -> DivergenceError:
        config = self.config
        kept = (f"the last good checkpoint (step {self.last_checkpoint}) is kept in {self.checkpoint_path}"
                if self.checkpoint_path.exists() else f"no checkpoint had been written yet in {self.workdir}")
        return DivergenceError(f"training diverged at step {self.state.step}: {what} became non-finite (NaN or Inf); "
                               f"{kept} and no prior is written; lower training.learning_rate "
                               f"(now {config.learning_rate:g}){'' if config.grad_clip else ' or set training.grad_clip'}")

    def check_weights(self) -> None:
        bad = nonfinite_tensors(self.network.state_dict())
        bad_ema = nonfinite_tensors(self.ema.state_dict())
        if bad or bad_ema:
            raise self.diverged(f"the weights ({_few(bad)})" if bad else f"the EMA weights ({_few(bad_ema)})")

    def result(self, stopped_by: str) -> TrainingResult:
        """Hand the EMA weights to the prior (in eval mode) and say what was done."""
        bad = nonfinite_tensors(self.ema.state_dict())
        if bad:
            raise self.diverged(f"the EMA weights ({_few(bad)})")
        self.ema.copy_to(self.network)
        self.prior.eval()
        return TrainingResult(steps_done=self.state.step, wall_time_s=self.state.elapsed_s,
                              final_loss=self.state.last_loss, stopped_by=stopped_by, device=str(self.device))

    def train(self, progress: bool) -> TrainingResult:
        """Take optimisation steps up to ``config.steps`` or the time budget, logging and checkpointing."""
        config, state = self.config, self.state
        truncate_log(self.log_path, state.step - state.step % config.log_every)
        stopped_by = "steps"
        self.started = time.perf_counter()
        self.base_elapsed = state.elapsed_s
        self.window_started = self.started
        self.window_sum = torch.tensor(state.window_sum, dtype=torch.float64, device=self.device)
        self.bar = progress_bar(total=config.steps, initial=state.step, show=progress, desc="training", unit="step",
                                dynamic_ncols=True)
        self.network.train()
        try:
            while state.step < config.steps:
                now = self.step()
                out_of_time = (config.time_budget_s is not None and state.elapsed_s >= config.time_budget_s
                               and state.step < config.steps)
                finished = out_of_time or state.step >= config.steps
                if state.step % config.log_every == 0 or finished:
                    self.log_window(now)
                if state.step % config.checkpoint_every == 0 or finished:
                    self.write_checkpoint()
                if out_of_time:
                    stopped_by = "time_budget"
                    break
        finally:
            self.bar.close()
        assert self.last_checkpoint == state.step
        return self.result(stopped_by)

    def step(self) -> float:
        """One optimisation step (draws: the batch, then t, then noise) and the EMA update; the time
        (``time.perf_counter()``) it ended."""
        config, state, prior, device = self.config, self.state, self.prior, self.device
        schedule = prior.schedule
        indices = self.draws.indices(config.batch_size)
        batch = self.examples[indices]
        if self.augment is not None:
            batch = self.augment(batch, prior.image_size, self.draws.generator)
        z0 = prior.encode(batch.to(device, non_blocking=True))
        if self.regression:
            t = torch.zeros(config.batch_size, dtype=torch.long)
            z_t, target = torch.zeros_like(z0), z0
        else:
            t = torch.randint(0, schedule.steps, (config.batch_size,), generator=self.draws.generator)
            noise = torch.randn(z0.shape, generator=self.draws.generator, dtype=z0.dtype).to(device, non_blocking=True)
            z_t = schedule.add_noise(z0, noise, t)
            alpha, sigma = broadcast(schedule.alpha(t), z0), broadcast(schedule.sigma(t), z0)
            target = param.target(z0, noise, alpha, sigma, prior.parametrization)
        noisy = z_t
        if self.conditions is not None:
            z_t = torch.cat([z_t, prior.encode(self.conditions[indices].to(device, non_blocking=True))], dim=1)
        with autocast(device):
            output = self.network(z_t, t.to(device))
        if self.segmentation_loss is not None:
            loss = self.segmentation_loss(output.float(), label_classes(z0)[:, None])
        else:
            loss = F.mse_loss(output.float(), target.float())
        if self.label_dice is not None:
            x0 = param.to_x0(output.float(), noisy, alpha, sigma, prior.parametrization)
            estimate, truth = ((x0 + 1) / 2).clamp(1e-4, 1 - 1e-4), ((z0 + 1) / 2).clamp(0, 1)
            loss = loss + config.label_loss * (self.label_dice(estimate, truth) + F.binary_cross_entropy(estimate, truth))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip:
            nn.utils.clip_grad_norm_(self.network.parameters(), config.grad_clip)
        self.optimizer.step()
        state.step += 1
        self.ema.update(self.network, state.step)
        self.window_sum += loss.detach().double()
        state.window_count += 1
        now = time.perf_counter()
        state.elapsed_s = self.base_elapsed + (now - self.started)
        self.bar.update(1)
        return now

    def log_window(self, now: float) -> None:
        """Write the loss log's line for the steps since the last one; close the window at a multiple
        of ``log_every`` (a partial window, when training stops, stays open for a resume)."""
        config, state = self.config, self.state
        state.window_sum = float(self.window_sum)
        if not math.isfinite(state.window_sum):
            raise self.diverged(f"the loss of steps {state.step - state.window_count + 1}..{state.step}")
        state.last_loss = state.window_sum / state.window_count
        speed = state.window_count / max(now - self.window_started, 1e-9)
        _append_log(self.log_path, {"step": state.step, "loss": state.last_loss,
                                    "lr": self.optimizer.param_groups[0]["lr"],
                                    "elapsed_s": round(state.elapsed_s, 4), "it_per_s": round(speed, 3)})
        self.bar.set_postfix(loss=f"{state.last_loss:.4g}", it_per_s=f"{speed:.3g}")
        if state.step % config.log_every == 0:
            self.window_sum.zero_()
            state.window_sum, state.window_count = 0.0, 0
            self.window_started = now

    def write_checkpoint(self) -> None:
        """Write the checkpoint, only with a finite loss window and finite weights: it stays the last good one."""
        state = self.state
        state.window_sum = float(self.window_sum)
        if not math.isfinite(state.window_sum):
            raise self.diverged(f"the loss of steps {state.step - state.window_count + 1}..{state.step}")
        self.check_weights()
        write_checkpoint(self.checkpoint_path, self.network, self.ema, self.optimizer, self.draws, state,
                         self.config, self.description, self.data_sha256)
        self.last_checkpoint = state.step




@dataclass
class _LoopState:
    """The scalar part of a run's state, saved in the checkpoint."""

    step: int = 0
    elapsed_s: float = 0.0
    window_sum: float = 0.0  # sum of the losses logged in no line yet (the open window)
    window_count: int = 0
    last_loss: float = math.nan  # mean of the last logged window


class _Draws:
    """All randomness of a run: example order (a permutation per epoch), then t, then noise."""

    def __init__(self, count: int, seed: int) -> None:
        self.count = count
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.empty(0, dtype=torch.long)  # rest of the current epoch's permutation

    def indices(self, batch: int) -> Tensor:
        """The next ``batch`` example indices, drawing a new permutation when an epoch ends."""
        parts = []
        while batch > 0:
            if self.order.numel() == 0:
                self.order = torch.randperm(self.count, generator=self.generator)
            parts.append(self.order[:batch])
            self.order = self.order[batch:]
            batch -= parts[-1].numel()
        return torch.cat(parts)

    def state_dict(self) -> dict[str, Tensor]:
        return {"generator": self.generator.get_state(), "order": self.order.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.generator.set_state(state["generator"])
        self.order = state["order"].clone()


class _Ema:
    """Exponential moving average of a network's floating-point state (parameters and buffers)."""

    def __init__(self, network: nn.Module, decay: float, state: dict[str, Tensor] | None = None) -> None:
        self.decay = decay
        live = network.state_dict()
        if state is None:
            self.shadow = {name: tensor.detach().clone() for name, tensor in live.items()}
        else:
            device = next(iter(live.values())).device
            self.shadow = {name: state[name].to(device) for name in live}
        self._pairs = [(self.shadow[name], live[name]) for name in live]

    @torch.no_grad()
    def update(self, network: nn.Module, step: int) -> None:
        """Blend in the weights after ``step`` optimizer steps (decay warm-up as in the module doc)."""
        decay = min(self.decay, (1 + step) / (10 + step))
        floats = [(s, w) for s, w in self._pairs if s.is_floating_point()]
        if floats:
            torch._foreach_lerp_([s for s, _ in floats], [w for _, w in floats], 1 - decay)
        for shadow, live in self._pairs:
            if not shadow.is_floating_point():
                shadow.copy_(live)

    def copy_to(self, network: nn.Module) -> None:
        network.load_state_dict(self.shadow)

    def state_dict(self) -> dict[str, Tensor]:
        return self.shadow


def label_classes(channels: Tensor) -> Tensor:
    """Label channels (B, C, ...) in [-1, 1] -> classes (B, ...) long: 0 where all are negative, else
    1 + the index of the largest channel."""
    best = channels.argmax(1)
    return torch.where(channels.amax(1) > 0, best + 1, torch.zeros_like(best))


def _few(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _check_data(prior: Prior, examples: Tensor, conditions: Tensor | None,
                size: tuple[int, ...]) -> tuple[Tensor, Tensor | None]:
    """The examples (N, C, *size) and conditions (N, Cc, *image_size) checked, float32 on the CPU."""
    expected = (prior.channels, *size)
    if not torch.is_tensor(examples) or not examples.is_floating_point():
        raise ValueError("training examples must be a floating-point tensor")
    if examples.ndim != 2 + len(prior.image_size) or tuple(examples.shape[1:]) != expected:
        raise ValueError(f"training examples of shape {tuple(examples.shape)} do not fit this {prior.kind} "
                         f"prior: expected (N, {', '.join(map(str, expected))})")
    if examples.shape[0] == 0:
        raise ValueError("no training examples")
    for name, tensor in (("examples", examples), ("conditions", conditions)):
        if tensor is not None and torch.is_tensor(tensor) and tensor.is_floating_point():
            bad = int(tensor.numel() - torch.isfinite(tensor).sum())
            if bad:
                raise InputError(None, f"training {name}: {bad} non-finite values (NaN or Inf)")
    if prior.condition_channels == 0:
        if conditions is not None:
            raise ValueError("this prior is unconditional but conditions were given")
        return examples.detach().cpu().float().contiguous(), None
    expected = (prior.condition_channels, *prior.image_size)
    if conditions is None:
        raise ValueError(f"this prior takes {prior.condition_channels} condition channel(s): give conditions")
    if not torch.is_tensor(conditions) or not conditions.is_floating_point():
        raise ValueError("training conditions must be a floating-point tensor")
    if tuple(conditions.shape) != (examples.shape[0], *expected):
        raise ValueError(f"training conditions of shape {tuple(conditions.shape)} do not fit: expected "
                         f"({examples.shape[0]}, {', '.join(map(str, expected))})")
    return examples.detach().cpu().float().contiguous(), conditions.detach().cpu().float().contiguous()


def _data_sha256(examples: Tensor, conditions: Tensor | None) -> str:
    """SHA-256 of the training data (shapes and float32 bytes), so a resume on other data is refused."""
    digest = hashlib.sha256()
    for tensor in (examples, conditions):
        if tensor is None:
            digest.update(b"none")
            continue
        array = tensor.numpy()
        digest.update(repr(array.shape).encode())
        digest.update(array.reshape(-1).view("uint8").data)
    return digest.hexdigest()


def _json_normalised(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))
