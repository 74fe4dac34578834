"""Figures people look at: orthogonal-slice montages for QC and results.

Slices are drawn in radiological convention (patient right on the left of the image, anterior up
in axial views, superior up in coronal and sagittal views) with the true physical aspect ratio.
Every image is sampled in world coordinates on the planes of the first image's grid, so volumes on
different grids (PET and CT) line up.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from medprior.io import Volume, atomic_path  # noqa: E402
from medprior.io.resample import sample_at_world  # noqa: E402

VIEWS = ("axial", "coronal", "sagittal")
_LEFT_EDGE = {"axial": "R", "coronal": "R", "sagittal": "A"}  # patient side on the image's left
LABEL_COLOURS = ListedColormap(["#00000000", "#e41a1c", "#4daf4a", "#377eb8", "#ff7f00", "#984ea3"])


def save_figure(figure: plt.Figure, path: str | os.PathLike) -> Path:
    """Write ``figure`` as a PNG atomically and release it."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=90, format="png", bbox_inches="tight")
    plt.close(figure)
    return Path(path)


def display_window(volume: Volume) -> tuple[float, float, str]:
    """``(vmin, vmax, colormap)`` for a modality: CT in HU [-1000, 600], PET/MR to the 99.5th percentile."""
    if volume.modality == "CT":
        return -1000.0, 600.0, "gray"
    upper = float(np.percentile(volume.data, 99.5)) or 1.0
    return 0.0, upper, "hot" if volume.modality == "PT" else "gray"


def slice_planes(reference: Volume, center_mm: np.ndarray) -> dict[str, tuple[np.ndarray, float]]:
    """World points of the three planes through ``center_mm`` on ``reference``'s RAS grid.

    Returns ``{view: (points (rows, cols, 3) in mm, pixel aspect height/width)}``, rows running
    from top to bottom of the drawn image and columns from its left to its right.
    """
    canonical = reference.to_canonical()
    spacing = np.array(canonical.spacing)
    origin = canonical.affine[:3, 3]
    axes = [origin[a] + spacing[a] * np.arange(canonical.shape[a]) for a in range(3)]
    right_to_left, posterior_to_anterior, inferior_to_superior = axes
    screen = {
        # (vertical axis top->bottom, horizontal axis left->right) in world coordinates
        "axial": ((1, posterior_to_anterior[::-1]), (0, right_to_left[::-1])),
        "coronal": ((2, inferior_to_superior[::-1]), (0, right_to_left[::-1])),
        "sagittal": ((2, inferior_to_superior[::-1]), (1, posterior_to_anterior[::-1])),
    }
    planes = {}
    for view, ((v_axis, v_values), (h_axis, h_values)) in screen.items():
        points = np.empty((len(v_values), len(h_values), 3))
        points[...] = center_mm
        points[..., v_axis] = v_values[:, None]
        points[..., h_axis] = h_values[None, :]
        planes[view] = (points, spacing[v_axis] / spacing[h_axis])
    return planes


def label_center_mm(label: Volume) -> np.ndarray | None:
    """World centre of mass (mm) of the nonzero voxels of a label map, or None if it is empty."""
    voxels = np.argwhere(label.data > 0)
    if len(voxels) == 0:
        return None
    mean = voxels.mean(axis=0)
    return label.affine[:3, :3] @ mean + label.affine[:3, 3]


def planes_through(reference: Volume, label: Volume | None = None) -> dict[str, tuple[np.ndarray, float]]:
    """:func:`slice_planes` through the centre of mass of ``label`` (when given and not empty),
    else through the centre of ``reference``'s grid."""
    center = label_center_mm(label) if label is not None else None
    if center is None:
        center = reference.affine[:3, :3] @ ((np.array(reference.shape) - 1) / 2) + reference.affine[:3, 3]
    return slice_planes(reference, center)


