"""Space-group classifiers with scikit-learn conventions, calibrated, abstaining, saved in safe formats.

``SpaceGroupClassifier`` is a gradient-boosted model (XGBoost, ``multi:softprob``) over the space groups seen in
training, with a second, much smaller one over the crystal systems (the *system head*): 201 space groups share
the training rows thinly, and a model asked only for the 7 crystal systems separates them better (measured on MP
patterns: 0.557 against 0.514 as the marginal of the space-group model). The two are combined as a product of
experts, ``log p(sg) = margin(sg) / T + w log p_system(system of sg) + const``, with ``T`` and ``w`` fitted
together on the calibration split; crystal-system and extinction-group probabilities are *marginals* of that one
distribution, so the levels always agree.

Models of real materials may also search their training patterns by structure type (``structure_type_search``,
``tasks.neighbours``): the nearest training patterns up to a lattice scale change vote, and the vote is mixed with
the boosters' answer, ``p = (1 - v) p_boosters + v p_vote``, where ``v`` grows with the similarity of the nearest
reference (``mixture_weight``, two parameters fitted on the calibration split); every training pattern is a
reference, and a calibration material's own patterns are left out of its search (searching only the training
split's patterns there made the vote weaker than it is for new materials). Measured on MP patterns
(``bench/accuracy.py``, test materials only), SG top-1 / extinction group: 0.290 / 0.334 -> 0.420 / 0.477 trained
on 8,000 materials, 0.345 / 0.393 -> 0.519 / 0.562 on 20,000, 0.357 / 0.394 -> 0.537 / 0.579 on 35,937
(BENCHMARKS.md). Formula models search the same way by place on Pettifor's structure map (``tasks.prototypes``).

Pattern models of real materials may then re-rank the candidates (``candidate_reranking``,
``tasks.reranking``): the boosters' and the mixture's top 10 and the neighbours' labels, each scored by a small
booster that reads, per candidate, what the mixture reduces to one weight per pattern (SG top-1 0.537 -> 0.559 on
35,937 materials).

Last, the confidence of the top answer is recalibrated (``tasks.calibration``: beta calibration fitted on the
calibration split, applied as a per-answer temperature so the ranking is kept): a temperature alone cannot mend
the S-shaped reliability curve the mixture leaves.

Training splits off, by structure group so augmented copies of one crystal never straddle a split:
- a validation part for early stopping,
- a calibration part on which ``T`` (and ``w``) are fitted by minimising the negative log-likelihood of the
  true labels (temperature scaling: Guo et al. 2017, "On Calibration of Modern Neural Networks"), then the
  mixture's gate, the re-ranker and the confidence calibration (``fit_answer_calibration``).

The artifact is a numpy ``.npz`` (loaded with ``allow_pickle=False``) holding the XGBoost boosters in their
UBJ format, the classes, ``T``, ``w``, the training prior, the search's reference peaks and weights (when it has
them), the re-ranker's booster (UBJ) and temperature, the confidence calibration and a JSON metadata string.
Artifacts without a system head (format 1), a training prior (format 2), a confidence calibration (format 3;
their mixtures kept a temperature ``T2``, ``mixture_temperature_``, which new models leave at 1) or the
re-ranker's place (format 4) still load and predict as before. A model with the lattice evidence is format 8 (its
four primitive lattices, linear), 9 (five searches, linear) or 10 (the boosted stage of new fits).

With ``lattice_evidence``, XRD models also learn, on the calibration split, how each pattern's best primitive
orthorhombic, cubic, tetragonal and hexagonal cells correct the answer's crystal systems (``tasks.lattice_evidence``;
the shift is added after the confidence calibration, only when ``predict_proba`` is given the rows' cells).

The training prior (``class_prior_``: label frequencies of the training rows) lets ``predict_proba`` and ``rank``
answer under another space-group prior (``tasks.priors``): a model trained on synthetic crystals learns their
label frequencies, which are far from those of real materials.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import xgboost as xgb
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import GroupShuffleSplit

from tasks.calibration import IDENTITY, beta_calibrated, fit_beta_calibration, with_top_confidence
from tasks.crystallography import CRYSTAL_SYSTEMS, space_group_type
from tasks.extinction import extinction_group_of
from tasks.forest import CompiledForest
from tasks.priors import SpaceGroupPrior, class_frequencies

ARTIFACT_FORMAT = "spacegroup-xgb-npz-7"
#: models with the lattice evidence, by the number of lattice searches it reads; those without keep format 7,
#: which the code before the stage still reads
LATTICE_EVIDENCE_FORMATS = {4: "spacegroup-xgb-npz-8", 5: "spacegroup-xgb-npz-9"}
#: models whose lattice evidence is a booster (``tasks.lattice_evidence.BoostedLatticeEvidence``): all new fits
BOOSTED_LATTICE_EVIDENCE_FORMAT = "spacegroup-xgb-npz-10"
# 1: no system head; 2: no training prior (answers cannot be moved to another prior); 3: no confidence
# calibration; 4: no candidate re-ranker; 5: no isotypic cell refinement of the search's neighbours; 6: a
# re-ranker without the refined-fit features; 7: no lattice evidence; 8: the evidence of the four primitive
# lattices only; 9: a linear lattice evidence. Each is refused by the code before it, which would ignore what it
# adds (or, for 7, hand the re-ranker fewer features than its trees read).
READABLE_FORMATS = ("spacegroup-xgb-npz-1", "spacegroup-xgb-npz-2", "spacegroup-xgb-npz-3", "spacegroup-xgb-npz-4",
                    "spacegroup-xgb-npz-5", "spacegroup-xgb-npz-6", ARTIFACT_FORMAT, *LATTICE_EVIDENCE_FORMATS.values(),
                    BOOSTED_LATTICE_EVIDENCE_FORMAT)
#: once ``prepare_small_batches`` has run, up to this many rows are scored by walking the trees in compiled code:
#: faster than XGBoost for both shipped models (bench/model_latency.py measures the crossover; for the shipped
#: XRD model it lies above 16 rows)
COMPILED_FOREST_MAX_ROWS = 2


_LINES_NEED_SEARCH = ("reference lines refine the cells of the XRD structure-type search's neighbours: they need "
                      "modality='xrd' and structure_type_search=True")


class ModelFormatError(ValueError):
    """A model artifact that is not in this project's format."""


