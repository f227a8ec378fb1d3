"""Malvern Panalytical XRDML patterns: the 2θ scan, its counts and its wavelength, and clear refusals."""

from pathlib import Path

import numpy as np
import pytest

from tasks.patterns import PatternError
from tasks.readers import input_kind, read_pattern
from tasks.xrdml import parse_xrdml

EXAMPLES = Path(__file__).resolve().parents[2] / "tasks" / "examples"
NAMESPACE = "http://www.xrdml.com/XRDMeasurement/1.5"


def xrdml(axis: str, counts: str, wavelength: str = "", tag: str = "intensities", extra_axis: str = "") -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<xrdMeasurements xmlns="{NAMESPACE}" status="Completed">
  <sample type="To be analyzed"><id>Si</id></sample>
  <xrdMeasurement measurementType="Scan" status="Completed" sampleMode="Reflection">
    {wavelength}
    <scan appendNumber="0" mode="Continuous" scanAxis="Gonio" status="Completed">
      <dataPoints>
        {axis}
        {extra_axis}
        <commonCountingTime unit="seconds">0.5</commonCountingTime>
        <{tag} unit="counts">{counts}</{tag}>
      </dataPoints>
    </scan>
  </xrdMeasurement>
</xrdMeasurements>""".encode()


CU_DOUBLET = """<usedWavelength intended="K-Alpha">
      <kAlpha1 unit="Angstrom">1.5405980</kAlpha1><kAlpha2 unit="Angstrom">1.5444260</kAlpha2>
      <kBeta unit="Angstrom">1.3922500</kBeta><ratioKAlpha2KAlpha1>0.5000</ratioKAlpha2KAlpha1>
    </usedWavelength>"""


def _start_end(start, end, axis="2Theta"):
    return (f'<positions axis="{axis}" unit="deg"><startPosition>{start}</startPosition>'
            f"<endPosition>{end}</endPosition></positions>")


def test_an_equal_step_scan_reads_as_the_same_pattern_with_its_doublet_wavelength(tmp_path):
    reference = read_pattern(EXAMPLES / "Si_diamond_CuKa.xy")
    tt, y = reference.two_theta_deg, reference.intensity
    assert np.allclose(np.diff(tt), tt[1] - tt[0])  # the example is an equal-step scan, as XRDML stores one
    path = tmp_path / "Si.xrdml"
    path.write_bytes(xrdml(_start_end(tt[0], tt[-1]), " ".join(f"{v:g}" for v in y), CU_DOUBLET,
                           extra_axis=_start_end(tt[0] / 2, tt[-1] / 2, "Omega")))
    assert input_kind(path) == "pattern"
    pattern = read_pattern(path)
    np.testing.assert_allclose(pattern.two_theta_deg, tt, atol=1e-9)
    np.testing.assert_allclose(pattern.intensity, y, rtol=1e-6)
    assert pattern.wavelength_angstrom == pytest.approx((1.540598 + 0.5 * 1.544426) / 1.5)  # 1.54187 Å
    assert read_pattern(path, wavelength="MoKa").wavelength_angstrom == pytest.approx(0.71073, abs=1e-4)


def test_listed_positions_old_counts_and_a_monochromated_alpha_1():
    alpha1 = CU_DOUBLET.replace('intended="K-Alpha"', 'intended="K-Alpha 1"')
    axis = '<positions axis="2Theta" unit="deg"><listPositions>20 20.5 21.5 23</listPositions></positions>'
    tt, y, wavelength = parse_xrdml(xrdml(axis, "5 7 11 13", alpha1, tag="counts"), "old.xrdml")
    assert list(tt) == [20, 20.5, 21.5, 23] and list(y) == [5, 7, 11, 13]
    assert wavelength == pytest.approx(1.540598)
    _, _, none = parse_xrdml(xrdml(axis, "5 7 11 13"), "bare.xrdml")
    assert none is None  # no wavelength recorded: the caller's default (Cu Kα) applies


@pytest.mark.parametrize("data,message", [
    (b"<xrdMeasurements><unclosed></xrdMeasurements>", "not a readable XRDML file"),
    (b'<?xml version="1.0"?><!DOCTYPE b [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]><b>&b;</b>',
     "not a readable XRDML file"),  # entity expansion refused before it can grow
    (xrdml(_start_end(10, 20, "Omega"), "1 2 3"), "no 2θ scan"),
    (xrdml('<positions axis="2Theta"><listPositions>1 2 3</listPositions></positions>', "1 2"),
     "3 2θ positions but 2 intensities"),
    (xrdml(_start_end(10, 20), "1 2 x"), "intensities of the XRDML file are not all numbers"),
    (xrdml('<positions axis="2Theta"><startPosition>10</startPosition></positions>', "1 2 3"),
     "neither start/end positions nor a list"),
])
def test_unreadable_files_are_named(data, message):
    with pytest.raises(PatternError, match=message):
        parse_xrdml(data, "scan.xrdml")
