"""Indexing by successive dichotomy: finds the cell of tetragonal and hexagonal patterns, large cells included."""

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from tasks.dichotomy_indexing import (
    A_MAX_ANGSTROM, A_MIN_ANGSTROM, C_MAX_ANGSTROM, C_MIN_ANGSTROM, DICHOTOMY_LABELS, MAX_LINES_PER_PEAK,
    MAX_MISSING, N_PEAKS, STOP_RELATIVE_WIDTH, allowed_line_counts, centred_fit, dichotomy_features,
    index_by_dichotomy, peak_tolerance_s, search_cells)
from tasks.indexing import metric_factor
from tasks.xrd import compute_reflections

CU_KA = 1.5406


def _q_of_structure(structure: Structure, n: int = N_PEAKS, min_relative_f2: float = 1e-3) -> np.ndarray:
    """Q (Å⁻¹) of the first ``n`` distinct lines a structure really diffracts (absences and weak lines left out)."""
    refl = compute_reflections(structure, 1.0)
    strength = refl.f_squared * refl.multiplicity
    d = np.round(refl.d_angstrom[strength > min_relative_f2 * strength.max()], 6)
    return np.sort(2 * np.pi / np.unique(d))[:n]


def _shifted(q: np.ndarray, zero_shift_deg: float, wavelength: float = CU_KA) -> np.ndarray:
    two_theta = 2 * np.degrees(np.arcsin(wavelength * q / (4 * np.pi))) + zero_shift_deg
    return 4 * np.pi * np.sin(np.radians(two_theta / 2)) / wavelength


def _ideal_lines(family: str, a: float, c: float, drop=(), n: int = N_PEAKS) -> np.ndarray:
    """Q of the first lines of a primitive cell, some dropped (weak in a real pattern)."""
    lines = set()
    for h in range(0, 9):
        for k in range(-8, 9):
            for l in range(0, 9):
                if h == k == l == 0:
                    continue
                m = h * h + k * k if family == "tetragonal" else h * h + h * k + k * k
                lines.add(round(metric_factor(family) * m / a**2 + l * l / c**2, 10))
    s = np.array(sorted(lines))
    s = np.delete(s, list(drop))[:n]
    return 2 * np.pi * np.sqrt(s)


def test_finds_rutile_with_a_zero_shift():
    rutile = Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(4.594, 2.959), ["Ti", "O"],
                                       [[0, 0, 0], [0.305, 0.305, 0]])
    q = _shifted(_q_of_structure(rutile), 0.04)
    indexed, lines_per_peak, a, c = index_by_dichotomy(q, CU_KA, "tetragonal")
    assert indexed >= (N_PEAKS - MAX_MISSING) / N_PEAKS
    assert a == pytest.approx(4.594, rel=3e-3) and c == pytest.approx(2.959, rel=3e-3)
    assert lines_per_peak <= MAX_LINES_PER_PEAK


def test_finds_wurtzite_as_hexagonal():
    zno = Structure.from_spacegroup("P6_3mc", Lattice.hexagonal(3.250, 5.207), ["Zn", "O"],
                                    [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.382]])
    indexed, _, a, c = index_by_dichotomy(_q_of_structure(zno), CU_KA, "hexagonal")
    assert indexed == 1.0
    assert a == pytest.approx(3.250, rel=2e-3) and c == pytest.approx(5.207, rel=2e-3)


def test_finds_a_large_cell_whose_first_lines_are_high_index():
    """The case trial indexing misses: a ~ 11 Å, the first observed lines have h^2 + k^2 up to ~10."""
    q = _shifted(_ideal_lines("tetragonal", 11.3, 7.1, drop=(0, 1, 3, 4, 6)), -0.03)
    indexed, _, a, c = index_by_dichotomy(q, CU_KA, "tetragonal")
    assert indexed >= (N_PEAKS - MAX_MISSING) / N_PEAKS
    assert a == pytest.approx(11.3, rel=3e-3) and c == pytest.approx(7.1, rel=3e-3)


def test_a_cubic_pattern_indexes_as_a_tetragonal_cell():
    """Every line of primitive cubic a is also a line of the tetragonal cell (a / sqrt 2, a), which has fewer
    lines (half the volume), so that is the cell reported: c/a = sqrt 2."""
    features = dict(zip(DICHOTOMY_LABELS, dichotomy_features(_ideal_lines("tetragonal", 5.0, 5.0), CU_KA)))
    assert features["dicvol_indexed_tetragonal"] == 1.0
    assert features["dicvol_c_over_a_tetragonal"] == pytest.approx(np.sqrt(2.0), abs=2e-3)


@pytest.mark.parametrize("a, c", [(6.1, 9.7), (4.2, 3.1), (8.3, 5.5), (5.0, 12.0)])
def test_the_true_family_indexes_with_fewer_lines(a, c):
    """Within the angular tolerance a big enough cell of the other family may index every peak too, but it
    needs ~3-4 calculated lines per observed peak, the true cell ~1 (all its lines are observed here)."""
    for true, other in (("tetragonal", "hexagonal"), ("hexagonal", "tetragonal")):
        q = _ideal_lines(true, a, c)
        indexed, lines_per_peak, *_ = index_by_dichotomy(q, CU_KA, true)
        other_indexed, other_lines_per_peak, *_ = index_by_dichotomy(q, CU_KA, other)
        assert indexed == 1.0 and lines_per_peak == 1.0
        assert other_indexed < 1.0 or other_lines_per_peak > 2.0


