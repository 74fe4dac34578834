"""The geometry a slice prior learned, and whether a measurement's pixels are like it.

A slice prior learns anatomy at one scale: ``priors/ct_slices`` saw whole-body slices of a 384 mm
field of view on 64 x 64 pixels (6 mm), so a 64 x 64 real slice of 1.3 mm pixels shows it
structures 4.6 times larger than any it knows. :func:`training_geometry` works out, from a prior
config, the in-plane pixel size and field of view of its training slices (the volumes' in-plane
extent over ``image_size``); training records it in prior.json (``training.geometry``), and
:func:`prior_geometry` reads it back (for priors saved before it was recorded: from their phantom
config, which fixes it). :func:`pixel_mismatch` compares a measurement's pixels with it; the
reconstruction warns in one line beyond :data:`PIXEL_RATIO_WARNING`. :func:`pixel_matrix` picks the
grid over a measurement's field of view whose pixels are of a size the prior learned, where the
reconstruction runs the prior's convolutional network (``resample="pixel"``).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from medprior.errors import InputError
from medprior.io import load
from medprior.phantoms.brain import BRATS_SHAPE, BRATS_SPACING
from medprior.phantoms.ct import CT_BODY_SHAPE, CT_BODY_SPACING, CT_HEAD_SHAPE, CT_HEAD_SPACING
from medprior.tasks.datasets import expand_patterns

PIXEL_RATIO_WARNING = 2.0
"""A measurement's pixels this many times larger or smaller than the prior's draw a warning."""
_PHANTOM_FIELDS_MM = {
    "ct_body": np.multiply(CT_BODY_SHAPE, CT_BODY_SPACING),
    "ct_head": np.multiply(CT_HEAD_SHAPE, CT_HEAD_SPACING),
    "brain_mri": np.multiply(BRATS_SHAPE, BRATS_SPACING),
}
log = logging.getLogger(__name__)


def training_geometry(config: dict[str, Any]) -> dict[str, Any] | None:
    """``{"pixel_mm": [p1, p2], "field_of_view_mm": [f1, f2], "axis": a}`` of a slice2d prior config's
    training slices (the median over its volumes, with ``"pixel_mm_range"`` when they differ), in the
    order of the slice's two axes; None for other kinds and for data without millimetres (echo)."""
    if config.get("kind") != "slice2d":
        return None
    data, axis = config["data"], config.get("axis", 2)
    in_plane = [a for a in range(3) if a != axis]
    if "phantom" in data:
        field = _PHANTOM_FIELDS_MM.get(data["phantom"]["generator"])
        if field is None:
            return None
        fields = [field[in_plane]]
    else:
        fields = []
        for path in expand_patterns(data["files"]["train"], config.get("source")):
            volume = load(path).to_canonical()
            fields.append(np.multiply(volume.shape, volume.spacing)[in_plane])
    size = np.asarray(config["image_size"], float)
    pixels = [f / size for f in fields]
    median_field = [float(value) for value in np.median(np.stack(fields), axis=0)]
    geometry: dict[str, Any] = {"pixel_mm": [round(float(f / s), 4) for f, s in zip(median_field, size)],
                                "field_of_view_mm": [round(f, 2) for f in median_field], "axis": axis}
    low, high = float(np.min(pixels)), float(np.max(pixels))
    augmentation = config.get("training", {}).get("augmentation")
    if augmentation:  # views zoomed into the field of view: finer pixels, down to 1 / zoom
        zoom = augmentation.get("zoom_range", [1.0, 4.0])
        low, high = low / zoom[1], high / zoom[0]
        geometry["augmentation"] = augmentation
    if high > low * (1 + 1e-3):
        geometry["pixel_mm_range"] = [round(low, 4), round(high, 4)]
    return geometry


def prior_geometry(content: dict[str, Any]) -> dict[str, Any] | None:
    """The training geometry of a prior from its prior.json content (recorded, else derived from its
    phantom config); None where neither says."""
    training = content.get("training") if isinstance(content.get("training"), dict) else {}
    if isinstance(training.get("geometry"), dict):
        return training["geometry"]
    config = training.get("config")
    if isinstance(config, dict) and "phantom" in config.get("data", {}):
        return training_geometry(config)
    return None


