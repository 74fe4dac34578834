"""The segmentation stage: HECKTOR-style PET/CT cases in, GTVp / GTVn labels and uncertainty maps out.

Methods (:data:`medprior.methods.SEGMENT_METHODS`, parameters in the schema's ``segment.<method>``):

- ``diffusion``: the conditional 3D diffusion model of Dong and Gong: a ``volume3d`` prior of the
  label channels (GTVp, GTVn in [-1, 1]) given PET and CT, x0 prediction, sampled ``samples`` times
  with DDIM or DPM-Solver++ from independent noise. Each sample's label channels ``c`` give class
  probabilities ``p_k = (c_k + 1) / 2`` (k = GTVp, GTVn; scaled down where they sum above 1) and
  ``p_0 = 1 - p_1 - p_2``; the ensemble's probability is their mean, the label its argmax, and the
  uncertainty the predictive entropy of the mean (nats) and the variance over the samples of the
  foreground probability ``1 - p_0``;
- ``segresnet`` and ``unet``: MONAI SegResNet / UNet trained with Dice + cross-entropy on the same data
  (softmax probabilities, entropy; no variance);
- ``threshold``: the clinical PET threshold (:func:`pet_threshold`).

The learned methods work on the model's working grid (:mod:`medprior.tasks.petct_cases`); a box larger
than the model's grid (``box``) is covered by MONAI's sliding windows (Gaussian-weighted, ``overlap``).
Their probabilities come back to the CT grid trilinearly; the label is the argmax there.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import nibabel as nib
import numpy as np
import torch
from monai.inferers import sliding_window_inference
from scipy import ndimage as ndi
from torch import Tensor

from medprior.challenges.hecktor import check_hecktor_submission, find_hecktor_cases, write_hecktor_prediction
from medprior.checks import require_finite_output
from medprior.devices import resolve_device
from medprior.diffusion import sample
from medprior.diffusion.prior_file import load_prior, read_prior_json
from medprior.diffusion.priors import Prior
from medprior.errors import InputError, ParameterError
from medprior.io import Volume, atomic_path, write_sidecar
from medprior.io.resample import resample_like
from medprior.progress import progress_bar
from medprior.methods import SEGMENT_METHODS
from medprior.tasks.petct_cases import (UNCERTAINTY_FILES, PetCtCase, WorkingGrid, head_neck_box, network_inputs,
                                        probabilities_on_ct, read_case)


@dataclass
class Segmentation:
    """One case's result on its CT grid: ``label`` uint8 (I, J, K), ``probabilities`` (3, I, J, K)
    float32, ``entropy`` (I, J, K) nats, ``variance`` (I, J, K) or None. ``samples``: the diffusion
    samples' class probabilities (N, 3, *box) on the working grid (``affine``), for ensembles of any
    size (:func:`ensemble_on_ct`)."""

    label: np.ndarray
    probabilities: np.ndarray
    entropy: np.ndarray
    variance: np.ndarray | None = None
    samples: Tensor | None = None
    affine: np.ndarray | None = None


def sample_probabilities(channels: Tensor) -> Tensor:
    """Label channels (N, 2, ...) in [-1, 1] -> class probabilities (N, 3, ...): background, GTVp, GTVn."""
    fg = ((channels.float() + 1) / 2).clamp(0, 1)
    fg = fg / fg.sum(1, keepdim=True).clamp_min(1.0)
    return torch.cat([(1 - fg.sum(1, keepdim=True)).clamp_min(0), fg], dim=1)


def entropy(probabilities: np.ndarray) -> np.ndarray:
    """Predictive entropy (nats) over axis 0 of class probabilities (C, ...)."""
    p = np.clip(probabilities, 1e-12, 1.0)
    return (-(probabilities * np.log(p)).sum(0)).astype(np.float32)


def _working(case: PetCtCase, model: Prior, box: list[int] | None) -> tuple[Tensor, np.ndarray]:
    """The network inputs (2, *box) on the case's working grid of the model's settings, and its affine."""
    grid = WorkingGrid.from_config(model.image_size if box is None else box, model.record["training"]["config"]["segmentation"])
    return network_inputs(case, grid)


def _from_probabilities(probabilities: np.ndarray, variance: np.ndarray | None = None) -> Segmentation:
    """A result from class probabilities (3, I, J, K) on the CT grid: their argmax and entropy."""
    return Segmentation(probabilities.argmax(0).astype(np.uint8), probabilities.astype(np.float32),
                        entropy(probabilities), variance)


def _windows(inputs: Tensor, model: Prior, predictor: Callable[[Tensor], Tensor], overlap: float) -> Tensor:
    """``predictor`` over MONAI's Gaussian-weighted sliding windows of the model's grid: (C, *box)."""
    device = next(model.parameters()).device
    return sliding_window_inference(inputs[None].to(device), model.image_size, 1, predictor, overlap=overlap,
                                    mode="gaussian", sw_device=device, device="cpu")[0]


@torch.no_grad()
def diffusion_ensemble(case: PetCtCase, model: Prior, *, samples: int, steps: int, sampler: str, overlap: float,
                       box: list[int] | None, seed: int, progress: bool = False) -> Segmentation:
    """The ``diffusion`` method: ``samples`` labels drawn from the model given PET and CT, their ensemble
    on the CT grid."""
    inputs, affine = _working(case, model, box)
    generator = torch.Generator().manual_seed(seed)

    def predictor(window: Tensor) -> Tensor:
        x_T = torch.randn((samples, *model.latent_shape(1)[1:]), generator=generator).to(window.device)
        drawn = sample(model.denoiser(condition=window), x_T.shape, steps, sampler=sampler, generator=generator,
                       x_T=x_T, progress=progress)
        return sample_probabilities(drawn).reshape(1, -1, *drawn.shape[2:])

    per_sample = _windows(inputs, model, predictor, overlap)
    per_sample = per_sample.reshape(samples, 3, *per_sample.shape[1:])
    result = ensemble_on_ct(per_sample, affine, case)
    result.samples, result.affine = per_sample, affine
    return result


def ensemble_on_ct(per_sample: Tensor, affine: np.ndarray, case: PetCtCase) -> Segmentation:
    """The ensemble of the samples' class probabilities (N, 3, *box) on the working grid ``affine``,
    on the CT grid: mean probability, its argmax, its entropy and the variance of the foreground."""
    mean = per_sample.mean(0).numpy()
    variance = (1 - per_sample[:, 0]).var(0, unbiased=False).numpy()
    probabilities = probabilities_on_ct(mean, affine, case.ct)
    variance = resample_like(Volume(variance.astype(np.float32), affine), case.ct, order=1, fill=0.0).data
    return _from_probabilities(probabilities, variance)


@torch.no_grad()
def network_prediction(case: PetCtCase, model: Prior, *, overlap: float, box: list[int] | None,
                       progress: bool = False) -> Segmentation:
    """The ``segresnet`` and ``unet`` methods: one softmax pass of the network, on the CT grid."""
    inputs, affine = _working(case, model, box)

    def predictor(window: Tensor) -> Tensor:
        empty = torch.zeros((window.shape[0], model.channels, *window.shape[2:]), device=window.device)
        return torch.softmax(model.network(torch.cat([empty, window], 1), torch.zeros(window.shape[0],
                                                                                     device=window.device)), 1)

    return _from_probabilities(probabilities_on_ct(_windows(inputs, model, predictor, overlap).numpy(), affine, case.ct))


def pet_threshold(case: PetCtCase, *, fraction: float, seed_suv: float, midline_mm: float,
                  progress: bool = False) -> Segmentation:
    """The clinical PET threshold on the CT grid, fully automatic.

    Seeds are the local PET maxima (over 10 mm) of at least ``seed_suv`` inside the head-and-neck box of
    the default working grid (below the brain), hottest first; each seed not yet in a region grows the
    region of voxels connected to it at or above ``fraction`` of its SUV. A region whose centre lies
    within ``midline_mm`` of the body's midline (world x of the box centre) is GTVp, others GTVn.
    Probabilities are the one-hot label (entropy 0).
    """
    pet, shape = case.pet.data, case.ct.shape
    grid = WorkingGrid()
    box_affine = head_neck_box(case, grid)
    inside = resample_like(Volume(np.ones(grid.shape, np.float32), box_affine), case.ct, order=0).data > 0.5
    size = np.maximum(np.round(10.0 / np.asarray(case.ct.spacing)).astype(int), 1)
    peaks = (pet == ndi.maximum_filter(pet, size=size)) & (pet >= seed_suv) & inside
    label = np.zeros(shape, np.uint8)
    midline = (box_affine @ np.r_[(np.asarray(grid.shape) - 1) / 2, 1.0])[0]
    for index in sorted(map(tuple, np.argwhere(peaks)), key=lambda i: -pet[i]):
        if label[index]:
            continue
        regions, _ = ndi.label((pet >= fraction * pet[index]) & inside & (label == 0))
        region = regions == regions[index]
        centre = (case.ct.affine @ np.r_[np.argwhere(region).mean(0), 1.0])[0]
        label[region] = 1 if abs(centre - midline) <= midline_mm else 2
    probabilities = np.stack([label == k for k in range(3)]).astype(np.float32)
    return Segmentation(label, probabilities, np.zeros(shape, np.float32))


MODEL_ARCHITECTURES = {"diffusion_unet": "diffusion", "segresnet": "segresnet", "unet": "unet"}


def model_method(model_dir: str | os.PathLike) -> str:
    """The method a segmentation model folder runs (from its prior.json); InputError for other priors."""
    record = read_prior_json(model_dir)
    config = (record.get("training") or {}).get("config") or {}
    if record.get("kind") != "volume3d" or "segmentation" not in config:
        raise InputError(model_dir, f"is a {record.get('kind')} prior, not a PET/CT segmentation model "
                                    "(volume3d, trained from a petct config)")
    return MODEL_ARCHITECTURES[record["network"].get("architecture", "diffusion_unet")]


def segment_case(case: PetCtCase, method: str, model: Prior | None, parameters: dict[str, Any],
                 progress: bool = False) -> Segmentation:
    """Run ``method`` (with its resolved ``parameters``) on one case; the model is None for ``threshold``."""
    run = SEGMENT_METHODS[method].runner
    result = run(case, **parameters, progress=progress) if model is None else run(case, model, **parameters,
                                                                                   progress=progress)
    require_finite_output(case.case_id, result.probabilities, "the class probabilities")
    return result


def _save_map(data: np.ndarray, reference: Path, path: Path) -> None:
    """A float32 map (I, J, K) or (C, I, J, K) -> NIfTI (I, J, K[, C]) on the grid of the NIfTI ``reference``."""
    image = nib.load(reference)
    values = np.moveaxis(data, 0, -1) if data.ndim == 4 else data
    out = nib.Nifti1Image(values.astype(np.float32), image.affine)
    out.set_qform(image.affine, int(image.header["qform_code"]) or 1)
    out.set_sform(image.affine, int(image.header["sform_code"]) or 1)
    with atomic_path(path) as temporary:
        nib.save(out, str(temporary))


def segment_folder(input_dir: str | os.PathLike, output_dir: str | os.PathLike, *, method: str | None = None,
                   model_dir: str | os.PathLike | None = None, options: dict[str, Any] | None = None,
                   uncertainty_dir: str | os.PathLike | None = None, device: str = "auto",
                   progress: bool = True) -> list[Path]:
    """Segment every HECKTOR case under ``input_dir`` into the flat submission folder ``output_dir``
    (``<ID>.nii.gz``, uint8 on each case's CT grid) and, if given, the uncertainty maps
    (:data:`UNCERTAINTY_FILES`) into ``uncertainty_dir``.

    The method is the model's (``model_dir``) or ``method`` (``threshold`` needs no model); parameters
    are checked before any work, and each folder appears only when every case is written and the
    submission passes :func:`medprior.challenges.hecktor.check_hecktor_submission`.
    """
    if model_dir is not None:
        found = model_method(model_dir)
        if method is not None and method != found:
            raise ParameterError("--method", f"{method} does not match the model {model_dir}, a {found} model")
        method = found
    if method is None:
        raise ParameterError("--model", "give a segmentation model folder, or --method threshold")
    parameters = SEGMENT_METHODS.parameters(method, "PET/CT", options or {})
    if method != "threshold" and model_dir is None:
        raise ParameterError("--model", f"method {method} needs its model folder")
    cases = find_hecktor_cases(input_dir)
    if not cases:
        raise InputError(input_dir, "holds no HECKTOR cases (<ID>__CT.nii.gz with <ID>__PT.nii.gz)")
    model = None if model_dir is None else load_prior(model_dir, device=resolve_device(device))
    seconds = {}
    with ExitStack() as stack:   # both folders appear together, after the last case and the check
        folder = stack.enter_context(atomic_path(Path(output_dir), directory=True))
        maps = None if uncertainty_dir is None else stack.enter_context(atomic_path(Path(uncertainty_dir), directory=True))
        for case_id, files in progress_bar(cases.items(), desc=f"segmentation ({method})", unit="case", show=progress):
            started = time.perf_counter()
            result = segment_case(read_case(case_id, files, with_label=False), method, model, parameters)
            seconds[case_id] = round(time.perf_counter() - started, 2)
            write_hecktor_prediction(result.label, files["ct"], folder / f"{case_id}.nii.gz")
            if maps is not None:
                for name, data in (("probabilities", result.probabilities), ("entropy", result.entropy),
                                   ("variance", result.variance)):
                    if data is not None:
                        _save_map(data, files["ct"], maps / f"{case_id}{UNCERTAINTY_FILES[name]}")
        check_hecktor_submission(folder, input_dir)
    config = {"method": method, "model": None if model_dir is None else str(model_dir), **parameters,
              "device": device, "seconds_per_case": seconds}
    write_sidecar(output_dir, config=config, seeds={"sampling": parameters.get("seed")})
    return sorted(Path(output_dir).glob("*.nii.gz"))