@pytest.mark.parametrize("seed", range(12))
def test_branch_and_bound_gives_the_plain_dichotomy_answer(seed):
    rng = np.random.default_rng(seed)
    family = ("tetragonal", "hexagonal")[seed % 2]
    if seed < 8:  # a cell with a few weak lines missing and a zero shift
        q = _shifted(_ideal_lines(family, rng.uniform(3, 12), rng.uniform(3, 15), drop=rng.choice(8, 2, replace=False)),
                     rng.uniform(-0.06, 0.06))
    else:  # peaks of no lattice of the family
        q = np.sort(rng.uniform(1.0, 4.5, N_PEAKS))
    s = (q / (2 * np.pi)) ** 2
    args = (s, peak_tolerance_s(q, CU_KA), metric_factor(family), allowed_line_counts(family), 1 / A_MAX_ANGSTROM**2,
            1 / A_MIN_ANGSTROM**2, 1 / C_MAX_ANGSTROM**2, 1 / C_MIN_ANGSTROM**2, MAX_MISSING, MAX_LINES_PER_PEAK,
            STOP_RELATIVE_WIDTH, 10**7)
    bounded, plain = search_cells(*args, True), search_cells(*args, False)
    assert bounded[:2] == plain[:2]
    np.testing.assert_allclose(bounded[2:4], plain[2:4], rtol=STOP_RELATIVE_WIDTH)
    assert bounded[4] <= plain[4]


def test_tolerance_is_the_angular_one_in_s():
    q = np.array([1.0, 3.0, 5.0])
    tol = peak_tolerance_s(q, CU_KA, 0.05)
    s_of = lambda qq: (qq / (2 * np.pi)) ** 2  # noqa: E731
    numeric = (s_of(_shifted(q, 0.025)) - s_of(_shifted(q, -0.025)))
    np.testing.assert_allclose(tol, numeric, rtol=1e-3)


def test_too_few_peaks_give_missing_features():
    assert np.all(np.isnan(dichotomy_features(np.array([1.0, 2.0, 3.0]), CU_KA)))
    assert len(dichotomy_features(_ideal_lines("hexagonal", 4.0, 6.0), CU_KA)) == len(DICHOTOMY_LABELS)


@pytest.mark.parametrize("family, centring, condition", [
    ("tetragonal", "P", lambda h, k, l: True),
    ("tetragonal", "I", lambda h, k, l: (h + k + l) % 2 == 0),
    ("hexagonal", "R", lambda h, k, l: (-h + k + l) % 3 == 0),
    ("hexagonal", "R", lambda h, k, l: (h - k + l) % 3 == 0),  # the reverse setting: the same (m, l) lines
])
def test_centred_line_tables_are_the_listed_reflections(family, centring, condition):
    """The centring conditions, written on (m, l) in ``allowed_line_counts``, against (h, k, l) listed one by one."""
    listed = np.zeros((11, 201), bool)
    for h in range(-15, 16):
        for k in range(-15, 16):
            for l in range(11):
                m = h * h + k * k if family == "tetragonal" else h * h + h * k + k * k
                if m <= 200 and (h, k, l) != (0, 0, 0) and condition(h, k, l):
                    listed[l, m] = True
    counts = allowed_line_counts(family, centring)
    np.testing.assert_array_equal(np.diff(counts[:11, :202], axis=1).astype(bool), listed)


def test_centred_fit_explains_the_absences_of_i_and_r_lattices():
    anatase = Structure.from_spacegroup("I4_1/amd", Lattice.tetragonal(3.785, 9.514), ["Ti", "O"],
                                        [[0, 0.75, 0.125], [0, 0.75, 0.3333]])
    licoo2 = Structure.from_spacegroup("R-3m", Lattice.hexagonal(2.816, 14.05), ["Li", "Co", "O"],
                                       [[0, 0, 0], [0, 0, 0.5], [0, 0, 0.2604]])
    for structure, family, a_true, c_true in ((anatase, "tetragonal", 3.785, 9.514),
                                              (licoo2, "hexagonal", 2.816, 14.05)):
        q = _q_of_structure(structure)
        indexed, lines_per_peak, a, c = index_by_dichotomy(q, CU_KA, family)
        assert indexed == 1.0
        assert a == pytest.approx(a_true, rel=2e-3) and c == pytest.approx(c_true, rel=2e-3)
        centred_indexed, centred_lines_per_peak = centred_fit(q, CU_KA, family, a, c)
        assert centred_indexed == 1.0
        assert centred_lines_per_peak < 0.6 * lines_per_peak


def test_centred_fit_of_a_primitive_crystal_leaves_peaks_unindexed():
    rutile = Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(4.594, 2.959), ["Ti", "O"],
                                       [[0, 0, 0], [0.305, 0.305, 0]])
    q = _q_of_structure(rutile)
    _, _, a, c = index_by_dichotomy(q, CU_KA, "tetragonal")
    centred_indexed, _ = centred_fit(q, CU_KA, "tetragonal", a, c)
    assert centred_indexed == 9 / 12  # (1 1 1), (2 1 0) and (2 2 1) have h + k + l odd
    features = dict(zip(DICHOTOMY_LABELS, dichotomy_features(q, CU_KA)))
    assert features["dicvol_I_indexed_tetragonal"] == centred_indexed
