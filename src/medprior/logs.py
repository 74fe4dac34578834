"""Logging for the ``medprior`` command; the library itself only creates loggers, never handlers.

Modules log on ``logging.getLogger(__name__)`` (``medprior.solvers.tv``, ...): solver summaries at
INFO, per-iteration residuals at DEBUG. :func:`configured` attaches one stderr handler to the
``medprior`` logger for the duration of a command and removes it afterwards, so ``main()`` can run
repeatedly in one process (tests, notebooks) and an embedding program's own logging is left alone.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _StderrHandler(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is at the time of the record (a redirect or a
    test's capture included)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # noqa: D102 - always the current stderr
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def level(verbosity: int, terminal: bool) -> int:
    """The ``medprior`` logger's level: ``verbosity`` -1 (``--quiet``) ERROR, 0 WARNING on a terminal
    and ERROR elsewhere (a log file keeps the one error line alone), 1 (``-v``) INFO, 2+ (``-vv``) DEBUG.
    The package logs no errors of its own (errors are raised), so ERROR shows nothing."""
    if verbosity >= 2:
        return logging.DEBUG
    if verbosity == 1:
        return logging.INFO
    return logging.WARNING if verbosity == 0 and terminal else logging.ERROR


@contextmanager
def configured(verbosity: int, terminal: bool) -> Iterator[logging.Logger]:
    """Log ``medprior.*`` records at :func:`level` to stderr while inside; restore the logger after."""
    root = logging.getLogger("medprior")
    saved = root.level, root.propagate
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level(verbosity, terminal))
    root.propagate = False  # no second copy through a root handler an embedding program set up
    try:
        yield root
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        root.propagate = saved[1]
