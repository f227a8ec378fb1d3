"""Indexing as evidence for the crystal system: each lattice's cell from a feature row's first peaks, the fitted
correction of a model's systems, and its place in the model (fit, answer, artifact)."""

import numpy as np
import pytest
from scipy.special import log_softmax, softmax

from tasks.calibration import IDENTITY, beta_calibrated, with_top_confidence
from tasks.crystallography import CRYSTAL_SYSTEMS
from tasks.features import XRD_FEATURE_VERSION, XRDPatternFeaturizer
from tasks.lattice_evidence import (LATTICE_SEARCHES, MIN_FIT_PATTERNS, BoostedLatticeEvidence, LatticeEvidence,
                                    evidence_columns, lattice_cells, lattice_evidence_dict)
from tasks.models import ModelFormatError, SpaceGroupClassifier
from tests.science.test_cells import ORTHORHOMBIC, STRUCTURES, measured_like

ORTHO = list(LATTICE_SEARCHES).index("orthorhombic")
N_FIGURES = 2 * len(LATTICE_SEARCHES)


def _cells_of(structure):
    X = XRDPatternFeaturizer().featurize_many([measured_like(structure, 0.002, 0.03)])
    return lattice_cells(X, XRD_FEATURE_VERSION)[0]


def test_each_pattern_is_indexed_by_its_own_lattice_from_its_feature_row():
    marcasite = lattice_evidence_dict(_cells_of(ORTHORHOMBIC["marcasite"][0]))
    assert marcasite["orthorhombic"]["de_wolff_m"] > 20 and marcasite["orthorhombic"]["fraction_indexed"] >= 0.9
    assert marcasite["cubic"] is None or marcasite["cubic"]["de_wolff_m"] < 10
    rutile = lattice_evidence_dict(_cells_of(STRUCTURES["rutile"][0]))
    assert rutile["tetragonal"]["de_wolff_m"] > 20 and rutile["tetragonal"]["fraction_indexed"] == 1.0
    assert set(rutile) == set(LATTICE_SEARCHES)


def test_c_centring_and_pnma_rules_raise_the_figure_of_the_crystals_whose_lines_they_thin():
    def ranked(figure):  # how tasks.cells ranks a cell: M x fraction^8
        return figure["de_wolff_m"] * figure["fraction_indexed"] ** 8

    figures = {name: lattice_evidence_dict(_cells_of(ORTHORHOMBIC[name][0]))
               for name in ("alpha-U", "forsterite", "marcasite")}
    for name, cells in figures.items():  # the search includes the primitive lattice: never below it
        assert ranked(cells["orthorhombic_c_or_pnma"]) >= ranked(cells["orthorhombic"]), name
    # alpha-U is Cmcm, forsterite Pnma: their real cells have a third fewer lines than the primitive lattice's
    for name in ("alpha-U", "forsterite"):
        assert ranked(figures[name]["orthorhombic_c_or_pnma"]) > 1.3 * ranked(figures[name]["orthorhombic"]), name
    X = XRDPatternFeaturizer().featurize_many([measured_like(ORTHORHOMBIC["forsterite"][0], 0.002, 0.03)])
    cubic_only = lattice_cells(X, XRD_FEATURE_VERSION, lattices=("cubic",))
    assert np.array_equal(cubic_only, lattice_cells(X, XRD_FEATURE_VERSION)[:, 2:4])
    with pytest.raises(ValueError, match="unknown lattice searches"):
        lattice_cells(X, XRD_FEATURE_VERSION, lattices=("monoclinic",))
    # a small batch searches each pattern in threads (n_jobs of them): the same cells as in one
    assert np.array_equal(lattice_cells(X, XRD_FEATURE_VERSION, 2), lattice_cells(X, XRD_FEATURE_VERSION, 1))


def test_rows_without_peaks_have_no_cells_and_other_feature_versions_are_refused():
    X = np.full((2, XRDPatternFeaturizer().n_features), np.nan)
    assert np.array_equal(lattice_cells(X, XRD_FEATURE_VERSION), np.zeros((2, N_FIGURES)))
    with pytest.raises(ValueError, match="lattice evidence"):
        lattice_cells(X, "xrd-some-other-version")


def _labelled_cells(n: int, seed: int = 0):
    """Systems drawn among orthorhombic, monoclinic and triclinic; an orthorhombic pattern's primitive cell has a
    high M for 60 % of them, any other pattern's rarely."""
    rng = np.random.default_rng(seed)
    systems = rng.choice([CRYSTAL_SYSTEMS.index(s) for s in ("orthorhombic", "monoclinic", "triclinic")], n)
    is_ortho = systems == CRYSTAL_SYSTEMS.index("orthorhombic")
    indexed = np.where(is_ortho, rng.random(n) < 0.6, rng.random(n) < 0.03)
    cells = np.zeros((n, N_FIGURES))
    cells[:, 2 * ORTHO] = np.where(indexed, rng.uniform(25, 80, n), rng.uniform(2, 8, n))
    cells[:, 2 * ORTHO + 1] = np.where(indexed, 1.0, rng.uniform(0.6, 0.9, n))
    return cells, systems, indexed


