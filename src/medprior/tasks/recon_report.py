"""Scores and figures of reconstructions against the truth, on the estimate's grid (world mm).

Apart from :mod:`medprior.tasks.recon` so that scoring a reconstruction imports neither torch nor MONAI.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medprior.checks import require_window
from medprior.errors import ParameterError
from medprior.figures import reconstruction_figure
from medprior.io import Volume, load, sidecar_path, write_json
from medprior.io.resample import resample_like
from medprior.metrics import image_metrics


def evaluate(reference: Volume, estimate: Volume, *, window: tuple[float, float] | None = None) -> dict[str, Any]:
    """Image metrics of ``estimate`` against ``reference`` resampled onto its grid (world mm).

    ``window`` clips both and sets the data range (e.g. a HU window); default ``[0, max(reference)]``.
    """
    window = require_window("window", window)
    truth = resample_like(reference, estimate).data
    low, high = window if window is not None else (0.0, float(truth.max()))
    return image_metrics(truth, estimate.data, data_range=high - low, window=(low, high))


def evaluate_files(reference: str | os.PathLike, estimate: str | os.PathLike, out: str | os.PathLike, *,
                   window: tuple[float, float] | None = None) -> dict[str, Any]:
    """Evaluate two image files and write the metrics JSON (with the estimate's sidecar config)."""
    window = require_window("window", window)
    scores = evaluate(load(reference), load(estimate), window=window)
    sidecar = sidecar_path(estimate)
    provenance = json.loads(sidecar.read_text())["config"] if sidecar.is_file() else {}
    write_json(out, {**scores, "window": window, "reference": str(reference), "estimate": str(estimate),
                     "reconstruction": provenance})
    return scores


def comparison_figure(reference: str | os.PathLike, estimates: Sequence[str | os.PathLike], out: str | os.PathLike,
                      *, names: Sequence[str] | None = None, window: tuple[float, float] | None = None,
                      title: str = "") -> Path:
    """PNG of the truth (on the first estimate's grid) and each estimate, with error maps."""
    window = require_window("window", window)
    names = list(names) if names else [Path(p).name for p in estimates]
    if len(names) != len(estimates):
        raise ParameterError("names", f"{len(names)} names given for {len(estimates)} estimates")
    volumes = [load(p) for p in estimates]
    truth = resample_like(load(reference), volumes[0])
    return reconstruction_figure(truth, list(zip(names, volumes)), out, window=window, title=title)
