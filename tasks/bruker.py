"""Bruker pattern files: UXD text exports and BRML archives (DIFFRAC.SUITE), read to 2θ, intensity and wavelength.

UXD: ``;`` comments and ``_KEY=value`` lines, then one block per range opened by a data marker that says what its
lines hold: ``_COUNTS`` / ``_CPS`` (intensities only, several per line allowed, on the grid ``_START`` +
i ``_STEPSIZE``), ``_2THETACOUNTS`` / ``_2THETACPS`` (angle and intensity pairs) or ``_2THETACOUNTSTIME`` (angle,
counts and counting time, read as counts per second). ``_DRIVE`` names the scanned
axis: ``COUPLED`` (θ-2θ) or ``2THETA`` is a powder pattern; ``THETA``, ``OMEGA``, ``PHI``, ``CHI`` and the like are
rocking curves and texture scans, whatever the marker says. The tube lines are ``_WL1``, ``_WL2`` and ``_WLRATIO``.

BRML: a zip archive whose ``Experiment*/RawData*.xml`` files each hold a measurement: ``ScanAxisInfo`` elements
(the ``TwoTheta`` axis with ``Start``, ``Stop`` and ``Increment``), one ``Datum`` element per point with
comma-separated values whose last is the counts, and the tube's ``WaveLengthAlpha1``, ``WaveLengthAlpha2`` and
``WaveLengthRatio`` (value in a ``Value`` attribute). Which ``Datum`` column holds 2θ varies with the instrument
software, so the column that runs from the axis's start to its stop is taken; where none does, the points are put
on the axis's own grid if their number matches it.

Neither format has a maintained reader on PyPI that installs without a C++ build (xylib-py ships sources only),
so both are read here. The XML is parsed with defusedxml and the archive's members are size-checked before they are
read: an uploaded BRML is untrusted.
"""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np

from tasks.patterns import PatternError
from tasks.scans import ScanRange, header_number, join_scan_ranges, kalpha_wavelength_angstrom, local_name

POWDER_DRIVES = ("COUPLED", "2THETA", "TWOTHETA", "DETECTOR", "2THETA/THETA", "THETA/2THETA")
# data marker -> numbers per point: intensity only; 2θ and intensity; 2θ, counts and the point's counting time
_UXD_MARKERS = {"_COUNTS": 1, "_CPS": 1, "_2THETACOUNTS": 2, "_2THETACPS": 2, "_2THETACOUNTSTIME": 3}
MAX_BRML_MEMBER_BYTES = 256 * 2**20  # an uncompressed RawData file larger than this is refused (zip bombs)
_KEY = re.compile(r"^_([A-Z0-9_\-]+)\s*=\s*(.*)$", re.IGNORECASE)


def _value(text: str) -> str:
    return text.strip().strip("'\"").strip()


def _uxd_range(header: dict[str, str], columns: int, cps: bool, numbers: list[float], index: int,
               source: str) -> ScanRange | None:
    drive = header.get("DRIVE", "COUPLED").upper().replace(" ", "")
    if drive not in POWDER_DRIVES:
        return None
    if columns > 1:
        if len(numbers) % columns:
            what = "2θ and intensity pairs" if columns == 2 else "2θ, counts and counting time per point"
            raise PatternError(f"{source}: range {index} lists {what} but its count of numbers does not divide "
                               f"by {columns}")
        table = np.asarray(numbers, dtype=float).reshape(-1, columns)
        two_theta, intensity = table[:, 0], table[:, 1]
        if columns == 3:
            if np.any(table[:, 2] <= 0):
                raise PatternError(f"{source}: range {index} has a counting time that is not positive")
            intensity, cps = intensity / table[:, 2], True  # counts per second, point by point
    else:
        start = header_number(header, "START")
        start = header_number(header, "2THETA") if start is None else start
        step = header_number(header, "STEPSIZE")
        if start is None or step is None or not step > 0:
            raise PatternError(f"{source}: range {index} lists intensities only but has no _START and positive "
                               "_STEPSIZE to place them in 2θ")
        intensity = np.asarray(numbers, dtype=float)
        two_theta = start + step * np.arange(len(intensity))
    step_time = header_number(header, "STEPTIME")
    rate_scale = 1.0 if cps else (1.0 / step_time if step_time and step_time > 0 else None)
    settings = (cps, step_time, header_number(header, "STEPSIZE"))
    return ScanRange(two_theta, intensity, rate_scale, settings=settings)


