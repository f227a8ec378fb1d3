"""Readers for the files a crystallographer has: powder patterns, CIF/POSCAR structures, formula strings.

Every reader validates once and raises an error whose message names the file and the problem.
"""

from __future__ import annotations

import importlib
import re
import warnings
from pathlib import Path

import numpy as np
from pymatgen.core import Composition, Element, Structure

from tasks.patterns import PatternError, PowderPattern, two_theta_from_axis, validate_pattern
from tasks.xrd import resolve_wavelength

#: GSAS powder data files, which do not record the wavelength: no Cu Kα is assumed for them (tasks.gsas)
WAVELENGTH_REQUIRED_SUFFIXES = (".gsa", ".gss", ".gsas", ".fxye", ".raw")
_VENDOR_READERS = {  # suffix -> (module, function) of the instrument formats, imported when first needed
    ".xrdml": ("tasks.xrdml", "parse_xrdml"),
    ".ras": ("tasks.rigaku", "parse_ras"),
    ".uxd": ("tasks.bruker", "parse_uxd"),
    ".brml": ("tasks.bruker", "parse_brml"),
    **dict.fromkeys(WAVELENGTH_REQUIRED_SUFFIXES, ("tasks.gsas", "parse_gsas")),
}
PATTERN_SUFFIXES = {".xy", ".xye", ".csv", ".txt", ".dat", ".asc", *_VENDOR_READERS}
STRUCTURE_SUFFIXES = {".cif", ".vasp", ".poscar"}
_SEPARATORS = re.compile(r"[,;\t ]+")
MIN_OVERFLOW_DIGITS = 4  # an intensity that runs into the 2θ column has at least this many digits
_WAVELENGTH_HEADER = re.compile(
    r"wave\s*length\s*(?:[(\[]\s*(?P<bracketed>[a-zåÅ]+)\s*[)\]])?\s*[=:]?\s*"
    r"(?P<value>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?P<unit>nm|pm|m|Å|A|angstroms?)?(?![a-z])",
    re.IGNORECASE,
)
_TO_ANGSTROM = {"m": 1e10, "nm": 10.0, "pm": 0.01}
# The first column's label in a header line, and the unit it means (pyFAI's and Dioptas' "2th_deg", "q_nm^-1",
# "q_A^-1", "d*2_A^-2"; "Q (1/A)", "d-spacing (Å)" and the like from other integration programs).
_AXIS_LABELS = (
    (re.compile(r"^(2[\s_-]*th|2θ|two[\s_-]*theta|tth)", re.IGNORECASE), "2theta"),
    (re.compile(r"^d\s*\*\s*\^?\s*2", re.IGNORECASE), "dstar2"),
    (re.compile(r"^q(?=$|[\s(\[_/-])", re.IGNORECASE), "q"),
    (re.compile(r"^d(?=$|[\s(\[_/-])|^d[\s_-]*spacing", re.IGNORECASE), "d"),  # not "D8 Advance"
    (re.compile(r"^(r_mm|chi(?=$|[\s(\[_/-])|χ|azimuth)", re.IGNORECASE), "other"),
)


def _header_wavelength_angstrom(line: str) -> float | None:
    """A wavelength in Å from a header line (``wavelength=1.5406``, pyFAI's ``Wavelength: 1.0e-10 m``,
    ``wavelength (nm): 0.15406``), or None; a bare number below 1e-6 is in metres, as pyFAI writes it."""
    match = _WAVELENGTH_HEADER.search(line)
    if not match:
        return None
    value = float(match.group("value"))
    unit = (match.group("unit") or match.group("bracketed") or "").lower()
    if unit in _TO_ANGSTROM:
        return value * _TO_ANGSTROM[unit]
    return value * 1e10 if value < 1e-6 else value