@dataclass(frozen=True)
class RankedPrediction:
    """Top-k space groups with calibrated probabilities and the marginals derived from them."""

    space_groups: list[int]
    probabilities: list[float]
    crystal_system: str
    crystal_system_probability: float
    extinction_group: int
    extinction_group_probability: float
    abstained: bool


class SpaceGroupClassifier(ClassifierMixin, BaseEstimator):
    """Gradient-boosted space-group classifier with temperature calibration and an abstain threshold."""

    def __init__(
        self,
        modality: str = "xrd",
        feature_version: str = "",
        n_estimators: int = 300,
        max_depth: int = 6,
        learning_rate: float = 0.15,
        subsample: float = 0.8,
        colsample_bytree: float = 0.5,
        min_child_weight: float = 1.0,
        reg_lambda: float = 1.0,
        max_bin: int = 64,
        early_stopping_rounds: int = 25,
        validation_fraction: float = 0.12,
        calibration_fraction: float = 0.12,
        abstain_threshold: float = 0.0,
        system_head: bool = True,
        structure_type_search: bool = False,
        candidate_reranking: bool = False,
        lattice_evidence: bool = False,
        random_state: int = 0,
        n_jobs: int = 0,
    ) -> None:
        self.modality = modality
        self.feature_version = feature_version
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.max_bin = max_bin
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.calibration_fraction = calibration_fraction
        self.abstain_threshold = abstain_threshold
        self.system_head = system_head
        self.structure_type_search = structure_type_search
        self.candidate_reranking = candidate_reranking
        self.lattice_evidence = lattice_evidence
        self.random_state = random_state
        self.n_jobs = n_jobs

    # -- training -------------------------------------------------------------------------------------
    def _booster_params(self, n_classes: int) -> dict:
        return {
            "objective": "multi:softprob", "num_class": n_classes, "tree_method": "hist",
            "max_depth": self.max_depth, "eta": self.learning_rate, "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree, "min_child_weight": self.min_child_weight,
            "lambda": self.reg_lambda, "max_bin": self.max_bin, "eval_metric": "mlogloss",
            "seed": self.random_state, "nthread": self.n_jobs or (os.cpu_count() or 1), "verbosity": 0,
        }

    def fit(self, X, y, groups=None, callback=None, reference_lines=None, line_rows=None):
        """Fit on ``X`` (n x f) and space-group labels ``y``; ``groups`` keeps related rows on one side.

        ``reference_lines`` (a ``tasks.isotype_refinement.LineTable`` of the training structures; XRD with the
        structure-type search only) lets the search refine each neighbour's cell against a pattern;
        ``line_rows`` gives each row's structure in it (default: ``groups``)."""
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y).astype(int)
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError(f"X must be 2-D with one row per label; got X {X.shape} and {len(y)} labels")
        if len(X) < 20:
            raise ValueError(f"a model needs at least 20 training rows (patterns or formulas) to fit, with its early "
                             f"stopping and calibration shares, and got {len(X)}: train on more crystals, patterns "
                             "or formulas")
        if self.candidate_reranking and not self.structure_type_search:
            raise ValueError("candidate_reranking re-ranks the structure-type search's candidates: "
                             "it needs structure_type_search=True")
        groups = np.arange(len(y)) if groups is None else np.asarray(groups)
        if reference_lines is not None and not (self.structure_type_search and self.modality == "xrd"):
            raise ValueError(_LINES_NEED_SEARCH)  # before the boosters' fit, not after it
        self.__dict__.pop("_forest", None)  # a refit invalidates the flat copies of the trees
        self.__dict__.pop("_system_forest", None)
        self.__dict__.pop("_prior_shifts", None)
        self.classes_ = np.unique(y)
        self.class_prior_ = class_frequencies(y, self.classes_)
        self.n_features_in_ = X.shape[1]
        encoded = np.searchsorted(self.classes_, y)
        train, valid, calib = _three_way_group_split(groups, self.validation_fraction, self.calibration_fraction,
                                                     self.random_state)
        if self.lattice_evidence:  # refused now, not after the boosters' fit
            from tasks.lattice_evidence import check_lattice_evidence_fit

            check_lattice_evidence_fit(self.modality, len(calib))
        dtrain = xgb.DMatrix(X[train], label=encoded[train], missing=np.nan)
        dvalid = xgb.DMatrix(X[valid], label=encoded[valid], missing=np.nan)
        self.booster_ = xgb.train(
            self._booster_params(len(self.classes_)), dtrain, num_boost_round=self.n_estimators,
            evals=[(dvalid, "valid")], early_stopping_rounds=self.early_stopping_rounds, verbose_eval=False,
            callbacks=[callback] if callback is not None else None,
        )
        self.best_iteration_ = int(self.booster_.best_iteration)
        self.system_booster_, self.system_best_iteration_, self.system_weight_ = None, 0, 0.0
        self._set_systems()
        system_of_row = self.class_system_[encoded]
        if self.system_head and len(self.systems_) > 1:
            self.system_booster_ = xgb.train(
                self._booster_params(len(self.systems_)),
                xgb.DMatrix(X[train], label=system_of_row[train], missing=np.nan),
                num_boost_round=self.n_estimators,
                evals=[(xgb.DMatrix(X[valid], label=system_of_row[valid], missing=np.nan), "valid")],
                early_stopping_rounds=self.early_stopping_rounds, verbose_eval=False)
            self.system_best_iteration_ = int(self.system_booster_.best_iteration)
            self.temperature_, self.system_weight_ = fit_temperature_and_weight(
                self._margins(X[calib]), self._system_log_proba(X[calib])[:, self.class_system_], encoded[calib])
        else:
            self.temperature_ = fit_temperature(self._margins(X[calib]), encoded[calib])
        # every row is a reference; a calibration material's own patterns are left out of its search, so the
        # mixture is weighed on searches like those of new materials
        self.neighbours_ = self._fit_neighbours(X, y, groups) if self.structure_type_search else None
        if reference_lines is not None:
            self._attach_reference_lines(reference_lines, groups if line_rows is None else line_rows)
        self.mixture_temperature_ = 1.0
        answers = self.fit_answer_calibration(X[calib], encoded[calib], groups[calib])
        self.fit_lattice_evidence(X[calib], encoded[calib], answers=answers, groups=groups[calib])
        return self

    def refit_answer_calibration(self, X, y, groups, reference_lines=None, line_rows=None,
                                 cells_of=None) -> "SpaceGroupClassifier":
        """Refit the gate, the re-ranker (as ``candidate_reranking`` now says), the confidence calibration and (as
        ``lattice_evidence`` now says) the lattice evidence on the calibration split of the rows ``fit`` was given
        (``X``, ``y``, ``groups``), keeping the boosters and the search: what a new fit with these settings would end
        with, at a fraction of its cost. ``reference_lines`` and ``line_rows`` (as in ``fit``) give the search the
        cell refinement first; ``cells_of`` as in ``fit_lattice_evidence``."""
        X, y, groups = np.asarray(X, dtype=np.float32), np.asarray(y).astype(int), np.asarray(groups)
        if self.candidate_reranking and self.neighbours_ is None:
            raise ValueError("candidate_reranking re-ranks the structure-type search's candidates: this model has none")
        if self.neighbours_ is not None:
            if not np.array_equal(self.neighbours_.labels_, y):
                raise ValueError("these are not the rows the model was fitted on: its search's references differ")
            self.neighbours_.groups_ = groups
        if reference_lines is not None:
            self._attach_reference_lines(reference_lines, groups if line_rows is None else line_rows)
        _, _, calib = _three_way_group_split(groups, self.validation_fraction, self.calibration_fraction,
                                             self.random_state)
        encoded = np.searchsorted(self.classes_, y[calib])
        answers = self.fit_answer_calibration(X[calib], encoded, groups[calib])
        self.fit_lattice_evidence(X[calib], encoded, answers=answers, cells_of=cells_of, groups=groups[calib])
        return self

    def fit_answer_calibration(self, X_calib, encoded_calib, groups_calib) -> np.ndarray:
        """On the calibration split (class indices ``encoded_calib``): the mixture's gate, the candidate re-ranker
        (``candidate_reranking``) and the confidence calibration, for the boosters and search already fitted.
        Returns the split's answers as a new material would get them (the search without the material's own
        patterns, the re-ranker cross-fitted), calibrated."""
        self.neighbour_gate_, self.confidence_calibration_, self.reranker_ = (0.0, 0.0), IDENTITY, None
        logits = self._logits(X_calib)
        if self.neighbours_ is not None:
            labels, similarity, fit = self._neighbours_of(X_calib, groups_calib)
            vote, best = self.neighbours_.vote_of(labels, similarity, self.classes_)
            self.neighbour_gate_ = fit_mixture(softmax(logits, axis=1), vote, best, encoded_calib)
            booster_logits, logits = logits, self._mixed_logits(logits, vote, best)
            if self.candidate_reranking:
                from tasks.reranking import CandidateReranker

                mixed = log_softmax(logits, axis=1)
                candidates = self._candidates(booster_logits, mixed, vote, best, labels, similarity, fit)
                # the confidence calibration below is fitted on cross-fitted answers: ones the re-ranker never saw
                self.reranker_, logits = CandidateReranker().fit(candidates, encoded_calib, groups_calib, mixed,
                                                                 self.random_state)
        proba = softmax(logits, axis=1)
        self.confidence_calibration_ = fit_beta_calibration(proba.max(axis=1), proba.argmax(axis=1) == encoded_calib)
        return softmax(self._confidence_calibrated(logits), axis=1)

    def fit_lattice_evidence(self, X_calib, encoded_calib, cells: np.ndarray | None = None,
                             answers: np.ndarray | None = None, cells_of=None,
                             groups: np.ndarray | None = None) -> None:
        """With ``lattice_evidence``: the correction of the answer's crystal systems by the patterns' cells
        (``tasks.lattice_evidence``), fitted on the calibration split with the answer so far as its offset:
        ``answers``, what ``fit_answer_calibration`` returned (else ``predict_proba``, which lets a model with the
        structure-type search find each pattern's own material and look surer than on new ones); ``cells`` are
        ``lattice_cells(X_calib)`` where the caller has them, else ``cells_of(rows)`` of the (sampled) rows where the
        caller keeps them (a cache), else computed here; ``groups`` the patterns' materials (default: one each),
        which the stage's cross-fitting keeps together. A split larger than ``MAX_FIT_PATTERNS`` is sampled down to
        it (seeded by ``random_state``). Without: none."""
        from tasks.lattice_evidence import (MAX_FIT_PATTERNS, BoostedLatticeEvidence, check_lattice_evidence_fit,
                                            lattice_cells)

        self.lattice_evidence_, self.lattice_confidence_calibration_ = None, IDENTITY
        if not self.lattice_evidence:
            return
        check_lattice_evidence_fit(self.modality, len(X_calib))
        X_calib = np.asarray(X_calib, dtype=np.float32)
        encoded_calib = np.asarray(encoded_calib)
        groups = np.arange(len(X_calib)) if groups is None else np.asarray(groups)
        if len(X_calib) > MAX_FIT_PATTERNS:  # the searches cost ~0.6 s a pattern (MAX_FIT_PATTERNS says why)
            keep = np.sort(np.random.default_rng(self.random_state).choice(len(X_calib), MAX_FIT_PATTERNS,
                                                                          replace=False))
            X_calib, encoded_calib, groups = X_calib[keep], encoded_calib[keep], groups[keep]
            cells = None if cells is None else np.asarray(cells)[keep]
            answers = None if answers is None else np.asarray(answers)[keep]
        if cells is None:
            cells = (cells_of(X_calib) if cells_of is not None
                     else lattice_cells(X_calib, self.feature_version, self.n_jobs))
        answers = self.predict_proba(X_calib) if answers is None else answers
        log_answers = np.log(np.clip(answers, 1e-300, 1.0))
        self.lattice_evidence_, cross_shift = BoostedLatticeEvidence.fit(
            self._system_log_proba_of(log_answers), cells, self.systems_[self.class_system_[encoded_calib]], groups,
            self.random_state)
        # The stage moves probability between crystal systems, and the confidence calibration was fitted on the
        # answers before it: its answers get their own, fitted on the cross-fitted shifts (answers the stage never
        # saw). bench/accuracy.py's (b): the linear stage without a calibration of its own ECE 0.039, with one
        # fitted in-sample 0.034; this stage with this calibration 0.025 (sampling floor 0.030).
        staged_proba = softmax(log_answers + cross_shift[:, self.systems_[self.class_system_]], axis=1)
        self.lattice_confidence_calibration_ = fit_beta_calibration(staged_proba.max(axis=1),
                                                                    staged_proba.argmax(axis=1) == encoded_calib)

    def _system_marginals(self, proba: np.ndarray) -> np.ndarray:
        """Each row's probability of each crystal system, in ``CRYSTAL_SYSTEMS`` order (n x 7)."""
        out = np.zeros((len(proba), len(CRYSTAL_SYSTEMS)))
        np.add.at(out.T, self.systems_[self.class_system_], proba.T)
        return out

    def _search_inputs(self, X) -> tuple[np.ndarray, ...]:
        """What the structure-type search reads from feature rows: patterns, their peaks (up to a lattice scale
        change, ``tasks.neighbours``); formulas, their place on Pettifor's structure map (``tasks.prototypes``)."""
        from tasks.neighbours import peak_sticks
        from tasks.prototypes import prototype_features

        if self.modality == "xrd":
            return peak_sticks(X, self.feature_version)
        if self.modality == "formula":
            return (prototype_features(X, self.feature_version),)
        raise ValueError(f"no structure-type search for modality {self.modality!r}")

    def _fit_neighbours(self, X, y, groups):
        from tasks.neighbours import StructureTypeNeighbours
        from tasks.prototypes import FormulaPrototypeNeighbours

        search = StructureTypeNeighbours() if self.modality == "xrd" else FormulaPrototypeNeighbours()
        return search.fit(*self._search_inputs(X), y, groups)

    def _attach_reference_lines(self, reference_lines, line_rows) -> None:
        from tasks.neighbours import first_peak_count

        if self.neighbours_ is None or self.modality != "xrd":
            raise ValueError(_LINES_NEED_SEARCH)
        self.neighbours_.with_reference_lines(reference_lines, line_rows, first_peak_count(self.feature_version))

    def _neighbours_of(self, X, exclude_groups=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The labels, similarities and refined fits of each row's nearest references."""
        return self.neighbours_.neighbours(*self._search_inputs(X), exclude_groups)

    def _candidates(self, booster_logits, mixed_log_proba, vote, best, labels, similarity, fit):
        """The re-ranker's candidates; neighbours with a label outside ``classes_`` or no similarity are absent."""
        from tasks.neighbours import class_columns
        from tasks.reranking import candidate_table

        columns = np.where(similarity > 0, class_columns(labels, self.classes_), -1)
        return candidate_table(log_softmax(booster_logits, axis=1), mixed_log_proba, vote, best, columns, similarity,
                               np.log(self.class_prior_), fit)

    def neighbour_weight(self, best_similarity) -> np.ndarray:
        """The structure-type vote's share of the answer, given the similarity of the nearest reference."""
        return mixture_weight(self.neighbour_gate_, best_similarity)

    def _set_systems(self) -> None:
        """``systems_``: indices into ``CRYSTAL_SYSTEMS`` of the systems among ``classes_``; ``class_system_``:
        for each class, the position of its system in ``systems_``."""
        system_index = np.array([CRYSTAL_SYSTEMS.index(space_group_type(int(c)).crystal_system)
                                 for c in self.classes_])
        self.systems_ = np.unique(system_index)
        self.class_system_ = np.searchsorted(self.systems_, system_index)

    def _system_log_proba(self, X) -> np.ndarray:
        margins = _raw_margins(X, self.system_booster_, self.system_best_iteration_,
                               self.__dict__.get("_system_forest"))
        return log_softmax(margins, axis=1)

    def _margins(self, X) -> np.ndarray:
        return _raw_margins(X, self.booster_, self.best_iteration_, self.__dict__.get("_forest"))

    def prepare_small_batches(self) -> "SpaceGroupClassifier":
        """Copy the trees into numpy arrays so that one or two rows skip XGBoost's per-call cost.

        Costs 0.5-2 s once (the shipped models), so long-running services call it at start-up; one-shot commands
        do not.
        """
        self.__dict__["_forest"] = CompiledForest(self.booster_, self.best_iteration_ + 1)
        if self.system_booster_ is not None:
            self.__dict__["_system_forest"] = CompiledForest(self.system_booster_, self.system_best_iteration_ + 1)
        return self

    def set_threads(self, n_threads: int) -> None:
        """Cap XGBoost's threads per prediction call (both boosters, and a boosted lattice evidence's)."""
        stage = getattr(self.__dict__.get("lattice_evidence_"), "booster", None)
        for booster in (self.booster_, self.system_booster_, stage):
            if booster is not None:
                booster.set_param({"nthread": n_threads})

    # -- inference ------------------------------------------------------------------------------------
    def predict_proba(self, X, prior: SpaceGroupPrior | None = None,
                      lattice_cells: np.ndarray | None = None) -> np.ndarray:
        """Calibrated probabilities of ``classes_``; under ``prior`` instead of the training labels' frequencies
        when given (Bayes' rule on the calibrated posterior; no change for a model that does not know them); with
        the rows' ``lattice_cells`` (``tasks.lattice_evidence``), their crystal systems corrected by the cells
        (models fitted with ``lattice_evidence`` only)."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected {self.n_features_in_} features per row, got shape {X.shape}")
        logits = self._logits(X)
        if self.__dict__.get("neighbours_") is not None:
            labels, similarity, fit = self._neighbours_of(X)
            vote, best = self.neighbours_.vote_of(labels, similarity, self.classes_)
            booster_logits, logits = logits, self._mixed_logits(logits, vote, best)
            if self.__dict__.get("reranker_") is not None:
                mixed = log_softmax(logits, axis=1)
                logits = self.reranker_.log_proba(self._candidates(booster_logits, mixed, vote, best, labels,
                                                                   similarity, fit), mixed)
        logits = self._confidence_calibrated(logits)
        if lattice_cells is not None:
            log_proba = log_softmax(logits, axis=1)
            logits = log_proba + self._lattice_shift(lattice_cells, log_proba)
            logits = self._confidence_calibrated(logits, getattr(self, "lattice_confidence_calibration_", IDENTITY))
        if prior is not None:
            logits = logits + self._prior_shift(prior)
        return softmax(logits, axis=1)

    def _confidence_calibrated(self, logits: np.ndarray, calibration=None) -> np.ndarray:
        """The answers' top confidences mapped by ``calibration`` (default: the model's confidence calibration)."""
        calibration = getattr(self, "confidence_calibration_", IDENTITY) if calibration is None else calibration
        if calibration == IDENTITY:
            return logits
        log_proba = log_softmax(logits, axis=1)
        return with_top_confidence(log_proba, beta_calibrated(calibration, np.exp(log_proba.max(axis=1))))

    @property
    def has_lattice_evidence(self) -> bool:
        return self.__dict__.get("lattice_evidence_") is not None

    def _system_log_proba_of(self, log_proba: np.ndarray) -> np.ndarray:
        """Each answer's log-probability of each crystal system (n x 7), as the lattice evidence reads it."""
        return np.log(np.clip(self._system_marginals(np.exp(log_proba)), 1e-9, 1.0))

    def _lattice_shift(self, lattice_cells: np.ndarray, log_proba: np.ndarray) -> np.ndarray:
        """The lattice evidence's log-shift of each class (n x classes) of answers ``log_proba``."""
        if not self.has_lattice_evidence:
            raise ValueError("this model was trained without the lattice evidence (lattice_evidence=False); "
                             "retrain it with `spacegroup train --lattice-evidence` to use it")
        lattice_cells = np.asarray(lattice_cells, dtype=float)
        if len(lattice_cells) != len(log_proba):
            raise ValueError(f"{len(lattice_cells)} rows of lattice cells for {len(log_proba)} patterns")
        shift = self.lattice_evidence_.log_shift(lattice_cells, self._system_log_proba_of(log_proba))
        return shift[:, self.systems_[self.class_system_]]

    @property
    def lattice_searches(self) -> tuple[str, ...]:
        """The lattice searches whose ``lattice_cells`` the stage reads (empty without it)."""
        return self.lattice_evidence_.lattices if self.has_lattice_evidence else ()

    def _mixed_logits(self, logits: np.ndarray, vote: np.ndarray, best_similarity: np.ndarray) -> np.ndarray:
        """The boosters' answer mixed with the structure-type vote, as log-probabilities."""
        weight = self.neighbour_weight(best_similarity)[:, None]
        return np.log((1.0 - weight) * softmax(logits, axis=1) + weight * vote) / self.mixture_temperature_

    def _logits(self, X) -> np.ndarray:
        """The boosters' calibrated log-probabilities (up to a constant per row)."""
        logits = self._margins(X).astype(np.float64) / self.temperature_  # float32 near p = 1 blurs calibration
        if self.system_booster_ is not None:
            logits += self.system_weight_ * self._system_log_proba(X)[:, self.class_system_]
        return logits

    @property
    def knows_training_prior(self) -> bool:
        """Whether this model can answer under another prior (models saved before it was stored cannot)."""
        return getattr(self, "class_prior_", None) is not None

    def _prior_shift(self, prior: SpaceGroupPrior) -> np.ndarray | float:
        """``strength x log(prior / training prior)`` per class, computed once per prior object."""
        if not self.knows_training_prior:
            return 0.0
        shifts = self.__dict__.setdefault("_prior_shifts", {})  # keyed by identity (SpaceGroupPrior has eq=False)
        if prior not in shifts:
            ratio = np.log(prior.probabilities[self.classes_ - 1]) - np.log(self.class_prior_)
            shifts[prior] = prior.strength * ratio
        return shifts[prior]

    def under_prior(self, proba: np.ndarray, prior: SpaceGroupPrior | None) -> np.ndarray:
        """``predict_proba(X)``'s answer (as trained) moved to ``prior``: ``predict_proba(X, prior)`` without
        scoring the rows again."""
        if prior is None or not self.knows_training_prior:
            return proba
        weighted = proba * np.exp(self._prior_shift(prior))
        return weighted / weighted.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def rank(self, X, k: int = 5, prior: SpaceGroupPrior | None = None,
             lattice_cells: np.ndarray | None = None) -> list[RankedPrediction]:
        """Top-``k`` space groups per row with crystal-system and extinction-group marginals (under ``prior``, with
        the ``lattice_cells`` evidence as ``predict_proba``)."""
        return rank_rows(self.predict_proba(X, prior, lattice_cells), self.classes_, k, self.abstain_threshold)

    # -- persistence ----------------------------------------------------------------------------------
    def _artifact_format(self) -> str:
        """The oldest format that holds all this model has: code before it would ignore what it adds."""
        from tasks.lattice_evidence import BoostedLatticeEvidence

        if not self.has_lattice_evidence:
            return ARTIFACT_FORMAT
        if isinstance(self.lattice_evidence_, BoostedLatticeEvidence):
            return BOOSTED_LATTICE_EVIDENCE_FORMAT
        return LATTICE_EVIDENCE_FORMATS[len(self.lattice_evidence_.lattices)]

    def to_bytes(self) -> bytes:
        meta = {"format": self._artifact_format(),
                "params": self.get_params(), "best_iteration": self.best_iteration_,
                "n_features_in": self.n_features_in_, "system_best_iteration": self.system_best_iteration_}
        arrays = {
            # rounds after the early-stopping optimum are never used for prediction: do not ship them
            "booster": _booster_bytes(self.booster_, self.best_iteration_),
            "classes": self.classes_.astype(np.int64),
            "temperature": np.array([self.temperature_]),
            "system_weight": np.array([self.system_weight_]),
            "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        }
        if self.system_booster_ is not None:
            arrays["system_booster"] = _booster_bytes(self.system_booster_, self.system_best_iteration_)
        if getattr(self, "class_prior_", None) is not None:
            arrays["class_prior"] = np.asarray(self.class_prior_, dtype=np.float64)
        if self.__dict__.get("neighbours_") is not None:
            arrays |= self.neighbours_.to_arrays()
            arrays["neighbour_mixture"] = np.array([*self.neighbour_gate_, self.mixture_temperature_])
        if self.__dict__.get("reranker_") is not None:
            arrays |= self.reranker_.to_arrays()
        if self.has_lattice_evidence:
            arrays |= self.lattice_evidence_.to_arrays()
            if getattr(self, "lattice_confidence_calibration_", IDENTITY) != IDENTITY:
                arrays["lattice_confidence_calibration"] = np.array(self.lattice_confidence_calibration_)
        arrays["confidence_calibration"] = np.array(getattr(self, "confidence_calibration_", IDENTITY))
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "SpaceGroupClassifier":
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                meta = json.loads(archive["meta"].tobytes().decode())
                if meta.get("format") not in READABLE_FORMATS:
                    raise ModelFormatError(f"unknown model format {meta.get('format')!r}")
                model = cls(**meta["params"])
                threads = model.n_jobs or (os.cpu_count() or 1)
                model.booster_ = _load_booster(archive["booster"], threads)
                model.classes_ = archive["classes"].astype(int)
                model.temperature_ = float(archive["temperature"][0])
                has_head = "system_booster" in archive.files
                model.system_booster_ = _load_booster(archive["system_booster"], threads) if has_head else None
                model.system_weight_ = float(archive["system_weight"][0]) if has_head else 0.0
                model.class_prior_ = archive["class_prior"] if "class_prior" in archive.files else None
                if model.class_prior_ is not None and model.class_prior_.shape != model.classes_.shape:
                    raise ValueError(f"{model.class_prior_.shape[0]} training frequencies for "
                                     f"{model.classes_.shape[0]} classes")
                model.neighbours_, model.neighbour_gate_, model.mixture_temperature_ = None, (0.0, 0.0), 1.0
                if "neighbour_mixture" in archive.files:
                    from tasks.neighbours import StructureTypeNeighbours
                    from tasks.prototypes import FormulaPrototypeNeighbours

                    search = FormulaPrototypeNeighbours if model.modality == "formula" else StructureTypeNeighbours
                    model.neighbours_ = search.from_arrays(archive)
                    bias, slope, model.mixture_temperature_ = (float(v) for v in archive["neighbour_mixture"])
                    model.neighbour_gate_ = (bias, slope)
                model.reranker_ = None
                if "reranker" in archive.files:
                    from tasks.reranking import CandidateReranker

                    if model.neighbours_ is None:
                        raise ValueError("a candidate re-ranker without the structure-type search it re-ranks")
                    model.reranker_ = CandidateReranker.from_arrays(archive)
                model.lattice_evidence_ = None
                if "lattice_evidence" in archive.files:
                    from tasks.lattice_evidence import LatticeEvidence

                    model.lattice_evidence_ = LatticeEvidence.from_arrays(archive)
                elif "lattice_evidence_booster" in archive.files:
                    from tasks.lattice_evidence import BoostedLatticeEvidence

                    model.lattice_evidence_ = BoostedLatticeEvidence.from_arrays(archive)
                model.confidence_calibration_ = (tuple(float(v) for v in archive["confidence_calibration"])
                                                 if "confidence_calibration" in archive.files else IDENTITY)
                # stages fitted before 2026-12-02 have none: their answers keep the stage's shift alone
                model.lattice_confidence_calibration_ = (
                    tuple(float(v) for v in archive["lattice_confidence_calibration"])
                    if "lattice_confidence_calibration" in archive.files else IDENTITY)
                for calibration in (model.confidence_calibration_, model.lattice_confidence_calibration_):
                    if len(calibration) != 3:
                        raise ValueError(f"confidence calibration needs 3 parameters, got {calibration}")
        except (KeyError, ValueError, OSError, xgb.core.XGBoostError) as exc:
            if isinstance(exc, ModelFormatError):
                raise
            raise ModelFormatError(f"not a space-group model artifact: {exc}") from None
        model.best_iteration_ = int(meta["best_iteration"])
        model.system_best_iteration_ = int(meta.get("system_best_iteration", 0))
        model.n_features_in_ = int(meta["n_features_in"])
        model._set_systems()
        return model


def _raw_margins(X, booster: xgb.Booster, best_iteration: int, forest: CompiledForest | None) -> np.ndarray:
    """The booster's margins up to ``best_iteration``: from its compiled copy for a few rows, else from XGBoost."""
    if forest is not None and len(X) <= COMPILED_FOREST_MAX_ROWS:
        return forest.margins(X)
    # in place: no DMatrix is built (the same margins, bit for bit; ~10 % less time per block of rows)
    return booster.inplace_predict(np.asarray(X, dtype=np.float32), iteration_range=(0, best_iteration + 1),
                                   predict_type="margin", missing=np.nan)


def _booster_bytes(booster: xgb.Booster, best_iteration: int) -> np.ndarray:
    return np.frombuffer(bytes(booster[: best_iteration + 1].save_raw(raw_format="ubj")), dtype=np.uint8)


def _load_booster(raw: np.ndarray, n_threads: int) -> xgb.Booster:
    booster = xgb.Booster()
    booster.load_model(bytearray(raw.tobytes()))
    booster.set_param({"nthread": n_threads})
    return booster


def _three_way_group_split(groups, valid_fraction, calib_fraction, seed):
    idx = np.arange(len(groups))
    outer = GroupShuffleSplit(n_splits=1, test_size=valid_fraction + calib_fraction, random_state=seed)
    train, rest = next(outer.split(idx, groups=groups))
    inner = GroupShuffleSplit(n_splits=1, test_size=calib_fraction / (valid_fraction + calib_fraction),
                              random_state=seed + 1)
    valid_r, calib_r = next(inner.split(rest, groups=groups[rest]))
    return train, rest[valid_r], rest[calib_r]


def fit_temperature_and_weight(margins: np.ndarray, system_log_proba: np.ndarray,
                               encoded_labels: np.ndarray) -> tuple[float, float]:
    """``(T, w)`` minimising the negative log-likelihood of ``softmax(margins / T + w system_log_proba)``, where
    ``system_log_proba[i, j]`` is the system head's log-probability of the crystal system of class ``j``
    (T bounded to 0.05-20, w to 0-3; from T fitted alone and w = 0)."""
    if len(encoded_labels) == 0:
        return 1.0, 0.0
    rows = np.arange(len(encoded_labels))

    def nll(params: np.ndarray) -> float:
        log_t, weight = params
        logp = log_softmax(margins / np.exp(log_t) + weight * system_log_proba, axis=1)
        return float(-logp[rows, encoded_labels].mean())

    start = np.array([np.log(fit_temperature(margins, encoded_labels)), 0.0])
    result = minimize(nll, start, method="L-BFGS-B", bounds=[(np.log(0.05), np.log(20.0)), (0.0, 3.0)])
    return float(np.exp(result.x[0])), float(result.x[1])


#: similarity of the nearest reference around which the vote's weight turns (MP patterns: median 0.85)
GATE_CENTRE = 0.85


def mixture_weight(gate: tuple[float, float], best_similarity) -> np.ndarray:
    """``sigmoid(bias + slope (s - GATE_CENTRE))``: the vote's share, from the nearest reference's similarity."""
    bias, slope = gate
    return expit(bias + slope * (np.asarray(best_similarity, dtype=np.float64) - GATE_CENTRE))


def fit_mixture(proba: np.ndarray, expert_proba: np.ndarray, best_similarity: np.ndarray,
                encoded_labels: np.ndarray) -> tuple[float, float]:
    """``(bias, slope)`` of the gate ``v = mixture_weight((bias, slope), s)`` in ``(1 - v) proba + v expert_proba``,
    by the negative log-likelihood of the true labels (with a temperature fitted alongside and then dropped: the
    model's confidence calibration follows the mixture, ``tasks.calibration``).

    A mixture, not a product: the structure-type search is sharp where a neighbour matches and flat where none
    does; measured on MP patterns the product's best weight gave 0.373 SG top-1, a fixed mixture weight 0.417
    (8,000 / 800 draw). A weight that follows the best match's similarity: 0.420, ECE 0.040 -> 0.034 there; with a
    fixed weight the reliability curve was S-shaped (over-confident at 0.2-0.6, under-confident at 0.7-0.9; ECE
    0.074 on the 20,000 / 800 draw).
    """
    if len(encoded_labels) == 0:
        return 0.0, 0.0
    rows = np.arange(len(encoded_labels))

    def nll(params: np.ndarray) -> float:
        weight = mixture_weight(params[:2], best_similarity)[:, None]
        mixed = np.log((1.0 - weight) * proba + weight * expert_proba)
        return float(-log_softmax(mixed / np.exp(params[2]), axis=1)[rows, encoded_labels].mean())

    result = minimize(nll, np.zeros(3), method="L-BFGS-B",
                      bounds=[(-10.0, 10.0), (-100.0, 100.0), (np.log(0.05), np.log(20.0))])
    return float(result.x[0]), float(result.x[1])


def fit_temperature(margins: np.ndarray, encoded_labels: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of the true labels (bounded to 0.05-20)."""
    if len(encoded_labels) == 0:
        return 1.0

    def nll(log_t: float) -> float:
        logp = log_softmax(margins / np.exp(log_t), axis=1)
        return float(-logp[np.arange(len(encoded_labels)), encoded_labels].mean())

    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def rank_probabilities(row: np.ndarray, classes: np.ndarray, k: int, abstain_threshold: float) -> RankedPrediction:
    """``rank_rows`` of one row of probabilities."""
    return rank_rows(np.asarray(row)[None, :], classes, k, abstain_threshold)[0]


def rank_rows(proba: np.ndarray, classes: np.ndarray, k: int, abstain_threshold: float) -> list[RankedPrediction]:
    """Top-``k`` classes of each row of ``proba`` (n, classes) with its crystal-system and extinction-group
    marginals. The sorting and the marginals run on the whole block: per row they cost 0.1 ms in Python, as much
    as the model itself in a large batch."""
    (m_cs, cs_labels), (m_eg, eg_labels) = _marginal_matrices(np.asarray(classes, np.int64).tobytes())
    order = np.argsort(-proba, axis=1)[:, :k]
    top = np.take_along_axis(proba, order, axis=1)
    systems, groups = proba @ m_cs, proba @ m_eg
    best_system, best_ext = np.argmax(systems, axis=1), np.argmax(groups, axis=1)
    rows = np.arange(len(proba))
    return [RankedPrediction(space_groups=sg, probabilities=p, crystal_system=cs, crystal_system_probability=cs_p,
                             extinction_group=eg, extinction_group_probability=eg_p, abstained=p[0] < abstain_threshold)
            for sg, p, cs, cs_p, eg, eg_p in zip(classes[order].tolist(), top.tolist(), cs_labels[best_system].tolist(),
                                                 systems[rows, best_system].tolist(), eg_labels[best_ext].tolist(),
                                                 groups[rows, best_ext].tolist())]


@lru_cache(maxsize=16)
def _marginal_matrices(classes: bytes):
    """Crystal-system and extinction-group marginal matrices, built once per set of model classes (int64 bytes:
    a cheaper cache key per call than a tuple of 230 ints)."""
    as_array = np.frombuffer(classes, np.int64)
    return marginal_matrix(as_array, "crystal_system"), marginal_matrix(as_array, "extinction_group")


def marginal_matrix(classes: np.ndarray, level: str) -> tuple[np.ndarray, np.ndarray]:
    """``(M, labels)`` with ``proba @ M`` = probabilities per crystal system or extinction group."""
    if level == "crystal_system":
        labels = np.array(CRYSTAL_SYSTEMS)
        keys = [space_group_type(int(c)).crystal_system for c in classes]
    elif level == "extinction_group":
        keys = [extinction_group_of(int(c)).index for c in classes]
        labels = np.array(sorted(set(keys)))
    else:
        raise ValueError(f"unknown level {level!r}")
    M = np.zeros((len(classes), len(labels)))
    for i, key in enumerate(keys):
        M[i, list(labels).index(key)] = 1.0
    return M, labels
