"""Calibration of the top answer's confidence: beta calibration, and a per-answer temperature that applies it.

A single temperature rescales every answer alike, so it cannot mend a reliability curve that is over-confident at
low confidence and under-confident at high, which is what mixing the boosters with the structure-type search
leaves (tasks/models.py). Beta calibration (Kull, Silva Filho & Flach 2017) maps a confidence ``c`` to
``sigmoid(a ln c - b ln(1 - c) + m)``: three parameters, fitted by logistic regression of "the top answer was
right" on the calibration split; it contains the identity (``a = b = 1``, ``m = 0``) and, with ``a, b >= 0``,
keeps the order of confidences.

Measured (5-fold grouped cross-validation on the 7,200-pattern calibration split of the 8,000 / 800 MP draw;
the ECE a perfectly calibrated model would show on those answers, its sampling floor, in brackets):
mixture with an ECE-chosen temperature 0.037 (0.023), with beta calibration 0.029 (0.023); boosters alone with
their likelihood temperature 0.029 (0.020), with beta calibration 0.025 (0.020). Isotonic regression of the
confidence was no better than the temperature (0.036): it overfits its steps.

The calibrated confidence is applied as a temperature found per answer, so that the whole distribution moves
with the top class and the ranking of the classes is unchanged.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_softmax, softmax
from sklearn.linear_model import LogisticRegression

IDENTITY = (1.0, 1.0, 0.0)
_EPS = 1e-6


def _beta_features(confidence: np.ndarray) -> np.ndarray:
    c = np.clip(np.asarray(confidence, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.column_stack([np.log(c), -np.log1p(-c)])


def fit_beta_calibration(confidence, correct) -> tuple[float, float, float]:
    """``(a, b, m)`` of ``sigmoid(a ln c - b ln(1 - c) + m)`` fitted to whether each answer was right.

    A negative ``a`` or ``b`` would bend the map backwards; that feature is dropped and the other refitted
    (Kull et al.'s remedy). With fewer than 20 answers, or all right or all wrong, the identity is returned.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct).astype(int)
    if len(correct) < 20 or correct.min() == correct.max():
        return IDENTITY
    features = _beta_features(confidence)
    keep = [0, 1]
    while keep:
        # weak regularisation: three parameters on thousands of answers need none, but a separable set would diverge
        fit = LogisticRegression(C=1e4, max_iter=1000).fit(features[:, keep], correct)
        coefficients = dict(zip(keep, fit.coef_[0]))
        negative = [k for k, v in coefficients.items() if v < 0]
        if not negative:
            return (float(coefficients.get(0, 0.0)), float(coefficients.get(1, 0.0)), float(fit.intercept_[0]))
        keep.remove(negative[0])
    return IDENTITY


def beta_calibrated(params: tuple[float, float, float], confidence) -> np.ndarray:
    """The calibrated confidence of top answers whose confidence is ``confidence``."""
    a, b, m = params
    return expit(_beta_features(confidence) @ np.array([a, b]) + m)


def with_top_confidence(log_proba: np.ndarray, target) -> np.ndarray:
    """Probabilities ``softmax(log_proba / T_i)`` with each row's temperature ``T_i`` chosen so that its largest
    probability equals ``target[i]`` (clipped to what a temperature can reach: above ``1 / n_classes``).

    The top probability falls monotonically as ``T`` grows, so ``T_i`` is found by bisection on ``ln T``.
    """
    log_proba = log_softmax(np.asarray(log_proba, dtype=np.float64), axis=1)
    n, k = log_proba.shape
    target = np.clip(np.asarray(target, dtype=np.float64), 1.0 / k + 1e-9, 1.0 - 1e-9)
    low, high = np.full(n, np.log(1e-3)), np.full(n, np.log(1e3))
    for _ in range(40):  # 40 halvings of ln 1e6: T to 1e-5 relative
        middle = 0.5 * (low + high)
        top = np.exp(log_softmax(log_proba / np.exp(middle)[:, None], axis=1).max(axis=1))
        too_sharp = top > target
        low = np.where(too_sharp, middle, low)
        high = np.where(too_sharp, high, middle)
    return softmax(log_proba / np.exp(0.5 * (low + high))[:, None], axis=1)
