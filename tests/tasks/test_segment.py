"""Tests of PET/CT segmentation: case geometry (PET onto CT, the working grid), the methods' outputs,
the command line from cases to a checked, scored submission, and the training objective."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

from medprior.challenges.hecktor import check_hecktor_submission, write_hecktor_case
from medprior.cli import main
from medprior.diffusion.training import label_classes
from medprior.io import Volume
from medprior.phantoms.petct import petct_head_neck
from medprior.tasks.data import petct_grids
from medprior.tasks.petct_cases import (PetCtCase, WorkingGrid, head_neck_box, label_channels, normalise_pet,
                                        pet_on_ct, probabilities_on_ct)
from medprior.methods import SEGMENT_METHODS
from medprior.tasks.segment import ensemble_on_ct, pet_threshold, sample_probabilities, segment_case
from medprior.tasks.segment_report import evaluate_segmentation

CT_SIZE = (48, 48, 36)


def test_pet_lands_on_the_ct_grid_at_its_world_position():
    """A hot PET voxel appears on the CT grid at the CT voxel of the same world point (hand-computed)."""
    pet = np.zeros((10, 10, 10), np.float32)
    pet[3, 6, 2] = 8.0
    pet_affine = np.array([[-4.0, 0, 0, 20.0], [0, -4.0, 0, 12.0], [0, 0, 4.0, -8.0], [0, 0, 0, 1]])
    ct_affine = np.array([[-2.0, 0, 0, 22.0], [0, -2.0, 0, 14.0], [0, 0, 2.0, -10.0], [0, 0, 0, 1]])
    ct = Volume(np.zeros((20, 20, 20), np.float32), ct_affine)
    on_ct = pet_on_ct(Volume(pet, pet_affine), ct).data
    # world of PET voxel (3, 6, 2): x = 20 - 12 = 8, y = 12 - 24 = -12, z = -8 + 8 = 0
    # CT voxel of that point: i = (22 - 8) / 2 = 7, j = (14 + 12) / 2 = 13, k = (0 + 10) / 2 = 5
    assert np.unravel_index(np.argmax(on_ct), on_ct.shape) == (7, 13, 5)
    assert on_ct[7, 13, 5] == pytest.approx(8.0)
    assert on_ct[8, 13, 5] == pytest.approx(4.0)          # half a PET voxel away: linear interpolation


def _case(seed: int = 3, size=CT_SIZE) -> PetCtCase:
    raw = petct_head_neck(seed, **petct_grids(size))
    return PetCtCase(f"SIM-{seed:03d}", raw.ct, pet_on_ct(raw.pet, raw.ct), raw.label)


def test_working_box_sits_below_the_brain_and_on_the_body():
    case = _case()
    grid = WorkingGrid()
    affine = head_neck_box(case, grid)
    np.testing.assert_allclose(np.abs(np.diag(affine)[:3]), grid.spacing_mm)
    corners = affine @ np.array([[0, 0, 0, 1], [*(np.asarray(grid.shape) - 1), 1]]).T
    top = corners[2].max()
    # the phantom's brain starts at z = 38 mm (medprior.phantoms.petct); the box's top is 5 mm above it,
    # within one 4 mm bin and the CT's 6 mm slices of this small grid
    assert 38.0 + 5.0 - 10.0 <= top <= 38.0 + 5.0 + 4.0
    centre = corners[:3].mean(1)
    assert abs(centre[0]) < 3.0 and abs(centre[1] - 2.0) < 6.0     # the neck's ellipse centre is (0, 2) mm
    label = case.label.data
    world = np.argwhere(label > 0) @ case.label.affine[:3, :3].T + case.label.affine[:3, 3]
    inverse = np.linalg.inv(affine)
    inside = world @ inverse[:3, :3].T + inverse[:3, 3]
    assert np.all(inside > -1) and np.all(inside < np.asarray(grid.shape))     # every tumour voxel is in the box


def test_probabilities_come_back_to_the_ct_grid():
    """A block of class 2 on the working grid is class 2 on the CT grid where the CT voxels lie inside it."""
    case = _case()
    grid = WorkingGrid()
    affine = head_neck_box(case, grid)
    probabilities = np.zeros((3, *grid.shape), np.float32)
    probabilities[0] = 1
    probabilities[:, 10:20, 8:16, 12:24] = np.array([0, 0, 1], np.float32)[:, None, None, None]
    on_ct = probabilities_on_ct(probabilities, affine, case.ct)
    np.testing.assert_allclose(on_ct.sum(0), 1.0, atol=1e-6)
    ijk = np.argwhere(on_ct.argmax(0) == 2)
    inverse = np.linalg.inv(affine)
    working = (ijk @ case.ct.affine[:3, :3].T + case.ct.affine[:3, 3]) @ inverse[:3, :3].T + inverse[:3, 3]
    assert len(ijk) > 0
    assert np.all(working >= [9.5, 7.5, 11.5]) and np.all(working <= [19.5, 15.5, 23.5])


def test_label_channels_and_classes_round_trip():
    label = np.array([[0, 1], [2, 0]])
    channels = label_channels(label)
    assert channels.tolist() == [[[-1, 1], [-1, -1]], [[-1, -1], [1, -1]]]
    assert label_classes(channels[None])[0].tolist() == label.tolist()
    probabilities = sample_probabilities(torch.tensor([[[1.0, -1.0, 0.0, 1.0]], [[-1.0, 1.0, 0.0, 1.0]]])[None])
    np.testing.assert_allclose(probabilities[0, :, 0].numpy(), [[0, 0, 0, 0], [1, 0, 0.5, 0.5], [0, 1, 0.5, 0.5]])


def test_label_loss_is_for_diffusion_models_of_labels_only(tmp_path):
    from medprior.diffusion.priors import VolumePrior3D
    from medprior.diffusion.training import TrainingConfig, train_prior
    network = {"channels": [8, 16], "attention_levels": [False, False], "norm_num_groups": 8, "num_head_channels": 8}
    segmenter = VolumePrior3D((8, 8, 8), channels=2, condition_channels=2, parametrization="x0",
                              network={**network, "architecture": "segresnet"})
    data, conditions = torch.ones(2, 2, 8, 8, 8) * -1, torch.zeros(2, 2, 8, 8, 8)
    with pytest.raises(ValueError, match="label_loss"):
        train_prior(segmenter, data, TrainingConfig(steps=1, batch_size=1, objective="segmentation", label_loss=1.0),
                    tmp_path / "a", conditions=conditions, progress=False)
    with pytest.raises(ValueError, match="segmentation objective"):
        train_prior(segmenter, data, TrainingConfig(steps=1, batch_size=1), tmp_path / "b", conditions=conditions,
                    progress=False)
    with pytest.raises(ValueError, match="label_loss"):
        TrainingConfig(steps=1, label_loss=-1.0)


def test_pet_normalisation_is_monotone_and_bounded():
    suv = np.array([0.0, 2.5, 5.0, 10.0, 40.0])
    values = normalise_pet(suv, 5.0)
    assert values[0] == -1.0 and np.all(np.diff(values) > 0) and values[-1] < 1.0
    assert values[2] == pytest.approx(2 * (1 - np.exp(-1)) - 1)


def test_threshold_grows_40_percent_regions_and_names_them_by_the_midline():
    """Two hot spheres (midline and lateral) in a warm body below a hot brain: each region is exactly the
    voxels connected to its peak at >= 40 % of the peak; the midline one is GTVp, the lateral one GTVn; the
    brain, above the head-and-neck box, is left out."""
    case = _case(5)
    pet = np.full(case.ct.shape, 0.5, np.float32)
    spacing = np.asarray(case.ct.spacing)
    world = np.stack(np.meshgrid(*(np.arange(n) for n in case.ct.shape), indexing="ij"), -1) @ case.ct.affine[:3, :3].T \
        + case.ct.affine[:3, 3]
    primary = np.linalg.norm(world - [0.0, 15.0, -20.0], axis=-1)
    node = np.linalg.norm(world - [-35.0, 5.0, -40.0], axis=-1)
    pet += np.where(primary < 12, 10.0 - primary / 3, 0) + np.where(node < 8, 6.0 - node / 3, 0)
    pet[world[..., 2] > 40.0] = 8.0
    result = pet_threshold(PetCtCase("SIM-005", case.ct, case.ct.with_data(pet)), fraction=0.4, seed_suv=3.0,
                           midline_mm=20.0)
    expected_primary = (primary < 12) & (pet >= 0.4 * pet[primary < 12].max())
    expected_node = (node < 8) & (pet >= 0.4 * pet[node < 8].max())
    assert np.array_equal(result.label == 1, expected_primary)
    assert np.array_equal(result.label == 2, expected_node)
    assert spacing.min() > 0 and result.entropy.max() == 0


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny PET/CT models (diffusion and SegResNet), trained for a few steps on two small phantoms."""
    root = tmp_path_factory.mktemp("petct_models")
    base = {"kind": "volume3d", "image_size": [8, 8, 8],
            "data": {"phantom": {"generator": "petct", "seeds": [3000, 3001], "holdout_seeds": [3100],
                                 "size": list(CT_SIZE)}},
            "segmentation": {"spacing_mm": 15.0}, "normalization": {"kind": "window", "low": -1, "high": 1},
            "parametrization": "x0", "network": {"channels": [8, 16], "attention_levels": [False, False],
                                                 "norm_num_groups": 8, "num_res_blocks": 1, "num_head_channels": 8},
            "training": {"steps": 3, "batch_size": 2, "checkpoint_every": 3, "device": "cpu"}}
    made = {}
    for name, extra in (("diffusion", {"training": {**base["training"], "label_loss": 1.0}}), ("segresnet", {"network": {**base["network"], "architecture": "segresnet"},
                                                          "training": {**base["training"], "objective": "segmentation"}})):
        config = root / f"{name}.yaml"
        config.write_text(yaml.safe_dump({**base, "name": f"petct_{name}", **extra}))
        assert main(["train-prior", "--config", str(config), "--out", str(root / name), "-q"]) == 0
        made[name] = root / name
    return made


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("hecktor")
    for seed in (300, 301):
        raw = petct_head_neck(seed, **petct_grids(CT_SIZE))
        write_hecktor_case(raw.ct, raw.pet, raw.label, root, f"SIM-{seed}")
    return root