def orthogonal_montage(rows: Sequence[tuple[str, Volume]], path: str | os.PathLike, *,
                       label: Volume | None = None, title: str = "") -> Path:
    """Save a PNG: one row per image, axial / coronal / sagittal columns, label contours on top.

    Args:
        rows: ``(name, volume)`` pairs; the first volume's grid defines the planes.
        path: PNG to write (atomically).
        label: optional label map drawn as coloured outlines on every row; the planes then go
            through the label's centre of mass instead of the grid centre.
        title: figure title.
    """
    reference = rows[0][1]
    planes = planes_through(reference, label)
    figure, axes = plt.subplots(len(rows), 3, figsize=(9, 3 * len(rows)), squeeze=False)
    for row, (name, volume) in enumerate(rows):
        vmin, vmax, cmap = display_window(volume)
        for column, view in enumerate(VIEWS):
            points, aspect = planes[view]
            axis = axes[row, column]
            axis.imshow(sample_at_world(volume, points, fill=vmin), cmap=cmap, vmin=vmin, vmax=vmax,
                        aspect=aspect, interpolation="nearest")
            if label is not None:
                labels = sample_at_world(label, points, order=0)
                for value in np.unique(labels[labels > 0])[::-1]:  # inner labels drawn last
                    axis.contour(labels == value, levels=[0.5], colors=[LABEL_COLOURS(int(value))], linewidths=0.8)
            axis.set_xticks([])
            axis.set_yticks([])
            axis.text(0.02, 0.5, _LEFT_EDGE[view], color="yellow", transform=axis.transAxes, fontsize=8)
            if column == 0:
                axis.set_ylabel(name)
            if row == 0:
                axis.set_title(view)
    figure.suptitle(title)
    figure.tight_layout()
    return save_figure(figure, path)


def reconstruction_figure(truth: Volume, reconstructions: Sequence[tuple[str, Volume]], path: str | os.PathLike,
                          *, window: tuple[float, float] | None = None, title: str = "") -> Path:
    """Save a PNG comparing reconstructions with the truth: orthogonal slices and error maps.

    Rows: the truth, then each reconstruction (label: its name). Columns: axial, coronal and
    sagittal slices through the grid centre in the display window, then the axial absolute error
    ``|reconstruction - truth|`` over a quarter of the window's width.

    Args:
        truth: reference volume; its grid defines the planes.
        reconstructions: ``(name, volume)`` pairs on any grid (sampled in world coordinates).
        path: PNG to write (atomically).
        window: ``(low, high)`` display range (e.g. a HU window); default from the modality.
        title: figure title.
    """
    low, high, _ = display_window(truth) if window is None else (*window, "gray")
    planes = planes_through(truth)
    rows = [("truth", truth), *reconstructions]
    figure, axes = plt.subplots(len(rows), 4, figsize=(12, 3 * len(rows)), squeeze=False)
    reference_axial = sample_at_world(truth, planes["axial"][0], fill=low)
    for row, (name, volume) in enumerate(rows):
        for column, view in enumerate(VIEWS):
            points, aspect = planes[view]
            axes[row, column].imshow(sample_at_world(volume, points, fill=low), cmap="gray", vmin=low, vmax=high,
                                     aspect=aspect, interpolation="nearest")
        error = np.abs(sample_at_world(volume, planes["axial"][0], fill=low) - reference_axial)
        shown = axes[row, 3].imshow(error, cmap="magma", vmin=0, vmax=(high - low) / 4, aspect=planes["axial"][1],
                                    interpolation="nearest")
        axes[row, 0].set_ylabel(name)
        for axis in axes[row]:
            axis.set_xticks([])
            axis.set_yticks([])
    for column, heading in enumerate([*VIEWS, "|error| axial"]):
        axes[0, column].set_title(heading)
    figure.colorbar(shown, ax=axes[:, 3].tolist(), shrink=0.6)
    figure.suptitle(title)
    return save_figure(figure, path)


