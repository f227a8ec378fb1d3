"""Powder indexing by successive dichotomy for monoclinic cells (four parameters, unique axis b).

DICVOL's method (Boultif & Louër 1991) as ``tasks.orthorhombic_indexing`` runs it, in the space of the reciprocal
metric: ``s = 1/d^2 = h^2 A + k^2 B + l^2 C + h l D`` with ``A = a*^2``, ``B = b*^2``, ``C = c*^2`` and
``D = 2 a* c* cos β*`` (Å⁻²). ``s`` is linear in (A, B, C, D), so the band of a line over a box of parameters is
exact interval arithmetic, and a box survives while every observed peak but ``MAX_MISSING`` meets the band of
some allowed line (h k l); surviving boxes are halved along their relatively widest side until they are one cell,
which is scored: most peaks indexed, then fewest calculated lines. A box is dropped when the lines that every cell
in it has exceed ``MAX_LINES_PER_PEAK`` per peak, and (branch and bound) when it cannot beat the best cell found.

Each lattice is searched once, not in its many settings: the (a*, c*) net is taken reduced, ``0 <= D <= min(A,
C)`` (so β = 180° - β* lies in [90°, 120°]), and for the primitive lattice ``A >= C`` (a <= c as the reciprocal
axes order them). A centred monoclinic lattice in a reduced (a, c) net is centred on (a, b) (C), (b, c) (A, which
is C with a and c swapped) or (a, b, c) (I), so the centred search runs the C and I rules without ordering a and
c; ``tasks.cells`` reports an I cell in the C setting.

As DICVOL does, the cells are searched by volume shells (``VOLUME_SHELLS_ANGSTROM3``), smallest first, each
shell's search bounded by the best cell of the smaller ones: a box is dropped when all its cells lie outside the
shell (the reciprocal volume squared, ``B (A C - D^2 / 4)``, is monotone in each parameter over a reduced net).

Four free parameters index 12 peaks with some cell more often than three do: a search's cell is only believed
after ``tasks.cells`` refines it on the first 20 peaks and de Wolff's M20 is high. The search takes ~0.1-2 s a
rule and pattern (compiled; the boxes of all shells together are capped by ``MAX_BOXES``), so it serves ``--cell``
for monoclinic answers, not the classifier's features.
"""

from __future__ import annotations

import numba
import numpy as np

from tasks.dichotomy_indexing import halve_box
from tasks.reflection_rules import allows, rule_table

# As the orthorhombic search: 12 peaks, one of them free to be an impurity line or a merged doublet, at most 4
# lines per peak (16 peaks: right cells 0.23 against 0.30 on 40 patterns of bench/monoclinic_indexing.py's tuning
# draw, at 1.5x the time). The stop width is 5x the orthorhombic one: the four-dimensional boxes are many, and
# tasks.cells refines the cell found by least squares anyway (1e-3 and 2e-4 found the same cells on 4 MP
# structures, 2-3x faster; 3e-3 lost cells).
N_PEAKS = 12
MAX_MISSING = 1
MAX_LINES_PER_PEAK = 4.0
AXIS_MIN_ANGSTROM = 2.5
A_MAX_ANGSTROM, B_MAX_ANGSTROM, C_MAX_ANGSTROM = 16.0, 20.0, 25.0  # a <= c for the primitive search
STOP_RELATIVE_WIDTH = 1e-3
# a hard cap on the work per search (~2 s): right cells on 100 patterns of the tuning draw with caps of 0.7 / 2 / 4
# million boxes 0.12 / 0.33 / 0.36, mean time per answer 1.7 / 3.1 / 3.7 s (largest 4.7 / 8.6 / 16.5 s)
MAX_BOXES = 2_000_000
# DICVOL's volume shells: the cells of each shell (Å^3, ascending) are searched after those of the smaller ones,
# each shell's search bounded by the best cell found before it. On the 120 patterns of the tuning draw, one search
# over all volumes -> these shells: right cells 0.342 -> 0.350, mean time per answer 3.52 -> 3.04 s (in one run);
# stopping at the first shell with a cell indexing every peak changed neither (0.350, 3.04 s).
VOLUME_SHELLS_ANGSTROM3 = (200.0, 400.0, 800.0, 1200.0, 1600.0, 2400.0, 3200.0, np.inf)
CENTRED_RULES = ("C", "I")  # the centred lattice's settings in a reduced (a, c) net (A is C with a, c swapped)


