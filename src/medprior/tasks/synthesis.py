"""Missing-contrast brain MRI synthesis (BraSyn) with conditional 3D wavelet diffusion priors (cWDM).

A *synthesis model* is a folder holding either

- one conditional :class:`~medprior.diffusion.priors.WaveletPrior3D` trained with brain contrast
  ``any`` (its ``prior.json`` at the top): it synthesizes any contrast from the four, the missing
  one blanked (:data:`medprior.tasks.datasets.MISSING_VALUE`); or
- one prior per target contrast in subfolders ``t1n/``, ``t1c/``, ``t2w/``, ``t2f/``, each trained
  with that contrast and the other three as conditions (in the order its config lists them).

Either may be trained with the ``regression`` objective (:mod:`medprior.diffusion.training`): the
same network predicting the contrast in one evaluation, the deterministic baseline. A third kind
of folder holds :data:`HISTOGRAM_FILE` (:func:`fit_histogram_mean`), the simplest baseline: the
mean of the present contrasts (each normalised to [0, 1]) with its in-brain histogram matched to
the missing contrast's training histogram (rank by rank, so the contrast's tissue ordering is
lost and only its intensity distribution is right).

Each case (a BraTS case folder with one contrast missing) goes through the steps of training in
reverse:

1. the present contrasts are put in the orientation the prior was trained in, normalised by their
   own 0.5 / 99.5 percentiles to [-1, 1] and centred-cropped / padded to the network grid
   (:func:`medprior.tasks.datasets.network_grid`);
2. the prior samples the missing contrast (DDIM or DPM-Solver++, ``steps`` network evaluations,
   seeded);
3. the sample goes back to the native grid, is mapped from [-1, 1] to [0, 1] (BraSyn scores
   after normalising each image to [0, 1] itself, so this is the scale it compares) and set to 0
   outside the brain (the voxels where every present contrast is 0), and is written as
   ``<case>-<missing>.nii.gz`` with the geometry of the present contrasts.

:func:`synthesize` writes all cases into one flat folder, the BraSyn submission layout, atomically
(the folder appears complete or not at all) and checks it with
:func:`medprior.challenges.brasyn.check_submission`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medprior.challenges.brasyn import check_submission, evaluate_synthesis, missing_contrast, nifti_geometry
from medprior.challenges.brats import BRATS_CONTRASTS, find_brats_cases
from medprior.checks import require_schema, require_seed
from medprior.devices import resolve_device
from medprior.progress import progress_bar
from medprior.diffusion.prior_file import PRIOR_JSON, load_prior, prior_modality, read_prior_json
from medprior.diffusion.priors import Prior
from medprior.diffusion.normalization import Normalization
from medprior.errors import InputError
from medprior.figures import synthesis_figure
from medprior.io import Volume, atomic_path, load_nifti, save_nifti, write_json, write_sidecar
from medprior.io.crop import crop_or_pad
from medprior.tasks.datasets import ANY_CONTRAST, MISSING_VALUE, examples, network_grid, tensor_sha256
from medprior.diffusion.orientation import training_orientation
from medprior.tasks.priors import draw_samples, load_prior_config

HISTOGRAM_FILE = "histogram_mean.json"
QUANTILE_LEVELS = 1001  # reference quantiles per contrast: levels 0, 0.001, ..., 1
UNIT_NORMALIZATION = Normalization("percentile", 0.5, 99.5)
AFFINE_TOLERANCE_MM = 1e-4


@dataclass
class SynthesisModel:
    """A synthesis model folder (see the module docstring); priors are loaded on first use.

    Args:
        directory: the model folder.
        device: where the priors run (``"auto"``: CUDA when present).
    """

    directory: Path
    device: str = "auto"
    _loaded: dict[str, tuple[Prior, dict[str, Any]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        if not self.directory.is_dir():
            raise InputError(self.directory, "no such synthesis model folder")
        histogram_file = self.directory / HISTOGRAM_FILE
        self.histograms = _read_histograms(histogram_file) if histogram_file.is_file() else None
        self.unified = (self.directory / PRIOR_JSON).is_file()
        if (self.histograms is None and not self.unified
                and not any((self.directory / c / PRIOR_JSON).is_file() for c in BRATS_CONTRASTS)):
            raise InputError(self.directory, f"not a synthesis model: expected {PRIOR_JSON} (one model for any "
                                             f"contrast), subfolders {', '.join(BRATS_CONTRASTS)} with one prior "
                                             f"each, or {HISTOGRAM_FILE}")

    def check(self, target: str) -> None:
        """InputError naming the folder or file if the model cannot synthesize ``target``."""
        if self.histograms is None:
            self._load(target)
        elif target not in self.histograms:
            raise InputError(self.directory / HISTOGRAM_FILE, f"holds no histogram of {target}")

    def prior_dir(self, target: str) -> Path:
        return self.directory if self.unified else self.directory / target

    def _load(self, target: str) -> tuple[Prior, dict[str, Any]]:
        """The prior that synthesizes ``target`` and the ``training`` section of its prior.json, read
        once (InputError naming the folder if there is none, or if it synthesizes another contrast)."""
        key = ANY_CONTRAST if self.unified else target
        if key not in self._loaded:
            directory = self.prior_dir(target)
            content = read_prior_json(directory)
            training = content.get("training") or {}
            trained_for = training.get("config", {}).get("data", {}).get("contrast")
            if trained_for != key:
                raise InputError(directory / PRIOR_JSON, f"this prior synthesizes {trained_for!r}, "
                                                         f"the model folder needs one for {key!r}")
            modality, decided = prior_modality(content)
            if modality != "MR" or content.get("kind") != "wavelet3d" or not content.get("condition_channels"):
                article = "an" if modality == "MR" else "a"
                raise InputError(directory / PRIOR_JSON, f"is {article} {modality} {content.get('kind')} prior ({decided}) "
                                                         f"with {content.get('condition_channels', 0)} condition "
                                                         "channel(s); brain MRI synthesis needs a conditional MR "
                                                         "wavelet3d prior")
            self._loaded[key] = load_prior(directory, device=resolve_device(self.device)), training
        return self._loaded[key]

    def prior(self, target: str) -> Prior:
        return self._load(target)[0]

    def check_case(self, files: dict[str, Path], target: str) -> None:
        """Refuse, before any work, a case this model cannot synthesize ``target`` of.

        Its present contrasts must be the ones the model was trained to condition on, 3D, and on
        one grid (the same shape, affines within :data:`AFFINE_TOLERANCE_MM`), at least half the
        model's network grid along every axis (a smaller image would be mostly padding, a 2D
        slice all of it), and readable to the last voxel, all finite.

        Raises:
            InputError: naming the file (or model folder) and the problem.
        """
        present = [c for c in BRATS_CONTRASTS if c != target and c in files]
        if not self.unified and self.histograms is None:
            order = self._load(target)[1]["config"]["data"]["conditions"]
            absent = [c for c in order if c not in files]
            if absent:
                raise InputError(self.prior_dir(target), f"needs condition contrast(s) {absent} that the case "
                                                         f"{Path(files[present[0]]).parent if present else ''} lacks")
        first = Path(files[present[0]])
        shape, affine = _volume_geometry(first)
        if len(shape) != 3 or min(shape) < 2:
            raise InputError(first, f"has shape {shape}; synthesis needs a 3D volume")
        for contrast in present[1:]:
            other_shape, other_affine = _volume_geometry(Path(files[contrast]))
            if other_shape != shape:
                raise InputError(files[contrast], f"has shape {other_shape}, but {first.name} of the same case has "
                                                  f"{shape}; a case's contrasts share one grid")
            deviation = float(np.max(np.abs(other_affine - affine)))
            if deviation > AFFINE_TOLERANCE_MM:
                raise InputError(files[contrast], f"has an affine {deviation:.3g} mm off {first.name} of the same case "
                                                  f"(allowed {AFFINE_TOLERANCE_MM:g} mm); a case's contrasts share one grid")
        if self.histograms is None:
            grid = tuple(self.prior(target).image_size)
            if any(n < m / 2 for n, m in zip(shape, grid)):
                raise InputError(first, f"has shape {shape}, less than half the model's network grid {grid} along "
                                        "some axis; the case does not fit this model (resample it, or use a model "
                                        "trained at its size)")
        for contrast in present:  # the voxels too: a truncated file or NaN/Inf is refused before any work
            load_nifti(files[contrast])

    def orientation(self, target: str) -> str:
        return training_orientation(self._load(target)[1])

    def regression(self, target: str) -> bool:
        """Whether the prior for ``target`` was trained with the regression objective."""
        return self._load(target)[1]["config"]["training"].get("objective") == "regression"

    def conditions(self, target: str, present: dict[str, torch.Tensor]) -> torch.Tensor:
        """(1, Cc, D, H, W) condition volumes for ``target`` from the normalised present contrasts."""
        if self.unified:
            blank = torch.full_like(next(iter(present.values())), MISSING_VALUE)
            return torch.stack([present.get(c, blank) if c != target else blank for c in BRATS_CONTRASTS])[None]
        order = self._load(target)[1]["config"]["data"]["conditions"]
        absent = [c for c in order if c not in present]
        if absent:
            raise InputError(self.prior_dir(target), f"needs condition contrast(s) {absent} that the case lacks")
        return torch.stack([present[c] for c in order])[None]


def _volume_geometry(path: Path) -> tuple[tuple[int, ...], np.ndarray]:
    """Shape (trailing singleton dimensions beyond the third dropped) and affine from a NIfTI header."""
    shape, affine = nifti_geometry(path)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    return shape, affine


def _read_histograms(path: Path) -> dict[str, np.ndarray]:
    try:
        content = json.loads(path.read_text())
        quantiles = {c: np.asarray(q, dtype=np.float64) for c, q in content["quantiles"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise InputError(path, f"unreadable histogram-mean model ({type(error).__name__}: {error})") from None
    bad = [c for c, q in quantiles.items() if c not in BRATS_CONTRASTS or q.shape != (QUANTILE_LEVELS,)
           or not np.isfinite(q).all() or np.any(np.diff(q) < 0)]
    if bad:
        raise InputError(path, f"quantiles of {bad}: expected {QUANTILE_LEVELS} finite non-decreasing values "
                               "per contrast")
    return quantiles


@torch.no_grad()
def predict(prior: Prior, conditions: torch.Tensor) -> torch.Tensor:
    """A regression-trained prior's prediction (B, C, *image_size) in [-1, 1] from (B, Cc, ...) conditions:
    its network at ``x_t = 0``, ``t = 0``, decoded."""
    device = next(prior.parameters()).device
    denoiser = prior.denoiser(condition=conditions.to(device))
    latent = denoiser(torch.zeros(prior.latent_shape(conditions.shape[0]), device=device),
                      torch.zeros(conditions.shape[0], dtype=torch.long, device=device))
    return prior.decode(latent).clamp(-1, 1)


def synthesize_case(model: SynthesisModel, files: dict[str, Path], *, steps: int = 50, sampler: str = "dpmpp",
                    seed: int = 0) -> tuple[str, Volume]:
    """The missing contrast of one case: ``(contrast, Volume)`` in [0, 1] on the case's grid.

    ``files``: ``{contrast: path}`` of the present contrasts (as :func:`find_brats_cases` gives).
    """
    target = missing_contrast(files)
    model.check_case(files, target)
    native = {c: load_nifti(files[c]) for c in BRATS_CONTRASTS if c != target}
    for contrast, volume in native.items():
        if volume.modality not in ("MR", "unknown"):
            raise InputError(files[contrast], f"is tagged modality {volume.modality}; brain MRI synthesis needs MR contrasts")
    reference = next(iter(native.values()))
    brain = np.any([v.data != 0 for v in native.values()], axis=0)
    if model.histograms is not None:
        data = histogram_mean([unit_range(v.data) for v in native.values()], brain, model.histograms[target])
    else:
        data = _network_synthesis(model, target, native, steps=steps, sampler=sampler, seed=seed)
    data = np.where(brain, data, 0).astype(np.float32)
    return target, Volume(data, reference.affine, "MR", {"contrast": target, "units": "normalised [0, 1]"})


def _network_synthesis(model: SynthesisModel, target: str, native: dict[str, Volume], *, steps: int, sampler: str,
                       seed: int) -> np.ndarray:
    """The prior's synthesis of ``target`` on the native grid, in [0, 1] (not yet masked)."""
    prior = model.prior(target)
    orientation = model.orientation(target)
    present = {c: network_grid(v.to_orientation(orientation), prior.normalization, prior.image_size)
               for c, v in native.items()}
    conditions = model.conditions(target, present)
    if model.regression(target):
        sample = predict(prior, conditions)[0, 0]
    else:
        sample = draw_samples(prior, 1, steps=steps, sampler=sampler, seed=seed, conditions=conditions)[0, 0]
    reference = next(iter(native.values()))
    oriented = reference.to_orientation(orientation)
    on_grid = crop_or_pad(oriented, prior.image_size).with_data(((sample.cpu() + 1) / 2).clamp(0, 1).numpy())
    return crop_or_pad(on_grid, oriented.shape).to_orientation(reference.orientation).data


