"""Powder XRD simulation: equal to pymatgen's XRDCalculator on real structures, Bragg's law, wavelengths."""

import random
import warnings

import numpy as np
import pytest
from pymatgen.analysis.diffraction.xrd import XRDCalculator
from pymatgen.core import Lattice, Structure

from tasks.xrd import (
    PowderXRDSimulator, _friedel_half_box, _geometric_structure_factors, resolve_wavelength, two_theta_deg_from_d,
)
from tests.conftest import read_mp_cifs, shared_path

POSITION_TOL_DEG = 1e-4
INTENSITY_TOL = 1.0  # % of the strongest peak


def coincident_peaks_merged(x, y):
    """Peaks closer than the position tolerance merged (intensities summed).

    Equality is judged at POSITION_TOL_DEG, so peaks closer than that are one peak: pymatgen's rounding bins
    split one family into two peaks 1e-8° apart on some hexagonal MP cells, and on pseudo-symmetric cells
    (a = c to 1e-6 relative) it separates reflections 1.6e-5° apart that symmetry-reduction merges.
    """
    start = np.concatenate([[True], np.diff(x) >= POSITION_TOL_DEG])
    group = np.cumsum(start) - 1
    merged = np.bincount(group, weights=y)
    # re-normalise: when the split hits the strongest peak, pymatgen's "100" is only part of the real maximum
    return x[start], merged / merged.max() * 100.0


def assert_same_as_pymatgen(structure: Structure, wavelength="CuKa", two_theta_range=(0, 90)):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = XRDCalculator(wavelength=wavelength).get_pattern(structure, two_theta_range=two_theta_range)
    ours = PowderXRDSimulator(wavelength, two_theta_range).get_pattern(structure)
    ref_x, ref_y = coincident_peaks_merged(np.array(ref.x), np.array(ref.y))
    our_x, our_y = coincident_peaks_merged(ours.two_theta_deg, ours.intensity)
    assert abs(len(ref_x) - len(our_x)) <= 2  # only peaks at the 1e-3 % cut-off may differ
    # every peak that matters (>= 0.5 % of the strongest) has its twin in the other pattern, both ways
    for xs, ys, other_x, other_y in ((ref_x, ref_y, our_x, our_y), (our_x, our_y, ref_x, ref_y)):
        for x, y in zip(xs[ys >= 0.5], ys[ys >= 0.5]):
            j = int(np.argmin(np.abs(other_x - x)))
            assert abs(other_x[j] - x) <= POSITION_TOL_DEG, (x, other_x[j])
            assert abs(other_y[j] - y) <= INTENSITY_TOL, (x, y, other_y[j])


def test_rocksalt_matches_pymatgen_and_has_no_odd_mixed_reflections():
    s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert_same_as_pymatgen(s)
    pattern = PowderXRDSimulator().get_pattern(s)
    # F-centring: h, k, l all even or all odd
    for h, k, l in pattern.hkl:
        assert len({abs(h) % 2, abs(k) % 2, abs(l) % 2}) == 1
    d200 = 5.64 / 2
    assert np.any(np.isclose(pattern.d_angstrom, d200))
    assert pattern.multiplicity[np.argmin(np.abs(pattern.d_angstrom - 5.64 / np.sqrt(3)))] == 8  # {111}


def test_matches_pymatgen_on_spglib_test_structures():
    root = shared_path("spglib_test_structures")
    files = sorted(p for p in root.glob("*/POSCAR-*") if p.parent.name not in ("layer", "virtual_structure"))
    random.Random(1).shuffle(files)
    checked = 0
    for path in files:
        s = Structure.from_file(path)
        if len(s) > 120:
            continue
        assert_same_as_pymatgen(s)
        checked += 1
        if checked == 25:
            break
    assert checked == 25


def test_matches_pymatgen_on_slightly_distorted_structures():
    # near-symmetric cells must not borrow a symmetry they do not have
    root = shared_path("spglib_test_structures", "distorted")
    files = sorted(root.glob("POSCAR-*"))
    assert len(files) == 9
    for path in files:
        assert_same_as_pymatgen(Structure.from_file(path))


def test_matches_pymatgen_on_materials_project_structures_at_mo_and_synchrotron():
    structures = read_mp_cifs(20, start=5, step=997)
    assert len(structures) == 20
    for i, (mp_id, s) in enumerate(structures):
        wavelength = ("MoKa", 0.4959, "CuKa1")[i % 3]
        assert_same_as_pymatgen(s, wavelength=wavelength, two_theta_range=(5, 60))