@numba.njit(cache=True, nogil=True)
def _first_fitting_h(lo_s, hi_s, A_lo, A_hi, B_lo, B_hi, C_lo, C_hi, D_lo, D_hi, table, h_start):
    """The first ``h >= h_start`` for which some allowed (h k l) has a band of ``s`` over the box meeting
    [lo_s, hi_s], or -1. Lines are (h >= 0, k >= 0, l of either sign; l >= 0 where h = 0). In a reduced net
    ``h^2 A + l^2 C + h l D >= (h^2 A + l^2 C) / 2``, which bounds h and l."""
    h_max = int(np.sqrt(2.0 * hi_s / A_lo)) + 1
    l_max = int(np.sqrt(2.0 * hi_s / C_lo)) + 1
    for h in range(h_start, h_max + 1):
        hA_lo, hA_hi = h * h * A_lo, h * h * A_hi
        if 0.5 * hA_lo > hi_s:
            break
        for l in range(0 if h == 0 else -l_max, l_max + 1):
            hl = h * l
            if hl >= 0:
                rest_lo, rest_hi = hA_lo + l * l * C_lo + hl * D_lo, hA_hi + l * l * C_hi + hl * D_hi
            else:
                rest_lo, rest_hi = hA_lo + l * l * C_lo + hl * D_hi, hA_hi + l * l * C_hi + hl * D_lo
            if rest_lo > hi_s:
                continue
            need = lo_s - rest_hi
            k_lo = int(np.ceil(np.sqrt(need / B_hi))) if need > 0 else 0
            k_hi = int(np.sqrt((hi_s - rest_lo) / B_lo))
            for k in range(k_lo, min(k_hi, k_lo + 4) + 1):  # beyond k = 0 the rules repeat every 4
                if (h != 0 or k != 0 or l != 0) and allows(table, h, k, l):
                    return h
    return -1


@numba.njit(cache=True, nogil=True)
def _n_lines(A, B, C, D_pos, D_neg, s_max, table, limit):
    """Allowed lines with ``s <= s_max``, counted up to ``limit``, where ``h l D`` is read as ``h l D_pos`` for
    ``h l >= 0`` and ``h l D_neg`` otherwise: with (A, B, C) the box's largest and (D_pos, D_neg) its largest and
    smallest D, the lines every cell of the box has; with D_pos = D_neg = D, one cell's."""
    n = 0
    h_max = int(np.sqrt(2.0 * s_max / A)) + 1
    l_max = int(np.sqrt(2.0 * s_max / C)) + 1
    for h in range(0, h_max + 1):
        for l in range(0 if h == 0 else -l_max, l_max + 1):
            hl = h * l
            rest = h * h * A + l * l * C + hl * (D_pos if hl >= 0 else D_neg)
            if rest > s_max:
                continue
            for k in range(0, int(np.sqrt((s_max - rest) / B)) + 1):
                if (h != 0 or k != 0 or l != 0) and allows(table, h, k, l):
                    n += 1
            if n > limit:
                return n
    return n


@numba.njit(cache=True, nogil=True)
def _hits(s_obs, tol, A, B, C, D, table):
    hits = 0
    for i in range(s_obs.shape[0]):
        hits += _first_fitting_h(s_obs[i] - tol[i], s_obs[i] + tol[i], A, A, B, B, C, C, D, D, table, 0) >= 0
    return hits


