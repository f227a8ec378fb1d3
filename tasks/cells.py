"""The unit cell behind an XRD answer: a cell of the answer's lattice that indexes the pattern's peaks, with
de Wolff's figure of merit, so that a crystallographer can check the answer and start a Pawley or Le Bail fit.

Searched for every lattice but the triclinic: cubic (P, I, F), tetragonal (P, I), hexagonal axes (hP, and hR for
rhombohedral groups), orthorhombic (P, C, I, F) and monoclinic (P, C), for the answer's centring and the primitive
lattice.

1. Trial cells: the tetragonal and hexagonal ones from the dichotomy search the classifier's features use
   (``tasks.dichotomy_indexing``, here with the centring's own lines), orthorhombic ones from its three-parameter
   form (``tasks.orthorhombic_indexing``), monoclinic ones from its four-parameter form
   (``tasks.monoclinic_indexing``), cubic ones from each of the first peaks read as each allowed line; each
   search at a wide 2θ tolerance (an unknown zero shift) and at a narrow one (less misled by impurity lines).
   Each trial cell's ``RELATED_CELLS`` (sub- and supercells) are tried too.
2. Each is refined by least squares in 2θ with a zero shift (Gauss-Newton; the peaks assigned to their nearest
   allowed line, twice over), and judged on its peaks indexed within ``FINAL_TOLERANCE_DEG`` and de Wolff's
   figure of merit ``M_N = s_N / (2 <|Δs|> N_calc)`` over the first ``N`` peaks (N = 20 where there are 20;
   J. Appl. Cryst. 1, 108, 1968): ``<|Δs|>`` over the indexed peaks, ``N_calc`` the distinct lines up to the N-th.
3. The cell reported maximises ``M x (fraction indexed)^8``: an impurity line indexed by a supercell with twice
   the lines does not outweigh M, nor does M a cell that leaves real lines unexplained.

On measured-like patterns of real structures (bench/cell_indexing.py) right cubic cells have M of a few hundred,
right tetragonal and hexagonal ones 60-90 and wrong ones 10-25. Triclinic cells are not searched (six parameters:
their ab-initio indexing is a project of its own).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from tasks.crystallography import centring_allows, space_group_type
from tasks.dichotomy_indexing import index_by_dichotomy, peak_tolerance_s
from tasks.monoclinic_indexing import CENTRED_RULES, cell_of_metric, index_monoclinic, reciprocal_metric
from tasks.orthorhombic_indexing import index_orthorhombic
from tasks.reflection_rules import MONOCLINIC_SETTINGS, allowed_mask, monoclinic_group_rules, orthorhombic_group_rules

M_PEAKS = 20  # de Wolff's M20
# a cell with fewer parameters needs fewer lines to be checked
MIN_PEAKS = {"cubic": 4, "tetragonal": 6, "hexagonal": 6, "orthorhombic": 8, "monoclinic": 10}
CUBIC_MAX_M = 50  # h^2 + k^2 + l^2 of the lines a first peak may be
SEARCH_TOLERANCE_DEG = 0.15  # 2θ: wide enough for an unknown zero shift of ~0.1°, which the refinement removes
# 2θ: a peak is indexed within this of a line once the zero shift is out (broad, noisy or overlapping peaks are
# found 0.05-0.1° off their line)
FINAL_TOLERANCE_DEG = 0.1
# The trial searches' 2θ tolerances: a wide one survives an unknown zero shift, a narrow one is less often misled by
# impurity lines. Three free axes index a pattern's first 12 peaks at 0.15° with small cells that are not the
# pattern's, so orthorhombic searches are narrower, and the narrowest is run with the peaks moved by each trial zero
# shift. Orthorhombic answers also search with their space group's own reflection conditions (its glides and screws,
# in each assignment of its axes), which bring a real cell's lines within the line budget. Chosen on the tuning draw
# of bench/cell_indexing.py (150 orthorhombic patterns; right cells, ms a pattern): lattice only, 0.15° and 0.1°
# 0.29; 0.05° and 0.1° 0.53; with trial zero shifts and 3 cells from each search 0.57; with the space group's
# conditions 0.71 (856 ms), searched at 0.05° only, 3 zero shifts, one cell each and no sub- or supercells 0.71
# (366 ms); 0.1° only 0.61.
SEARCH_TOLERANCES_DEG = {"cubic": (SEARCH_TOLERANCE_DEG, FINAL_TOLERANCE_DEG),
                         "tetragonal": (SEARCH_TOLERANCE_DEG, FINAL_TOLERANCE_DEG),
                         "hexagonal": (SEARCH_TOLERANCE_DEG, FINAL_TOLERANCE_DEG),
                         "orthorhombic": (0.05, FINAL_TOLERANCE_DEG),
                         # each monoclinic search takes ~0.3-3 s: one tolerance, one zero shift. On the tuning draw
                         # of bench/monoclinic_indexing.py (40 / 100 patterns, right cells): 0.05° 0.30, 0.08° 0.23,
                         # both 0.03° and 0.08° 0.33 at twice the time; trial zero shifts of -0.06, 0, 0.06° 0.27
                         # against 0.23 (lattice rules only) at three times the time
                         "monoclinic": (0.05,)}
ORTHORHOMBIC_TRIAL_ZERO_SHIFTS_DEG = (-0.08, -0.04, 0.0, 0.04, 0.08)  # for the 0.05° search: its tolerance apart
ORTHORHOMBIC_TRIAL_CELLS = 3  # the best cells kept from each orthorhombic search with the lattice's lines
SPACE_GROUP_TRIAL_ZERO_SHIFTS_DEG = (-0.06, 0.0, 0.06)
SAME_CELL_RELATIVE = 1e-4  # trial cells closer than this on every axis are refined once
MAX_LINES_PER_PEAK = 4.0  # as tasks.dichotomy_indexing: more lines than this index any peaks
# Chosen on bench/cell_indexing.py's tuning draw (600 CGCNN materials from index 1): of 0.6 / 0.75 and powers
# 4 / 8 / 12, right cells 0.67 / 0.63 and 0.61 / 0.67 / 0.65; the figures in BENCHMARKS.md are from another draw.
MIN_INDEXED_FRACTION = 0.6  # of the first peaks: impurity lines and merged doublets stay unindexed
UNINDEXED_PENALTY_POWER = 8  # the cell reported maximises M x (fraction indexed)^8
MAX_ZERO_SHIFT_DEG = 0.5  # a larger refined zero shift means the cell was not the pattern's
FAMILY_OF_SYSTEM = {"cubic": "cubic", "tetragonal": "tetragonal", "trigonal": "hexagonal", "hexagonal": "hexagonal",
                    "orthorhombic": "orthorhombic", "monoclinic": "monoclinic"}
# (a,) cubic, (a, c) tetragonal and hexagonal, (a, b, c) orthorhombic, in Å; (a, b, c, β) monoclinic, Å and degrees
Axes = tuple


@dataclass(frozen=True)
class IndexedCell:
    """A cell of ``lattice`` (Pearson symbol: cP, cI, cF, tP, tI, hP, hR on hexagonal axes, oP, oC, oI, oF, mP, mC)
    for a pattern's peaks; ``c_angstrom`` is None for cubic cells, ``b_angstrom`` None but for orthorhombic and
    monoclinic ones, ``beta_deg`` None but for monoclinic ones (unique axis b, β >= 90°; mC cells C-centred). An
    orthorhombic or monoclinic cell found with its space group's own conditions (``reflection_conditions`` "space
    group") has the group's standard axes (Pnma's a, b, c; P2_1/c's with the glide along c); an orthorhombic one
    found with its lattice's has them in ascending length (oC: a <= b, the centred face (a, b)), a monoclinic one
    a <= c (mP) in a reduced (a, c) net."""

    lattice: str
    a_angstrom: float
    c_angstrom: float | None
    volume_angstrom3: float
    zero_shift_two_theta_deg: float  # refined with the cell: add it to the cell's 2θ to reach the peaks
    peaks_used: int
    peaks_indexed: int
    de_wolff_m: float  # M_N with N = peaks_used
    # per peak used: (2θ measured, d measured in Å, (h, k, l) or None where unindexed, 2θ measured - calculated)
    peaks: tuple[tuple[float, float, tuple[int, int, int] | None, float | None], ...] = ()
    b_angstrom: float | None = None
    # whose reflection conditions the cell's lines follow: its lattice's centring, or (orthorhombic and monoclinic
    # answers) the space group's glides and screws too, the axes then in the group's standard setting
    reflection_conditions: str = "lattice"
    beta_deg: float | None = None

    def to_dict(self) -> dict:
        fields = asdict(self)
        order = ["lattice", "a_angstrom", "b_angstrom", *(k for k in fields if k not in ("lattice", "a_angstrom",
                                                                                         "b_angstrom", "peaks"))]
        out = {key: (round(fields[key], 5) if isinstance(fields[key], float) else fields[key]) for key in order}
        out["peaks"] = [{"two_theta_deg": round(tt, 4), "d_angstrom": round(d, 5), "hkl": None if hkl is None else
                         list(hkl), "delta_two_theta_deg": None if delta is None else round(delta, 4)}
                        for tt, d, hkl, delta in self.peaks]
        return out


def _allowed(h: np.ndarray, k: np.ndarray, l: np.ndarray, centring: str) -> np.ndarray:
    if ":" in centring:  # an orthorhombic space group's own conditions, axes relabelled
        return allowed_mask(centring, h, k, l)
    return centring_allows(centring, h, k, l)


def calculated_lines(family: str, centring: str, axes: Axes, s_max: float) -> np.ndarray:
    """Distinct ``s = 1/d^2`` (Å⁻², ascending) of a cell's allowed reflections up to ``s_max``; ``axes`` as
    ``Axes``."""
    rows = _design(family, centring, axes, s_max)
    s = rows @ _metric(axes)
    s = np.sort(s[s <= s_max])
    if not len(s):
        return s
    return s[np.concatenate([[True], np.diff(s) > 1e-9 * s_max])]


def _metric(axes: Axes) -> np.ndarray:
    """``(A)``, ``(A, C)`` or ``(A, B, C)`` = ``1/a^2``, ``1/b^2``, ``1/c^2`` (Å⁻²), the parameters ``s`` is linear
    in; monoclinic ``(A, B, C, D)`` (``tasks.monoclinic_indexing.reciprocal_metric``)."""
    if len(axes) == 4:
        return reciprocal_metric(*axes)
    return 1.0 / np.asarray(axes, dtype=float) ** 2


def _axes_of_metric(params: np.ndarray) -> Axes:
    """``_metric``'s inverse; a monoclinic cell with β >= 90° (l -> -l turns D's sign and keeps the lines)."""
    if len(params) == 4:
        return cell_of_metric(params[0], params[1], params[2], abs(params[3]))
    return tuple(float(x) for x in 1.0 / np.sqrt(params))


def _valid_metric(params: np.ndarray) -> bool:
    """Positive axes (and, monoclinic, a positive definite (a*, c*) form: D^2 < 4 A C)."""
    if np.any(params[:3] <= 0):
        return False
    return len(params) != 4 or params[3] ** 2 < 4.0 * params[0] * params[2]


def _nearest(s_calc: np.ndarray, s_obs: np.ndarray) -> np.ndarray:
    """Index of the nearest ``s_calc`` (ascending, not empty) to each observed line; the lower one on a tie."""
    position = np.searchsorted(s_calc, s_obs)
    below = np.clip(position - 1, 0, len(s_calc) - 1)
    above = np.clip(position, 0, len(s_calc) - 1)
    return np.where(np.abs(s_obs - s_calc[below]) <= np.abs(s_calc[above] - s_obs), below, above)


def _discrepancy(s_obs: np.ndarray, s_calc: np.ndarray) -> np.ndarray:
    """|s_obs - nearest s_calc| of each observed line (``s_calc`` ascending, not empty)."""
    return np.abs(s_obs - s_calc[_nearest(s_calc, s_obs)])


def de_wolff_m(s_obs: np.ndarray, s_calc: np.ndarray, indexed: np.ndarray | None = None) -> float:
    """de Wolff's ``M_N = s_N / (2 <|Δs|> N_calc)`` of observed lines ``s_obs`` (Å⁻², ascending) against a cell's
    lines ``s_calc``; the mean discrepancy is over the ``indexed`` lines (all by default), as in de Wolff's
    definition, which reports unindexed lines beside the figure rather than in it."""
    if not len(s_calc) or not len(s_obs):
        return 0.0
    error = _discrepancy(s_obs, s_calc)
    if indexed is not None:
        if not indexed.any():
            return 0.0
        error = error[indexed]
    n_calc = int(np.searchsorted(s_calc, s_obs[-1] * (1 + 1e-6), side="right"))
    return float(s_obs[-1] / (2.0 * max(error.mean(), 1e-12) * max(n_calc, 1)))


def _indexed(s_obs: np.ndarray, s_calc: np.ndarray, tol: np.ndarray) -> np.ndarray:
    if not len(s_calc):
        return np.zeros(len(s_obs), bool)
    return _discrepancy(s_obs, s_calc) <= tol


def _design(family: str, centring: str, axes: Axes, s_max: float) -> np.ndarray:
    """Rows ``(m)`` (cubic), ``(m, l^2)`` with ``s = A m + C l^2`` (hexagonal m includes the 4/3),
    ``(h^2, k^2, l^2)`` (orthorhombic) or ``(h^2, k^2, l^2, h l)`` (monoclinic) of the distinct allowed lines up to
    ``s_max`` (and some beyond: the index box, not ``s``, bounds them)."""
    return _design_rows(family, centring, *_index_bounds(axes, s_max))


def _index_bounds(axes: Axes, s_max: float) -> tuple[int, int, int]:
    """``(h_max, k_max, l_max)``: |h| <= h_max, |k| <= k_max and |l| <= l_max hold every reflection with
    ``s <= s_max`` (the 1.2 covers hexagonal axes, where |h| can reach 2/√3 a √s)."""
    root = np.sqrt(s_max)
    if len(axes) == 4:  # |h| = |a . d*| <= a sqrt(s), whatever the angles
        return tuple(int(np.ceil(x * root)) + 1 for x in axes[:3])
    a, b, c = axes[0], axes[1 if len(axes) == 3 else 0], axes[-1]
    return (int(np.ceil(a * root * 1.2)) + 1, int(np.ceil(b * root * 1.2)) + 1, int(np.ceil(c * root)) + 1)


@lru_cache(maxsize=128)  # ~20 MB at most: rows of the large cells run to ~10k
def _design_rows(family: str, centring: str, h_max: int, k_max: int, l_max: int) -> np.ndarray:
    # orthorhombic lines depend on h^2, k^2, l^2 alone, monoclinic ones on h^2, k^2, l^2 and h l
    k_low = 0 if family in ("orthorhombic", "monoclinic") else -k_max
    l_low = -l_max if family == "monoclinic" else 0
    h, k, l = (g.ravel() for g in np.meshgrid(np.arange(0, h_max + 1), np.arange(k_low, k_max + 1),
                                              np.arange(l_low, l_max + 1), indexing="ij"))
    keep = _allowed(h, k, l, centring) & ~((h == 0) & (k == 0) & (l == 0)) & ~((h == 0) & (l < 0))
    h, k, l = h[keep], k[keep], l[keep]
    if family == "orthorhombic":
        rows = np.stack([h * h, k * k, l * l], axis=1).astype(float)
    elif family == "monoclinic":
        rows = np.stack([h * h, k * k, l * l, h * l], axis=1).astype(float)
    elif family == "cubic":
        rows = np.unique(h * h + k * k + l * l)[:, None].astype(float)
    else:
        m = h * h + h * k + k * k if family == "hexagonal" else h * h + k * k
        key = np.unique(m.astype(np.int64) * (4 * l_max * l_max + 1) + l * l)
        m, l2 = np.divmod(key, 4 * l_max * l_max + 1)
        rows = np.stack([m * (4.0 / 3.0 if family == "hexagonal" else 1.0), l2.astype(float)], axis=1)
    rows.flags.writeable = False  # shared by the cache
    return rows


def _two_theta_deg(s: np.ndarray, wavelength_angstrom: float) -> np.ndarray:
    return 2.0 * np.degrees(np.arcsin(np.clip(wavelength_angstrom * np.sqrt(np.maximum(s, 0.0)) / 2.0, 0.0, 1.0)))


def _shifted(s_obs: np.ndarray, zero_deg: float, wavelength_angstrom: float) -> np.ndarray:
    """``s`` of the peaks with the zero shift taken out of their 2θ."""
    two_theta = _two_theta_deg(s_obs, wavelength_angstrom) - zero_deg
    return (2.0 * np.sin(np.radians(two_theta) / 2.0) / wavelength_angstrom) ** 2


def _refined(family: str, centring: str, axes: Axes, s_obs: np.ndarray, tol: np.ndarray,
             wavelength_angstrom: float) -> tuple[Axes, float]:
    """``(axes, zero shift in degrees 2θ)`` refined by least squares in 2θ on the peaks within ``tol`` (Å⁻²) of a
    line of the cell (each assigned its nearest allowed line, then again after the fit). The zero shift is refined
    because a displaced sample or an offset goniometer moves every peak by about the same angle, which no cell absorbs.
    Gauss-Newton with the analytic derivative ``d2θ/ds = (360/π) λ / (4 √s cos θ)``: a few 2-4-column solves,
    20x faster than scipy's general least_squares on the same problem."""
    design = _design(family, centring, axes, s_obs[-1] * 1.1)
    two_theta_obs = _two_theta_deg(s_obs, wavelength_angstrom)
    params = _metric(axes)
    design = design[design @ params <= s_obs[-1] * 1.1]
    zero = 0.0
    for _ in range(2):
        s_calc = design @ params
        order = np.argsort(s_calc)
        s_sorted = s_calc[order]
        if not len(s_sorted):
            break
        s_shifted = _shifted(s_obs, zero, wavelength_angstrom)
        pick = _nearest(s_sorted, s_shifted)
        near = np.abs(s_shifted - s_sorted[pick]) <= tol
        rows = design[order[pick[near]]]
        if near.sum() < rows.shape[1] + 2 or np.linalg.matrix_rank(rows) < rows.shape[1]:
            break
        x, observed = np.concatenate([params, [zero]]), two_theta_obs[near]
        for _ in range(5):
            s = rows @ x[:-1]
            if np.any(s <= 0) or np.any(wavelength_angstrom * np.sqrt(s) / 2.0 >= 1.0):
                break
            cos_theta = np.sqrt(1.0 - wavelength_angstrom ** 2 * s / 4.0)
            slope = 360.0 / np.pi * wavelength_angstrom / (4.0 * np.sqrt(s) * cos_theta)
            jacobian = np.column_stack([rows * slope[:, None], np.ones(len(s))])
            residual = observed - (_two_theta_deg(s, wavelength_angstrom) + x[-1])
            x = x + np.linalg.lstsq(jacobian, residual, rcond=None)[0]
        if not _valid_metric(x[:-1]) or not abs(x[-1]) <= MAX_ZERO_SHIFT_DEG:
            break
        params, zero = x[:-1], float(x[-1])
    return _axes_of_metric(params), zero