def test_partial_occupancy_matches_pymatgen():
    s = Structure(Lattice.cubic(4.0), [{"Fe": 0.5, "Co": 0.5}, "Al"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert_same_as_pymatgen(s)


@pytest.mark.parametrize("name,expected", [("CuKa", 1.54184), ("CuKa1", 1.54056), ("MoKa", 0.71073),
                                           ("cuka", 1.54184), (0.7, 0.7), ("1.2", 1.2),
                                           ("8.048keV", 1.54056), ("17.479 keV", 0.70932), ("30000eV", 0.41328)])
def test_wavelength_names_and_values(name, expected):
    assert resolve_wavelength(name) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("bad", ["CuKz", "X-ray", -1.0, 0.0, 20.0, "nan"])
def test_bad_wavelength_is_named(bad):
    with pytest.raises(ValueError, match="wavelength"):
        resolve_wavelength(bad)


@pytest.mark.parametrize("bad,words", [("0keV", "must be positive"), ("1keV", "gives 12.4 Å, outside .* keV"),
                                       ("500 keV", "outside 0.05-5 Å")])
def test_an_energy_out_of_the_x_ray_range_is_named(bad, words):
    with pytest.raises(ValueError, match=words):
        resolve_wavelength(bad)


def test_bragg_law_and_limiting_sphere():
    tt = two_theta_deg_from_d(np.array([2.0, 0.5]), 1.54056)
    assert tt[0] == pytest.approx(np.degrees(2 * np.arcsin(1.54056 / 4.0)))
    assert np.isnan(tt[1])  # lambda / 2d > 1: no reflection


def test_debye_waller_damps_high_angles():
    s = Structure(Lattice.cubic(3.0), ["W"], [[0, 0, 0]])
    cold = PowderXRDSimulator(two_theta_range_deg=(0, 150)).get_pattern(s, scaled=False)
    warm = PowderXRDSimulator(two_theta_range_deg=(0, 150), debye_waller_b={"W": 1.0}).get_pattern(s, scaled=False)
    ratio = warm.intensity / cold.intensity
    assert np.all(np.diff(ratio) < 0)
    assert ratio[0] < 1


def test_debye_waller_matches_pymatgen():
    s = Structure(Lattice.tetragonal(4.1, 6.3), ["Ti", "O", "O"], [[0, 0, 0], [0.3, 0.3, 0], [0.2, 0.7, 0.5]])
    b = {"Ti": 0.6, "O": 1.2}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = XRDCalculator(debye_waller_factors=b).get_pattern(s, two_theta_range=(0, 120))
    ours = PowderXRDSimulator(two_theta_range_deg=(0, 120), debye_waller_b=b).get_pattern(s)
    strong = ours.intensity >= 0.5
    np.testing.assert_allclose(np.array(ref.x)[np.array(ref.y) >= 0.5], ours.two_theta_deg[strong], atol=POSITION_TOL_DEG)
    np.testing.assert_allclose(np.array(ref.y)[np.array(ref.y) >= 0.5], ours.intensity[strong], atol=INTENSITY_TOL)


def test_factorised_structure_factor_equals_the_direct_sum():
    rng = np.random.default_rng(3)
    lattice = Lattice.from_parameters(5.1, 6.7, 7.9, 81, 97, 104)  # triclinic: no help from symmetry
    frac = rng.random((7, 3))
    weights = rng.random((7, 3))  # three "elements" with partial occupancies
    reciprocal = lattice.reciprocal_lattice_crystallographic.matrix
    hkl, limits = _friedel_half_box(reciprocal, lattice.matrix, 1.2)
    g = np.linalg.norm(hkl @ reciprocal, axis=1)
    assert len(hkl) and g.max() <= 1.2 and not np.any(np.all(hkl == 0, axis=1))
    # one of each Friedel pair: no h whose -h is also listed
    codes = {tuple(h) for h in hkl}
    assert not any(tuple(-h) in codes for h in hkl)
    box = np.stack(np.meshgrid(*[np.arange(-12, 13)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    g_box = np.linalg.norm(box @ reciprocal, axis=1)
    assert 2 * len(hkl) == np.count_nonzero((g_box <= 1.2) & (g_box > 0))  # and no pair is missing
    direct = np.exp(2j * np.pi * hkl @ frac.T) @ weights
    np.testing.assert_allclose(_geometric_structure_factors(hkl, limits, frac, weights), direct, atol=1e-10)


def test_unknown_scattering_factor_is_named():
    s = Structure(Lattice.cubic(5.0), ["Og"], [[0, 0, 0]])
    with pytest.raises(ValueError, match="Og"):
        PowderXRDSimulator().get_pattern(s)
