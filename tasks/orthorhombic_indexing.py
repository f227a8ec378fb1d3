"""Powder indexing by successive dichotomy for orthorhombic cells (three parameters).

DICVOL's method (Louër & Louër 1972; Boultif & Louër 1991), as ``tasks.dichotomy_indexing`` runs it for the
two-parameter lattices, in the space of ``s = 1/d^2 = h^2 A + k^2 B + l^2 C`` (``A = 1/a^2``, ``B = 1/b^2``,
``C = 1/c^2``): a box of (A, B, C) survives while every observed peak but ``MAX_MISSING`` lies within the band of
some allowed line (h k l) as the parameters range over the box; surviving boxes are halved along their relatively
widest side until they are one cell, which is scored: most peaks indexed, then fewest calculated lines (de Wolff's
M20 idea). A box is dropped when even its smallest cell has more than ``MAX_LINES_PER_PEAK`` lines per peak, and
(branch and bound) when it cannot beat the best cell found.

The axes are searched in ascending length (a <= b <= c), so each cell is searched once, not six times; for the
base-centred lattice only a <= b, the centred face being (a, b) (C; an A- or B-centred setting is the same lattice
with its axes relabelled). The centrings, and a space group's glide and screw conditions, are conditions on the
indices mod 4 (``tasks.reflection_rules``), checked per line, so the search for a centred lattice or a space group
sees only its allowed lines and finds its cell, not a cell whose extra lines would exceed the line budget (a Pnma
crystal's cell has a third fewer lines than its primitive lattice's among the first peaks: 16 against 25 for
InLaO3).

This search is for the cell behind an orthorhombic answer (``tasks.cells``): at tens of milliseconds a pattern it
is too slow for the classifier's features, which must stay near a millisecond a pattern.
"""

from __future__ import annotations

import numba
import numpy as np

from tasks.dichotomy_indexing import halve_box
from tasks.reflection_rules import allows, rule_table

# Chosen on bench/cell_indexing.py's tuning draw (150 orthorhombic patterns, right cells after tasks.cells's
# refinement): 10 / 12 / 15 / 20 peaks with 1, 1, 1 / 2, 2 missing 0.41 / 0.53 / 0.49 / 0.51 / 0.49; 6 lines per peak
# instead of 4 lets in more of the real cells (MP's large cells, whose space group removes many lines) but more
# wrong ones too: 0.57 against 0.58, at 2-3x the time.
N_PEAKS = 12
MAX_MISSING = 1  # an impurity line or a merged doublet
MAX_LINES_PER_PEAK = 4.0
A_MIN_ANGSTROM, A_MAX_ANGSTROM = 2.5, 16.0  # shortest axis
B_MAX_ANGSTROM, C_MAX_ANGSTROM = 20.0, 25.0  # middle and longest
STOP_RELATIVE_WIDTH = 2e-4  # a box this narrow in A, B and C (relative) is one cell
MAX_BOXES = 400_000  # a hard cap on the work per search


@numba.njit(cache=True, nogil=True, inline="always")
def _any_h(table, h_lo, h_hi, k, l):
    """Whether some h in [h_lo, h_hi] makes (h k l) allowed (beyond h = 0 the rule repeats every 4)."""
    for h in range(h_lo, min(h_hi, h_lo + 4) + 1):
        if allows(table, h, k, l):
            return True
    return False


@numba.njit(cache=True, nogil=True)
def _peak_fits(lo_s, hi_s, A_lo, A_hi, B_lo, B_hi, C_lo, C_hi, table, l_start):
    """The first ``l >= l_start`` for which some allowed (h k l) has a band over the box meeting [lo_s, hi_s],
    or -1."""
    l = l_start
    while l * l * C_lo <= hi_s:
        l2_lo, l2_hi = l * l * C_lo, l * l * C_hi
        k = 0
        while l2_lo + k * k * B_lo <= hi_s:
            rest_hi = hi_s - l2_lo - k * k * B_lo
            rest_lo = lo_s - l2_hi - k * k * B_hi
            h_hi = int(np.sqrt(rest_hi / A_lo))
            h_lo = int(np.ceil(np.sqrt(rest_lo / A_hi))) if rest_lo > 0 else 0
            if _any_h(table, h_lo, h_hi, k, l):
                return l
            k += 1
        l += 1
    return -1


