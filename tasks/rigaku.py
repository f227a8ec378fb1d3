"""Rigaku RAS files (SmartLab, MiniFlex, Ultima): the 2θ scan, its intensities and the tube's wavelength.

A RAS file is text between ``*RAS_DATA_START`` and ``*RAS_DATA_END`` holding one block per scan: a header of
``*KEY "value"`` lines (``*RAS_HEADER_START`` ... ``*RAS_HEADER_END``) and the points (``*RAS_INT_START`` ...
``*RAS_INT_END``), one per line as ``angle intensity [attenuator factor]``. The measured intensity is the second
number times the third (the factor undoes the attenuator that was in the beam at that point). The scanned axis is
``MEAS_SCAN_AXIS_X`` (``TwoThetaTheta``, ``2-Theta/Omega``, ``TwoThetaChiPhi`` for in-plane scans; ``Omega`` or
``Phi`` is a rocking curve or a phi scan, not a powder pattern), the tube lines ``HW_XG_WAVE_LENGTH_ALPHA1`` and
``..._ALPHA2`` in Å. Several scans in one file are joined when they are side-by-side 2θ ranges
(``tasks.scans.join_scan_ranges``).

No Python package on PyPI reads the format (xylib-py, which reads Rigaku's older binary ``.dat``, is a C++ build
with no wheels), so it is read here. Headers may hold Shift-JIS sample names; only ASCII is interpreted, so the file
is decoded as Latin-1, which cannot fail.
"""

from __future__ import annotations

import re

import numpy as np

from tasks.patterns import PatternError
from tasks.scans import ScanRange, header_number, join_scan_ranges, kalpha_wavelength_angstrom

_HEADER = re.compile(r'^\*(\w+)\s*(?:"(.*)"|(.*))$')


def _is_two_theta_axis(axis: str) -> bool:
    name = re.sub(r"[^a-z0-9]", "", axis.lower())
    return "2theta" in name or "twotheta" in name


def _scan_range(header: dict[str, str], rows: list[list[float]], index: int, source: str) -> ScanRange | None:
    axis = header.get("MEAS_SCAN_AXIS_X_INTERNAL") or header.get("MEAS_SCAN_AXIS_X") or ""
    if axis and not _is_two_theta_axis(axis):
        return None
    unit_x = header.get("MEAS_SCAN_UNIT_X", "deg").strip().lower()
    if unit_x not in ("deg", "degree", "degrees", "°", ""):
        raise PatternError(f"{source}: scan {index} is measured in {unit_x!r}, not degrees 2θ")
    widths = {len(row) for row in rows}
    if not rows or not widths <= {2, 3}:
        raise PatternError(f"{source}: scan {index} should list 'angle intensity [attenuator factor]' per line")
    two_theta = np.array([row[0] for row in rows])
    intensity = np.array([row[1] * (row[2] if len(row) == 3 else 1.0) for row in rows])
    unit_y = header.get("MEAS_SCAN_UNIT_Y", "").strip().lower()
    step, speed = header_number(header, "MEAS_SCAN_STEP"), header_number(header, "MEAS_SCAN_SPEED")
    return ScanRange(two_theta, intensity, rate_scale=1.0 if unit_y == "cps" else None,
                     settings=(unit_y, step, speed, header.get("MEAS_SCAN_MODE", "")))


def parse_ras(data: bytes, source: str = "") -> tuple[np.ndarray, np.ndarray, float | None]:
    """``(two_theta_deg, intensity, wavelength_angstrom or None)`` of the 2θ scans in a Rigaku RAS file."""
    source = source or "the RAS file"
    text = data.decode("latin-1")
    if "*RAS_INT_START" not in text.upper():
        raise PatternError(f"{source} is not a Rigaku RAS file: it has no *RAS_INT_START line before the data")
    header: dict[str, str] = {}
    first_header: dict[str, str] | None = None
    rows: list[list[float]] | None = None
    ranges: list[ScanRange] = []
    other_axes: list[str] = []
    scans = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        upper = line.upper()
        if upper == "*RAS_HEADER_START":
            header = {}
        elif upper == "*RAS_INT_START":
            rows = []
        elif upper == "*RAS_INT_END":
            if rows is None:
                raise PatternError(f"{source}: line {number} ends a scan that never started (*RAS_INT_START)")
            scans += 1
            scan = _scan_range(header, rows, scans, source)
            if scan is None:
                other_axes.append(header.get("MEAS_SCAN_AXIS_X") or header.get("MEAS_SCAN_AXIS_X_INTERNAL", ""))
            else:
                ranges.append(scan)
                first_header = first_header if first_header is not None else header
            rows = None
        elif rows is not None:
            try:
                rows.append([float(part) for part in line.replace(",", " ").split()])
            except ValueError:
                raise PatternError(f"{source}: line {number} ({line[:40]!r}) inside a scan is not numeric") from None
        elif line.startswith("*"):
            match = _HEADER.match(line)
            if match:
                header[match.group(1).upper()] = (match.group(2) if match.group(2) is not None
                                                  else match.group(3)).strip()
    if rows is not None:
        raise PatternError(f"{source} ends inside a scan (no *RAS_INT_END): the file is truncated")
    two_theta, intensity = join_scan_ranges(ranges, source, other_axes, "scan axis")
    tube = first_header or {}
    return two_theta, intensity, kalpha_wavelength_angstrom(header_number(tube, "HW_XG_WAVE_LENGTH_ALPHA1"),
                                                            header_number(tube, "HW_XG_WAVE_LENGTH_ALPHA2"))
