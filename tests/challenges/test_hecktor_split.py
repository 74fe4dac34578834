"""Case-level HECKTOR splits by seed: a partition that numpy's permutation decides, centres kept
whole, folders every command reads, and training from them equal to training from the phantoms."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from medprior.challenges import find_hecktor_cases, write_hecktor_case
from medprior.challenges.hecktor_split import split_cases, split_hecktor_folder
from medprior.cli import main
from medprior.diffusion.prior_file import read_prior_json
from medprior.errors import InputError, ParameterError
from medprior.phantoms import petct_head_neck
from medprior.tasks.data import petct_grids
from medprior.tasks.datasets import examples
from medprior.tasks.priors import load_prior_config

CT_SIZE = (32, 32, 24)
IDS = [f"{center}-{n:03d}" for center in ("CHUM", "CHUP", "HGJ", "MDA") for n in range(1, 6)]


def test_split_is_the_seeded_permutation_of_the_sorted_ids():
    split = split_cases(IDS, seed=5, test=0.2, holdout=0.1)
    order = [sorted(IDS)[i] for i in np.random.default_rng(5).permutation(len(IDS))]
    assert split == {"train": sorted(order[6:]), "holdout": sorted(order[4:6]), "test": sorted(order[:4])}
    assert split_cases(list(reversed(IDS)), seed=5, test=0.2, holdout=0.1) == split
    assert split_cases(IDS, seed=6, test=0.2, holdout=0.1) != split


def test_centre_split_keeps_each_centre_whole():
    split = split_cases(IDS, seed=0, test=0.25, holdout=0.25, by="center")
    centres = {name: {c.split("-")[0] for c in ids} for name, ids in split.items()}
    assert [len(centres[n]) for n in ("train", "holdout", "test")] == [2, 1, 1]
    assert all(len(ids) == 5 for name, ids in split.items() if name != "train")
    assert set().union(*centres.values()) == {"CHUM", "CHUP", "HGJ", "MDA"}
    assert not (centres["train"] & centres["test"]) and not (centres["train"] & centres["holdout"])


def test_a_nonzero_fraction_takes_at_least_one_and_zero_takes_none():
    split = split_cases(IDS[:3], seed=0, test=0.01, holdout=0.0)
    assert [len(split[n]) for n in ("train", "holdout", "test")] == [2, 0, 1]


@pytest.mark.parametrize("kwargs, name", [({"test": 1.0, "holdout": 0.0}, "test"),
                                          ({"test": -0.1, "holdout": 0.0}, "test"),
                                          ({"test": 0.6, "holdout": 0.4}, "holdout"),
                                          ({"test": 0.1, "holdout": 0.1, "by": "center"}, "test")])
def test_bad_fractions_name_the_parameter(kwargs, name):
    with pytest.raises(ParameterError) as error:
        split_cases(IDS[:5], seed=0, **kwargs)
    assert error.value.source == name


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("hecktor")
    for seed in range(3000, 3005):
        raw = petct_head_neck(seed, **petct_grids(CT_SIZE))
        write_hecktor_case(raw.ct, raw.pet, raw.label, root, f"SIM-{seed - 3000:03d}")
    return root


def test_split_folders_hold_the_cases_byte_for_byte(cases, tmp_path):
    split = split_hecktor_folder(cases, tmp_path / "split", seed=1, test=0.2, holdout=0.2)
    assert [len(split[n]) for n in ("train", "holdout", "test")] == [3, 1, 1]
    originals = find_hecktor_cases(cases)
    for name, ids in split.items():
        found = find_hecktor_cases(tmp_path / "split" / name)
        assert list(found) == ids
        for case_id, files in found.items():
            assert all(files[k].read_bytes() == originals[case_id][k].read_bytes() for k in ("ct", "pet", "label"))
    recorded = json.loads((tmp_path / "split/split.json").read_text())
    assert {k: recorded[k] for k in split} == split and recorded["seed"] == 1


def test_unlabelled_cases_cannot_be_split(cases, tmp_path):
    (tmp_path / "cases").mkdir()
    for path in (cases / "imagesTr").iterdir():
        (tmp_path / "cases" / path.name).write_bytes(path.read_bytes())
    with pytest.raises(InputError, match="has no label"):
        split_hecktor_folder(tmp_path / "cases", tmp_path / "split", seed=0)
    assert not (tmp_path / "split").exists()


def _config(tmp_path, data):
    config = {"name": "petct_files", "kind": "volume3d", "image_size": [8, 8, 8], "data": data,
              "segmentation": {"spacing_mm": 15.0}, "normalization": {"kind": "window", "low": -1, "high": 1},
              "parametrization": "x0", "network": {"channels": [8, 16], "attention_levels": [False, False],
                                                   "norm_num_groups": 8, "num_head_channels": 8},
              "training": {"steps": 2, "batch_size": 2, "checkpoint_every": 2, "device": "cpu", "label_loss": 1.0}}
    path = tmp_path / f"{len(list(tmp_path.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_training_from_split_folders_sees_what_training_from_the_seeds_sees(cases, tmp_path):
    split = split_hecktor_folder(cases, tmp_path / "split", seed=3, test=0.2, holdout=0.2)
    from_files = _config(tmp_path, {"files": {"train": [str(tmp_path / "split/train")],
                                              "holdout": [str(tmp_path / "split/holdout")]}})
    seeds = {name: [int(c.split("-")[1]) + 3000 for c in ids] for name, ids in split.items()}
    from_seeds = _config(tmp_path, {"phantom": {"generator": "petct", "seeds": seeds["train"],
                                                "holdout_seeds": seeds["holdout"], "size": list(CT_SIZE)}})
    for name in ("train", "holdout"):
        file_examples, names, _ = examples(load_prior_config(from_files), name)
        seed_examples, _, _ = examples(load_prior_config(from_seeds), name)
        assert names == split[name]
        assert torch.equal(file_examples[:, :2], seed_examples[:, :2])  # the label channels, exactly
        assert torch.allclose(file_examples, seed_examples, atol=1e-5)
    assert main(["train-prior", "--config", str(from_files), "--out", str(tmp_path / "model"), "-q"]) == 0
    recorded = read_prior_json(tmp_path / "model")
    assert recorded["training"]["data"]["volumes"] == split["train"] and recorded["modality"] == "PET/CT"


def test_a_case_in_two_training_folders_is_refused(cases, tmp_path):
    config = _config(tmp_path, {"files": {"train": [str(cases), str(cases)]}})
    with pytest.raises(InputError, match="is also in"):
        examples(load_prior_config(config), "train")


def test_hecktor_split_command(cases, tmp_path, capsys):
    out = tmp_path / "split"
    assert main(["hecktor-split", "--cases", str(cases), "--out", str(out), "--seed", "2", "--by", "center"]) == 2
    assert "--test" in capsys.readouterr().err and not out.exists()   # one centre (SIM): nothing left to train on
    assert main(["hecktor-split", "--cases", str(cases), "--out", str(out), "--seed", "2", "--test", "0.4"]) == 0
    assert "2 train, 1 holdout, 2 test" in capsys.readouterr().out
    assert [len(find_hecktor_cases(out / n)) for n in ("train", "holdout", "test")] == [2, 1, 2]