def _axis_unit(label_line: str, source: str) -> str:
    """The unit of the first column (``tasks.patterns.X_AXIS_UNITS``) named by the header line just above the
    numbers; 2θ in degrees where it names none."""
    text = label_line.lstrip("#!;'\" \t")
    label = re.split(r"[,;\t]|\s{2,}", text.strip())[0].strip() if text.strip() else ""
    for pattern, kind in _AXIS_LABELS:
        if not pattern.search(label):
            continue
        per_nm = bool(re.search(r"nm", label, re.IGNORECASE))
        if kind == "2theta":
            return "2theta_rad" if re.search(r"rad", label, re.IGNORECASE) else "2theta_deg"
        if kind == "q":
            return "q_inv_nm" if per_nm else "q_inv_angstrom"
        if kind == "dstar2":
            return "dstar2_inv_nm2" if per_nm else "dstar2_inv_angstrom2"
        if kind == "d":
            return "d_nm" if per_nm else "d_angstrom"
        where = f" in {source}" if source else ""
        raise PatternError(f"the first column{where} is {label!r}, not 2θ, Q or d: integrate the image over 2θ or Q "
                           "to get a powder pattern")
    return "2theta_deg"


class StructureError(ValueError):
    """A structure file that cannot be used, with the reason in words."""


class FormulaError(ValueError):
    """A chemical formula that cannot be used, with the reason in words."""


def _numbers(line: str) -> list[float] | None:
    parts = [p for p in _SEPARATORS.split(line.strip()) if p]
    if not parts:
        return None
    try:
        return [float(p) for p in parts]
    except ValueError:
        return None


def _split_overflowed_columns(rows: list[list[float]], texts: list[str]) -> tuple[list[list[float]] | None, int]:
    """Repair fixed-width files whose large intensities ran into the 2θ column ("14.168110228" for 14.1681 and
    10228): ``(rows, -1)``, or ``(None, i)`` when line ``i`` (or the file's 2θ column, ``i = -1``) does not allow an
    unambiguous split.

    Each way of cutting the digits after the decimal point is tried; a cut is taken only when its 2θ falls where
    the regular grid puts that line (median steps from the nearest good neighbour, within 1.1 units of the last
    decimal place written) and is at least three times closer to it than any other cut, so an ordinary missing
    value is never "repaired" into a plausible-looking one.
    """
    decimals = [len(t.split()[0].partition(".")[2]) for t, r in zip(texts, rows) if len(r) == 2]
    places = max(decimals)  # writers drop trailing zeros ("13.92"), so most lines, not all, show the full width
    two_theta = np.array([r[0] if len(r) == 2 else np.nan for r in rows])
    step = float(np.nanmedian(np.diff(two_theta)))
    if not 1 <= places <= 6 or decimals.count(places) < 0.5 * len(decimals) or not step > 0:
        return None, -1  # not an instrument's fixed-decimal 2θ column
    out = []
    for i, (row, text) in enumerate(zip(rows, texts)):
        if len(row) == 2:
            out.append(row)
            continue
        head, dot, tail = text.partition(".")
        expected = next((two_theta[j] + (i - j) * step for j in (i - 1, i + 1, i - 2, i + 2)
                         if 0 <= j < len(rows) and np.isfinite(two_theta[j])), None)
        if not dot or not tail.isdigit() or expected is None:
            return None, i
        cuts = []
        for k in range(1, min(places, len(tail) - 1) + 1):
            counts = tail[k:]
            if len(counts) < MIN_OVERFLOW_DIGITS or counts[0] == "0":
                continue  # only large counts overflow a fixed-width field
            value = float(f"{head}.{tail[:k]}")
            cuts.append((abs(value - expected), value, float(counts)))
        cuts.sort()
        unit = 10.0 ** -places  # the last decimal place written
        if not cuts or cuts[0][0] > 1.1 * unit:
            return None, i
        if len(cuts) > 1 and cuts[1][0] < 3.0 * max(cuts[0][0], 0.1 * unit):
            return None, i
        out.append([cuts[0][1], cuts[0][2]])
        two_theta[i] = cuts[0][1]
    return out, -1


