"""Indexing as evidence for the crystal system: a pattern's best primitive cubic, tetragonal, hexagonal and
orthorhombic cells, and its best orthorhombic cell whose lines a C centring or Pnma's rules may thin
(``tasks.cells``), and a fitted correction of an XRD model's crystal-system probabilities by their figures of merit.

A crystallographer settles the crystal system by indexing: a pattern that an orthorhombic cell indexes with a high
de Wolff M is orthorhombic, whatever a classifier made of its peak positions. The classifiers confuse
orthorhombic, monoclinic and triclinic patterns most (BENCHMARKS.md), and a primitive orthorhombic cell reaches
M > 20 for 36 % of orthorhombic MP patterns but 4 % of monoclinic and 9 % of triclinic ones; with the C lattice
and Pnma's rules for 61 %, 8 % and 15 % (``LATTICE_SEARCHES``).

New fits make the correction a small booster (``BoostedLatticeEvidence``): from the model's log-probability of
each crystal system and the cells' figures (``evidence_columns``) it gives each system's new probability, fitted on
the model's calibration split, and each group's probability moves with its system's. Reading the two together, it
lets a confident orthorhombic cell settle a pattern the model hesitated over without moving one it was sure of.
Models of artifact formats 8 and 9 (the shipped XRD model among them) have the linear stage
(``LatticeEvidence``): it multiplies each system's probability by ``exp(f . w_system)``, ``f`` the cells' figures
and ``w`` fitted with the model's answer as a fixed offset (a multinomial logistic regression without intercepts).
On the headline MP-trained model's (b) the booster gives crystal system 0.824 against the linear stage's 0.803,
ECE 0.025 against 0.034 (BENCHMARKS.md). Either way the correction is applied before any space-group prior.

The cells come from a feature row's first peaks (``peak_q_*``), so the stage is a function of the row the model
scores. Feature rows do not keep the wavelength, so the searches' 2θ tolerances are read at Cu Kα for every
pattern (``READ_AS_WAVELENGTH_ANGSTROM``). The five searches take ~0.6 s a pattern on one core (the four
primitive lattices of format-8 models ~0.15 s), hundreds of times the model's answer: the stage is an option of
``spacegroup predict`` and the API, not the default.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import xgboost as xgb
from scipy.optimize import minimize
from scipy.special import log_softmax
from sklearn.model_selection import GroupKFold

from tasks.cells import UNINDEXED_PENALTY_POWER, best_cell_figures
from tasks.reflection_rules import orthorhombic_group_rules
from tasks.crystallography import CRYSTAL_SYSTEMS

# Each search: the family and the reflection rules its cells' lines may follow. The four primitive lattices came
# first (artifact format 8 has their weights alone). The fifth lets an orthorhombic cell's lines be thinned by a C
# centring or by Pnma's glides and screw (in any assignment of its axes), the commonest orthorhombic conditions of
# MP: primitive cells of centred or glide-rich orthorhombic crystals have more lines than the search's line budget.
# On 400 measured-like MP patterns (160 orthorhombic, 160 monoclinic, 80 triclinic) a cell with M > 20 indexing
# 90 % of the peaks: primitive 36 / 4 / 9 %, with the C lattice and Pnma's rules 61 / 8 / 15 %; the I and F
# lattices and Cmcm's rules besides, 63 / 12 / 16 % at twice the time (BENCHMARKS.md).
LATTICE_SEARCHES = {
    "orthorhombic": ("orthorhombic", ("P",)),
    "cubic": ("cubic", ("P",)),
    "tetragonal": ("tetragonal", ("P",)),
    "hexagonal": ("hexagonal", ("P",)),
    # the C lattice as ``tasks.cells`` searches it (the centred face (a, b), a <= b) and, as Cmmm's rules, on
    # whichever face of the ascending axes it is
    "orthorhombic_c_or_pnma": ("orthorhombic", ("P", "C", *orthorhombic_group_rules(65, "C"),
                                                *orthorhombic_group_rules(62))),
}
FORMAT_8_LATTICES = 4  # the searches of format-8 artifacts: the first four
READ_AS_WAVELENGTH_ANGSTROM = 1.5406  # Cu Kα1
CONFIDENT_M = 20.0  # de Wolff's rule of thumb: M20 > 20 is a cell worth believing
L2_PENALTY = 1.0
#: 84 weights; on fewer patterns the fit learns the split's accidents (a 24-pattern fit turned silicon monoclinic)
MIN_FIT_PATTERNS = 300
#: a larger calibration split is sampled down to this many patterns for the fit: at ~0.6 s a pattern, the searches
#: of a full MP retrain's split (~12,000 patterns) would add an hour, and the boosted stage fitted on all of them
#: answered no better within the noise (BENCHMARKS.md)
MAX_FIT_PATTERNS = 3000
PARALLEL_MIN_ROWS = 64  # below this, starting worker processes costs more than it saves
#: the boosted stage (``BoostedLatticeEvidence``), chosen on the headline MP-trained model's 3,000 stage patterns by
#: grouped five-fold cross-validation among depths 2-4 and 100-300 rounds (BENCHMARKS.md, the lattice evidence)
STAGE_BOOSTER_PARAMS = {"objective": "multi:softprob", "num_class": len(CRYSTAL_SYSTEMS), "max_depth": 3,
                        "eta": 0.05, "min_child_weight": 5.0, "verbosity": 0}
STAGE_BOOSTER_ROUNDS = 200
STAGE_FOLDS = 5  # cross-fitting: the staged answers' confidence calibration needs shifts the stage never saw


class LatticeEvidenceError(ValueError):
    """A lattice-evidence fit that cannot be made, with the reason in words."""


def check_lattice_evidence_fit(modality: str, n_calibration_patterns: int) -> None:
    """Refuse a lattice-evidence fit that cannot be made, before anything is trained."""
    if modality != "xrd":
        raise LatticeEvidenceError("the lattice evidence indexes patterns: it is for XRD models only")
    if n_calibration_patterns < MIN_FIT_PATTERNS:
        raise LatticeEvidenceError(f"the lattice evidence is fitted on the calibration split's patterns: it needs at "
                                   f"least {MIN_FIT_PATTERNS}, and this training set gives {n_calibration_patterns}; "
                                   "train on more crystals or patterns (about 11 % of them are the calibration split)")


def enough_for_lattice_evidence(n_training_rows: int, calibration_fraction: float, fit_share: float = 0.9) -> bool:
    """Whether training on this many rows (``fit_share`` of them fitted, ``calibration_fraction`` of those the
    calibration split) leaves half again ``MIN_FIT_PATTERNS`` to fit the stage on: group splits vary."""
    return n_training_rows * fit_share * calibration_fraction >= 1.5 * MIN_FIT_PATTERNS


def pattern_cells(q_inv_angstrom: np.ndarray, wavelength_angstrom: float = READ_AS_WAVELENGTH_ANGSTROM,
                  lattices: tuple[str, ...] = tuple(LATTICE_SEARCHES), threads: int = 1) -> np.ndarray:
    """``(M, fraction of peaks indexed)`` of the best cell of each of ``lattices`` (``LATTICE_SEARCHES``),
    flattened in that order (``(0, 0)`` where no cell indexes the peaks), for peaks at ``q_inv_angstrom``. The
    searches of one family run together (in up to ``threads`` threads), so a rule two searches share is searched
    once."""
    q = np.asarray(q_inv_angstrom, dtype=float)
    q = np.sort(q[np.isfinite(q) & (q > 0)])
    out = np.zeros(2 * len(lattices))
    for family in dict.fromkeys(LATTICE_SEARCHES[name][0] for name in lattices):
        names = [name for name in lattices if LATTICE_SEARCHES[name][0] == family]
        figures = best_cell_figures(q, wavelength_angstrom, family, tuple(LATTICE_SEARCHES[n][1] for n in names),
                                    threads)
        for name, figure in zip(names, figures):
            i = lattices.index(name)
            out[2 * i:2 * i + 2] = figure
    return out


def _cells_of_peak_rows(peak_rows: np.ndarray, lattices: tuple[str, ...], threads: int = 1) -> np.ndarray:
    return np.array([pattern_cells(row, lattices=lattices, threads=threads)
                     for row in peak_rows]).reshape(len(peak_rows), 2 * len(lattices))


@lru_cache(maxsize=None)
def _peak_columns(feature_version: str) -> np.ndarray:
    from tasks.features import XRDPatternFeaturizer, feature_columns

    return feature_columns(XRDPatternFeaturizer(), feature_version, lambda name: name.startswith("peak_q_"),
                           "the lattice evidence (the first peaks of XRD features)")


def lattice_cells(X: np.ndarray, feature_version: str, n_jobs: int = 1,
                  lattices: tuple[str, ...] = tuple(LATTICE_SEARCHES)) -> np.ndarray:
    """``pattern_cells`` of each XRD feature row's first peaks (n x 2 per lattice), with ``n_jobs`` processes (0:
    all cores) for large batches, and as many threads for each pattern of a small one."""
    unknown = [name for name in lattices if name not in LATTICE_SEARCHES]
    if unknown:
        raise ValueError(f"unknown lattice searches {unknown}: {', '.join(LATTICE_SEARCHES)}")
    peaks = np.asarray(X, dtype=float)[:, _peak_columns(feature_version)]
    workers = (os.cpu_count() or 1) if n_jobs == 0 else n_jobs
    if workers <= 1 or len(peaks) < PARALLEL_MIN_ROWS:
        # a few patterns: each one's searches side by side in threads, which the compiled searches allow
        return _cells_of_peak_rows(peaks, tuple(lattices), threads=workers)
    chunks = np.array_split(peaks, min(len(peaks) // 16, 8 * workers))
    # spawn, not fork: the caller may hold XGBoost/OpenMP threads that a forked child would inherit broken
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return np.vstack(list(pool.map(_cells_of_peak_rows, chunks, [tuple(lattices)] * len(chunks))))


def evidence_columns(cells: np.ndarray) -> np.ndarray:
    """The regression's inputs from ``lattice_cells`` (n x 2L for L lattices): per lattice ln(1 + M),
    ln(1 + M x fraction^8) (how ``tasks.cells`` ranks cells) and whether M exceeds ``CONFIDENT_M`` (n x 3L, in
    three blocks of L)."""
    cells = np.asarray(cells, dtype=float).reshape(len(cells), -1)
    if cells.shape[1] % 2:
        raise ValueError(f"expected two cell figures per lattice, got {cells.shape[1]} per row")
    m, fraction = cells[:, 0::2], cells[:, 1::2]
    ranked = np.log1p(m * fraction ** UNINDEXED_PENALTY_POWER)
    return np.column_stack([np.log1p(m), ranked, (m > CONFIDENT_M).astype(float)])


@dataclass(frozen=True)
class LatticeEvidence:
    """Per crystal system (``CRYSTAL_SYSTEMS`` order), the weight of each of ``evidence_columns`` of the first
    ``len(weights) / 3`` searches of ``LATTICE_SEARCHES`` (``lattices``)."""

    weights: np.ndarray  # (3L, 7)

    @property
    def lattices(self) -> tuple[str, ...]:
        """The searches whose cells the weights read, in ``lattice_cells`` order."""
        return tuple(LATTICE_SEARCHES)[:len(self.weights) // 3]

    @classmethod
    def fit(cls, system_log_proba: np.ndarray, cells: np.ndarray, system_index: np.ndarray,
            l2_penalty: float = L2_PENALTY) -> "LatticeEvidence":
        """Fit on a model's answers: its log-probability of each crystal system (n x 7, the fixed offset), the
        patterns' ``lattice_cells`` of the first L searches of ``LATTICE_SEARCHES`` (all of them for a new model)
        and their true systems (indices into ``CRYSTAL_SYSTEMS``)."""
        offset, features, y = _fit_inputs(system_log_proba, cells, system_index)
        n, d = features.shape
        k = len(CRYSTAL_SYSTEMS)
        onehot = np.eye(k)[y]

        def loss_and_gradient(w: np.ndarray) -> tuple[float, np.ndarray]:
            W = w.reshape(d, k)
            log_p = log_softmax(offset + features @ W, axis=1)
            loss = -log_p[np.arange(n), y].sum() / n + l2_penalty * (W ** 2).sum() / (2 * n)
            gradient = features.T @ (np.exp(log_p) - onehot) / n + l2_penalty * W / n
            return loss, gradient.ravel()

        result = minimize(loss_and_gradient, np.zeros(d * k), jac=True, method="L-BFGS-B")
        return cls(result.x.reshape(d, k))

    def log_shift(self, cells: np.ndarray, system_log_proba: np.ndarray | None = None) -> np.ndarray:
        """What the cells (``lattice_cells`` of ``lattices``) add to each crystal system's log-probability
        (n x 7), whatever the answer's (``system_log_proba``, read by the boosted stage only)."""
        return evidence_columns(_checked_cells(cells, self.lattices)) @ self.weights

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"lattice_evidence": np.asarray(self.weights, dtype=np.float64)}

    @classmethod
    def from_arrays(cls, arrays) -> "LatticeEvidence":
        weights = np.asarray(arrays["lattice_evidence"], dtype=np.float64)
        shapes = [(3 * n, len(CRYSTAL_SYSTEMS)) for n in (FORMAT_8_LATTICES, len(LATTICE_SEARCHES))]
        if weights.shape not in shapes:
            raise ValueError(f"lattice evidence weights of shape {weights.shape}, expected one of {shapes}")
        return cls(weights)