@lru_cache(maxsize=None)
def _cubic_m(centring: str) -> np.ndarray:
    """The distinct ``h^2 + k^2 + l^2`` a cubic lattice allows, up to 3 ``CUBIC_MAX_M``."""
    return np.unique(_design("cubic", centring, (1.0,), 3.0 * CUBIC_MAX_M)[:, 0]).astype(float)


def _cubic_cell(s_obs: np.ndarray, tol: np.ndarray, centring: str) -> float | None:
    """The cubic ``a`` whose allowed lines index most peaks, with the fewest lines among those; each of the first
    three peaks read as each allowed line up to ``CUBIC_MAX_M`` gives a trial ``a``."""
    m = _cubic_m(centring)
    trial_a = np.sqrt(m[m <= CUBIC_MAX_M][None, :] / s_obs[:3, None]).ravel()
    trial_a = trial_a[(trial_a >= 2.0) & (trial_a <= 30.0)]
    if not len(trial_a):
        return None
    s_calc = m[None, :] / trial_a[:, None] ** 2  # (trials, lines)
    error = np.abs(s_obs[None, :, None] - s_calc[:, None, :]).min(axis=2)
    n_indexed = (error <= tol[None, :]).sum(axis=1)
    n_lines = (s_calc <= s_obs[-1] * (1 + 1e-6)).sum(axis=1)
    n_indexed = np.where(n_lines <= MAX_LINES_PER_PEAK * len(s_obs), n_indexed, -1)  # big cells index anything
    best = np.lexsort((n_lines, -n_indexed))[0]
    return float(trial_a[best]) if n_indexed[best] >= 0 else None


