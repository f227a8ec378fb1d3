"""One prediction request as a dict (the JSON body of ``POST /predict`` or one batch item) -> a typed input.

The same parser serves the HTTP API and the batch flow, so both refuse bad input with the same words.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
from dataclasses import dataclass, field
from typing import Any

from tasks.excluded_regions import SUBSTRATES, take_out, validate_substrates
from tasks.patterns import PatternError, PowderPattern, two_theta_from_axis, validate_pattern
from tasks.readers import FormulaError, StructureError, parse_formula, structure_from_text
from tasks.xrd import resolve_wavelength

MODALITIES = ("xrd", "formula", "structure")


class InputError(ValueError):
    """A prediction request that cannot be answered, with the reason in words."""


@dataclass
class PredictionInput:
    modality: str  # xrd | formula | structure
    name: str
    value: Any  # PowderPattern | str (formula) | pymatgen Structure
    input_hash: str
    excluded_two_theta_deg: list[tuple[float, float]] = field(default_factory=list)  # taken out of a pattern
    composition: str | None = None  # a pattern's sample's formula, read by the formula model too (tasks.combine)
    lattice_evidence: bool = False  # a pattern's answer corrected by its indexed cells (tasks.lattice_evidence)


_NUMBER_TYPES = frozenset((int, float))


X_AXES = {"two_theta_deg": "2theta_deg", "q_inv_angstrom": "q_inv_angstrom", "d_angstrom": "d_angstrom"}


def _numbers(values: list, axis: str = "two_theta_deg") -> np.ndarray:
    """A JSON array of numbers as float64; booleans, strings, nulls and nested arrays are refused."""
    # fast path: numpy's own type inference settles strings, nulls and nesting; a bool mixed with numbers
    # becomes 0 or 1, so only those entries need a look (checking every entry's type cost 2x as much)
    try:
        array = np.array(values)
    except ValueError:  # ragged nesting
        array = None
    if array is not None and array.ndim == 1 and array.dtype.kind in "fi":
        suspects = np.flatnonzero((array == 0) | (array == 1))
        if not any(type(values[i]) is bool for i in suspects):
            return array.astype(np.float64, copy=False)
    if not set(map(type, values)) <= _NUMBER_TYPES:  # type(), not isinstance: True is not a number here
        raise InputError(f"'xrd.{axis}' and 'xrd.intensity' must contain only numbers")
    return np.array(values, dtype=np.float64)


def input_hash(item: Any) -> str:
    return hashlib.sha256(json.dumps(item, sort_keys=True, default=str).encode()).hexdigest()


def parse_composition(value: Any, field: str) -> str:
    """The reduced formula of a pattern's sample composition given in the request's ``field``."""
    if not isinstance(value, str):
        raise InputError(f"'{field}' must be the sample's formula as a string, such as \"Fe2O3\"")
    try:
        return parse_formula(value).reduced_formula
    except FormulaError as exc:
        raise InputError(f"'{field}': {exc}") from None


def parse_prediction_input(item: Any, default_wavelength: str | float = "CuKa", max_points: int | None = None,
                           max_sites: int = 500, name: str | None = None) -> PredictionInput:
    """Exactly one of ``xrd`` {two_theta_deg, intensity, wavelength, exclude_two_theta_deg, substrate,
    composition, lattice_evidence}, ``formula``, ``structure`` {cif|poscar}."""
    if not isinstance(item, dict):
        raise InputError("the request must be a JSON object with one of 'xrd', 'formula' or 'structure'")
    given = [key for key in MODALITIES if key in item]
    if len(given) != 1:
        found = ", ".join(sorted(map(str, item))) or "nothing"
        raise InputError(f"give exactly one of 'xrd', 'formula' or 'structure' (found: {found})")
    modality = given[0]
    label = name or str(item.get("name") or modality)
    digest = input_hash(item[modality]) if modality != "xrd" else ""
    if modality == "formula":
        text = item["formula"]
        if not isinstance(text, str):
            raise InputError("'formula' must be a string such as \"Fe2O3\"")
        try:
            parse_formula(text)
        except FormulaError as exc:
            raise InputError(str(exc)) from None
        return PredictionInput("formula", name or text, text, digest)
    if modality == "structure":
        spec = item["structure"]
        if not isinstance(spec, dict) or len([k for k in ("cif", "poscar") if k in spec]) != 1:
            raise InputError("'structure' must be an object with one of 'cif' or 'poscar' (the file's text)")
        fmt = "cif" if "cif" in spec else "poscar"
        if not isinstance(spec[fmt], str):
            raise InputError(f"'structure.{fmt}' must be the text of the file")
        try:
            structure = structure_from_text(spec[fmt], fmt, max_sites=max_sites, source=f"the {fmt.upper()}")
        except StructureError as exc:
            raise InputError(str(exc)) from None
        return PredictionInput("structure", label, structure, digest)
    spec = item["xrd"]
    if not isinstance(spec, dict):
        raise InputError("'xrd' must be an object with 'two_theta_deg' and 'intensity' arrays")
    axes = [key for key in X_AXES if key in spec]
    if len(axes) > 1:
        raise InputError(f"'xrd' gives {' and '.join(repr(a) for a in axes)}: give the positions once")
    axis = axes[0] if axes else "two_theta_deg"
    missing = [k for k in (axis, "intensity") if k not in spec]
    if missing:
        hint = " (the peak positions as 'two_theta_deg', 'q_inv_angstrom' or 'd_angstrom')" if axis in missing else ""
        raise InputError(f"'xrd' is missing {', '.join(repr(m) for m in missing)}{hint}")
    tt, y = spec[axis], spec["intensity"]
    if not isinstance(tt, list) or not isinstance(y, list):
        raise InputError(f"'xrd.{axis}' and 'xrd.intensity' must be arrays of numbers")
    tt, y = _numbers(tt, axis), _numbers(y, axis)
    wavelength = spec.get("wavelength", default_wavelength)
    if wavelength is None:
        wavelength = default_wavelength
    if isinstance(wavelength, bool) or not isinstance(wavelength, (str, int, float)):
        raise InputError("'xrd.wavelength' must be a name such as \"CuKa\" or a number in ångström")
    regions = spec.get("exclude_two_theta_deg") or []
    if not isinstance(regions, list):
        raise InputError("'xrd.exclude_two_theta_deg' must be an array of [start, end] pairs in degrees 2θ")
    composition = spec.get("composition")
    composition = None if composition is None else parse_composition(composition, "xrd.composition")
    lattice_evidence = spec.get("lattice_evidence", False)
    if not isinstance(lattice_evidence, bool):
        raise InputError("'xrd.lattice_evidence' must be true or false")
    substrates = spec.get("substrate") or []
    substrates = [substrates] if isinstance(substrates, str) else substrates
    if not isinstance(substrates, list):
        raise InputError(f"'xrd.substrate' must be a name or an array of names: {', '.join(SUBSTRATES)}")
    try:
        wavelength_angstrom = resolve_wavelength(wavelength)
        if axis != "two_theta_deg":
            if len(tt) != len(y):
                raise PatternError(f"{axis} has {len(tt)} values but intensity has {len(y)}")
            tt, order = two_theta_from_axis(tt, X_AXES[axis], wavelength_angstrom)
            y = y[order]
        pattern: PowderPattern = validate_pattern(tt, y, wavelength_angstrom, source="", max_points=max_points)
        pattern, regions = take_out(pattern, regions, validate_substrates(substrates))
    except (PatternError, ValueError) as exc:
        raise InputError(str(exc)) from None
    digest = hashlib.sha256(pattern.two_theta_deg.tobytes() + pattern.intensity.tobytes()
                            + str(pattern.wavelength_angstrom).encode()
                            + (f"|{composition}".encode() if composition else b"")
                            + (b"|lattice-evidence" if lattice_evidence else b"")).hexdigest()
    return PredictionInput("xrd", label, pattern, digest, regions, composition, lattice_evidence)
