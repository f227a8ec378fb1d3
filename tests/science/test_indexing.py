"""Trial indexing: the compiled scorer agrees with listing every candidate's lines, on ideal and messy peaks."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.indexing import LATTICES, _candidates, index_lattices, score_candidates, scores_by_listing


def _both(s_obs):
    for f, (family, centring) in enumerate(LATTICES):
        a, c = _candidates(s_obs, family, centring)
        fast = score_candidates(s_obs, a, c, np.full(len(a), f), LATTICES)
        yield family, centring, fast, scores_by_listing(s_obs, a, c, family, centring)


def _ideal(family, a, c, n=12):
    hkl = [(h, k, l) for h in range(5) for k in range(5) for l in range(5) if h + k + l]
    if family == "hexagonal":
        s = {4 / 3 * (h * h + h * k + k * k) / a**2 + l * l / c**2 for h, k, l in hkl}
    else:
        s = {(h * h + k * k) / a**2 + l * l / c**2 for h, k, l in hkl}
    return np.array(sorted(s))[:n]


@pytest.mark.parametrize("family", ["tetragonal", "hexagonal"])
@pytest.mark.parametrize("c_over_a", [1.0, 0.5, 1.5, 2.0, np.sqrt(2), 1.618])
def test_agrees_with_listing_on_ideal_lattices(family, c_over_a):
    """Ideal cells make C/A rational, so many candidates have coinciding lines: the distinct count must hold."""
    s_obs = _ideal(family, 4.05, 4.05 * c_over_a)
    for fam, centring, fast, reference in _both(s_obs):
        np.testing.assert_allclose(fast, reference, atol=1e-12, err_msg=f"{fam} {centring}")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.5, 7.0), min_size=4, max_size=14, unique=True), st.floats(0.0, 0.002))
def test_agrees_with_listing_on_arbitrary_peaks(q, jitter):
    q = np.sort(np.asarray(q)) * (1 + jitter)
    s_obs = (q / (2 * np.pi)) ** 2
    if np.any(np.diff(s_obs) <= 0):
        return
    for fam, centring, fast, reference in _both(s_obs[:12]):
        np.testing.assert_allclose(fast, reference, atol=1e-12, err_msg=f"{fam} {centring}")


def test_wide_windows_use_every_m_in_the_window():
    """A tiny A (first peak far below the others) makes the tolerance window wider than one step of m."""
    s_obs = np.array([0.0004, 0.21, 0.33, 0.47, 0.52, 0.66, 0.71, 0.8])
    for fam, centring, fast, reference in _both(s_obs):
        np.testing.assert_allclose(fast, reference, atol=1e-12, err_msg=f"{fam} {centring}")


def test_best_candidate_gives_the_cell_ratio():
    results = dict(zip(LATTICES, index_lattices(_ideal("tetragonal", 3.9, 3.9 * 1.37))))
    fom, c_over_a = results[("tetragonal", "P")]
    assert fom == pytest.approx(1.0)
    assert c_over_a == pytest.approx(1.37, rel=1e-3)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.5, 7.0), min_size=4, max_size=12, unique=True))
def test_best_candidate_per_lattice_is_the_first_best_of_the_listing(q):
    """``index_lattices`` generates the candidates inside the compiled loop: same candidates, same order."""
    s_obs = (np.sort(np.asarray(q)) / (2 * np.pi)) ** 2
    if np.any(np.diff(s_obs) <= 0):
        return
    for (family, centring), (fom, c_over_a) in zip(LATTICES, index_lattices(s_obs)):
        a, c = _candidates(s_obs, family, centring)
        reference = scores_by_listing(s_obs, a, c, family, centring)
        best = int(np.argmax(reference))
        assert fom == pytest.approx(reference[best], abs=1e-12)
        if family != "cubic":
            assert c_over_a == pytest.approx(np.sqrt(a[best] / c[best]), rel=1e-12)