@numba.njit(cache=True, nogil=True)
def _n_lines(A, B, C, s_max, table, limit):
    """Allowed lines (h k l >= 0, not all zero) with ``s <= s_max``, counted up to ``limit``; fewer as the
    parameters grow."""
    n = 0
    l = 0
    while l * l * C <= s_max:
        k = 0
        while l * l * C + k * k * B <= s_max:
            h_hi = int(np.sqrt((s_max - l * l * C - k * k * B) / A))
            n += allows(table, 0, k, l)
            zero = (k == 0) * 2 + (l == 0)
            for r in range(4):  # h >= 1 with h % 4 == r
                if table[zero, r, k % 4, l % 4]:
                    n += (h_hi - r) // 4 - (-r) // 4
            if n > limit:
                return n
            k += 1
        l += 1
    return n


@numba.njit(cache=True, nogil=True)
def _hits(s_obs, tol, A, B, C, table):
    hits = 0
    for i in range(s_obs.shape[0]):
        hits += _peak_fits(s_obs[i] - tol[i], s_obs[i] + tol[i], A, A, B, B, C, C, table, 0) >= 0
    return hits


@numba.njit(cache=True, nogil=True)
def _worse(hits, lines, other_hits, other_lines):
    return hits < other_hits or (hits == other_hits and lines >= other_lines)


@numba.njit(cache=True, nogil=True)
def search_orthorhombic(s_obs, tol, table, ordered_bc, A_min, A_max, B_min, B_max, C_min, C_max, max_missing,
                        max_lines_per_peak, stop_width, max_boxes, n_best):
    """The ``n_best`` best distinct cells over the box, with A >= B (and B >= C if ``ordered_bc``): rows
    (hits, lines, A, B, C) best first (hits -1 for rows not filled), and the boxes visited."""
    n_obs = s_obs.shape[0]
    s_max = s_obs[n_obs - 1] + tol[n_obs - 1]
    stack = np.empty((4096, 6))
    stack[0, 0], stack[0, 1], stack[0, 2], stack[0, 3], stack[0, 4], stack[0, 5] = (A_min, A_max, B_min, B_max,
                                                                                      C_min, C_max)
    first_l = np.zeros((4096, n_obs), np.int16)  # per box and peak, the first l that may index it (as in 2D)
    here = np.empty(n_obs, np.int16)
    top = 1
    best = np.full((n_best, 5), np.nan)
    best[:, 0] = -1
    best[:, 1] = 1 << 30
    best_hits, best_lines = -1, 1 << 30  # of the n_best-th cell: the bound
    boxes = 0
    max_lines = int(max_lines_per_peak * n_obs)
    while top > 0 and boxes < max_boxes:
        top -= 1
        A_lo, A_hi, B_lo, B_hi, C_lo, C_hi = (stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3],
                                              stack[top, 4], stack[top, 5])
        boxes += 1
        if A_hi < B_lo or (ordered_bc and B_hi < C_lo):  # a > b (or b > c): searched in another order
            continue
        min_lines = _n_lines(A_hi, B_hi, C_hi, s_max, table, max_lines)  # the box's smallest cell
        if min_lines > max_lines:
            continue
        allowed = min(max_missing, n_obs - best_hits)
        missing = 0
        for i in range(n_obs):
            start = first_l[top, i]
            if start >= 0:
                start = _peak_fits(s_obs[i] - tol[i], s_obs[i] + tol[i], A_lo, A_hi, B_lo, B_hi, C_lo, C_hi,
                                   table, start)
            here[i] = start
            if start < 0:
                missing += 1
                if missing > allowed:
                    break
        if missing > allowed or (n_obs - missing == best_hits and min_lines >= best_lines):
            continue
        width_a = (A_hi - A_lo) / A_lo
        width_b = (B_hi - B_lo) / B_lo
        width_c = (C_hi - C_lo) / C_lo
        if width_a <= stop_width and width_b <= stop_width and width_c <= stop_width:
            A, B, C = 0.5 * (A_lo + A_hi), 0.5 * (B_lo + B_hi), 0.5 * (C_lo + C_hi)
            hits = _hits(s_obs, tol, A, B, C, table)
            lines = _n_lines(A, B, C, s_max, table, 1 << 30)
            if _worse(hits, lines, best_hits, best_lines):
                continue
            # the same cell from a neighbouring box takes its own row's place (if better), a new one the last row's
            slot = n_best - 1
            for j in range(n_best):
                if best[j, 0] >= 0 and abs(best[j, 2] / A - 1) < 1e-3 and abs(best[j, 3] / B - 1) < 1e-3 \
                        and abs(best[j, 4] / C - 1) < 1e-3:
                    slot = j
                    break
            if best[slot, 0] >= 0 and _worse(hits, lines, best[slot, 0], best[slot, 1]):
                continue
            best[slot, 0], best[slot, 1], best[slot, 2], best[slot, 3], best[slot, 4] = hits, lines, A, B, C
            for j in range(slot, 0, -1):  # keep the rows sorted, best first
                if _worse(best[j - 1, 0], best[j - 1, 1], best[j, 0], best[j, 1]):
                    for col in range(5):
                        best[j - 1, col], best[j, col] = best[j, col], best[j - 1, col]
            best_hits, best_lines = int(best[n_best - 1, 0]), int(best[n_best - 1, 1])
            continue
        if top + 2 > stack.shape[0]:
            break
        # halve the relatively widest side
        if width_a >= width_b and width_a >= width_c:
            axis = 0
        elif width_b >= width_c:
            axis = 2
        else:
            axis = 4
        top = halve_box(stack, first_l, top, axis, here)
    return best, boxes


