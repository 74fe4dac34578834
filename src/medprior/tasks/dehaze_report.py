"""Scores and figures of dehazing: the DehazingEcho2025 measures and the distance to the haze-free truth.

:func:`evaluate_dehazing` scores one dehazed file against the hazy input and, for simulated frames,
the truth (all on the hazy frame's B-mode scale, :func:`medprior.tasks.dehaze.bmode`), per frame:

- ``gcnr`` and ``cnr`` between the left ventricle's cavity and the septum (higher: the cavity is
  told apart from the wall), with ``gcnr_hazy`` and ``gcnr_truth`` beside them;
- ``ks_septum`` (lower: the tissue is kept) and ``ks_ventricle`` (higher: the haze is removed), the
  two-sample Kolmogorov-Smirnov statistics between hazy and dehazed B-mode values in each region;
- ``psnr`` and ``ssim`` of the dehazed B-mode against the truth's (data range: the dynamic range),
  with ``psnr_hazy`` / ``ssim_hazy`` of the input beside them;
- ``seconds_per_frame`` of the method.

The regions are the masks a simulated file carries (``medprior/ventricle``, ``medprior/septum``);
:func:`dehazing_figure` draws hazy, dehazed (every method), estimated haze and truth, scan-converted.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from medprior.errors import InputError  # noqa: E402
from medprior.figures import save_figure  # noqa: E402
from medprior.io.ultrasound import read_zea, read_zea_derived, read_zea_extras  # noqa: E402
from medprior.metrics import cnr, gcnr, psnr, region_ks, ssim3d  # noqa: E402
from medprior.physics.beamform import bmode, reference_level, scan_convert  # noqa: E402
from medprior.tasks.ultrasound import read_beamformed  # noqa: E402


def _dehazed(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any], dict[str, np.ndarray]]:
    """The B-mode frames (n_frames, n_r, n_lines) of a dehazed file, its dehazing record and extras."""
    rf = read_zea(path)
    record = rf.metadata.get("dehazing")
    images = read_zea_derived(path).get("image")
    if record is None or images is None:
        raise InputError(path, "data/image: missing, or no dehazing record; expected a file of `medprior dehaze`")
    return np.asarray(images, dtype=np.float32), record, read_zea_extras(path)


def _regions(extras: dict[str, np.ndarray], path: str | os.PathLike, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    regions = {}
    for name in ("ventricle", "septum"):
        mask = extras.get(name)
        if mask is None or mask.shape != shape or not mask.any():
            raise InputError(path, f"medprior/{name}: missing or empty region on the {shape} grid; the file must "
                                   "come from `medprior simulate us` and `medprior beamform` on its own grid")
        regions[name] = mask.astype(bool)
    return regions


def score_frame(dehazed: np.ndarray, hazy: torch.Tensor, truth: torch.Tensor, regions: dict[str, np.ndarray],
                dynamic_range: float) -> dict[str, float]:
    """The scores (see the module docstring) of one dehazed B-mode frame (n_r, n_lines) dB, given the
    hazy and the true beamformed RF and the ``ventricle`` and ``septum`` masks."""
    reference = reference_level(hazy)
    hazy_image, true_image = bmode(hazy, reference, dynamic_range), bmode(truth, reference, dynamic_range)
    ventricle, septum = regions["ventricle"], regions["septum"]
    return {
        "psnr": psnr(true_image, dehazed, dynamic_range), "ssim": ssim3d(true_image, dehazed, dynamic_range),
        "psnr_hazy": psnr(true_image, hazy_image, dynamic_range),
        "ssim_hazy": ssim3d(true_image, hazy_image, dynamic_range),
        "gcnr": gcnr(dehazed, ventricle, septum), "gcnr_hazy": gcnr(hazy_image, ventricle, septum),
        "gcnr_truth": gcnr(true_image, ventricle, septum), "cnr": cnr(dehazed, ventricle, septum),
        "ks_septum": region_ks(hazy_image, dehazed, septum), "ks_ventricle": region_ks(hazy_image, dehazed, ventricle),
    }


def evaluate_dehazing(dehazed: str | os.PathLike, hazy: str | os.PathLike,
                      truth: str | os.PathLike) -> dict[str, Any]:
    """Scores (see the module docstring) of each frame, and their means under ``mean``."""
    images, record, _ = _dehazed(dehazed)
    hazy_frames, _, _ = read_beamformed(hazy)
    truth_frames, _, extras = read_beamformed(truth)
    if truth_frames.shape != hazy_frames.shape:
        raise InputError(truth, f"has frames of shape {tuple(truth_frames.shape)}; the hazy file has "
                                f"{tuple(hazy_frames.shape)} (beamform both on one grid)")
    if not (images.shape == tuple(hazy_frames.shape) == tuple(truth_frames.shape)):
        raise InputError(dehazed, f"has frames of shape {images.shape}; the hazy and true files have "
                                  f"{tuple(hazy_frames.shape)} and {tuple(truth_frames.shape)}")
    regions = _regions(extras, truth, images.shape[1:])
    frames = [score_frame(image, hazy_rf, truth_rf, regions, float(record["dynamic_range"]))
              for image, hazy_rf, truth_rf in zip(images, hazy_frames, truth_frames)]
    mean = {key: float(np.mean([f[key] for f in frames])) for key in frames[0]}
    return {"method": record["method"], "parameters": record["parameters"],
            "seconds_per_frame": record["seconds_per_frame"], "frames": frames, "mean": mean}


def _sector(image: np.ndarray, grid: dict[str, Any], width: int = 320) -> tuple[np.ndarray, list[float]]:
    """A polar B-mode image scan-converted to Cartesian pixels (fill: the bottom of the range), and its
    extent (x0, x1, z1, z0) in mm."""
    (a0, a1, n_a), (r0, dr, n_r) = grid["angles"], grid["radii"]
    angles, radii = np.linspace(a0, a1, n_a), r0 + dr * np.arange(n_r)
    far = radii[-1]
    x = np.linspace(-far * np.sin(max(abs(a0), abs(a1))), far * np.sin(max(abs(a0), abs(a1))), width)
    z = np.linspace(r0 * np.cos(max(abs(a0), abs(a1))), far, int(width * (far - r0) / (x[-1] - x[0])))
    converted = scan_convert(torch.from_numpy(image), angles, radii, x, z, fill=float(image.min()))
    return converted.numpy(), [x[0] * 1e3, x[-1] * 1e3, z[-1] * 1e3, z[0] * 1e3]


def dehazing_figure(hazy: str | os.PathLike, truth: str | os.PathLike, dehazed: Sequence[tuple[str, str | os.PathLike]],
                    out: str | os.PathLike, *, frame: int = 0, title: str = "") -> Path:
    """PNG of one frame: the hazy input, each method's dehazed image, the diffusion's haze estimate (where
    a method made one) and the truth, as scan-converted B-mode images on one dB scale."""
    hazy_frames, hazy_rf, _ = read_beamformed(hazy)
    truth_frames, _, _ = read_beamformed(truth)
    grid = hazy_rf.metadata.get("grid", {})
    if grid.get("kind") != "polar":
        raise InputError(hazy, "the figure needs a sector (polar grid) frame from `medprior beamform`")
    panels: list[tuple[str, np.ndarray]] = []
    dynamic_range = 60.0
    reference = reference_level(hazy_frames[frame])
    for name, path in dehazed:
        images, record, extras = _dehazed(path)
        dynamic_range = float(record["dynamic_range"])
        panels.append((name, images[frame]))
        if "haze" in extras:
            panels.append((f"{name}: haze", bmode(torch.from_numpy(extras["haze"][frame]), reference, dynamic_range)))
    panels = [("hazy", bmode(hazy_frames[frame], reference, dynamic_range)), *panels,
              ("truth", bmode(truth_frames[frame], reference, dynamic_range))]
    figure, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.2), squeeze=False)
    for axis, (name, image) in zip(axes[0], panels):
        converted, extent = _sector(image, grid)
        axis.imshow(converted, cmap="gray", vmin=-dynamic_range, vmax=0, extent=extent, interpolation="bilinear")
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("x (mm)", fontsize=8)
        axis.tick_params(labelsize=7)
    axes[0, 0].set_ylabel("depth (mm)", fontsize=8)
    figure.suptitle(title or f"{Path(hazy).name}, frame {frame} (B-mode, {dynamic_range:g} dB)", fontsize=10)
    return save_figure(figure, out)
