"""Checks of user-supplied numbers and arrays: ranges, finiteness and memory, with the option or file
named in the error.

Every public entry point and every CLI option goes through these, so that ``--views 0``,
``eta=nan`` or a NaN sinogram fail with one line (:class:`~medprior.errors.InputError`) before any
work, instead of a traceback or a NaN result. A number or name out of range raises
:class:`~medprior.errors.ParameterError` (an InputError, and a ValueError for library callers)
naming the parameter; the CLI renames it to the option. Where a parameter is a key of the config
schema, :func:`require_schema` takes its range (``minimum``, ``exclusiveMinimum``, ``maximum``,
``enum``, ``pattern``, item counts) from there, so the config file, the option and the API agree.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from medprior.config import schema as config_schema
from medprior.errors import InputError, MedpriorError, ParameterError


SEED_MAX = 2**63 - 1
"""Largest seed: torch generators take 64-bit seeds, and case ``n`` of a dataset uses ``seed + n``."""


def require_int(name: str, value: Any, *, minimum: int | None = 1, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]`` (bounds optional); ``name`` is the option or key."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
            value = int(value)
        else:
            raise ParameterError(name, f"must be a whole number, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ParameterError(name, f"must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ParameterError(name, f"must be <= {maximum}, got {value}")
    return value


def require_seed(name: str, value: Any) -> int:
    """A random seed: a whole number in ``[0, SEED_MAX]``."""
    return require_int(name, value, minimum=0, maximum=SEED_MAX)


def require_float(name: str, value: Any, *, minimum: float | None = None, maximum: float | None = None,
                  exclusive_minimum: bool = False, exclusive_maximum: bool = False) -> float:
    """``value`` as a finite float in range (a bound excluded with ``exclusive_minimum`` / ``_maximum``)."""
    if isinstance(value, (bool, str, bytes)):
        raise ParameterError(name, f"must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ParameterError(name, f"must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ParameterError(name, f"must be a finite number, got {number}")
    if minimum is not None and (number <= minimum if exclusive_minimum else number < minimum):
        raise ParameterError(name, f"must be {'>' if exclusive_minimum else '>='} {minimum:g}, got {number:g}")
    if maximum is not None and (number >= maximum if exclusive_maximum else number > maximum):
        raise ParameterError(name, f"must be {'<' if exclusive_maximum else '<='} {maximum:g}, got {number:g}")
    return number


def require_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices`` (a method, sampler or mask name)."""
    if value not in choices:
        raise ParameterError(name, f"unknown {name.lstrip('-').replace('-', '_')} {value!r}; "
                                   f"choose from {', '.join(str(c) for c in choices)}")
    return value


def require_window(name: str, window: Any) -> tuple[float, float] | None:
    """An intensity window ``(low, high)`` of finite numbers with ``low < high`` (``None`` passes)."""
    if window is None:
        return None
    if isinstance(window, (str, bytes)) or len(window) != 2:
        raise ParameterError(name, f"needs two numbers LOW HIGH, got {window!r}")
    low, high = (require_float(name, v) for v in window)
    if not low < high:
        raise ParameterError(name, f"needs LOW < HIGH, got {low:g} {high:g}")
    return low, high


def schema_property(path: str, schema_name: str = "config") -> dict[str, Any]:
    """The JSON schema of one key of a config schema: a dotted ``path`` with ``[]`` for an array's
    items, e.g. ``recon.solver.tv_iterations`` or ``recon.ct.settings[].views``."""
    node = config_schema(schema_name)
    for part in path.split("."):
        node = node["properties"][part.removesuffix("[]")]
        if part.endswith("[]"):
            node = node["items"]
    return node


def require_schema(name: str, value: Any, path: str, schema_name: str = "config") -> Any:
    """``value`` checked against the bounds, type, length and names the config schema gives the key
    ``path`` (see :func:`schema_property`): the one range for the config file, the CLI option
    ``name`` and the API parameter. Returns the value as the schema types it (int, float, list)."""
    return _conform(name, value, schema_property(path, schema_name))


