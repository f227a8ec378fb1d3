"""Search by structure prototype for formulas: known compounds of the same stoichiometry and similar elements.

Pettifor's structure maps (Pettifor 1984, Solid State Commun. 51, 31; "The structures of binary compounds",
J. Phys. C 19, 285 (1986)) order the elements on one scale, the Mendeleev number, such that compounds of one
stoichiometry whose elements sit close on it crystallise in the same structure type. A formula is placed on its
map by the shares of its elements (the stoichiometry: AB, AB2, ABX3, ...) and their Mendeleev numbers, taken in a
fixed order (ascending share, ties by Mendeleev number); the references of the same stoichiometry nearest to it
(the sum of the differences of the Mendeleev numbers, element by element) vote for their space groups, weighted
``exp(-distance / DISTANCE_SCALE)``.

Elements close on the scale do not always replace each other in crystals, and some far apart do (Mg2+ and Zn2+,
Ca2+ and Na+). So each element pair also costs ``SUBSTITUTION_WEIGHT`` times its substitution dissimilarity from
the data-mined ionic substitution probabilities of Hautier et al. (Inorg. Chem. 50, 656 (2011); pymatgen's
``SubstitutionProbability``, mined from the ICSD): how many nats less likely element b takes element a's place
than a keeps it, in the likelier direction (``substitution_dissimilarity``). Measured by leaving each formula's
own reduced formula out of the search among the training formulas (two draws of 6,000; the vote alone, SG top-1):
0.488 -> 0.498 and 0.491 -> 0.500 at weight 2 (0.496 at 4, 0.495 at 8; 0.473 for the substitution term alone).
On the held-out formulas below, 0.496 -> 0.510 for the vote alone; the shipped model mixing it with its boosters
0.516 -> 0.520 (top-5 0.785 -> 0.781, crystal system 0.625 -> 0.634): the boosters already knew much of it.

Measured on the held-out reduced formulas of the shipped formula model (``bench/formula_accuracy.py``'s split,
3,603 entries; no reduced formula on both sides), before the substitution term: SG top-1 0.496 and top-5 0.744
for this vote alone (96 % of formulas have a reference of their stoichiometry), against 0.435 / 0.710 for the
XGBoost model on the magpie descriptors; with the Mendeleev numbers of the magpie table (Villars' ordering)
instead of Pettifor's, 0.480; 10 neighbours at scale 3: 0.488, at scale 10: 0.477.
``tasks.models.SpaceGroupClassifier`` mixes the vote with its boosters (``structure_type_search``).

The map's coordinates travel as feature columns (``PROTOTYPE_LABELS``, computed by
``tasks.features.FormulaFeaturizer``), so a model needs nothing but its feature rows.
"""

from __future__ import annotations

import json
import re
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

from tasks.neighbours import weighted_vote

MAX_ELEMENTS = 8  # MP compounds with more are rare; their first 8 shares still place them
PROTOTYPE_LABELS = ("prototype_n_elements", *(f"prototype_fraction_{i}" for i in range(MAX_ELEMENTS)),
                    *(f"prototype_mendeleev_{i}" for i in range(MAX_ELEMENTS)))
N_NEIGHBOURS = 10
DISTANCE_SCALE = 1.0  # Mendeleev numbers; closest-first votes: 0.496 top-1 against 0.488 at 3 (held-out formulas)
MISSING_ELEMENT_DISTANCE = 50.0  # an element without a Mendeleev number is far from every other
UNSEEN_SUBSTITUTION_LAMBDA = -5.0  # pymatgen's SubstitutionProbability(alpha=-5): pairs never seen to substitute
SUBSTITUTION_WEIGHT = 2.0  # Mendeleev steps per nat of substitution dissimilarity (module docstring)
_KEY_DIGITS = 4
_ELEMENT_OF_ION = re.compile(r"[A-Z][a-z]?")  # 'Fe3+' -> 'Fe'
_MAX_PAIRS = 250_000  # query-reference pairs per distance matrix (x 8 columns: ~16 MB of float64)


