"""Plain crystallographic facts about the 230 space-group types, taken from spglib's database.

Nothing here is typed in per space group except the 32 -> 11 point-group -> Laue-class reduction,
which is textbook (International Tables A, Table 10.1.2.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import spglib
import spglib.error

# spglib raises SpglibError instead of returning None (the old behaviour is deprecated).
spglib.error.OLD_ERROR_HANDLING = False

CRYSTAL_SYSTEMS: tuple[str, ...] = (
    "triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic",
)

#: Point group (Hermann-Mauguin, as spglib writes it) -> Laue class.
LAUE_CLASS_OF_POINT_GROUP: dict[str, str] = {
    "1": "-1", "-1": "-1",
    "2": "2/m", "m": "2/m", "2/m": "2/m",
    "222": "mmm", "mm2": "mmm", "mmm": "mmm",
    "4": "4/m", "-4": "4/m", "4/m": "4/m",
    "422": "4/mmm", "4mm": "4/mmm", "-42m": "4/mmm", "4/mmm": "4/mmm",
    "3": "-3", "-3": "-3",
    "32": "-3m", "3m": "-3m", "-3m": "-3m",
    "6": "6/m", "-6": "6/m", "6/m": "6/m",
    "622": "6/mmm", "6mm": "6/mmm", "-6m2": "6/mmm", "-62m": "6/mmm", "6/mmm": "6/mmm",
    "23": "m-3", "m-3": "m-3",
    "432": "m-3m", "-43m": "m-3m", "m-3m": "m-3m",
}


def crystal_system_of(space_group_number: int) -> str:
    """Crystal system of a space-group type (1-230), by the International Tables number ranges."""
    n = check_space_group_number(space_group_number)
    for upper, system in ((2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"), (142, "tetragonal"),
                          (167, "trigonal"), (194, "hexagonal"), (230, "cubic")):
        if n <= upper:
            return system
    raise AssertionError("unreachable")


def centring_allows(centring: str, h, k, l) -> np.ndarray:
    """Which reflections (h k l) a lattice centring allows (its integral reflection conditions): P all, C h + k
    even, I h + k + l even, F h, k, l all even or all odd, R -h + k + l = 3n (obverse setting, hexagonal axes)."""
    h, k, l = (np.asarray(x) for x in (h, k, l))
    if centring == "P":
        return np.ones(np.broadcast(h, k, l).shape, dtype=bool)
    if centring == "C":
        return (h + k) % 2 == 0
    if centring == "I":
        return (h + k + l) % 2 == 0
    if centring == "F":
        return (h % 2 == k % 2) & (k % 2 == l % 2)
    if centring == "R":
        return (-h + k + l) % 3 == 0
    raise ValueError(f"unknown centring {centring!r}: P, C, I, F or R")


def check_space_group_number(space_group_number: int) -> int:
    n = int(space_group_number)
    if not 1 <= n <= 230:
        raise ValueError(f"space group number must be between 1 and 230, got {space_group_number}")
    return n


@dataclass(frozen=True)
class SpaceGroupType:
    """One of the 230 space-group types in its standard (default spglib) setting."""

    number: int
    symbol: str  # short Hermann-Mauguin symbol, e.g. "P2_1/c"
    hall_number: int
    point_group: str
    laue_class: str
    crystal_system: str
    bravais_lattice: str  # Pearson-style lattice symbol, e.g. "mP", "oC", "hR"


@lru_cache(maxsize=1)
def hall_numbers_by_space_group() -> dict[int, list[int]]:
    """All 530 Hall settings grouped by space-group number (first one = spglib's standard setting)."""
    out: dict[int, list[int]] = {}
    for hall in range(1, 531):
        out.setdefault(spglib.get_spacegroup_type(hall).number, []).append(hall)
    return out


def bravais_lattice_of(number: int, symbol: str) -> str:
    system = crystal_system_of(number)
    letter = {"triclinic": "a", "monoclinic": "m", "orthorhombic": "o", "tetragonal": "t",
              "trigonal": "h", "hexagonal": "h", "cubic": "c"}[system]
    centring = symbol[0]
    if centring in "ABC":
        centring = "C" if system in ("monoclinic", "orthorhombic") else centring
    if system == "monoclinic" and centring == "I":
        centring = "C"  # I-centred monoclinic cells are another choice of the mC lattice
    if centring == "R":
        return "hR"
    return f"{letter}{centring}"


@lru_cache(maxsize=None)
def space_group_type(number: int) -> SpaceGroupType:
    """The standard-setting description of space group ``number``."""
    n = check_space_group_number(number)
    hall = hall_numbers_by_space_group()[n][0]
    sg = spglib.get_spacegroup_type(hall)
    point_group = sg.pointgroup_international
    return SpaceGroupType(
        number=n,
        symbol=sg.international_short,
        hall_number=hall,
        point_group=point_group,
        laue_class=LAUE_CLASS_OF_POINT_GROUP[point_group],
        crystal_system=crystal_system_of(n),
        bravais_lattice=bravais_lattice_of(n, sg.international_short),
    )
