"""Powder indexing by successive dichotomy for the two-parameter lattices (tetragonal, hexagonal/trigonal).

The method is DICVOL's (Louër & Louër 1972; Boultif & Louër 1991): the parameter space of
``s = 1/d^2 = f m A + l^2 C`` (tetragonal ``m = h^2 + k^2``, f = 1; hexagonal axes ``m = h^2 + h k + k^2``,
f = 4/3; ``A = 1/a^2``, ``C = 1/c^2``) is cut into boxes. A box survives while every observed peak but
``MAX_MISSING`` lies within the band of some line ``(m, l)`` as (A, C) range over the box; surviving boxes are
halved along their relatively wider side until they are small enough to be one cell, which is scored.

Why not only the trial indexing of ``tasks.indexing``: MP cells are large (a ~ 8-15 Å), so their first peaks are
lines like (2 2 1) or (3 1 2), not the low-index reflections trial schemes assume; trial indexing scored the
true cell of tetragonal MP structures below wrong ones. On measured-like patterns of 120 tetragonal and 120
hexagonal/trigonal MP structures this search returns the true cell (a and c within 1 %) for 42 % and 47 % of
them (57 % and 68 % without zero shift, Kα2 and impurities), and the classifier gains ~5 points of crystal-system
accuracy (BENCHMARKS.md).

Choices (classifier numbers: 4,000 MP materials x 3 measured-like patterns to train, 800 x 2 to test, SG top-1 /
crystal system; without these features 0.211 / 0.470):

- the tolerance is an angle, ``TOLERANCE_TWO_THETA_DEG`` on every peak: a zero shift and the sample displacement
  move all peaks by about the same angle, a large relative error at low angle (true tetragonal cells found:
  36 % at 0.03°, 47 % at 0.05°);
- best cell = most peaks indexed, then fewest calculated lines (the M20 idea). Branch and bound drops a box
  when even its best point (every compatible peak indexed, the lines of its smallest cell) cannot beat the best
  cell found: the plain search's answer with less work (``bench/featurize_speed.py``);
- cells with more than ``MAX_LINES_PER_PEAK`` calculated lines per observed peak are not searched: at 4 instead
  of 6, half the cost and 0.229 / 0.523 instead of 0.225 / 0.525;
- a <= ``A_MAX_ANGSTROM``, c <= ``C_MAX_ANGSTROM``: 0.6x the cost of 25 / 40 Å, which gave 0.238 / 0.536.

Only primitive cells are searched: an I- or R-centred cell's lines are a subset of its primitive setting's, so
the search finds the same cell with more calculated lines. ``centred_fit`` then checks the centred lattice on
that cell (I for tetragonal, R for hexagonal axes): whether its lines alone index the peaks, and how many it
has, i.e. whether the centring explains the absences. Two seeds of the experiment above, mean SG top-1 / top-5 /
crystal system / extinction group: 0.228 / 0.496 / 0.524 / 0.274 without, 0.239 / 0.509 / 0.527 / 0.292 with
(trigonal recall 0.26 -> 0.34 on seed 1), at no search cost. Searching the I and R lattices by dichotomy as
well gave 0.239 / 0.520 / 0.535 / 0.291 but doubled the search time: not adopted.
"""

from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np

from tasks.indexing import metric_factor

N_PEAKS = 12
TOLERANCE_TWO_THETA_DEG = 0.05
MAX_MISSING = 1  # an impurity line or a merged doublet
MAX_LINES_PER_PEAK = 4.0
A_MIN_ANGSTROM, A_MAX_ANGSTROM = 2.5, 16.0
C_MIN_ANGSTROM, C_MAX_ANGSTROM = 2.0, 25.0
STOP_RELATIVE_WIDTH = 2e-4  # a box this narrow in A and C (relative) is one cell
MAX_BOXES = 200_000  # a hard cap on the work per search; 1,548 MP-pattern searches needed at most 14,941
M_MAX = 1023
L_MAX = 24
FAMILIES = ("tetragonal", "hexagonal")
CENTRING = {"tetragonal": "I", "hexagonal": "R"}  # the centred lattice of each family, checked on the found cell

DICHOTOMY_LABELS = tuple(f"{kind}_{family}" for family in FAMILIES
                         for kind in ("dicvol_indexed", "dicvol_lines_per_peak", "dicvol_c_over_a",
                                      f"dicvol_{CENTRING[family]}_indexed", f"dicvol_{CENTRING[family]}_lines_per_peak"))


