"""Reflection rules: which (h k l) a lattice centring or a space group's glides and screws allow, in the settings
the indexing searches see.

A rule is a string: a centring (``P``, ``C``, ``I``, ``F``), an orthorhombic space group with its axes relabelled
(``"62:cab"``), or a monoclinic one in a setting of a reduced (a, c) net (``"m14:h,h+l"``). Each compiles to a
table indexed by which indices are zero and their residues mod 4 (``rule_table``), which the compiled dichotomy
searches (``tasks.orthorhombic_indexing``, ``tasks.monoclinic_indexing``) read per line through ``allows``, and
``tasks.cells`` reads through ``allowed_mask`` to label a cell's peaks.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numba
import numpy as np
import spglib

from tasks.crystallography import centring_allows, hall_numbers_by_space_group
from tasks.extinction import absent_reflections

# A monoclinic group's conditions (unique axis b) in a setting of a reduced (a, c) net: the standard setting's
# (h, l) as combinations of ours. Its conditions are parities, so the six maps of GL(2, Z/2) are every setting;
# each is also the basis change (a_std, c_std) = M (a, c), an integer matrix of determinant +-1.
MONOCLINIC_SETTINGS = {"hl": ((1, 0), (0, 1)), "lh": ((0, 1), (1, 0)), "h,h+l": ((1, 0), (1, 1)),
                       "h+l,l": ((1, 1), (0, 1)), "l,h+l": ((0, 1), (1, 1)), "h+l,h": ((1, 1), (1, 0))}


def allowed_mask(rule: str, h: np.ndarray, k: np.ndarray, l: np.ndarray) -> np.ndarray:
    """Which reflections (h k l) a rule allows: a lattice centring (``P``, ``C``, ``I``, ``F``), an orthorhombic
    space group's own reflection conditions with its axes relabelled (``"62:cab"``: our a, b, c are the standard
    setting's c, a, b, as ``orthorhombic_axes_rules`` makes them), or a monoclinic one's in a setting of
    ``MONOCLINIC_SETTINGS`` (``"m14:h,h+l"``: the standard l is our h + l, P2_1/c seen as P2_1/n). (0 0 0) is never
    allowed."""
    h, k, l = (np.asarray(x, dtype=np.int64) for x in (h, k, l))
    zero = (h == 0) * 4 + (k == 0) * 2 + (l == 0)
    return rule_table(rule)[zero, h % 4, k % 4, l % 4].astype(bool)


@lru_cache(maxsize=None)
def rule_table(rule: str) -> np.ndarray:
    """``table[zero, h % 4, k % 4, l % 4]`` (uint8): whether a rule allows (h k l), ``zero`` = 4 [h = 0] + 2 [k = 0]
    + [l = 0]. Orthorhombic reflection conditions (centring, glides, screws) are all parities or residues mod 4 of
    the indices within one of these zero patterns, so one representative of each entry decides it for every
    (h k l): the residue itself, 4 for a non-zero index of residue 0. So are monoclinic ones, whose standard indices
    are sums of ours (``MONOCLINIC_SETTINGS``)."""
    if ":" in rule:
        number, axes = rule.split(":")
        if number.startswith("m") and axes not in MONOCLINIC_SETTINGS:
            raise ValueError(f"unknown monoclinic setting {axes!r}: one of {', '.join(MONOCLINIC_SETTINGS)}")
        ops = spglib.get_symmetry_from_database(hall_numbers_by_space_group()[int(number.lstrip("m"))][0])
    elif rule not in ("P", "C", "I", "F"):
        raise ValueError(f"unknown rule {rule!r}: P, C, I, F, 'number:axes' or 'm<number>:setting'")
    table = np.zeros((8, 4, 4, 4), np.uint8)
    for zero in range(7):  # 7: (0 0 0)
        entries = [residues for residues in itertools.product(range(4), repeat=3)
                   if all((residue == 0) or not zero & bit for residue, bit in zip(residues, (4, 2, 1)))]
        ours = np.array([[0 if zero & bit else (residue or 4) for residue, bit in zip(residues, (4, 2, 1))]
                         for residues in entries])
        if ":" in rule and number.startswith("m"):
            (m00, m01), (m10, m11) = MONOCLINIC_SETTINGS[axes]
            standard = np.stack([m00 * ours[:, 0] + m01 * ours[:, 2], ours[:, 1], m10 * ours[:, 0] + m11 * ours[:, 2]],
                                axis=1)
            allowed = ~absent_reflections(np.asarray(ops["rotations"]), np.asarray(ops["translations"]), standard)
        elif ":" in rule:
            standard = np.zeros_like(ours)
            for i, axis in enumerate(axes):  # our axis i is the standard setting's ``axis``
                standard[:, "abc".index(axis)] = ours[:, i]
            allowed = ~absent_reflections(np.asarray(ops["rotations"]), np.asarray(ops["translations"]), standard)
        else:
            allowed = centring_allows(rule, *ours.T)
        for residues, ok in zip(entries, allowed):
            table[(zero, *residues)] = ok
    table.flags.writeable = False
    return table


def orthorhombic_axes_rules(space_group_number: int) -> list[str]:
    """The rules of an orthorhombic space group's reflection conditions, one per assignment of the standard
    setting's axes to ascending lengths whose conditions differ (one for Pmmm, six for Pnma)."""
    return distinct_rules([f"{space_group_number}:{axes}" for axes in ("abc", "acb", "bac", "bca", "cab", "cba")])


def distinct_rules(rules, excluded=()) -> list[str]:
    """``rules`` in order, less each one that allows the same reflections as an earlier one or one of
    ``excluded``: each is searched once."""
    out, seen = [], {rule_table(rule).tobytes() for rule in excluded}
    for rule in rules:
        key = rule_table(rule).tobytes()
        if key not in seen:
            seen.add(key)
            out.append(rule)
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def allows(table, h, k, l):
    """``rule_table``'s answer for (h k l) inside compiled searches (``table`` is the rule's table)."""
    return table[(h == 0) * 4 + (k == 0) * 2 + (l == 0), h % 4, k % 4, l % 4] != 0


def orthorhombic_group_rules(space_group_number: int, lattice_centring: str = "P") -> list[str]:
    """An orthorhombic space group's own reflection rules (``orthorhombic_axes_rules``: each assignment of its standard
    axes to the ascending lengths), less those that remove no more lines than its lattice's centring."""
    return distinct_rules(orthorhombic_axes_rules(space_group_number), excluded=[lattice_centring])


def monoclinic_group_rules(space_group_number: int, lattice_centring: str = "P") -> list[str]:
    """A monoclinic space group's own reflection rules in each setting of a reduced (a, c) net whose conditions
    differ (``"m14:h,h+l"``, ``MONOCLINIC_SETTINGS``), less those that remove no more
    lines than its lattice's centring in some setting."""
    lattice = 5 if lattice_centring == "C" else 3  # C2, P2: the centring alone, in each setting
    return distinct_rules([f"m{space_group_number}:{setting}" for setting in MONOCLINIC_SETTINGS],
                          excluded=[f"m{lattice}:{setting}" for setting in MONOCLINIC_SETTINGS])
