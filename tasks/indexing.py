"""Light-weight powder indexing for the high-symmetry lattices, as features for the classifier.

For a lattice family the observed peaks ``s = 1/d^2 = (Q / 2 pi)^2`` must fit

- cubic:      s = A (h^2 + k^2 + l^2)
- tetragonal: s = A (h^2 + k^2) + C l^2
- hexagonal:  s = (4/3) A (h^2 + h k + k^2) + C l^2      (A = 1/a^2, C = 1/c^2)

Candidate (A, C) come from assigning the first peaks to low-index reflections (as in ITO/TREOR-style
trial indexing). A candidate's figure of merit is the fraction of the first ``N_PEAKS`` peaks it indexes
within ``RELATIVE_TOLERANCE``, multiplied by ``min(1, N_obs / N_calc)`` where ``N_calc`` counts the distinct
calculated lines up to the last observed peak: like de Wolff's M20, this stops huge cells from indexing
everything. Centring variants (cubic I/F, tetragonal I, hexagonal R obverse) use only the reflections
their lattice allows, so comparing them hints at the centring. Trial indexing rarely reaches the large cells of
real materials, whose first lines are not low-index; ``tasks.dichotomy_indexing`` searches those exhaustively.

Speed: a candidate's lines are never listed. For each ``l^2`` the allowed ``m`` are a small integer set (a bit
mask), so a peak is indexed when the integer nearest to ``(s - C l^2) / A`` is in that set and close enough,
and the distinct lines below the last peak are counted with bit masks (two lines coincide only when
``C / A`` times a difference of ``l^2`` is an integer). This per-candidate loop, with its early exits (the first
row that indexes a peak; no row once ``C l^2`` passes the peak), is compiled with numba, and the candidates are
generated inside it: the same arithmetic as whole-array numpy (~1,500 candidates x 7 rows x 12 peaks, most of
it wasted after an early hit) measured 6x slower. ``scores_by_listing`` is the plain way (list and sort every
candidate's lines, search the peaks in them): the tests check the two agree and ``bench/featurize_speed.py``
measures the gain.
"""

from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np

N_PEAKS = 12
RELATIVE_TOLERANCE = 0.004  # on s = 1/d^2; zero shift and strain move low-angle peaks by ~0.2-0.5 %
MAX_INDEX = 8
MAX_M = 40  # h^2 + k^2 (+ l^2) of the lines compared
MAX_L2 = 36

FOM_LABELS = ("fom_cubic_P", "fom_cubic_I", "fom_cubic_F", "fom_tetragonal_P", "fom_tetragonal_I",
              "fom_hexagonal_P", "fom_hexagonal_R", "c_over_a_tetragonal", "c_over_a_hexagonal")


