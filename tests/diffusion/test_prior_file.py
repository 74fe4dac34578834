"""Prior folders on disk (medprior.diffusion.prior_file): round trips and every way they break."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import medprior
from medprior.diffusion.networks import parameter_count
from medprior.diffusion.prior_file import load_prior, read_prior_json, save_prior
from medprior.diffusion.priors import SlicePrior2D, WaveletPrior3D
from medprior.diffusion.schedule import VPSchedule
from medprior.errors import InputError
from medprior.io.atomic import file_sha256

TINY_NETWORK = {"channels": [8, 16], "attention_levels": [False, False], "num_head_channels": 8,
                "norm_num_groups": 8}
TRAINING = {"steps": 0, "data": {"sha256": "0" * 64}, "command": "pytest"}


def tiny_prior(seed: int = 0, **network) -> SlicePrior2D:
    torch.manual_seed(seed)
    return SlicePrior2D((16, 16), network={**TINY_NETWORK, **network}, schedule=VPSchedule(steps=100))


def outputs(prior, shape=(2, 1, 16, 16)) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=generator)
    with torch.no_grad():
        return prior.network(x, torch.tensor([3, 70]))


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return save_prior(tiny_prior(), tmp_path / "prior", TRAINING)


def edit_json(folder: Path, **changes) -> None:
    path = folder / "prior.json"
    content = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            content.pop(key)
        else:
            content[key] = value
    path.write_text(json.dumps(content))


def test_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    prior = tiny_prior()
    folder = save_prior(prior, tmp_path / "prior", TRAINING)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prior"]  # no temporary left behind
    loaded = load_prior(folder, device="cpu")
    assert isinstance(loaded, SlicePrior2D) and not loaded.training
    assert loaded.description() == prior.description()
    assert torch.equal(outputs(loaded), outputs(prior.eval()))

    content = read_prior_json(folder)
    assert content["format"] == "medprior-prior" and content["format_version"] == 1
    assert content["medprior_version"] == medprior.__version__ and content["training"] == TRAINING
    assert content["created"].endswith("+00:00")
    assert content["weights"] == {"file": "weights.safetensors", "sha256": file_sha256(folder / "weights.safetensors"),
                                  "dtype": "float32", "parameters": parameter_count(prior.network)}


def test_saving_again_replaces_the_folder(saved: Path) -> None:
    other = tiny_prior(seed=1)
    save_prior(other, saved, {"steps": 1})
    assert read_prior_json(saved)["training"] == {"steps": 1}
    assert torch.equal(outputs(load_prior(saved, "cpu")), outputs(other.eval()))


def test_wavelet_prior_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    prior = WaveletPrior3D((8, 8, 8), condition_channels=1, network=TINY_NETWORK, schedule=VPSchedule(steps=100))
    loaded = load_prior(save_prior(prior, tmp_path / "prior", TRAINING), "cpu")
    assert isinstance(loaded, WaveletPrior3D) and loaded.description() == prior.description()
    assert torch.equal(outputs(loaded, (2, 16, 4, 4, 4)), outputs(prior.eval(), (2, 16, 4, 4, 4)))


def test_float16_weights_are_half_the_size_and_load_as_float32(tmp_path: Path) -> None:
    prior = tiny_prior()
    full = save_prior(prior, tmp_path / "full", TRAINING)
    half = save_prior(prior, tmp_path / "half", TRAINING, weights_dtype=torch.float16)
    ratio = (half / "weights.safetensors").stat().st_size / (full / "weights.safetensors").stat().st_size
    assert 0.45 < ratio < 0.55
    assert read_prior_json(half)["weights"]["dtype"] == "float16"
    loaded = load_prior(half, "cpu")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    expected = outputs(prior.eval())
    torch.testing.assert_close(outputs(loaded), expected, rtol=0, atol=2e-3 * expected.abs().max().item())
    with pytest.raises(ValueError, match="weights_dtype"):
        save_prior(prior, tmp_path / "bf16", TRAINING, weights_dtype=torch.bfloat16)


def test_a_flipped_byte_in_the_weights_is_caught(saved: Path) -> None:
    weights = saved / "weights.safetensors"
    content = bytearray(weights.read_bytes())
    content[-100] ^= 0x01
    weights.write_bytes(bytes(content))
    with pytest.raises(InputError, match="sha256 .* differs .* corrupted or belongs to another prior") as error:
        load_prior(saved, "cpu")
    assert error.value.source == str(weights)


def test_weights_swapped_in_from_another_prior_are_caught(saved: Path, tmp_path: Path) -> None:
    other = save_prior(tiny_prior(channels=[8, 24]), tmp_path / "other", TRAINING)
    shutil.copy(other / "weights.safetensors", saved / "weights.safetensors")
    with pytest.raises(InputError, match="sha256"):
        load_prior(saved, "cpu")
    # even with the hash "fixed", the shapes give it away
    swapped_sha256 = file_sha256(other / "weights.safetensors")
    edit_json(saved, weights={**read_prior_json(saved)["weights"], "sha256": swapped_sha256})
    with pytest.raises(InputError, match=r"tensor\(s\) of the wrong shape: .*\(expected") as error:
        load_prior(saved, "cpu")
    assert "weights.safetensors" in str(error.value)


def test_an_edited_architecture_is_caught(saved: Path) -> None:
    content = read_prior_json(saved)
    edit_json(saved, network={**content["network"], "channels": [8, 16, 16], "attention_levels": [False] * 3})
    with pytest.raises(InputError, match=r"\d+ missing tensor\(s\): down_blocks\.1\.downsampler.*of the wrong shape: up_blocks"):
        load_prior(saved, "cpu")
    edit_json(saved, network={**content["network"], "num_res_blocks": 2})
    with pytest.raises(InputError, match=r"\d+ missing tensor\(s\): down_blocks"):
        load_prior(saved, "cpu")


def test_a_shape_edited_in_the_weights_file_is_caught(saved: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = saved / "weights.safetensors"
    tensors = load_file(weights)
    name = next(n for n, t in tensors.items() if t.ndim == 4)
    tensors[name] = tensors[name][:, :-1].contiguous()
    del tensors[next(n for n in tensors if n.endswith("bias"))]
    tensors["extra.weight"] = torch.zeros(3)
    save_file(tensors, weights)
    edit_json(saved, weights={**read_prior_json(saved)["weights"], "sha256": file_sha256(weights)})
    with pytest.raises(InputError) as error:
        load_prior(saved, "cpu")
    message = str(error.value)
    assert "1 missing tensor(s)" in message and "1 unexpected tensor(s): extra.weight" in message
    assert f"1 tensor(s) of the wrong shape: {name}" in message


def test_garbage_with_a_matching_hash_is_caught(saved: Path) -> None:
    weights = saved / "weights.safetensors"
    weights.write_bytes(b"\x00" * 64)
    edit_json(saved, weights={**read_prior_json(saved)["weights"], "sha256": file_sha256(weights)})
    with pytest.raises(InputError, match="unreadable safetensors file"):
        load_prior(saved, "cpu")


@pytest.mark.parametrize(("breakage", "culprit", "message"), [
    ("no_folder", "", "no such prior folder"),
    ("a_file", "", "not a file"),
    ("no_json", "prior.json", "missing"),
    ("no_weights", "weights.safetensors", "missing"),
    ("bad_json", "prior.json", "invalid JSON"),
    ("json_list", "prior.json", "not a medprior prior"),
    ("format", "prior.json", "not a medprior prior"),
    ("format_version", "prior.json", "format_version 2 is not supported"),
    ("kind", "prior.json", "unknown prior kind 'volume4d'"),
    ("no_weights_entry", "prior.json", 'invalid "weights" entry'),
    ("weights_path", "prior.json", "plain file name"),
    ("extra_key", "prior.json", "cannot build the prior"),
    ("missing_key", "prior.json", "cannot build the prior"),
    ("bad_schedule", "prior.json", "cannot build the prior"),
])
def test_a_broken_prior_folder_is_an_input_error(saved: Path, breakage: str, culprit: str, message: str) -> None:
    folder = saved
    if breakage == "no_folder":
        folder = saved.parent / "nowhere"
    elif breakage == "a_file":
        folder = saved / "prior.json"
    elif breakage == "no_json":
        (saved / "prior.json").unlink()
    elif breakage == "no_weights":
        (saved / "weights.safetensors").unlink()
    elif breakage == "bad_json":
        (saved / "prior.json").write_text('{"format": "medprior-prior",')
    elif breakage == "json_list":
        (saved / "prior.json").write_text("[1, 2]")
    elif breakage == "format":
        edit_json(saved, format="something-else")
    elif breakage == "format_version":
        edit_json(saved, format_version=2)
    elif breakage == "kind":
        edit_json(saved, kind="volume4d")
    elif breakage == "no_weights_entry":
        edit_json(saved, weights=None)
    elif breakage == "weights_path":
        edit_json(saved, weights={**read_prior_json(saved)["weights"], "file": "../elsewhere.safetensors"})
    elif breakage == "extra_key":
        edit_json(saved, colour="blue")
    elif breakage == "missing_key":
        edit_json(saved, schedule=None)
    elif breakage == "bad_schedule":
        edit_json(saved, schedule={"kind": "quadratic", "steps": 100})
    with pytest.raises(InputError, match=message) as error:
        load_prior(folder, "cpu")
    if culprit:
        assert error.value.source == str(saved / culprit)
    else:
        assert error.value.source == str(folder)
