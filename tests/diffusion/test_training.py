"""Training a prior (medprior.diffusion.training) and device selection (medprior.devices)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from medprior.devices import autocast, resolve_device
from medprior.diffusion import training
from medprior.diffusion.priors import SlicePrior2D, WaveletPrior3D
from medprior.diffusion.schedule import VPSchedule
from medprior.diffusion.training import TrainingConfig, train_prior
from medprior.errors import InputError

TINY_NETWORK = {"channels": [8, 16], "attention_levels": [False, False], "num_head_channels": 8,
                "norm_num_groups": 8}


def tiny_prior(seed: int = 0, **kwargs) -> SlicePrior2D:
    torch.manual_seed(seed)
    return SlicePrior2D((16, 16), network=TINY_NETWORK, schedule=VPSchedule(steps=100), **kwargs)


def tiny_data(count: int = 6, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, 1, 16, 16, generator=generator) * 2 - 1


def config(**overrides) -> TrainingConfig:
    options = {"steps": 12, "batch_size": 4, "learning_rate": 1e-3, "checkpoint_every": 4, "log_every": 5,
               "ema_decay": 0.9, "device": "cpu", **overrides}
    return TrainingConfig(**options)


def log_of(workdir: Path) -> list[dict]:
    return [json.loads(line) for line in (workdir / "loss.jsonl").read_text().splitlines()]


def curve(workdir: Path) -> list[tuple]:
    """The reproducible part of the loss log (timings differ between runs)."""
    return [(r["step"], r["loss"], r["lr"]) for r in log_of(workdir)]


def checkpoint(workdir: Path) -> dict:
    return torch.load(workdir / "checkpoint.pt", map_location="cpu", weights_only=True)


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_loss_decreases_on_constant_images(tmp_path: Path) -> None:
    examples = torch.full((8, 1, 16, 16), 0.5)
    result = train_prior(tiny_prior(), examples, config(steps=60, batch_size=8, learning_rate=3e-3, log_every=10,
                                                         checkpoint_every=100), tmp_path, progress=False)
    losses = [r["loss"] for r in log_of(tmp_path)]
    assert [r["step"] for r in log_of(tmp_path)] == [10, 20, 30, 40, 50, 60]
    assert losses[-1] < 0.2 * losses[0]
    assert result.steps_done == 60 and result.stopped_by == "steps" and result.device == "cpu"
    assert result.final_loss == losses[-1]
    record = log_of(tmp_path)[-1]
    assert record["lr"] == 3e-3 and record["it_per_s"] > 0
    assert record["elapsed_s"] == pytest.approx(result.wall_time_s, abs=1e-3)


def test_same_seed_same_run_other_seed_other_run(tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 5)):
        prior = tiny_prior()
        train_prior(prior, tiny_data(), config(steps=6, seed=seed), tmp_path / name, progress=False)
        runs[name] = (curve(tmp_path / name), prior.network.state_dict())
    assert runs["a"][0] == runs["b"][0] and same_state(runs["a"][1], runs["b"][1])
    assert runs["a"][0] != runs["c"][0]


def test_interrupted_and_resumed_run_is_the_uninterrupted_run(tmp_path: Path) -> None:
    data = tiny_data()
    whole = tiny_prior()
    train_prior(whole, data, config(), tmp_path / "whole", progress=False)

    # stopped cleanly between two log lines and two checkpoints, then continued
    resumed = tiny_prior()
    first = train_prior(resumed, data, config(steps=7), tmp_path / "resumed", progress=False)
    assert first.steps_done == 7 and curve(tmp_path / "resumed")[-1][0] == 7  # the partial window's line
    resumed = tiny_prior(seed=99)  # the checkpoint, not the initial weights, must decide
    second = train_prior(resumed, data, config(), tmp_path / "resumed", progress=False)

    assert curve(tmp_path / "resumed") == curve(tmp_path / "whole")
    assert [r["step"] for r in log_of(tmp_path / "whole")] == [5, 10, 12]
    assert same_state(resumed.network.state_dict(), whole.network.state_dict())
    assert same_state(checkpoint(tmp_path / "resumed")["network"], checkpoint(tmp_path / "whole")["network"])
    assert second.steps_done == 12 and second.wall_time_s >= first.wall_time_s


def test_resume_after_a_crash_drops_log_lines_past_the_checkpoint(tmp_path: Path, monkeypatch) -> None:
    data = tiny_data()
    train_prior(tiny_prior(), data, config(), tmp_path / "whole", progress=False)

    append = training._append_log

    def crash_at_step_10(path, record):
        if record["step"] == 10:
            raise KeyboardInterrupt
        append(path, record)

    monkeypatch.setattr(training, "_append_log", crash_at_step_10)
    with pytest.raises(KeyboardInterrupt):
        train_prior(tiny_prior(), data, config(), tmp_path / "crashed", progress=False)
    monkeypatch.undo()
    assert checkpoint(tmp_path / "crashed")["loop"]["step"] == 8
    with open(tmp_path / "crashed" / "loss.jsonl", "a") as stream:  # a line written after the checkpoint
        stream.write(json.dumps({"step": 9, "loss": 1.0, "lr": 1.0, "elapsed_s": 0, "it_per_s": 1}) + "\n")
    resumed = tiny_prior()
    train_prior(resumed, data, config(), tmp_path / "crashed", progress=False)
    assert curve(tmp_path / "crashed") == curve(tmp_path / "whole")
    assert same_state(checkpoint(tmp_path / "crashed")["ema"], checkpoint(tmp_path / "whole")["ema"])


def test_the_prior_gets_the_ema_weights(tmp_path: Path) -> None:
    prior = tiny_prior()
    train_prior(prior, tiny_data(), config(steps=8), tmp_path, progress=False)
    saved = checkpoint(tmp_path)
    assert same_state(prior.network.state_dict(), saved["ema"])
    assert not same_state(saved["ema"], saved["network"])
    assert not prior.training


def test_a_finished_run_called_again_changes_nothing(tmp_path: Path) -> None:
    data = tiny_data()
    train_prior(tiny_prior(), data, config(steps=7), tmp_path, progress=False)
    log = (tmp_path / "loss.jsonl").read_text()
    again = tiny_prior(seed=3)
    result = train_prior(again, data, config(steps=7), tmp_path, progress=False)
    assert result.steps_done == 7 and (tmp_path / "loss.jsonl").read_text() == log
    assert same_state(again.network.state_dict(), checkpoint(tmp_path)["ema"])


def test_time_budget_stops_early_and_checkpoints(tmp_path: Path) -> None:
    result = train_prior(tiny_prior(), tiny_data(), config(steps=100_000, time_budget_s=0.3), tmp_path,
                         progress=False)
    assert result.stopped_by == "time_budget" and 1 <= result.steps_done < 100_000
    assert result.wall_time_s >= 0.3
    assert checkpoint(tmp_path)["loop"]["step"] == result.steps_done
    assert log_of(tmp_path)[-1]["step"] == result.steps_done
    # the budget counts the total training time: a second call has nothing left to spend
    again = train_prior(tiny_prior(), tiny_data(), config(steps=100_000, time_budget_s=0.3), tmp_path,
                        progress=False)
    assert again.stopped_by == "time_budget" and again.steps_done == result.steps_done


@pytest.mark.parametrize("change", ["config", "data", "prior", "fewer_steps"])
def test_an_incompatible_checkpoint_is_refused(tmp_path: Path, change: str) -> None:
    train_prior(tiny_prior(), tiny_data(), config(steps=4), tmp_path, progress=False)
    prior, data, options = tiny_prior(), tiny_data(), config(steps=8)
    expected = {"config": "batch_size", "data": "different data", "prior": "parametrization",
                "fewer_steps": "past the 2 steps"}[change]
    if change == "config":
        options = config(steps=8, batch_size=3)
    elif change == "data":
        data = tiny_data(seed=2)
    elif change == "prior":
        prior = tiny_prior(parametrization="v")
    else:
        options = config(steps=2)
    with pytest.raises(InputError, match=expected) as error:
        train_prior(prior, data, options, tmp_path, progress=False)
    assert "checkpoint.pt" in str(error.value)


def test_a_corrupted_checkpoint_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="unreadable training checkpoint"):
        train_prior(tiny_prior(), tiny_data(), config(steps=2), tmp_path, progress=False)


def test_conditioned_wavelet_prior_trains(tmp_path: Path) -> None:
    torch.manual_seed(0)
    prior = WaveletPrior3D((8, 8, 8), condition_channels=1, network=TINY_NETWORK, schedule=VPSchedule(steps=100))
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(3, 1, 8, 8, 8, generator=generator) * 2 - 1
    result = train_prior(prior, images, config(steps=3, batch_size=2), tmp_path, conditions=-images,
                         progress=False)
    assert result.steps_done == 3 and torch.isfinite(torch.tensor(result.final_loss))
    with pytest.raises(ValueError, match="condition"):
        train_prior(prior, images, config(steps=3), tmp_path / "other", progress=False)


def test_regression_objective_learns_the_conditional_mean_in_one_evaluation(tmp_path: Path) -> None:
    """Target = -condition: the regression-trained network at x_t = 0, t = 0 predicts it (error far
    below the data's own variance, the error of predicting 0)."""
    torch.manual_seed(0)
    prior = WaveletPrior3D((8, 8, 8), condition_channels=1, network=TINY_NETWORK, schedule=VPSchedule(steps=100))
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(8, 1, 8, 8, 8, generator=generator) * 2 - 1
    options = config(steps=150, batch_size=8, learning_rate=3e-3, ema_decay=0.0, objective="regression",
                     checkpoint_every=1000, log_every=50)
    train_prior(prior, images, options, tmp_path, conditions=-images, progress=False)
    with torch.no_grad():
        latent = prior.denoiser(condition=-images)(torch.zeros(prior.latent_shape(8)), torch.zeros(8, dtype=torch.long))
        error = (prior.decode(latent) - images).pow(2).mean()
    assert error < 0.1 * images.pow(2).mean()
    with pytest.raises(ValueError, match="x0 parametrization"):
        train_prior(tiny_prior(parametrization="v"), tiny_data(), config(objective="regression"), tmp_path / "v",
                    progress=False)


def test_data_that_does_not_fit_the_prior_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected \\(N, 1, 16, 16\\)"):
        train_prior(tiny_prior(), torch.zeros(4, 1, 8, 8), config(), tmp_path, progress=False)
    with pytest.raises(ValueError, match="unconditional"):
        train_prior(tiny_prior(), tiny_data(), config(), tmp_path, conditions=tiny_data(), progress=False)


@pytest.mark.parametrize("option", [{"steps": 0}, {"batch_size": 2.5}, {"learning_rate": 0}, {"ema_decay": 1.0},
                                    {"time_budget_s": -1.0}, {"log_every": 0}, {"grad_clip": -1.0},
                                    {"objective": "contrastive"}])
def test_invalid_training_options_are_refused(option: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(option))):
        config(**option)


def test_config_from_a_yaml_section() -> None:
    assert TrainingConfig.from_mapping({"steps": 5, "seed": 3}) == TrainingConfig(steps=5, seed=3)
    with pytest.raises(ValueError, match="lr"):
        TrainingConfig.from_mapping({"steps": 5, "lr": 1e-3})


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="expected 'auto'"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    with autocast(torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")
