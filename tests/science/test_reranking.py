"""Re-ranking the candidate space groups of the boosters and the structure-type search."""

import numpy as np
import pytest
from scipy.special import log_softmax

from tasks.reranking import (CANDIDATE_FEATURES, CandidateReranker, Candidates, candidate_table,
                             reranked_log_proba)


def _table(n_top=2, neighbour_fit=None):
    booster = log_softmax(np.log([[0.5, 0.3, 0.1, 0.05, 0.05]]), axis=1)
    mixture = log_softmax(np.log([[0.4, 0.2, 0.1, 0.1, 0.2]]), axis=1)
    vote = np.array([[0.1, 0.1, 0.1, 0.1, 0.6]])
    neighbour_classes = np.array([[4, 4, 3, -1]])  # -1: a label the model does not know
    neighbour_similarity = np.array([[0.9, 0.8, 0.7, 0.95]])
    return candidate_table(booster, mixture, vote, np.array([0.95]), neighbour_classes, neighbour_similarity,
                           np.log(np.full(5, 0.2)), neighbour_fit, n_top=n_top)


def test_candidates_are_the_top_answers_and_the_neighbours_labels_with_their_evidence():
    table = _table()
    # boosters' top 2 (0, 1), mixture's top 2 (0, 1 or 4), the known neighbours' labels (4, 3); never class 2
    assert list(table.rows) == [0, 0, 0, 0] and list(table.classes) == [0, 1, 3, 4]
    features = dict(zip(CANDIDATE_FEATURES, table.features[table.classes == 4][0]))
    assert features["neighbours_with_label"] == 2 and features["nearest_similarity_of_label"] == pytest.approx(0.9)
    assert features["vote_rank"] == 0 and features["booster_rank"] >= 3
    assert features["similarity_gap_to_nearest"] == pytest.approx(0.9 - 0.95)  # the unknown label was nearer
    assert table.features.shape[1] == len(CANDIDATE_FEATURES)
    assert features["best_fit_of_label"] == 1.0 and features["best_fit"] == 1.0  # nothing refined: all fit


def test_candidates_carry_the_best_refined_fit_of_their_label():
    table = _table(neighbour_fit=np.array([[0.3, 0.9, 0.5, 0.99]]))
    by_class = {int(c): dict(zip(CANDIDATE_FEATURES, f)) for c, f in zip(table.classes, table.features)}
    assert by_class[4]["best_fit_of_label"] == pytest.approx(0.9)  # the better of its two neighbours
    assert by_class[3]["best_fit_of_label"] == pytest.approx(0.5)
    assert by_class[0]["best_fit_of_label"] == 0.0  # no neighbour carries it
    assert [f["best_fit"] for f in by_class.values()] == pytest.approx([0.99] * 4)  # the unknown label counts here


def test_the_candidates_share_is_redistributed_and_the_others_keep_theirs():
    table = _table()
    mixture = log_softmax(np.log([[0.4, 0.2, 0.1, 0.1, 0.2]]), axis=1)
    scores = np.array([0.0, 0.0, 0.0, 3.0])  # the re-ranker backs class 4
    out = np.exp(reranked_log_proba(table, scores, mixture, temperature=1.0))
    assert out.sum() == pytest.approx(1.0)
    assert out[0, 2] == pytest.approx(0.1)  # not a candidate: the mixture's probability
    assert out[0, table.classes].sum() == pytest.approx(0.9)  # the candidates' mass is kept...
    assert out[0].argmax() == 4  # ...and moved to the backed class
    flat = np.exp(reranked_log_proba(table, scores, mixture, temperature=1e6))
    assert flat[0, table.classes] == pytest.approx(np.full(4, 0.9 / 4), rel=1e-5)  # a hot temperature: evenly


