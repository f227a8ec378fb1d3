"""Search-match by structure type: the reference patterns nearest to a pattern up to a change of lattice scale.

Materials of one structure type (rock salt, perovskite, spinel, ...) share a space group, and their powder
patterns differ mainly by the size of the cell: scaling every lattice length by ``k`` moves every peak from ``Q``
to ``Q / k``, which on a ``ln Q`` axis is one rigid shift by ``-ln k``. So the peaks of a pattern, drawn as narrow
Gaussians on ``ln Q`` and compared with a reference's at every relative shift up to ``MAX_SCALE_CHANGE``, match
the references of its structure type whatever their lattice constants: what a crystallographer does when a
new compound's pattern "looks like" a known one, shifted. A peak-position search on the linear Q grid (the
profile k-NN of ``tasks.evaluate``) misses them: a 5 % larger cell moves a peak at 3 Å⁻¹ by six of its bins.

The answer is a vote of the ``N_NEIGHBOURS`` most similar references, weighted by similarity to the power
``VOTE_POWER``. Measured on the 8,000 / 800 MP draw of ``bench/accuracy.py`` (test materials; the settings here
were chosen on that draw, so ``bench/accuracy.py`` reports them on another): SG top-1 0.388 for this vote alone
(power 8) against 0.273 for the same vote without the shift search and 0.218 for the profile k-NN on the linear Q
grid; the XGBoost model on the same features reaches 0.285, and mixed with the vote 0.42
(``tasks.models.SpaceGroupClassifier(structure_type_search=True)``). The vote alone with other settings: peak width 0.6 % instead of 1 %:
0.381, 0.4 %: 0.366; at 0.6 %, a scale range of 20 %: 0.374, intensities to the power 1: 0.319, 0.25: 0.381.

Speed: the exact search costs ``shifts x grid`` per reference, ~40 ms per pattern against 24,000 references. So
the search runs first on profiles ``COARSE_FACTOR`` times coarser (a quarter of the points and of the shifts, one
matrix product for a block of patterns), and only its ``N_CANDIDATES`` best are searched exactly. The
autocorrelation of a profile, which does not change with a shift, was the first idea for that pass; it kept only
38 % of the exact 20 nearest among its best 256 (the coarse search: 98.7 %).

Members of a structure type differ by more than a scale (c/a, b/a, angles): a search given its references' lines
(``with_reference_lines``) refines each neighbour's cell within its symmetry against the pattern and multiplies the
similarity by the refined fit to the power ``REFINEMENT_POWER`` (``tasks.isotype_refinement``).

Only the peaks travel: a reference is its peak positions (Å⁻¹) and relative intensities, as the XRD features
carry them (``peak_q_*``, ``peak_i_*``, ``strong_q_*``, ``strong_i_*``); profiles are rebuilt on load.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

LOG_Q_STEP = 0.005
LOG_Q_MIN = float(np.log(0.4))  # Å⁻¹, below ``tasks.features.Q_MIN_INV_ANGSTROM`` and above its maximum:
LOG_Q_MAX = float(np.log(7.0))  # shifted peaks stay on the grid
PEAK_WIDTH_LOG_Q = 0.01  # Gaussian sigma: 1 % in Q, beyond the zero shifts and strain of measured-like patterns
MAX_SCALE_CHANGE = 0.12  # |ln(a' / a)| searched: lattice constants within a structure type vary by ~10 %
INTENSITY_POWER = 0.5  # weaker peaks count: the strongest lines depend on the atoms, the set of lines on the type
# 60, not 20, since the search holds every MP training material. Chosen on the calibration split of
# bench/accuracy.py's model with 35,937 training materials (11,646 patterns, the re-ranker's cross-fitted
# answers, two seeds; SG top-1 / crystal system / extinction group): 20 neighbours 0.571 / 0.750 / 0.618, 40
# 0.574 / 0.753 / 0.622, 60 0.575 / 0.755 / 0.625; ~35 % more search time than 20. The re-ranker counts and
# fits more of each label's isotypes (on the 8,000-material draw 60 had given 0.461 against 0.459).
N_NEIGHBOURS = 60
VOTE_POWER = 16.0  # mixed with the booster: SG top-1 0.421 against 0.406 at 8 (8,000 / 800 MP draw)
N_CANDIDATES = 256
COARSE_FACTOR = 4  # first pass on a grid 4x coarser: 15x cheaper, keeps 98.7 % of the exact 20 nearest
PROBABILITY_FLOOR = 0.02  # share of the vote spread over every class: no class is ever impossible

_HALF_WIDTH_BINS = int(np.ceil(4 * PEAK_WIDTH_LOG_Q / LOG_Q_STEP))


class Matches(NamedTuple):
    """A search's answer for n patterns: its k nearest references (rows of the references), their similarities
    (times the refined fit ** ``REFINEMENT_POWER`` where the search refines) and their refined fits (0-1; ones where
    the search refines nothing)."""

    index: np.ndarray
    similarity: np.ndarray
    fit: np.ndarray


@lru_cache(maxsize=None)
def _stick_columns(feature_version: str) -> tuple[np.ndarray, np.ndarray]:
    from tasks.features import XRDPatternFeaturizer, feature_columns

    featurizer, reader = XRDPatternFeaturizer(), "the structure-type search (peaks from XRD features)"
    return (feature_columns(featurizer, feature_version, lambda name: name.startswith(("peak_q_", "strong_q_")), reader),
            feature_columns(featurizer, feature_version, lambda name: name.startswith(("peak_i_", "strong_i_")), reader))


@lru_cache(maxsize=None)
def first_peak_count(feature_version: str) -> int:
    """How many of ``peak_sticks``' columns are the first peaks by position (the rest are the strongest)."""
    from tasks.features import XRDPatternFeaturizer, feature_columns

    return len(feature_columns(XRDPatternFeaturizer(), feature_version, lambda name: name.startswith("peak_q_"),
                               "the structure-type search (peaks from XRD features)"))