@lru_cache(maxsize=None)
def allowed_line_counts(family: str, centring: str = "P") -> np.ndarray:
    """``counts[l, m + 1]``: how many ``m' <= m`` are of the form ``h^2 + k^2`` (tetragonal) or ``h^2 + h k + k^2``
    (hexagonal) with (h, k, l) not all zero and allowed by the centring (prefix sums, so a range of ``m`` is
    checked in O(1)).

    Both centrings are conditions on (m, l) alone. I (h + k + l even): h^2 + k^2 ≡ h + k (mod 2), so m + l is
    even. R (-h + k + l ≡ 0 mod 3, hexagonal axes; the reverse setting gives the same lines): h^2 + h k + k^2 ≡
    (h - k)^2 (mod 3), so l ≡ 0 needs h ≡ k, i.e. m ≡ 0, and l ≢ 0 needs h ≢ k, i.e. m ≡ 1 (mod 3).
    """
    representable = np.zeros(M_MAX + 1, bool)
    n = int(np.sqrt(M_MAX)) + 2
    h, k = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1))
    m = h * h + k * k if family == "tetragonal" else h * h + h * k + k * k
    representable[m[m <= M_MAX]] = True
    allowed = np.repeat(representable[None, :], L_MAX + 1, axis=0)
    allowed[0, 0] = False  # (0 0 0)
    m_index, l_index = np.arange(M_MAX + 1)[None, :], np.arange(L_MAX + 1)[:, None]
    if centring == "I":
        allowed &= (m_index + l_index) % 2 == 0
    elif centring == "R":
        allowed &= np.where(l_index % 3 == 0, m_index % 3 == 0, m_index % 3 == 1)
    elif centring != "P":
        raise ValueError(f"unknown centring {centring!r}: P, I or R")
    counts = np.zeros((L_MAX + 1, M_MAX + 2), np.int64)
    counts[:, 1:] = np.cumsum(allowed, axis=1)
    return counts


@numba.njit(cache=True, nogil=True)
def _n_lines(A, C, s_max, f, counts):
    """Distinct (m, l) lines with ``f m A + l^2 C <= s_max``; fewer as A or C grows."""
    n = 0
    for l in range(L_MAX + 1):
        rest = s_max - l * l * C
        if rest < 0:
            break
        top = min(int(np.floor(rest / (f * A))), M_MAX)
        n += counts[l, top + 1]
    return n


@numba.njit(cache=True, nogil=True, inline="always")
def _first_compatible_l(lo_s, hi_s, inv_fa_lo, inv_fa_hi, C_lo, C_hi, counts, l_start):
    """The first ``l >= l_start`` for which some allowed line's band over the box [A_lo, A_hi] x [C_lo, C_hi]
    meets the peak's window [lo_s, hi_s], or -1 (``inv_fa_* = 1 / (f A_*)``: multiplications instead of divisions,
    0.7x the search time)."""
    for l in range(l_start, L_MAX + 1):
        l2 = l * l
        if l2 * C_lo > hi_s:
            return -1
        hi = (hi_s - l2 * C_lo) * inv_fa_lo
        if hi < 0:
            continue
        lo = (lo_s - l2 * C_hi) * inv_fa_hi
        m_lo = int(np.ceil(lo)) if lo > 0 else 0
        m_hi = int(hi) if hi < M_MAX else M_MAX
        if m_hi >= m_lo and counts[l, m_hi + 1] > counts[l, m_lo]:
            return l
    return -1


@numba.njit(cache=True, nogil=True)
def _hits_and_lines(s_obs, tol, f, A, C, counts):
    """Peaks indexed by some allowed line of the cell (A, C), and the cell's allowed lines up to the last peak."""
    inverse = 1.0 / (f * A)
    hits = 0
    for i in range(s_obs.shape[0]):
        hits += _first_compatible_l(s_obs[i] - tol[i], s_obs[i] + tol[i], inverse, inverse, C, C, counts, 0) >= 0
    return hits, _n_lines(A, C, s_obs[-1] + tol[-1], f, counts)


