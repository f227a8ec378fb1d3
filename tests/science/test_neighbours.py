"""Search-match by structure type: nearest reference patterns up to a change of lattice scale."""

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from tasks.neighbours import (LOG_Q_STEP, MAX_SCALE_CHANGE, StructureTypeNeighbours, peak_sticks,
                              stick_profiles)
from tasks.xrd import PowderXRDSimulator

N_STICKS = 26  # as many as the XRD features carry (16 first + 10 strongest)


def rock_salt(a, cation, anion):
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), [cation, anion], [[0, 0, 0], [0.5, 0.5, 0.5]])


def caesium_chloride(a, cation, anion):
    return Structure.from_spacegroup("Pm-3m", Lattice.cubic(a), [cation, anion], [[0, 0, 0], [0.5, 0.5, 0.5]])


def zinc_blende(a, cation, anion):
    return Structure.from_spacegroup("F-43m", Lattice.cubic(a), [cation, anion], [[0, 0, 0], [0.25, 0.25, 0.25]])


def rutile(a, c, cation):
    return Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(a, c), [cation, "O"],
                                     [[0, 0, 0], [0.305, 0.305, 0]])


def sticks(*structures):
    """(q, intensity) rows of the first ``N_STICKS`` peaks in 0.5-6 Å⁻¹, NaN-padded like the features."""
    simulator = PowderXRDSimulator(two_theta_range_deg=(5, 150))
    q = np.full((len(structures), N_STICKS), np.nan)
    intensity = np.full_like(q, np.nan)
    for row, structure in enumerate(structures):
        pattern = simulator.get_pattern(structure)
        peak_q = 2 * np.pi / pattern.d_angstrom
        keep = (peak_q >= 0.5) & (peak_q <= 6.0)
        values, heights = peak_q[keep][:N_STICKS], pattern.intensity[keep][:N_STICKS]
        q[row, :len(values)], intensity[row, :len(values)] = values, heights / heights.max()
    return q, intensity


@pytest.fixture(scope="module")
def references():
    structures = [rock_salt(5.64, "Na", "Cl"), caesium_chloride(4.12, "Cs", "Cl"), zinc_blende(5.41, "Zn", "S"),
                  rutile(4.59, 2.96, "Ti")]
    labels = [225, 221, 216, 136]
    return StructureTypeNeighbours(n_neighbours=1).fit(*sticks(*structures), labels), labels


def test_a_structure_type_is_found_across_lattice_constants(references):
    search, labels = references
    # KCl (rock salt, a 11 % larger than NaCl), CsBr (CsCl type, +4 %), GaAs (zinc blende, +4 %), SnO2 (rutile, +3 %)
    queries = [rock_salt(6.29, "K", "Cl"), caesium_chloride(4.29, "Cs", "Br"), zinc_blende(5.65, "Ga", "As"),
               rutile(4.74, 3.19, "Sn")]
    index, similarity, fit = search.similarities(*sticks(*queries))
    assert [labels[i] for i in index[:, 0]] == labels
    assert similarity.min() > 0.5
    assert np.all(fit == 1.0)  # no lines given: nothing refined, every neighbour fits
    probabilities = search.predict_proba(*sticks(*queries), np.array(sorted(labels)))
    assert list(np.array(sorted(labels))[probabilities.argmax(axis=1)]) == labels


def test_without_the_scale_search_the_larger_rock_salt_is_missed(references):
    search, labels = references
    fixed = StructureTypeNeighbours(n_neighbours=1, max_scale_change=0.0).fit(
        search.q_inv_angstrom_, search.intensity_, labels)
    with_search = search.similarities(*sticks(rock_salt(6.29, "K", "Cl"))).similarity
    without = fixed.similarities(*sticks(rock_salt(6.29, "K", "Cl"))).similarity
    assert without[0, 0] < 0.5 < with_search[0, 0]


def test_a_scaled_copy_matches_exactly_within_the_range_and_not_beyond():
    q, intensity = sticks(rock_salt(5.64, "Na", "Cl"), caesium_chloride(4.12, "Cs", "Cl"))
    search = StructureTypeNeighbours(n_neighbours=1).fit(q, intensity, [225, 221])
    inside = np.exp(-(MAX_SCALE_CHANGE - 4 * LOG_Q_STEP))
    similarity = search.similarities(q * inside, intensity).similarity
    assert similarity[:, 0] == pytest.approx(1.0, abs=0.05)
    similarity = search.similarities(q * np.exp(-2.5 * MAX_SCALE_CHANGE), intensity).similarity
    assert similarity[:, 0].max() < 0.9