@lru_cache(maxsize=None)
def _reflections(family: str, centring: str) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (m, l^2) pairs allowed for a lattice (``m <= MAX_M``, ``l^2 <= MAX_L2``): s = A_factor m + C l^2."""
    pairs = set()
    rng = range(-MAX_INDEX, MAX_INDEX + 1)
    for h in rng:
        for k in rng:
            for l in range(0, MAX_INDEX + 1):
                if h == k == l == 0:
                    continue
                if family == "cubic":
                    if centring == "I" and (h + k + l) % 2:
                        continue
                    if centring == "F" and not (h % 2 == k % 2 == l % 2):
                        continue
                    pairs.add((h * h + k * k + l * l, 0))
                elif family == "tetragonal":
                    if centring == "I" and (h + k + l) % 2:
                        continue
                    pairs.add((h * h + k * k, l * l))
                else:  # hexagonal axes
                    if centring == "R" and (-h + k + l) % 3:
                        continue
                    pairs.add((h * h + h * k + k * k, l * l))
    arr = np.array(sorted(p for p in pairs if p[0] <= MAX_M and p[1] <= MAX_L2), dtype=float)
    return arr[:, 0], arr[:, 1]


LATTICES = (("cubic", "P"), ("cubic", "I"), ("cubic", "F"), ("tetragonal", "P"), ("tetragonal", "I"),
            ("hexagonal", "P"), ("hexagonal", "R"))
L2_VALUES = np.arange(0, 7, dtype=float) ** 2  # l = 0 ... 6: every l^2 <= MAX_L2


@lru_cache(maxsize=None)
def _tables(lattices: tuple[tuple[str, str], ...]) -> tuple[np.ndarray, np.ndarray]:
    """For each lattice (F) and ``l^2`` in ``L2_VALUES`` (J): the allowed ``m`` as bit masks (F, J) uint64 (bit m);
    and the factor of ``A`` (F,)."""
    bits = np.zeros((len(lattices), len(L2_VALUES)), dtype=np.uint64)
    for f, (family, centring) in enumerate(lattices):
        for m, l2 in zip(*_reflections(family, centring)):
            bits[f, np.searchsorted(L2_VALUES, l2)] |= np.uint64(1) << np.uint64(m)
    factor = np.array([metric_factor(family) for family, _ in lattices])
    return bits, factor


@lru_cache(maxsize=None)
def _row_counts(lattices: tuple[tuple[str, str], ...]) -> np.ndarray:
    """Rows of ``L2_VALUES`` a lattice can use: one past its last non-empty row (cubic: only ``l^2 = 0``)."""
    bits = _tables(lattices)[0]
    return np.array([1 + max(np.flatnonzero(row)) for row in bits], dtype=np.int64)


def metric_factor(family: str) -> float:
    """f in ``s = f A m + C l^2``: 4/3 for hexagonal axes (m = h^2 + h k + k^2), 1 otherwise."""
    return 4.0 / 3.0 if family == "hexagonal" else 1.0


def scores_by_listing(s_obs: np.ndarray, a: np.ndarray, c: np.ndarray, family: str, centring: str) -> np.ndarray:
    """Figures of merit by listing every candidate's lines: the reference for ``score_candidates`` (tests, benchmark)."""
    m, l2 = _reflections(family, centring)
    s_max = s_obs[-1] * (1 + RELATIVE_TOLERANCE)
    calc = np.sort(metric_factor(family) * a[:, None] * m[None, :] + c[:, None] * l2[None, :], axis=1)
    calc = np.where(calc <= s_max, calc, 2.0 * s_max)
    n_rows, n_cols = calc.shape
    new_line = np.concatenate([np.ones((n_rows, 1), bool), np.diff(calc, axis=1) > 1e-9 * s_max], axis=1)
    n_calc = (new_line & (calc <= s_max)).sum(axis=1)
    # rows laid end to end in disjoint bands: one searchsorted finds each peak's neighbours in its own row
    offsets = np.arange(n_rows)[:, None] * 4.0 * s_max
    flat = (calc + offsets).ravel()
    queries = (s_obs[None, :] + offsets).ravel()
    pos = np.searchsorted(flat, queries)
    row_start = np.repeat(np.arange(n_rows) * n_cols, len(s_obs))
    lower = np.where(pos - 1 >= row_start, flat[np.clip(pos - 1, 0, len(flat) - 1)], -np.inf)
    upper = np.where(pos < row_start + n_cols, flat[np.clip(pos, 0, len(flat) - 1)], np.inf)
    nearest = np.minimum(queries - lower, upper - queries).reshape(n_rows, len(s_obs))
    indexed = (nearest <= RELATIVE_TOLERANCE * s_obs[None, :]).mean(axis=1)
    return np.where(n_calc > 0, indexed * np.minimum(1.0, len(s_obs) / np.maximum(n_calc, 1)), 0.0)


@numba.njit(cache=True, nogil=True, inline="always")
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@numba.njit(cache=True, nogil=True, inline="always")
def _bits_up_to(limit_m):
    """A uint64 mask with bits ``0 ... floor(limit_m)`` set (none below 0; all MAX_M + 1 bits above MAX_M)."""
    if limit_m < 0:
        return np.uint64(0)
    return (np.uint64(1) << np.uint64(min(np.floor(limit_m), MAX_M) + 1)) - np.uint64(1)