@numba.njit(cache=True, nogil=True)
def search_cells(s_obs, tol, f, counts, A_min, A_max, C_min, C_max, max_missing, max_lines_per_peak,
                 stop_width, max_boxes, bound):
    """Best (hits, lines, A, C, boxes visited) over the box; ``bound=False`` is the plain dichotomy (reference)."""
    n_obs = s_obs.shape[0]
    s_max = s_obs[n_obs - 1] + tol[n_obs - 1]
    stack = np.empty((4096, 4))
    stack[0, 0], stack[0, 1], stack[0, 2], stack[0, 3] = A_min, A_max, C_min, C_max
    # per box and peak, the first l that may index it: a line that misses a box's peak misses it in every sub-box,
    # so a sub-box starts where its parent found a line (-1: the peak is missing); exact, 0.6x the search time
    first_l = np.zeros((4096, n_obs), np.int8)
    here = np.empty(n_obs, np.int8)
    top = 1
    best_hits, best_lines, best_A, best_C = -1, 1 << 30, np.nan, np.nan
    boxes = 0
    max_lines = max_lines_per_peak * n_obs
    lo_s = s_obs - tol
    hi_s = s_obs + tol
    while top > 0 and boxes < max_boxes:
        top -= 1
        A_lo, A_hi, C_lo, C_hi = stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3]
        boxes += 1
        min_lines = _n_lines(A_hi, C_hi, s_max, f, counts)  # the box's smallest cell
        if min_lines > max_lines:
            continue
        inv_lo = 1.0 / (f * A_lo)
        inv_hi = 1.0 / (f * A_hi)
        allowed = min(max_missing, n_obs - best_hits) if bound else max_missing
        missing = 0
        for i in range(n_obs):
            start = first_l[top, i]
            if start >= 0:
                start = _first_compatible_l(lo_s[i], hi_s[i], inv_lo, inv_hi, C_lo, C_hi, counts, start)
            here[i] = start
            if start < 0:
                missing += 1
                if missing > allowed:
                    break
        if missing > allowed or (bound and n_obs - missing == best_hits and min_lines >= best_lines):
            continue
        width_a = (A_hi - A_lo) / A_lo
        width_c = (C_hi - C_lo) / C_lo
        if width_a <= stop_width and width_c <= stop_width:
            A = 0.5 * (A_lo + A_hi)
            C = 0.5 * (C_lo + C_hi)
            hits, lines = _hits_and_lines(s_obs, tol, f, A, C, counts)
            if hits > best_hits or (hits == best_hits and lines < best_lines):
                best_hits, best_lines, best_A, best_C = hits, lines, A, C
            continue
        if top + 2 > stack.shape[0]:  # depth-first: the stack holds ~2 boxes per level, ~80 at most
            break
        # the half with the smaller cells is searched first: small solutions found early bound the rest
        if width_a >= width_c:
            mid = 0.5 * (A_lo + A_hi)
            stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3] = A_lo, mid, C_lo, C_hi
            stack[top + 1, 0], stack[top + 1, 1], stack[top + 1, 2], stack[top + 1, 3] = mid, A_hi, C_lo, C_hi
        else:
            mid = 0.5 * (C_lo + C_hi)
            stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3] = A_lo, A_hi, C_lo, mid
            stack[top + 1, 0], stack[top + 1, 1], stack[top + 1, 2], stack[top + 1, 3] = A_lo, A_hi, mid, C_hi
        first_l[top, :] = here
        first_l[top + 1, :] = here
        top += 2
    return best_hits, best_lines, best_A, best_C, boxes


@numba.njit(cache=True, nogil=True, inline="always")
def halve_box(stack, first_index, top, axis, here):
    """Replace the box on top of a dichotomy's ``stack`` (rows of (low, high) pairs) by its two halves along the
    parameter in columns ``axis``, ``axis + 1``, each resuming its peaks' index search at ``here``; the half with
    the larger parameter (the smaller cells) goes on top, to be searched first. Returns the new top."""
    for j in range(stack.shape[1]):
        stack[top + 1, j] = stack[top, j]
    mid = 0.5 * (stack[top, axis] + stack[top, axis + 1])
    stack[top, axis + 1] = mid
    stack[top + 1, axis] = mid
    first_index[top, :] = here
    first_index[top + 1, :] = here
    return top + 2


def peak_tolerance_s(q_inv_angstrom: np.ndarray, wavelength_angstrom: float,
                     tolerance_two_theta_deg: float = TOLERANCE_TWO_THETA_DEG) -> np.ndarray:
    """The tolerance on ``s = 1/d^2`` (Å⁻²) of each peak from an angular one: ``ds = 2 sin(2θ) / λ² · d(2θ)``."""
    two_theta = 2.0 * np.arcsin(np.clip(wavelength_angstrom * q_inv_angstrom / (4.0 * np.pi), 0.0, 1.0))
    return 2.0 * np.sin(two_theta) / wavelength_angstrom ** 2 * np.radians(tolerance_two_theta_deg)


