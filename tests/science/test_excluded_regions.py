"""Excluded 2θ regions: a second phase's lines taken out of a pattern before it is read."""

import numpy as np
import pytest

from tasks.excluded_regions import MAX_REGIONS, exclude_regions, parse_regions, validate_regions
from tasks.features import XRDPatternFeaturizer, find_pattern_peaks
from tasks.patterns import PatternError, PowderPattern
from tasks.xrd import resolve_wavelength

CU = resolve_wavelength("CuKa")
FILM_LINES_DEG = (14.1, 28.4, 31.9, 40.6, 43.2)
SUBSTRATE_LINES_DEG = (26.6, 33.9, 37.9, 51.8)  # cassiterite (FTO glass) at Cu Kα
SUBSTRATE_REGIONS = [(t - 0.5, t + 0.5) for t in SUBSTRATE_LINES_DEG]


def _pattern(lines_deg, heights, seed=0) -> PowderPattern:
    tt = np.arange(10.0, 60.0, 0.02)
    y = 200.0 + 2.0 * (60.0 - tt)  # a sloping background
    for position, height in zip(lines_deg, heights):
        y = y + height * np.exp(-0.5 * ((tt - position) / 0.06) ** 2)
    return PowderPattern(tt, np.random.default_rng(seed).poisson(y).astype(float), CU, "film.xy")


def _two_theta(peaks) -> np.ndarray:
    return 2.0 * np.degrees(np.arcsin(peaks.q_inv_angstrom * CU / (4.0 * np.pi)))


def _with_substrate(film: PowderPattern) -> PowderPattern:
    tt = film.two_theta_deg
    substrate = sum(3000.0 * np.exp(-0.5 * ((tt - t) / 0.05) ** 2) for t in SUBSTRATE_LINES_DEG)
    return PowderPattern(tt, film.intensity + np.round(substrate), CU, film.source)


def test_an_excluded_region_is_bridged_by_a_line_between_its_neighbours():
    film = _with_substrate(_pattern(FILM_LINES_DEG, [5000, 3000, 2000, 800, 600]))
    cleaned = exclude_regions(film, [(26.0, 27.2)])
    tt = film.two_theta_deg
    inside = (tt >= 26.0) & (tt <= 27.2)
    before, after = np.flatnonzero(inside)[0] - 1, np.flatnonzero(inside)[-1] + 1
    expected = np.interp(tt[inside], tt[[before, after]], film.intensity[[before, after]])
    np.testing.assert_allclose(cleaned.intensity[inside], expected)
    np.testing.assert_array_equal(cleaned.intensity[~inside], film.intensity[~inside])
    np.testing.assert_array_equal(cleaned.two_theta_deg, tt)  # the grid is kept
    assert film.intensity[inside].max() > 3000  # the input is not changed in place


def test_the_substrate_s_peaks_vanish_and_the_film_s_stay_where_they_were():
    film = _pattern(FILM_LINES_DEG, [5000, 3000, 2000, 800, 600])
    with_substrate = _with_substrate(film)
    found = _two_theta(find_pattern_peaks(with_substrate))
    assert all(np.abs(found - t).min() < 0.03 for t in SUBSTRATE_LINES_DEG)
    cleaned = _two_theta(find_pattern_peaks(exclude_regions(with_substrate, SUBSTRATE_REGIONS)))
    assert not any(np.abs(cleaned - t).min() < 0.5 for t in SUBSTRATE_LINES_DEG)
    np.testing.assert_allclose(cleaned, _two_theta(find_pattern_peaks(film)), atol=1e-9)


def test_a_film_with_its_substrate_excluded_reads_as_the_film_alone():
    # outside the regions the two patterns are the same points, so once excluded they are the same pattern
    featurizer = XRDPatternFeaturizer()
    film = _pattern(FILM_LINES_DEG, [5000, 3000, 2000, 800, 600])
    with_substrate = _with_substrate(film)
    assert not np.allclose(featurizer.featurize(with_substrate), featurizer.featurize(film), equal_nan=True)
    np.testing.assert_array_equal(featurizer.featurize(exclude_regions(with_substrate, SUBSTRATE_REGIONS)),
                                  featurizer.featurize(exclude_regions(film, SUBSTRATE_REGIONS)))


