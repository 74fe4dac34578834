"""Training data of a prior: the volumes a prior config names, turned into normalised examples.

A prior config (``configs/priors/<name>.yaml``, schema ``prior.schema.yaml``, read by
:func:`medprior.tasks.priors.load_prior_config`) names its data: demo phantoms by seed or the
user's files (glob patterns: single volumes or BraTS case folders). Volumes are loaded in
canonical RAS orientation, normalised with the prior's
:class:`~medprior.diffusion.normalization.Normalization` (percentiles of the whole native volume)
and brought to the prior's ``image_size``:

- ``echo`` (simulated cardiac frames, :mod:`medprior.tasks.echo_frames`): the companded beamformed
  RF of each frame cut into overlapping patches of ``image_size`` (half a patch apart), stacked along
  ``axis``; the ``content`` is the tissue, the haze (at the frame's ``gamma``) or the hazy frame,
  and the condition ``hazy`` adds the hazy patches (a supervised baseline's input);
- ``slice2d``: every slice across ``axis`` (area-resampled in plane to (H, W)), keeping slices
  with at least ``min_foreground`` of their pixels above the window's low end;
- ``volume3d`` segmentation models (head-and-neck PET/CT phantoms by seed, or HECKTOR folders):
  each case on its working grid (:mod:`medprior.tasks.petct_cases`): the label channels (GTVp,
  GTVn) then PET and CT; training cases also mirrored left-right;
- ``wavelet3d``: each whole volume centred-cropped / padded to (D, H, W) (:func:`network_grid`, as
  cWDM fits BraTS' 240 x 240 x 155 to 224 x 224 x 160), with condition contrasts alongside. Brain
  contrast ``any`` makes one model for every missing contrast: each volume gives four examples,
  one per target contrast, conditioned on all four contrasts with the target's channel filled
  with :data:`MISSING_VALUE`.

Examples (:func:`examples`) are float32 tensors (N, C, *image_size) in [-1, 1]; their SHA-256
(:func:`tensor_sha256`) goes into prior.json.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medprior.challenges.brats import BRATS_CONTRASTS, find_brats_cases
from medprior.challenges.hecktor import find_hecktor_cases
from medprior.diffusion.normalization import Normalization
from medprior.errors import InputError
from medprior.io import Volume, load
from medprior.io.crop import crop_or_pad
from medprior.phantoms import brain_mri, ct_body, ct_head, petct_head_neck
from medprior.phantoms.ct import CT_BODY_SHAPE, CT_BODY_SPACING, CT_HEAD_SHAPE, CT_HEAD_SPACING
from medprior.tasks.data import petct_grids, same_field_of_view
from medprior.tasks.echo_frames import training_patches
from medprior.tasks.petct_cases import (PetCtCase, WorkingGrid, head_neck_box, mirror_axis, pet_on_ct, read_case,
                                         training_example)

ANY_CONTRAST = "any"
MISSING_VALUE = 0.0
"""Normalised value of a missing condition contrast: a constant no real image has (background is -1)."""
ECHO_GENERATOR = "echo"
PETCT_GENERATOR = "petct"
ECHO_PHANTOM_KEYS = ("content", "haze", "gamma")   # what only the echo generator reads
PETCT_CONDITIONS = ("pet", "ct")
CT_GENERATORS = {"ct_body": (ct_body, CT_BODY_SHAPE, CT_BODY_SPACING), "ct_head": (ct_head, CT_HEAD_SHAPE, CT_HEAD_SPACING)}


def condition_contrasts(config: dict[str, Any]) -> list[str]:
    """The condition images of a prior config: PET and CT for PET/CT segmentation (``volume3d``),
    all four contrasts for contrast ``any``, else ``data.conditions``."""
    data = config["data"]
    if config["kind"] == "volume3d":
        return list(PETCT_CONDITIONS)
    if data["contrast"] == ANY_CONTRAST:
        return list(BRATS_CONTRASTS) if config["kind"] == "wavelet3d" else []
    return list(data["conditions"])


def _petct_cases(config: dict[str, Any], split: str) -> Iterator[PetCtCase]:
    """The labelled PET/CT cases of a split, PET on the CT grid: phantoms by seed, or the cases of
    the HECKTOR folders that ``data.files`` names (:func:`~medprior.challenges.hecktor.find_hecktor_cases`;
    ``medprior hecktor-split`` makes train / holdout / test folders by seed)."""
    data = config["data"]
    if "phantom" in data:
        phantom = data["phantom"]
        for seed in phantom["seeds"] if split == "train" else phantom["holdout_seeds"]:
            raw = petct_head_neck(seed, **petct_grids(phantom["size"]))
            yield PetCtCase(f"petct-{seed}", raw.ct, pet_on_ct(raw.pet, raw.ct), raw.label)
        return
    seen: dict[str, Path] = {}
    for root in expand_patterns(data["files"]["train" if split == "train" else "holdout"], config.get("source")):
        for case_id, files in find_hecktor_cases(root).items():
            if "label" not in files:
                raise InputError(files["ct"], f"case {case_id} has no label; training needs labelled cases")
            if case_id in seen:
                raise InputError(files["ct"], f"case {case_id} is also in {seen[case_id]}; a case trains once")
            seen[case_id] = root
            yield read_case(case_id, files)


def _petct_examples(config: dict[str, Any], split: str) -> Iterator[tuple[str, torch.Tensor]]:
    """(case id, examples (n, 4, *image_size)) per PET/CT case of the split; training cases twice,
    the second mirrored left-right."""
    grid = WorkingGrid.from_config(config["image_size"], config["segmentation"])
    for case in _petct_cases(config, split):
        example = training_example(case, grid)
        if split == "train":
            example = torch.stack([example, example.flip(1 + mirror_axis(head_neck_box(case, grid)))])
        yield case.case_id, example.reshape(-1, *example.shape[-4:])


def _volumes(config: dict[str, Any], split: str) -> Iterator[tuple[str, list[Volume]]]:
    """(name, [target, *conditions]) per volume of the ``train`` or ``holdout`` split (contrast
    ``any``: the four contrasts; a slice2d prior takes each as a target)."""
    data = config["data"]
    contrasts = list(BRATS_CONTRASTS) if data["contrast"] == ANY_CONTRAST else [data["contrast"], *data["conditions"]]
    if "phantom" in data:
        phantom = data["phantom"]
        seeds = phantom["seeds"] if split == "train" else phantom["holdout_seeds"]
        for seed in seeds:
            if phantom["generator"] == ECHO_GENERATOR:
                yield f"echo-{seed}", _echo_volumes(config, seed)
            elif phantom["generator"] == "brain_mri":
                case = brain_mri(seed, shape=tuple(phantom["size"]))
                yield f"brain_mri-{seed}", [case.contrasts[c] for c in contrasts]
            else:
                generator, shape, spacing = CT_GENERATORS[phantom["generator"]]
                size = tuple(phantom["size"])
                yield f"{phantom['generator']}-{seed}", [generator(seed, shape=size,
                                                                   spacing=same_field_of_view(size, shape, spacing))]
        return
    for path in expand_patterns(data["files"]["train" if split == "train" else "holdout"], config.get("source")):
        if path.is_dir() and any(path.glob("*-t1n.nii*")):
            files = _brats_files(path)
            yield path.name, [load(files[c], need_3d=True).to_canonical() for c in contrasts]
        else:
            if data["conditions"]:
                raise InputError(path, "conditions need BraTS case folders (<case>/<case>-<contrast>.nii.gz)")
            yield path.name, [load(path, need_3d=True).to_canonical()]


def _echo_volumes(config: dict[str, Any], seed: int) -> list[Volume]:
    """Patch stacks (h, w, P) along the prior's ``axis`` of one simulated frame: content, then conditions."""
    phantom = config["data"]["phantom"]
    size = tuple(config["image_size"])
    patches = training_patches(seed, haze=phantom["haze"], gamma_range=tuple(phantom["gamma"]), size=size,
                               stride=tuple(max(1, s // 2) for s in size))
    names = [phantom["content"], *config["data"]["conditions"]]
    return [Volume(np.moveaxis(patches[name].numpy(), 0, config["axis"]), np.eye(4), modality="US") for name in names]


def _brats_files(case_dir: Path) -> dict[str, Path]:
    cases = find_brats_cases(case_dir.parent)
    if case_dir.name not in cases:
        raise InputError(case_dir, "is not a BraTS case folder")
    return cases[case_dir.name]


def expand_patterns(patterns: Sequence[str], source: Any) -> list[Path]:
    """The files and folders the glob ``patterns`` match (``~`` expanded), each pattern's sorted;
    InputError naming ``source`` for a pattern that matches nothing."""
    paths: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.expanduser(pattern)))
        if not matches:
            raise InputError(source, f"data file pattern {pattern!r} matches nothing")
        paths.extend(Path(m) for m in matches)
    return paths


def network_grid(volume: Volume, normalization: Normalization, image_size: Sequence[int]) -> torch.Tensor:
    """``volume`` normalised (range from the whole native volume) on the centred (D, H, W) grid
    ``image_size`` (:func:`medprior.io.crop.crop_or_pad`; padding is the data's 0, so -1 for
    skull-stripped MRI): a (D, H, W) float32 tensor in [-1, 1]."""
    native = torch.from_numpy(np.ascontiguousarray(volume.data, np.float32))
    fitted = torch.from_numpy(crop_or_pad(volume, tuple(image_size)).data)
    return normalization.apply(fitted, normalization.range_of(native))


def any_target_examples(contrasts: torch.Tensor) -> torch.Tensor:
    """(4, 5, D, H, W) examples from the four normalised contrasts (4, D, H, W) in BraTS order:
    example k is contrast k, then the four contrasts with channel k set to :data:`MISSING_VALUE`."""
    examples = []
    for k in range(contrasts.shape[0]):
        conditions = contrasts.clone()
        conditions[k] = MISSING_VALUE
        examples.append(torch.cat([contrasts[k:k + 1], conditions]))
    return torch.stack(examples)


def _to_examples(config: dict[str, Any], normalization: Normalization, volumes: list[Volume],
                 split: str = "train") -> torch.Tensor:
    """Normalised training examples (N, C, *image_size) from one volume and its conditions (a slice2d
    prior's training split with ``training.augmentation``: at its ``source_size``)."""
    if config["kind"] == "wavelet3d":
        channels = torch.stack([network_grid(v, normalization, config["image_size"]) for v in volumes])
        return any_target_examples(channels) if config["data"]["contrast"] == ANY_CONTRAST else channels[None]
    channels = torch.stack([normalization.apply(torch.from_numpy(np.ascontiguousarray(v.data, np.float32)))
                            for v in volumes])  # (C, I, J, K)
    slices = channels.movedim(1 + config["axis"], 0)  # (S, C, h, w)
    if config["data"]["contrast"] == ANY_CONTRAST:  # every contrast's slice is an example of its own
        slices = slices.reshape(-1, 1, *slices.shape[-2:])
    augmentation = config.get("training", {}).get("augmentation")
    size = augmentation["source_size"] if augmentation and split == "train" else config["image_size"]
    slices = F.interpolate(slices, size=tuple(size), mode="area")
    foreground = (slices[:, 0] > -0.99).flatten(1).float().mean(1)
    return slices[foreground >= config["data"]["min_foreground"]]


def examples(config: dict[str, Any], split: str = "train") -> tuple[torch.Tensor, list[str], str]:
    """All examples of a split: (N, C, *image_size) float32 in [-1, 1], the volume names, and the
    grid orientation of the volumes (``"LPS"`` for the phantoms, ``"RAS"`` for files), which the
    reconstructions need to present slices the way the prior saw them."""
    if config["kind"] == "volume3d":
        named = list(_petct_examples(config, split))
        if not named:
            raise InputError(config.get("source"), f"the {split} split of the prior config has no volumes")
        return torch.cat([e for _, e in named]).contiguous(), [n for n, _ in named], "LPS"
    normalization = Normalization(**config["normalization"])
    batches, names, orientations = [], [], set()
    for name, volumes in _volumes(config, split):
        batches.append(_to_examples(config, normalization, volumes, split))
        names.append(name)
        orientations.update(volume.orientation for volume in volumes)
    if not batches:
        raise InputError(config.get("source"), f"the {split} split of the prior config has no volumes")
    if len(orientations) > 1:
        raise InputError(config.get("source"), f"the {split} volumes have different grid orientations "
                                               f"{sorted(orientations)}; slices would mix them")
    return torch.cat(batches).contiguous(), names, orientations.pop()


def tensor_sha256(x: torch.Tensor) -> str:
    """SHA-256 of a tensor's bytes (on the CPU, contiguous): the fingerprint of training examples."""
    return hashlib.sha256(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
