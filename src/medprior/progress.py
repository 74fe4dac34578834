"""Progress bars, with one switch for the whole package.

Long loops (training, sampling, phantoms, ADMM-TV, ESPIRiT, synthesis) show a tqdm bar. The
``medprior`` command switches the bars off when its stderr is not a terminal (a log file, a pipe, a
SLURM job), so that a failure there prints exactly one line on stderr; terminals and notebooks keep
them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

enabled = True  # set by the CLI from sys.stderr.isatty()


def progress_bar(iterable: Iterable | None = None, *, show: bool = True, **options: Any) -> tqdm:
    """A tqdm bar over ``iterable`` (or one to update by hand), hidden when ``show`` is false or the
    bars are switched off; ``options`` go to tqdm (``desc``, ``unit``, ``total``, ...)."""
    return tqdm(iterable, disable=not (show and enabled), **options)
