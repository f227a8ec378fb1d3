"""Featurizers: deterministic, fixed length, wavelength-independent, versioned."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymatgen.core import Lattice, Structure

from tasks.augment import MeasuredLikeAugmenter
from tasks.features import XRD_FEATURE_VERSION, FormulaFeaturizer, XRDPatternFeaturizer
from tasks.patterns import PowderPattern
from tasks.readers import parse_formula
from tasks.xrd import PowderXRDSimulator


@pytest.fixture(scope="module")
def featurizer():
    return XRDPatternFeaturizer()


def clean_pattern(structure, wavelength, lo, hi):
    aug = MeasuredLikeAugmenter()
    refl = PowderXRDSimulator(two_theta_range_deg=(0, 170)).reflections(structure)
    base = aug.sample(np.random.default_rng(0), wavelength=wavelength)
    clean = type(base)(**dict(base.__dict__, kalpha2_angstrom=None, impurity_positions_deg=np.zeros(0),
                              impurity_fractions=np.zeros(0), peak_counts=1e6, readout_noise_fraction=0.0,
                              strain=0.0, zero_shift_deg=0.0, displacement_mm=0.0, texture_axis=None,
                              background_fraction=0.0, hump_fraction=0.0, two_theta_range_deg=(lo, hi),
                              step_deg=0.01, caglioti_uvw_deg2=(0, 0, 0.002), crystallite_size_nm=200.0))
    return aug.render(refl, clean, np.random.default_rng(0))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e5, allow_nan=False), min_size=50, max_size=600),
       st.floats(min_value=3, max_value=30), st.floats(min_value=0.005, max_value=0.2),
       st.sampled_from([0.5, 0.71073, 1.5406, 2.29]))
def test_any_valid_pattern_gives_a_fixed_length_deterministic_vector(values, start, step, wavelength):
    featurizer = XRDPatternFeaturizer()
    y = np.array(values)
    y[0] += 1.0
    x = start + step * np.arange(len(y))
    if x[-1] >= 179:
        return
    p = PowderPattern(x, y, wavelength)
    a, b = featurizer.featurize_array(p), featurizer.featurize_array(p)
    assert a.shape == (featurizer.n_features,)
    assert np.array_equal(a, b, equal_nan=True)
    assert not np.any(np.isinf(a))
    assert len(featurizer.feature_labels()) == len(a)


def test_features_do_not_depend_on_wavelength(featurizer):
    s = Structure.from_spacegroup("Pm-3m", Lattice.cubic(3.9), ["Sr", "Ti", "O"],
                                  [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]])
    # same Q window: Cu 20-80° and Mo at the matching angles
    cu = clean_pattern(s, "CuKa1", 20, 80)
    q_lo, q_hi = cu.q_inv_angstrom[0], cu.q_inv_angstrom[-1]
    lam = 0.70932
    lo, hi = (np.degrees(2 * np.arcsin(q * lam / (4 * np.pi))) for q in (q_lo, q_hi))
    mo = clean_pattern(s, "MoKa1", lo, hi)
    from tasks.features import find_pattern_peaks

    peaks_cu, peaks_mo = find_pattern_peaks(cu), find_pattern_peaks(mo)
    # Lorentz-polarisation differs between wavelengths, so only clear peaks (> 5 %) must appear in both
    strong_cu = peaks_cu.q_inv_angstrom[peaks_cu.intensity > 0.05]
    assert len(strong_cu) >= 5
    for q in strong_cu:
        assert np.min(np.abs(peaks_mo.q_inv_angstrom - q)) < 0.01
    f_cu, f_mo = featurizer.featurize_array(cu), featurizer.featurize_array(mo)
    labels = featurizer.feature_labels()
    ratios = [i for i, name in enumerate(labels) if name.startswith("q2ratio_")][:4]
    assert np.allclose(f_cu[ratios], f_mo[ratios], atol=0.02)


def test_local_noise_follows_the_noise_level_and_ignores_peaks():
    from tasks.features import local_noise

    rng = np.random.default_rng(0)
    sigma = np.where(np.arange(4000) < 2000, 1.0, 4.0)  # counting noise grows with the level
    y = 100.0 + rng.normal(0.0, sigma)
    y[500:510] += 1000.0 * np.hanning(10)  # a sharp peak inside one block
    estimate = local_noise(y)
    assert estimate.shape == y.shape
    assert np.median(estimate[:2000]) == pytest.approx(1.0, rel=0.15)
    assert np.median(estimate[2000:]) == pytest.approx(4.0, rel=0.15)
    assert estimate[505] < 2.0  # 10 peak points of 64 leave the block's median near the noise


def test_indexing_recognises_lattices_and_centring():
    from tasks.indexing import FOM_LABELS, indexing_features

    a, c = 4.0, 6.0
    hkl = [(h, k, l) for h in range(3) for k in range(3) for l in range(3) if h + k + l]
    s_tet = np.array(sorted({(h * h + k * k) / a**2 + l * l / c**2 for h, k, l in hkl}))[:12]
    tet = dict(zip(FOM_LABELS, indexing_features(2 * np.pi * np.sqrt(s_tet))))
    assert tet["fom_tetragonal_P"] == pytest.approx(1.0)
    assert tet["c_over_a_tetragonal"] == pytest.approx(1.5, rel=1e-3)
    assert tet["fom_cubic_P"] < 0.5
    fcc = dict(zip(FOM_LABELS, indexing_features(2 * np.pi * np.sqrt(np.array([3, 4, 8, 11, 12, 16, 19, 20])) / 5.43)))
    assert fcc["fom_cubic_F"] == pytest.approx(1.0) and fcc["fom_cubic_P"] < 1.0
    rng = np.random.default_rng(0)
    noise = dict(zip(FOM_LABELS, indexing_features(np.sort(rng.uniform(1, 5, 12)))))
    assert max(noise[k] for k in FOM_LABELS if k.startswith("fom_")) < 0.6
    assert np.all(np.isnan(indexing_features(np.array([1.0, 2.0]))))


def test_versions_are_declared(featurizer):
    assert featurizer.version == XRD_FEATURE_VERSION
    assert featurizer.citations() and featurizer.implementors()


@pytest.mark.slow
def test_formula_featurizer_pins_magpie_values():
    f = FormulaFeaturizer()
    row = dict(zip(f.feature_labels(), f.featurize(parse_formula("Fe2O3"))))
    assert row["MagpieData mean Number"] == pytest.approx(15.2)  # (2*26 + 3*8) / 5, as in matminer's tests
    assert row["0-norm"] == 2
    assert len(f.featurize_many([parse_formula("NaCl"), parse_formula("SiO2")])) == 2


@pytest.fixture(scope="module")
def formula_featurizer():
    return FormulaFeaturizer()


_ELEMENTS = ["H", "He", "Li", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar", "K", "Ca",
             "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br", "Kr", "Sr", "Y", "Zr",
             "Nb", "Mo", "Tc", "Ru", "Pd", "Ag", "Sn", "Sb", "Te", "I", "Xe", "Ba", "La", "Ce", "Nd", "Eu", "Gd",
             "Yb", "Hf", "Ta", "W", "Re", "Os", "Pt", "Au", "Hg", "Pb", "Bi", "Po", "Rn", "Th", "U", "Pu", "Og"]


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(_ELEMENTS), st.one_of(st.integers(1, 12), st.floats(0.05, 8.0)),
                       min_size=1, max_size=6))
def test_formula_featurizer_equals_matminer(formula_featurizer, amounts):
    """Ties in amount (the mode), elements without a property (NaN), fractional and one-element compositions."""
    from pymatgen.core import Composition

    composition = Composition(amounts)
    np.testing.assert_allclose(formula_featurizer.featurize_array(composition),
                               formula_featurizer.featurize_with_matminer(composition), rtol=1e-12, atol=1e-12)