def prototype_columns(composition) -> np.ndarray:
    """``PROTOTYPE_LABELS`` for a pymatgen ``Composition``: number of elements, their shares in ascending order
    (ties by Mendeleev number) and their Pettifor Mendeleev numbers in that order; NaN beyond the last element."""
    items = []
    total = sum(float(amount) for amount in composition.element_composition.values())
    numbers = _element_mendeleev_numbers()
    for element, amount in composition.element_composition.items():
        mendeleev = numbers.get(element.symbol)  # superheavy elements have none: NaN places them far from all
        items.append((round(float(amount) / total, 9), np.nan if mendeleev is None else float(mendeleev)))
    items.sort(key=lambda item: (item[0], np.inf if np.isnan(item[1]) else item[1]))
    out = np.full(len(PROTOTYPE_LABELS), np.nan)
    out[0] = len(items)
    for i, (share, mendeleev) in enumerate(items[:MAX_ELEMENTS]):
        out[1 + i] = share
        out[1 + MAX_ELEMENTS + i] = mendeleev
    return out


@lru_cache(maxsize=None)
def _prototype_column_indices(feature_version: str) -> np.ndarray:
    from tasks.features import FormulaFeaturizer, feature_columns

    columns = feature_columns(FormulaFeaturizer(), feature_version, PROTOTYPE_LABELS.__contains__,
                              "the prototype search (formula features)")
    if len(columns) != len(PROTOTYPE_LABELS):
        raise ValueError(f"formula features {feature_version!r} lack the prototype search's columns")
    return columns


def prototype_features(X: np.ndarray, feature_version: str) -> np.ndarray:
    """The ``PROTOTYPE_LABELS`` columns of formula feature rows."""
    return np.asarray(X)[:, _prototype_column_indices(feature_version)]


def _element_index(mendeleev: np.ndarray) -> np.ndarray:
    """Rows of ``element_distances`` for Mendeleev-number columns: the number itself, 0 for no element."""
    return np.nan_to_num(mendeleev, nan=0.0).astype(np.int64)


@lru_cache(maxsize=None)
def _element_mendeleev_numbers() -> dict[str, int]:
    from pymatgen.core import Element

    numbers = {}
    with warnings.catch_warnings():  # the superheavy elements have no Mendeleev number: skipped
        warnings.simplefilter("ignore")
        for element in Element:
            number = element.mendeleev_no
            if number is not None:
                numbers[element.symbol] = int(number)
    return numbers


def _lambda_table() -> list[tuple[str, str, float]]:
    """Hautier's lambda table as pymatgen ships it: (ion, ion, lambda) rows. Read from the
    package's data file: ``SubstitutionProbability()`` builds ~40,000 ``Species`` pairs first (~4 s), for nothing
    this needs."""
    try:
        from pymatgen.core.structure_prediction import substitution_probability as module
    except ImportError:  # pymatgen before 2025 kept it under analysis
        from pymatgen.analysis.structure_prediction import substitution_probability as module

    rows = json.loads((Path(module.__file__).parent / "data" / "lambda.json").read_text())
    return [(str(a), str(b), float(value)) for a, b, value in rows]


