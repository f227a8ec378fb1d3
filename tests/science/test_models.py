"""The space-group classifier: scikit-learn conventions, calibration, marginals, safe round trip."""

import numpy as np
import pytest

from tasks.models import (ModelFormatError, SpaceGroupClassifier, fit_mixture, fit_temperature,
                          fit_temperature_and_weight, rank_probabilities)


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    classes = np.array([14, 62, 225, 194])
    centers = rng.normal(scale=3.0, size=(4, 6))
    y = np.repeat(classes, 60)
    X = centers[np.searchsorted(classes, y)] + rng.normal(size=(240, 6))
    X[::17, 2] = np.nan  # missing values are allowed (patterns that do not cover the Q grid)
    groups = np.arange(240) // 2
    return SpaceGroupClassifier(n_estimators=60, max_depth=3).fit(X, y, groups=groups), X, y


def test_sklearn_conventions(fitted):
    model, X, y = fitted
    assert list(model.classes_) == [14, 62, 194, 225]  # sorted, not contiguous
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 4)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert np.mean(model.predict(X) == y) > 0.9
    assert model.temperature_ > 0
    assert "max_depth" in model.get_params()


def test_round_trip_is_exact_and_trimmed(fitted):
    model, X, _ = fitted
    loaded = SpaceGroupClassifier.from_bytes(model.to_bytes())
    assert np.allclose(loaded.predict_proba(X), model.predict_proba(X), atol=1e-6)
    assert loaded.booster_.num_boosted_rounds() == model.best_iteration_ + 1
    assert list(loaded.classes_) == list(model.classes_)


def test_system_head_is_trained_saved_and_combined(fitted):
    from scipy.special import softmax

    model, X, y = fitted
    assert model.system_booster_ is not None and model.system_weight_ >= 0.0
    loaded = SpaceGroupClassifier.from_bytes(model.to_bytes())
    assert loaded.system_booster_.num_boosted_rounds() == model.system_best_iteration_ + 1
    assert loaded.system_weight_ == model.system_weight_
    combined = softmax(model._margins(X).astype(np.float64) / model.temperature_
                       + model.system_weight_ * model._system_log_proba(X)[:, model.class_system_], axis=1)
    assert np.allclose(model.predict_proba(X), _confidence_calibrated(model, combined))


def _confidence_calibrated(model, proba):
    from tasks.calibration import beta_calibrated, with_top_confidence

    return np.exp(with_top_confidence(np.log(proba), beta_calibrated(model.confidence_calibration_, proba.max(axis=1))))


def test_without_the_head_and_from_format_1_artifacts():
    """``system_head=False`` gives the temperature-scaled space-group model alone; artifacts written before the
    head existed (format 1, e.g. models in an existing registry) load and predict the same way."""
    import io
    import json

    from scipy.special import softmax

    rng = np.random.default_rng(3)
    y = np.repeat([2, 14, 62, 225], 40)
    X = rng.normal(size=(160, 5)) + (np.searchsorted([2, 14, 62, 225], y) * 2.0)[:, None]
    flat = SpaceGroupClassifier(n_estimators=30, max_depth=2, system_head=False).fit(X, y)
    assert flat.system_booster_ is None
    temperature_scaled = softmax(flat._margins(X).astype(np.float64) / flat.temperature_, axis=1)
    assert np.allclose(flat.predict_proba(X), _confidence_calibrated(flat, temperature_scaled))
    with np.load(io.BytesIO(flat.to_bytes()), allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files if k not in ("system_weight", "confidence_calibration")}
    meta = json.loads(arrays["meta"].tobytes().decode())
    meta["format"] = "spacegroup-xgb-npz-1"
    del meta["params"]["system_head"], meta["system_best_iteration"]
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    old = SpaceGroupClassifier.from_bytes(buffer.getvalue())
    assert old.system_booster_ is None
    assert np.allclose(old.predict_proba(X), temperature_scaled, atol=1e-6)  # no confidence calibration then


def test_head_weight_is_fitted_to_what_the_head_knows():
    rng = np.random.default_rng(0)
    n, classes = 2000, 6
    labels = rng.integers(0, classes, n)
    class_system = np.array([0, 0, 1, 1, 2, 2])
    margins = rng.normal(size=(n, classes))
    margins[np.arange(n), labels] += 1.0  # the space-group model alone: weakly informative
    system_logits = rng.normal(size=(n, 3))
    system_logits[np.arange(n), class_system[labels]] += 3.0  # the head: strongly informative
    system_log_proba = system_logits - np.log(np.exp(system_logits).sum(axis=1, keepdims=True))
    temperature, weight = fit_temperature_and_weight(margins, system_log_proba[:, class_system], labels)
    assert weight > 0.5 and temperature > 0
    _, useless = fit_temperature_and_weight(margins, rng.normal(size=(n, 3))[:, class_system], labels)
    assert useless < 0.2


def test_mixture_weight_follows_what_the_second_model_knows():
    from scipy.special import softmax

    from tasks.models import mixture_weight

    rng = np.random.default_rng(3)
    n, classes = 3000, 8
    labels = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, classes))
    logits[np.arange(n), labels] += 1.0
    proba = softmax(logits, axis=1)  # weakly informative
    knows = rng.random(n) < 0.5  # a vote that is right where its best match is close, wrong elsewhere
    voted = np.where(knows, labels, (labels + rng.integers(1, classes, n)) % classes)
    vote = np.full((n, classes), 0.02 / classes)
    vote[np.arange(n), voted] += 0.98
    similarity = np.where(knows, rng.uniform(0.9, 1.0, n), rng.uniform(0.6, 0.8, n))
    gate = fit_mixture(proba, vote, similarity, labels)
    assert mixture_weight(gate, 0.95) > 0.5 > mixture_weight(gate, 0.7)
    noise = softmax(rng.normal(scale=3.0, size=(n, classes)), axis=1)
    useless = fit_mixture(proba, noise, similarity, labels)
    assert mixture_weight(useless, np.array([0.7, 0.95])).max() < 0.1