def peak_sticks(X: np.ndarray, feature_version: str) -> tuple[np.ndarray, np.ndarray]:
    """Peak positions (Å⁻¹) and relative intensities of XRD feature rows: the first and the strongest peaks."""
    q_columns, intensity_columns = _stick_columns(feature_version)
    X = np.asarray(X)
    return X[:, q_columns], X[:, intensity_columns]


def log_q_grid() -> np.ndarray:
    return np.arange(LOG_Q_MIN, LOG_Q_MAX, LOG_Q_STEP)


def stick_profiles(q_inv_angstrom: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """Unit-norm profiles on ``log_q_grid()`` of peaks given per row (NaN for none); duplicates count once.

    ``q_inv_angstrom`` and ``intensity`` are (n, m); a row without peaks gives a zero profile.
    """
    q = np.asarray(q_inv_angstrom, dtype=np.float64)
    inten = np.asarray(intensity, dtype=np.float64)
    n, m = q.shape
    n_grid = len(log_q_grid())
    ok = np.isfinite(q) & np.isfinite(inten) & (q > 0) & (inten > 0)
    position = np.where(ok, (np.log(np.where(ok, q, 1.0)) - LOG_Q_MIN) / LOG_Q_STEP, -1e9)
    # the first and the strong peaks overlap: keep each position once per row
    order = np.argsort(position, axis=1)
    position = np.take_along_axis(position, order, axis=1)
    weight = np.take_along_axis(np.where(ok, np.abs(inten), 0.0) ** INTENSITY_POWER, order, axis=1)
    repeated = np.zeros_like(ok)
    repeated[:, 1:] = np.abs(np.diff(position, axis=1)) < 1e-3
    weight[repeated | (position < 0)] = 0.0
    offsets = np.arange(-_HALF_WIDTH_BINS, _HALF_WIDTH_BINS + 1)
    bins = np.floor(position)[:, :, None] + offsets  # (n, m, window)
    values = weight[:, :, None] * np.exp(-0.5 * ((bins - position[:, :, None]) * (LOG_Q_STEP / PEAK_WIDTH_LOG_Q)) ** 2)
    inside = (bins >= 0) & (bins < n_grid) & (values > 0)
    rows = np.broadcast_to(np.arange(n)[:, None, None], bins.shape)
    out = np.zeros(n * n_grid, dtype=np.float64)
    np.add.at(out, (rows[inside] * n_grid + bins[inside].astype(np.int64)), values[inside])
    return _unit_rows(out.reshape(n, n_grid))


def _unit_rows(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm (zero rows stay zero), as float32 for the matrix products of the search."""
    norm = np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def coarse_profiles(profiles: np.ndarray) -> np.ndarray:
    """Unit-norm profiles binned ``COARSE_FACTOR`` times coarser (the first, cheap pass of the search)."""
    n, n_grid = profiles.shape
    usable = n_grid // COARSE_FACTOR * COARSE_FACTOR
    return _unit_rows(profiles[:, :usable].reshape(n, -1, COARSE_FACTOR).sum(axis=2))


def _shifted_copies(profile: np.ndarray, max_shift_bins: int) -> np.ndarray:
    """(2 s + 1, grid): the profile moved by -s .. +s bins, zero-filled."""
    n_grid = profile.shape[0]
    out = np.zeros((2 * max_shift_bins + 1, n_grid), dtype=np.float32)
    for row, shift in enumerate(range(-max_shift_bins, max_shift_bins + 1)):
        if shift >= 0:
            out[row, shift:] = profile[: n_grid - shift]
        else:
            out[row, :shift] = profile[-shift:]
    return out


def class_columns(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The index of each label in the sorted ``classes``, or -1 for a label outside them."""
    classes = np.asarray(classes)
    column = np.searchsorted(classes, labels)
    known = (column < len(classes)) & (classes[np.minimum(column, len(classes) - 1)] == labels)
    return np.where(known, column, -1)


def weighted_vote(labels: np.ndarray, weights: np.ndarray, classes) -> np.ndarray:
    """Per row, the share of ``weights`` (n, k) cast for each of ``classes`` by neighbours labelled ``labels``
    (n, k), with ``PROBABILITY_FLOOR`` spread over every class; labels outside ``classes`` do not vote, and a row
    without votes is even."""
    classes = np.asarray(classes)
    column = class_columns(labels, classes)
    known = column >= 0
    votes = np.zeros((len(labels), len(classes)))
    np.add.at(votes, (np.repeat(np.arange(len(labels)), labels.shape[1]), np.where(known, column, 0).ravel()),
              np.where(known, weights, 0.0).ravel())
    total = votes.sum(axis=1, keepdims=True)
    votes = np.where(total > 0, votes / np.where(total > 0, total, 1.0), 1.0 / len(classes))
    return (1.0 - PROBABILITY_FLOOR) * votes + PROBABILITY_FLOOR / len(classes)


class StructureTypeNeighbours:
    """k-nearest reference patterns up to a lattice scale change; ``predict_proba`` is their weighted vote."""

    def __init__(self, n_neighbours: int = N_NEIGHBOURS, n_candidates: int = N_CANDIDATES,
                 max_scale_change: float = MAX_SCALE_CHANGE, vote_power: float = VOTE_POWER) -> None:
        self.n_neighbours = n_neighbours
        self.n_candidates = n_candidates
        self.max_scale_change = max_scale_change
        self.vote_power = vote_power

    def fit(self, q_inv_angstrom: np.ndarray, intensity: np.ndarray, y, groups=None) -> "StructureTypeNeighbours":
        """Keep the peaks of the references, their labels (space-group numbers) and, for searches that leave a
        material out (``exclude_groups``), their groups (not saved)."""
        self.groups_ = None if groups is None else np.asarray(groups)
        self.q_inv_angstrom_ = np.asarray(q_inv_angstrom, dtype=np.float32)
        self.intensity_ = np.asarray(intensity, dtype=np.float32)
        self.labels_ = np.asarray(y).astype(np.int64)
        if self.q_inv_angstrom_.shape != self.intensity_.shape or len(self.labels_) != len(self.q_inv_angstrom_):
            raise ValueError(f"peak positions {self.q_inv_angstrom_.shape}, intensities {self.intensity_.shape} "
                             f"and {len(self.labels_)} labels do not match")
        self.lines_, self.line_rows_, self.n_first_peaks_ = None, None, 0
        self._index()
        return self

    def with_reference_lines(self, lines, line_rows, n_first_peaks: int) -> "StructureTypeNeighbours":
        """Rescore every neighbour by isotypic cell refinement (``tasks.isotype_refinement``): its similarity times
        its refined fit ** ``REFINEMENT_POWER``. ``lines`` is a ``LineTable``, ``line_rows`` the row of it of each
        reference (its structure), ``n_first_peaks`` how many of a row's peaks are the first by position."""
        line_rows = np.asarray(line_rows, dtype=np.int64)
        if line_rows.shape != self.labels_.shape:
            raise ValueError(f"{len(line_rows)} line-table rows for {len(self.labels_)} references")
        if len(line_rows) and (line_rows.min() < 0 or line_rows.max() >= len(lines)):
            raise ValueError(f"line-table rows must lie in 0..{len(lines) - 1}")
        self.lines_, self.line_rows_, self.n_first_peaks_ = lines, line_rows, int(n_first_peaks)
        return self

    def _index(self) -> None:
        self.profiles_ = stick_profiles(self.q_inv_angstrom_, self.intensity_)
        self.coarse_ = coarse_profiles(self.profiles_)

    def similarities(self, q_inv_angstrom: np.ndarray, intensity: np.ndarray, exclude_groups=None,
                     block: int = 32) -> Matches:
        """Per row: the ``n_neighbours`` nearest references, their similarities (max over shifts) and fits.

        ``exclude_groups`` (one per row) leaves out the references of the row's own group: the patterns of the
        same material, when the rows are references themselves."""
        if exclude_groups is not None and self.groups_ is None:
            raise ValueError("references were indexed without groups: nothing to exclude by")
        profiles = stick_profiles(q_inv_angstrom, intensity)
        coarse = coarse_profiles(profiles)
        n_ref = len(self.labels_)
        k = min(self.n_neighbours, n_ref)
        n_cand = min(max(self.n_candidates, k), n_ref)
        max_shift = int(round(self.max_scale_change / LOG_Q_STEP))
        coarse_shift = max(1, int(round(max_shift / COARSE_FACTOR)))
        index = np.zeros((len(profiles), k), dtype=np.int64)
        similarity = np.zeros((len(profiles), k), dtype=np.float32)
        for start in range(0, len(profiles), block):
            queries = coarse[start:start + block]
            shifted = np.concatenate([_shifted_copies(row, coarse_shift) for row in queries])
            rough = (shifted @ self.coarse_.T).reshape(len(queries), 2 * coarse_shift + 1, n_ref).max(axis=1)
            if n_cand < n_ref:
                candidates = np.argpartition(-rough, n_cand - 1, axis=1)[:, :n_cand]
            else:
                candidates = np.broadcast_to(np.arange(n_ref), rough.shape)
            for row, cand in enumerate(candidates):
                exact = (self.profiles_[cand] @ _shifted_copies(profiles[start + row], max_shift).T).max(axis=1)
                if exclude_groups is not None:
                    exact[self.groups_[cand] == exclude_groups[start + row]] = -1.0
                best = np.argpartition(-exact, k - 1)[:k] if k < len(exact) else np.arange(len(exact))
                index[start + row] = cand[best]
                similarity[start + row] = exact[best]
        if self.lines_ is None:
            return Matches(index, similarity, np.ones_like(similarity))
        from tasks.isotype_refinement import REFINEMENT_POWER, refined_fits

        fit = refined_fits(q_inv_angstrom, intensity, self.line_rows_[index], self.lines_, self.n_first_peaks_)
        return Matches(index, (similarity * fit ** REFINEMENT_POWER).astype(np.float32), fit)

    def predict_proba(self, q_inv_angstrom: np.ndarray, intensity: np.ndarray, classes: np.ndarray,
                      exclude_groups=None) -> np.ndarray:
        """The neighbours' vote over ``classes`` (similarity ** ``vote_power``), with ``PROBABILITY_FLOOR`` spread."""
        return self.vote(q_inv_angstrom, intensity, classes, exclude_groups)[0]

    def neighbours(self, q_inv_angstrom: np.ndarray, intensity: np.ndarray,
                   exclude_groups=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row: the labels of the ``n_neighbours`` nearest references, their similarities and refined fits."""
        index, similarity, fit = self.similarities(q_inv_angstrom, intensity, exclude_groups)
        return self.labels_[index], similarity, fit

    def vote_of(self, labels: np.ndarray, similarity: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The vote of neighbours (``neighbours``' answer) and, per row, the similarity of the nearest one."""
        votes = weighted_vote(labels, np.clip(similarity, 0.0, None) ** self.vote_power, classes)
        best = similarity.max(axis=1) if similarity.shape[1] else np.zeros(len(labels), dtype=np.float32)
        return votes, best

    def vote(self, q_inv_angstrom: np.ndarray, intensity: np.ndarray, classes: np.ndarray,
             exclude_groups=None) -> tuple[np.ndarray, np.ndarray]:
        """``predict_proba`` and, per row, the similarity of the nearest reference (how much to trust the vote)."""
        labels, similarity, _ = self.neighbours(q_inv_angstrom, intensity, exclude_groups)
        return self.vote_of(labels, similarity, classes)

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"neighbour_q": self.q_inv_angstrom_, "neighbour_intensity": self.intensity_,
                  "neighbour_labels": self.labels_,
                  "neighbour_params": np.array([self.n_neighbours, self.n_candidates, self.max_scale_change,
                                                self.vote_power], dtype=np.float64)}
        if self.lines_ is not None:
            arrays |= self.lines_.to_arrays() | {"neighbour_line_rows": self.line_rows_,
                                                 "neighbour_first_peaks": np.array([self.n_first_peaks_])}
        return arrays

    @classmethod
    def from_arrays(cls, arrays) -> "StructureTypeNeighbours":
        n_neighbours, n_candidates, max_scale_change, vote_power = (float(v) for v in arrays["neighbour_params"])
        model = cls(int(n_neighbours), int(n_candidates), max_scale_change, vote_power)
        model.fit(arrays["neighbour_q"], arrays["neighbour_intensity"], arrays["neighbour_labels"])
        if "neighbour_line_rows" in arrays:
            from tasks.isotype_refinement import LineTable

            model.with_reference_lines(LineTable.from_arrays(arrays), arrays["neighbour_line_rows"],
                                       int(arrays["neighbour_first_peaks"][0]))
        return model
