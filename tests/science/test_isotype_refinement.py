"""Isotypic cell refinement: a reference's cell refined within its symmetry against a pattern's peaks."""

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from tasks.isotype_refinement import LineTable, line_table, reference_lines, refined_fits
from tests.science.test_neighbours import N_STICKS, rock_salt, rutile, sticks


def _metric_of(lines):
    """The reciprocal metric (3x3) of ``lines``' own cell, rebuilt from its coordinates in the allowed basis."""
    g = lines.metric @ lines.metric_basis
    return np.array([[g[0], g[5], g[4]], [g[5], g[1], g[3]], [g[4], g[3], g[2]]])


@pytest.mark.parametrize("structure, free_parameters", [
    (rock_salt(5.64, "Na", "Cl"), 1),
    (rutile(4.59, 2.96, "Ti"), 2),
    (Structure.from_spacegroup("P6_3mc", Lattice.hexagonal(3.25, 5.21), ["Zn", "O"],
                               [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.382]]), 2),
    (Structure.from_spacegroup("Pmmm", Lattice.orthorhombic(3.1, 4.2, 5.3), ["Cu"], [[0, 0, 0]]), 3),
    (Structure.from_spacegroup("P2/m", Lattice.monoclinic(3.1, 4.2, 5.3, 104), ["Cu"], [[0, 0, 0]]), 4),
    (Structure(Lattice.from_parameters(3.1, 4.2, 5.3, 81, 86, 97), ["Cu", "O"], [[0, 0, 0], [0.21, 0.33, 0.4]]), 6),
])
def test_the_free_metric_parameters_follow_the_point_group(structure, free_parameters):
    lines = reference_lines(structure)
    assert len(lines.metric) == free_parameters
    reciprocal = structure.lattice.reciprocal_lattice_crystallographic.matrix
    np.testing.assert_allclose(_metric_of(lines), reciprocal @ reciprocal.T, atol=1e-9)
    s = 1.0 / np.array([structure.lattice.d_hkl(hkl) for hkl in lines.hkl]) ** 2
    assert np.all(np.diff(s) > 0) and lines.intensity.max() == pytest.approx(1.0)


def test_a_distorted_isotype_is_indexed_after_refinement_and_another_type_is_not():
    reference = rutile(4.59, 2.96, "Ti")
    # a 3 % longer a and a 3 % shorter c (c/a 6 % smaller): (h k 0) lines move by -6 % in s, (0 0 l) by +6 %, apart,
    # not by one scale; from the isotropic scale alone the assignment goes wrong (fit 0.28), a second start finds it
    q, intensity = sticks(rutile(4.59 * 1.03, 2.96 * 0.97, "Sn"), reference, rock_salt(5.64, "Na", "Cl"))
    table = LineTable.of([reference_lines(reference), reference_lines(rock_salt(5.64, "Na", "Cl"))])
    fits = refined_fits(q, intensity, np.array([[0, 1], [0, 1], [0, 1]]), table, n_first=16)
    assert fits[0, 0] > 0.9 and fits[0, 1] < 0.5  # the distorted rutile: rutile, not rock salt
    # each reference explains its own pattern (but for peaks weaker than LINE_MIN_INTENSITY)
    assert fits[1, 0] > 0.98 and fits[2, 1] > 0.98
    assert fits[1, 1] < 0.5 and fits[2, 0] < 0.5


def test_no_peaks_no_lines_or_no_reference_fit_nothing():
    table = line_table([rock_salt(5.64, "Na", "Cl"), Structure(Lattice.cubic(4.0), [], [])], n_jobs=1)
    assert table.n_lines[1] == 0 and table.rank[1] == 0  # a structure without atoms keeps an empty row
    q, intensity = sticks(rock_salt(5.64, "Na", "Cl"))
    q = np.vstack([q, np.full(N_STICKS, np.nan)])
    intensity = np.vstack([intensity, np.full(N_STICKS, np.nan)])
    fits = refined_fits(q, intensity, np.array([[0, 1, -1], [0, 1, -1]]), table, n_first=16)
    np.testing.assert_allclose(fits, [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])


def test_a_line_table_round_trips_through_arrays():
    table = line_table([rock_salt(5.64, "Na", "Cl"), rutile(4.59, 2.96, "Ti")], n_jobs=1)
    again = LineTable.from_arrays(table.to_arrays())
    for name, values in table.to_arrays().items():
        np.testing.assert_array_equal(again.to_arrays()[name], values)


def test_a_reference_repeated_among_the_neighbours_gets_the_fit_it_gets_alone():
    table = LineTable.of([reference_lines(rutile(4.59, 2.96, "Ti")), reference_lines(rock_salt(5.64, "Na", "Cl"))])
    q, intensity = sticks(rutile(4.59 * 1.03, 2.96 * 0.97, "Sn"), rock_salt(5.70, "K", "Br"))
    alone = refined_fits(q, intensity, np.array([[0, 1], [0, 1]]), table, n_first=16)
    repeated = refined_fits(q, intensity, np.array([[1, 0, 1, -1, 0], [0, 0, 1, 1, -1]]), table, n_first=16)
    np.testing.assert_array_equal(repeated[0], alone[0][[1, 0, 1]].tolist() + [0.0, alone[0][0]])
    np.testing.assert_array_equal(repeated[1], alone[1][[0, 0, 1, 1]].tolist() + [0.0])
    assert alone[0, 0] > 0.9 and alone[1, 1] > 0.9  # each its own type
