"""Search by structure prototype for formulas: stoichiometry and Pettifor's Mendeleev numbers."""

import numpy as np
import pytest

from tasks.features import FORMULA_FEATURE_VERSION, FormulaFeaturizer
from tasks.prototypes import (MAX_ELEMENTS, PROTOTYPE_LABELS, FormulaPrototypeNeighbours, element_distances,
                              prototype_columns, prototype_features, substitution_dissimilarity)
from tasks.readers import parse_formula


def columns(*formulas):
    return np.vstack([prototype_columns(parse_formula(f)) for f in formulas])


def test_a_formula_is_placed_by_its_shares_and_mendeleev_numbers_in_a_fixed_order():
    row = dict(zip(PROTOTYPE_LABELS, prototype_columns(parse_formula("SrTiO3"))))
    assert row["prototype_n_elements"] == 3
    assert [row[f"prototype_fraction_{i}"] for i in range(3)] == pytest.approx([0.2, 0.2, 0.6])
    # equal shares (Sr, Ti) in Mendeleev order: Sr (15) before Ti (51); O (101) last as the largest share
    assert [row[f"prototype_mendeleev_{i}"] for i in range(3)] == [15, 51, 101]
    assert np.isnan(row["prototype_fraction_3"]) and np.isnan(row[f"prototype_mendeleev_{MAX_ELEMENTS - 1}"])
    # the written order and multiples do not matter
    assert np.array_equal(prototype_columns(parse_formula("O6Ti2Sr2")), prototype_columns(parse_formula("SrTiO3")),
                          equal_nan=True)


def test_the_columns_travel_in_the_formula_features_and_are_read_by_name():
    featurizer = FormulaFeaturizer()
    X = featurizer.featurize_many([parse_formula("NaCl"), parse_formula("BaTiO3")])
    assert X.shape[1] == len(featurizer.feature_labels())
    np.testing.assert_array_equal(prototype_features(X, FORMULA_FEATURE_VERSION), columns("NaCl", "BaTiO3"))
    with pytest.raises(ValueError, match="prototype search .formula features. reads features"):
        prototype_features(X, "formula-magpie-stoich-1")


def test_the_nearest_compounds_of_the_same_stoichiometry_vote():
    # rock salts and caesium chlorides among the alkali halides; a perovskite as a third stoichiometry
    references = columns("NaCl", "KCl", "KBr", "CsCl", "CsBr", "SrTiO3")
    labels = [225, 225, 225, 221, 221, 221]
    search = FormulaPrototypeNeighbours(n_neighbours=1, substitution_weight=0.0).fit(references, labels)
    classes = np.array([221, 225])
    proba, best = search.vote(columns("NaBr", "CsI", "BaZrO3", "Al2O3"), classes)
    assert list(classes[proba.argmax(axis=1)][:3]) == [225, 221, 221]
    assert best[0] == pytest.approx(np.exp(-1.0))  # NaBr: Br (98) is one step from Cl (99) beside Na
    assert best[3] == 0.0 and np.allclose(proba[3], 0.5)  # no A2B3 reference: an even vote
    assert np.allclose(proba.sum(axis=1), 1.0)


def test_a_compound_can_be_left_out_of_its_own_search_and_the_search_round_trips():
    references = columns("NaCl", "NaCl", "KCl", "CsCl")
    search = FormulaPrototypeNeighbours(n_neighbours=1, substitution_weight=0.0).fit(references, [225, 225, 225, 221],
                                                                                   groups=[0, 0, 1, 2])
    classes = np.array([221, 225])
    _, best = search.vote(columns("NaCl"), classes)
    assert best[0] == 1.0  # itself
    _, best = search.vote(columns("NaCl"), classes, exclude_groups=np.array([0]))
    assert best[0] == pytest.approx(np.exp(-1.0))  # KCl: K (10) one step from Na (11)
    loaded = FormulaPrototypeNeighbours.from_arrays(search.to_arrays())
    queries = columns("RbCl", "CsBr", "Fe2O3")
    assert np.allclose(loaded.vote(queries, classes)[0], search.vote(queries, classes)[0])
    with pytest.raises(ValueError, match="without groups"):
        loaded.vote(queries, classes, exclude_groups=np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="prototype columns"):
        FormulaPrototypeNeighbours().fit(references[:, :3], [225] * 4)


