"""Space-group priors: the shipped MP table, and answers moved to it by Bayes' rule."""

import io

import numpy as np
import pytest

from tasks.models import ModelFormatError, SpaceGroupClassifier
from tasks.predict import LoadedModel
from tasks.priors import SpaceGroupPrior, class_frequencies, space_group_prior


def test_mp_prior_covers_every_space_group_and_ranks_the_common_ones_first():
    prior = space_group_prior("mp")
    assert prior.probabilities.shape == (230,)
    assert np.all(prior.probabilities > 0) and prior.probabilities.sum() == pytest.approx(1.0)
    top = set(np.argsort(-prior.probabilities)[:5] + 1)
    assert {14, 62, 225} <= top  # P2_1/c, Pnma, Fm-3m: the commonest structures of inorganic materials
    assert prior.probabilities[14 - 1] > 20 * prior.probabilities[89 - 1]  # P422: a handful of materials
    assert space_group_prior("training") is None


def test_unknown_prior_is_named():
    with pytest.raises(ValueError, match="unknown space-group prior 'icsd'"):
        space_group_prior("icsd")


@pytest.fixture(scope="module")
def unbalanced():
    """Classes 14 (rare in training) and 225 (common in training), hard to tell apart."""
    rng = np.random.default_rng(4)
    y = np.array([14] * 60 + [225] * 240)
    X = rng.normal(size=(300, 5)) + (y == 225)[:, None] * 0.3
    model = SpaceGroupClassifier(n_estimators=30, max_depth=2).fit(X, y, groups=np.arange(300) // 2)
    return model, X


def test_training_prior_is_recorded_and_survives_the_round_trip(unbalanced):
    model, X = unbalanced
    assert model.class_prior_ == pytest.approx([61 / 302, 241 / 302])  # label frequencies, one added per class
    loaded = SpaceGroupClassifier.from_bytes(model.to_bytes())
    assert np.array_equal(loaded.class_prior_, model.class_prior_)
    prior = space_group_prior("mp")
    assert np.allclose(loaded.predict_proba(X, prior), model.predict_proba(X, prior))


def test_answers_under_another_prior_follow_bayes_rule(unbalanced):
    model, X = unbalanced
    target = np.full(230, 1e-4)
    target[14 - 1], target[225 - 1] = 0.6, 0.1
    prior = SpaceGroupPrior("test-14-common", target / target.sum())
    as_trained = model.predict_proba(X)
    moved = model.predict_proba(X, prior)
    expected = as_trained * (np.array([0.6, 0.1]) / model.class_prior_)
    assert np.allclose(moved, expected / expected.sum(axis=1, keepdims=True))
    assert moved[:, 0].mean() > as_trained[:, 0].mean()  # the group made commoner gains probability
    assert [r.space_groups[0] for r in model.rank(X, 2, prior)] == list(model.classes_[np.argmax(moved, axis=1)])


def test_a_model_saved_without_its_training_prior_answers_as_trained(unbalanced):
    model, X = unbalanced
    with np.load(io.BytesIO(model.to_bytes()), allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files if k != "class_prior"}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    older = SpaceGroupClassifier.from_bytes(buffer.getvalue())
    assert older.class_prior_ is None and not older.knows_training_prior and model.knows_training_prior
    assert np.array_equal(older.predict_proba(X, space_group_prior("mp")), older.predict_proba(X))
    prior = space_group_prior("mp")
    assert LoadedModel(older, None, "older", "x").prior_for(prior) is None  # its answers say "training"
    assert LoadedModel(model, None, "newer", "x").prior_for(prior) is prior


def test_training_prior_of_the_wrong_length_is_refused(unbalanced):
    model, _ = unbalanced
    with np.load(io.BytesIO(model.to_bytes()), allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["class_prior"] = np.array([0.2, 0.3, 0.5])
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with pytest.raises(ModelFormatError, match="3 training frequencies for 2 classes"):
        SpaceGroupClassifier.from_bytes(buffer.getvalue())


def test_class_frequencies_add_one_per_class():
    assert class_frequencies(np.array([1, 1, 2]), np.array([1, 2, 3])) == pytest.approx([3 / 6, 2 / 6, 1 / 6])


def test_strength_tempers_the_prior_ratio(unbalanced):
    model, X = unbalanced
    target = np.full(230, 1e-4)
    target[14 - 1], target[225 - 1] = 0.6, 0.1
    half = SpaceGroupPrior("test-half", target / target.sum(), strength=0.5)
    expected = model.predict_proba(X) * np.sqrt(np.array([0.6, 0.1]) / model.class_prior_)
    assert np.allclose(model.predict_proba(X, half), expected / expected.sum(axis=1, keepdims=True))
    assert space_group_prior("mp").strength == 0.5
