"""The example inputs shipped in tasks/examples/ are the textbook materials they are named for."""

from pathlib import Path

import numpy as np
import pytest

from bench.make_examples import STRUCTURES
from tasks.readers import read_pattern
from tasks.symmetry import symmetry_labels
EXAMPLES = Path(__file__).resolve().parents[2] / "tasks" / "examples"

# handbook densities (g/cm³) and space groups
TEXTBOOK = {"NaCl_rocksalt": (2.165, 225), "Si_diamond": (2.329, 227), "TiO2_rutile": (4.250, 136),
            "ZnO_wurtzite": (5.606, 186)}


@pytest.mark.parametrize("name", sorted(TEXTBOOK))
def test_an_example_structure_has_its_handbook_density_and_space_group(name):
    density, number = TEXTBOOK[name]
    structure = STRUCTURES[name]
    assert structure.density == pytest.approx(density, rel=0.015)
    assert symmetry_labels(structure).space_group_number == number


def _strongest_counts(pattern, low_deg: float, high_deg: float) -> float:
    window = (pattern.two_theta_deg > low_deg) & (pattern.two_theta_deg < high_deg)
    return float(pattern.intensity[window].max())


def test_the_silicon_pattern_shows_the_220_line_and_no_222():
    pattern = read_pattern(EXAMPLES / "Si_diamond_CuKa.xy")
    background = float(np.median(pattern.intensity))
    line_111 = _strongest_counts(pattern, 27.5, 29.5) - background
    line_220 = _strongest_counts(pattern, 46.5, 48.5) - background
    line_222 = _strongest_counts(pattern, 58.3, 59.5) - background  # forbidden by diamond's d glide
    assert line_220 > 0.3 * line_111
    assert line_222 < 0.05 * line_111