class BoostedLatticeEvidence:
    """The stage as a small booster over the answer's crystal-system log-probabilities and ``evidence_columns``:
    the new probability of each system, ``q``; the shift of a system's log-probability is ``log q - log p``.

    The linear stage (``LatticeEvidence``) adds the same weights of the cells whatever the model believed; a booster
    reads the two together, so that a confident orthorhombic cell can settle a pattern the model hesitated over
    between orthorhombic and monoclinic without moving one it was sure of. On the headline MP-trained model's stage
    patterns (3,000, grouped five-fold cross-validation), crystal system 0.758 with the linear stage, 0.765 with
    this one; on bench/accuracy.py's (b) 0.803 and 0.824 (BENCHMARKS.md).
    """

    def __init__(self, booster: xgb.Booster) -> None:
        self.booster = booster

    @property
    def lattices(self) -> tuple[str, ...]:
        """The searches whose cells the booster reads, in ``lattice_cells`` order."""
        return tuple(LATTICE_SEARCHES)[:(self.booster.num_features() - len(CRYSTAL_SYSTEMS)) // 3]

    @classmethod
    def fit(cls, system_log_proba: np.ndarray, cells: np.ndarray, system_index: np.ndarray,
            groups: np.ndarray | None = None, seed: int = 0) -> tuple["BoostedLatticeEvidence", np.ndarray]:
        """Fit as ``LatticeEvidence.fit``; also return each row's cross-fitted shift (n x 7: from a stage fitted
        without the row's group, ``groups`` as the patterns' materials), on which the caller fits the staged
        answers' confidence calibration."""
        offset, features, y = _fit_inputs(system_log_proba, cells, system_index)
        features = np.column_stack([offset, features])
        groups = np.arange(len(y)) if groups is None else np.asarray(groups)
        stage = _train_stage(features, y, seed)
        n_folds = min(STAGE_FOLDS, len(np.unique(groups)))
        if n_folds < 2:  # one material: nothing to hold out, so the in-sample shifts
            return cls(stage), _log_system_proba(stage, features) - offset
        cross = np.zeros_like(offset)
        for fit_rows, score_rows in GroupKFold(n_splits=n_folds).split(features, groups=groups):
            fold = _train_stage(features[fit_rows], y[fit_rows], seed)
            cross[score_rows] = _log_system_proba(fold, features[score_rows]) - offset[score_rows]
        return cls(stage), cross

    def log_shift(self, cells: np.ndarray, system_log_proba: np.ndarray | None = None) -> np.ndarray:
        """What the cells (``lattice_cells`` of ``lattices``) change in each crystal system's log-probability
        (n x 7), given the answer's (``system_log_proba``, n x 7, as the stage was fitted on)."""
        cells = _checked_cells(cells, self.lattices)
        if system_log_proba is None:
            raise ValueError("the boosted lattice evidence reads the answer's crystal-system probabilities too")
        offset = np.asarray(system_log_proba, dtype=float)
        if offset.shape != (len(cells), len(CRYSTAL_SYSTEMS)):
            raise ValueError(f"need {len(cells)} rows of {len(CRYSTAL_SYSTEMS)} system log-probabilities, got "
                             f"{offset.shape}")
        return _log_system_proba(self.booster, np.column_stack([offset, evidence_columns(cells)])) - offset

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"lattice_evidence_booster": np.frombuffer(bytes(self.booster.save_raw(raw_format="ubj")),
                                                          dtype=np.uint8)}

    @classmethod
    def from_arrays(cls, arrays) -> "BoostedLatticeEvidence":
        booster = xgb.Booster()
        booster.load_model(bytearray(arrays["lattice_evidence_booster"].tobytes()))
        n_searches = (booster.num_features() - len(CRYSTAL_SYSTEMS)) / 3
        if n_searches not in (FORMAT_8_LATTICES, len(LATTICE_SEARCHES)):
            raise ValueError(f"a boosted lattice evidence reading {booster.num_features()} features, expected the "
                             f"{len(CRYSTAL_SYSTEMS)} system log-probabilities and 3 per lattice search")
        return cls(booster)


