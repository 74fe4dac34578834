"""Where computation runs: ``auto`` (CUDA when present, else CPU) and bf16 autocast on CUDA only.

Example:
    >>> device = resolve_device("cpu")
    >>> with autocast(device):
    ...     y = torch.ones(2, device=device) * 2
"""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """The :class:`torch.device` meant by ``spec``.

    Args:
        spec: ``"auto"`` (``cuda`` when a GPU is usable, else ``cpu``), ``"cpu"``, ``"cuda"``,
            ``"cuda:N"``, or a :class:`torch.device`.

    Raises:
        ValueError: an unknown device name, or a CUDA device that this machine does not have.
    """
    if isinstance(spec, str) and spec.strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec.strip().lower() if isinstance(spec, str) else spec)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device {spec!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N' ({error})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r}: CUDA is not available on this machine "
                             "(use 'auto' or 'cpu')")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {spec!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise ValueError(f"device {spec!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return device


def autocast(device: str | torch.device) -> ContextManager:
    """bf16 autocast on a CUDA device; a context that does nothing on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
