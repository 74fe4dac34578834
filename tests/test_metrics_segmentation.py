"""Segmentation metrics (Dice, aggregated Dice, HD95) and uncertainty scores (AUROC, ECE) against
hand-computed values, brute-force numpy/scipy surface distances and sklearn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_erosion, gaussian_filter, generate_binary_structure
from scipy.spatial.distance import cdist
from sklearn.metrics import roc_auc_score

from medprior.errors import ParameterError
from medprior.metrics import aggregated_dice, dice, expected_calibration_error, hd95, uncertainty_auroc

TRUTH = np.array([[1, 1, 0],
                  [2, 0, 0]])
PREDICTION = np.array([[1, 0, 0],
                       [2, 2, 1]])


# ------------------------------------------------------------------ Dice

@pytest.mark.parametrize(("label", "expected"), [
    (1, 2 * 1 / (2 + 2)),  # T = {(0,0), (0,1)}, P = {(0,0), (1,2)}
    (2, 2 * 1 / (1 + 2)),  # T = {(1,0)}, P = {(1,0), (1,1)}
    (0, 2 * 1 / (3 + 2)),  # T = {(0,2), (1,1), (1,2)}, P = {(0,1), (0,2)}
])
def test_dice_by_hand(label: int, expected: float) -> None:
    assert dice(TRUTH, PREDICTION, label) == pytest.approx(expected, abs=1e-15)


def test_dice_is_nan_when_the_class_is_absent_from_both_and_zero_when_from_one() -> None:
    assert np.isnan(dice(TRUTH, PREDICTION, 3))
    assert dice(np.zeros((2, 3), int), PREDICTION, 1) == 0.0


def test_dice_accepts_tensors_and_float_label_maps() -> None:
    expected = dice(TRUTH, PREDICTION, 2)
    assert dice(torch.from_numpy(TRUTH), torch.from_numpy(PREDICTION), 2) == expected
    assert dice(TRUTH.astype(np.float64), PREDICTION.astype(np.float32), 2) == expected


def test_dice_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="shape"):
        dice(TRUTH, PREDICTION[:, :2], 1)
    with pytest.raises(ValueError, match="integer label map"):
        dice(TRUTH + 0.5, PREDICTION, 1)
    with pytest.raises(ValueError, match="integer class label"):
        dice(TRUTH, PREDICTION, 1.0)


# ------------------------------------------------------------------ aggregated Dice

def two_cases() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Case A (2, 4): class 1 fills the truth (8 voxels), 6 predicted, 2 false-positive class-2 voxels.
    Case B (3, 3): one class-1 voxel missed (one predicted elsewhere), two class-2 voxels found."""
    truth_a = np.ones((2, 4), int)
    pred_a = np.array([[1, 1, 1, 1], [1, 1, 2, 2]])
    truth_b = np.array([[1, 0, 0], [0, 2, 2], [0, 0, 0]])
    pred_b = np.array([[0, 1, 0], [0, 2, 2], [0, 0, 0]])
    return [truth_a, truth_b], [pred_a, pred_b]


def test_aggregated_dice_is_the_pooled_ratio_by_hand() -> None:
    truths, predictions = two_cases()
    scores = aggregated_dice(truths, predictions)
    class_1 = 2 * (6 + 0) / ((8 + 6) + (1 + 1))
    class_2 = 2 * (0 + 2) / ((0 + 2) + (2 + 2))
    assert scores == pytest.approx({1: class_1, 2: class_2, "mean": (class_1 + class_2) / 2}, abs=1e-15)


def test_aggregated_dice_differs_from_the_mean_of_per_case_dice() -> None:
    truths, predictions = two_cases()
    scores = aggregated_dice(truths, predictions)
    per_case = {label: np.mean([dice(t, p, label) for t, p in zip(truths, predictions)]) for label in (1, 2)}
    assert per_case[1] == pytest.approx((12 / 14 + 0) / 2)
    assert per_case[2] == pytest.approx((0 + 1) / 2)
    assert abs(scores[1] - per_case[1]) > 0.3 and abs(scores[2] - per_case[2]) > 0.1


def test_aggregated_dice_of_a_class_absent_everywhere_is_nan_and_left_out_of_the_mean() -> None:
    truths, predictions = two_cases()
    scores = aggregated_dice(truths, predictions, labels=(1, 2, 7))
    assert np.isnan(scores[7])
    assert scores["mean"] == pytest.approx((scores[1] + scores[2]) / 2, abs=1e-15)
    only_absent = aggregated_dice(truths, predictions, labels=(7,))
    assert np.isnan(only_absent[7]) and np.isnan(only_absent["mean"])