@lru_cache(maxsize=None)
def substitution_dissimilarity() -> np.ndarray:
    """(m, m) nats, indexed by Pettifor Mendeleev number (row 0: no element): for elements a and b,
    ``min(ln p(a|a) - ln p(b|a), ln p(b|b) - ln p(a|b))``, at least 0, where ``p(b|a)`` is the chance that b takes
    a's place in a crystal under Hautier's data-mined lambda table, each element taken in its likeliest oxidation
    states (the largest lambda over the pairs of their ions). Elements the table never saw cost nothing here; their
    Mendeleev numbers still place them."""
    numbers = _element_mendeleev_numbers()
    size = max(numbers.values()) + 1
    rows = _lambda_table()
    lam = np.full((size, size), -np.inf)
    for first, second, value in rows:
        a, b = (numbers.get(_ELEMENT_OF_ION.match(ion).group()) for ion in (first, second))
        if a is not None and b is not None:
            lam[a, b] = lam[b, a] = max(lam[a, b], value)
    lam = np.where(np.isfinite(lam), lam, UNSEEN_SUBSTITUTION_LAMBDA)
    np.fill_diagonal(lam, np.maximum(np.diag(lam), lam.max(axis=1)))  # staying put is never the unlikelier choice
    log_p = lam - np.log(np.exp(lam).sum(axis=1, keepdims=True))
    cost = np.diag(log_p)[:, None] - log_p
    cost = np.maximum(np.minimum(cost, cost.T), 0.0)
    np.fill_diagonal(cost, 0.0)
    cost[0, :] = cost[:, 0] = 0.0
    cost.setflags(write=False)  # cached and shared
    return cost


@lru_cache(maxsize=None)
def element_distances(substitution_weight: float) -> np.ndarray:
    """(m, m) distance between elements on the map, indexed as ``substitution_dissimilarity``: the difference of
    their Mendeleev numbers plus ``substitution_weight`` times their substitution dissimilarity; an element on one
    side only costs ``MISSING_ELEMENT_DISTANCE``, none on either side nothing."""
    numbers = np.arange(max(_element_mendeleev_numbers().values()) + 1, dtype=np.float64)
    distance = np.abs(numbers[:, None] - numbers[None, :])
    if substitution_weight:  # models saved before the term (weight 0) never read the table
        distance = distance + substitution_weight * substitution_dissimilarity()
    distance[0, :] = distance[:, 0] = MISSING_ELEMENT_DISTANCE
    distance[0, 0] = 0.0
    distance.setflags(write=False)
    return distance