def _s_and_tolerance(q_inv_angstrom: np.ndarray, wavelength_angstrom: float,
                     tolerance_two_theta_deg: float = TOLERANCE_TWO_THETA_DEG) -> tuple[np.ndarray, np.ndarray]:
    """``s = 1/d^2`` of the first ``N_PEAKS`` peaks and its tolerance (both Å⁻²): computed once per pattern."""
    q = np.ascontiguousarray(q_inv_angstrom[:N_PEAKS], dtype=np.float64)
    return (q / (2.0 * np.pi)) ** 2, peak_tolerance_s(q, wavelength_angstrom, tolerance_two_theta_deg)


def _best_cell(s_obs: np.ndarray, tol: np.ndarray, family: str, bound: bool,
               centring: str = "P") -> tuple[float, float, float, float]:
    hits, lines, A, C, _ = search_cells(
        s_obs, tol, metric_factor(family), allowed_line_counts(family, centring), 1.0 / A_MAX_ANGSTROM ** 2,
        1.0 / A_MIN_ANGSTROM ** 2, 1.0 / C_MAX_ANGSTROM ** 2, 1.0 / C_MIN_ANGSTROM ** 2, MAX_MISSING,
        MAX_LINES_PER_PEAK, STOP_RELATIVE_WIDTH, MAX_BOXES, bound)
    if hits < 0:
        return 0.0, np.nan, np.nan, np.nan
    return hits / len(s_obs), lines / len(s_obs), float(1.0 / np.sqrt(A)), float(1.0 / np.sqrt(C))


def index_by_dichotomy(q_inv_angstrom: np.ndarray, wavelength_angstrom: float, family: str,
                       bound: bool = True, tolerance_two_theta_deg: float = TOLERANCE_TWO_THETA_DEG,
                       centring: str = "P") -> tuple[float, float, float, float]:
    """Best ``family`` cell for the first ``N_PEAKS`` peaks (Q, Å⁻¹, ascending), primitive unless ``centring``
    (I for tetragonal, R for hexagonal axes) is given: (fraction of peaks indexed, calculated lines per peak, a, c
    in Å); (0, NaN, NaN, NaN) when no cell indexes all but ``MAX_MISSING`` peaks within
    ``tolerance_two_theta_deg``. A centred cell with many lines (anatase, corundum) exceeds
    ``MAX_LINES_PER_PEAK`` in its primitive setting and is found only by its own centring's search."""
    s_obs, tol = _s_and_tolerance(q_inv_angstrom, wavelength_angstrom, tolerance_two_theta_deg)
    return _best_cell(s_obs, tol, family, bound, centring)


def _centred(s_obs: np.ndarray, tol: np.ndarray, family: str, a_angstrom: float, c_angstrom: float):
    hits, lines = _hits_and_lines(s_obs, tol, metric_factor(family), 1.0 / a_angstrom ** 2, 1.0 / c_angstrom ** 2,
                                  allowed_line_counts(family, CENTRING[family]))
    return hits / len(s_obs), lines / len(s_obs)


def centred_fit(q_inv_angstrom: np.ndarray, wavelength_angstrom: float, family: str, a_angstrom: float,
                c_angstrom: float) -> tuple[float, float]:
    """The centred lattice (``CENTRING[family]``) on a found primitive cell: (fraction of the first ``N_PEAKS``
    peaks its lines index, its calculated lines per peak). An R- or I-centred crystal is found as its primitive
    setting with 2-3x the lines; its own lines index every peak with about one line each (absences explained)."""
    return _centred(*_s_and_tolerance(q_inv_angstrom, wavelength_angstrom), family, a_angstrom, c_angstrom)


def dichotomy_features(q_inv_angstrom: np.ndarray, wavelength_angstrom: float, bound: bool = True) -> np.ndarray:
    """``DICHOTOMY_LABELS``: per family the fraction indexed, lines per peak and c/a, and ``centred_fit`` on that
    cell; NaN with fewer than 6 peaks, and for a family where no cell was found.
    ``bound=False``: the plain dichotomy (the same features, the benchmark's baseline)."""
    q = np.asarray(q_inv_angstrom, float)
    if len(q) < 6:
        return np.full(len(DICHOTOMY_LABELS), np.nan)
    s_obs, tol = _s_and_tolerance(q, wavelength_angstrom)
    out = []
    for family in FAMILIES:
        indexed, lines_per_peak, a, c = _best_cell(s_obs, tol, family, bound)
        centred = _centred(s_obs, tol, family, a, c) if np.isfinite(a) else (np.nan, np.nan)
        out += [indexed, lines_per_peak, c / a, *centred]
    return np.array(out)
