"""A pattern of one or two families of lattice planes (a textured film's orders) is told from a powder's."""

import numpy as np
import pytest

from tasks.texture import plane_family_spacings_angstrom, too_few_plane_families

D_100 = 5.87  # a cubic perovskite film's (100) spacing, Å


def _q(d_angstrom, orders):
    return 2 * np.pi / d_angstrom * np.asarray(orders, dtype=float)


def test_the_orders_of_one_reflection_give_its_spacing():
    q = _q(D_100, [1, 2, 3, 4])
    assert too_few_plane_families(q) == pytest.approx([D_100])
    assert too_few_plane_families(q[[2, 0, 1]] * [1.004, 1.0, 0.997]) == pytest.approx([D_100])  # unsorted, 0.4 %
    assert too_few_plane_families(q[:1]) == pytest.approx([D_100])  # one peak: one spacing


def test_two_orientations_are_two_families_once_there_are_three_peaks():
    both = np.concatenate([_q(D_100, [1, 2]), _q(D_100 / np.sqrt(2), [1, 2])])  # (100), (200), (110), (220)
    assert too_few_plane_families(both) == pytest.approx([D_100, D_100 / np.sqrt(2)])
    assert too_few_plane_families(both[[0, 2, 1]]) == pytest.approx([D_100, D_100 / np.sqrt(2)])
    assert too_few_plane_families(both[[0, 2]]) is None  # any two peaks are two spacings: a powder's too


def test_a_powder_is_not_a_few_families():
    a = 5.431  # silicon: 111, 220, 311 are at sqrt(3), sqrt(8), sqrt(11) times 2π/a
    assert too_few_plane_families(2 * np.pi / a * np.sqrt([3, 8, 11])) is None
    assert len(plane_family_spacings_angstrom(2 * np.pi / a * np.sqrt([3, 8, 11, 12, 16]))) == 4  # 222 is 111's
    cubic_p = 2 * np.pi / 4.0 * np.sqrt([1, 2, 3, 4])  # (100), (110), (111), (200)
    assert too_few_plane_families(cubic_p) is None
    assert len(plane_family_spacings_angstrom(_q(D_100, [1, 2, 3]) * [1, 1.03, 1])) == 2  # 3 % off an order
    assert too_few_plane_families(_q(D_100, [1, 2, 3, 4]) * [1, 1.03, 1, 1.05]) is None  # three families
    assert too_few_plane_families(np.array([])) is None
    assert too_few_plane_families(np.array([np.nan, 0.0])) is None
