"""Method registries: a task's methods, each with its family, modalities and parameters, in one place.

A :class:`Method` names the function that runs it (as ``"module:function"``, imported when the method
runs, so that the registries, and the CLI's choices and help that read them, load without torch or
MONAI) and where its parameters live in the config schema (``config.schema.yaml``: names, defaults,
ranges, descriptions), plus per-modality overrides of those defaults. A :class:`Registry` resolves a
method's parameters once (schema or config values, then the modality's overrides, then what the
caller gave, each checked against the schema's range); the CLI's choices and help, the Snakemake
rules' wildcard constraints, the schema's method enums (checked by a test) and the README's method
tables (:meth:`Registry.markdown`) read it.
The tasks' registries are in :mod:`medprior.methods`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from medprior.checks import require_choice, require_schema, schema_property
from medprior.config import defaults
from medprior.errors import InputError, ParameterError


@dataclass(frozen=True)
class Method:
    """One method of a task.

    Attributes:
        name: what the CLI, the config and the rules call it.
        family: e.g. ``classical`` or ``diffusion``.
        modalities: the modalities it applies to (``"CT"``, ``"MR"``, ...).
        run: the function that runs it (its signature is the task's convention), or its import path
            ``"package.module:function"``, imported by :attr:`runner` when the method first runs.
        section: dotted schema path of the mapping that holds its parameters (``recon.solver``).
        uses: the keys of ``section`` it uses (None: all of them); the others are accepted and ignored
            (several methods may share one section, as the CLI's options do).
        overrides: per modality, a dotted schema path of values that replace the defaults.
        rename: per modality, parameter names as ``run`` receives them (``{"ct_tv_lambda": "lam"}``).
        summary: one line for tables and help.
    """

    name: str
    family: str
    modalities: tuple[str, ...]
    run: Callable[..., Any] | str
    section: str
    uses: tuple[str, ...] | None = None
    overrides: Mapping[str, str] = field(default_factory=dict)
    rename: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    summary: str = ""

    @property
    def runner(self) -> Callable[..., Any]:
        """The function that runs the method (imported here where :attr:`run` names it)."""
        if callable(self.run):
            return self.run
        module, _, name = self.run.partition(":")
        return getattr(importlib.import_module(module), name)

    def accepted(self) -> tuple[str, ...]:
        """Every parameter name the method's section holds."""
        return tuple(schema_property(self.section)["properties"])

    def used(self, modality: str | None = None) -> tuple[str, ...]:
        """The parameters it uses (for ``modality``: without the other modalities' renamed ones)."""
        names = self.accepted() if self.uses is None else self.uses
        if modality is None or not self.rename:
            return names
        others = {key for m, mapping in self.rename.items() if m != modality for key in mapping}
        return tuple(name for name in names if name not in others)


def _at(config: Mapping[str, Any], dotted: str) -> Any:
    value: Any = config
    for key in dotted.split("."):
        value = value[key]
    return value


class Registry:
    """A task's methods by name (see the module docstring)."""

    def __init__(self, task: str, methods: Iterable[Method]) -> None:
        self.task = task
        self.methods = {method.name: method for method in methods}

    def __getitem__(self, name: str) -> Method:
        require_choice("method", name, tuple(self.methods))
        return self.methods[name]

    def names(self, family: str | None = None, modality: str | None = None) -> tuple[str, ...]:
        """Method names, optionally of one family and/or applying to one modality, in registry order."""
        return tuple(name for name, method in self.methods.items()
                     if (family is None or method.family == family)
                     and (modality is None or modality in method.modalities))

    def help(self) -> str:
        """``name: summary`` of every method, for an argparse help text (``%`` escaped, as argparse
        formats help with ``%``)."""
        return "; ".join(f"{m.name}: {m.summary}" for m in self.methods.values()).replace("%", "%%")

    def for_modality(self, name: str, modality: str | None, source: Any = None) -> Method:
        """The method, refused (InputError naming ``source``) where it does not apply to ``modality``."""
        method = self[name]
        if modality is not None and modality not in method.modalities:
            raise InputError(source, f"method {name!r} does not apply to {modality}; choose from "
                                     f"{self.names(modality=modality)}")
        return method

    def check(self, name: str, given: Mapping[str, Any], *, prefix: str = "") -> dict[str, Any]:
        """``given`` parameters of method ``name`` checked by name and range (a ParameterError names
        ``prefix + name``); returned typed as the schema says."""
        method = self[name]
        accepted = method.accepted()
        unknown = sorted(set(given) - set(accepted))
        if unknown:
            raise ParameterError(f"{prefix}{unknown[0]}", f"{name} has no parameter {unknown[0]!r} (unknown "
                                                          f"parameters {unknown}); it takes {', '.join(accepted)}")
        return {key: require_schema(f"{prefix}{key}", value, f"{method.section}.{key}") for key, value in given.items()}

    def parameters(self, name: str, modality: str | None, given: Mapping[str, Any] | None = None,
                   config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The parameters method ``name`` runs with on ``modality``, resolved in this one place.

        The values of the method's section in ``config`` (a validated config; default: the schema's
        defaults), then the modality's overrides from ``config``, then ``given``; every name and value
        checked. Returns the keys the method uses, under the names its ``run`` takes.
        """
        method = self[name]
        config = defaults() if config is None else config
        section = dict(_at(config, method.section))
        if modality in method.overrides:
            path = method.overrides[modality]
            try:
                section.update(self.check(name, _at(config, path), prefix=f"{path}."))
            except ParameterError as error:
                raise InputError(None, str(error)) from None
        section.update(self.check(name, given or {}))
        renamed = method.rename.get(modality or "", {})
        return {renamed.get(key, key): section[key] for key in method.used(modality)}

    def options(self, family: str) -> tuple[str, ...]:
        """Every parameter name the methods of ``family`` accept, in schema order (the CLI's options)."""
        names: dict[str, None] = {}
        for method in self.methods.values():
            if method.family == family:
                names.update(dict.fromkeys(method.accepted()))
        return tuple(names)

    def describe(self, name: str) -> list[str]:
        """``key=default (range)`` of each parameter method ``name`` uses, with the modalities' overrides."""
        method, config = self[name], defaults()
        return [_describe(method, key, config) for key in method.used()]

    def markdown(self) -> str:
        """A markdown table of the methods: name, family, modalities, parameters with defaults and ranges."""
        rows = ["| method | family | modalities | parameters (default, range) | what it is |",
                "|---|---|---|---|---|"]
        for method in self.methods.values():
            parameters = "; ".join(self.describe(method.name)) or "none"
            rows.append(f"| {method.name} | {method.family} | {', '.join(method.modalities)} | {parameters} | "
                        f"{method.summary} |")
        return "\n".join(rows) + "\n"


def _describe(method: Method, key: str, config: Mapping[str, Any]) -> str:
    """``key=default (range)`` from the schema, with the modalities' overrides in the default ``config``."""
    prop = schema_property(f"{method.section}.{key}")
    bounds = []
    for word, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
        if word in prop:
            bounds.append(f"{sign} {prop[word]}")
    for modality, path in method.overrides.items():
        if key in _at(config, path):
            bounds.append(f"{modality}: {_at(config, path)[key]}")
    return f"{key}={prop.get('default')}" + (f" ({', '.join(bounds)})" if bounds else "")
