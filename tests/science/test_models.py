"""The space-group classifier: scikit-learn conventions, calibration, marginals, safe round trip."""

import numpy as np
import pytest

from tasks.models import ModelFormatError, SpaceGroupClassifier, fit_temperature, rank_probabilities


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
