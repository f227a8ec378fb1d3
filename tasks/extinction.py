"""Extinction groups derived from the symmetry operations: the space groups powder data cannot tell apart.

Method
------
1. For every Hall setting of every space group (spglib's database of 530), a reflection ``h`` is
   *systematically absent* when some operation ``(R, t)`` leaves it fixed (``h R = h``) while
   ``h . t`` is not an integer: then ``F(h) = F(h) exp(2 pi i h . t)`` forces ``F(h) = 0``.
   This covers lattice centring (``R = 1``), glide planes and screw axes alike.
2. The absences are evaluated on all ``h`` with ``|h|, |k|, |l| <= HKL_LIMIT``, which resolves every
   condition that occurs (the finest is ``00l: l = 6n``).
3. Settings of one space group differ only by the choice of axes (orthorhombic permutations,
   monoclinic unique axis and cell choice) or origin, so the canonical absence pattern of a space group
   is the smallest pattern over its settings. Rhombohedral-axes settings are skipped: all R groups are
   compared in the hexagonal (obverse) setting.
4. Space groups with the same lattice family and the same canonical absences form one extinction group.
   The lattice family is the metric powder data sees: trigonal-P and hexagonal groups share the
   hexagonal lattice; R groups form their own family.

Convention difference
---------------------
International Tables (and the 99-group table of Baggett et al. 2026) keep two pairs of absence-identical
classes apart by their symbol: ``P2_13`` (198) vs ``P4_232`` (208), both only ``00l: l = 2n``, and the
``P3_1``-type groups (144, 145, 151-154) vs the ``P6_2``-type groups (171, 172, 180, 181), all only
``00l: l = 3n``. Their absences and lattice metric are identical, so no powder pattern separates them and
this derivation merges each pair: 97 extinction groups. ``tests/science/test_extinction.py`` checks that
this is the only difference from the reference.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import spglib

from tasks.crystallography import check_space_group_number, hall_numbers_by_space_group, space_group_type

HKL_LIMIT = 6
#: tolerance on h.t being an integer (translations in spglib's database are exact multiples of 1/12)
_PHASE_TOL = 1e-6


@dataclass(frozen=True)
class ExtinctionGroup:
    """A set of space groups with the same lattice family and systematic absences."""

    index: int
    lattice_family: str
    space_groups: tuple[int, ...]

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(space_group_type(n).symbol for n in self.space_groups)

    @property
    def label(self) -> str:
        return f"{self.lattice_family}: " + ", ".join(self.symbols)

    def to_dict(self) -> dict:
        return {"id": self.index, "label": self.label, "space_groups": list(self.space_groups)}


@lru_cache(maxsize=1)
def _hkl_grid() -> np.ndarray:
    rng = range(-HKL_LIMIT, HKL_LIMIT + 1)
    grid = np.array([h for h in itertools.product(rng, rng, rng) if any(h)], dtype=np.int64)
    return grid


def absent_reflections(rotations: np.ndarray, translations: np.ndarray, hkl: np.ndarray) -> np.ndarray:
    """Boolean mask over ``hkl`` (N x 3) of the reflections the operations make systematically absent.

    ``rotations`` (M x 3 x 3) and ``translations`` (M x 3) act on fractional coordinates, x' = R x + t.
    """
    n_ops = len(rotations)
    # all h R at once as one float matrix product (exact for these small integers): N x (3M)
    h_float = hkl.astype(float)
    h_rotated = h_float @ np.concatenate(list(rotations.astype(float)), axis=1)
    fixed = np.all((h_rotated.reshape(len(hkl), n_ops, 3) == h_float[:, None, :]), axis=2).T  # M x N
    phase = translations @ hkl.T  # M x N
    shifted = np.abs(phase - np.round(phase)) > _PHASE_TOL
    return np.any(fixed & shifted, axis=0)


def lattice_family(space_group_number: int) -> str:
    sg = space_group_type(space_group_number)
    if sg.bravais_lattice == "hR":
        return "hR"
    if sg.crystal_system in ("trigonal", "hexagonal"):
        return "hP"
    return sg.bravais_lattice[0]  # a, m, o, t, c: centring is part of the absences


@lru_cache(maxsize=None)
def canonical_absences(space_group_number: int) -> bytes:
    """The smallest absence pattern of a space group over its (non-rhombohedral-axes) settings."""
    n = check_space_group_number(space_group_number)
    hkl = _hkl_grid()
    patterns = []
    for hall in hall_numbers_by_space_group()[n]:
        if spglib.get_spacegroup_type(hall).choice == "R":
            continue
        ops = spglib.get_symmetry_from_database(hall)
        mask = absent_reflections(np.asarray(ops["rotations"]), np.asarray(ops["translations"]), hkl)
        patterns.append(np.packbits(mask).tobytes())
    return min(patterns)


@lru_cache(maxsize=1)
def extinction_groups() -> tuple[ExtinctionGroup, ...]:
    """All extinction groups, numbered 1.. in order of their lowest space-group number."""
    members: dict[tuple[str, bytes], list[int]] = {}
    for n in range(1, 231):
        members.setdefault((lattice_family(n), canonical_absences(n)), []).append(n)
    ordered = sorted(members.items(), key=lambda item: item[1][0])
    return tuple(
        ExtinctionGroup(index=i, lattice_family=key[0], space_groups=tuple(sgs))
        for i, (key, sgs) in enumerate(ordered, start=1)
    )


@lru_cache(maxsize=1)
def _group_of_space_group() -> dict[int, ExtinctionGroup]:
    return {n: group for group in extinction_groups() for n in group.space_groups}


def extinction_group_of(space_group_number: int) -> ExtinctionGroup:
    """The extinction group containing space group ``space_group_number``."""
    return _group_of_space_group()[check_space_group_number(space_group_number)]


def extinction_group_by_index(index: int) -> ExtinctionGroup:
    """The extinction group numbered ``index`` (1-based, as in :func:`extinction_groups`)."""
    groups = extinction_groups()
    if not 1 <= int(index) <= len(groups):
        raise ValueError(f"extinction group index must be between 1 and {len(groups)}, got {index}")
    return groups[int(index) - 1]