def test_the_coarse_first_pass_keeps_the_exact_answer():
    rng = np.random.default_rng(0)
    n_ref, n_query = 600, 40
    q = np.sort(rng.uniform(0.8, 5.5, (n_ref, N_STICKS)), axis=1)
    intensity = rng.uniform(0.02, 1.0, (n_ref, N_STICKS))
    labels = rng.integers(1, 231, n_ref)
    pick = rng.choice(n_ref, n_query, replace=False)
    queries = q[pick] * np.exp(rng.uniform(-0.1, 0.1, (n_query, 1))) * rng.normal(1, 0.001, (n_query, N_STICKS))
    fast = StructureTypeNeighbours(n_neighbours=1, n_candidates=32).fit(q, intensity, labels)
    exact = StructureTypeNeighbours(n_neighbours=1, n_candidates=n_ref).fit(q, intensity, labels)
    fast_index = fast.similarities(queries, intensity[pick]).index
    exact_index = exact.similarities(queries, intensity[pick]).index
    assert np.array_equal(fast_index[:, 0], pick) and np.array_equal(exact_index[:, 0], pick)


def test_a_pattern_without_peaks_gets_an_even_vote(references):
    search, labels = references
    empty = np.full((1, N_STICKS), np.nan)
    assert not stick_profiles(empty, empty).any()
    probabilities = search.predict_proba(empty, empty, np.array(sorted(labels)))
    assert probabilities == pytest.approx(np.full((1, 4), 0.25))


def test_round_trip_through_arrays_answers_the_same(references):
    search, labels = references
    copy = StructureTypeNeighbours.from_arrays(search.to_arrays())
    queries = sticks(rock_salt(6.29, "K", "Cl"), rutile(4.74, 3.19, "Sn"))
    classes = np.array(sorted(labels))
    assert np.array_equal(copy.predict_proba(*queries, classes), search.predict_proba(*queries, classes))


def test_peaks_are_read_from_the_feature_columns_and_other_versions_are_refused():
    from tasks.features import XRDPatternFeaturizer

    featurizer = XRDPatternFeaturizer()
    labels = featurizer.feature_labels()
    X = np.arange(2 * len(labels), dtype=float).reshape(2, -1)
    q, intensity = peak_sticks(X, featurizer.version)
    assert q.shape == intensity.shape == (2, N_STICKS)
    assert labels.index("peak_q_0") == q[0, 0] and labels.index("strong_i_9") == intensity[0, -1]
    with pytest.raises(ValueError, match="structure-type search .peaks from XRD features. reads features"):
        peak_sticks(X, "xrd-some-other-version")


def _feature_rows(structures):
    """XRD feature rows that carry only the peaks (everything else missing), as the classifier reads them."""
    from tasks.features import XRDPatternFeaturizer

    featurizer = XRDPatternFeaturizer()
    labels = featurizer.feature_labels()
    X = np.full((len(structures), len(labels)), np.nan)
    q, intensity = sticks(*structures)
    for name, values in (("peak_q_", q[:, :16]), ("peak_i_", intensity[:, :16]),
                         ("strong_q_", q[:, 16:]), ("strong_i_", intensity[:, 16:])):
        X[:, [i for i, label in enumerate(labels) if label.startswith(name)]] = values
    return X, featurizer.version


@pytest.fixture(scope="module")
def four_type_structures():
    """Scaled copies of four structure types (cell sizes overlapping between types), and queries with larger cells
    than any in training."""
    rng = np.random.default_rng(1)
    prototypes = {225: rock_salt(1.0, "Na", "Cl"), 221: caesium_chloride(0.75, "Cs", "Cl"),
                  216: zinc_blende(1.0, "Zn", "S"), 136: rutile(0.8, 0.53, "Ti")}
    makers = {label: (lambda a, p=p: Structure(Lattice(p.lattice.matrix * a), p.species, p.frac_coords))
              for label, p in prototypes.items()}  # scaled copies: building a space group in pymatgen is slow
    y = np.repeat(list(makers), 25)
    train_a = rng.uniform(4.0, 7.0, len(y))  # peak positions overlap between types
    query_y = np.array(list(makers))
    return [makers[label](a) for label, a in zip(y, train_a)], y, [makers[label](7.5) for label in query_y], query_y


@pytest.fixture(scope="module")
def four_types(four_type_structures):
    """Feature rows of ``four_type_structures``."""
    structures, y, query_structures, query_y = four_type_structures
    X, version = _feature_rows(structures)
    query_X, _ = _feature_rows(query_structures)
    return X, y, version, query_X, query_y