def test_elements_that_replace_each_other_in_crystals_are_nearer():
    cost = substitution_dissimilarity()
    assert np.allclose(cost, cost.T) and np.all(np.diag(cost) == 0) and np.all(cost >= 0)
    k, na, rb = (prototype_columns(parse_formula(f))[1 + MAX_ELEMENTS] for f in ("K", "Na", "Rb"))
    assert abs(k - na) == abs(k - rb) == 1  # one step either way on Pettifor's scale
    assert cost[int(k), int(rb)] < cost[int(k), int(na)]  # but K+ takes Rb+'s place far more often than Na+'s
    references = columns("NaCl", "RbCl")
    classes = np.array([221, 225])
    plain = FormulaPrototypeNeighbours(n_neighbours=1, substitution_weight=0.0).fit(references, [225, 221])
    mined = FormulaPrototypeNeighbours(n_neighbours=1).fit(references, [225, 221])
    _, best_plain = plain.vote(columns("KCl"), classes)
    proba, best = mined.vote(columns("KCl"), classes)
    assert best_plain[0] == pytest.approx(np.exp(-1.0))
    assert classes[proba.argmax()] == 221
    assert best[0] == pytest.approx(np.exp(-1.0 - mined.substitution_weight * cost[int(k), int(rb)]))
    assert element_distances(2.0)[0, 0] == 0 and element_distances(2.0)[0, int(k)] > 40  # a missing element is far


def test_a_search_saved_before_the_substitution_term_answers_as_it_was_fitted():
    references = columns("NaCl", "RbCl")
    arrays = FormulaPrototypeNeighbours(n_neighbours=1, substitution_weight=0.0).fit(references, [225, 221]).to_arrays()
    arrays["prototype_params"] = arrays["prototype_params"][:2]  # what older models carry
    loaded = FormulaPrototypeNeighbours.from_arrays(arrays)
    assert loaded.substitution_weight == 0.0
    _, best = loaded.vote(columns("KCl"), np.array([221, 225]))
    assert best[0] == pytest.approx(np.exp(-1.0))


def _vote_row_by_row(search, queries, classes, exclude_groups):
    """The search written out for one query at a time: the definition the batched search must keep."""
    from tasks.neighbours import weighted_vote
    from tasks.prototypes import _keys

    labels = np.zeros((len(queries), search.n_neighbours), dtype=np.int64)
    weights = np.zeros((len(queries), search.n_neighbours))
    best = np.zeros(len(queries))
    reference_keys = _keys(search.columns_)
    for row, key in enumerate(_keys(queries)):
        candidates = [i for i, other in enumerate(reference_keys)
                      if other == key and search.groups_[i] != exclude_groups[row]]
        if not candidates:
            continue
        ours, theirs = queries[row, 1 + MAX_ELEMENTS:], search.columns_[candidates, 1 + MAX_ELEMENTS:]
        distances = element_distances(search.substitution_weight)
        distance = np.zeros(len(candidates))
        for i in range(len(candidates)):
            for place in range(MAX_ELEMENTS):
                a, b = ours[place], theirs[i, place]
                distance[i] += distances[0 if np.isnan(a) else int(a), 0 if np.isnan(b) else int(b)]
        order = np.argsort(distance, kind="stable")[: search.n_neighbours]
        weights[row, : len(order)] = np.exp(-(distance[order] - distance[order[0]]) / search.distance_scale)
        labels[row, : len(order)] = search.labels_[np.array(candidates)[order]]
        best[row] = np.exp(-distance[order[0]] / search.distance_scale)
    return weighted_vote(labels, weights, classes), best