@numba.njit(cache=True, nogil=True)
def _score(s_obs, s_max, fa, c, bits, n_rows, to_beat):
    """Figure of merit of the candidate ``s = fa m + c l^2`` whose allowed ``m`` per ``l^2`` row are ``bits``;
    -1 as soon as it cannot exceed ``to_beat`` (the merit is at most the fraction of peaks indexed).

    Hits: a peak is indexed when an allowed ``m`` of some row lies within the tolerance window; while the window
    is narrower than one step of ``m`` only the nearest integer can. Distinct lines: a line of row ``j`` counts
    unless a lower row has its twin, ``m_i = m_j + (c / fa)(l2_j - l2_i)`` with that shift an integer.
    """
    n_obs = s_obs.shape[0]
    wide = RELATIVE_TOLERANCE * s_obs[n_obs - 1] / fa >= 0.5
    hits = 0
    for n in range(n_obs):
        half_width = RELATIVE_TOLERANCE * s_obs[n] / fa
        for j in range(n_rows):
            x = (s_obs[n] - L2_VALUES[j] * c) / fa
            if x + half_width < 0:  # rows further down only lower x (c >= 0)
                break
            if wide:
                if _bits_up_to(x + half_width) & ~_bits_up_to(np.ceil(x - half_width) - 1) & bits[j]:
                    hits += 1
                    break
            else:
                m = np.rint(x)
                if abs(x - m) <= half_width and m <= MAX_M and (bits[j] >> np.uint64(m)) & np.uint64(1):
                    hits += 1
                    break
        if (hits + n_obs - 1 - n) / n_obs <= to_beat:  # even indexing every peak left would not do
            return -1.0
    n_calc = 0
    for j in range(n_rows):
        limit = (s_max - L2_VALUES[j] * c) / fa
        if limit < 0:
            break
        duplicate = np.uint64(0)
        for i in range(j):
            shift = c / fa * (L2_VALUES[j] - L2_VALUES[i])
            whole = np.rint(shift)
            if abs(shift - whole) * fa <= 1e-9 * s_max and whole <= MAX_M:
                duplicate |= bits[i] >> np.uint64(max(whole, 0.0))
        n_calc += _popcount(bits[j] & _bits_up_to(limit) & ~duplicate)
    if n_calc == 0:
        return 0.0
    return hits / n_obs * min(1.0, n_obs / n_calc)


@numba.njit(cache=True, nogil=True)
def _score_all(s_obs, a, c, lattice, bits_table, factor, n_rows):
    s_max = s_obs[-1] * (1 + RELATIVE_TOLERANCE)
    out = np.empty(a.shape[0])
    for k in range(a.shape[0]):
        f = lattice[k]
        out[k] = _score(s_obs, s_max, factor[f] * a[k], c[k], bits_table[f], n_rows[f], -1.0)
    return out


def score_candidates(s_obs: np.ndarray, a: np.ndarray, c: np.ndarray, lattice: np.ndarray,
                     lattices: tuple[tuple[str, str], ...] = LATTICES) -> np.ndarray:
    """Figures of merit of candidates ``s = factor a m + c l^2`` on lattices ``lattices[lattice]`` (all (K,))."""
    bits, factor = _tables(lattices)
    return _score_all(np.ascontiguousarray(s_obs, dtype=np.float64), np.asarray(a, float), np.asarray(c, float),
                      np.asarray(lattice, np.int64), bits, factor, _row_counts(lattices))


@numba.njit(cache=True, nogil=True)
def _best_candidates(s_obs, low_m, n_low, cubic, bits_table, factor, n_rows):
    """For each lattice the best figure of merit and its (A, C), over the candidates of ``_candidates`` in its
    order (the first best wins, as ``np.argmax``), generated here rather than materialised."""
    n_lattices = factor.shape[0]
    s_max = s_obs[-1] * (1 + RELATIVE_TOLERANCE)
    best = np.full(n_lattices, -1.0)
    best_a = np.zeros(n_lattices)
    best_c = np.zeros(n_lattices)
    n_a, n_c = min(4, s_obs.shape[0]), min(6, s_obs.shape[0])
    trial_c = np.empty(4 * n_c)
    for f in range(n_lattices):
        for i in range(n_a):
            for u in range(n_low[f]):
                a = s_obs[i] / (factor[f] * low_m[f, u])
                fa = factor[f] * a
                n_trial = 0
                if cubic[f]:
                    trial_c[0] = 0.0
                    n_trial = 1
                else:
                    for j in range(n_c):  # peak j as (0 0 1) or (0 0 2)
                        trial_c[n_trial] = s_obs[j]
                        trial_c[n_trial + 1] = s_obs[j] / 4.0
                        n_trial += 2
                    for j in range(n_c):  # peak j as (h k 1) with one of the two lowest m
                        for v in range(2):
                            derived = s_obs[j] - fa * low_m[f, v]
                            if derived > 0:
                                trial_c[n_trial] = derived
                                n_trial += 1
                for t in range(n_trial):
                    score = _score(s_obs, s_max, fa, trial_c[t], bits_table[f], n_rows[f], best[f])
                    if score > best[f]:
                        best[f], best_a[f], best_c[f] = score, a, trial_c[t]
    return best, best_a, best_c


