"""Synthetic crystals: seeded, labelled by spglib, physically plausible, distinct, same for any worker count."""

import numpy as np
import pytest

from tasks.symmetry import symmetry_labels
from tasks.synthetic import GeneratorConfig, dedup_key, generate_crystals, generate_one, wyckoff_statistics


def test_wyckoff_statistics_are_pyxtals_mp_counts():
    table = wyckoff_statistics()
    assert {"spg", "n_atoms", "wps", "count"} <= set(table.columns)
    assert table.spg.nunique() > 200


def test_generated_crystals_are_labelled_by_spglib_and_plausible():
    crystals = list(generate_crystals(12, seed=3, n_jobs=1))
    assert len(crystals) == 12
    assert len({dedup_key(c) for c in crystals}) == 12
    for c in crystals:
        labels = symmetry_labels(c.structure)
        assert labels.space_group_number == c.space_group_number
        assert labels.crystal_system == c.crystal_system
        assert 0.8 <= c.structure.density <= 23
        if len(c.structure) > 1:
            d = c.structure.distance_matrix
            assert d[~np.eye(len(d), dtype=bool)].min() > 0.5


def test_same_seed_same_crystal_and_index_independent():
    a = generate_one(5, seed=11)
    b = generate_one(5, seed=11)
    assert a is not None and b is not None
    assert a.structure == b.structure


@pytest.mark.slow
def test_parallel_generation_equals_serial():
    serial = [c.structure for c in generate_crystals(8, seed=2, n_jobs=1, chunk_size=4)]
    parallel = [c.structure for c in generate_crystals(8, seed=2, n_jobs=2, chunk_size=4)]
    assert serial == parallel


def test_flatten_changes_the_space_group_mix():
    flat = GeneratorConfig(flatten=1.0)
    natural = GeneratorConfig(flatten=0.0)
    from tasks.synthetic import _row_probabilities

    _, p_flat = _row_probabilities(flat)
    table, p_nat = _row_probabilities(natural)
    share_225_nat = p_nat[table.spg.to_numpy() == 225].sum()
    share_225_flat = p_flat[table.spg.to_numpy() == 225].sum()
    assert share_225_flat < share_225_nat


def test_label_matched_crystals_carry_the_group_they_were_drawn_for():
    crystals = list(generate_crystals(10, seed=4, n_jobs=1, config=GeneratorConfig(sampling="label-matched",
                                                                            prototype_fraction=0.0)))
    assert all(c.requested_space_group == c.space_group_number for c in crystals)


def test_label_matched_group_shares_follow_the_table_over_all_cell_sizes():
    from tasks.synthetic import _group_probabilities

    table = wyckoff_statistics()
    groups, shares, rows = _group_probabilities(GeneratorConfig(flatten=0.0, max_atoms=32))
    totals = table.groupby("spg")["count"].sum().loc[groups].to_numpy(float)
    np.testing.assert_allclose(shares, totals / totals.sum())
    # P2_1/c's share is not cut down by the cell-size cap, but only its small cells are built
    assert shares[list(groups).index(14)] > table[table.n_atoms <= 32].query("spg == 14")["count"].sum() / \
        table[table.n_atoms <= 32]["count"].sum()
    assert all((rows[int(g)][0].n_atoms <= 32).all() for g in groups)
    _, flat, _ = _group_probabilities(GeneratorConfig(flatten=1.0))
    np.testing.assert_allclose(flat, 1 / len(groups))


def test_an_unknown_sampling_is_refused_by_name():
    with pytest.raises(ValueError, match="label-matched"):
        GeneratorConfig(sampling="uniform")


def test_the_frozen_evaluation_set_keeps_the_generator_it_was_made_with():
    from tasks.training import FROZEN_SYNTHETIC_GENERATOR

    # changing these would silently change the set every champion is judged on
    assert FROZEN_SYNTHETIC_GENERATOR.tag == ("max_atoms32-min_atoms1-flatten0.3-max_tries20-pyxtal_max_count3-"
                                              "pyxtal_timeout_s0.5-samplingwyckoff-rows")
    assert GeneratorConfig(sampling="label-matched").tag != FROZEN_SYNTHETIC_GENERATOR.tag