# Related cells tried beside each one the search finds (a factor per axis of ``Axes``): the sub- and supercells that
# index nearly the same lines, the classic trap of powder indexing (weak superstructure lines unseen, or an
# impurity line "indexed" by a cell with twice the lines).
RELATED_CELLS = {
    "cubic": ((1.0,), (0.5,), (2.0,), (np.sqrt(2.0),), (1 / np.sqrt(2.0),)),
    "tetragonal": ((1.0, 1.0), (1.0, 0.5), (1.0, 2.0), (0.5, 1.0), (2.0, 1.0), (np.sqrt(2.0), 1.0),
                   (1 / np.sqrt(2.0), 1.0)),
    "hexagonal": ((1.0, 1.0), (1.0, 0.5), (1.0, 2.0), (1.0, 1 / 3), (1.0, 3.0), (0.5, 1.0), (2.0, 1.0),
                  (np.sqrt(3.0), 1.0), (1 / np.sqrt(3.0), 1.0)),
    "orthorhombic": ((1.0, 1.0, 1.0), (2.0, 1.0, 1.0), (1.0, 2.0, 1.0), (1.0, 1.0, 2.0), (0.5, 1.0, 1.0),
                     (1.0, 0.5, 1.0), (1.0, 1.0, 0.5)),
    "monoclinic": ((1.0, 1.0, 1.0, 1.0), (1.0, 2.0, 1.0, 1.0), (1.0, 0.5, 1.0, 1.0)),  # β is kept
}


