"""Rigaku RAS, Bruker UXD and Bruker BRML patterns: each reads as the same pattern and wavelength as the two-column
file it was written from, several side-by-side ranges join, and what is not one powder pattern is refused by name.

No vendor file could be shipped, so the files are written here the way the formats are laid out (see the module
docstrings of tasks/rigaku.py and tasks/bruker.py).
"""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tasks.bruker import MAX_BRML_MEMBER_BYTES, parse_brml, parse_uxd
from tasks.patterns import PatternError
from tasks.readers import input_kind, read_pattern
from tasks.rigaku import parse_ras
from tasks.scans import kalpha_wavelength_angstrom

EXAMPLES = Path(__file__).resolve().parents[2] / "tasks" / "examples"
CU_MEAN = (1.540593 + 0.5 * 1.544414) / 1.5


@pytest.fixture(scope="module")
def silicon():
    pattern = read_pattern(EXAMPLES / "Si_diamond_CuKa.xy")
    return pattern.two_theta_deg, pattern.intensity


def ras(scans, alpha2="1.544414", axis="TwoThetaTheta", unit_y="cps", newline="\r\n") -> bytes:
    """A RAS file of ``scans`` (lists of (2θ, intensity, attenuator factor)), one header block each."""
    lines = ["*RAS_DATA_START"]
    for rows in scans:
        lines += ["*RAS_HEADER_START", '*FILE_SAMPLE "Si \x82\xa0"', '*HW_XG_TARGET_NAME "Cu"',
                  '*HW_XG_WAVE_LENGTH_ALPHA1 "1.540593"', f'*HW_XG_WAVE_LENGTH_ALPHA2 "{alpha2}"',
                  f'*MEAS_SCAN_AXIS_X "{axis}"', '*MEAS_SCAN_MODE "CONTINUOUS"', '*MEAS_SCAN_SPEED "10.0"',
                  f'*MEAS_SCAN_STEP "{rows[1][0] - rows[0][0]:.4f}"', '*MEAS_SCAN_UNIT_X "deg"',
                  f'*MEAS_SCAN_UNIT_Y "{unit_y}"', "*RAS_HEADER_END", "*RAS_INT_START"]
        lines += [f"{a:.4f} {b:.4f} {c:.4f}" for a, b, c in rows]
        lines += ["*RAS_INT_END"]
    lines.append("*RAS_DATA_END")
    return newline.join(lines).encode("latin-1") + newline.encode()


def _rows(tt, y, factor=1.0):
    return [(a, b / factor, factor) for a, b in zip(tt, y)]


def test_a_ras_scan_reads_as_its_pattern_with_attenuator_factors_and_the_doublet_wavelength(silicon, tmp_path):
    tt, y = silicon
    rows = _rows(tt, y)
    strong = y > 0.5 * y.max()
    rows = [(a, b / 10.0, 10.0) if s else (a, b, c) for (a, b, c), s in zip(rows, strong)]  # attenuator in
    path = tmp_path / "Si.RAS"
    path.write_bytes(ras([rows]))
    assert input_kind(path) == "pattern"
    pattern = read_pattern(path)
    np.testing.assert_allclose(pattern.two_theta_deg, tt, atol=1e-4)
    np.testing.assert_allclose(pattern.intensity, y, rtol=1e-4, atol=1e-3)
    assert pattern.wavelength_angstrom == pytest.approx(CU_MEAN)
    _, _, alpha1 = parse_ras(ras([rows], alpha2="1.540593"), "mono.ras")
    assert alpha1 == pytest.approx(1.540593)  # Kα2 recorded as Kα1: a monochromated beam


def test_side_by_side_ras_ranges_join_and_overlapping_ones_are_refused(silicon):
    tt, y = silicon
    half = len(tt) // 2
    joined, intensity, _ = parse_ras(ras([_rows(tt[half:], y[half:]), _rows(tt[:half], y[:half])]), "two.ras")
    np.testing.assert_allclose(joined, tt, atol=1e-4)
    np.testing.assert_allclose(intensity, y, rtol=1e-4, atol=1e-3)
    with pytest.raises(PatternError, match="2 scans over overlapping 2θ ranges"):
        parse_ras(ras([_rows(tt, y), _rows(tt, y)]), "pole.ras")
    with pytest.raises(PatternError, match="different settings"):  # counts at different steps: no common scale
        parse_ras(ras([_rows(tt[:half], y[:half]), _rows(tt[half::2], y[half::2])], unit_y="counts"), "mixed.ras")