def parse_pattern_text(text: str, source: str = "") -> tuple[np.ndarray, np.ndarray, float | None, str]:
    """``(x, intensity, wavelength_angstrom or None, x_unit)`` from the text of a pattern file.

    Accepts two or three numeric columns (x, intensity[, esd]) separated by commas, semicolons, tabs or
    spaces; header and comment lines (``#``, ``!``, ``;``, RRUFF ``##KEY=value``) are skipped and a
    ``wavelength=`` entry in them is used (pyFAI's ``Wavelength: 1e-10 m`` too). ``x`` is 2θ in degrees unless the
    header line just above the numbers names the first column otherwise (``x_unit``, one of
    ``tasks.patterns.X_AXIS_UNITS``: pyFAI's ``2th_rad``, ``q_nm^-1``, ``q_A^-1``, ``d*2_A^-2``, or ``Q (1/A)``,
    ``d (Å)``...). Also accepts the "start step stop" header followed by one intensity per line. Text after
    RRUFF's ``##END=`` is ignored. Fixed-width files whose large intensities ran into the 2θ column are split back
    when that is unambiguous (``_split_overflowed_columns``).
    """
    where = f" in {source}" if source else ""
    rows: list[list[float]] = []
    line_numbers: list[int] = []
    texts: list[str] = []
    wavelength: float | None = None
    label_line = ""
    header_done = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.upper().startswith("##END"):
            break
        if line[0] in "#!;'\"" or line[0].isalpha():
            if wavelength is None:
                wavelength = _header_wavelength_angstrom(line)
            if rows:
                header_done = True
            else:
                label_line = line
            continue
        values = _numbers(line)
        if values is None:
            if not rows:
                label_line = line
                continue  # a header line such as "2theta,intensity"
            raise PatternError(f"line {raw!r}{where} is not numeric")
        if header_done:
            raise PatternError(f"numeric data resumes after text{where}; the file seems to hold two blocks")
        rows.append(values)
        line_numbers.append(number)
        texts.append(line)
    if not rows:
        raise PatternError(f"no numeric data found{where}; expected columns of 2θ and intensity")
    widths = {len(r) for r in rows}
    if len(rows[0]) == 3 and widths.issuperset({1}) and all(len(r) == 1 for r in rows[1:]):
        start, step, stop = rows[0]
        y = np.array([r[0] for r in rows[1:]])
        if step <= 0:
            raise PatternError(f"the start/step/stop header{where} has a non-positive step {step:g}")
        return start + step * np.arange(len(y)), y, wavelength, _axis_unit(label_line, source)
    unsplit = -1
    if widths == {1, 2} and sum(len(r) == 2 for r in rows) > 0.5 * len(rows):
        repaired, unsplit = _split_overflowed_columns(rows, texts)
        rows = repaired or rows
        widths = {len(r) for r in rows}
    if len(widths) != 1:
        usual = max(widths, key=lambda w: sum(len(r) == w for r in rows))
        odd = unsplit if unsplit >= 0 else next(i for i, r in enumerate(rows) if len(r) != usual)
        raise PatternError(
            f"line {line_numbers[odd]}{where} has {len(rows[odd])} column(s) ({texts[odd]!r}) where the others have "
            f"{usual}; is a separator missing, or did a fixed-width intensity run into the 2θ column?"
        )
    width = widths.pop()
    if width == 1:
        raise PatternError(f"only one column found{where}; expected 2θ and intensity")
    if width > 3:
        raise PatternError(f"{width} columns found{where}; expected 2θ, intensity and optionally its esd")
    data = np.asarray(rows)
    return data[:, 0], data[:, 1], wavelength, _axis_unit(label_line, source)


def parse_pattern_bytes(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray, float | None, str]:
    """``(x, intensity, wavelength from the file or None, x_unit)`` of a pattern file's content, read by its
    name's suffix: Panalytical ``.xrdml`` (``tasks.xrdml``), Rigaku ``.ras`` (``tasks.rigaku``), Bruker ``.uxd``
    and ``.brml`` (``tasks.bruker``), GSAS ``.gsa``, ``.gss``, ``.gsas``, ``.fxye`` and ``.raw`` (``tasks.gsas``),
    all in 2θ degrees, anything else as text columns (:func:`parse_pattern_text`)."""
    reader = _VENDOR_READERS.get(Path(name).suffix.lower())
    if reader is not None:
        module, function = reader
        return (*getattr(importlib.import_module(module), function)(data, name), "2theta_deg")
    return parse_pattern_text(data.decode("utf-8", errors="replace"), name)


