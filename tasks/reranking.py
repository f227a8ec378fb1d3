"""Re-ranking of candidate space groups: a small booster that reads the boosters, the structure-type vote and the
neighbours together, per candidate.

The mixture of ``tasks.models`` weighs the boosters against the vote by one number per pattern (the nearest
reference's similarity). But the true group is among the candidates of the boosters' and the mixture's top 10 and
the neighbours' labels for 87 % of MP test patterns, where the mixture ranks it first for 54 %: which source to
trust depends on the candidate (how many neighbours carry its label, how near the nearest of them is, how the
boosters rank it). So each candidate of a pattern becomes a row of ``CANDIDATE_FEATURES`` and a binary XGBoost
model scores whether it is the true group; the candidates' share of the mixture's probability is redistributed by
the softmax of those scores, and the other groups keep the mixture's.

Measured (``bench/accuracy.py`` draws, test materials; the re-ranker fitted on the model's calibration split, see
BENCHMARKS.md): SG top-1 0.404 -> 0.431 on the 8,000 / 800 draw, 0.5375 -> 0.559 with 35,937 training materials.
Where the search refines its neighbours' cells (``tasks.isotype_refinement``), the best refined fit among the
neighbours with the candidate's label, and the best among all of them, are two more features: the similarity only
carries the fit to the power 0.125, and the re-ranker can weigh it by candidate. On the 8,000 / 800 draw SG top-1
0.452 -> 0.459 (0.451-0.453 -> 0.459-0.464 over four re-ranker seeds), crystal system 0.683 -> 0.696; with
35,937 training materials top-1 unchanged (0.588 / 0.586 -> 0.587 / 0.586, two seeds), top-3 0.741 / 0.739 ->
0.750 / 0.748, extinction group 0.634 / 0.633 -> 0.638 / 0.640. Adding the fits' sum per label and the gap to the
best fit, 0.459 on the smaller draw as well; refining the 60 nearest instead of 20 for these features, 0.461 at
three times the refinement's cost.
Tried and not better: pairwise ranking instead of the binary objective (0.547-0.554), adding the candidate's
crystal system, the system head's probability of it, the mixture's mass on its crystal system and extinction
group, and the pattern's indexing figures of merit (0.552-0.559).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import xgboost as xgb
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp
from sklearn.model_selection import GroupKFold

from tasks.forest import CompiledForest

N_TOP = 10  # candidates: the top 10 of the boosters and of the mixture, and every neighbour's label
N_ROUNDS = 150
N_FOLDS = 5  # cross-fitting on the calibration split: the confidence calibration needs answers the re-ranker never saw
BOOSTER_PARAMS = {"objective": "binary:logistic", "max_depth": 4, "eta": 0.1, "subsample": 0.8,
                  "colsample_bytree": 0.8, "verbosity": 0}
CANDIDATE_FEATURES = (
    "booster_log_proba", "booster_rank", "vote_log_share", "vote_rank", "nearest_similarity_of_label",
    "neighbours_with_label", "nearest_similarity", "mixture_log_proba", "mixture_rank", "booster_top_log_proba",
    "similarity_gap_to_nearest", "training_log_prior", "mixture_top_log_proba", "best_fit_of_label", "best_fit",
)


@dataclass
class Candidates:
    """Candidate groups of a block of answers: ``rows[j]`` answer, ``classes[j]`` class index, ``features[j]``."""

    rows: np.ndarray
    classes: np.ndarray
    features: np.ndarray


def _ranks(log_proba: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(-log_proba, axis=1), axis=1)


def candidate_table(booster_log_proba: np.ndarray, mixture_log_proba: np.ndarray, vote: np.ndarray,
                    nearest_similarity: np.ndarray, neighbour_classes: np.ndarray, neighbour_similarity: np.ndarray,
                    training_log_prior: np.ndarray, neighbour_fit: np.ndarray | None = None,
                    n_top: int = N_TOP) -> Candidates:
    """The candidates of each answer (n answers over c classes) and their ``CANDIDATE_FEATURES``.

    ``neighbour_classes`` (n, k) are the neighbours' class indices (-1: a label outside the classes, or no
    neighbour), ``neighbour_similarity`` (n, k) their similarities, ``neighbour_fit`` (n, k) their refined cells'
    fit to the pattern (0-1; None, a search that refines nothing: every neighbour fits).
    """
    n, c = booster_log_proba.shape
    row_index = np.arange(n)[:, None]
    chosen = np.zeros((n, c), dtype=bool)
    chosen[row_index, np.argsort(-booster_log_proba, axis=1)[:, :n_top]] = True
    chosen[row_index, np.argsort(-mixture_log_proba, axis=1)[:, :n_top]] = True
    present = neighbour_classes >= 0
    neighbour_rows = np.broadcast_to(row_index, neighbour_classes.shape)[present]
    chosen[neighbour_rows, neighbour_classes[present]] = True
    count = np.zeros((n, c))
    np.add.at(count, (neighbour_rows, neighbour_classes[present]), 1.0)
    nearest_of_label = np.zeros((n, c))
    np.maximum.at(nearest_of_label, (neighbour_rows, neighbour_classes[present]),
                  np.clip(neighbour_similarity[present], 0.0, None))
    fit = np.ones(neighbour_classes.shape) if neighbour_fit is None else np.asarray(neighbour_fit, dtype=np.float64)
    best_fit_of_label = np.zeros((n, c))
    np.maximum.at(best_fit_of_label, (neighbour_rows, neighbour_classes[present]), fit[present])
    best_fit = fit.max(axis=1, initial=0.0)  # over every neighbour, as nearest_similarity
    rows, classes = np.nonzero(chosen)
    nearest = np.asarray(nearest_similarity, dtype=np.float64)[rows]
    features = np.column_stack([
        booster_log_proba[rows, classes], _ranks(booster_log_proba)[rows, classes],
        np.log(vote[rows, classes]), _ranks(vote)[rows, classes], nearest_of_label[rows, classes],
        count[rows, classes], nearest, mixture_log_proba[rows, classes], _ranks(mixture_log_proba)[rows, classes],
        booster_log_proba.max(axis=1)[rows], nearest_of_label[rows, classes] - nearest,
        training_log_prior[classes], mixture_log_proba.max(axis=1)[rows], best_fit_of_label[rows, classes],
        best_fit[rows],
    ])
    return Candidates(rows, classes, features)


def reranked_log_proba(candidates: Candidates, scores: np.ndarray, mixture_log_proba: np.ndarray,
                       temperature: float) -> np.ndarray:
    """The mixture's log-probabilities with the candidates' share redistributed by ``softmax(score / T)`` within
    each answer (``scores``: the re-ranker's margins, one per candidate)."""
    out = np.array(mixture_log_proba, dtype=np.float64)
    rows, classes = candidates.rows, candidates.classes
    scaled = np.asarray(scores, dtype=np.float64) / temperature
    # per answer: log of the candidates' mixture mass, and logsumexp of their scaled scores
    n = len(out)
    mass = np.full(n, -np.inf)
    norm = np.full(n, -np.inf)
    np.logaddexp.at(mass, rows, out[rows, classes])
    np.logaddexp.at(norm, rows, scaled)
    out[rows, classes] = mass[rows] + scaled - norm[rows]
    return out


class CandidateReranker:
    """Scores each candidate group of an answer; ``log_proba`` gives the re-ranked distribution."""

    def __init__(self, temperature: float = 1.0, booster: xgb.Booster | None = None) -> None:
        self.temperature = temperature
        self.booster = booster
        self._forest = None if booster is None else _compiled(booster)

    def fit(self, candidates: Candidates, encoded_labels: np.ndarray, groups: np.ndarray,
            mixture_log_proba: np.ndarray, seed: int = 0) -> tuple["CandidateReranker", np.ndarray]:
        """Fit on answers whose true class indices are ``encoded_labels``; also return the cross-fitted
        re-ranked log-probabilities of those answers (each scored by a re-ranker fitted without its group), on
        which the temperature is fitted and the caller fits its confidence calibration."""
        target = (candidates.classes == np.asarray(encoded_labels)[candidates.rows]).astype(np.float32)
        params = BOOSTER_PARAMS | {"seed": seed, "nthread": os.cpu_count() or 1}
        scores = np.zeros(len(target))
        n_folds = min(N_FOLDS, len(np.unique(groups)))
        if n_folds >= 2:
            for fit_rows, score_rows in GroupKFold(n_splits=n_folds).split(mixture_log_proba, groups=groups):
                fit_mask, score_mask = np.isin(candidates.rows, fit_rows), np.isin(candidates.rows, score_rows)
                fold = xgb.train(params, xgb.DMatrix(candidates.features[fit_mask], label=target[fit_mask]), N_ROUNDS)
                scores[score_mask] = _compiled(fold).margins(candidates.features[score_mask])[:, 0]
        self.temperature = _fit_temperature(candidates, scores, mixture_log_proba, encoded_labels)
        self.booster = xgb.train(params, xgb.DMatrix(candidates.features, label=target), N_ROUNDS)
        self._forest = _compiled(self.booster)
        return self, reranked_log_proba(candidates, scores, mixture_log_proba, self.temperature)

    def scores(self, candidates: Candidates) -> np.ndarray:
        # a re-ranker saved before the fit features (artifact format 6) reads the columns it was fitted on, the first
        n_features = self.booster.num_features()
        return self._forest.margins(candidates.features[:, :n_features])[:, 0]

    def log_proba(self, candidates: Candidates, mixture_log_proba: np.ndarray) -> np.ndarray:
        return reranked_log_proba(candidates, self.scores(candidates), mixture_log_proba, self.temperature)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"reranker": np.frombuffer(bytes(self.booster.save_raw(raw_format="ubj")), dtype=np.uint8),
                "reranker_temperature": np.array([self.temperature])}

    @classmethod
    def from_arrays(cls, arrays) -> "CandidateReranker":
        booster = xgb.Booster()  # kept for saving; answers come from its compiled walk
        booster.load_model(bytearray(arrays["reranker"].tobytes()))
        return cls(float(arrays["reranker_temperature"][0]), booster)


def _compiled(booster: xgb.Booster) -> CompiledForest:
    # a pattern has ~14 candidates: XGBoost's cost per call (~10 ms for these 150 trees on a busy machine) would be
    # most of the answer's time; the compiled walk gives the same margins in well under 1 ms
    return CompiledForest(booster, booster.num_boosted_rounds())


def _fit_temperature(candidates: Candidates, scores: np.ndarray, mixture_log_proba: np.ndarray,
                     encoded_labels: np.ndarray) -> float:
    """The temperature of the candidates' scores minimising the negative log-likelihood of the true classes."""
    rows = np.arange(len(mixture_log_proba))

    def nll(log_t: float) -> float:
        log_proba = reranked_log_proba(candidates, scores, mixture_log_proba, float(np.exp(log_t)))
        return float(-(log_proba[rows, encoded_labels] - logsumexp(log_proba, axis=1)).mean())

    if len(rows) == 0:
        return 1.0
    return float(np.exp(minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded").x))