def test_a_batch_is_searched_as_its_rows_would_be_one_by_one(monkeypatch):
    import tasks.prototypes

    rng = np.random.default_rng(3)
    anions, cations = ("O", "S", "Se", "F", "Cl", "Br", "N"), ("Li", "Na", "Mg", "Ca", "Ti", "Fe", "Zn", "Sr", "Ba", "La")
    formulas = [f"{a}{b}" for a in cations for b in anions] + [f"{a}{b}2" for a in cations for b in anions] \
        + [f"{a}{b}{c}3" for a in cations[:5] for b in cations[5:] for c in anions[:3]]
    references = columns(*formulas)
    labels = rng.choice([62, 194, 221, 225, 227], len(formulas))
    groups = np.arange(len(formulas)) // 2  # pairs: leaving a compound out leaves its neighbour out too
    search = FormulaPrototypeNeighbours(n_neighbours=4, distance_scale=2.0).fit(references, labels, groups)
    query_rows = rng.choice(len(formulas), 60)
    queries = np.vstack([references[query_rows], columns("Al2O3", "CsI")])  # and stoichiometries nobody has
    exclude = np.concatenate([groups[query_rows], [-1, -1]])
    classes = np.unique(labels)
    expected_vote, expected_best = _vote_row_by_row(search, queries, classes, exclude)
    monkeypatch.setattr(tasks.prototypes, "_MAX_PAIRS", 50)  # several distance matrices per stoichiometry
    vote, best = search.vote(queries, classes, exclude_groups=exclude)
    np.testing.assert_allclose(best, expected_best)
    np.testing.assert_allclose(vote, expected_vote, atol=1e-12)


@pytest.mark.slow
def test_a_formula_model_with_the_search_answers_unseen_members_of_known_types():
    from tasks.models import SpaceGroupClassifier

    rng = np.random.default_rng(0)
    unseen = ("NaBr", "TlBr", "BaHfO3", "ZnCr2O4")  # one member of each type is left out of training
    halides = [a + x for a in ("Li", "Na", "K", "Rb") for x in ("F", "Cl", "Br", "I") if a + x not in unseen]
    caesium = ["CsCl", "CsBr", "CsI", "TlCl", "TlI"]
    perovskites = [a + b + "O3" for a in ("Sr", "Ba", "Ca") for b in ("Ti", "Zr", "Hf", "Sn") if a + b + "O3" not in unseen]
    spinels = [a + b + "2O4" for a in ("Mg", "Zn", "Fe", "Co") for b in ("Al", "Cr", "Fe", "Ga") if a + b + "2O4" not in unseen]
    formulas = halides + caesium + perovskites + spinels
    labels = [225] * len(halides) + [221] * len(caesium) + [221] * len(perovskites) + [227] * len(spinels)
    featurizer = FormulaFeaturizer()
    X = featurizer.featurize_many([parse_formula(f) for f in formulas])
    order = rng.permutation(len(formulas))
    X, y = np.repeat(X[order], 3, axis=0), np.repeat(np.array(labels)[order], 3)
    groups = np.repeat(np.arange(len(formulas)), 3)
    model = SpaceGroupClassifier(modality="formula", feature_version=FORMULA_FEATURE_VERSION, n_estimators=20,
                                 max_depth=2, structure_type_search=True, calibration_fraction=0.3).fit(X, y, groups)
    queries = featurizer.featurize_many([parse_formula(f) for f in unseen])
    assert list(model.predict(queries)) == [225, 221, 221, 227]
    assert model.neighbour_weight(np.exp(-1.0)) > 0.5  # a neighbour one step away on the map is trusted
    loaded = SpaceGroupClassifier.from_bytes(model.to_bytes())
    assert isinstance(loaded.neighbours_, FormulaPrototypeNeighbours)
    assert np.allclose(loaded.predict_proba(queries), model.predict_proba(queries))