@pytest.mark.parametrize("data,message", [
    (b"2theta intensity\n10 5\n", "not a Rigaku RAS file"),
    (ras([[(10.0, 5.0, 1.0), (10.02, 6.0, 1.0)]], axis="Omega"), "scan axis is 'Omega'"),
    (ras([[(10.0, 5.0, 1.0), (10.02, 6.0, 1.0)]]).replace(b"*RAS_INT_END", b"10.04 abc 1"), "not numeric"),
    (ras([[(10.0, 5.0, 1.0), (10.02, 6.0, 1.0)]]).split(b"*RAS_INT_END")[0], "truncated"),
    (ras([[(10.0, 5.0, 1.0), (10.02, 6.0, 1.0)]]).replace(b'UNIT_X "deg"', b'UNIT_X "mm"'), "not degrees"),
])
def test_what_is_not_a_ras_powder_scan_is_named(data, message):
    with pytest.raises(PatternError, match=message):
        parse_ras(data, "scan.ras")


UXD_HEADER = """; Bruker UXD export
_FILEVERSION=1
_SAMPLE='Si'
_WL1=1.540600
_WL2=1.544390
_WLRATIO=0.500000
"""


def uxd_counts(ranges, drive="COUPLED", per_line=8) -> bytes:
    """A UXD file of ``ranges`` ((start, step, counts, step time)) in the intensities-only layout."""
    text = UXD_HEADER
    for number, (start, step, counts, step_time) in enumerate(ranges, start=1):
        text += (f"; (Data for Range number {number})\n_DRIVE='{drive}'\n_STEPTIME={step_time}\n_STEPSIZE={step}\n"
                 f"_START={start}\n_2THETA={start}\n_THETA={start / 2}\n_STEPCOUNT={len(counts)}\n_COUNTS\n")
        for i in range(0, len(counts), per_line):
            text += "  ".join(f"{c:.3f}" for c in counts[i:i + per_line]) + "\n"
    return text.encode()


def test_a_uxd_range_reads_the_same_in_both_layouts_with_its_wavelength(silicon, tmp_path):
    tt, y = silicon
    step = float(tt[1] - tt[0])
    path = tmp_path / "Si.uxd"
    path.write_bytes(uxd_counts([(tt[0], step, y, 1.0)]))
    pattern = read_pattern(path)
    np.testing.assert_allclose(pattern.two_theta_deg, tt, atol=1e-6)
    np.testing.assert_allclose(pattern.intensity, y, rtol=1e-4, atol=1e-3)
    assert pattern.wavelength_angstrom == pytest.approx(kalpha_wavelength_angstrom(1.5406, 1.54439, 0.5))
    paired = UXD_HEADER + "_DRIVE='COUPLED'\n_2THETACPS\n" + "".join(f"{a:.4f} {b:.3f}\n" for a, b in zip(tt, y))
    two_theta, intensity, _ = parse_uxd(paired.encode(), "paired.uxd")
    np.testing.assert_allclose(two_theta, tt, atol=1e-4)
    np.testing.assert_allclose(intensity, y, rtol=1e-4, atol=1e-3)
    timed = UXD_HEADER + "_2THETACOUNTSTIME\n" + "".join(f"{a:.4f} {2.5 * b:.3f} 2.5\n" for a, b in zip(tt, y))
    two_theta, intensity, _ = parse_uxd(timed.encode(), "timed.uxd")  # counts over 2.5 s a point: back to cps
    np.testing.assert_allclose(two_theta, tt, atol=1e-4)
    np.testing.assert_allclose(intensity, y, rtol=1e-4, atol=1e-3)