def test_the_placement_limit_counts_cpu_time_not_waiting():
    import time

    from tasks.synthetic import _PlacementTimeout, _time_limit

    with _time_limit(0.2):
        time.sleep(0.4)  # waiting (as for a busy machine's core) spends no CPU time: not abandoned
    with pytest.raises(_PlacementTimeout), _time_limit(0.2):
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:  # spends CPU time until the limit fires
            pass


def test_crystals_from_structure_types_are_those_types_with_other_elements():
    from pymatgen.analysis.structure_matcher import StructureMatcher

    from tasks.synthetic import structure_types

    config = GeneratorConfig(prototype_fraction=1.0, subgroup_probability=0.0)
    crystals = list(generate_crystals(6, seed=5, n_jobs=1, config=config))
    assert len(crystals) == 6
    matcher = StructureMatcher(ltol=0.3, stol=0.5, angle_tol=10, primitive_cell=True, scale=True)
    for c in crystals:
        assert symmetry_labels(c.structure).space_group_number == c.space_group_number
        same_group = [t.to_pymatgen() for t, _ in structure_types() if t.group.number == c.requested_space_group]
        assert any(matcher.fit_anonymous(c.structure, t) for t in same_group), c.structure.composition


def test_structure_types_leave_numpys_global_generator_as_they_found_it():
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    generate_one(0, seed=5, config=GeneratorConfig(prototype_fraction=1.0))
    assert np.random.random() == expected


def test_structure_type_crystals_are_seeded_and_their_share_is_checked():
    config = GeneratorConfig(prototype_fraction=1.0)
    assert generate_one(3, seed=8, config=config).structure == generate_one(3, seed=8, config=config).structure
    assert config.tag != GeneratorConfig().tag  # cached feature sets of the two are not confused
    with pytest.raises(ValueError, match="prototype_fraction"):
        GeneratorConfig(prototype_fraction=1.5)


def test_a_strained_cell_keeps_its_lattice_type():
    from pymatgen.core import Lattice, Structure

    from tasks.synthetic import _strained

    rng = np.random.default_rng(0)
    tetragonal = Structure(Lattice.tetragonal(4.0, 6.0), ["Ti", "O"], [[0, 0, 0], [0.5, 0.5, 0.3]])
    strained = _strained(tetragonal, "tetragonal", rng, 0.1)
    a, b, c, alpha, beta, gamma = strained.lattice.parameters
    assert a == pytest.approx(b) and (alpha, beta, gamma) == pytest.approx((90, 90, 90))
    assert (a, c) != pytest.approx((4.0, 6.0))
    assert np.allclose(strained.frac_coords, tetragonal.frac_coords)
    monoclinic = Structure(Lattice.monoclinic(5.0, 6.0, 7.0, 100.0), ["Ti"], [[0.1, 0.2, 0.3]])
    _, _, _, alpha, beta, gamma = _strained(monoclinic, "monoclinic", rng, 0.1).lattice.parameters
    assert (alpha, gamma) == pytest.approx((90, 90)) and beta != pytest.approx(100.0)


def test_substitutes_are_distinct_and_keep_the_types_electronegativity_order():
    from pymatgen.core import Element

    from tasks.synthetic import _substitutes

    rng = np.random.default_rng(2)
    for _ in range(20):
        picked = _substitutes(["Na", "Cl", "O"], rng)
        assert len(set(picked.values())) == 3
        assert Element(picked["Na"]).X <= Element(picked["O"]).X and Element(picked["Na"]).X <= Element(picked["Cl"]).X


def test_synthetic_features_keep_their_crystals_lines_for_the_search_and_cache_them(spacegroup_home):
    from tasks.training import synthetic_xrd_features

    config = GeneratorConfig(prototype_fraction=1.0)
    plain = synthetic_xrd_features(5, 1, seed=6, n_jobs=1, config=config)
    assert plain.reference_lines is None
    with_lines = synthetic_xrd_features(5, 1, seed=6, n_jobs=1, config=config, with_lines=True)  # rebuilt: no lines
    assert np.array_equal(with_lines.X, plain.X, equal_nan=True)
    assert len(with_lines.reference_lines) == 5 and np.array_equal(with_lines.line_rows, with_lines.groups)
    assert with_lines.reference_lines.n_lines.min() > 0
    cached = synthetic_xrd_features(5, 1, seed=6, n_jobs=1, config=config, with_lines=True)
    assert np.array_equal(cached.reference_lines.hkl, with_lines.reference_lines.hkl)
    assert np.array_equal(cached.line_rows, with_lines.line_rows)
