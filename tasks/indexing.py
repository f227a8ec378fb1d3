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
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

N_PEAKS = 12
RELATIVE_TOLERANCE = 0.004  # on s = 1/d^2; zero shift and strain move low-angle peaks by ~0.2-0.5 %
MAX_INDEX = 8

FOM_LABELS = ("fom_cubic_P", "fom_cubic_I", "fom_cubic_F", "fom_tetragonal_P", "fom_tetragonal_I",
              "fom_hexagonal_P", "fom_hexagonal_R", "c_over_a_tetragonal", "c_over_a_hexagonal")


@lru_cache(maxsize=None)
def _reflections(family: str, centring: str) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (m, l^2) pairs allowed for a lattice: s = A_factor * m + C * l^2."""
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
    arr = np.array(sorted(pairs), dtype=float)
    return arr[:, 0], arr[:, 1]


def _scores(s_obs: np.ndarray, calc: np.ndarray) -> np.ndarray:
    """Figures of merit of K candidate line lists ``calc`` (K x R) against the observed ``s_obs`` (N).

    Rows are sorted and laid end to end in disjoint bands (row k shifted by ``k * band``), so one
    ``searchsorted`` finds every observed line's nearest calculated neighbours in its own row.
    """
    s_max = s_obs[-1] * (1 + RELATIVE_TOLERANCE)
    n_rows, n_cols = calc.shape
    inside = calc <= s_max
    n_calc = np.zeros(n_rows, dtype=int)
    calc = np.sort(np.where(inside, calc, 2.0 * s_max), axis=1)
    with np.errstate(invalid="ignore"):
        steps = np.diff(calc, axis=1) > 1e-9 * s_max
    distinct = (calc <= s_max) & np.concatenate([np.ones((n_rows, 1), bool), steps], axis=1)
    n_calc = distinct.sum(axis=1)
    band = 4.0 * s_max
    offsets = np.arange(n_rows)[:, None] * band
    flat = (calc + offsets).ravel()
    queries = (s_obs[None, :] + offsets).ravel()
    pos = np.searchsorted(flat, queries)
    row_start = np.repeat(np.arange(n_rows) * n_cols, len(s_obs))
    lower = np.where(pos - 1 >= row_start, flat[np.clip(pos - 1, 0, len(flat) - 1)], -np.inf)
    upper = np.where(pos < row_start + n_cols, flat[np.clip(pos, 0, len(flat) - 1)], np.inf)
    nearest = np.minimum(queries - lower, upper - queries).reshape(n_rows, len(s_obs))
    indexed = (nearest <= RELATIVE_TOLERANCE * s_obs[None, :]).mean(axis=1)
    return np.where(n_calc > 0, indexed * np.minimum(1.0, len(s_obs) / np.maximum(n_calc, 1)), 0.0)


def index_family(s_obs: np.ndarray, family: str, centring: str = "P") -> tuple[float, float]:
    """Best figure of merit and its c/a (NaN for cubic) for one lattice family and centring."""
    m, l2 = _reflections(family, centring)
    keep = (m <= 40) & (l2 <= 36)
    m, l2 = m[keep], l2[keep]
    factor = 4.0 / 3.0 if family == "hexagonal" else 1.0
    low_m = np.unique(m[(m > 0) & (m <= 8)])[:4]
    a_cands = (s_obs[:4, None] / (factor * low_m[None, :])).ravel()
    if family == "cubic":
        return float(_scores(s_obs, a_cands[:, None] * m[None, :]).max()), np.nan
    direct = (s_obs[:6, None] / np.array([1.0, 4.0])[None, :]).ravel()
    A, C = [], []
    for a in a_cands:
        # a peak j indexed as (h k l) with the lowest m and l = 1 gives C = s_j - A m
        derived = (s_obs[:6, None] - factor * a * low_m[None, :2]).ravel()
        cs = np.concatenate([direct, derived[derived > 0]])
        A.append(np.full(len(cs), a))
        C.append(cs)
    A, C = np.concatenate(A), np.concatenate(C)
    scores = _scores(s_obs, factor * A[:, None] * m[None, :] + C[:, None] * l2[None, :])
    best = int(np.argmax(scores))
    return float(scores[best]), float(np.sqrt(A[best] / C[best]))


def indexing_features(q_inv_angstrom: np.ndarray) -> np.ndarray:
    """The ``FOM_LABELS`` features from peak positions (Q, Å⁻¹, ascending); NaN with fewer than 4 peaks."""
    q = np.asarray(q_inv_angstrom, float)[:N_PEAKS]
    if len(q) < 4:
        return np.full(len(FOM_LABELS), np.nan)
    s = (q / (2 * np.pi)) ** 2
    cub = [index_family(s, "cubic", c)[0] for c in ("P", "I", "F")]
    tet_p, ratio_t = index_family(s, "tetragonal", "P")
    tet_i, _ = index_family(s, "tetragonal", "I")
    hex_p, ratio_h = index_family(s, "hexagonal", "P")
    hex_r, _ = index_family(s, "hexagonal", "R")
    return np.array(cub + [tet_p, tet_i, hex_p, hex_r, ratio_t, ratio_h])