def _conform(name: str, value: Any, spec: dict[str, Any]) -> Any:
    if "anyOf" in spec:  # e.g. slice_batch: the name "auto" or an integer >= 1
        constants = [option["const"] for option in spec["anyOf"] if "const" in option]
        if value in constants:
            return value
        others = [option for option in spec["anyOf"] if "const" not in option]
        if isinstance(value, str) or len(others) != 1:
            raise ParameterError(name, f"must be {' or '.join(map(str, constants))} or a number, got {value!r}")
        return _conform(name, value, others[0])
    types = spec.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    if value is None:
        if "null" in types:
            return None
        raise ParameterError(name, "needs a value")
    if "const" in spec and value != spec["const"]:
        raise ParameterError(name, f"must be {spec['const']!r}, got {value!r}")
    if "enum" in spec:
        return require_choice(name, value, spec["enum"])
    if "pattern" in spec and isinstance(value, str) and not re.search(spec["pattern"], value):
        raise ParameterError(name, f"must match {spec['pattern']}, got {value!r}")
    if "array" in types:
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
            raise ParameterError(name, f"needs a list of values, got {value!r}")
        values = list(value)
        fewest, most = spec.get("minItems", 0), spec.get("maxItems")
        if len(values) < fewest or (most is not None and len(values) > most):
            count = fewest if fewest == most else f"{fewest} to {most}" if most is not None else f"at least {fewest}"
            raise ParameterError(name, f"needs {count} values, got {len(values)}")
        prefix = spec.get("prefixItems", [])
        return [_conform(name, item, prefix[i] if i < len(prefix) else spec.get("items", {}))
                for i, item in enumerate(values)]
    if "integer" in types:
        minimum, maximum = spec.get("minimum"), spec.get("maximum")
        if "exclusiveMinimum" in spec:
            minimum = max(minimum if minimum is not None else -math.inf, math.floor(spec["exclusiveMinimum"]) + 1)
        if "exclusiveMaximum" in spec:
            maximum = min(maximum if maximum is not None else math.inf, math.ceil(spec["exclusiveMaximum"]) - 1)
        return require_int(name, value, minimum=minimum, maximum=maximum)
    if "number" in types:
        exclusive_minimum, exclusive_maximum = "exclusiveMinimum" in spec, "exclusiveMaximum" in spec
        return require_float(name, value, minimum=spec.get("exclusiveMinimum", spec.get("minimum")),
                             maximum=spec.get("exclusiveMaximum", spec.get("maximum")),
                             exclusive_minimum=exclusive_minimum, exclusive_maximum=exclusive_maximum)
    return value


def require_finite(source: Any, array: Any, what: str = "data") -> None:
    """Refuse an array (numpy or torch) holding NaN or Inf; ``source`` is the file, ``what`` the key."""
    bad = count_nonfinite(array)
    if bad:
        raise InputError(source, f"{what} holds {bad} non-finite values (NaN or Inf)")


def count_nonfinite(array: Any) -> int:
    """How many NaN or Inf values a numpy or torch array holds (0 for integer and bool arrays)."""
    values = array.detach().cpu().numpy() if hasattr(array, "detach") else np.asarray(array)
    if values.dtype.kind not in "fc":
        return 0
    return int(values.size - np.count_nonzero(np.isfinite(values)))


def nonfinite_tensors(state: Any) -> list[str]:
    """Names of the floating-point tensors of a state dict (name -> torch tensor) that hold NaN or Inf,
    found with one device synchronisation for all of them."""
    import torch  # here: the checks of plain numbers and arrays do not need torch

    floats = [(name, tensor) for name, tensor in state.items() if torch.is_tensor(tensor) and tensor.is_floating_point()]
    if not floats:
        return []
    finite = torch.stack([torch.isfinite(tensor).all() for _, tensor in floats]).cpu().tolist()
    return [name for (name, _), ok in zip(floats, finite) if not ok]


def require_finite_output(target: Any, array: Any, what: str = "data") -> None:
    """Refuse to write ``array`` to ``target`` when it holds NaN or Inf: a :class:`MedpriorError`
    naming the output (a result that went numerically wrong, not the user's input); nothing is written."""
    bad = count_nonfinite(array)
    if bad:
        raise MedpriorError(f"{target}: not written: {what} holds {bad} non-finite values (NaN or Inf)")


def available_memory_bytes() -> int:
    """Memory this process can still allocate: MemAvailable of /proc/meminfo (or the physical total)."""
    try:
        with open("/proc/meminfo") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def require_memory(name: str, nbytes: float, what: str, *, free: float | None = None,
                   where: str = "free memory") -> None:
    """Refuse a request whose estimated memory ``nbytes`` exceeds what the machine has free
    (``free`` bytes of ``where``, e.g. a GPU's; default the host's :func:`available_memory_bytes`)."""
    free = available_memory_bytes() if free is None else free
    if nbytes > free:
        raise ParameterError(name, f"{what} needs about {nbytes / 2**30:.1f} GiB, "
                                   f"more than the {free / 2**30:.1f} GiB of {where}")
