"""A measurement on another in-plane image grid of the same field of view, and the result back.

A slice prior models one matrix (``priors/ct_slices``: 64 x 64 whole-body slices of 6 mm pixels), so
a scan measured for a 256 x 256 or 512 x 512 image cannot be reconstructed with it as it is.
:func:`on_grid` moves the measurement's image grid to another matrix over the same field of view,
where the physics allows it exactly:

- CT (parallel beam): the sinogram is the same data whatever grid the image is put on; only the
  operator's pixel size changes (field of view / matrix), with the detector bins kept in mm.
- MRI (Cartesian): the field of view is fixed by the k-space sampling; a coarser matrix is the
  centred crop of k-space (exact: the lower resolution image of the same field of view), a finer
  one its zero-padding with the new lines marked unmeasured (the prior fills them). Coil maps are
  estimated again by ESPIRiT on the new grid.

Both keep the scanner's centre where it was: the rotation centre of CT and the phase origin of
centred Fourier transforms are pixel ``(N // 2, N // 2)`` of an ``N x N`` grid, so that pixel of
the new grid is put on the same world point (a sub-pixel shift of the grid when N is even; the
affine records it). :func:`back_to_measured_grid` puts the result back onto the measurement's own
grid, so it is scored and written like any other reconstruction: MRI by zero-padding its centred
spectrum (:func:`fourier_resize`, the inverse of the crop: every frequency the prior's grid holds is
kept as it is; linear interpolation would damp the upper ones, 1.1 dB lost on an ideally reconstructed
T2w brain at 240 x 240 from 128 x 128, 0.4 dB on DDS with ``priors/brain_slices_mixed``; a prior that
invents those frequencies loses by it instead: ``priors/brain_slices`` 0.9 dB on the MNI152 T1
template), CT by linear interpolation in world mm (:func:`back_to_grid`); and
:func:`consistent_on_grid` then runs a few CG iterations on the measurement's own normal equations
from it: the finer grid takes back from the data what the prior's grid could not hold (MRI: the
k-space the crop left out). On pydicom's real CT slices and the demo bodies at 8 views and at 90
degrees this gained 0.1-0.8 dB with 5 iterations; on the T2w brain at x8, 1.1 dB.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from medprior.errors import InputError
from medprior.io.measurement import Measurement
from medprior.io.resample import sample_on_grid
from medprior.io.volume import Volume
from medprior.physics.mri import fftnc, ifftnc
from medprior.solvers.diffusion import DataConsistency
from medprior.solvers.problem import InverseProblem, from_slices, to_slices


def grid_affine(affine: np.ndarray, shape: tuple[int, int], new_shape: tuple[int, int]) -> np.ndarray:
    """The voxel-to-world matrix of the ``new_shape`` in-plane grid over the field of view of
    (``affine``, ``shape``): in-plane voxel columns scaled by ``shape / new_shape``, and pixel
    ``new_shape // 2`` placed where pixel ``shape // 2`` was (the slice axis unchanged)."""
    affine = np.asarray(affine, dtype=np.float64)
    scales = np.ones(3)
    scales[:2] = np.divide(shape, new_shape)
    new = affine.copy()
    new[:3, :3] = affine[:3, :3] * scales
    centre = np.array([shape[0] // 2, shape[1] // 2, 0.0])
    new_centre = np.array([new_shape[0] // 2, new_shape[1] // 2, 0.0])
    new[:3, 3] = affine[:3, :3] @ centre + affine[:3, 3] - new[:3, :3] @ new_centre
    return new


def _crop_or_pad(array: np.ndarray, size: int, axis: int) -> np.ndarray:
    """The centred ``size`` entries of ``array`` along ``axis`` (DC, index ``n // 2``, goes to
    ``size // 2``), zeros where ``size`` exceeds it."""
    n = array.shape[axis]
    out_shape = list(array.shape)
    out_shape[axis] = size
    out = np.zeros(out_shape, array.dtype)
    offset = size // 2 - n // 2  # where old index 0 lands
    source = slice(max(0, -offset), min(n, size - offset))
    target = slice(source.start + offset, source.stop + offset)
    index_in, index_out = [slice(None)] * array.ndim, [slice(None)] * array.ndim
    index_in[axis], index_out[axis] = source, target
    out[tuple(index_out)] = array[tuple(index_in)]
    return out


def on_grid(measurement: Measurement, new_shape: tuple[int, int],
            source: str | None = None) -> tuple[Measurement, dict[str, Any]]:
    """``measurement`` with its image on a ``new_shape`` in-plane grid over the same field of view,
    and the facts of what was done (``grid``, ``pixel_mm``, ``measured_grid``, ``measured_pixel_mm``,
    ``how``). The same measurement when the grid is already ``new_shape``.

    Raises:
        InputError: naming ``source``, for a field of view that is not square (the new pixels
            must stay square).
    """
    shape = tuple(int(n) for n in measurement.image_shape[:2])
    new_shape = tuple(int(n) for n in new_shape)
    pixel = float(np.linalg.norm(np.asarray(measurement.affine)[:3, :2], axis=0).mean())
    if shape == new_shape:
        return measurement, {"grid": list(shape), "pixel_mm": round(pixel, 4),
                             "how": "the measurement is already on this grid"}
    ratios = np.divide(shape, new_shape)
    if not np.isclose(ratios[0], ratios[1], rtol=1e-6):
        raise InputError(source, f"cannot be put on the prior's {new_shape[0]} x {new_shape[1]} grid: its "
                                 f"{shape[0]} x {shape[1]} image would get pixels that are not square")
    new_pixel = pixel * float(ratios[0])
    geometry = {**measurement.geometry, "image_shape": list(new_shape)}
    arrays = dict(measurement.arrays)
    data = measurement.data
    if geometry["operator"] == "ParallelBeamCT":
        geometry["pixel_size_mm"] = new_pixel
        geometry["detector_spacing"] = float(measurement.geometry["detector_spacing"]) / float(ratios[0])
        how = (f"CT: the operator's pixels set to {new_pixel:.4g} mm (the sinogram unchanged, detector bins kept "
               "in mm)")
    else:
        data = _crop_or_pad(_crop_or_pad(np.asarray(data), new_shape[0], -2), new_shape[1], -1)
        data = (data * np.sqrt(np.prod(new_shape) / np.prod(shape))).astype(measurement.data.dtype)
        mask = np.asarray(arrays["mask"])
        arrays["mask"] = (_crop_or_pad(mask, new_shape[1], -1) if mask.ndim == 1 else
                          _crop_or_pad(_crop_or_pad(mask, new_shape[0], 0), new_shape[1], 1))
        arrays.pop("coil_maps", None)
        geometry["calibration_lines"] = min(int(geometry["calibration_lines"]), new_shape[1])
        cropped = new_shape[1] < shape[1]
        how = (f"MRI: k-space {'cropped' if cropped else 'zero-padded'} to {new_shape[0]} x {new_shape[1]} "
               f"(same field of view, {new_pixel:.4g} mm pixels{'' if cropped else ', the new lines unmeasured'}); "
               "coil maps estimated again")
    regridded = dataclasses.replace(
        measurement, data=data, geometry=geometry, arrays=arrays,
        image_shape=(*new_shape, *measurement.image_shape[2:]),
        affine=grid_affine(measurement.affine, shape, new_shape))
    return regridded, {"grid": list(new_shape), "pixel_mm": round(new_pixel, 4), "measured_grid": list(shape),
                       "measured_pixel_mm": round(pixel, 4), "how": how}


def back_to_grid(image: np.ndarray, affine: np.ndarray, target_affine: np.ndarray,
                 target_shape: tuple[int, ...]) -> np.ndarray:
    """``image`` (I, J, K) on the grid ``affine`` linearly interpolated at the voxel centres of
    (``target_affine``, ``target_shape``), in world mm; the border half pixel takes the nearest
    value. Float32 ``target_shape``."""
    return sample_on_grid(Volume(np.asarray(image, np.float32), np.asarray(affine, np.float64)), target_affine,
                          tuple(target_shape), outside="nearest")


def fourier_resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``image`` (I, J, K) on another in-plane matrix ``shape`` over the same field of view, by
    zero-padding (or cropping) the centred 2D spectrum of each slice (:func:`~medprior.physics.mri.fftnc`:
    DC at pixel ``n // 2``, as :func:`on_grid` puts it); the mean is kept. Real part, float32 ``(*shape, K)``."""
    spectrum = fftnc(torch.from_numpy(np.asarray(image, np.float64)), (0, 1)).numpy()
    resized = torch.from_numpy(_crop_or_pad(_crop_or_pad(spectrum, shape[0], 0), shape[1], 1))
    out = ifftnc(resized, (0, 1)).real.numpy()
    return (out * np.sqrt(shape[0] * shape[1] / (image.shape[0] * image.shape[1]))).astype(np.float32)


def back_to_measured_grid(image: np.ndarray, affine: np.ndarray, measured: Measurement) -> tuple[np.ndarray, str]:
    """``image`` (I, J, K) on the grid ``affine`` that :func:`on_grid` made from ``measured``, put
    back onto the measurement's own grid, and how: MRI by :func:`fourier_resize`, CT by
    :func:`back_to_grid`."""
    if measured.geometry["operator"] == "ParallelBeamCT":
        return back_to_grid(image, affine, measured.affine, measured.image_shape), "linear interpolation"
    return fourier_resize(image, tuple(measured.image_shape[:2])), "centred k-space zero-padded"


def consistent_on_grid(problem: InverseProblem, image: np.ndarray, iterations: int) -> np.ndarray:
    """``iterations`` CG iterations on ``A^T A x = A^T y`` of ``problem`` (the measurement on its own
    grid) from ``image`` (I, J, K, in the problem's image units), as DDS's data step does, with the
    pixels it does not see set to zero (:meth:`InverseProblem.fill_unseen`); the result in image units,
    float32 (I, J, K)."""
    real = problem.real()
    start = real.units.from_image(to_slices(image, real.data.real.dtype).to(real.data.device))
    consistent = DataConsistency(real.operator, real.data, cg_iterations=iterations)(start)
    return from_slices(real.image(real.fill_unseen(consistent)))