def _fit_inputs(system_log_proba, cells, system_index) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A stage's fit inputs, checked: the offset (n x 7), ``evidence_columns`` of the cells and the systems."""
    cells = np.asarray(cells, dtype=float)
    if cells.ndim != 2 or cells.shape[1] not in (2 * FORMAT_8_LATTICES, 2 * len(LATTICE_SEARCHES)):
        raise ValueError(f"expected the cells of {FORMAT_8_LATTICES} or {len(LATTICE_SEARCHES)} lattice searches "
                         f"per row, got {cells.shape}")
    offset = np.asarray(system_log_proba, dtype=float)
    features = evidence_columns(cells)
    y = np.asarray(system_index, dtype=int)
    n, k = len(features), len(CRYSTAL_SYSTEMS)
    if offset.shape != (n, k) or y.shape != (n,):
        raise ValueError(f"need {n} rows of {k} system log-probabilities and {n} labels; got {offset.shape} and "
                         f"{y.shape}")
    check_lattice_evidence_fit("xrd", n)
    return offset, features, y


def _checked_cells(cells: np.ndarray, lattices: tuple[str, ...]) -> np.ndarray:
    cells = np.asarray(cells, dtype=float).reshape(len(cells), -1)
    if cells.shape[1] != 2 * len(lattices):
        raise ValueError(f"the lattice evidence reads the cells of {len(lattices)} searches "
                         f"({', '.join(lattices)}), got {cells.shape[1] // 2}")
    return cells


def _train_stage(features: np.ndarray, system_index: np.ndarray, seed: int) -> xgb.Booster:
    params = STAGE_BOOSTER_PARAMS | {"seed": seed, "nthread": os.cpu_count() or 1}
    return xgb.train(params, xgb.DMatrix(features, label=system_index), STAGE_BOOSTER_ROUNDS)


def _log_system_proba(booster: xgb.Booster, features: np.ndarray) -> np.ndarray:
    return np.log(np.clip(booster.predict(xgb.DMatrix(features)), 1e-9, 1.0))


def lattice_evidence_dict(cells_row: np.ndarray, lattices: tuple[str, ...] = tuple(LATTICE_SEARCHES)) -> dict:
    """One pattern's ``pattern_cells`` of ``lattices`` as an answer reports them: per lattice search, the cell's
    de Wolff M and the fraction of the first peaks it indexes, or None where no cell indexes them."""
    out = {}
    for i, lattice in enumerate(lattices):
        m, fraction = (float(v) for v in cells_row[2 * i:2 * i + 2])
        out[lattice] = None if m <= 0 else {"de_wolff_m": round(m, 2), "fraction_indexed": round(fraction, 3)}
    return out
