"""The reconstruction stage: simulate measurements from volumes, reconstruct them.

Reconstruction itself (:func:`reconstruct`, :func:`reconstruct_file`) lives in
:mod:`medprior.tasks.recon_methods` and is re-exported here; measurements become problems in
:mod:`medprior.tasks.problems`; scores and figures are :mod:`medprior.tasks.recon_report`'s. MRI
simulations store the ESPIRiT coil maps every method then uses.

Volumes ``(I, J, K)`` meet the operators as slice batches ``(K, I, J)``: ``K`` (axial) is the
batch axis. CT works in linear attenuation (1/mm, from HU with the voxel size as path length unit)
and writes HU; MRI simulates complex images (magnitude times a smooth phase) with birdcage coils and
writes magnitudes. Reconstructions land on the measurement's image grid, so they carry the
original world geometry.
"""

from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from medprior.checks import require_choice, require_memory, require_schema, require_seed
from medprior.errors import InputError, ParameterError
from medprior.io import Volume, write_sidecar
from medprior.io.measurement import Measurement, write_measurement
from medprior.physics import (CartesianMRI, ParallelBeamCT, birdcage_sensitivities, complex_gaussian_noise,
                              gaussian_mask_1d, hu_to_attenuation, poisson_transmission_noise, random_mask_1d,
                              uniform_mask_1d)
from medprior.physics import acceleration as mask_acceleration
from medprior.physics.ct_parallel import default_n_detectors
from medprior.solvers.problem import DTYPE, from_slices, to_slices
from medprior.tasks.problems import espirit_maps

_RECONSTRUCTION = ("reconstruct", "reconstruct_file")