def test_uxd_ranges_with_different_counting_times_join_in_counts_per_second(silicon):
    tt, y = silicon
    step, half = float(tt[1] - tt[0]), len(tt) // 2
    two_theta, intensity, _ = parse_uxd(uxd_counts([(tt[0], step, y[:half], 1.0),
                                                    (tt[half], step, 4.0 * y[half:], 4.0)]), "two.uxd")
    np.testing.assert_allclose(two_theta, tt, atol=1e-6)
    np.testing.assert_allclose(intensity, y, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("data,message", [
    (uxd_counts([(10.0, 0.02, [1.0, 2.0, 3.0], 1.0)], drive="THETA"), "drive is 'THETA'"),
    (uxd_counts([(10.0, 0.02, [1.0, 2.0, 3.0], 1.0)] * 3), "3 scans over overlapping 2θ ranges"),
    (UXD_HEADER.encode(), "no data block"),
    (b"10 5\n10.02 6\n", "neither a _KEY=value line nor data"),
    ((UXD_HEADER + "_2THETACOUNTS\n10 5\n10.02\n").encode(), "does not divide by 2"),
    ((UXD_HEADER + "_2THETACOUNTSTIME\n10 5 1\n10.02 6 0\n").encode(), "counting time that is not positive"),
    ((UXD_HEADER + "_COUNTS\n5 6 7\n").encode(), "no _START and positive _STEPSIZE"),
])
def test_what_is_not_a_uxd_powder_scan_is_named(data, message):
    with pytest.raises(PatternError, match=message):
        parse_uxd(data, "scan.uxd")


def raw_data_xml(two_theta, counts, start, stop, increment, wavelength=True) -> str:
    data = "\n".join(f"<Datum>1,1,{a:.4f},{a / 2:.4f},{c:.3f}</Datum>" for a, c in zip(two_theta, counts))
    tube = ('<Tube><WaveLengthAlpha1 Value="1.5406" Unit="Angstrom" /><WaveLengthAlpha2 Value="1.54439" />'
            '<WaveLengthRatio Value="0.5" /></Tube>') if wavelength else ""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<RawData xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <DataRoutes><DataRoute RouteFlag="Final">
    <ScanInformation ScanName="Coupled TwoTheta/Theta">
      <ScanAxes>
        <ScanAxisInfo AxisId="TwoTheta" AxisName="2Theta"><Start>{start}</Start><Stop>{stop}</Stop>
          <Increment>{increment}</Increment></ScanAxisInfo>
        <ScanAxisInfo AxisId="Theta" AxisName="Theta"><Start>{start / 2}</Start><Stop>{stop / 2}</Stop>
          <Increment>{increment / 2}</Increment></ScanAxisInfo>
      </ScanAxes>
    </ScanInformation>
    {data}
  </DataRoute></DataRoutes>
  <FixedInformation><Instrument>{tube}</Instrument></FixedInformation>
</RawData>"""


def brml(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("experimentCollection.xml", "<ExperimentCollection />")
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def test_a_brml_scan_reads_as_its_pattern_with_its_wavelength(silicon, tmp_path):
    tt, y = silicon
    step = float(tt[1] - tt[0])
    path = tmp_path / "Si.brml"
    path.write_bytes(brml({"Experiment0/RawData0.xml": raw_data_xml(tt, y, tt[0], tt[-1], step)}))
    assert input_kind(path) == "pattern"
    pattern = read_pattern(path)
    np.testing.assert_allclose(pattern.two_theta_deg, tt, atol=1e-4)
    np.testing.assert_allclose(pattern.intensity, y, rtol=1e-4, atol=1e-3)
    assert pattern.wavelength_angstrom == pytest.approx(kalpha_wavelength_angstrom(1.5406, 1.54439, 0.5))
    rocking = raw_data_xml(tt, y, 28.44, 28.44, 0.0)  # 2θ held still: a rocking curve, skipped for the 2θ scan
    two_theta, _, wavelength = parse_brml(brml({"Experiment0/RawData0.xml": rocking,
                                                "Experiment0/RawData1.xml": raw_data_xml(tt, y, tt[0], tt[-1], step,
                                                                                         wavelength=False)}))
    np.testing.assert_allclose(two_theta, tt, atol=1e-4)
    assert wavelength is None  # not recorded: the caller's default applies


def test_brml_points_without_a_two_theta_column_are_put_on_the_axis_grid(silicon):
    tt, y = silicon
    text = raw_data_xml(tt, y, tt[0], tt[-1], float(tt[1] - tt[0]))
    text = "\n".join(line if "<Datum>" not in line else "" for line in text.splitlines())
    text = text.replace("</DataRoute>", "".join(f"<Datum>1,{c:.3f}</Datum>" for c in y) + "</DataRoute>")
    two_theta, intensity, _ = parse_brml(brml({"Experiment0/RawData0.xml": text}))
    np.testing.assert_allclose(two_theta, tt, atol=1e-6)
    np.testing.assert_allclose(intensity, y, rtol=1e-4, atol=1e-3)


def _bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("Experiment0/RawData0.xml", b" " * (MAX_BRML_MEMBER_BYTES + 1))
    return buffer.getvalue()


@pytest.mark.parametrize("data,message", [
    (b"not a zip", "not a readable BRML file"),
    (brml({"Experiment0/Other.xml": "<a/>"}), "no RawData"),
    (brml({"Experiment0/RawData0.xml": "<RawData><unclosed></RawData>"}), "not readable XML"),
    (brml({"Experiment0/RawData0.xml": raw_data_xml([10.0, 10.1], [1, 2], 10.0, 10.0, 0.0)}), "no scan over 2θ"),
    (brml({"Experiment0/RawData0.xml": raw_data_xml([10.0, 10.1], [1, 2], 10.0, 10.1, 0.1).replace(
        "<Datum>1,1,10.1000", "<Datum>1,x,10.1000")}), "not comma-separated numbers"),
    (brml({"Experiment0/RawData0.xml": raw_data_xml([10.0, 10.1], [1, 2], 20.0, 30.0, 0.1)}),
     "no Datum column runs over the 2θ axis"),
    (_bomb(), "would unpack to"),
])
def test_what_is_not_a_brml_powder_scan_is_named(data, message):
    with pytest.raises(PatternError, match=message):
        parse_brml(data, "scan.brml")