def learned_pixel_range(geometry: dict[str, Any]) -> tuple[float, float]:
    """(smallest, largest) in-plane pixel in mm of a prior's training slices (equal without augmentation)."""
    low, high = geometry.get("pixel_mm_range") or [float(np.mean(geometry["pixel_mm"]))] * 2
    return float(low), float(high)


def pixel_matrix(shape: tuple[int, int], pixel_mm: float, content: dict[str, Any], multiple: int,
                 source: str | None = None) -> tuple[int, int]:
    """The in-plane matrix over the field of view of a ``shape`` grid of ``pixel_mm`` pixels whose
    pixels are the size the prior learned (prior.json ``content``), each side a multiple of
    ``multiple`` (the network's down-sampling), the pixels kept square.

    Pixels within the learned range stay as they are (the matrix rounded up to the multiple: a
    233 x 233 grid of 1 mm becomes 240 x 240 of 0.971 mm); finer ones are coarsened to the range's
    smallest pixel (the matrix rounded down, so no pixel is finer than the prior saw), coarser ones
    refined to its largest (rounded up). Example: 512 x 512 of 0.48 mm with a prior of 1.5-6 mm and
    multiple 4 gives 160 x 160 (1.536 mm).

    Raises:
        InputError: naming ``source``, when the prior records no training pixel size, or when square
            pixels and sides of the multiple would need more than twice the measured matrix (sides
            such as 240 x 233).
    """
    geometry = prior_geometry(content)
    if geometry is None:
        raise InputError(source, "resample pixel needs the pixel size the prior learned, and its prior.json does "
                                 "not record one (training.geometry); use resample prior (its matrix)")
    low, high = learned_pixel_range(geometry)
    common = math.gcd(*shape)
    units = [n // common for n in shape]  # the sides' ratio in lowest terms, kept for square pixels
    step = math.lcm(*(multiple // math.gcd(multiple, unit) for unit in units))
    field = common * pixel_mm  # mm per unit of the ratio
    if pixel_mm < low:
        scale = step * max(1, math.floor(field / low / step))
    elif pixel_mm > high:
        scale = step * math.ceil(field / high / step)
    else:
        scale = step * math.ceil(common / step)
    if scale > 2 * common and pixel_mm <= high:
        raise InputError(source, f"cannot be put on a grid of the prior's pixel size: with square pixels and sides that "
                                 f"are multiples of {multiple} (the prior's network), its {shape[0]} x {shape[1]} image "
                                 f"would need {scale * units[0]} x {scale * units[1]}; use resample prior")
    return scale * units[0], scale * units[1]


def pixel_mismatch(pixel_mm: float, content: dict[str, Any], prior_name: str) -> dict[str, Any]:
    """The facts of a measurement's in-plane pixel size against the prior's pixel size, or the range
    its augmented training covered (``pixel_mm``, ``prior_pixel_mm`` and, more than
    :data:`PIXEL_RATIO_WARNING` outside it, ``geometry_warning``, also logged)."""
    geometry = prior_geometry(content)
    if geometry is None or not pixel_mm > 0:
        return {}
    low, high = learned_pixel_range(geometry)
    facts = {"pixel_mm": round(float(pixel_mm), 4), "prior_pixel_mm": [low, high] if high > low else low}
    ratio = pixel_mm / high if pixel_mm > high else low / pixel_mm
    if ratio > PIXEL_RATIO_WARNING:
        learned = f"{low:.3g}-{high:.3g} mm" if high > low else f"{low:.3g} mm"
        facts["geometry_warning"] = (
            f"the measurement's pixels are {pixel_mm:.3g} mm, {ratio:.1f} times {'larger' if pixel_mm > high else 'smaller'} "
            f"than the {learned} the prior {prior_name} learned; expect anatomy it never saw at this scale "
            "(--resample pixel reconstructs on a grid of the pixels it learned)")
        log.warning(facts["geometry_warning"])
    return facts