def test_segment_check_and_evaluate_from_the_command_line(models, cases, tmp_path, capsys):
    for name, model in models.items():
        out, maps = tmp_path / f"{name}_submission", tmp_path / f"{name}_uncertainty"
        args = ["segment", "--model", str(model), "--input", str(cases), "--output", str(out),
                "--uncertainty", str(maps), "-q"] + (["--samples", "3", "--steps", "2"] if name == "diffusion" else [])
        assert main(args) == 0
        assert sorted(p.name for p in out.glob("*.nii.gz")) == ["SIM-300.nii.gz", "SIM-301.nii.gz"]
        check_hecktor_submission(out, cases)
        image, ct = nib.load(out / "SIM-300.nii.gz"), nib.load(cases / "imagesTr" / "SIM-300__CT.nii.gz")
        assert image.get_data_dtype() == np.uint8 and image.shape == ct.shape
        np.testing.assert_allclose(image.affine, ct.affine, atol=1e-5)
        expected = {"SIM-300__probabilities.nii.gz", "SIM-300__entropy.nii.gz"} | (
            {"SIM-300__variance.nii.gz"} if name == "diffusion" else set())
        assert expected <= {p.name for p in maps.iterdir()}
        probabilities = np.asarray(nib.load(maps / "SIM-300__probabilities.nii.gz").dataobj)
        assert probabilities.shape == (*ct.shape, 3)
        np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-4)
        assert main(["evaluate", "segmentation", "--submission", str(out), "--cases", str(cases), "--uncertainty",
                     str(maps), "--out", str(tmp_path / f"{name}.json"), "-q"]) == 0
        scores = json.loads((tmp_path / f"{name}.json").read_text())
        assert set(scores["cases"]) == {"SIM-300", "SIM-301"}
        assert 0.0 <= scores["aggregate"]["DSCagg_mean"] <= 1.0
        assert 0.0 <= scores["aggregate"]["pooled_ece"] <= 1.0
    capsys.readouterr()
    assert main(["segmentation-figure", "--case", "SIM-300", "--cases", str(cases),
                 str(tmp_path / "diffusion_submission"), str(tmp_path / "segresnet_submission"),
                 "--names", "diffusion", "segresnet", "--uncertainty", str(tmp_path / "diffusion_uncertainty"),
                 "--out", str(tmp_path / "figure.png"), "-q"]) == 0
    assert (tmp_path / "figure.png").stat().st_size > 10_000


