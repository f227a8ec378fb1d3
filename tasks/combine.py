"""A pattern's answer given the sample's composition: the XRD model's evidence combined with the formula model's.

A crystallographer nearly always knows what the sample is made of, and search-match programs filter their
database by it. The two models read different things (the pattern: the lattice and the absences; the formula: which
structure types such a composition takes), so their evidence multiplies. With both calibrated and the pattern
independent of the formula given the space group, Bayes' rule gives

    P(g | pattern, formula) ∝ P(g | formula)^FORMULA_POWER x (P(g | pattern) / P_train(g))^PATTERN_POWER

where ``P_train`` is the XRD model's training prior (its answer divided by it is the pattern's likelihood ratio);
the formula model's answer already carries the frequencies of real materials, which it was trained on. The powers
(1 and 1 for two independent, calibrated models) are fitted on patterns of MP training materials, not on the test
patterns (``bench/combined_accuracy.py``): independence holds only roughly, and the synthetic-only XRD model is
less sure of real patterns than its calibration on synthetic ones says.

Space groups one model never saw get ``PROBABILITY_FLOOR`` from it instead of zero, so neither model can veto
an answer alone; for the XRD model such a group's training frequency is taken as an average class's, so that
the floor counts as evidence against it (the same floor over a floor would be a neutral likelihood ratio, and a
group the XRD model cannot recognise would then rank with those it finds half likely).
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

from tasks.priors import N_SPACE_GROUPS

# chosen on (v) for the shipped XRD model, by the mean log-probability of the true group over a grid
# (bench/combined_accuracy.py, run of record): 0.5 / 1 gave -1.767, 1 / 1 -1.842; on (b) SG top-1 0.557 against
# 0.541, ECE 0.032 against 0.059. The synthetic-only model is surer of real patterns than it should be, so its
# evidence counts half.
PATTERN_POWER = 0.5
FORMULA_POWER = 1.0
PROBABILITY_FLOOR = 1e-4


def _on_all_groups(proba: np.ndarray, classes: np.ndarray, missing: float = PROBABILITY_FLOOR) -> np.ndarray:
    """(n, 230) probabilities, column g - 1 for space group g, ``missing`` where ``classes`` lacks g."""
    out = np.full((len(proba), N_SPACE_GROUPS), missing)
    out[:, np.asarray(classes, dtype=np.int64) - 1] = np.maximum(proba, PROBABILITY_FLOOR)
    return out


def combine_with_formula(pattern_proba: np.ndarray, pattern_classes: np.ndarray, pattern_training_prior: np.ndarray,
                         formula_proba: np.ndarray, formula_classes: np.ndarray,
                         pattern_power: float = PATTERN_POWER, formula_power: float = FORMULA_POWER) -> np.ndarray:
    """(n, 230) probabilities of space groups 1-230 for patterns (``pattern_proba`` (n, classes) as trained,
    ``pattern_training_prior`` the XRD model's training frequencies of its classes) of samples whose formula the
    formula model answered with ``formula_proba`` (n or 1 rows)."""
    pattern = _on_all_groups(np.atleast_2d(pattern_proba), pattern_classes)
    training = _on_all_groups(np.atleast_2d(pattern_training_prior), pattern_classes, 1.0 / len(pattern_classes))
    formula = _on_all_groups(np.atleast_2d(formula_proba), formula_classes)
    log_score = formula_power * np.log(formula) + pattern_power * (np.log(pattern) - np.log(training))
    return softmax(log_score, axis=1)
