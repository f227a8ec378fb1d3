"""Combining a pattern's answer with its composition's: Bayes' rule over all 230 space groups."""

import numpy as np
import pytest

from tasks.combine import PROBABILITY_FLOOR, combine_with_formula

PATTERN_CLASSES = np.array([62, 136, 225])
FORMULA_CLASSES = np.array([14, 136, 225, 227])


def test_a_formula_model_that_knows_nothing_leaves_the_patterns_answer():
    pattern = np.array([[0.2, 0.5, 0.3]])
    uniform = np.full((1, 4), 0.25)
    combined = combine_with_formula(pattern, PATTERN_CLASSES, np.full(3, 1 / 3), uniform, FORMULA_CLASSES, 1.0, 1.0)
    assert combined.shape == (1, 230) and combined.sum() == pytest.approx(1.0)
    # among the groups both models know, the pattern's ranking and ratios survive (to the pattern's power)
    assert combined[0, 135] / combined[0, 224] == pytest.approx(0.5 / 0.3)
    tempered = combine_with_formula(pattern, PATTERN_CLASSES, np.full(3, 1 / 3), uniform, FORMULA_CLASSES, 0.5, 1.0)
    assert tempered[0, 135] / tempered[0, 224] == pytest.approx(np.sqrt(0.5 / 0.3))
    assert combined[0, 135] > combined[0, 224] > combined[0, 13]


def test_a_pattern_model_that_learnt_nothing_leaves_the_formulas_answer():
    training = np.array([0.5, 0.3, 0.2])  # its answer is its training prior: the likelihood ratio is one
    formula = np.array([[0.1, 0.6, 0.2, 0.1]])
    combined = combine_with_formula(training[None, :], PATTERN_CLASSES, training, formula, FORMULA_CLASSES, 0.5, 1.0)
    for group, p in zip(FORMULA_CLASSES, formula[0]):
        if group in PATTERN_CLASSES:
            assert combined[0, group - 1] / combined[0, 135] == pytest.approx(p / 0.6)


def test_evidence_from_both_outweighs_either_alone_and_no_model_vetoes():
    pattern = np.array([[0.05, 0.45, 0.5]])  # the pattern: Fm-3m a little ahead of rutile's group
    formula = np.array([[0.1, 0.6, 0.1, 0.2]])  # the formula: rutile's group
    combined = combine_with_formula(pattern, PATTERN_CLASSES, np.full(3, 1 / 3), formula, FORMULA_CLASSES)[0]
    assert np.argmax(combined) + 1 == 136
    # Fd-3m, which the pattern model never learnt, keeps a floor's share instead of zero
    assert combined[226] > 0 and combined[226] < combined[224]
    # several patterns share one formula answer (one row broadcast)
    two = combine_with_formula(np.vstack([pattern, pattern[:, ::-1]]), PATTERN_CLASSES, np.full(3, 1 / 3), formula,
                               FORMULA_CLASSES)
    np.testing.assert_allclose(two[0], combined)
    assert two.sum(axis=1) == pytest.approx([1.0, 1.0])
    assert PROBABILITY_FLOOR > 0