def __getattr__(name: str) -> Any:
    """``recon.reconstruct`` and ``recon.reconstruct_file``, imported from :mod:`medprior.tasks.recon_methods`
    on first use (PEP 562), so that simulating and scoring do not import MONAI."""
    if name in _RECONSTRUCTION:
        from medprior.tasks import recon_methods
        return getattr(recon_methods, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def central_slab(volume: Volume, slices: int) -> Volume:
    """The central ``slices`` axial slices of ``volume`` (all when 0 or more than there are)."""
    depth = volume.shape[2]
    if slices <= 0 or slices >= depth:
        return volume
    start = (depth - slices) // 2
    affine = volume.affine.copy()
    affine[:3, 3] += affine[:3, 2] * start
    return Volume(volume.data[:, :, start:start + slices], affine, volume.modality, dict(volume.metadata))


def resize_in_plane(volume: Volume, size: Sequence[int] | None) -> Volume:
    """``volume`` area-averaged to ``size`` = (I, J) in plane (same field of view; K kept); None keeps it.

    Voxel ``(0, 0)`` of the result is centred on the block of input voxels it averages, so the world
    geometry (and metrics against the original, via resampling) stays right.
    """
    if size is None or tuple(size) == tuple(volume.shape[:2]):
        return volume
    factors = [n / int(m) for n, m in zip(volume.shape[:2], size)]
    data = torch.nn.functional.interpolate(to_slices(volume.data)[:, None], size=tuple(int(m) for m in size),
                                           mode="area")[:, 0]
    affine = volume.affine.copy()
    for axis, factor in enumerate(factors):
        affine[:3, 3] += affine[:3, axis] * (factor - 1) / 2
        affine[:3, axis] *= factor
    return Volume(from_slices(data), affine, volume.modality, dict(volume.metadata))


def measured_slab(volume: Volume, slices: int, size: Sequence[int] | None) -> Volume:
    """What ``simulate_*`` measures, so also the ground truth: the central slab, resized in plane."""
    return resize_in_plane(central_slab(volume, slices), size)


def _in_plane_pixel_mm(volume: Volume) -> float:
    sx, sy, _ = volume.spacing
    if abs(sx - sy) > 1e-3 * max(sx, sy):
        raise InputError(volume.metadata.get("source"), f"needs square in-plane pixels, has {sx:.4g} x {sy:.4g} mm")
    return sx


SIMULATION_KEYS = {
    "ct": {"views": "recon.ct.settings[].views", "arc_deg": "recon.ct.settings[].arc_deg",
           "start_deg": "recon.ct.settings[].start_deg", "photons": "recon.ct.settings[].photons",
           "slices": "recon.ct.slices", "size": "recon.ct.size"},
    "mri": {"acceleration": "recon.mri.settings[].acceleration", "mask": "recon.mri.settings[].mask",
            "center_fraction": "recon.mri.settings[].center_fraction", "coils": "recon.mri.coils",
            "snr_db": "recon.mri.snr_db", "slices": "recon.mri.slices", "size": "recon.mri.size"},
}
"""The config schema key whose range each simulation parameter shares (``seed``: any seed)."""

# Peak memory of simulate_ct, measured (ru_maxrss) at 64^2 x 2000 views, 128^2 x 1000 views and 64^2 x
# 400 slices: the footprint system matrix has about 2.3 nonzeros per view and pixel, and building A and
# A^T (COO triplets, their concatenation, two CSR copies, the float32 torch copies) peaks at 62-68 bytes
# per nonzero; the float32 sinograms and slabs are copied about 8 times (forward, noise in float64, file).
_CT_MATRIX_BYTES_PER_VIEW_PIXEL = 2.3 * 72
_COPIES = 8


def check_simulation(modality: str, **parameters: Any) -> dict[str, Any]:
    """Simulation parameters (those of :func:`simulate_ct` or :func:`simulate_mri`) checked against
    the ranges of the schema's ``recon.ct`` / ``recon.mri`` keys before any work: a ParameterError
    names the parameter. Returns them typed (ints, floats, lists)."""
    keys = SIMULATION_KEYS[require_choice("modality", modality, tuple(SIMULATION_KEYS))]
    checked = {}
    for name, value in parameters.items():
        if name == "seed":
            checked[name] = require_seed(name, value)
        elif name == "setting":
            checked[name] = str(value)
        elif name in keys:
            checked[name] = require_schema(name, value, keys[name])
        else:
            raise ParameterError(name, f"is not a {modality} simulation parameter; they are {', '.join(keys)}, seed")
    return checked


def slab_shape(volume_shape: Sequence[int], slices: int, size: Sequence[int] | None) -> tuple[int, int, int]:
    """The (I, J, K) shape :func:`measured_slab` gives, without computing it."""
    depth = int(volume_shape[2])
    in_plane = tuple(int(n) for n in (size if size is not None else volume_shape[:2]))
    return (*in_plane, depth if slices <= 0 or slices >= depth else int(slices))  # type: ignore[return-value]


def require_slab_fits(shape: Sequence[int]) -> None:
    """Refuse, naming ``size``, a slab (I, J, K) whose float32 copies alone exceed the free memory,
    before the views or coils that multiply it are counted."""
    require_memory("size", _COPIES * 4.0 * float(np.prod(shape, dtype=np.float64)),
                   f"a {' x '.join(str(int(n)) for n in shape)} slab")


def ct_simulation_bytes(shape: Sequence[int], views: int) -> float:
    """Estimated peak memory (bytes) of :func:`simulate_ct` for a slab ``shape`` (I, J, K): the
    system matrix (views x pixels) and the sinograms (slices x views x detectors)."""
    height, width, slices = (int(n) for n in shape)
    detectors = default_n_detectors((height, width), 1.0)
    return (_CT_MATRIX_BYTES_PER_VIEW_PIXEL * views * height * width
            + _COPIES * 4.0 * slices * (views * detectors + height * width))


def mri_simulation_bytes(shape: Sequence[int], coils: int) -> float:
    """Estimated peak memory (bytes) of :func:`simulate_mri` for a slab ``shape`` (I, J, K): complex64
    k-space of every coil and slice (measured: 5.7-6.2 copies at 128^2 and 256^2, 4-64 coils) and the
    coil maps."""
    height, width, slices = (int(n) for n in shape)
    return _COPIES * 8.0 * height * width * (slices * (coils + 1) + 2 * coils)


def ct_angles(views: int, arc_deg: float = 180.0, start_deg: float = 0.0) -> np.ndarray:
    """``views`` equispaced projection angles (degrees) over ``[start, start + arc)``."""
    return start_deg + arc_deg * np.arange(views) / views


def simulate_ct(volume: Volume, *, views: int, arc_deg: float = 180.0, start_deg: float = 0.0,
                photons: float = 0.0, slices: int = 0, size: Sequence[int] | None = None, seed: int = 0,
                setting: str = "") -> Measurement:
    """Parallel-beam sinograms (line integrals) of a CT volume in HU, slice by slice.

    Args:
        volume: CT in HU with square in-plane pixels.
        views, arc_deg, start_deg: ``views`` angles over ``[start_deg, start_deg + arc_deg)``.
        photons: incident photons per ray ``I0`` for Poisson transmission noise (0: noiseless).
        slices: reconstruct only the central slab of this many slices (0: all).
        size: in-plane image size (I, J) to area-average the volume to first (None: as is).
        seed: noise seed.
        setting: name recorded in the file.

    Raises ParameterError (naming the parameter) for a value out of the schema's range or a
    request larger than the free memory, before any work.
    """
    checked = check_simulation("ct", views=views, arc_deg=arc_deg, start_deg=start_deg, photons=photons,
                               slices=slices, size=size, seed=seed)
    views, arc_deg, start_deg, photons, slices, size, seed = checked.values()
    shape = slab_shape(volume.shape, slices, size)
    require_slab_fits(shape)
    require_memory("views", ct_simulation_bytes(shape, views),
                   f"simulating {views} views of {shape[2]} slices of {shape[0]} x {shape[1]}")
    slab = measured_slab(volume, slices, size)
    pixel_mm = _in_plane_pixel_mm(slab)
    angles = ct_angles(views, arc_deg, start_deg)
    operator = ParallelBeamCT(slab.shape[:2], angles, pixel_size_mm=pixel_mm, dtype=DTYPE)
    sinogram = operator.forward(to_slices(hu_to_attenuation(slab.data)))
    if photons > 0:
        sinogram = poisson_transmission_noise(sinogram, photons, torch.Generator().manual_seed(seed))
    geometry = {"operator": "ParallelBeamCT", "image_shape": list(slab.shape[:2]), "pixel_size_mm": pixel_mm,
                "n_detectors": operator.n_detectors, "detector_spacing": operator.detector_spacing}
    metadata = {"setting": setting, "views": views, "arc_deg": arc_deg, "start_deg": start_deg,
                "photons": photons, "seed": seed, "source": volume.metadata.get("source"),
                "units": "line integrals of attenuation (dimensionless)"}
    return Measurement("CT", sinogram.numpy(), geometry, slab.shape, slab.affine, {"angles_deg": angles}, metadata)


def _smooth_phase(shape: tuple[int, int, int], rng: np.random.Generator, max_rad: float = np.pi / 2) -> np.ndarray:
    """A random low-order (linear + quadratic) phase map in radians, like B0/receive phase."""
    grids = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    terms = [*grids, *(g ** 2 for g in grids)]
    phase = sum(c * t for c, t in zip(rng.uniform(-1, 1, len(terms)), terms))
    return max_rad * phase / max(np.abs(phase).max(), 1e-12)


MASKS = {"uniform": uniform_mask_1d, "random": random_mask_1d, "gaussian": gaussian_mask_1d}


def simulate_mri(volume: Volume, *, acceleration: float, mask: str = "uniform", center_fraction: float = 0.08,
                 coils: int = 8, snr_db: float = 30.0, slices: int = 0, size: Sequence[int] | None = None,
                 seed: int = 0, setting: str = "") -> Measurement:
    """Multi-coil Cartesian k-space of an MR magnitude volume, 2D per axial slice.

    The image is the magnitude times a smooth random phase; readout runs along ``i`` (fully
    sampled), phase encoding along ``j`` with a 1D line mask (the same for every slice). A parameter
    out of the schema's range, or a request larger than the free memory, raises ParameterError
    (naming it) before any work.
    """
    checked = check_simulation("mri", acceleration=acceleration, mask=mask, center_fraction=center_fraction,
                               coils=coils, snr_db=snr_db, slices=slices, size=size, seed=seed)
    acceleration, mask, center_fraction, coils, snr_db, slices, size, seed = checked.values()
    require_choice("mask", mask, tuple(MASKS))
    shape = slab_shape(volume.shape, slices, size)
    require_slab_fits(shape)
    require_memory("coils", mri_simulation_bytes(shape, coils),
                   f"simulating {coils} coils of {shape[2]} slices of {shape[0]} x {shape[1]}")
    rng = np.random.default_rng(seed)
    slab = measured_slab(volume, slices, size)
    image = slab.data * np.exp(1j * _smooth_phase(slab.shape, rng))
    lines = MASKS[mask](slab.shape[1], acceleration, center_fraction, **({} if mask == "uniform" else {"seed": seed}))
    sensitivities = birdcage_sensitivities(slab.shape[:2], coils) if coils > 1 else None
    operator = CartesianMRI(lines, sensitivities, image_shape=slab.shape[:2])
    kspace = operator.forward(to_slices(image, torch.complex64))
    kspace = complex_gaussian_noise(kspace, snr_db, torch.Generator().manual_seed(seed), mask=operator.mask)
    calibration_lines = int(round(center_fraction * slab.shape[1]))
    arrays = {"mask": np.asarray(lines, bool)}
    if coils > 1:  # estimated once here, as a reconstruction would, and used by every method
        try:
            arrays["coil_maps"] = espirit_maps(kspace, calibration_lines).numpy()
        except InputError as error:  # too few central lines for ESPIRiT: the fraction is what to change
            raise ParameterError("center_fraction", f"{center_fraction:g} of {slab.shape[1]} phase-encode lines; "
                                                    f"{error.problem}") from None
    geometry = {"operator": "CartesianMRI", "image_shape": list(slab.shape[:2]), "coils": coils,
                "calibration_lines": calibration_lines}
    metadata = {"setting": setting, "acceleration_requested": acceleration,
                "acceleration": float(mask_acceleration(lines)), "mask": mask, "center_fraction": center_fraction,
                "snr_db": snr_db, "seed": seed, "source": volume.metadata.get("source"), "units": "a.u."}
    return Measurement("MR", kspace.numpy(), geometry, slab.shape, slab.affine, arrays, metadata)


def save_measurement(measurement: Measurement, path: str | os.PathLike, *, source: str | os.PathLike) -> Path:
    """Write the measurement file and its provenance sidecar."""
    written = write_measurement(measurement, path)
    write_sidecar(written, config=measurement.metadata, seeds={"noise": measurement.metadata["seed"]}, inputs=[source])
    return written
