"""Indexing as evidence for the crystal system: a pattern's best primitive cubic, tetragonal, hexagonal and
orthorhombic cells (``tasks.cells``), and a fitted correction of an XRD model's crystal-system probabilities by
their figures of merit.

A crystallographer settles the crystal system by indexing: a pattern that an orthorhombic cell indexes with a high
de Wolff M is orthorhombic, whatever a classifier made of its peak positions. The classifiers confuse
orthorhombic, monoclinic and triclinic patterns most (BENCHMARKS.md), and a primitive orthorhombic cell reaches
M > 20 for 42 % of orthorhombic MP patterns but 4 % of monoclinic and 1 % of triclinic ones.

The correction multiplies the model's probability of each crystal system by ``exp(f . w_system)``, where ``f``
are the cells' figures (``evidence_columns``) and ``w`` is fitted on the model's calibration split with the
model's own answer as a fixed offset (a multinomial logistic regression without intercepts). So ``w`` carries
only what the cells add to what the model already knew, not the calibration split's system frequencies, and the
correction applies under any space-group prior.

The cells come from a feature row's first peaks (``peak_q_*``), so the stage is a function of the row the model
scores. Feature rows do not keep the wavelength, so the searches' 2θ tolerances are read at Cu Kα for every
pattern (``READ_AS_WAVELENGTH_ANGSTROM``). The four searches take ~0.15 s a pattern, ~100 times the model's
answer: the stage is an option of ``spacegroup predict`` and the API, not the default.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax

from tasks.cells import UNINDEXED_PENALTY_POWER, index_answer
from tasks.crystallography import CRYSTAL_SYSTEMS

# the primitive lattice searched for each family, as the space group whose lattice it is (no extra conditions)
LATTICE_SEARCHES = {"orthorhombic": 47, "cubic": 221, "tetragonal": 123, "hexagonal": 191}
READ_AS_WAVELENGTH_ANGSTROM = 1.5406  # Cu Kα1
CONFIDENT_M = 20.0  # de Wolff's rule of thumb: M20 > 20 is a cell worth believing
L2_PENALTY = 1.0
#: 84 weights; on fewer patterns the fit learns the split's accidents (a 24-pattern fit turned silicon monoclinic)
MIN_FIT_PATTERNS = 300
PARALLEL_MIN_ROWS = 64  # below this, starting worker processes costs more than it saves


class LatticeEvidenceError(ValueError):
    """A lattice-evidence fit that cannot be made, with the reason in words."""


def check_lattice_evidence_fit(modality: str, n_calibration_patterns: int) -> None:
    """Refuse a lattice-evidence fit that cannot be made, before anything is trained."""
    if modality != "xrd":
        raise LatticeEvidenceError("the lattice evidence indexes patterns: it is for XRD models only")
    if n_calibration_patterns < MIN_FIT_PATTERNS:
        raise LatticeEvidenceError(f"the lattice evidence is fitted on the calibration split's patterns: it needs at least "
                         f"{MIN_FIT_PATTERNS}, and this training set gives {n_calibration_patterns}; train on more "
                         "crystals or patterns (about 11 % of them are the calibration split)")


def enough_for_lattice_evidence(n_training_rows: int, calibration_fraction: float, fit_share: float = 0.9) -> bool:
    """Whether training on this many rows (``fit_share`` of them fitted, ``calibration_fraction`` of those the
    calibration split) leaves half again ``MIN_FIT_PATTERNS`` to fit the stage on: group splits vary."""
    return n_training_rows * fit_share * calibration_fraction >= 1.5 * MIN_FIT_PATTERNS


def pattern_cells(q_inv_angstrom: np.ndarray, wavelength_angstrom: float = READ_AS_WAVELENGTH_ANGSTROM) -> np.ndarray:
    """``(M, fraction of peaks indexed)`` of the best cell of each lattice in ``LATTICE_SEARCHES``, flattened in
    that order (8 numbers; ``(0, 0)`` where no cell indexes the peaks), for peaks at ``q_inv_angstrom``."""
    q = np.asarray(q_inv_angstrom, dtype=float)
    q = np.sort(q[np.isfinite(q) & (q > 0)])
    out = np.zeros(2 * len(LATTICE_SEARCHES))
    for i, number in enumerate(LATTICE_SEARCHES.values()):
        cell = index_answer(q, wavelength_angstrom, number)
        if cell is not None:
            out[2 * i:2 * i + 2] = cell.de_wolff_m, cell.peaks_indexed / cell.peaks_used
    return out


def _cells_of_peak_rows(peak_rows: np.ndarray) -> np.ndarray:
    return np.array([pattern_cells(row) for row in peak_rows]).reshape(len(peak_rows), 2 * len(LATTICE_SEARCHES))


@lru_cache(maxsize=None)
def _peak_columns(feature_version: str) -> np.ndarray:
    from tasks.features import XRDPatternFeaturizer, feature_columns

    return feature_columns(XRDPatternFeaturizer(), feature_version, lambda name: name.startswith("peak_q_"),
                           "the lattice evidence (the first peaks of XRD features)")


def lattice_cells(X: np.ndarray, feature_version: str, n_jobs: int = 1) -> np.ndarray:
    """``pattern_cells`` of each XRD feature row's first peaks (n x 8), with ``n_jobs`` processes (0: all cores)
    for large batches."""
    peaks = np.asarray(X, dtype=float)[:, _peak_columns(feature_version)]
    workers = (os.cpu_count() or 1) if n_jobs == 0 else n_jobs
    if workers <= 1 or len(peaks) < PARALLEL_MIN_ROWS:
        return _cells_of_peak_rows(peaks)
    chunks = np.array_split(peaks, min(len(peaks) // 16, 8 * workers))
    # spawn, not fork: the caller may hold XGBoost/OpenMP threads that a forked child would inherit broken
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return np.vstack(list(pool.map(_cells_of_peak_rows, chunks)))


def evidence_columns(cells: np.ndarray) -> np.ndarray:
    """The regression's inputs from ``lattice_cells`` (n x 8): per lattice ln(1 + M), ln(1 + M x fraction^8) (how
    ``tasks.cells`` ranks cells) and whether M exceeds ``CONFIDENT_M`` (n x 12)."""
    cells = np.asarray(cells, dtype=float).reshape(len(cells), -1)
    if cells.shape[1] != 2 * len(LATTICE_SEARCHES):
        raise ValueError(f"expected {2 * len(LATTICE_SEARCHES)} cell figures per row, got {cells.shape[1]}")
    m, fraction = cells[:, 0::2], cells[:, 1::2]
    ranked = np.log1p(m * fraction ** UNINDEXED_PENALTY_POWER)
    return np.column_stack([np.log1p(m), ranked, (m > CONFIDENT_M).astype(float)])


@dataclass(frozen=True)
class LatticeEvidence:
    """Per crystal system (``CRYSTAL_SYSTEMS`` order), the weight of each of ``evidence_columns``."""

    weights: np.ndarray  # (12, 7)

    @classmethod
    def fit(cls, system_log_proba: np.ndarray, cells: np.ndarray, system_index: np.ndarray,
            l2_penalty: float = L2_PENALTY) -> "LatticeEvidence":
        """Fit on a model's answers: its log-probability of each crystal system (n x 7, the fixed offset), the
        patterns' ``lattice_cells`` and their true systems (indices into ``CRYSTAL_SYSTEMS``)."""
        offset = np.asarray(system_log_proba, dtype=float)
        features = evidence_columns(cells)
        y = np.asarray(system_index, dtype=int)
        n, d = features.shape
        k = len(CRYSTAL_SYSTEMS)
        if offset.shape != (n, k) or y.shape != (n,):
            raise ValueError(f"need {n} rows of {k} system log-probabilities and {n} labels; got {offset.shape} and "
                             f"{y.shape}")
        check_lattice_evidence_fit("xrd", n)
        onehot = np.eye(k)[y]

        def loss_and_gradient(w: np.ndarray) -> tuple[float, np.ndarray]:
            W = w.reshape(d, k)
            log_p = log_softmax(offset + features @ W, axis=1)
            loss = -log_p[np.arange(n), y].sum() / n + l2_penalty * (W ** 2).sum() / (2 * n)
            gradient = features.T @ (np.exp(log_p) - onehot) / n + l2_penalty * W / n
            return loss, gradient.ravel()

        result = minimize(loss_and_gradient, np.zeros(d * k), jac=True, method="L-BFGS-B")
        return cls(result.x.reshape(d, k))

    def log_shift(self, cells: np.ndarray) -> np.ndarray:
        """What the cells add to each crystal system's log-probability (n x 7)."""
        return evidence_columns(cells) @ self.weights

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"lattice_evidence": np.asarray(self.weights, dtype=np.float64)}

    @classmethod
    def from_arrays(cls, arrays) -> "LatticeEvidence":
        weights = np.asarray(arrays["lattice_evidence"], dtype=np.float64)
        expected = (3 * len(LATTICE_SEARCHES), len(CRYSTAL_SYSTEMS))
        if weights.shape != expected:
            raise ValueError(f"lattice evidence weights of shape {weights.shape}, expected {expected}")
        return cls(weights)


def lattice_evidence_dict(cells_row: np.ndarray) -> dict:
    """One pattern's ``pattern_cells`` as an answer reports them: per lattice, the cell's de Wolff M and the
    fraction of the first peaks it indexes, or None where no cell indexes them."""
    out = {}
    for i, lattice in enumerate(LATTICE_SEARCHES):
        m, fraction = (float(v) for v in cells_row[2 * i:2 * i + 2])
        out[lattice] = None if m <= 0 else {"de_wolff_m": round(m, 2), "fraction_indexed": round(fraction, 3)}
    return out