def _evaluated(family: str, centring: str, axes: Axes, s_obs: np.ndarray, search_tol: np.ndarray,
               tol: np.ndarray, wavelength_angstrom: float) -> tuple[int, float, str, Axes, float]:
    """``(peaks indexed, M, centring, axes, zero)`` of a trial cell once refined with its zero shift."""
    fitted, zero = _refined(family, centring, axes, s_obs, search_tol, wavelength_angstrom)
    s_fit = _shifted(s_obs, zero, wavelength_angstrom)
    lines = calculated_lines(family, centring, fitted, s_fit[-1] * 1.02)
    indexed = _indexed(s_fit, lines, tol)
    return int(indexed.sum()), de_wolff_m(s_fit, lines, indexed), centring, fitted, zero


def _trial_cells(family: str, centring: str, q: np.ndarray, s_obs: np.ndarray, width: np.ndarray,
                 width_deg: float, wavelength_angstrom: float) -> list[Axes]:
    """The search's cells of ``family`` and ``centring`` at one tolerance."""
    if family == "cubic":
        a = _cubic_cell(s_obs, width, centring)
        return [] if a is None else [(a,)]
    if family == "monoclinic":
        found = index_monoclinic(s_obs, width, centring)
        return [] if found is None else [found[2:]]
    if family == "orthorhombic":
        narrow = width_deg < FINAL_TOLERANCE_DEG
        if ":" in centring:  # a space group's rules: the narrow search only, one cell each (the time is 6 rules')
            zeros, n_best = (SPACE_GROUP_TRIAL_ZERO_SHIFTS_DEG if narrow else ()), 1
        else:
            zeros, n_best = (ORTHORHOMBIC_TRIAL_ZERO_SHIFTS_DEG if narrow else (0.0,)), ORTHORHOMBIC_TRIAL_CELLS
        return [found[2:] for zero in zeros for found in index_orthorhombic(
            _shifted(s_obs, zero, wavelength_angstrom), width, centring, n_best)]
    found, _, a, c = index_by_dichotomy(q, wavelength_angstrom, family, tolerance_two_theta_deg=width_deg,
                                        centring=centring)
    return [(a, c)] if found > 0 else []


