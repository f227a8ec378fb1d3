"""GSAS powder data files: the STD, ESD and FXYE layouts read as the pattern they were written from, side-by-side
banks join, the wavelength is read where a comment gives it and asked for where nothing does, and what is not a
constant-wavelength scan is refused by name.

No GSAS file could be shipped, so the files are written here as the GSAS manual lays them out (tasks/gsas.py).
"""

from pathlib import Path

import numpy as np
import pytest

from tasks.gsas import parse_gsas
from tasks.patterns import PatternError
from tasks.readers import input_kind, read_pattern

EXAMPLES = Path(__file__).resolve().parents[2] / "tasks" / "examples"


@pytest.fixture(scope="module")
def silicon():
    pattern = read_pattern(EXAMPLES / "Si_diamond_CuKa.xy")
    return pattern.two_theta_deg, np.round(pattern.intensity)  # GSAS's F6.0 fields hold whole counts


def _bank_line(number, n, start_deg, step_deg, layout, n_records):
    return (f"BANK {number} {n} {n_records} CONS {start_deg * 100:.3f} {step_deg * 100:.4f} 0 0 {layout}"
            .ljust(80) + "\n")


def gsas_std(tt, y, counters=None, title="Si, written as GSAS STD", bank=1) -> str:
    """A GSAS file in the STD layout: ten I2,F6.0 fields per line (counters blank unless ``counters`` gives them)."""
    counters = np.ones(len(y), int) if counters is None else counters
    fields = [("  " if c == 1 else f"{c:2d}") + f"{v * c:5.0f}." for v, c in zip(y, counters)]
    lines = ["".join(fields[i:i + 10]).ljust(80) for i in range(0, len(fields), 10)]
    step = float(tt[1] - tt[0])
    return (title.ljust(80) + "\n" + _bank_line(bank, len(y), tt[0], step, "STD", len(lines))
            + "\n".join(lines) + "\n")


def gsas_esd(tt, y) -> str:
    fields = [f"{v:7.0f}.{np.sqrt(max(v, 1.0)):7.1f} " for v in y]
    lines = ["".join(fields[i:i + 5]).ljust(80) for i in range(0, len(fields), 5)]
    return ("Si, written as GSAS ESD".ljust(80) + "\n" + _bank_line(1, len(y), tt[0], float(tt[1] - tt[0]), "ESD",
                                                                    len(lines)) + "\n".join(lines) + "\n")


def gsas_fxye(tt, y, comments=()) -> str:
    header = "Si, written as GSAS FXYE\n" + "".join(f"# {c}\n" for c in comments)
    points = "".join(f"{a * 100:12.4f} {b:12.2f} {np.sqrt(max(b, 1.0)):10.3f}\n" for a, b in zip(tt, y))
    return header + _bank_line(1, len(y), tt[0], float(tt[1] - tt[0]), "FXYE", len(y)) + points


@pytest.mark.parametrize("layout", ["STD", "STD with counters", "ESD", "FXYE"])
def test_each_layout_reads_as_the_pattern_it_was_written_from(silicon, layout, tmp_path):
    tt, y = silicon
    if layout == "STD":
        text = gsas_std(tt, y)
    elif layout == "STD with counters":  # every third point summed over 2 counters: read per counter
        text = gsas_std(tt, y, counters=np.where(np.arange(len(y)) % 3 == 0, 2, 1))
    elif layout == "ESD":
        text = gsas_esd(tt, y)
    else:
        text = gsas_fxye(tt, y)
    path = tmp_path / "si.gsa"
    path.write_text(text)
    pattern = read_pattern(path, wavelength="CuKa")
    np.testing.assert_allclose(pattern.two_theta_deg, tt, atol=1e-6)
    np.testing.assert_allclose(pattern.intensity, y, atol=0.51)
    assert input_kind(path) == "pattern" and input_kind(tmp_path / "si.fxye") == "pattern"


def test_the_wavelength_comes_from_a_comment_or_is_asked_for(silicon, tmp_path):
    tt, y = silicon
    path = tmp_path / "11bm.fxye"
    path.write_text(gsas_fxye(tt, y, comments=["Calibrated wavelength = 0.41380 A", "Temperature 295 K"]))
    assert read_pattern(path).wavelength_angstrom == pytest.approx(0.4138)
    silent = tmp_path / "silent.gsa"
    silent.write_text(gsas_std(tt, y))
    with pytest.raises(PatternError, match="does not say its wavelength"):
        read_pattern(silent)  # no Cu Kα assumed: such files are often synchrotron data
    assert read_pattern(silent, wavelength=0.4138).wavelength_angstrom == pytest.approx(0.4138)


def test_side_by_side_banks_join(silicon):
    tt, y = silicon
    half = len(tt) // 2
    first = gsas_std(tt[:half], y[:half])
    second = gsas_std(tt[half:], y[half:], bank=2).split("\n", 1)[1]  # the second bank, without a title
    two_theta, intensity, wavelength = parse_gsas((first + second).encode(), "two.gsa")
    np.testing.assert_allclose(two_theta, tt, atol=1e-6)
    np.testing.assert_allclose(intensity, y, atol=0.51)
    assert wavelength is None


BANK = "BANK 1 20 2 CONS 1000.0 2.0 0 0 {}\n"


@pytest.mark.parametrize("data,message", [
    (b"title\n  1.0 2.0\n", "no BANK line"),
    (b"title\nBANK 1 20 2 TIME_MAP 1 2 0 0 STD\n", "time-of-flight"),
    (b"title\nBANK 1 20 2 LOG6 1 2 0 0 STD\n", "only CONS"),
    (("title\n" + BANK.format("ALT") + "1 2 3\n").encode(), "'ALT'"),
    (("title\n" + BANK.format("STD") + "     12.     13.\n").encode(), "announces 20 points and holds 2"),
    (("title\n" + BANK.format("STD") + "     12.    x13.\n" * 2).encode(), "line 3 has 'x13.'"),
    (b"title\nBANK 1\n", "without its channel count"),
    (b"RAW4.00\x00\x00\x01binary", "Bruker binary RAW"),
    (b"title\x00\x01\x02", "binary file"),
])
def test_what_is_not_a_constant_wavelength_gsas_scan_is_named(data, message):
    with pytest.raises(PatternError, match=message):
        parse_gsas(data, "scan.raw")
