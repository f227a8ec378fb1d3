"""Symmetry labels of a crystal structure, always from spglib.

``DEFAULT_SYMPREC = 0.1`` Å follows the Materials Project convention (its ``symmetry`` fields are computed
with 0.1 Å), so labels computed here agree with MP's; ``tolerance_sweep`` shows how a label depends on it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import spglib
import spglib.error
from pymatgen.core import Structure

from tasks.crystallography import space_group_type
from tasks.extinction import extinction_group_of

DEFAULT_SYMPREC = 0.1  # Å; Materials Project convention
DEFAULT_ANGLE_TOLERANCE = -1.0  # degrees; spglib's own default (-1 = derived from symprec)
SWEEP_SYMPRECS: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
DISORDERED_SITE_TYPES = 1000  # spglib types of disordered sites start here, clear of atomic numbers


class SymmetryError(ValueError):
    """spglib could not find the symmetry of a structure (e.g. overlapping atoms)."""


@dataclass(frozen=True)
class SymmetryLabels:
    """Everything this project labels a structure with."""

    space_group_number: int
    space_group_symbol: str
    hall_number: int
    point_group: str
    laue_class: str
    crystal_system: str
    bravais_lattice: str
    extinction_group: int
    extinction_group_label: str
    wyckoff_letters: tuple[str, ...]
    symprec: float

    def to_dict(self) -> dict:
        data = asdict(self)
        data["wyckoff_letters"] = list(self.wyckoff_letters)
        return data


def spglib_cell(structure: Structure) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lattice, fractional coordinates, atomic numbers)`` as spglib wants them.

    spglib cannot represent partial occupancy, so a disordered site is typed by its whole occupancy: every
    Fe0.5Co0.5 site is one kind, an Fe0.9Co0.1 or a half-empty Fe0.5 site another (types from
    ``DISORDERED_SITE_TYPES`` up). The answer is the symmetry of the average structure, as reported for a solid
    solution: disordered FeCo is bcc Im-3m, ordered FeCo CsCl-type Pm-3m. Typing a site by its majority species
    instead made two equal Fe0.5Co0.5 sites Fe and Co whenever their species were listed in another order.
    """
    kinds: dict[tuple, int] = {}
    numbers = []
    for site in structure:
        if site.is_ordered:
            numbers.append(site.specie.Z)
        else:
            occupancy = tuple(sorted((str(species), round(float(amount), 4))
                                     for species, amount in site.species.items()))
            numbers.append(kinds.setdefault(occupancy, DISORDERED_SITE_TYPES + len(kinds)))
    return (np.asarray(structure.lattice.matrix), np.asarray(structure.frac_coords), np.asarray(numbers))


def disordered_site_count(structure: Structure) -> int:
    """Sites with partial or mixed occupancy."""
    return sum(not site.is_ordered for site in structure)


def symmetry_labels(
    structure: Structure, symprec: float = DEFAULT_SYMPREC, angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE
) -> SymmetryLabels:
    """spglib's answer for ``structure`` at tolerance ``symprec`` (Å) and ``angle_tolerance`` (degrees)."""
    if len(structure) == 0:
        raise SymmetryError("the structure has no atoms")
    try:
        dataset = spglib.get_symmetry_dataset(spglib_cell(structure), symprec=symprec, angle_tolerance=angle_tolerance)
    except spglib.error.SpglibError as exc:
        dataset, reason = None, str(exc)
    else:
        reason = "no dataset"
    if dataset is None:
        raise SymmetryError(
            f"spglib found no symmetry at symprec={symprec} Å ({reason}); atoms may overlap or the cell may be degenerate"
        )
    sg = space_group_type(dataset.number)
    group = extinction_group_of(dataset.number)
    return SymmetryLabels(
        space_group_number=int(dataset.number),
        space_group_symbol=sg.symbol,
        hall_number=int(dataset.hall_number),
        point_group=sg.point_group,
        laue_class=sg.laue_class,
        crystal_system=sg.crystal_system,
        bravais_lattice=sg.bravais_lattice,
        extinction_group=group.index,
        extinction_group_label=group.label,
        wyckoff_letters=tuple(dataset.wyckoffs),
        symprec=symprec,
    )


def tolerance_sweep(
    structure: Structure,
    symprecs: tuple[float, ...] = SWEEP_SYMPRECS,
    angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE,
) -> list[dict]:
    """Space group found at each tolerance, loosest first: one row per ``symprec`` (``None`` where spglib fails)."""
    rows = []
    for symprec in symprecs:
        try:
            labels = symmetry_labels(structure, symprec, angle_tolerance)
            rows.append({"symprec": symprec, "space_group_number": labels.space_group_number,
                         "space_group_symbol": labels.space_group_symbol,
                         "crystal_system": labels.crystal_system})
        except SymmetryError:
            rows.append({"symprec": symprec, "space_group_number": None, "space_group_symbol": None,
                         "crystal_system": None})
    return rows
