"""The one configuration schema shared by the Snakemake workflow and the ``medprior`` command.

The schema (``config.schema.yaml``, shipped inside the package and linked from
``workflows/schemas/``) holds every default. Snakemake validates ``configs/*.yaml`` against it;
:func:`load_config` and :func:`defaults` give the CLI the same values.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterator
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from medprior.errors import InputError


@cache
def schema(name: str = "config") -> dict[str, Any]:
    """A JSON schema shipped with the package as a dict: ``config`` (workflow) or ``prior``."""
    return yaml.safe_load(files("medprior").joinpath(f"{name}.schema.yaml").read_text())


def _filling_validator() -> type:
    """A Draft 2020-12 validator that fills in each property's ``default`` before descending."""
    base = jsonschema.Draft202012Validator
    check_properties = base.VALIDATORS["properties"]

    def properties(validator, subschemas, instance, subschema):
        if isinstance(instance, dict):
            for name, property_schema in subschemas.items():
                if "default" in property_schema:
                    instance.setdefault(name, _copy(property_schema["default"]))
        yield from check_properties(validator, subschemas, instance, subschema)

    return jsonschema.validators.extend(base, {"properties": properties})


def _copy(value: Any) -> Any:
    return yaml.safe_load(yaml.safe_dump(value))


def validate_config(config: dict[str, Any], source: str | os.PathLike | None = None,
                    schema_name: str = "config") -> dict[str, Any]:
    """Fill in defaults (in place) and validate; an invalid config raises InputError naming the key.
    Numbers must be finite (YAML's ``.nan`` and ``.inf`` satisfy the schema's type)."""
    for key, value in _numbers(config):
        if not math.isfinite(value):
            raise InputError(source, f"config key {key}: {value} is not a finite number")
    validator = _filling_validator()(schema(schema_name))
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.path))
    if errors:
        error = errors[0]
        key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise InputError(source, f"config key {key}: {error.message}")
    return config


def _numbers(value: Any, key: str = "") -> Iterator[tuple[str, float]]:
    """Every float in a nested config, with its dotted key."""
    if isinstance(value, float):
        yield key or "(top level)", value
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _numbers(item, f"{key}.{name}" if key else str(name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _numbers(item, f"{key}[{index}]")


def read_yaml_mapping(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML file's top-level mapping (InputError naming the file if unreadable or not a mapping)."""
    path = Path(path)
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise InputError(path, f"cannot read the YAML config ({error.__class__.__name__})") from None
    if not isinstance(content, dict):
        raise InputError(path, "a config must be a YAML mapping")
    return content


def load_config(path: str | os.PathLike, schema_name: str = "config") -> dict[str, Any]:
    """Read a YAML config file, fill in the schema's defaults and validate it against ``schema_name``."""
    return validate_config(read_yaml_mapping(path), Path(path), schema_name)


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` on top: mappings merge key by key (recursively), anything else is replaced."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def defaults() -> dict[str, Any]:
    """The complete default configuration (what an empty config file becomes); a fresh copy each call."""
    return copy.deepcopy(_defaults())


@cache
def _defaults() -> dict[str, Any]:
    return validate_config({})