def test_the_fit_learns_what_the_cells_add_to_the_model():
    cells, systems, indexed = _labelled_cells(1500)
    knows_nothing = np.log(np.full((1500, 7), 1 / 7))
    evidence = LatticeEvidence.fit(knows_nothing, cells, systems)
    test_cells, test_systems, test_indexed = _labelled_cells(1000, seed=1)
    proba = softmax(knows_nothing[:1000] + evidence.log_shift(test_cells), axis=1)
    ortho = proba[:, CRYSTAL_SYSTEMS.index("orthorhombic")]
    # Bayes' answer for an indexed pattern: 0.6 / (0.6 + 2 x 0.03) = 0.91; for one not indexed: 0.4 / 2.34 = 0.17
    assert ortho[test_indexed].mean() == pytest.approx(0.91, abs=0.05)
    assert ortho[~test_indexed].mean() == pytest.approx(0.17, abs=0.05)
    assert proba[:, [CRYSTAL_SYSTEMS.index("cubic"), CRYSTAL_SYSTEMS.index("hexagonal")]].max() < 0.01


def test_the_boosted_stage_learns_the_same_and_what_the_model_already_knew_too():
    cells, systems, indexed = _labelled_cells(1500)
    knows_nothing = np.log(np.full((1500, 7), 1 / 7))
    evidence, cross = BoostedLatticeEvidence.fit(knows_nothing, cells, systems, groups=np.arange(1500) // 3)
    assert cross.shape == (1500, 7) and evidence.lattices == tuple(LATTICE_SEARCHES)
    test_cells, _, test_indexed = _labelled_cells(1000, seed=1)
    proba = softmax(knows_nothing[:1000] + evidence.log_shift(test_cells, knows_nothing[:1000]), axis=1)
    ortho = proba[:, CRYSTAL_SYSTEMS.index("orthorhombic")]
    assert ortho[test_indexed].mean() == pytest.approx(0.91, abs=0.05)
    assert ortho[~test_indexed].mean() == pytest.approx(0.17, abs=0.05)
    # the cross-fitted shifts are those of stages that never saw the row: they say the same, less surely
    cross_ortho = softmax(knows_nothing + cross, axis=1)[:, CRYSTAL_SYSTEMS.index("orthorhombic")]
    assert cross_ortho[indexed].mean() == pytest.approx(0.91, abs=0.06)
    # where the model already knows the system, the cells change little: a sure monoclinic answer stays monoclinic
    sure = np.full((1500, 7), np.log(0.001))
    sure[np.arange(1500), systems] = np.log(0.994)
    evidence, _ = BoostedLatticeEvidence.fit(sure, cells, systems)
    monoclinic = CRYSTAL_SYSTEMS.index("monoclinic")
    sure_mono = np.tile(sure[systems == monoclinic][:1], (len(test_cells), 1))
    moved = softmax(sure_mono + evidence.log_shift(test_cells, sure_mono), axis=1)
    assert moved[:, monoclinic].min() > 0.9
    with pytest.raises(ValueError, match="crystal-system probabilities"):
        evidence.log_shift(test_cells)
    with pytest.raises(ValueError, match="reads the cells of 5 searches"):
        evidence.log_shift(test_cells[:, :8], sure_mono)
    _, in_sample = BoostedLatticeEvidence.fit(sure, cells, systems, groups=np.zeros(1500))  # one material
    assert np.allclose(in_sample, evidence.log_shift(cells, sure))
    loaded = BoostedLatticeEvidence.from_arrays(evidence.to_arrays())
    assert np.allclose(loaded.log_shift(test_cells, sure_mono), evidence.log_shift(test_cells, sure_mono))


def test_cells_that_tell_nothing_new_leave_the_answer_nearly_as_it_was():
    cells, systems, _ = _labelled_cells(1500)
    rng = np.random.default_rng(3)
    cells = cells[rng.permutation(1500)]  # the cells of other patterns: no information on these
    frequencies = np.bincount(systems, minlength=7) / 1500 + 1e-6
    evidence = LatticeEvidence.fit(np.log(np.tile(frequencies, (1500, 1))), cells, systems)
    shift = evidence.log_shift(cells)
    assert np.abs(shift - shift.mean(axis=1, keepdims=True)).max() < 0.3


def test_too_few_patterns_and_wrong_shapes_are_refused_by_name():
    cells, systems, _ = _labelled_cells(MIN_FIT_PATTERNS - 1)
    with pytest.raises(ValueError, match=f"at least {MIN_FIT_PATTERNS}"):
        LatticeEvidence.fit(np.zeros((len(systems), 7)), cells, systems)
    with pytest.raises(ValueError, match="system log-probabilities"):
        LatticeEvidence.fit(np.zeros((len(systems), 6)), cells, systems)
    with pytest.raises(ValueError, match="two cell figures per lattice"):
        evidence_columns(np.zeros((3, 7)))
    with pytest.raises(ValueError, match="lattice searches per row"):
        LatticeEvidence.fit(np.zeros((len(systems), 7)), cells[:, :6], systems)
    with pytest.raises(ValueError, match="shape"):
        LatticeEvidence.from_arrays({"lattice_evidence": np.zeros((12, 6))})


@pytest.fixture(scope="module")
def toy_model():
    """A small model over one monoclinic, one orthorhombic, one hexagonal and one cubic group, with a lattice
    evidence fitted on cells that mark its orthorhombic rows."""
    rng = np.random.default_rng(0)
    classes = np.array([14, 62, 194, 225])
    y = np.repeat(classes, 120)
    X = rng.normal(scale=1.5, size=(4, 6))[np.searchsorted(classes, y)] + rng.normal(size=(480, 6))
    model = SpaceGroupClassifier(n_estimators=40, max_depth=3).fit(X, y, groups=np.arange(480) // 2)
    cells, _, _ = _labelled_cells(480)
    cells[:, 2 * ORTHO] = np.where(y == 62, 40.0, 3.0)
    cells[:, 2 * ORTHO + 1] = np.where(y == 62, 1.0, 0.7)
    model.set_params(lattice_evidence=True)
    model.fit_lattice_evidence(X, np.searchsorted(model.classes_, y), cells)
    return model, X, y, cells


def test_the_model_moves_each_group_by_its_systems_shift_and_keeps_it_in_its_artifact(toy_model):
    model, X, y, cells = toy_model
    plain, corrected = model.predict_proba(X), model.predict_proba(X, lattice_cells=cells)
    assert isinstance(model.lattice_evidence_, BoostedLatticeEvidence)
    shift = model.lattice_evidence_.log_shift(cells, model._system_log_proba_of(np.log(plain)))
    columns = [CRYSTAL_SYSTEMS.index(s) for s in ("monoclinic", "orthorhombic", "hexagonal", "cubic")]
    staged = log_softmax(np.log(plain) + shift[:, columns], axis=1)
    # the staged answers' own confidence calibration (fitted on these rows) maps their top confidences, keeping the
    # ranking; an artifact without one (stages fitted before it) answers with the shift alone
    calibration = model.lattice_confidence_calibration_
    assert calibration != IDENTITY
    top = beta_calibrated(calibration, np.exp(staged.max(axis=1)))
    assert np.allclose(corrected, softmax(with_top_confidence(staged, top), axis=1), atol=1e-9)
    assert (corrected.argmax(axis=1) == staged.argmax(axis=1)).all()
    right = corrected.argmax(axis=1) == np.searchsorted(model.classes_, y)
    assert abs(corrected.max(axis=1).mean() - right.mean()) < abs(np.exp(staged.max(axis=1)).mean() - right.mean())
    orthorhombic = y == 62
    assert corrected[orthorhombic, 1].mean() > plain[orthorhombic, 1].mean()
    loaded = SpaceGroupClassifier.from_bytes(model.to_bytes())
    assert loaded.has_lattice_evidence and loaded.get_params()["lattice_evidence"] is True
    assert loaded.lattice_searches == tuple(LATTICE_SEARCHES)
    assert _format(model) == "spacegroup-xgb-npz-10"  # the code before the boosted stage refuses it by its format
    loaded.lattice_evidence_ = None
    assert _format(loaded) == "spacegroup-xgb-npz-7"  # without it, still readable there
    loaded = SpaceGroupClassifier.from_bytes(model.to_bytes())
    assert loaded.lattice_confidence_calibration_ == pytest.approx(calibration)
    assert np.allclose(loaded.predict_proba(X, lattice_cells=cells), corrected, atol=1e-6)
    loaded.lattice_confidence_calibration_ = IDENTITY  # as an artifact saved without it is read
    older = SpaceGroupClassifier.from_bytes(loaded.to_bytes())
    assert older.lattice_confidence_calibration_ == IDENTITY
    assert np.allclose(older.predict_proba(X, lattice_cells=cells), softmax(staged, axis=1), atol=1e-6)
    loaded = SpaceGroupClassifier.from_bytes(model.to_bytes())
    ranked = loaded.rank(X[:3], k=2, lattice_cells=cells[:3])
    assert [r.space_groups[0] for r in ranked] == list(loaded.classes_[corrected[:3].argmax(axis=1)])


@pytest.mark.parametrize("n_searches, fmt", [(4, "spacegroup-xgb-npz-8"), (5, "spacegroup-xgb-npz-9")])
def test_linear_stages_of_four_or_five_searches_still_read_and_answer_as_formats_8_and_9(toy_model, n_searches, fmt):
    model, X, y, cells = toy_model
    older = SpaceGroupClassifier.from_bytes(model.to_bytes())
    offset = older._system_log_proba_of(np.log(older.predict_proba(X)))
    older.lattice_evidence_ = LatticeEvidence.fit(offset, cells[:, :2 * n_searches],
                                                  older.systems_[older.class_system_[np.searchsorted(older.classes_,
                                                                                                     y)]])
    assert older.lattice_searches == tuple(LATTICE_SEARCHES)[:n_searches]
    assert _format(older) == fmt
    loaded = SpaceGroupClassifier.from_bytes(older.to_bytes())
    assert isinstance(loaded.lattice_evidence_, LatticeEvidence)
    assert np.allclose(loaded.predict_proba(X, lattice_cells=cells[:, :2 * n_searches]),
                       older.predict_proba(X, lattice_cells=cells[:, :2 * n_searches]), atol=1e-9)
    if n_searches == 4:
        with pytest.raises(ValueError, match="reads the cells of 4 searches"):
            loaded.predict_proba(X, lattice_cells=cells)


def test_a_large_calibration_split_is_indexed_on_a_sample_only(toy_model, monkeypatch):
    import tasks.lattice_evidence as stage

    model, X, y, cells = toy_model
    indexed = []

    def recorded(X_rows, feature_version, n_jobs=1, lattices=tuple(LATTICE_SEARCHES)):
        indexed.append(len(X_rows))
        return cells[:len(X_rows)]

    monkeypatch.setattr(stage, "MAX_FIT_PATTERNS", 350)
    monkeypatch.setattr(stage, "lattice_cells", recorded)
    copy = SpaceGroupClassifier.from_bytes(model.to_bytes())
    copy.fit_lattice_evidence(X, np.searchsorted(copy.classes_, y))
    assert indexed == [350] and copy.has_lattice_evidence
    # a caller's cache of cells (bench/accuracy.py's) is asked for the same sampled rows, and the search is not run
    cached = []
    copy.fit_lattice_evidence(X, np.searchsorted(copy.classes_, y),
                              cells_of=lambda rows: cached.append(rows) or cells[:len(rows)])
    assert indexed == [350] and len(cached) == 1 and len(cached[0]) == 350
    assert set(map(bytes, cached[0])) <= set(map(bytes, X.astype(np.float32)))


def _format(model) -> str:
    import io
    import json

    with np.load(io.BytesIO(model.to_bytes())) as archive:
        return json.loads(archive["meta"].tobytes())["format"]


def test_a_model_without_the_evidence_says_how_to_get_it(toy_model):
    model, X, _, cells = toy_model
    plain = SpaceGroupClassifier.from_bytes(model.to_bytes())
    plain.lattice_evidence_ = None
    with pytest.raises(ValueError, match="--lattice-evidence"):
        plain.predict_proba(X, lattice_cells=cells)
    with pytest.raises(ValueError, match="rows of lattice cells"):
        model.predict_proba(X, lattice_cells=cells[:5])
    data = model.to_bytes()
    import io

    with np.load(io.BytesIO(data)) as archive:
        arrays = dict(archive)
    arrays["lattice_evidence"] = np.zeros((12, 3))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with pytest.raises(ModelFormatError, match="lattice evidence weights"):
        SpaceGroupClassifier.from_bytes(buffer.getvalue())
    del arrays["lattice_evidence"]
    arrays["lattice_evidence_booster"] = np.frombuffer(b"not a booster", dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with pytest.raises(ModelFormatError, match="not a space-group model artifact"):
        SpaceGroupClassifier.from_bytes(buffer.getvalue())


def test_a_formula_model_or_a_small_calibration_split_is_refused_before_training():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 4)), np.repeat([14, 62], 100)
    with pytest.raises(ValueError, match="XRD models only"):
        SpaceGroupClassifier(modality="formula", lattice_evidence=True).fit(X, y)
    with pytest.raises(ValueError, match=f"at least {MIN_FIT_PATTERNS}"):
        SpaceGroupClassifier(lattice_evidence=True).fit(X, y)


def test_dataset_models_fit_the_stage_only_where_their_calibration_split_has_room():
    from tasks.lattice_evidence import enough_for_lattice_evidence

    calibration = SpaceGroupClassifier().calibration_fraction
    # 90 % of the rows fitted, 12 % of those calibrate: 4,200 rows leave ~454, half again the minimum of 300
    assert enough_for_lattice_evidence(4200, calibration)
    assert not enough_for_lattice_evidence(4000, calibration)
    assert not enough_for_lattice_evidence(10_000, 0.02)