def pattern_from_bytes(
    data: bytes,
    name: str,
    wavelength: str | float | None = None,
    default_wavelength: str | float = "CuKa",
    max_points: int | None = None,
) -> PowderPattern:
    """The validated pattern of a file's content. Its wavelength is ``wavelength`` (name or Å) where given, else
    the file's own, else ``default_wavelength``; a first column in Q or d is turned into 2θ at that wavelength."""
    x, intensity, file_wavelength, unit = parse_pattern_bytes(data, name)
    if wavelength is not None:
        lam = resolve_wavelength(wavelength)
    elif file_wavelength is not None:
        lam = resolve_wavelength(file_wavelength)
    elif Path(name).suffix.lower() in WAVELENGTH_REQUIRED_SUFFIXES:
        raise PatternError(f"{name} does not say its wavelength (a GSAS data file leaves it to the instrument "
                           "parameter file, and such data is often synchrotron data): give it, e.g. 0.4138 (Å) "
                           "or CuKa")
    else:
        lam = resolve_wavelength(default_wavelength)
    two_theta, order = two_theta_from_axis(x, unit, lam, name)
    return validate_pattern(two_theta, np.asarray(intensity, dtype=float)[order], lam, name, max_points)


def read_pattern(
    path: str | Path, wavelength: str | float | None = None, max_points: int | None = None
) -> PowderPattern:
    """Read a powder pattern file; ``wavelength`` (name or Å) overrides one found in the header, else Cu Kα."""
    path = Path(path)
    if not path.is_file():
        raise PatternError(f"{path} does not exist or is not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PatternError(f"cannot read {path}: {exc.strerror}") from None
    return pattern_from_bytes(data, path.name, wavelength, "CuKa", max_points)


def read_structure(path: str | Path, max_sites: int = 500) -> Structure:
    """Read a CIF or POSCAR with pymatgen; refuse empty cells and cells with more than ``max_sites`` sites."""
    path = Path(path)
    if not path.is_file():
        raise StructureError(f"{path} does not exist or is not a file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = Structure.from_file(str(path), primitive=False)
    except Exception as exc:  # pymatgen raises many types; the message is what matters
        raise StructureError(f"{path.name} is not a readable CIF/POSCAR structure: {_structure_reason(exc)}") from None
    return check_structure(structure, path.name, max_sites)


_ATOM_SITE_KEYS = ("_atom_site_fract_x", "_atom_site_cartn_x")


def read_structures(path: str | Path, max_sites: int = 500) -> list[tuple[str, Structure | StructureError]]:
    """Every structure in a file as ``(name, structure or the error that refused it)``: a POSCAR's one, and one per
    CIF data block that lists atom sites (a journal CIF's publication block and a powder CIF's profile block list
    none and are passed over). With one such block the name is the file's; with several it is ``file#block``, so
    each phase of a multi-phase CIF gets its own answer."""
    path = Path(path)
    if path.suffix.lower() != ".cif" or not path.is_file():
        return [(str(path), _structure_or_error(read_structure, path, max_sites))]
    from pymatgen.io.cif import CifFile

    try:
        blocks = CifFile.from_str(path.read_text(encoding="utf-8", errors="replace")).data
    except Exception:  # pymatgen's CIF tokenizer raises many types; the single-structure reader names the problem
        blocks = {}
    with_sites = [(name, block) for name, block in blocks.items()
                  if any(key.lower() in _ATOM_SITE_KEYS for key in block.data)]
    if len(with_sites) < 2:
        return [(str(path), _structure_or_error(read_structure, path, max_sites))]
    return [(f"{path}#{name}", _structure_or_error(structure_from_text, str(block), "cif", max_sites,
                                                    f"{path.name}#{name}"))
            for name, block in with_sites]


def _structure_or_error(reader, *args) -> Structure | StructureError:
    try:
        return reader(*args)
    except StructureError as exc:
        return exc


def _structure_reason(exc: Exception) -> str:
    """What a scientist can act on in a pymatgen parse error: its first line, or for the index errors of a
    truncated file (pymatgen's POSCAR reader says only "list index out of range") what a POSCAR must hold."""
    if isinstance(exc, IndexError):
        return ("the file ends early or a line has too few fields (a POSCAR holds a comment line, a scale, three "
                "lattice vectors, element names and counts, then one line of coordinates per atom)")
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def structure_from_text(text: str, fmt: str, max_sites: int = 500, source: str = "") -> Structure:
    """Parse structure text (``fmt`` = ``cif`` or ``poscar``), with the same checks as :func:`read_structure`."""
    if fmt not in ("cif", "poscar"):
        raise StructureError(f"unknown structure format {fmt!r}; use 'cif' or 'poscar'")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = Structure.from_str(text, fmt=fmt, primitive=False)
    except Exception as exc:
        what = source or f"the {fmt.upper()} text"
        raise StructureError(f"{what} is not a readable structure: {_structure_reason(exc)}") from None
    return check_structure(structure, source or fmt.upper(), max_sites)


def check_structure(structure: Structure, source: str, max_sites: int) -> Structure:
    if len(structure) == 0:
        raise StructureError(f"{source} contains no atoms")
    if len(structure) > max_sites:
        raise StructureError(f"{source} has {len(structure)} sites; at most {max_sites} are accepted")
    if structure.volume <= 1e-3:
        raise StructureError(f"{source} has a cell of zero volume")
    return structure


_ADDUCT_DOT = re.compile(r"\s*[·•⋅∙*]\s*")  # CuSO4·5H2O, CuSO4*5H2O
_LEADING_COUNT = re.compile(r"^(\d+(?:\.\d+)?)\s*(?=[A-Z(\[])")


def _adduct(formula: str) -> Composition:
    """``Composition`` of a formula, hydrates and adducts included: each part after a dot (·, •, *) may start with
    its count (``CuSO4·5H2O`` = CuSO4 + 5 H2O), which pymatgen's parser alone does not read."""
    parts = _ADDUCT_DOT.split(formula)
    if len(parts) == 1:
        return Composition(formula)
    total = Composition()
    for part in parts:
        match = _LEADING_COUNT.match(part)
        count, rest = (float(match.group(1)), part[match.end():]) if match else (1.0, part)
        if not rest:
            raise ValueError("an empty part")
        total += Composition(rest) * count
    return total


def parse_formula(text: str) -> Composition:
    """A chemical formula such as ``Fe2O3``, ``Ca(OH)2`` or ``CuSO4·5H2O``; unknown elements and empty strings are
    refused."""
    cleaned = str(text).strip()
    if not cleaned:
        raise FormulaError("the formula is empty")
    if len(cleaned) > 200:
        raise FormulaError("the formula is longer than 200 characters")
    for token in re.findall(r"[A-Z][a-z]*", cleaned):
        try:
            Element(token)
        except ValueError:
            raise FormulaError(f"{token!r} in formula {cleaned!r} is not a chemical element") from None
    try:
        composition = _adduct(cleaned)
    except Exception:
        raise FormulaError(f"{cleaned!r} is not a chemical formula (write it like Fe2O3, Ca(OH)2 or "
                           "CuSO4·5H2O)") from None
    if composition.num_atoms <= 0:
        raise FormulaError(f"{cleaned!r} has no atoms")
    return composition


def read_compositions(path: str | Path) -> dict[str, str]:
    """Each pattern's sample composition from a table of two columns, a pattern file and its formula (comma, tab
    or spaces between them; ``#`` comments and a header line allowed). Keys are the resolved path of a file named
    relative to the table's folder where it exists there, else the name as written; values reduced formulas."""
    path = Path(path)
    if not path.is_file():
        raise FormulaError(f"{path} does not exist or is not a file")
    out: dict[str, str] = {}
    # utf-8-sig: a spreadsheet's CSV export may begin with a byte-order mark
    for number, raw in enumerate(path.read_text(encoding="utf-8-sig", errors="replace").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f.strip().strip('"') for f in (line.split(",") if "," in line else line.split("\t") if "\t" in line
                                                  else line.rsplit(None, 1))]
        if len(fields) != 2 or not all(fields):
            raise FormulaError(f"{path.name}: line {number} has {len(fields)} field(s); expected a pattern file and "
                               "its sample's formula, such as 'sample1.xy, Fe2O3'")
        if not out and fields[1].lower() in ("formula", "composition"):
            continue  # a header
        try:
            formula = parse_formula(fields[1]).reduced_formula
        except FormulaError as exc:
            raise FormulaError(f"{path.name}: line {number}: {exc}") from None
        named = path.parent / fields[0]
        out[str(named.resolve()) if named.exists() else fields[0]] = formula
    if not out:
        raise FormulaError(f"{path.name} lists no pattern file with its formula")
    return out


def composition_of(compositions: str | dict[str, str] | None, path: Path) -> str | None:
    """A pattern file's composition: the one for every file, or its entry in a ``read_compositions`` table (by
    resolved path, then as given, then by name); None where it has none."""
    if compositions is None or isinstance(compositions, str):
        return compositions
    return compositions.get(str(path.resolve())) or compositions.get(str(path)) or compositions.get(path.name)


def input_kind(path: Path) -> str:
    """``pattern``, ``structure`` or ``unknown`` from a file name (POSCAR/CONTCAR names count as structures)."""
    name = path.name.upper()
    suffix = path.suffix.lower()
    if suffix in STRUCTURE_SUFFIXES or name.startswith(("POSCAR", "CONTCAR")):
        return "structure"
    if suffix in PATTERN_SUFFIXES:
        return "pattern"
    return "unknown"


_PDCIF_X = ("_pd_proc_2theta_corrected", "_pd_meas_2theta_scan", "_pd_meas_angle_2theta")
_PDCIF_Y = ("_pd_meas_counts_total", "_pd_meas_intensity_total", "_pd_proc_intensity_total", "_pd_proc_intensity_net")
_PDCIF_LAMBDA = ("_pd_proc_wavelength", "_diffrn_radiation_wavelength", "_diffrn_radiation_wavelength_wavelength")
_ESD = re.compile(r"\(\d+\)$")


def is_powder_cif(path: str | Path) -> bool:
    """True when a CIF carries a measured powder profile (pdCIF) rather than only a structure."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read(2_000_000)
    except OSError:
        return False
    return any(tag in text for tag in _PDCIF_Y) and ("_pd_proc_2theta" in text or "_pd_meas_2theta" in text)


def _cif_numbers(values) -> np.ndarray:
    values = values if isinstance(values, list) else [values]
    return np.array([float(_ESD.sub("", str(v))) if str(v) not in ("?", ".") else np.nan for v in values])


def read_pdcif(path: str | Path, wavelength: str | float | None = None, max_points: int | None = None) -> PowderPattern:
    """The measured profile of a powder CIF (IUCr pdCIF): 2θ from ``_pd_proc_2theta_corrected`` or the
    ``_pd_*_2theta_range_{min,max,inc}`` triple, intensity from the first of the measured/processed tags,
    wavelength from ``_pd_proc_wavelength`` / ``_diffrn_radiation_wavelength`` (first value: Kα1)."""
    from pymatgen.io.cif import CifFile

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blocks = CifFile.from_file(str(path)).data
    except Exception as exc:
        raise PatternError(f"{path.name} is not a readable CIF: {exc}") from None
    found_lambda = None
    for block in blocks.values():
        for tag in _PDCIF_LAMBDA:
            if tag in block.data and found_lambda is None:
                value = block.data[tag]
                number = _cif_numbers(value[0] if isinstance(value, list) else value)[0]
                found_lambda = float(number) if np.isfinite(number) else None
    for block in blocks.values():
        data = block.data
        y_tag = next((t for t in _PDCIF_Y if isinstance(data.get(t), list)), None)
        if y_tag is None:
            continue
        y = _cif_numbers(data[y_tag])
        x_tag = next((t for t in _PDCIF_X if isinstance(data.get(t), list)), None)
        if x_tag is not None:
            x = _cif_numbers(data[x_tag])
        else:
            for prefix in ("_pd_meas_2theta_range_", "_pd_proc_2theta_range_"):
                if all(prefix + k in data for k in ("min", "inc")):
                    start, step = (float(_ESD.sub("", str(data[prefix + k]))) for k in ("min", "inc"))
                    x = start + step * np.arange(len(y))
                    break
            else:
                continue
        keep = np.isfinite(x) & np.isfinite(y)
        lam = resolve_wavelength(wavelength) if wavelength is not None else (
            found_lambda if found_lambda is not None else resolve_wavelength("CuKa"))
        return validate_pattern(x[keep], y[keep], lam, path.name, max_points)
    raise PatternError(f"{path.name} has no powder profile loop (_pd_meas_counts_total, _pd_proc_intensity_net, ...)")