def index_answer(q_inv_angstrom: np.ndarray, wavelength_angstrom: float, space_group_number: int,
                 threads: int | None = None) -> IndexedCell | None:
    """A cell of the answer's lattice for peaks at ``q_inv_angstrom`` (Å⁻¹, ascending), or None where the lattice
    is not searched (triclinic), there are too few peaks (``MIN_PEAKS``), or no cell indexes
    ``MIN_INDEXED_FRACTION`` of them.

    The searches' cells for the answer's centring and for the primitive lattice, and their ``RELATED_CELLS``, are
    each refined, and the one maximising ``M x (fraction indexed)^UNINDEXED_PENALTY_POWER`` is reported. So a
    primitive cell is reported where the answer's centring explains no more (its centring is then doubtful), and
    a sub-cell where a supercell's extra lines are unseen. The searches of the rules run in ``threads`` threads
    (None: one per core), with the same answer whatever their number. Refining every trial
    costs ~40 ms a pattern; refining only the 3 or 5 best by their unrefined score halved that but lost 3 points
    of right cells on the tuning draw (0.670 -> 0.639 / 0.646), so all are refined.

    Orthorhombic answers are also searched with their space group's own reflection conditions (``rules``: each
    assignment of its standard axes to the ascending lengths). Such a cell is judged on the group's lines, so it
    wins where the glides and screws explain the missing lines, and is reported in the group's standard setting
    (a Pnma answer's a, b, c as Pnma has them), each peak labelled on those axes. These answers take ~0.4 s.

    Monoclinic answers are searched in a reduced (a, c) net (``tasks.monoclinic_indexing``), a C-centred lattice
    in its C and I settings (an I cell is reported in a C setting), and with the space group's own glide and screw
    conditions in each of its settings (``monoclinic_group_rules``: P2_1/c seen as P2_1/c, P2_1/a or P2_1/n); such a
    cell is reported in the group's standard setting (unique axis b, cell choice 1). On the tuning draw of
    bench/monoclinic_indexing.py (100 patterns) the group's rules raised right cells from 0.23 to 0.33 (0.37 once
    the refinement assigned peaks at the wide search tolerance, as for the other lattices). These answers take
    ~3 s of CPU (0.5-9 s; 1.8 s on average on 2 cores).
    """
    group = space_group_type(space_group_number)
    family = FAMILY_OF_SYSTEM.get(group.crystal_system)
    if family is None:
        return None
    # A-centred settings (Amm2, Aea2, ...) are the C lattice with the axes relabelled; a space group's own rules
    # see them in its standard setting
    lattice_centring = "C" if group.bravais_lattice == "oC" else group.bravais_lattice[1]
    rules = [*(CENTRED_RULES if family == "monoclinic" and lattice_centring == "C" else [lattice_centring]), "P"]
    if family == "orthorhombic":  # the group's glides and screws remove lines its lattice has
        rules += orthorhombic_group_rules(space_group_number, lattice_centring)
    elif family == "monoclinic":
        rules += monoclinic_group_rules(space_group_number, lattice_centring)
    # one answer at a time, in batches too: its searches share the cores (the lattice evidence, which runs
    # patterns in worker processes, searches each in one thread)
    q, s_obs, candidates = _search(q_inv_angstrom, wavelength_angstrom, family, rules,
                                   (os.cpu_count() or 1) if threads is None else threads)
    best = _best(candidates, len(s_obs))
    if best is None:
        return None
    n_indexed, figure, centring, fitted, zero = best
    tol = peak_tolerance_s(q, wavelength_angstrom, FINAL_TOLERANCE_DEG)
    if family == "monoclinic":
        return _monoclinic_cell(centring, lattice_centring, fitted, zero, s_obs, tol, n_indexed, figure,
                                wavelength_angstrom)
    volume = float(np.prod(fitted) * fitted[0] ** (3 - len(fitted)))  # a^3, a^2 c, a b c
    if family == "hexagonal":
        volume *= np.sqrt(3.0) / 2.0
    letter = {"cubic": "c", "tetragonal": "t", "hexagonal": "h", "orthorhombic": "o"}[family]
    peaks = _labelled_peaks(family, centring, fitted, zero, s_obs, tol, wavelength_angstrom)
    conditions = "lattice"
    if ":" in centring:  # the space group's setting: its axes, and each peak's (h k l) on them
        order = [centring.split(":")[1].index(axis) for axis in "abc"]
        fitted = tuple(fitted[i] for i in order)
        peaks = tuple((tt, d, None if hkl is None else tuple(hkl[i] for i in order), delta)
                      for tt, d, hkl, delta in peaks)
        centring, conditions = group.bravais_lattice[1], "space group"
    return IndexedCell(f"{letter}{centring}", fitted[0], fitted[-1] if len(fitted) > 1 else None, volume, zero,
                       len(s_obs), n_indexed, figure, peaks, fitted[1] if len(fitted) == 3 else None, conditions)


