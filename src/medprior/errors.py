"""Exceptions raised by medprior.

Anything the user supplied (a file, a folder, a config value) that cannot be used raises
:class:`InputError`, whose message names the offending path and the problem in one line. The CLI
prints that line and exits with status 2. Assertions are kept for medprior's own invariants.
"""

from __future__ import annotations

from os import PathLike


class MedpriorError(Exception):
    """Base class of every error medprior raises on purpose."""


class InputError(MedpriorError):
    """A user-supplied file, folder or value that cannot be used.

    Args:
        source: the file or folder (or config key) at fault; ``None`` when there is none.
        problem: what is wrong with it, in words a user can act on.
    """

    def __init__(self, source: str | PathLike | None, problem: str) -> None:
        self.source = None if source is None else str(source)
        self.problem = problem
        super().__init__(problem if source is None else f"{source}: {problem}")


class ParameterError(InputError, ValueError):
    """A number or name out of its range (a count below 1, a NaN weight, LOW >= HIGH, an unknown
    parameter, a request larger than the free memory); ``source`` is the parameter or the CLI option.
    Also a ValueError, as a bad argument of a library function is for its Python callers."""


class DivergenceError(MedpriorError):
    """A run that went numerically wrong (a non-finite loss or weight): not the user's input, but
    nothing non-finite is written and the last good state is kept. The CLI exits with status 1."""
