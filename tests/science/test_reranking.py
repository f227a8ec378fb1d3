"""Re-ranking the candidate space groups of the boosters and the structure-type search."""

import numpy as np
import pytest
from scipy.special import log_softmax

from tasks.reranking import CANDIDATE_FEATURES, CandidateReranker, candidate_table, reranked_log_proba


def _table(n_top=2):
    booster = log_softmax(np.log([[0.5, 0.3, 0.1, 0.05, 0.05]]), axis=1)
    mixture = log_softmax(np.log([[0.4, 0.2, 0.1, 0.1, 0.2]]), axis=1)
    vote = np.array([[0.1, 0.1, 0.1, 0.1, 0.6]])
    neighbour_classes = np.array([[4, 4, 3, -1]])  # -1: a label the model does not know
    neighbour_similarity = np.array([[0.9, 0.8, 0.7, 0.95]])
    return candidate_table(booster, mixture, vote, np.array([0.95]), neighbour_classes, neighbour_similarity,
                           np.log(np.full(5, 0.2)), n_top=n_top)


def test_candidates_are_the_top_answers_and_the_neighbours_labels_with_their_evidence():
    table = _table()
    # boosters' top 2 (0, 1), mixture's top 2 (0, 1 or 4), the known neighbours' labels (4, 3); never class 2
    assert list(table.rows) == [0, 0, 0, 0] and list(table.classes) == [0, 1, 3, 4]
    features = dict(zip(CANDIDATE_FEATURES, table.features[table.classes == 4][0]))
    assert features["neighbours_with_label"] == 2 and features["nearest_similarity_of_label"] == pytest.approx(0.9)
    assert features["vote_rank"] == 0 and features["booster_rank"] >= 3
    assert features["similarity_gap_to_nearest"] == pytest.approx(0.9 - 0.95)  # the unknown label was nearer
    assert table.features.shape[1] == len(CANDIDATE_FEATURES)


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