def parse_uxd(data: bytes, source: str = "") -> tuple[np.ndarray, np.ndarray, float | None]:
    """``(two_theta_deg, intensity, wavelength_angstrom or None)`` of the 2θ ranges of a Bruker UXD file."""
    source = source or "the UXD file"
    header: dict[str, str] = {}
    block: tuple[dict[str, str], bool, bool] | None = None
    numbers: list[float] = []
    ranges: list[ScanRange] = []
    drives: list[str] = []

    def close() -> None:
        if block is None:
            return
        scan = _uxd_range(block[0], block[1], block[2], numbers, len(ranges) + len(drives) + 1, source)
        if scan is None:
            drives.append(block[0].get("DRIVE", ""))
        elif len(scan.intensity):
            ranges.append(scan)

    for number, raw in enumerate(data.decode("latin-1").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        marker = line.upper().split("=")[0].strip()
        if marker in _UXD_MARKERS:
            close()
            block, numbers = (dict(header), _UXD_MARKERS[marker], "CPS" in marker), []
        elif line.startswith("_"):
            if block is not None:
                close()
                block, numbers = None, []
            match = _KEY.match(line)
            if match:
                header[match.group(1).upper()] = _value(match.group(2))
        elif block is not None:
            try:
                numbers.extend(float(part) for part in line.replace(",", " ").split())
            except ValueError:
                raise PatternError(f"{source}: line {number} ({line[:40]!r}) in a data block is not numeric") from None
        else:
            raise PatternError(f"{source}: line {number} ({line[:40]!r}) is neither a _KEY=value line nor data "
                               "after a _COUNTS, _CPS, _2THETACOUNTS or _2THETACPS marker: is this a UXD file?")
    close()
    two_theta, intensity = join_scan_ranges(
        ranges, source, drives, "drive", hint=" (no data block opened by _COUNTS, _CPS, _2THETACOUNTS or _2THETACPS)")
    wavelength = kalpha_wavelength_angstrom(*(header_number(header, key) for key in ("WL1", "WL2", "WLRATIO")))
    return two_theta, intensity, wavelength


def _element_number(element) -> float | None:
    text = element.get("Value") if element.get("Value") is not None else element.text
    try:
        number = float(text)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _first_number(root, name: str) -> float | None:
    for element in root.iter():
        if local_name(element.tag) == name:
            number = _element_number(element)
            if number is not None:
                return number
    return None


def _two_theta_axis(root) -> tuple[float, float, float] | None:
    """``(start, stop, increment)`` of the scanned 2θ axis of a RawData file, or None if 2θ was not scanned."""
    for info in root.iter():
        if local_name(info.tag) != "ScanAxisInfo":
            continue
        name = re.sub(r"[^a-z0-9]", "", (info.get("AxisId") or info.get("AxisName") or "").lower())
        if name not in ("twotheta", "2theta"):
            continue
        values = {local_name(child.tag): _element_number(child) for child in info}
        start, stop, increment = values.get("Start"), values.get("Stop"), values.get("Increment")
        if start is not None and stop is not None and stop != start:
            return start, stop, increment if increment else (stop - start)
    return None


def _brml_range(root, source: str) -> ScanRange | None:
    axis = _two_theta_axis(root)
    if axis is None:
        return None
    start, stop, increment = axis
    rows = []
    for datum in root.iter():
        if local_name(datum.tag) == "Datum":
            try:
                rows.append([float(part) for part in (datum.text or "").split(",")])
            except ValueError:
                raise PatternError(f"{source}: a Datum of the BRML scan is not comma-separated numbers") from None
    if not rows or len({len(row) for row in rows}) != 1 or len(rows[0]) < 2:
        raise PatternError(f"{source}: the BRML scan's Datum elements do not share one layout of two or more numbers")
    table = np.asarray(rows)
    intensity = table[:, -1]
    tolerance = max(abs(increment) * 0.51, 1e-3)
    for column in range(table.shape[1] - 1):
        values = table[:, column]
        if abs(values[0] - start) <= tolerance and abs(values[-1] - stop) <= tolerance:
            return ScanRange(values, intensity)
    expected = int(round((stop - start) / increment)) + 1 if increment else 0
    if expected == len(table):
        return ScanRange(np.linspace(start, stop, expected), intensity)
    raise PatternError(f"{source}: no Datum column runs over the 2θ axis ({start:g}-{stop:g}°) and the "
                       f"{len(table)} points do not fill its grid of {expected}")


def parse_brml(data: bytes, source: str = "") -> tuple[np.ndarray, np.ndarray, float | None]:
    """``(two_theta_deg, intensity, wavelength_angstrom or None)`` of the first 2θ scan of a Bruker BRML archive."""
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import ParseError, fromstring

    source = source or "the BRML file"
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise PatternError(f"{source} is not a readable BRML file (BRML is a zip archive)") from None
    with archive:
        members = sorted((info for info in archive.infolist()
                          if re.search(r"(^|/)RawData\d*\.xml$", info.filename, re.IGNORECASE)),
                         key=lambda info: [int(n) for n in re.findall(r"\d+", info.filename)])
        if not members:
            raise PatternError(f"{source} holds no RawData*.xml measurement: is it a BRML file?")
        for info in members:
            if info.file_size > MAX_BRML_MEMBER_BYTES:
                raise PatternError(f"{source}: {info.filename} would unpack to {info.file_size} bytes; at most "
                                   f"{MAX_BRML_MEMBER_BYTES} are read")
            try:
                root = fromstring(archive.read(info))
            except (ParseError, DefusedXmlException, zipfile.BadZipFile, RuntimeError) as exc:
                raise PatternError(f"{source}: {info.filename} is not readable XML: {exc}") from None
            scan = _brml_range(root, f"{source} ({info.filename})")
            if scan is None:
                continue
            lines = ("WaveLengthAlpha1", "WaveLengthAlpha2", "WaveLengthRatio")
            wavelength = kalpha_wavelength_angstrom(*(_first_number(root, name) for name in lines))
            return scan.two_theta_deg, scan.intensity, wavelength
    raise PatternError(f"{source} holds no scan over 2θ (a rocking curve or texture measurement is not a powder "
                       "pattern)")