def synthesis_figure(present: Sequence[tuple[str, Volume]], truth: tuple[str, Volume],
                     syntheses: Sequence[tuple[str, Volume]], path: str | os.PathLike, *,
                     label: Volume | None = None, title: str = "") -> Path:
    """Save a PNG of one missing-contrast synthesis case, every image in normalised [0, 1] units.

    Row 1: the present contrasts and the truth (axial). Then one row per synthesis: axial and
    coronal slices, and the absolute error ``|synthesis - truth|`` in both (0 to 0.5). The planes go
    through the centre of ``label`` (the tumour), or the truth's grid centre.

    Args:
        present, truth, syntheses: ``(name, volume)`` pairs; the truth's grid defines the planes.
        path: PNG to write (atomically).
        label: optional segmentation outlined on the truth.
        title: figure title.
    """
    reference = truth[1]
    planes = planes_through(reference, label)
    columns = max(4, len(present) + 1)
    figure, axes = plt.subplots(1 + len(syntheses), columns, figsize=(3 * columns, 3 * (1 + len(syntheses))),
                                squeeze=False)

    def draw(axis, volume: Volume, view: str, heading: str, error_of: Volume | None = None):
        points, aspect = planes[view]
        image = sample_at_world(volume, points, fill=0.0)
        if error_of is None:
            shown = axis.imshow(image, cmap="gray", vmin=0, vmax=1, aspect=aspect, interpolation="nearest")
        else:
            image = np.abs(image - sample_at_world(error_of, points, fill=0.0))
            shown = axis.imshow(image, cmap="magma", vmin=0, vmax=0.5, aspect=aspect, interpolation="nearest")
        axis.set_title(heading, fontsize=9)
        return shown

    for column, (name, volume) in enumerate([*present, truth]):
        draw(axes[0, column], volume, "axial", name)
    if label is not None:
        labels = sample_at_world(label, planes["axial"][0], order=0)
        axes[0, len(present)].contour(labels > 0, levels=[0.5], colors=["#e41a1c"], linewidths=0.8)
    shown = None
    for row, (name, volume) in enumerate(syntheses, start=1):
        draw(axes[row, 0], volume, "axial", f"{name} axial")
        draw(axes[row, 1], volume, "coronal", f"{name} coronal")
        shown = draw(axes[row, 2], volume, "axial", "|error| axial", error_of=reference)
        draw(axes[row, 3], volume, "coronal", "|error| coronal", error_of=reference)
    for axis in axes.ravel():
        axis.set_xticks([])
        axis.set_yticks([])
        if not axis.images:
            axis.set_axis_off()
    if shown is not None:
        figure.colorbar(shown, ax=axes[1:, 2:].ravel().tolist(), shrink=0.6)
    figure.suptitle(title)
    return save_figure(figure, path)


def sample_grid(images: np.ndarray, path: str | os.PathLike, *, window: tuple[float, float],
                reference: np.ndarray | None = None, columns: int = 8, title: str = "") -> Path:
    """Save a PNG grid of 2D samples (e.g. from a slice prior), optionally with a reference row.

    Args:
        images: ``(N, I, J)`` axial slices of canonical (RAS) arrays, shown radiologically
            (patient right on the left, anterior up).
        path: PNG to write (atomically).
        window: ``(low, high)`` display range in the images' units.
        reference: ``(M, I, J)`` images drawn as the last row (e.g. held-out slices).
        columns: images per row.
        title: figure title.
    """
    rows = [images[start:start + columns] for start in range(0, len(images), columns)]
    if reference is not None:
        rows.append(reference[:columns])
    figure, axes = plt.subplots(len(rows), columns, figsize=(1.6 * columns, 1.6 * len(rows)), squeeze=False)
    for axis_row, row in zip(axes, rows):
        for axis, image in zip(axis_row, [*row, *[None] * (columns - len(row))]):
            if image is not None:
                axis.imshow(np.asarray(image).T[::-1, ::-1], cmap="gray", vmin=window[0], vmax=window[1],
                            interpolation="nearest")
            axis.set_axis_off()
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return save_figure(figure, path)
