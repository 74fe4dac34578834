"""Checks of user-supplied numbers and arrays: ranges, finiteness and memory, with the option or file
named in the error.

Every public entry point and every CLI option goes through these, so that ``--views 0``,
``eta=nan`` or a NaN sinogram fail with one line (:class:`~medprior.errors.InputError`) before any
work, instead of a traceback or a NaN result.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from medprior.errors import InputError


def require_int(name: str, value: Any, *, minimum: int | None = 1, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]`` (bounds optional); ``name`` is the option or key."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
            value = int(value)
        else:
            raise InputError(name, f"must be a whole number, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise InputError(name, f"must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise InputError(name, f"must be <= {maximum}, got {value}")
    return value


def require_float(name: str, value: Any, *, minimum: float | None = None, maximum: float | None = None,
                  exclusive_minimum: bool = False) -> float:
    """``value`` as a finite float in range (``minimum`` excluded with ``exclusive_minimum``)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(name, f"must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise InputError(name, f"must be a finite number, got {value!r}")
    if minimum is not None and (number <= minimum if exclusive_minimum else number < minimum):
        raise InputError(name, f"must be {'>' if exclusive_minimum else '>='} {minimum:g}, got {number:g}")
    if maximum is not None and number > maximum:
        raise InputError(name, f"must be <= {maximum:g}, got {number:g}")
    return number


def require_window(name: str, window: Any) -> tuple[float, float] | None:
    """An intensity window ``(low, high)`` of finite numbers with ``low < high`` (``None`` passes)."""
    if window is None:
        return None
    low, high = (require_float(name, v) for v in window)
    if not low < high:
        raise InputError(name, f"needs LOW < HIGH, got {low:g} {high:g}")
    return low, high


def require_finite(source: Any, array: Any, what: str = "data") -> None:
    """Refuse an array (numpy or torch) holding NaN or Inf; ``source`` is the file, ``what`` the key."""
    values = array.detach().cpu().numpy() if hasattr(array, "detach") else np.asarray(array)
    if values.dtype.kind in "fc" and not np.isfinite(values).all():
        bad = int(values.size - np.count_nonzero(np.isfinite(values)))
        raise InputError(source, f"{what} holds {bad} non-finite values (NaN or Inf)")


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


def require_memory(name: str, nbytes: float, what: str) -> None:
    """Refuse a request whose estimated memory ``nbytes`` exceeds what the machine has free."""
    free = available_memory_bytes()
    if nbytes > free:
        raise InputError(name, f"{what} needs about {nbytes / 2**30:.1f} GiB, "
                               f"more than the {free / 2**30:.1f} GiB of free memory")