def test_perfect_submission_scores_one(cases, tmp_path):
    """The truth submitted as the prediction: DSCagg 1 and HD95 0 for every class present."""
    out = tmp_path / "truth"
    out.mkdir()
    for case in ("SIM-300", "SIM-301"):
        label = nib.load(cases / "labelsTr" / f"{case}.nii.gz")
        from medprior.challenges.hecktor import write_hecktor_prediction
        write_hecktor_prediction(np.rint(np.asarray(label.dataobj)).astype(np.uint8),
                                 cases / "imagesTr" / f"{case}__CT.nii.gz", out / f"{case}.nii.gz")
    scores = evaluate_segmentation(out, cases)
    assert scores["aggregate"]["DSCagg_mean"] == pytest.approx(1.0)
    for row in scores["cases"].values():
        assert row["dice_GTVp"] == pytest.approx(1.0) and row["hd95_GTVp"] == pytest.approx(0.0)


def test_ensemble_of_identical_samples_has_no_variance_and_a_larger_box_uses_sliding_windows(models):
    from medprior.diffusion.prior_file import load_prior
    case = _case(300)
    model = load_prior(models["segresnet"], device="cpu")
    small = segment_case(case, "segresnet", model, SEGMENT_METHODS.parameters("segresnet", "PET/CT", {}))
    large = segment_case(case, "segresnet", model, SEGMENT_METHODS.parameters("segresnet", "PET/CT",
                                                                              {"box": [12, 12, 12]}))
    assert large.probabilities.shape == small.probabilities.shape == (3, *case.ct.shape)
    np.testing.assert_allclose(large.probabilities.sum(0), 1.0, atol=1e-5)
    per_sample = torch.from_numpy(np.repeat(np.eye(3, dtype=np.float32)[[0]], 4, 0)[:, :, None, None, None]
                                  .repeat(8, 2).repeat(8, 3).repeat(8, 4))
    result = ensemble_on_ct(per_sample, head_neck_box(case, WorkingGrid(shape=(8, 8, 8), spacing_mm=15.0)), case)
    assert result.variance.max() == 0 and (result.label == 0).all()


def test_segment_refuses_a_prior_that_is_not_a_segmentation_model(cases, tmp_path, capsys):
    shipped = Path(__file__).resolve().parents[2] / "priors" / "ct_slices"
    code = main(["segment", "--model", str(shipped), "--input", str(cases), "--output", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a PET/CT segmentation model" in err[0]
    assert not (tmp_path / "out").exists()