def _map_distance(query: np.ndarray, reference: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """(q, r) distances between Mendeleev-number columns: ``distances`` summed element by element."""
    return distances[_element_index(query)[:, None, :], _element_index(reference)[None, :, :]].sum(axis=2)


def _keys(columns: np.ndarray) -> list[tuple]:
    # float32 on both sides: references and queries are rounded from the same values (models score float32 rows)
    shares = np.round(np.asarray(columns, dtype=np.float32)[:, : 1 + MAX_ELEMENTS].astype(np.float64), _KEY_DIGITS)
    return [tuple(row) for row in np.nan_to_num(shares, nan=-1.0).tolist()]


class FormulaPrototypeNeighbours:
    """Nearest references of the same stoichiometry on Pettifor's map; ``vote`` is their weighted vote."""

    def __init__(self, n_neighbours: int = N_NEIGHBOURS, distance_scale: float = DISTANCE_SCALE,
                 substitution_weight: float = SUBSTITUTION_WEIGHT) -> None:
        self.n_neighbours = n_neighbours
        self.distance_scale = distance_scale
        self.substitution_weight = substitution_weight

    def fit(self, columns: np.ndarray, y, groups=None) -> "FormulaPrototypeNeighbours":
        """Keep the references' map coordinates (``PROTOTYPE_LABELS`` columns), labels and, for searches that
        leave a compound out (``exclude_groups``), their groups (not saved)."""
        self.columns_ = np.asarray(columns, dtype=np.float32)
        self.labels_ = np.asarray(y).astype(np.int64)
        self.groups_ = None if groups is None else np.asarray(groups)
        if self.columns_.ndim != 2 or self.columns_.shape[1] != len(PROTOTYPE_LABELS) \
                or len(self.labels_) != len(self.columns_):
            raise ValueError(f"expected {len(PROTOTYPE_LABELS)} prototype columns and one label per row, got "
                             f"{self.columns_.shape} and {len(self.labels_)} labels")
        by_key: dict[tuple, list[int]] = {}
        for index, key in enumerate(_keys(self.columns_)):
            by_key.setdefault(key, []).append(index)
        self._by_key = {key: np.array(indices) for key, indices in by_key.items()}
        return self

    def neighbours(self, columns: np.ndarray, exclude_groups=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row: the labels of the ``n_neighbours`` nearest references of the same stoichiometry, their
        similarities ``exp(-distance / distance_scale)`` (0 where there are fewer) and their fits (ones: a formula
        has no cell to refine, as ``StructureTypeNeighbours.neighbours`` has)."""
        if exclude_groups is not None and self.groups_ is None:
            raise ValueError("references were indexed without groups: nothing to exclude by")
        columns = np.asarray(columns, dtype=np.float32)
        distances = element_distances(float(self.substitution_weight))
        labels = np.zeros((len(columns), self.n_neighbours), dtype=np.int64)
        similarity = np.zeros((len(columns), self.n_neighbours))  # rows with fewer references: zero
        rows_by_key: dict[tuple, list[int]] = {}
        for row, key in enumerate(_keys(columns)):
            rows_by_key.setdefault(key, []).append(row)
        # one distance matrix per stoichiometry (in chunks of rows): a batch has few stoichiometries
        for key, key_rows in rows_by_key.items():
            candidates = self._by_key.get(key)
            if candidates is None:
                continue
            reference = self.columns_[candidates, 1 + MAX_ELEMENTS:]
            k = min(self.n_neighbours, len(candidates))
            chunk = max(1, _MAX_PAIRS // len(candidates))
            for start in range(0, len(key_rows), chunk):
                rows = np.array(key_rows[start: start + chunk])
                distance = _map_distance(columns[rows, 1 + MAX_ELEMENTS:], reference, distances)
                if exclude_groups is not None:
                    own = self.groups_[candidates][None, :] == np.asarray(exclude_groups)[rows][:, None]
                    distance[own] = np.inf
                nearest = np.argpartition(distance, k - 1, axis=1)[:, :k]
                similarity[rows, :k] = np.exp(-np.take_along_axis(distance, nearest, axis=1) / self.distance_scale)
                labels[rows, :k] = self.labels_[candidates[nearest]]
        return labels, similarity, np.ones_like(similarity)

    def vote_of(self, labels: np.ndarray, similarity: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The vote over ``classes`` of neighbours (``neighbours``' answer; ``PROBABILITY_FLOOR`` spread over all,
        even where there are none) and, per row, the similarity of the nearest (0 where there is none)."""
        best = similarity.max(axis=1) if similarity.shape[1] else np.zeros(len(labels))
        # relative to the nearest: a vote among far references is as decided as one among near ones
        weights = similarity / np.where(best > 0, best, 1.0)[:, None]
        return weighted_vote(labels, weights, classes), best

    def vote(self, columns: np.ndarray, classes: np.ndarray, exclude_groups=None) -> tuple[np.ndarray, np.ndarray]:
        """Per row: the vote over ``classes`` and the similarity of the nearest reference (see ``vote_of``)."""
        labels, similarity, _ = self.neighbours(columns, exclude_groups)
        return self.vote_of(labels, similarity, classes)

    def predict_proba(self, columns: np.ndarray, classes: np.ndarray, exclude_groups=None) -> np.ndarray:
        return self.vote(columns, classes, exclude_groups)[0]

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"prototype_columns": self.columns_, "neighbour_labels": self.labels_,
                "prototype_params": np.array([self.n_neighbours, self.distance_scale, self.substitution_weight],
                                             dtype=np.float64)}

    @classmethod
    def from_arrays(cls, arrays) -> "FormulaPrototypeNeighbours":
        # models saved before the substitution term carry two parameters and keep answering as they were fitted
        n_neighbours, distance_scale, substitution_weight = (*(float(v) for v in arrays["prototype_params"]), 0.0)[:3]
        return cls(int(n_neighbours), distance_scale, substitution_weight).fit(arrays["prototype_columns"],
                                                                               arrays["neighbour_labels"])