def test_the_classifier_weighs_the_search_on_its_calibration_split_and_keeps_it(four_types):
    from tasks.models import SpaceGroupClassifier

    X, y, version, query_X, query_y = four_types
    model = SpaceGroupClassifier(feature_version=version, n_estimators=30, max_depth=2, structure_type_search=True,
                                 calibration_fraction=0.3).fit(X, y)
    assert model.neighbour_weight(0.95) > 0.1 and len(model.neighbours_.labels_) == len(y)  # every row a reference
    assert model.reranker_ is None  # not asked for
    # larger cells than any in training: the booster has not seen their peak positions, the search finds the type
    assert list(model.predict(query_X)) == list(query_y)
    loaded = SpaceGroupClassifier.from_bytes(model.to_bytes())
    assert loaded.neighbour_gate_ == model.neighbour_gate_ and loaded.mixture_temperature_ == model.mixture_temperature_
    assert np.allclose(loaded.predict_proba(query_X), model.predict_proba(query_X))
    # a formula model's search reads its own columns
    with pytest.raises(ValueError, match="prototype search .formula features. reads features"):
        SpaceGroupClassifier(modality="formula", feature_version=version, n_estimators=5, max_depth=2,
                             structure_type_search=True).fit(X, y)


def test_the_classifier_reranks_the_candidates_and_keeps_its_reranker(four_types):
    import copy
    import io
    import json

    from tasks.models import ModelFormatError, SpaceGroupClassifier

    X, y, version, query_X, query_y = four_types
    model = SpaceGroupClassifier(feature_version=version, n_estimators=30, max_depth=2, structure_type_search=True,
                                 candidate_reranking=True, calibration_fraction=0.3).fit(X, y)
    assert model.reranker_ is not None and model.reranker_.temperature > 0
    proba = model.predict_proba(query_X)
    assert np.allclose(proba.sum(axis=1), 1.0) and list(model.classes_[proba.argmax(axis=1)]) == list(query_y)
    loaded = SpaceGroupClassifier.from_bytes(model.to_bytes())
    assert loaded.reranker_ is not None and np.allclose(loaded.predict_proba(query_X), proba)
    with np.load(io.BytesIO(model.to_bytes()), allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    # format 4 (before the re-ranker): the same model answers with the mixture alone
    meta = json.loads(arrays["meta"].tobytes().decode())
    meta["format"] = "spacegroup-xgb-npz-4"
    del meta["params"]["candidate_reranking"]
    older = {k: v for k, v in arrays.items() if not k.startswith("reranker")}
    older["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **older)
    mixture_only = SpaceGroupClassifier.from_bytes(buffer.getvalue())
    without = copy.copy(model)
    without.reranker_ = None
    assert mixture_only.reranker_ is None and np.allclose(mixture_only.predict_proba(query_X),
                                                          without.predict_proba(query_X))
    # a re-ranker without the search it re-ranks is not a model
    broken = {k: v for k, v in arrays.items() if not k.startswith("neighbour")}
    buffer = io.BytesIO()
    np.savez(buffer, **broken)
    with pytest.raises(ModelFormatError, match="re-ranker without the structure-type search"):
        SpaceGroupClassifier.from_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match="needs structure_type_search=True"):
        SpaceGroupClassifier(feature_version=version, candidate_reranking=True).fit(X, y)


def test_a_fitted_model_refits_its_answer_calibration_as_a_new_fit_would(four_types):
    from tasks.models import SpaceGroupClassifier

    X, y, version, query_X, _ = four_types
    groups = np.arange(len(y)) // 2
    settings = dict(feature_version=version, n_estimators=30, max_depth=2, structure_type_search=True,
                    calibration_fraction=0.3)
    fresh = SpaceGroupClassifier(candidate_reranking=True, **settings).fit(X, y, groups)
    refitted = SpaceGroupClassifier(**settings).fit(X, y, groups)
    assert refitted.reranker_ is None
    refitted.set_params(candidate_reranking=True)
    refitted.refit_answer_calibration(X, y, groups)
    assert refitted.neighbour_gate_ == pytest.approx(fresh.neighbour_gate_)
    assert refitted.confidence_calibration_ == pytest.approx(fresh.confidence_calibration_)
    np.testing.assert_allclose(refitted.predict_proba(query_X), fresh.predict_proba(query_X), atol=1e-9)
    with pytest.raises(ValueError, match="not the rows the model was fitted on"):
        refitted.refit_answer_calibration(X, y[::-1], groups)


def test_a_material_can_be_left_out_of_its_own_search():
    structures = [rock_salt(5.64, "Na", "Cl"), rock_salt(6.29, "K", "Cl"), caesium_chloride(4.12, "Cs", "Cl")]
    q, intensity = sticks(*structures)
    search = StructureTypeNeighbours(n_neighbours=1).fit(q, intensity, [225, 225, 221], groups=[10, 11, 12])
    index = search.similarities(q, intensity).index
    assert list(index[:, 0]) == [0, 1, 2]  # each finds itself
    index = search.similarities(q, intensity, exclude_groups=np.array([10, 11, 12])).index
    assert list(index[:, :1].ravel()[:2]) == [1, 0]  # the other rock salt, not the CsCl type
    ungrouped = StructureTypeNeighbours().fit(q, intensity, [225, 225, 221])
    with pytest.raises(ValueError, match="without groups"):
        ungrouped.similarities(q, intensity, exclude_groups=np.array([10, 11, 12]))


def test_the_search_refines_its_neighbours_cells_when_it_has_their_lines():
    from tasks.isotype_refinement import REFINEMENT_POWER, line_table

    structures = [rutile(4.59, 2.96, "Ti"), rock_salt(4.20, "Mg", "O")]
    search = StructureTypeNeighbours(n_neighbours=2).fit(*sticks(*structures), [136, 225])
    query = sticks(rutile(4.59 * 1.02, 2.96 * 0.975, "Sn"))  # c/a 4.4 % smaller: not one scale away
    index, plain, _ = search.similarities(*query)
    search.with_reference_lines(line_table(structures, n_jobs=1), [0, 1], n_first_peaks=16)
    refined_index, refined, fit = search.similarities(*query)
    np.testing.assert_array_equal(refined_index, index)
    ratio = dict(zip(index[0], refined[0] / plain[0]))
    np.testing.assert_allclose(refined[0] / plain[0], fit[0] ** REFINEMENT_POWER, rtol=1e-5)
    assert ratio[0] > 0.99 and ratio[1] < 0.5 ** REFINEMENT_POWER  # rutile explains the peaks once refined
    again = StructureTypeNeighbours.from_arrays(search.to_arrays())
    np.testing.assert_allclose(again.similarities(*query).similarity, refined)
    with pytest.raises(ValueError, match="line-table rows must lie in 0..1"):
        search.with_reference_lines(line_table(structures, n_jobs=1), [0, 2], n_first_peaks=16)


def test_the_classifier_keeps_its_search_s_reference_lines(four_type_structures, four_types):
    import io
    import json

    from tasks.isotype_refinement import line_table
    from tasks.models import ModelFormatError, SpaceGroupClassifier

    structures = four_type_structures[0]
    X, y, version, query_X, query_y = four_types
    settings = dict(feature_version=version, n_estimators=30, max_depth=2, structure_type_search=True,
                    candidate_reranking=True, calibration_fraction=0.3)
    groups = np.arange(len(y))
    lines = line_table(structures, n_jobs=1)
    model = SpaceGroupClassifier(**settings).fit(X, y, groups, reference_lines=lines)
    assert model.neighbours_.lines_ is lines
    proba = model.predict_proba(query_X)
    assert list(model.classes_[proba.argmax(axis=1)]) == list(query_y)
    data = model.to_bytes()
    np.testing.assert_allclose(SpaceGroupClassifier.from_bytes(data).predict_proba(query_X), proba)
    # the same lines attached to a model fitted without them: what a fit with them ends with
    later = SpaceGroupClassifier(**settings).fit(X, y, groups)
    later.refit_answer_calibration(X, y, groups, reference_lines=lines)
    np.testing.assert_allclose(later.predict_proba(query_X), proba, atol=1e-9)
    # a format-5 artifact (before the lines) still loads: its search answers without refinement
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(arrays["meta"].tobytes().decode())
    meta["format"] = "spacegroup-xgb-npz-5"
    older = {k: v for k, v in arrays.items() if not k.startswith(("lines_", "neighbour_line", "neighbour_first"))}
    older["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **older)
    assert SpaceGroupClassifier.from_bytes(buffer.getvalue()).neighbours_.lines_ is None
    with pytest.raises(ValueError, match="need modality='xrd' and structure_type_search=True"):
        SpaceGroupClassifier(feature_version=version).fit(X, y, reference_lines=lines)
    with pytest.raises(ModelFormatError):
        SpaceGroupClassifier.from_bytes(data.replace(b"lines_rank", b"lines_xxxx"))