def _monoclinic_cell(centring: str, lattice_centring: str, axes: Axes, zero: float, s_obs: np.ndarray,
                     tol: np.ndarray, n_indexed: int, figure: float, wavelength_angstrom: float) -> IndexedCell:
    """``index_answer``'s monoclinic cell, an I cell turned to a C setting (the same lattice and lines), a cell of
    the space group's rules (its lattice ``lattice_centring``) to its standard setting."""
    conditions = "lattice"
    if centring == "I":
        axes, centring = i_to_c_setting(axes), "C"
    elif ":" in centring:
        number, setting = centring.split(":")
        axes, centring, conditions = monoclinic_standard_setting(axes, setting), f"{number}:hl", "space group"
    a, b, c, beta = axes
    volume = float(a * b * c * np.sin(np.radians(beta)))
    peaks = _labelled_peaks("monoclinic", centring, axes, zero, s_obs, tol, wavelength_angstrom)
    lattice = "m" + (centring if conditions == "lattice" else lattice_centring)
    return IndexedCell(lattice, a, c, volume, zero, len(s_obs), n_indexed, figure, peaks, b, conditions, beta)


def monoclinic_standard_setting(axes: Axes, setting: str) -> Axes:
    """The cell ``(a, b, c, β)`` of a search in ``setting`` (``MONOCLINIC_SETTINGS``: the standard indices as sums
    of ours) in the standard setting: ``(a_std, c_std) = M (a, c)``, c_std's sign chosen so that β >= 90°."""
    a, b, c, beta = axes
    a_vec = np.array([a, 0.0])
    c_vec = np.array([c * np.cos(np.radians(beta)), c * np.sin(np.radians(beta))])
    (m00, m01), (m10, m11) = MONOCLINIC_SETTINGS[setting]
    new_a, new_c = m00 * a_vec + m01 * c_vec, m10 * a_vec + m11 * c_vec
    cosine = float(new_a @ new_c / (np.linalg.norm(new_a) * np.linalg.norm(new_c)))
    return float(np.linalg.norm(new_a)), b, float(np.linalg.norm(new_c)), float(np.degrees(np.arccos(-abs(cosine))))


