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
their lattice allows, so comparing them hints at the centring.

Speed: a candidate's lines are never listed. For each ``l^2`` the allowed ``m`` are a small integer set (a bit
mask), so a peak is indexed when the integer nearest to ``(s - C l^2) / A`` is in that set and close enough,
and the distinct lines below the last peak are counted with bit masks (two lines coincide only when
``C / A`` times a difference of ``l^2`` is an integer). The candidates of all seven lattices are scored in one
pass. ``scores_by_listing`` is the plain way (list and sort every candidate's lines, search the peaks in them):
the tests check the two agree and ``bench/featurize_speed.py`` measures the gain.
"""

from __future__ import annotations

from functools import lru_cache

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
_ROW = MAX_M + 3  # allowed-m lookup row: a False guard at m = -1 and at m = MAX_M + 1


@lru_cache(maxsize=None)
def _tables(lattices: tuple[tuple[str, str], ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each lattice (F) and ``l^2`` in ``L2_VALUES`` (J): the allowed ``m`` as bit masks (F, J) uint64 (bit m),
    the same as a flat lookup (``allowed[(f * J + j) * _ROW + m + 1]``), and the factor of ``A`` (F,)."""
    allowed = np.zeros((len(lattices), len(L2_VALUES), _ROW), dtype=bool)
    for f, (family, centring) in enumerate(lattices):
        m, l2 = _reflections(family, centring)
        allowed[f, np.searchsorted(L2_VALUES, l2), m.astype(int) + 1] = True
    weights = np.uint64(1) << np.arange(MAX_M + 1, dtype=np.uint64)
    bits = (allowed[:, :, 1:-1].astype(np.uint64) * weights).sum(axis=2, dtype=np.uint64)
    factor = np.array([_factor(family) for family, _ in lattices])
    return bits, allowed.ravel(), factor


def _bits_up_to(limit_m: np.ndarray) -> np.ndarray:
    """uint64 masks with bits ``0 ... floor(limit_m)`` set (none below 0; all MAX_M + 1 bits above MAX_M)."""
    n = np.clip(np.floor(limit_m), -1, MAX_M).astype(np.uint64) + np.uint64(1)
    return np.where(limit_m >= 0, (np.uint64(1) << n) - np.uint64(1), np.uint64(0))


@lru_cache(maxsize=None)
def _row_pairs(n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """All (lower, upper) row pairs, grouped by the upper row."""
    lower, upper = np.triu_indices(n_rows, k=1)
    order = np.argsort(upper, kind="stable")
    return lower[order], upper[order]


def _factor(family: str) -> float:
    return 4.0 / 3.0 if family == "hexagonal" else 1.0


def _distinct_lines(fa: np.ndarray, c: np.ndarray, bits: np.ndarray, s_max: float) -> np.ndarray:
    """Distinct lines ``s <= s_max`` of each candidate (``bits``: (K, J) allowed m); closer than 1e-9 s_max is one.

    Lines ``(m_a, l2_a)`` and ``(m_b, l2_b)`` coincide when ``m_a = m_b + r (l2_b - l2_a)`` with ``r = c / (f a)``
    and that shift is an integer; a line counts unless a row of smaller ``l^2`` has its twin (bit masks, no sort).
    """
    lower, upper = _row_pairs(len(L2_VALUES))
    below = bits & _bits_up_to((s_max - L2_VALUES[None, :] * c[:, None]) / fa[:, None])  # (K, J)
    shift = (c / fa)[:, None] * (L2_VALUES[upper] - L2_VALUES[lower])[None, :]  # (K, pairs)
    whole = np.rint(shift)
    twin = (np.abs(shift - whole) * fa[:, None] <= 1e-9 * s_max) & (whole <= MAX_M)
    shifted = np.where(twin, bits[:, lower] >> np.clip(whole, 0, 63).astype(np.uint64), np.uint64(0))
    duplicate = np.zeros_like(below)
    starts = np.flatnonzero(np.diff(upper, prepend=-1))
    duplicate[:, upper[starts]] = np.bitwise_or.reduceat(shifted, starts, axis=1)
    return np.bitwise_count(below & ~duplicate).sum(axis=1)


def scores_by_listing(s_obs: np.ndarray, a: np.ndarray, c: np.ndarray, family: str, centring: str) -> np.ndarray:
    """Figures of merit by listing every candidate's lines: the reference for ``_scores`` (tests, benchmark)."""
    m, l2 = _reflections(family, centring)
    s_max = s_obs[-1] * (1 + RELATIVE_TOLERANCE)
    calc = np.sort(_factor(family) * a[:, None] * m[None, :] + c[:, None] * l2[None, :], axis=1)
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


def _scores(s_obs: np.ndarray, a: np.ndarray, c: np.ndarray, lattice: np.ndarray,
            lattices: tuple[tuple[str, str], ...]) -> np.ndarray:
    """Figures of merit of candidates ``s = factor a m + c l^2`` on lattices ``lattices[lattice]`` (all (K,)).

    A peak is indexed when the integer ``m`` nearest to ``(s - c l^2) / (factor a)`` is allowed for that ``l^2``
    and within the tolerance. That is exact while the tolerance window is narrower than one step of ``m``;
    candidates with a wider window (tiny ``a``) test every ``m`` in the window with bit masks.
    """
    bits_table, allowed, factor = _tables(lattices)
    n_l2 = len(L2_VALUES)
    fa = factor[lattice] * a
    bits = bits_table[lattice]  # (K, J)
    s_max = s_obs[-1] * (1 + RELATIVE_TOLERANCE)
    half_width = RELATIVE_TOLERANCE * s_obs[None, :] / fa[:, None]  # (K, N), in steps of m
    x = (s_obs[None, None, :] - (L2_VALUES[:, None] * c[None, :])[:, :, None]) / fa[None, :, None]  # (J, K, N)
    m = np.rint(x)
    close = np.abs(x - m) <= half_width[None]
    np.clip(m, -1, MAX_M + 1, out=m)
    m += (lattice[None, :] * n_l2 + np.arange(n_l2)[:, None])[:, :, None] * _ROW + 1
    hit = (close & allowed[m.astype(np.intp)]).any(axis=0)
    wide = np.flatnonzero(half_width.max(axis=1) >= 0.5)
    if len(wide):
        xw, hw = x[:, wide], half_width[None, wide]
        window = _bits_up_to(xw + hw) & ~_bits_up_to(np.ceil(xw - hw) - 1)
        hit[wide] = ((window & bits[wide].T[:, :, None]) != 0).any(axis=0)
    n_calc = _distinct_lines(fa, c, bits, s_max)
    return np.where(n_calc > 0, hit.mean(axis=1) * np.minimum(1.0, len(s_obs) / np.maximum(n_calc, 1)), 0.0)


@lru_cache(maxsize=None)
def _low_m(family: str, centring: str) -> np.ndarray:
    m, _ = _reflections(family, centring)
    return np.unique(m[(m > 0) & (m <= 8)])[:4]


def _candidates(s_obs: np.ndarray, family: str, centring: str) -> tuple[np.ndarray, np.ndarray]:
    """Trial (A, C): the first peaks as low-index reflections; C from a peak as (00l) or as (hk1)."""
    low_m = _low_m(family, centring)
    factor = _factor(family)
    a_cands = (s_obs[:4, None] / (factor * low_m[None, :])).ravel()
    if family == "cubic":
        return a_cands, np.zeros_like(a_cands)
    direct = (s_obs[:6, None] / np.array([1.0, 4.0])[None, :]).ravel()
    # a peak j indexed as (h k l) with the lowest m and l = 1 gives C = s_j - A m
    derived = (s_obs[None, :6, None] - factor * a_cands[:, None, None] * low_m[None, None, :2]).reshape(len(a_cands), -1)
    trial_c = np.concatenate([np.broadcast_to(direct, (len(a_cands), len(direct))), derived], axis=1)
    usable = np.concatenate([np.ones((len(a_cands), len(direct)), bool), derived > 0], axis=1)
    return np.repeat(a_cands, usable.sum(axis=1)), trial_c[usable]


def index_lattices(s_obs: np.ndarray, lattices: tuple[tuple[str, str], ...] = LATTICES) -> list[tuple[float, float]]:
    """Best figure of merit and its c/a (NaN for cubic) for each (family, centring), all scored in one pass."""
    parts = [_candidates(s_obs, family, centring) for family, centring in lattices]
    sizes = [len(a) for a, _ in parts]
    a = np.concatenate([a for a, _ in parts])
    c = np.concatenate([c for _, c in parts])
    scores = _scores(s_obs, a, c, np.repeat(np.arange(len(lattices)), sizes), lattices)
    out, start = [], 0
    for (family, _), size in zip(lattices, sizes):
        best = start + int(np.argmax(scores[start:start + size]))
        out.append((float(scores[best]), np.nan if family == "cubic" else float(np.sqrt(a[best] / c[best]))))
        start += size
    return out


def indexing_features(q_inv_angstrom: np.ndarray) -> np.ndarray:
    """The ``FOM_LABELS`` features from peak positions (Q, Å⁻¹, ascending); NaN with fewer than 4 peaks."""
    q = np.asarray(q_inv_angstrom, float)[:N_PEAKS]
    if len(q) < 4:
        return np.full(len(FOM_LABELS), np.nan)
    results = index_lattices((q / (2 * np.pi)) ** 2, LATTICES)
    foms = [fom for fom, _ in results]
    return np.array(foms + [results[3][1], results[5][1]])  # c/a of tetragonal P and hexagonal P