def index_orthorhombic(s_obs: np.ndarray, tol: np.ndarray, rule: str = "P", n_best: int = 1,
                       max_boxes: int = MAX_BOXES) -> list[tuple[float, float, float, float, float]]:
    """The ``n_best`` best orthorhombic cells for the first ``N_PEAKS`` peaks at ``s_obs`` (``1/d^2``, Å⁻²,
    ascending) with tolerances ``tol`` (Å⁻²), best first, whose lines are those ``rule`` allows (a centring, or a
    space group's conditions: ``tasks.reflection_rules.allowed_mask``): ``(fraction indexed, lines per peak, a, b,
    c)`` in Å (a <= b <= c; for C, a <= b); empty when no cell indexes all but ``MAX_MISSING`` peaks."""
    s = np.ascontiguousarray(s_obs[:N_PEAKS], dtype=np.float64)
    t = np.ascontiguousarray(tol[:N_PEAKS], dtype=np.float64)
    best, _ = search_orthorhombic(
        s, t, rule_table(rule), rule != "C", 1.0 / A_MAX_ANGSTROM ** 2, 1.0 / A_MIN_ANGSTROM ** 2,
        1.0 / B_MAX_ANGSTROM ** 2, 1.0 / A_MIN_ANGSTROM ** 2, 1.0 / C_MAX_ANGSTROM ** 2, 1.0 / A_MIN_ANGSTROM ** 2,
        MAX_MISSING, MAX_LINES_PER_PEAK, STOP_RELATIVE_WIDTH, max_boxes, n_best)
    return [(hits / len(s), lines / len(s), float(A ** -0.5), float(B ** -0.5), float(C ** -0.5))
            for hits, lines, A, B, C in best if hits >= 0]
