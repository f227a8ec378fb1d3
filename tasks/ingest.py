"""Validate and label source records: the one gate every crystal passes before it reaches the registry."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import warnings
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from pymatgen.core import Structure

from tasks.sources import SourceRecord
from tasks.symmetry import SymmetryError, symmetry_labels

log = logging.getLogger(__name__)

MIN_DISTANCE_ANGSTROM = 0.5
DENSITY_RANGE_G_CM3 = (0.05, 30.0)
MAX_CELL_EDGE_ANGSTROM = 500.0


@dataclass
class ValidRecord:
    """A record that passed validation, with spglib's labels."""

    source: str
    source_id: str
    formula: str
    reduced_formula: str
    structure_json: str
    space_group_number: int
    crystal_system: str
    extinction_group: int
    source_space_group: int | None
    label_disagrees: bool
    content_hash: str
    last_updated: datetime | None
    deprecated: bool
    theoretical: bool | None


@dataclass
class RejectedRecord:
    source: str
    source_id: str | None
    reason: str
    payload: str


def structure_content_hash(structure: Structure, deprecated: bool = False) -> str:
    """Hash of what the crystal is (cell, species, positions rounded to 1e-4), not of how it was serialised."""
    payload = {
        "lattice": np.round(structure.lattice.matrix, 4).tolist(),
        "species": [site.species.formula for site in structure],
        "frac": np.round(np.mod(structure.frac_coords, 1.0) % 1.0, 4).tolist(),
        "deprecated": bool(deprecated),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _structure_of(record: SourceRecord, max_sites: int) -> Structure:
    if record.structure is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                structure = Structure.from_dict(record.structure)
        except Exception as exc:  # from_dict raises KeyError/TypeError/ValueError on malformed dicts
            raise ValueError(f"structure is not a valid pymatgen structure ({type(exc).__name__}: {exc})") from exc
    elif record.structure_text is not None:
        from tasks.readers import StructureError, structure_from_text

        try:
            structure = structure_from_text(record.structure_text, record.structure_format or "cif",
                                            max_sites=max_sites, source=record.source_id)
        except StructureError as exc:
            raise ValueError(str(exc)) from exc
    elif record.raw.get("too_large_bytes"):
        raise ValueError(f"file of {record.raw['too_large_bytes']} bytes is larger than a structure file can be")
    else:
        raise ValueError("record has no structure" + (" (the document query did not return this id)"
                                                      if record.raw.get("missing") else ""))
    return structure


def check_physical(structure: Structure, max_sites: int) -> None:
    """Raise ValueError naming the first unphysical property of ``structure``."""
    n = len(structure)
    if n == 0:
        raise ValueError("structure has no atoms")
    if n > max_sites:
        raise ValueError(f"structure has {n} sites; the limit is {max_sites}")
    matrix = structure.lattice.matrix
    if not np.all(np.isfinite(matrix)) or not np.all(np.isfinite(structure.frac_coords)):
        raise ValueError("lattice or coordinates contain NaN or infinity")
    volume = structure.lattice.volume
    if not math.isfinite(volume) or volume <= 1e-3:
        raise ValueError(f"cell volume {volume:.3g} Å³ is not positive")
    if max(structure.lattice.abc) > MAX_CELL_EDGE_ANGSTROM:
        raise ValueError(f"cell edge {max(structure.lattice.abc):.1f} Å exceeds {MAX_CELL_EDGE_ANGSTROM:.0f} Å")
    density = float(structure.density)
    low, high = DENSITY_RANGE_G_CM3
    if not low <= density <= high:
        raise ValueError(f"density {density:.3g} g/cm³ is outside {low}-{high} g/cm³")
    if n > 1:
        distances = structure.distance_matrix
        np.fill_diagonal(distances, np.inf)
        closest = float(distances.min())
        if closest < MIN_DISTANCE_ANGSTROM:
            raise ValueError(f"two atoms are {closest:.3f} Å apart (minimum {MIN_DISTANCE_ANGSTROM} Å)")
    else:
        # one atom: its periodic images are the nearest neighbours
        if min(structure.lattice.abc) < MIN_DISTANCE_ANGSTROM:
            raise ValueError("cell is too small for even one atom")


def validate_record(record: SourceRecord, max_sites: int = 500) -> ValidRecord | RejectedRecord:
    """Parse, check and label one record; never raises for bad data, it returns the reason instead."""
    payload = _payload(record)
    if not record.source_id:
        return RejectedRecord(record.source, None, "record has no material id", payload)
    try:
        structure = _structure_of(record, max_sites)
        check_physical(structure, max_sites)
        labels = symmetry_labels(structure)
    except (ValueError, SymmetryError) as exc:
        return RejectedRecord(record.source, record.source_id, str(exc)[:500], payload)
    disagrees = record.source_space_group is not None and record.source_space_group != labels.space_group_number
    composition = structure.composition
    return ValidRecord(
        source=record.source, source_id=record.source_id, formula=composition.formula,
        reduced_formula=composition.reduced_formula, structure_json=json.dumps(structure.as_dict()),
        space_group_number=labels.space_group_number, crystal_system=labels.crystal_system,
        extinction_group=labels.extinction_group, source_space_group=record.source_space_group,
        label_disagrees=disagrees, content_hash=structure_content_hash(structure, record.deprecated),
        last_updated=record.last_updated, deprecated=record.deprecated, theoretical=record.theoretical,
    )


def _payload(record: SourceRecord) -> str:
    data = {"raw": record.raw, "structure": record.structure, "structure_text": record.structure_text}
    return json.dumps(data, default=str)[:20_000]


def validate_chunk(records: list[SourceRecord], max_sites: int = 500) -> tuple[list[ValidRecord], list[RejectedRecord]]:
    valid, rejected = [], []
    for record in records:
        outcome = validate_record(record, max_sites)
        (valid if isinstance(outcome, ValidRecord) else rejected).append(outcome)
    return valid, rejected