def test_regions_at_the_ends_or_outside_the_scan():
    film = _pattern(FILM_LINES_DEG, [5000, 3000, 2000, 800, 600])
    start = exclude_regions(film, [(0.0, 14.5)])
    first_kept = np.flatnonzero(film.two_theta_deg > 14.5)[0]
    assert np.all(start.intensity[:first_kept] == film.intensity[first_kept])  # the one neighbour's intensity
    assert exclude_regions(film, [(70.0, 80.0)]) is film
    assert exclude_regions(film, []) is film


def test_regions_are_read_from_text():
    assert parse_regions("26.3-26.9, 37.6:38.2") == [(26.3, 26.9), (37.6, 38.2)]
    assert parse_regions("") == []


@pytest.mark.parametrize("text,words", [
    ("26.9-26.3", "its start must be below its end"),
    ("26.3", "not of the form START-END"),
    ("a-b", "not of the form START-END"),
    ("170-190", "outside 0-180"),
    (",".join(f"{10 + i}-{10.5 + i}" for i in range(MAX_REGIONS + 1)), f"at most {MAX_REGIONS}"),
])
def test_bad_region_text_is_named(text, words):
    with pytest.raises(PatternError, match=words):
        parse_regions(text)


@pytest.mark.parametrize("regions,words", [
    ([[1.0]], "two numbers"),
    ([[True, 3.0]], "two numbers"),
    (["26-27"], "two numbers"),
    ([[float("nan"), 3.0]], "outside 0-180"),
])
def test_bad_region_values_are_named(regions, words):
    with pytest.raises(PatternError, match=words):
        validate_regions(regions)


def test_excluding_most_of_the_pattern_is_refused():
    film = _pattern(FILM_LINES_DEG, [5000, 3000, 2000, 800, 600])
    with pytest.raises(PatternError, match="in film.xy; at most half may be excluded"):
        exclude_regions(film, [(10.0, 40.0)])


@pytest.mark.parametrize("substrate,strongest_two_theta_deg", [
    ("FTO", 26.61), ("ITO", 30.58), ("Si", 28.44), ("Au", 38.18), ("Pt", 39.76), ("Al", 38.47),
])
def test_each_substrate_s_strongest_line_is_where_the_powder_files_have_it(substrate, strongest_two_theta_deg):
    from tasks.excluded_regions import SUBSTRATES
    from tasks.xrd import PowderXRDSimulator

    sticks = PowderXRDSimulator("CuKa", (10.0, 80.0)).get_pattern(SUBSTRATES[substrate]())
    assert sticks.two_theta_deg[np.argmax(sticks.intensity)] == pytest.approx(strongest_two_theta_deg, abs=0.06)


def test_a_named_substrate_takes_out_only_the_lines_the_pattern_shows():
    from tasks.excluded_regions import substrate_regions, take_out

    film = _pattern(FILM_LINES_DEG, [5000, 3000, 2000, 800, 600])
    with_substrate = _with_substrate(film)
    found = substrate_regions(with_substrate, "fto")
    np.testing.assert_allclose([(a + b) / 2 for a, b in found], SUBSTRATE_LINES_DEG, atol=0.03)
    assert substrate_regions(film, "FTO") == []  # no cassiterite lines in the film alone: nothing is taken out
    cleaned, regions = take_out(with_substrate, [(10.0, 10.5)], ["FTO"])
    assert regions == [(10.0, 10.5)] + found  # the typed regions first
    np.testing.assert_array_equal(cleaned.intensity, exclude_regions(with_substrate, regions).intensity)
    with pytest.raises(PatternError, match="unknown substrate 'glass'; known: FTO, ITO"):
        take_out(film, substrates=["glass"])