def test_aggregated_dice_of_one_case_is_its_dice() -> None:
    scores = aggregated_dice([torch.from_numpy(TRUTH)], [PREDICTION], labels=(0, 1, 2))
    for label in (0, 1, 2):
        assert scores[label] == dice(TRUTH, PREDICTION, label)


def test_aggregated_dice_rejects_bad_inputs() -> None:
    truths, predictions = two_cases()
    with pytest.raises(ValueError, match=r"predictions\[1\]"):
        aggregated_dice(truths, [predictions[0], predictions[1][:2]])
    with pytest.raises(ValueError, match="1 predictions for 2 truths"):
        aggregated_dice(truths, predictions[:1])
    with pytest.raises(ValueError, match="no cases"):
        aggregated_dice([], [])
    with pytest.raises(ValueError, match="distinct"):
        aggregated_dice(truths, predictions, labels=(1, 1))
    with pytest.raises(ValueError, match="distinct"):
        aggregated_dice(truths, predictions, labels=())


# ------------------------------------------------------------------ HD95

SPACING = (0.8, 1.5, 3.0)  # mm, deliberately anisotropic


def shifted_cubes(axis: int, shift: int, ndim: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A 5-voxel cube (label 1) and the same cube moved ``shift`` voxels along ``axis``."""
    truth = np.zeros((20,) * ndim, dtype=np.int64)
    truth[(slice(5, 10),) * ndim] = 1
    return truth, np.roll(truth, shift, axis=axis)


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("shift", [1, 2, 3])
def test_hd95_of_shifted_cubes_is_the_shift_in_mm(axis: int, shift: int) -> None:
    """The moved cube's leading face (25 of its 98 surface voxels, > 5 %) lies ``shift`` voxels
    beyond the other cube's face and no surface voxel lies farther: HD95 = shift * spacing[axis]."""
    truth, prediction = shifted_cubes(axis, shift)
    assert hd95(truth, prediction, 1, SPACING) == pytest.approx(shift * SPACING[axis], rel=1e-6)


def test_hd95_of_shifted_squares_in_2d() -> None:
    truth, prediction = shifted_cubes(1, 2, ndim=2)
    assert hd95(truth, prediction, 1, (0.5, 1.25)) == pytest.approx(2 * 1.25, rel=1e-6)
    assert hd95(truth, prediction, 1, 2.0) == pytest.approx(2 * 2.0, rel=1e-6)  # one number: isotropic


def surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a face-neighbour outside it (outside the image counts as outside)."""
    cross = generate_binary_structure(mask.ndim, 1)
    return mask & ~binary_erosion(mask, structure=cross, border_value=0)


def brute_force_hd95(truth: np.ndarray, prediction: np.ndarray, spacing: tuple[float, ...]) -> float:
    """Every surface-voxel pair's distance in mm (cdist), nearest per voxel, 95th percentile of each
    direction (linear interpolation), the larger of the two: MONAI's definition, without MONAI."""
    points_t = np.argwhere(surface(truth)) * np.asarray(spacing)
    points_p = np.argwhere(surface(prediction)) * np.asarray(spacing)
    pairwise = cdist(points_p, points_t)
    return max(np.percentile(pairwise.min(axis=1), 95), np.percentile(pairwise.min(axis=0), 95))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hd95_matches_brute_force_surface_distances_on_random_blobs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape, spacing = (14, 12, 10), (0.7, 1.1, 2.5)

    def blobs() -> np.ndarray:  # labels 0, 1, 2 from smoothed noise; touches the border sometimes
        field = gaussian_filter(rng.normal(size=shape), 1.5)
        return np.digitize(field, np.quantile(field, [0.6, 0.85]))

    truth, prediction = blobs(), blobs()
    for label in (1, 2):
        expected = brute_force_hd95(truth == label, prediction == label, spacing)
        assert expected > 0
        assert hd95(truth, prediction, label, spacing) == pytest.approx(expected, rel=1e-5)


def test_hd95_is_symmetric_and_zero_for_identical_maps() -> None:
    truth, prediction = shifted_cubes(0, 2)
    prediction[12:14, 12:14, 12:14] = 1  # an outlier only the prediction has
    assert hd95(truth, prediction, 1, SPACING) == hd95(prediction, truth, 1, SPACING)
    assert hd95(truth, truth, 1, SPACING) == 0.0


def test_hd95_conventions_for_absent_classes_raise_no_warnings() -> None:
    truth, prediction = shifted_cubes(2, 1)
    empty = np.zeros_like(truth)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(hd95(truth, prediction, 2, SPACING))
        assert np.isnan(hd95(empty, empty, 1, SPACING))
        assert hd95(truth, empty, 1, SPACING) == np.inf
        assert hd95(empty, prediction, 1, SPACING) == np.inf
        assert hd95(torch.from_numpy(truth), torch.from_numpy(prediction), 1, SPACING) == pytest.approx(3.0)


def test_hd95_rejects_bad_inputs() -> None:
    truth, prediction = shifted_cubes(0, 1)
    with pytest.raises(ValueError, match="shape"):
        hd95(truth, prediction[:-1], 1, SPACING)
    with pytest.raises(ValueError, match="spacing"):
        hd95(truth, prediction, 1, (1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        hd95(truth, prediction, 1, (1.0, -1.0, 1.0))
    with pytest.raises(ValueError, match="2D or 3D"):
        hd95(truth[0, 0], prediction[0, 0], 1, 1.0)


# ------------------------------------------------------------------ uncertainty AUROC

def test_uncertainty_auroc_matches_sklearn_with_ties(rng: np.random.Generator) -> None:
    uncertainty = rng.integers(0, 6, size=(20, 30)).astype(float)  # many ties
    wrong = rng.random((20, 30)) < 1 / (1 + np.exp(-(uncertainty - 3)))
    expected = roc_auc_score(wrong.ravel(), uncertainty.ravel())
    assert 0.6 < expected < 0.95
    assert uncertainty_auroc(uncertainty, wrong) == pytest.approx(expected, abs=1e-12)


def test_uncertainty_auroc_matches_sklearn_on_continuous_scores_with_a_mask(rng: np.random.Generator) -> None:
    uncertainty = rng.normal(size=(8, 9, 10))
    wrong = rng.random((8, 9, 10)) < 0.3 + 0.2 * (uncertainty > 0)
    mask = rng.random((8, 9, 10)) < 0.5
    expected = roc_auc_score(wrong[mask], uncertainty[mask])
    assert uncertainty_auroc(uncertainty, wrong, mask=mask) == pytest.approx(expected, abs=1e-12)
    outside_changed = np.where(mask, uncertainty, 1e6)
    assert uncertainty_auroc(outside_changed, wrong, mask=mask) == pytest.approx(expected, abs=1e-12)
    assert uncertainty_auroc(torch.from_numpy(uncertainty), torch.from_numpy(wrong), torch.from_numpy(mask)
                             ) == pytest.approx(expected, abs=1e-12)


def test_uncertainty_auroc_constructed_cases() -> None:
    uncertainty = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    wrong = np.array([False, False, False, True, True, True])
    assert uncertainty_auroc(uncertainty, wrong) == 1.0
    assert uncertainty_auroc(-uncertainty, wrong) == 0.0
    assert uncertainty_auroc(np.full(6, 0.4), wrong) == 0.5  # all tied: each pair counts half
    assert uncertainty_auroc(np.array([1.0, 2.0, 2.0, 3.0]), np.array([0, 1, 0, 1])) == 0.875  # (1 + 0.5 + 1 + 1) / 4


def test_uncertainty_auroc_is_nan_when_all_right_or_all_wrong() -> None:
    uncertainty = np.array([0.1, 0.5, 0.9])
    assert np.isnan(uncertainty_auroc(uncertainty, np.zeros(3, bool)))
    assert np.isnan(uncertainty_auroc(uncertainty, np.ones(3, bool)))
    assert np.isnan(uncertainty_auroc(uncertainty, np.array([True, False, False]), mask=np.array([False, True, True])))


def test_uncertainty_auroc_rejects_bad_inputs() -> None:
    wrong = np.array([True, False, True])
    with pytest.raises(ValueError, match="shape"):
        uncertainty_auroc(np.ones(4), wrong)
    with pytest.raises(ValueError, match="non-finite"):
        uncertainty_auroc(np.array([0.1, np.nan, 0.2]), wrong)
    with pytest.raises(ValueError, match="boolean"):
        uncertainty_auroc(np.ones(3), np.array([0.5, 0.0, 1.0]))
    with pytest.raises(ValueError, match="mask is empty"):
        uncertainty_auroc(np.ones(3), wrong, mask=np.zeros(3, bool))


# ------------------------------------------------------------------ expected calibration error

def six_voxels() -> tuple[np.ndarray, np.ndarray]:
    """(3, 2, 3) probabilities of 6 voxels with confidences 0.9, 0.7, 0.4, 0.4, 0.5, 1.0."""
    voxels = [((0.9, 0.05, 0.05), 0),  # right
              ((0.2, 0.7, 0.1), 0),    # wrong
              ((0.4, 0.3, 0.3), 0),    # right
              ((0.3, 0.3, 0.4), 0),    # wrong
              ((0.5, 0.25, 0.25), 1),  # wrong; confidence 0.5 sits on the bin edge: upper bin
              ((1.0, 0.0, 0.0), 0)]    # right; confidence 1 is in the last (closed) bin
    probabilities = np.array([p for p, _ in voxels]).T.reshape(3, 2, 3)
    truth = np.array([t for _, t in voxels]).reshape(2, 3)
    return probabilities, truth


def test_ece_two_bins_by_hand() -> None:
    """Bin [0, 0.5): 2 voxels, acc 1/2, conf 0.4; bin [0.5, 1]: 4 voxels, acc 2/4, conf 3.1/4."""
    probabilities, truth = six_voxels()
    expected = 2 / 6 * abs(0.5 - 0.4) + 4 / 6 * abs(0.5 - 3.1 / 4)
    assert expected == pytest.approx(1.3 / 6)
    assert expected_calibration_error(probabilities, truth, bins=2) == pytest.approx(expected, abs=1e-12)


def test_ece_with_a_mask_scores_only_the_voxels_inside() -> None:
    """Inside: voxels 0, 1, 2 (conf 0.9 right, 0.7 wrong, 0.4 right); 2 bins."""
    probabilities, truth = six_voxels()
    mask = np.array([[True, True, True], [False, False, False]])
    expected = 1 / 3 * abs(1 - 0.4) + 2 / 3 * abs(0.5 - 0.8)
    assert expected_calibration_error(probabilities, truth, bins=2, mask=mask) == pytest.approx(expected, abs=1e-12)


def test_ece_is_small_for_calibrated_and_large_for_overconfident_predictions(rng: np.random.Generator) -> None:
    n = 200_000
    p = rng.random(n)
    probabilities = np.stack([1 - p, p])
    calibrated = (rng.random(n) < p).astype(np.int64)
    assert expected_calibration_error(probabilities, calibrated) < 0.01
    # labels drawn with probability 0.5 + (p - 0.5) / 2: accuracy falls short of confidence c by (c - 0.5) / 2,
    # whose mean over c ~ U(0.5, 1) is 0.125; all bins err the same way, so binning does not hide it
    overconfident = (rng.random(n) < 0.5 + (p - 0.5) / 2).astype(np.int64)
    assert expected_calibration_error(probabilities, overconfident) == pytest.approx(0.125, abs=0.01)


def test_ece_accepts_float32_softmax_tensors(rng: np.random.Generator) -> None:
    logits = torch.from_numpy(rng.normal(size=(4, 6, 7, 5))).float()
    probabilities = torch.softmax(logits, dim=0)
    truth = torch.from_numpy(rng.integers(0, 4, size=(6, 7, 5)))
    expected = expected_calibration_error(probabilities.double().numpy(), truth.numpy())
    assert expected_calibration_error(probabilities, truth) == pytest.approx(expected, abs=1e-6)


def test_ece_rejects_bad_probabilities_and_labels() -> None:
    probabilities, truth = six_voxels()
    with pytest.raises(ValueError, match="sum to 1"):
        expected_calibration_error(probabilities * 0.99, truth)
    expected_calibration_error(probabilities * 0.9995, truth)  # within the 1e-3 tolerance
    bad = probabilities.copy()
    bad[:, 0, 0] = (1.2, -0.1, -0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error(bad, truth)
    bad[:, 0, 0] = (np.nan, 0.5, 0.5)
    with pytest.raises(ValueError, match="non-finite"):
        expected_calibration_error(bad, truth)
    with pytest.raises(ValueError, match="shape"):
        expected_calibration_error(probabilities, truth[:, :2])
    with pytest.raises(ValueError, match="0..2"):
        expected_calibration_error(probabilities, truth + 2)
    with pytest.raises(ValueError, match="bins"):
        expected_calibration_error(probabilities, truth, bins=0)
    with pytest.raises(ParameterError):
        expected_calibration_error(probabilities, truth + 0.5)