@lru_cache(maxsize=None)
def _low_m(family: str, centring: str) -> np.ndarray:
    m, _ = _reflections(family, centring)
    return np.unique(m[(m > 0) & (m <= 8)])[:4]


def _candidates(s_obs: np.ndarray, family: str, centring: str) -> tuple[np.ndarray, np.ndarray]:
    """Trial (A, C): the first peaks as low-index reflections; C from a peak as (00l) or as (hk1).

    ``_best_candidates`` generates the same candidates in the same order inside the compiled loop; this array
    form is the reference for the tests and the benchmark."""
    low_m = _low_m(family, centring)
    factor = metric_factor(family)
    a_cands = (s_obs[:4, None] / (factor * low_m[None, :])).ravel()
    if family == "cubic":
        return a_cands, np.zeros_like(a_cands)
    direct = (s_obs[:6, None] / np.array([1.0, 4.0])[None, :]).ravel()
    # a peak j indexed as (h k l) with the lowest m and l = 1 gives C = s_j - A m
    derived = (s_obs[None, :6, None] - factor * a_cands[:, None, None] * low_m[None, None, :2]).reshape(len(a_cands), -1)
    trial_c = np.concatenate([np.broadcast_to(direct, (len(a_cands), len(direct))), derived], axis=1)
    usable = np.concatenate([np.ones((len(a_cands), len(direct)), bool), derived > 0], axis=1)
    return np.repeat(a_cands, usable.sum(axis=1)), trial_c[usable]


@lru_cache(maxsize=None)
def _low_m_table(lattices: tuple[tuple[str, str], ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_low_m`` of each lattice padded to (F, 4), how many are real (F,), and which lattices are cubic (F,)."""
    low = np.zeros((len(lattices), 4))
    count = np.zeros(len(lattices), dtype=np.int64)
    for f, (family, centring) in enumerate(lattices):
        values = _low_m(family, centring)
        low[f, :len(values)], count[f] = values, len(values)
    return low, count, np.array([family == "cubic" for family, _ in lattices])


def index_lattices(s_obs: np.ndarray, lattices: tuple[tuple[str, str], ...] = LATTICES) -> list[tuple[float, float]]:
    """Best figure of merit and its c/a (NaN for cubic) for each (family, centring) over ``_candidates``."""
    bits, factor = _tables(lattices)
    low, count, cubic = _low_m_table(lattices)
    best, a, c = _best_candidates(np.ascontiguousarray(s_obs, dtype=np.float64), low, count, cubic, bits, factor,
                                  _row_counts(lattices))
    return [(float(best[f]), np.nan if cubic[f] else float(np.sqrt(a[f] / c[f]))) for f in range(len(lattices))]


def indexing_features(q_inv_angstrom: np.ndarray) -> np.ndarray:
    """The ``FOM_LABELS`` features from peak positions (Q, Å⁻¹, ascending); NaN with fewer than 4 peaks."""
    q = np.asarray(q_inv_angstrom, float)[:N_PEAKS]
    if len(q) < 4:
        return np.full(len(FOM_LABELS), np.nan)
    results = index_lattices((q / (2 * np.pi)) ** 2, LATTICES)
    foms = [fom for fom, _ in results]
    return np.array(foms + [results[3][1], results[5][1]])  # c/a of tetragonal P and hexagonal P