@numba.njit(cache=True, nogil=True)
def search_monoclinic(s_obs, tol, table, ordered_ac, lows, highs, max_missing, max_lines_per_peak, stop_width,
                      max_boxes, w_lo=0.0, w_hi=np.inf, best_hits=-1, best_lines=1 << 30):
    """The best cell over the box ``lows``-``highs`` of (A, B, C, D) with ``0 <= D <= min(A, C)`` (and A >= C if
    ``ordered_ac``) whose squared reciprocal volume ``w = B (A C - D^2 / 4)`` (Å⁻⁶) lies in [w_lo, w_hi], better
    than ``best_hits`` peaks indexed with ``best_lines`` lines: (hits, lines, A, B, C, D), hits NaN where none, and
    the boxes visited."""
    n_obs = s_obs.shape[0]
    s_max = s_obs[n_obs - 1] + tol[n_obs - 1]
    stack = np.empty((8192, 8))
    for j in range(4):
        stack[0, 2 * j], stack[0, 2 * j + 1] = lows[j], highs[j]
    first_h = np.zeros((8192, n_obs), np.int16)  # per box and peak, the first h that may index it
    here = np.empty(n_obs, np.int16)
    top = 1
    best = np.full(6, np.nan)
    boxes = 0
    max_lines = int(max_lines_per_peak * n_obs)
    while top > 0 and boxes < max_boxes:
        top -= 1
        A_lo, A_hi, B_lo, B_hi = stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3]
        C_lo, C_hi, D_lo, D_hi = stack[top, 4], stack[top, 5], stack[top, 6], stack[top, 7]
        boxes += 1
        if (ordered_ac and A_hi < C_lo) or D_lo > min(A_hi, C_hi):  # another setting, or no reduced net
            continue
        if B_hi * (A_hi * C_hi - 0.25 * D_lo * D_lo) < w_lo or B_lo * (A_lo * C_lo - 0.25 * D_hi * D_hi) > w_hi:
            continue  # every cell of the box outside the volume shell
        min_lines = _n_lines(A_hi, B_hi, C_hi, D_hi, D_lo, s_max, table, max_lines)
        if min_lines > max_lines:
            continue
        allowed = min(max_missing, n_obs - best_hits)
        missing = 0
        for i in range(n_obs):
            start = first_h[top, i]
            if start >= 0:
                start = _first_fitting_h(s_obs[i] - tol[i], s_obs[i] + tol[i], A_lo, A_hi, B_lo, B_hi, C_lo, C_hi,
                                         D_lo, D_hi, table, start)
            here[i] = start
            if start < 0:
                missing += 1
                if missing > allowed:
                    break
        if missing > allowed or (n_obs - missing == best_hits and min_lines >= best_lines):
            continue
        width_a, width_b, width_c = (A_hi - A_lo) / A_lo, (B_hi - B_lo) / B_lo, (C_hi - C_lo) / C_lo
        width_d = (D_hi - D_lo) / min(A_lo, C_lo)
        if max(width_a, width_b, width_c, width_d) <= stop_width:
            A, B, C, D = 0.5 * (A_lo + A_hi), 0.5 * (B_lo + B_hi), 0.5 * (C_lo + C_hi), 0.5 * (D_lo + D_hi)
            if D > min(A, C) or not w_lo <= B * (A * C - 0.25 * D * D) <= w_hi:
                continue
            hits = _hits(s_obs, tol, A, B, C, D, table)
            lines = _n_lines(A, B, C, D, D, s_max, table, 1 << 30)
            if hits < best_hits or (hits == best_hits and lines >= best_lines):
                continue
            best_hits, best_lines = hits, lines
            best[0], best[1], best[2], best[3], best[4], best[5] = hits, lines, A, B, C, D
            continue
        if top + 2 > stack.shape[0]:
            break
        axis, width = 0, width_a  # halve the relatively widest side
        if width_b > width:
            axis, width = 2, width_b
        if width_c > width:
            axis, width = 4, width_c
        if width_d > width:
            axis = 6
        top = halve_box(stack, first_h, top, axis, here)
    return best, boxes