def test_the_reranker_learns_which_source_to_trust_and_round_trips():
    # answers whose true class is the neighbours' label when they are near, the boosters' top otherwise
    rng = np.random.default_rng(0)
    n, c = 600, 6
    truth = rng.integers(0, c, n)
    near = rng.random(n) < 0.5
    booster = np.full((n, c), np.log(0.1))
    booster_top = np.where(near, (truth + 1) % c, truth)
    booster[np.arange(n), booster_top] = np.log(0.5)
    booster = log_softmax(booster, axis=1)
    neighbour = np.where(near, truth, (truth + 2) % c)
    similarity = np.where(near, rng.uniform(0.9, 1.0, n), rng.uniform(0.3, 0.6, n))[:, None]
    vote = np.full((n, c), 0.05)
    vote[np.arange(n), neighbour] = 0.75
    mixture = log_softmax(np.log(0.5 * np.exp(booster) + 0.5 * vote), axis=1)
    table = candidate_table(booster, mixture, vote, similarity[:, 0], neighbour[:, None], similarity,
                            np.log(np.full(c, 1 / c)), n_top=2)
    reranker, cross_fitted = CandidateReranker().fit(table, truth, np.arange(n) // 2, mixture, seed=0)
    assert np.mean(mixture.argmax(axis=1) == truth) < 0.8
    assert np.mean(cross_fitted.argmax(axis=1) == truth) > 0.95  # answers the re-ranker did not see
    assert np.allclose(np.exp(cross_fitted).sum(axis=1), 1.0)
    # the compiled walk of the trees answers as XGBoost does (a binary model's base margin is a logit)
    np.testing.assert_allclose(reranker.scores(table), reranker.booster.inplace_predict(
        table.features.astype(np.float32), predict_type="margin"), rtol=1e-5, atol=1e-5)
    loaded = CandidateReranker.from_arrays(reranker.to_arrays())
    assert loaded.temperature == reranker.temperature
    np.testing.assert_allclose(loaded.log_proba(table, mixture), reranker.log_proba(table, mixture))


def test_the_reranker_reads_the_refined_fit_where_similarity_cannot_tell():
    # two neighbours of different labels, equally similar: the true label is the one whose cell refines well
    rng = np.random.default_rng(1)
    n, c = 600, 6
    truth = rng.integers(0, c, n)
    other = (truth + 1 + rng.integers(0, c - 1, n)) % c
    swap = rng.random(n) < 0.5
    neighbour = np.where(swap[:, None], np.column_stack([other, truth]), np.column_stack([truth, other]))
    similarity = np.full((n, 2), 0.9)
    fit = np.where(neighbour == truth[:, None], rng.uniform(0.8, 1.0, (n, 2)), rng.uniform(0.2, 0.6, (n, 2)))
    vote = np.full((n, c), 0.02)
    vote[np.arange(n)[:, None], neighbour] = 0.45
    flat = log_softmax(np.log(vote), axis=1)
    prior = np.log(np.full(c, 1 / c))
    groups = np.arange(n) // 2
    accuracy = {}
    for name, given in (("with", fit), ("without", None)):
        table = candidate_table(flat, flat, vote, similarity[:, 0], neighbour, similarity, prior, given, n_top=1)
        _, cross_fitted = CandidateReranker().fit(table, truth, groups, flat, seed=0)
        accuracy[name] = np.mean(cross_fitted.argmax(axis=1) == truth)
    assert accuracy["with"] > 0.95 and accuracy["without"] < 0.7


def test_a_reranker_fitted_before_the_fit_features_reads_its_own_columns():
    # artifact format 6: its trees were grown on the first columns only; the columns added since are ignored
    rng = np.random.default_rng(2)
    n, c = 200, 5
    booster = log_softmax(rng.normal(size=(n, c)), axis=1)
    neighbour = rng.integers(0, c, (n, 3))
    similarity = rng.uniform(0.5, 1.0, (n, 3))
    truth = neighbour[:, 0]
    vote = np.full((n, c), 0.1)
    table = candidate_table(booster, booster, vote, similarity.max(axis=1), neighbour, similarity,
                            np.log(np.full(c, 1 / c)), rng.uniform(0, 1, (n, 3)), n_top=2)
    n_old = CANDIDATE_FEATURES.index("best_fit_of_label")
    old_table = Candidates(table.rows, table.classes, table.features[:, :n_old])
    old, _ = CandidateReranker().fit(old_table, truth, np.arange(n), booster, seed=0)
    loaded = CandidateReranker.from_arrays(old.to_arrays())
    np.testing.assert_allclose(loaded.scores(table), old.scores(old_table))
