"""A pattern of one family of lattice planes (a textured film's orders) is told from a powder's."""

import numpy as np
import pytest

from tasks.texture import single_plane_family_d_angstrom


def test_the_orders_of_one_reflection_give_its_spacing():
    q = 2 * np.pi / 5.87 * np.array([1, 2, 3, 4])
    assert single_plane_family_d_angstrom(q) == pytest.approx(5.87)
    assert single_plane_family_d_angstrom(q[[2, 0, 1]] * [1.004, 1.0, 0.997]) == pytest.approx(5.87)  # unsorted
    assert single_plane_family_d_angstrom(q[:1]) == pytest.approx(5.87)  # one peak: one spacing


def test_a_powder_or_a_second_family_is_not_one_family():
    a = 5.431  # silicon: 111, 220, 311 are at sqrt(3), sqrt(8), sqrt(11) times 2π/a
    assert single_plane_family_d_angstrom(2 * np.pi / a * np.sqrt([3, 8, 11])) is None
    film = 2 * np.pi / 5.87 * np.array([1, 2, 3])
    assert single_plane_family_d_angstrom(np.append(film, 2 * np.pi / 5.87 * np.sqrt(2))) is None  # and (110)
    assert single_plane_family_d_angstrom(film * [1, 1.03, 1]) is None  # 3 % off the second order
    assert single_plane_family_d_angstrom(np.array([])) is None
    assert single_plane_family_d_angstrom(np.array([np.nan, 0.0])) is None
