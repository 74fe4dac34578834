"""Progress bars, with one switch for the whole package.

Long loops (training, sampling, phantoms, ADMM-TV, ESPIRiT, synthesis) show a tqdm bar. The
``medprior`` command switches the bars off when its stderr is not a terminal (a log file, a pipe, a
SLURM job, a Snakemake log: no carriage-return noise), so that a failure there prints exactly one
line on stderr, and with ``--quiet``; terminals and notebooks keep them. With the bars off and INFO
enabled on the ``medprior.progress`` logger (``medprior -v`` off a terminal), a bar becomes log
lines instead: its state at most every ``LOG_INTERVAL_S`` seconds and when it closes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm as plain_tqdm
from tqdm.auto import tqdm

enabled = True  # set by the CLI from sys.stderr.isatty() and --quiet
LOG_INTERVAL_S = 30.0

logger = logging.getLogger(__name__)


class _LogLines:
    """A file for tqdm that turns each refresh of the bar into one INFO record (no ``\\r``)."""

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line:
            logger.info("%s", line)

    def flush(self) -> None:
        pass


def progress_bar(iterable: Iterable | None = None, *, show: bool = True, **options: Any) -> tqdm:
    """A tqdm bar over ``iterable`` (or one to update by hand), hidden when ``show`` is false or the
    bars are switched off (then logged, if INFO is enabled on this module's logger); ``options`` go to
    tqdm (``desc``, ``unit``, ``total``, ...)."""
    if show and not enabled and logger.isEnabledFor(logging.INFO):
        settings = {"mininterval": LOG_INTERVAL_S, "maxinterval": LOG_INTERVAL_S, "ascii": True, **options,
                    "file": _LogLines(), "dynamic_ncols": False}  # a log line has no terminal width
        return plain_tqdm(iterable, **settings)
    return tqdm(iterable, disable=not (show and enabled), **options)
