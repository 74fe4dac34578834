"""Where a measurement becomes an :class:`~medprior.solvers.problem.InverseProblem`: the one place that
knows the modalities.

- :func:`ct_problem`: parallel-beam sinograms (K, views, detectors) of line integrals; the unknown is
  the linear attenuation (1/mm), the image HU; the start image is FBP in HU.
- :func:`mri_problem`: Cartesian k-space (K, coils, H, W) with a phase-encode line mask; coil maps
  given, or estimated once by ESPIRiT from the calibration lines; the image is the magnitude, the
  start image CG-SENSE's magnitude, the phase (for real-valued priors) the calibration phase.
- :func:`problem_from_measurement`: a :class:`~medprior.io.measurement.Measurement` (a file written
  by ``medprior simulate``, or one you build) to either, by its ``geometry.operator``; ESPIRiT maps
  stored with the measurement (``arrays/coil_maps``) are used as they are.

Start images, phases and coil maps are computed on first use, once per problem, so every method
run on one problem shares them. Example, in a notebook::

    problem = ct_problem(sinogram, angles_deg, image_shape=(64, 64), pixel_size_mm=6.0)
    image_hu = solvers.dds(problem, load_prior("priors/ct_slices").denoiser())
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import torch
from torch import Tensor

from medprior.config import defaults
from medprior.errors import InputError
from medprior.io.measurement import Measurement
from medprior.physics import MU_WATER_PER_MM, CartesianMRI, ParallelBeamCT, estimate_sensitivities
from medprior.physics.wrappers import calibration_phase
from medprior.progress import progress_bar
from medprior.solvers import cg_sense, fbp, zero_filled
from medprior.solvers.problem import DTYPE, HounsfieldMap, IntensityMap, InverseProblem

HOUNSFIELD = HounsfieldMap(MU_WATER_PER_MM / 1000.0, MU_WATER_PER_MM, "HU")
"""CT's image units: ``mu = mu_water / 1000 * HU + mu_water`` in 1/mm."""


def ct_problem(sinogram: Tensor | np.ndarray, angles_deg: Sequence[float] | np.ndarray, *,
               image_shape: Sequence[int], pixel_size_mm: float = 1.0, n_detectors: int | None = None,
               detector_spacing: float = 1.0, affine: np.ndarray | None = None,
               device: str | torch.device = "cpu") -> InverseProblem:
    """Parallel-beam CT from plain arrays.

    Args:
        sinogram: line integrals (K, views, detectors), dimensionless.
        angles_deg: the ``views`` projection angles in degrees.
        image_shape: (H, W) of the images.
        pixel_size_mm, n_detectors, detector_spacing: as :class:`~medprior.physics.ParallelBeamCT`
            (``n_detectors`` defaults to the sinogram's).
        affine: the image grid's voxel-to-world matrix (slices turned into a prior's orientation).
        device: where the data and the solvers live.
    """
    y = torch.as_tensor(sinogram).to(device)
    n_detectors = int(y.shape[-1]) if n_detectors is None else n_detectors
    operator = ParallelBeamCT(tuple(int(n) for n in image_shape), np.asarray(angles_deg), n_detectors=n_detectors,
                              detector_spacing=detector_spacing, pixel_size_mm=pixel_size_mm, dtype=DTYPE)
    return InverseProblem(operator, y, direct=partial(fbp, operator, y), units=HOUNSFIELD, nonnegative=True,
                          affine=affine, modality="CT")


def mri_problem(kspace: Tensor | np.ndarray, mask: Tensor | np.ndarray, *, calibration_lines: int,
                coil_maps: Tensor | np.ndarray | None = None, image_shape: Sequence[int] | None = None,
                affine: np.ndarray | None = None, cg_iterations: int | None = None,
                device: str | torch.device = "cpu") -> InverseProblem:
    """Cartesian (multi-coil) MRI from plain arrays.

    Args:
        kspace: (K, coils, H, W) complex, readout along H, phase encoding along W (DC at W // 2).
        mask: the sampled phase-encode lines (W,) or the sampling pattern (H, W), 0/1.
        calibration_lines: fully sampled central lines (ESPIRiT and the image phase use them).
        coil_maps: (K, coils, H, W) sensitivities; None: ESPIRiT from the calibration lines (one
            coil: none needed).
        image_shape: (H, W), default k-space's.
        affine: the image grid's voxel-to-world matrix.
        cg_iterations: CG-SENSE iterations of the start image (default: the schema's
            ``recon.solver.cg_iterations``).
        device: where the data, ESPIRiT and the solvers run.
    """
    y = torch.as_tensor(kspace).to(device)
    if coil_maps is None and y.shape[1] > 1:
        coil_maps = espirit_maps(y, calibration_lines)
    maps = None if coil_maps is None else torch.as_tensor(coil_maps).to(device)
    shape = tuple(int(n) for n in (image_shape or y.shape[-2:]))
    operator = CartesianMRI(np.asarray(mask), maps, image_shape=shape)
    iterations = defaults()["recon"]["solver"]["cg_iterations"] if cg_iterations is None else cg_iterations
    return InverseProblem(operator, y, direct=partial(zero_filled, operator, y),
                          start=partial(cg_sense, operator, y, iterations=iterations),
                          phase=partial(calibration_phase, operator, y, calibration_lines),
                          units=IntensityMap(unit="a.u."), magnitude=True, affine=affine, modality="MR")


def espirit_maps(kspace: Tensor, calibration_lines: int) -> Tensor:
    """ESPIRiT coil maps (K, C, H, W) per slice from the fully sampled readout x central lines, on the
    k-space's device."""
    calibration = (min(kspace.shape[-2], 32), calibration_lines)
    return torch.stack([estimate_sensitivities(slice_kspace, calibration_size=calibration,
                                               kernel_size=min(6, calibration_lines))
                        for slice_kspace in progress_bar(kspace, desc="ESPIRiT coil maps", unit="slice")])


def problem_from_measurement(measurement: Measurement, *, device: str | torch.device = "cpu",
                             name: str | None = None) -> InverseProblem:
    """The problem a measurement describes (its operator, data, units and grid), on ``device``;
    ``name``: what errors call it (default: the volume it was simulated from)."""
    geometry, arrays = measurement.geometry, measurement.arrays
    if geometry["operator"] == "ParallelBeamCT":
        return ct_problem(measurement.data, arrays["angles_deg"], image_shape=geometry["image_shape"],
                          pixel_size_mm=geometry["pixel_size_mm"], n_detectors=geometry["n_detectors"],
                          detector_spacing=geometry["detector_spacing"], affine=measurement.affine, device=device)
    if geometry["operator"] == "CartesianMRI":
        try:
            return mri_problem(measurement.data, arrays["mask"], calibration_lines=geometry["calibration_lines"],
                               coil_maps=arrays.get("coil_maps"), image_shape=geometry["image_shape"],
                               affine=measurement.affine, device=device)
        except InputError as error:  # ESPIRiT's, which knows no file
            if error.source is not None:
                raise
            raise InputError(name or measurement.metadata.get("source"), error.problem) from None
    raise InputError(measurement.metadata.get("source"), f"unknown operator {geometry['operator']!r}")