def unit_range(data: np.ndarray) -> np.ndarray:
    """A volume's 0.5 / 99.5 percentiles mapped to 0 / 1, clipped (BraSyn's normalisation)."""
    volume = torch.from_numpy(np.ascontiguousarray(data, np.float32))
    return ((UNIT_NORMALIZATION.apply(volume) + 1) / 2).numpy()


def histogram_mean(present: list[np.ndarray], brain: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """The mean of the ``present`` [0, 1] volumes, its in-brain voxels replaced rank by rank by the
    target contrast's reference ``quantiles`` (levels 0 ... 1); 0 outside ``brain``."""
    mean = np.mean(present, axis=0)
    out = np.zeros_like(mean, dtype=np.float32)
    values = mean[brain]
    if values.size:
        ranks = np.empty(values.size)
        ranks[np.argsort(values, kind="stable")] = np.linspace(0, 1, values.size)
        out[brain] = np.interp(ranks, np.linspace(0, 1, quantiles.size), quantiles)
    return out


def fit_histogram_mean(config_path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the histogram-mean baseline folder ``out`` from a brain prior config with contrast ``any``:
    per contrast, the :data:`QUANTILE_LEVELS` quantiles of its in-brain [0, 1] intensities over the
    config's training volumes (on the network grid, as the diffusion model sees them)."""
    config = load_prior_config(config_path)
    if config["data"]["contrast"] != ANY_CONTRAST:
        raise InputError(config_path, "the histogram-mean baseline needs a brain config with contrast `any`")
    config["source"] = str(config_path)
    data, names, _ = examples(config, "train")
    levels = torch.linspace(0, 1, QUANTILE_LEVELS, dtype=torch.float64)
    quantiles = {}
    for k, contrast in enumerate(BRATS_CONTRASTS):
        chosen = data[k::len(BRATS_CONTRASTS)]  # any_target_examples: example k of a volume targets contrast k
        present = torch.cat([chosen[:, :1], chosen[:, 1:][:, [c for c in range(4) if c != k]]], dim=1)
        brain = (present > -1).any(dim=1)
        values = ((chosen[:, 0][brain] + 1) / 2).double()
        values = values[:: max(1, values.numel() // 2 ** 24)]
        quantiles[contrast] = torch.quantile(values, levels).tolist()
    out = Path(out)
    with atomic_path(out, directory=True) as temporary:
        write_json(temporary / HISTOGRAM_FILE, {"format": "medprior-histogram-mean", "levels": QUANTILE_LEVELS,
                                                "quantiles": quantiles,
                                                "training": {"config_file": str(config_path), "volumes": names,
                                                             "sha256": tensor_sha256(data)}})
    return out


def synthesize(model_dir: str | os.PathLike, input_dir: str | os.PathLike, output_dir: str | os.PathLike, *,
               steps: int = 50, sampler: str = "dpmpp", seed: int = 0, device: str = "auto",
               progress: bool = True) -> list[Path]:
    """Synthesize the missing contrast of every case under ``input_dir`` into the flat submission
    folder ``output_dir`` (``<case>-<contrast>.nii.gz``); returns the files.

    Every case is checked (exactly one contrast missing, the model has a prior for it) before
    anything is computed, and the folder appears only when all cases are written.
    """
    sampler = require_schema("sampler", sampler, "synthesis.sampler")
    steps = require_schema("steps", steps, "synthesis.steps")
    seed = require_seed("seed", seed)
    cases = find_brats_cases(input_dir)
    if not cases:
        raise InputError(input_dir, "holds no BraTS case folders")
    model = SynthesisModel(Path(model_dir), device=device)
    targets = {case: missing_contrast(files) for case, files in cases.items()}
    for target in sorted(set(targets.values())):
        model.check(target)
    for case, files in cases.items():
        model.check_case(files, targets[case])
    output = Path(output_dir)
    with atomic_path(output, directory=True) as temporary:
        for case, files in progress_bar(cases.items(), desc="synthesis", unit="case", show=progress):
            target, volume = synthesize_case(model, files, steps=steps, sampler=sampler, seed=seed)
            save_nifti(volume, temporary / f"{case}-{target}.nii.gz")
        check_submission(temporary, input_dir)
    write_sidecar(output, config={"model": str(model_dir), "steps": steps, "sampler": sampler, "device": device},
                  seeds={"sampling": seed})
    return sorted(output.glob("*.nii.gz"))


def case_figure(case: str, cases_root: str | os.PathLike, truth_root: str | os.PathLike,
                submissions: dict[str, str | os.PathLike], out: str | os.PathLike) -> Path:
    """PNG of one case (:func:`medprior.figures.synthesis_figure`): its present contrasts and the truth
    (BraSyn-normalised to [0, 1]), and each submission's synthesis (``{name: submission folder}``)."""
    present_files = find_brats_cases(cases_root).get(case)
    truth_files = find_brats_cases(truth_root).get(case)
    if present_files is None or truth_files is None:
        raise InputError(cases_root if present_files is None else truth_root, f"holds no case {case}")
    target = missing_contrast(present_files)
    if target not in truth_files:
        raise InputError(Path(truth_root) / case, f"lacks the dropped contrast {target}")

    def normalised(path: Path) -> Volume:
        volume = load_nifti(path)
        return volume.with_data(unit_range(volume.data))

    present = [(c, normalised(present_files[c])) for c in BRATS_CONTRASTS if c in present_files]
    syntheses = []
    for name, folder in submissions.items():
        path = Path(folder) / f"{case}-{target}.nii.gz"
        if not path.is_file():
            raise InputError(folder, f"has no {path.name}")
        syntheses.append((name, load_nifti(path)))
    label = load_nifti(truth_files["seg"]) if "seg" in truth_files else None
    return synthesis_figure(present, (f"{target} (truth)", normalised(truth_files[target])), syntheses, out,
                            label=label, title=f"{case}: {target} synthesized")


def evaluate_submission(submission_dir: str | os.PathLike, truth_dir: str | os.PathLike, out: str | os.PathLike, *,
                        cases_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """BraSyn scores of a submission (:func:`medprior.challenges.brasyn.evaluate_synthesis`) -> JSON ``out``."""
    scores = evaluate_synthesis(submission_dir, truth_dir, cases_root=cases_dir)
    write_json(out, {"submission": str(submission_dir), "truth": str(truth_dir), **scores})
    return scores
