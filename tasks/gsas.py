"""GSAS powder data files (``.gsa``, ``.gss``, ``.gsas``, ``.fxye``, text ``.raw``): the constant-wavelength 2θ scan.

The layout is GSAS's (Larson & Von Dreele, GSAS manual, "powder data file"), which GSAS-II and the APS 11-BM
mail-in service also write. A title line, optional ``#`` comment lines, then one block per histogram opened by

    BANK IBANK NCHAN NREC BINTYP BCOEF1 BCOEF2 BCOEF3 BCOEF4 TYPE

``BINTYP CONS`` is a constant-step 2θ scan starting at ``BCOEF1`` with step ``BCOEF2``, both in centidegrees;
time-of-flight banks (``TIME_MAP``, ``RALF``, ``SLOG``) are neutron data and refused. ``TYPE`` says how the
points are written:

- ``STD`` (the default): ten 8-column fields per line, each an ``I2`` counter count (blank = 1) and an ``F6.0``
  intensity; the intensity read is the field's divided by its counters. Fields are fixed-width and may touch;
- ``ESD``: five (intensity, esd) pairs of ``F8.0`` per line;
- ``FXYE``: one point per line, 2θ (centidegrees), intensity and esd, free format.

GSAS's ``ALT`` layout (mostly for time of flight) is refused by name. Several CONS banks of one file join when
their 2θ ranges lie side by side (``tasks.scans.join_scan_ranges``). The data file does not record the
wavelength, which lives in GSAS's instrument parameter file; one written in a comment or the title
(``# wavelength = 0.4138 A``) is read, and otherwise ``tasks.readers`` asks for it instead of assuming Cu Kα.

No package on PyPI reads the format without GSAS-II itself (xylib-py is a C++ build with no wheels), so it is
read here. A ``.raw`` file may also be a Bruker binary RAW, which is recognised by its first bytes and refused
with what to export instead.
"""

from __future__ import annotations

import re

import numpy as np

from tasks.patterns import PatternError
from tasks.scans import ScanRange, join_scan_ranges

CENTIDEGREES = 100.0
_BANK = re.compile(r"^BANK\s", re.IGNORECASE)
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_WAVELENGTH = re.compile(rf"(?:wave\s*length|lambda|lam)\s*(?:\(\s*(?:a|å|angstrom)\s*\))?\s*[=:]?\s*({_NUMBER})",
                         re.IGNORECASE)
TOF_BINTYPES = ("TIME_MAP", "RALF", "SLOG", "TIME")
BRUKER_RAW_MAGIC = (b"RAW1.01", b"RAW2", b"RAW4.00", b"RAW ")


def _wavelength_angstrom(lines: list[str]) -> float | None:
    for line in lines:
        match = _WAVELENGTH.search(line)
        if match and 0.1 < float(match.group(1)) < 5.0:
            return float(match.group(1))
    return None


def _fixed_fields(line: str, width: int) -> list[str]:
    line = line.rstrip("\r\n")
    return [line[i:i + width] for i in range(0, len(line), width) if line[i:i + width].strip()]


def _number(text: str, what: str, source: str, line_number: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise PatternError(f"{source}: line {line_number} has {text.strip()!r} where {what} should be") from None
    if not np.isfinite(value):
        raise PatternError(f"{source}: line {line_number} has a {what} that is not a finite number")
    return value


def _points(kind: str, body: list[tuple[int, str]], n_points: int, source: str) -> tuple[list[float], list[float]]:
    """(x in centidegrees or empty where the layout has none, intensities) of one bank's lines."""
    x: list[float] = []
    y: list[float] = []
    for number, line in body:
        if len(y) >= n_points:
            break
        if kind == "STD":
            for field in _fixed_fields(line, 8):
                counters = field[:2].strip()
                n_counters = int(counters) if counters.isdigit() and int(counters) > 0 else 1
                y.append(_number(field[2:], "an intensity", source, number) / n_counters)
        elif kind == "ESD":
            fields = _fixed_fields(line, 8)
            y += [_number(field, "an intensity", source, number) for field in fields[0::2]]
        else:  # FXYE
            values = line.split()
            if len(values) < 2:
                raise PatternError(f"{source}: line {number} holds {len(values)} number(s) where an FXYE point "
                                   "has 2θ, intensity and esd")
            x.append(_number(values[0], "a 2θ value (centidegrees)", source, number))
            y.append(_number(values[1], "an intensity", source, number))
    return x, y[:n_points]


def _bank(header: str, header_number: int, body: list[tuple[int, str]], source: str) -> ScanRange:
    words = header.split()
    if len(words) < 5:
        raise PatternError(f"{source}: line {header_number} is a BANK line without its channel count and binning "
                           "(BANK IBANK NCHAN NREC BINTYP ...)")
    bintyp = words[4].upper()
    if bintyp in TOF_BINTYPES:
        raise PatternError(f"{source}: bank {words[1]} is binned {bintyp}, time-of-flight neutron data, not a "
                           "constant-wavelength 2θ scan")
    if bintyp != "CONS":
        raise PatternError(f"{source}: bank {words[1]} has binning {bintyp!r}; only CONS (a constant 2θ step) is "
                           "read")
    kind = words[9].upper() if len(words) > 9 else "STD"
    if kind not in ("STD", "ESD", "FXYE"):
        raise PatternError(f"{source}: bank {words[1]} is written as {kind!r}; STD, ESD and FXYE are read (export "
                           "the histogram from GSAS-II as FXYE or as a two-column .xy file)")
    n_points = int(_number(words[2], "the number of channels", source, header_number))
    if len(words) < 7:
        raise PatternError(f"{source}: line {header_number} gives no start and step for its CONS bank")
    start = _number(words[5], "the start (centidegrees)", source, header_number)
    step = _number(words[6], "the step (centidegrees)", source, header_number)
    x, y = _points(kind, body, n_points, source)
    if len(y) < n_points:
        raise PatternError(f"{source}: bank {words[1]} announces {n_points} points and holds {len(y)}: the file is "
                           "cut short")
    two_theta = (np.asarray(x) if x else start + step * np.arange(n_points)) / CENTIDEGREES
    return ScanRange(two_theta, np.asarray(y, dtype=float), None, (kind, step))


def parse_gsas(data: bytes, source: str = "") -> tuple[np.ndarray, np.ndarray, float | None]:
    """``(two_theta_deg, intensity, wavelength_angstrom or None)`` of the constant-wavelength banks of a GSAS
    powder data file."""
    source = source or "the GSAS file"
    if data.startswith(BRUKER_RAW_MAGIC):
        raise PatternError(f"{source} is a Bruker binary RAW file, which is not read: export it from DIFFRAC.EVA "
                           "as .brml, .uxd or a two-column .xy file")
    if b"\x00" in data[:4096]:
        raise PatternError(f"{source} is a binary file, not a GSAS powder data file")
    lines = data.decode("latin-1").splitlines()
    starts = [i for i, line in enumerate(lines) if _BANK.match(line.strip())]
    if not starts:
        raise PatternError(f"{source} is not a GSAS powder data file: it has no BANK line before the data")
    ranges = []
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        body = [(i + 1, lines[i]) for i in range(start + 1, end)
                if lines[i].strip() and not lines[i].lstrip().startswith("#")]
        ranges.append(_bank(lines[start].strip(), start + 1, body, source))
    header_lines = lines[:starts[0]] + [line for line in lines if line.lstrip().startswith("#")]
    two_theta, intensity = join_scan_ranges(ranges, source)
    return two_theta, intensity, _wavelength_angstrom(header_lines)
