"""The request parser shared by the API and batch jobs (hypothesis), and the drift statistics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.drift import compare, population_stability_index
from tasks.inputs import InputError, parse_prediction_input

json_values = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=20),
                           lambda children: st.lists(children, max_size=5) |
                           st.dictionaries(st.text(max_size=10), children, max_size=5), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values,
                 st.dictionaries(st.sampled_from(["xrd", "formula", "structure", "top_k", "name"]), json_values,
                                 max_size=3)))
def test_any_json_is_parsed_or_refused_with_words(item):
    try:
        parsed = parse_prediction_input(item)
    except InputError as exc:
        assert str(exc) and "Traceback" not in str(exc)
    else:
        assert parsed.modality in ("xrd", "formula", "structure") and parsed.input_hash


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True) | st.floats(min_value=-10, max_value=150), min_size=0,
                max_size=80), st.one_of(st.none(), st.floats(allow_nan=True), st.sampled_from(["CuKa", "MoKa1", "x"])))
def test_pattern_parser_never_crashes(values, wavelength):
    item = {"xrd": {"two_theta_deg": values, "intensity": values[::-1], "wavelength": wavelength}}
    try:
        parse_prediction_input(item)
    except InputError as exc:
        assert str(exc)


def test_no_drift_between_samples_of_one_distribution_and_drift_after_a_shift():
    rng = np.random.default_rng(0)
    labels = ["profile_a", "profile_b", "peak_x", "fom_cubic_P"]
    reference = rng.normal(size=(400, 4))
    same = rng.normal(size=(400, 4))
    y_ref = rng.choice([14, 62, 225], size=400, p=[0.5, 0.3, 0.2])
    y_same = rng.choice([14, 62, 225], size=400, p=[0.5, 0.3, 0.2])
    quiet = compare(reference, y_ref, same, y_same, labels, ks_threshold=0.2, psi_threshold=0.25)
    assert not quiet.drifted and quiet.label_psi < 0.05
    shifted = same.copy()
    shifted[:, :2] += 1.5
    y_shift = rng.choice([14, 62, 225, 194], size=400, p=[0.1, 0.1, 0.2, 0.6])
    loud = compare(reference, y_ref, shifted, y_shift, labels, ks_threshold=0.2, psi_threshold=0.25)
    assert loud.feature_groups["profile"]["drifted"] and not loud.feature_groups["peaks"]["drifted"]
    assert loud.label_drifted and loud.drifted and len(loud.reasons()) == 2


def test_psi_is_zero_for_identical_distributions():
    assert population_stability_index([1, 2, 2, 3], [1, 2, 2, 3]) == 0.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans() | st.integers(-3, 3) | st.floats(-2, 2) | st.none() | st.text(max_size=3)
                | st.lists(st.integers(0, 2), max_size=2), min_size=1, max_size=12))
def test_pattern_arrays_take_numbers_only(values):
    """Booleans are refused even where numpy would quietly read them as 0 and 1 (the fast path's blind spot)."""
    item = {"xrd": {"two_theta_deg": [10.0 + 0.02 * i for i in range(len(values))], "intensity": values}}
    only_numbers = all(type(v) in (int, float) for v in values)
    try:
        parse_prediction_input(item)
    except InputError as exc:
        assert only_numbers or "only numbers" in str(exc)
    else:
        assert only_numbers


@pytest.mark.parametrize("axis", ["q_inv_angstrom", "d_angstrom"])
def test_peak_positions_may_come_as_q_or_d_spacings(axis):
    two_theta = np.linspace(10, 80, 400)
    intensity = 1 + 100 * np.exp(-((two_theta - 31.7) / 0.1) ** 2)
    q = 4 * np.pi * np.sin(np.radians(two_theta) / 2) / 1.54184
    positions = q if axis == "q_inv_angstrom" else 2 * np.pi / q
    parsed = parse_prediction_input({"xrd": {axis: positions.tolist(), "intensity": intensity.tolist()}})
    np.testing.assert_allclose(parsed.value.two_theta_deg, two_theta, atol=1e-9)
    np.testing.assert_allclose(parsed.value.intensity, intensity)  # d-spacings fall: put in rising 2θ
    both = {"xrd": {"two_theta_deg": two_theta.tolist(), axis: positions.tolist(), "intensity": intensity.tolist()}}
    with pytest.raises(InputError, match="give the positions once"):
        parse_prediction_input(both)
    with pytest.raises(InputError, match="reaches d = .* at most"):
        parse_prediction_input({"xrd": {axis: positions.tolist(), "intensity": intensity.tolist(), "wavelength": 4.5}})
    with pytest.raises(InputError, match=f"'xrd.{axis}' and 'xrd.intensity' must contain only numbers"):
        parse_prediction_input({"xrd": {axis: ["x"] * 400, "intensity": intensity.tolist()}})