def i_to_c_setting(axes: Axes) -> Axes:
    """A C setting ``(a', b, c', β')`` of a body-centred monoclinic cell ``(a, b, c, β)``: ``a' = a + c`` and ``c'``
    the one of ``a``, ``c`` that makes β' nearest 90° (signs then chosen so that β' >= 90°). The centring vector
    (a + b + c) / 2 is (a' + b) / 2."""
    a, b, c, beta = axes
    cos_b, sin_b = np.cos(np.radians(beta)), np.sin(np.radians(beta))
    a_vec, c_vec = np.array([a, 0.0]), np.array([c * cos_b, c * sin_b])
    new_a = a_vec + c_vec
    options = []
    for new_c in (c_vec, a_vec):
        cosine = float(new_a @ new_c / (np.linalg.norm(new_a) * np.linalg.norm(new_c)))
        options.append((abs(cosine), np.linalg.norm(new_c), cosine))
    _, length, cosine = min(options)
    return float(np.linalg.norm(new_a)), b, float(length), float(np.degrees(np.arccos(-abs(cosine))))


def best_cell_figures(q_inv_angstrom: np.ndarray, wavelength_angstrom: float, family: str,
                      rule_sets: tuple[tuple[str, ...], ...], threads: int = 1) -> list[tuple[float, float]]:
    """For each set of reflection rules (centrings, or orthorhombic groups' rules as ``orthorhombic_group_rules``
    gives them), ``(de Wolff M, fraction of the first peaks indexed)`` of the best cell of ``family`` whose lines
    follow one of the set's rules, chosen as ``index_answer`` chooses; ``(0, 0)`` where none indexes
    ``MIN_INDEXED_FRACTION`` of the peaks. The searches of rules shared between sets run once, in up to ``threads``
    threads."""
    rules = list(dict.fromkeys(rule for rule_set in rule_sets for rule in rule_set))
    _, s_obs, candidates = _search(q_inv_angstrom, wavelength_angstrom, family, rules, threads)
    out = []
    for rule_set in rule_sets:
        best = _best([c for c in candidates if c[2] in rule_set], len(s_obs))
        out.append((0.0, 0.0) if best is None else (best[1], best[0] / len(s_obs)))
    return out


def _search(q_inv_angstrom: np.ndarray, wavelength_angstrom: float, family: str, rules: list[str],
            threads: int = 1) -> tuple[np.ndarray, np.ndarray, list[tuple[int, float, str, Axes, float]]]:
    """``(q, s, candidates)`` of the first ``M_PEAKS`` peaks: each trial cell of each rule, refined and judged as
    ``_evaluated`` returns it; no candidates where there are fewer than ``MIN_PEAKS`` peaks. The searches of the
    rules run in up to ``threads`` threads; the candidates are the same in the same order whatever their number."""
    q = np.sort(np.asarray(q_inv_angstrom, dtype=float))[:M_PEAKS]
    s_obs = (q / (2.0 * np.pi)) ** 2
    if len(q) < MIN_PEAKS[family]:
        return q, s_obs, []
    # searched and assigned with a wide tolerance (the zero shift is not known yet), judged with a narrow one
    search_tol = peak_tolerance_s(q, wavelength_angstrom, SEARCH_TOLERANCE_DEG)
    tol = peak_tolerance_s(q, wavelength_angstrom, FINAL_TOLERANCE_DEG)
    # the wide search survives a zero shift; the narrow one is less often misled by impurity lines
    jobs = [(family, centring, q, s_obs, peak_tolerance_s(q, wavelength_angstrom, width_deg), width_deg,
             wavelength_angstrom) for centring in dict.fromkeys(rules) for width_deg in SEARCH_TOLERANCES_DEG[family]]
    if threads > 1 and len(jobs) > 1:  # the compiled searches release the GIL
        with ThreadPoolExecutor(min(threads, len(jobs))) as pool:
            found = list(pool.map(lambda job: _trial_cells(*job), jobs))
    else:
        found = [_trial_cells(*job) for job in jobs]
    candidates = []
    for centring in dict.fromkeys(rules):
        starts: list[Axes] = []
        for job, cells in zip(jobs, found):
            if job[1] != centring:
                continue
            for axes in cells:
                # one refinement per cell: the searches find the same one within their tolerance
                axes = tuple(round(x, 4) for x in axes)
                if not any(np.allclose(axes, other, rtol=SAME_CELL_RELATIVE) for other in starts):
                    starts.append(axes)
        for axes in starts:
            # a space group's cell is its lattice's too: the lattice's candidates bring the sub- and supercells
            for factors in RELATED_CELLS[family][:1] if ":" in centring else RELATED_CELLS[family]:
                candidates.append(_evaluated(family, centring, tuple(x * f for x, f in zip(axes, factors)), s_obs,
                                             search_tol, tol, wavelength_angstrom))
    return q, s_obs, candidates