def reciprocal_metric(a_angstrom: float, b_angstrom: float, c_angstrom: float, beta_deg: float) -> np.ndarray:
    """``(A, B, C, D)`` (Å⁻²) of a monoclinic cell, unique axis b: ``s = h^2 A + k^2 B + l^2 C + h l D``."""
    sin_beta, cos_beta = np.sin(np.radians(beta_deg)), np.cos(np.radians(beta_deg))
    return np.array([1.0 / (a_angstrom * sin_beta) ** 2, 1.0 / b_angstrom ** 2, 1.0 / (c_angstrom * sin_beta) ** 2,
                     -2.0 * cos_beta / (a_angstrom * c_angstrom * sin_beta ** 2)])


def cell_of_metric(A: float, B: float, C: float, D: float) -> tuple[float, float, float, float]:
    """``(a, b, c, β)`` (Å, degrees) of a reciprocal metric (``reciprocal_metric``'s inverse); D >= 0 gives
    β >= 90°."""
    cos_beta_star = D / (2.0 * np.sqrt(A * C))
    sin_beta = np.sqrt(1.0 - cos_beta_star ** 2)
    return (float(1.0 / (np.sqrt(A) * sin_beta)), float(1.0 / np.sqrt(B)), float(1.0 / (np.sqrt(C) * sin_beta)),
            float(180.0 - np.degrees(np.arccos(cos_beta_star))))


def index_monoclinic(s_obs: np.ndarray, tol: np.ndarray, rule: str = "P",
                     max_boxes: int | None = None) -> tuple[float, float, float, float, float, float] | None:
    """The best monoclinic cell for the first ``N_PEAKS`` peaks at ``s_obs`` (``1/d^2``, Å⁻², ascending) with
    tolerances ``tol`` (Å⁻²) whose lines ``rule`` allows (``P``, a centred setting of ``CENTRED_RULES``, or a
    space group's conditions in one setting, ``tasks.reflection_rules.allowed_mask``'s ``"m14:h,h+l"``):
    ``(fraction indexed, lines per peak, a, b, c, β)`` in Å and degrees, or None when no cell indexes all but
    ``MAX_MISSING`` peaks."""
    if rule not in ("P", *CENTRED_RULES) and not rule.startswith("m"):
        raise ValueError(f"unknown monoclinic rule {rule!r}: P, C, I or a group's 'm<number>:setting'")
    s = np.ascontiguousarray(s_obs[:N_PEAKS], dtype=np.float64)
    t = np.ascontiguousarray(tol[:N_PEAKS], dtype=np.float64)
    a_max = A_MAX_ANGSTROM if rule == "P" else C_MAX_ANGSTROM  # a centred cell's a may be its longest axis
    lows = np.array([a_max ** -2, B_MAX_ANGSTROM ** -2, C_MAX_ANGSTROM ** -2, 0.0])
    highs = np.full(4, AXIS_MIN_ANGSTROM ** -2)
    best, best_hits, best_lines, v_lo = None, -1, 1 << 30, 0.0
    boxes_left = MAX_BOXES if max_boxes is None else max_boxes
    for v_hi in VOLUME_SHELLS_ANGSTROM3:
        found, boxes = search_monoclinic(s, t, rule_table(rule), rule == "P", lows, highs, MAX_MISSING,
                                         MAX_LINES_PER_PEAK, STOP_RELATIVE_WIDTH, boxes_left, 1.0 / v_hi ** 2,
                                         1.0 / v_lo ** 2 if v_lo > 0 else np.inf, best_hits, best_lines)
        boxes_left -= boxes
        if found[0] >= 0:
            best, best_hits, best_lines = found, int(found[0]), int(found[1])
        if boxes_left <= 0:
            break
        v_lo = v_hi
    if best is None:
        return None
    hits, lines, A, B, C, D = best
    return (hits / len(s), lines / len(s), *cell_of_metric(A, B, C, D))
