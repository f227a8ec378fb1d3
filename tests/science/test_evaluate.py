"""Evaluation metrics: accuracies at each level, calibration error and what sampling alone contributes to it."""

import numpy as np

from tasks.evaluate import ece_sampling_floor, evaluate_probabilities, expected_calibration_error, top_k_accuracy


def test_levels_credit_a_wrong_space_group_of_the_right_system_and_extinction_group():
    classes = np.array([221, 225, 229])
    # the truth is Fm-3m (225); the model prefers Pm-3m (221): same crystal system, another extinction group
    proba = np.array([[0.6, 0.3, 0.1]])
    metrics = evaluate_probabilities(proba, classes, [225])
    assert metrics["sg_top1"] == 0.0 and metrics["sg_top3"] == 1.0
    assert metrics["crystal_system_accuracy"] == 1.0
    assert metrics["extinction_group_accuracy"] == 0.0
    assert top_k_accuracy(proba, classes, np.array([225]), 2) == 1.0


def test_calibration_error_of_known_cases():
    confidence = np.array([0.9] * 10 + [0.3] * 10)
    correct = np.array([1.0] * 9 + [0.0] + [1.0] * 3 + [0.0] * 7)
    assert expected_calibration_error(confidence, correct) < 1e-12  # each bin right as often as it says
    assert abs(expected_calibration_error(confidence, np.ones(20)) - (0.5 * 0.1 + 0.5 * 0.7)) < 1e-12


def test_a_calibrated_model_sits_at_the_sampling_floor_and_an_overconfident_one_above_it():
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0.05, 0.95, 1600)
    calibrated = (rng.random(1600) < confidence).astype(float)
    floor = ece_sampling_floor(confidence)
    assert 0.01 < floor < 0.05  # 1,600 answers in 15 bins cannot show an ECE of zero
    assert expected_calibration_error(confidence, calibrated) < 2 * floor
    overconfident = (rng.random(1600) < confidence - 0.15).astype(float)
    assert expected_calibration_error(confidence, overconfident) > 3 * floor
    assert ece_sampling_floor(np.tile(confidence, 25)) < floor / 3  # the floor falls as 1/sqrt(n)
    assert ece_sampling_floor(np.zeros(0)) == 0.0