def _best(candidates: list[tuple[int, float, str, Axes, float]],
          n_peaks: int) -> tuple[int, float, str, Axes, float] | None:
    """The candidate maximising ``M x (fraction indexed)^UNINDEXED_PENALTY_POWER``, or None where there is none or
    it indexes fewer than ``MIN_INDEXED_FRACTION`` of the peaks."""
    if not candidates:
        return None
    best = max(candidates, key=lambda x: x[1] * (x[0] / n_peaks) ** UNINDEXED_PENALTY_POWER)
    return None if best[0] < MIN_INDEXED_FRACTION * n_peaks else best


def _reflections(family: str, centring: str, axes: Axes, s_max: float) -> tuple[np.ndarray, np.ndarray]:
    """``(s, hkl)`` of one representative reflection per distinct line up to ``s_max`` (the smallest indices,
    non-negative where the lattice allows): what a peak is labelled with."""
    a, cc = axes[0], axes[-1]
    h_max, k_max, l_max = _index_bounds(axes, s_max)
    h, k, l = (g.ravel() for g in np.meshgrid(np.arange(-h_max, h_max + 1), np.arange(-k_max, k_max + 1),
                                              np.arange(-l_max, l_max + 1), indexing="ij"))
    keep = _allowed(h, k, l, centring) & ~((h == 0) & (k == 0) & (l == 0))
    hkl = np.stack([h[keep], k[keep], l[keep]], axis=1)
    rows = hkl.astype(float) ** 2
    if family == "monoclinic":
        s = np.column_stack([rows, hkl[:, 0] * hkl[:, 2]]) @ _metric(axes)
    elif family == "cubic":
        s = rows.sum(axis=1) / a ** 2
    elif family == "tetragonal":
        s = (rows[:, 0] + rows[:, 1]) / a ** 2 + rows[:, 2] / cc ** 2
    elif family == "orthorhombic":
        s = rows @ _metric(axes)
    else:
        s = 4.0 / 3.0 * (rows[:, 0] + hkl[:, 0] * hkl[:, 1] + rows[:, 1]) / a ** 2 + rows[:, 2] / cc ** 2
    negative = (hkl < 0).sum(axis=1)
    order = np.lexsort((-hkl[:, 2], -hkl[:, 1], -hkl[:, 0], np.abs(hkl).sum(axis=1), negative, np.round(s, 10)))
    s, hkl = s[order], hkl[order]
    first = np.concatenate([[True], np.diff(s) > 1e-9 * s_max])
    keep = first & (s <= s_max)
    return s[keep], hkl[keep]


def _labelled_peaks(family: str, centring: str, axes: Axes, zero: float, s_obs: np.ndarray, tol: np.ndarray,
                    wavelength_angstrom: float) -> tuple:
    """Each peak with its measured 2θ and d, and the (h k l) of its line and 2θ measured - calculated where the
    cell indexes it (within ``tol`` once the zero shift is out)."""
    s_fit = _shifted(s_obs, zero, wavelength_angstrom)
    s_line, hkl = _reflections(family, centring, axes, s_fit[-1] * 1.02)
    out = []
    for s_measured, s_corrected, width in zip(s_obs, s_fit, tol):
        i = int(np.abs(s_line - s_corrected).argmin()) if len(s_line) else -1
        two_theta = float(_two_theta_deg(np.array([s_measured]), wavelength_angstrom)[0])
        d = float(1.0 / np.sqrt(s_measured))
        if i < 0 or abs(s_line[i] - s_corrected) > width:
            out.append((two_theta, d, None, None))
            continue
        calculated = float(_two_theta_deg(s_line[i:i + 1], wavelength_angstrom)[0]) + zero
        out.append((two_theta, d, tuple(int(x) for x in hkl[i]), two_theta - calculated))
    return tuple(out)


def cell_for_answer(pattern, space_group_number: int) -> dict | None:
    """``index_answer`` on a pattern's own peaks (``tasks.features.find_pattern_peaks``), as an answer's ``cell``."""
    from tasks.features import find_pattern_peaks

    peaks = find_pattern_peaks(pattern)
    cell = index_answer(peaks.q_inv_angstrom, pattern.wavelength_angstrom, space_group_number)
    return None if cell is None else cell.to_dict()
