"""Confidence calibration: beta calibration of the top answer, applied by a per-answer temperature."""

import io

import numpy as np
import pytest
from scipy.special import softmax

from tasks.calibration import IDENTITY, beta_calibrated, fit_beta_calibration, with_top_confidence
from tasks.evaluate import expected_calibration_error
from tasks.models import ModelFormatError, SpaceGroupClassifier


def test_an_overconfident_model_is_brought_down_to_how_often_it_is_right():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.1, 0.99, 6000)
    correct = rng.random(6000) < confidence ** 2  # right less often than it says, more so at low confidence
    params = fit_beta_calibration(confidence[:3000], correct[:3000])
    assert params[0] > 1.3  # the map bends: a single temperature would not
    recalibrated = beta_calibrated(params, confidence[3000:])
    assert expected_calibration_error(confidence[3000:], correct[3000:]) > 0.1
    assert expected_calibration_error(recalibrated, correct[3000:]) < 0.04
    assert np.all(np.diff(beta_calibrated(params, np.linspace(0.01, 0.99, 50))) > 0)  # order kept


def test_a_calibrated_model_keeps_its_confidences_and_degenerate_sets_get_the_identity():
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0.05, 0.95, 8000)
    params = fit_beta_calibration(confidence, rng.random(8000) < confidence)
    grid = np.linspace(0.1, 0.9, 9)
    assert np.max(np.abs(beta_calibrated(params, grid) - grid)) < 0.05
    assert np.allclose(beta_calibrated(IDENTITY, grid), grid)
    assert fit_beta_calibration(confidence[:10], confidence[:10] > 0.5) == IDENTITY  # too few answers
    assert fit_beta_calibration(confidence, np.ones(8000, bool)) == IDENTITY  # nothing to learn from
    backwards = fit_beta_calibration(confidence, rng.random(8000) < 1.0 - confidence)
    assert min(backwards[:2]) >= 0.0  # a map that would turn the order round is not fitted
    values = beta_calibrated(backwards, grid)
    assert np.all(np.diff(values) >= -1e-12)


def test_the_top_probability_is_set_and_the_ranking_kept():
    rng = np.random.default_rng(2)
    log_proba = np.log(softmax(rng.normal(scale=2.0, size=(50, 12)), axis=1))
    target = rng.uniform(0.15, 0.97, 50)
    out = np.exp(with_top_confidence(log_proba, target))
    assert np.allclose(out.sum(axis=1), 1.0)
    assert np.allclose(out.max(axis=1), target, atol=1e-9)
    assert np.array_equal(np.argsort(-out, axis=1), np.argsort(-log_proba, axis=1))
    # a target below an even spread cannot be reached by a temperature: the row goes as flat as it can
    flat = np.exp(with_top_confidence(log_proba[:1], [0.01]))
    assert np.allclose(flat, 1.0 / 12, atol=1e-3)


def _bisected_temperature(log_proba_row, target):
    low, high = np.log(1e-3), np.log(1e3)
    for _ in range(80):
        middle = 0.5 * (low + high)
        if softmax(log_proba_row / np.exp(middle)).max() > target:
            low = middle
        else:
            high = middle
    return np.exp(0.5 * (low + high))


def test_the_temperature_is_found_for_hard_answers_as_bisection_finds_it():
    # many classes far below the top (a vote's floor), one close rival, near-certain and near-even targets
    log_proba = np.full((6, 230), -40.0)
    log_proba[:, 0], log_proba[:, 1] = 0.0, -2.0
    log_proba[3, 2:] = np.linspace(-1.0, -600.0, 228)
    target = np.array([0.999999, 0.9, 0.5, 0.3, 0.0045, 0.05])
    out = with_top_confidence(log_proba, target)
    for row in range(len(target)):
        expected = softmax(log_proba[row] / _bisected_temperature(log_proba[row], target[row]))
        assert np.allclose(np.exp(out[row]), expected, atol=1e-9), row
    # a tie at the top caps what sharpening can give: the row goes as sharp as the range allows
    tied = np.exp(with_top_confidence(np.log([[0.4, 0.4, 0.2]]), [0.9]))
    assert np.allclose(tied, [[0.5, 0.5, 0.0]], atol=1e-9)


def test_the_classifier_calibrates_its_confidence_and_keeps_it_through_the_artifact():
    rng = np.random.default_rng(4)
    classes = np.array([2, 14, 62, 194, 225])
    y = rng.choice(classes, 1200)
    X = rng.normal(size=(1200, 6)) + 0.8 * np.searchsorted(classes, y)[:, None]  # overlapping classes
    model = SpaceGroupClassifier(n_estimators=40, max_depth=3).fit(X, y, groups=np.arange(1200) // 2)
    assert len(model.confidence_calibration_) == 3
    loaded = SpaceGroupClassifier.from_bytes(model.to_bytes())
    assert loaded.confidence_calibration_ == pytest.approx(model.confidence_calibration_)
    assert np.allclose(loaded.predict_proba(X), model.predict_proba(X), atol=1e-6)
    assert np.array_equal(model.predict(X), model.classes_[np.argmax(softmax(model._logits(X), axis=1), axis=1)])
    # a stored map is used: the identity gives the uncalibrated answer back
    with np.load(io.BytesIO(model.to_bytes()), allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["confidence_calibration"] = np.array(IDENTITY)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    identity = SpaceGroupClassifier.from_bytes(buffer.getvalue())
    assert np.allclose(identity.predict_proba(X), softmax(model._logits(X), axis=1), atol=1e-6)
    arrays["confidence_calibration"] = np.array([1.0, 1.0])
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with pytest.raises(ModelFormatError, match="3 parameters"):
        SpaceGroupClassifier.from_bytes(buffer.getvalue())
