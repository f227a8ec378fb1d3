"""Compiled profile kernels give the values of the numpy/scipy compositions they replace."""

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import find_peaks

from tasks import profile_kernels as kernels
from tasks.augment import MeasuredLikeAugmenter
from tasks.features import (NOISE_BLOCK_POINTS, XRDPatternFeaturizer, background_subtracted,
                            background_subtracted_reference, find_pattern_peaks, local_noise)
from tasks.patterns import PowderPattern
from tasks.xrd import PowderXRDSimulator


@pytest.fixture(scope="module")
def measured_like() -> list[PowderPattern]:
    """Patterns with every nuisance the augmenter has (noise, humps, Kα2, impurities), three structures."""
    structures = [
        Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(4.59, 2.96), ["Ti", "O"],
                                  [[0, 0, 0], [0.305, 0.305, 0]]),
        Structure.from_spacegroup("P6_3mc", Lattice.hexagonal(3.25, 5.21), ["Zn", "O"],
                                  [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.382]]),
    ]
    aug = MeasuredLikeAugmenter()
    rng = np.random.default_rng(3)
    patterns = []
    for structure in structures:
        refl = PowderXRDSimulator(two_theta_range_deg=(0, 170)).reflections(structure)
        patterns += [aug.render(refl, aug.sample(rng), rng) for _ in range(12)]
    return patterns


@pytest.mark.parametrize("size", [1, 2, 3, 4, 63, 200, 201, 5000])
def test_running_filters_equal_scipy_nearest_mode(size):
    y = np.random.default_rng(size).gamma(2.0, 100.0, 1500)
    assert np.array_equal(kernels.running_min(y, size), minimum_filter1d(y, size, mode="nearest"))
    assert np.allclose(kernels.running_mean(y, size), uniform_filter1d(y, size, mode="nearest"), rtol=1e-12)


def test_median_equals_numpy_with_ties_and_odd_even_lengths():
    rng = np.random.default_rng(0)
    for n in [1, 2, 3, 4, 5, 63, 64, 65, 1000]:
        for values in (rng.standard_normal(n), rng.integers(0, 4, n).astype(float)):
            assert kernels._median_of(values) == np.median(values)


def test_block_noise_equals_the_numpy_definition():
    rng = np.random.default_rng(1)
    for n in [1, 2, 40, 64, 65, 129, 4000]:
        y = rng.poisson(200.0, n).astype(float)
        assert np.array_equal(kernels.block_noise(y, NOISE_BLOCK_POINTS), local_noise(y))


def test_background_subtraction_equals_the_scipy_composition(measured_like):
    for pattern in measured_like:
        fast, reference = background_subtracted(pattern), background_subtracted_reference(pattern)
        assert np.allclose(fast.q_inv_angstrom, reference.q_inv_angstrom, rtol=1e-14, atol=0)
        assert np.allclose(fast.signal, reference.signal, rtol=0, atol=1e-12)
        assert np.allclose(fast.noise, reference.noise, rtol=1e-12, atol=0)
        assert fast.step_q == pytest.approx(reference.step_q, rel=1e-12)


def test_peak_indices_equal_scipy_find_peaks(measured_like):
    total = 0
    for pattern in measured_like:
        _, signal, _, noise = background_subtracted(pattern)
        for sigmas, distance, wlen in [(8.0, 8, 115), (3.0, 1, 11), (2.0, 30, 2), (0.5, 3, 4001)]:
            threshold = np.maximum(0.02, sigmas * noise)
            expected, _ = find_peaks(signal, height=threshold, prominence=threshold, distance=distance, wlen=wlen)
            found = kernels.find_peak_indices(signal, threshold, threshold, distance, wlen)
            assert np.array_equal(found, expected)
            total += len(found)
    assert total > 1000  # the comparison saw many peaks, weak ones included


def test_flat_topped_maxima_count_once_at_their_middle():
    x = np.array([0, 1, 3, 3, 3, 3, 1, 0, 2, 2, 0, 5, 5, 5], float)  # the last plateau touches the end: no peak
    low = np.full_like(x, 0.5)
    expected, _ = find_peaks(x, height=low, prominence=low, distance=1, wlen=9)
    assert np.array_equal(kernels.find_peak_indices(x, low, low, 1, 9), expected)
    assert list(expected) == [3, 8]


def test_refined_peaks_equal_the_parabola_through_three_points(measured_like):
    for pattern in measured_like[::4]:
        q, signal, _, _ = background_subtracted(pattern)
        idx, _ = find_peaks(signal, prominence=0.02)
        left, mid, right = signal[idx - 1], signal[idx], signal[idx + 1]
        denom = left - 2 * mid + right
        offset = np.clip(np.where(np.abs(denom) > 1e-12, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0),
                         -0.5, 0.5)
        q_peak, height = kernels.refine_peaks(q, signal, idx)
        assert np.allclose(q_peak, np.interp(idx + offset, np.arange(len(q)), q), rtol=1e-14, atol=0)
        assert np.allclose(height, mid / mid.max())


def test_peaks_at_the_ends_of_the_scan_are_dropped():
    q = np.linspace(1.0, 2.0, 7)
    q_peak, height = kernels.refine_peaks(q, np.array([5, 1, 2, 1, 0, 1, 3.0]), np.array([0, 2, 6]))
    assert np.allclose(q_peak, [q[2]]) and np.allclose(height, [1.0])


def test_bins_hold_the_largest_point_of_their_half_open_interval():
    featurizer = XRDPatternFeaturizer()
    edges = featurizer._edges
    rng = np.random.default_rng(2)
    q = np.sort(np.concatenate([rng.uniform(0.3, 6.3, 3000), edges[::7]]))  # points exactly on edges too
    signal = rng.random(len(q))
    which = np.searchsorted(edges, q) - 1
    ok = (which >= 0) & (which < len(edges) - 1)
    expected = np.full(len(edges) - 1, -np.inf)
    np.maximum.at(expected, which[ok], signal[ok])
    assert np.array_equal(kernels.max_per_bin(q, signal, edges), expected)


def test_featurizer_on_measured_like_patterns_finds_the_strong_peaks(measured_like):
    peaks = find_pattern_peaks(measured_like[0])  # NaCl: (200) is the strongest line
    q200 = 2 * np.pi * 2 / 5.64
    assert np.min(np.abs(peaks.q_inv_angstrom - q200)) < 0.02