def test_foreign_bytes_are_refused():
    with pytest.raises(ModelFormatError):
        SpaceGroupClassifier.from_bytes(b"not a model at all")
    import io

    buffer = io.BytesIO()
    np.savez(buffer, meta=np.frombuffer(b'{"format": "other"}', dtype=np.uint8))
    with pytest.raises(ModelFormatError, match="unknown model format"):
        SpaceGroupClassifier.from_bytes(buffer.getvalue())


def test_wrong_feature_count_is_named(fitted):
    model, X, _ = fitted
    with pytest.raises(ValueError, match="expected 6 features"):
        model.predict_proba(X[:, :4])


def test_marginals_and_abstention():
    classes = np.array([221, 225, 14])
    ranked = rank_probabilities(np.array([0.3, 0.3, 0.4]), classes, k=2, abstain_threshold=0.5)
    assert ranked.space_groups == [14, 221]
    assert ranked.crystal_system == "cubic" and ranked.crystal_system_probability == pytest.approx(0.6)
    assert ranked.abstained


def test_temperature_recovers_overconfidence():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 2000)
    margins = rng.normal(size=(2000, 3))
    margins[np.arange(2000), labels] += 1.0
    assert fit_temperature(margins * 5.0, labels) == pytest.approx(5.0 * fit_temperature(margins, labels), rel=0.05)


def test_compiled_forest_equals_xgboost_margins(fitted):
    """Small batches walk the trees in compiled code: same margins as XGBoost, including missing values."""
    import xgboost as xgb

    from tasks.forest import CompiledForest

    model, X, _ = fitted
    X = X.astype(np.float32)
    X[3, :] = np.nan
    forest = CompiledForest(model.booster_, model.best_iteration_ + 1)
    reference = model.booster_.predict(xgb.DMatrix(X, missing=np.nan), output_margin=True,
                                       iteration_range=(0, model.best_iteration_ + 1))
    np.testing.assert_allclose(forest.margins(X), reference, atol=1e-5)
    # once prepared, the classifier switches between the two by batch size; the answers must not depend on it
    model.prepare_small_batches()
    one_by_one = np.vstack([model.predict_proba(X[i:i + 1]) for i in range(20)])
    np.testing.assert_allclose(one_by_one, model.predict_proba(X[:20]), atol=1e-6)


@pytest.mark.parametrize("name", ["xrd_default", "formula_default"])
def test_compiled_forest_on_the_shipped_models(name):
    """The shipped models (hundreds of classes, thousands of trees) give the same margins both ways."""
    import xgboost as xgb

    from tasks.forest import CompiledForest
    from tasks.pretrained import shipped_models

    shipped = {m.name: m for m in shipped_models()}[name]
    model = SpaceGroupClassifier.from_bytes(shipped.artifact)
    rng = np.random.default_rng(1)
    X = rng.normal(scale=2.0, size=(6, model.n_features_in_)).astype(np.float32)
    X[rng.random(X.shape) < 0.3] = np.nan
    reference = model.booster_.predict(xgb.DMatrix(X, missing=np.nan), output_margin=True,
                                       iteration_range=(0, model.best_iteration_ + 1))
    np.testing.assert_allclose(CompiledForest(model.booster_, model.best_iteration_ + 1).margins(X), reference, atol=1e-4)


def test_hyperparameter_search_returns_its_best_trial_within_the_search_space(fitted):
    """The search behind `spacegroup train --trials` (optuna is a declared dependency: a fresh install runs it)."""
    from tasks.datasets import FeatureSet
    from tasks.training import SEARCH_SPACE, search_hyperparameters

    _, X, y = fitted
    features = FeatureSet(X, y, np.arange(len(X)) // 2, "test")
    best, history = search_hyperparameters(features, n_trials=3, seed=0, n_estimators=30)
    assert len(history) == 3
    for name, (low, high) in SEARCH_SPACE.items():
        assert low <= best[name] <= high
    top_score = max(trial["sg_top1"] for trial in history)
    assert best in [{name: trial[name] for name in SEARCH_SPACE} for trial in history if trial["sg_top1"] == top_score]


def test_block_ranking_matches_each_row_ranked_by_hand():
    from tasks.crystallography import space_group_type
    from tasks.extinction import extinction_group_of
    from tasks.models import rank_rows

    classes = np.array([2, 14, 62, 139, 166, 194, 225, 227])
    proba = np.random.default_rng(3).dirichlet(np.ones(len(classes)), size=50)
    ranked = rank_rows(proba, classes, k=3, abstain_threshold=0.3)
    for row, answer in zip(proba, ranked):
        top = sorted(range(len(classes)), key=lambda i: -row[i])[:3]
        assert answer.space_groups == [int(classes[i]) for i in top]
        assert answer.probabilities == pytest.approx([row[i] for i in top])
        by_system, by_group = {}, {}
        for c, p in zip(classes, row):
            system = space_group_type(int(c)).crystal_system
            by_system[system] = by_system.get(system, 0.0) + p
            group = extinction_group_of(int(c)).index
            by_group[group] = by_group.get(group, 0.0) + p
        assert answer.crystal_system == max(by_system, key=by_system.get)
        assert answer.crystal_system_probability == pytest.approx(max(by_system.values()))
        assert answer.extinction_group == max(by_group, key=by_group.get)
        assert answer.extinction_group_probability == pytest.approx(max(by_group.values()))
        assert answer.abstained == (row[top[0]] < 0.3)
