"""The one schema: defaults filled in, invalid values rejected with the key named."""

from __future__ import annotations

import pytest
import yaml

from medprior.config import defaults, load_config, validate_config
from medprior.errors import InputError
from medprior.methods import RECON_METHODS


def test_defaults_fill_every_level():
    config = defaults()
    assert config["data"]["ct"] == {"cases": 2, "seed": 100, "anatomy": "body", "size": [256, 256, 128]}
    assert config["data"]["brain"]["size"] == [240, 240, 155]
    assert config["data"]["petct"]["center"] == "SIM"


def test_partial_config_keeps_given_values(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"ct": {"cases": 5}}}))
    config = load_config(path)
    assert config["data"]["ct"]["cases"] == 5
    assert config["data"]["ct"]["seed"] == 100


def test_demo_config_is_valid_and_matches_schema_defaults():
    assert load_config("configs/default.yaml") == defaults()


@pytest.mark.parametrize("bad, key", [
    ({"data": {"ct": {"cases": -1}}}, "data.ct.cases"),
    ({"data": {"ct": {"size": [64, 64]}}}, "data.ct.size"),
    ({"data": {"petct": {"center": "sim"}}}, "data.petct.center"),
    ({"data": {"mri": {}}}, "data"),
])
def test_invalid_values_name_the_key(bad, key, tmp_path):
    with pytest.raises(InputError, match=rf"config key {key}\b"):
        validate_config(bad, tmp_path / "c.yaml")


def test_unreadable_yaml_is_an_input_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("data: [unclosed\n")
    with pytest.raises(InputError, match="broken.yaml"):
        load_config(path)


def test_diffusion_parameters_take_the_mri_overrides_for_mri_only():
    config = defaults()
    diffusion = config["recon"]["diffusion"]
    assert RECON_METHODS.parameters("dds", "CT", config=config) == diffusion["dds"]
    mri = RECON_METHODS.parameters("dds", "MR", config=config)
    assert mri == {**diffusion["dds"], **diffusion["mri_overrides"]["dds"]} and mri != diffusion["dds"]
    assert RECON_METHODS.parameters("dds", "MR", {"lam": 0.5}, config)["lam"] == 0.5  # given over the override
    diffusion["mri_overrides"]["dds"]["step_size"] = 1.0
    with pytest.raises(InputError, match=r"mri_overrides\.dds\.step_size: dds has no parameter 'step_size'"):
        RECON_METHODS.parameters("dds", "MR", config=config)