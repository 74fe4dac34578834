"""Helpers the ``medprior`` command's modules share: option names in errors, and ``--param`` values."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from medprior.errors import InputError, ParameterError


@contextmanager
def named_options(**names: str) -> Iterator[None]:
    """A task's ParameterError names the CLI option instead of the parameter (``arc_deg`` -> ``--arc``).

    Tasks check their numbers at entry, with the ranges of the config schema, before any work;
    handlers call them (or their ``check_*`` helpers) inside this, so the one-line error names
    what the user typed.
    """
    try:
        yield
    except ParameterError as error:
        if error.source in names:
            raise ParameterError(names[error.source], error.problem) from None
        raise


def flags(*dests: str) -> dict[str, str]:
    """``{"batch_size": "--batch-size", ...}``: parameters named as the options of the same name."""
    return {dest: "--" + dest.replace("_", "-") for dest in dests}


def parameter(text: str, names: bool = False) -> tuple[str, float | int | str]:
    """``NAME=VALUE`` of ``--param`` -> (name, int or float value; with ``names``, a word such as
    ``tweedie`` is kept as it is, for parameters that choose among names)."""
    name, separator, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = None
    if names and separator and name and number is None and value.isidentifier():
        return name, value
    if not separator or not name or number is None:
        raise InputError("--param", f"expected NAME=NUMBER (e.g. steps=50), got {text!r}")
    return name, int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number


def check_device(spec: str | None) -> None:
    """A bad ``--device`` is an input error (exit 2), found before any work starts."""
    if spec is not None:
        from medprior.devices import resolve_device  # imports torch: only for the commands that use a device
        try:
            resolve_device(spec)
        except ValueError as error:
            raise InputError("--device", str(error)) from None
