"""Featurizers: powder pattern -> wavelength-independent vector; formula -> composition descriptors.

Both follow matminer's featurizer contract (``featurize``, ``feature_labels``, ``citations``,
``implementors``; ``featurize`` never changes state). The XRD featurizer does not subclass matminer's
``BaseFeaturizer`` because importing matminer costs ~4 s, which every prediction process would pay; the
formula featurizer wraps matminer's own ``ElementProperty`` and ``Stoichiometry``.

Every feature set has a version string that is stored with each model trained on it; a model refuses
features of another version.
"""

from __future__ import annotations

import warnings

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from tasks.dichotomy_indexing import DICHOTOMY_LABELS, dichotomy_features
from tasks.feature_versions import FORMULA_FEATURE_VERSION, XRD_FEATURE_VERSION
from tasks.indexing import FOM_LABELS, indexing_features
from tasks.patterns import PowderPattern
from tasks.profile_kernels import find_peak_indices, max_per_bin, refine_peaks, subtract_background

Q_MIN_INV_ANGSTROM = 0.5
Q_MAX_INV_ANGSTROM = 6.0
Q_BIN_INV_ANGSTROM = 0.025
N_FIRST_PEAKS = 16
N_STRONG_PEAKS = 10
BACKGROUND_WINDOW_Q = 0.4  # Å⁻¹: wider than any Bragg peak, narrower than background curvature
MIN_PROMINENCE_FRACTION = 0.02  # of the strongest peak
# A noise maximum's prominence is measured down to the lowest point between it and a higher maximum, so over
# thousands of points the largest noise maxima reach 6-7 sigma. At 4 sigma of one global noise level (itself
# ~1.7x low) most weak "peaks" in measured-like patterns were noise, and trial indexing failed on them. Counting
# noise grows with the level (a hump, a peak's tails), hence a local sigma, and prominence is measured within
# PROMINENCE_WINDOW_Q so that the slow wiggles background subtraction leaves are not peaks either.
NOISE_PROMINENCE_SIGMAS = 8.0
NOISE_BLOCK_POINTS = 64  # local noise: one robust sigma per block of this many points
PROMINENCE_WINDOW_Q = 0.15  # Å⁻¹: several widths of the broadest Bragg peaks (~15 nm crystallites)


@dataclass(frozen=True)
class Peaks:
    """Peaks found in a pattern, sorted by Q (Å⁻¹); intensities relative to the strongest (1.0)."""

    q_inv_angstrom: np.ndarray
    intensity: np.ndarray


def _median(values: np.ndarray) -> float:
    """``np.median`` of a finite 1-D array, the same value at half the cost (it is called twice per pattern)."""
    n = values.size
    k = n // 2
    if n % 2:
        return float(np.partition(values, k)[k])
    middle = np.partition(values, (k - 1, k))
    return float((middle[k - 1] + middle[k]) / 2.0)


def _q_grid() -> np.ndarray:
    return np.arange(Q_MIN_INV_ANGSTROM, Q_MAX_INV_ANGSTROM + 1e-9, Q_BIN_INV_ANGSTROM)


class Subtracted(NamedTuple):
    """A pattern on its own Q points (Å⁻¹) with the background removed, scaled so max = 1."""

    q_inv_angstrom: np.ndarray
    signal: np.ndarray
    step_q: float  # median Q step (Å⁻¹)
    noise: np.ndarray  # local robust standard deviation of the noise in ``signal`` (same scale), per point


def background_subtracted(pattern: PowderPattern) -> Subtracted:
    """The pattern on its own Q points, background removed, scaled so max = 1 (see
    ``background_subtracted_reference``; computed in one compiled pass, ``tasks.profile_kernels``)."""
    q, signal, step_q, noise = subtract_background(
        np.ascontiguousarray(pattern.two_theta_deg, dtype=np.float64),
        np.ascontiguousarray(pattern.intensity, dtype=np.float64),
        float(pattern.wavelength_angstrom), BACKGROUND_WINDOW_Q, NOISE_BLOCK_POINTS)
    return Subtracted(q, signal, float(step_q), noise)


def background_subtracted_reference(pattern: PowderPattern) -> Subtracted:
    """The pattern on its own Q points, background removed, scaled so max = 1, composed of numpy/scipy calls:
    the definition ``background_subtracted`` computes (tests and ``bench/featurize_speed.py`` compare them).

    Background = smoothed running minimum over ``BACKGROUND_WINDOW_Q`` (a rolling-ball-like estimate). Noise =
    the median absolute point-to-point difference of the raw intensities in each block of ``NOISE_BLOCK_POINTS``
    (robust to the peaks, which occupy few points), as a standard deviation, divided by sqrt(3) for the 3-point
    smoothing of ``signal``.
    """
    q = pattern.q_inv_angstrom
    y = np.asarray(pattern.intensity, float)
    step_q = _median(np.diff(q))
    window = max(3, int(round(BACKGROUND_WINDOW_Q / max(step_q, 1e-6))))
    smooth = uniform_filter1d(y, size=3, mode="nearest")
    background = uniform_filter1d(minimum_filter1d(smooth, size=window, mode="nearest"), size=window, mode="nearest")
    signal = np.clip(smooth - background, 0.0, None)
    peak = signal.max()
    noise = local_noise(y) / np.sqrt(3.0)
    if peak > 0:
        return Subtracted(q, signal / peak, step_q, noise / peak)
    return Subtracted(q, signal, step_q, noise)


def local_noise(y: np.ndarray, block: int = NOISE_BLOCK_POINTS) -> np.ndarray:
    """Per point, a robust standard deviation of white noise on ``y``: 1.4826 x median |dy| / sqrt(2) in each
    block of ``block`` differences; the points past the last whole block take its value."""
    step = np.abs(np.diff(y))
    n_blocks = len(step) // block
    if n_blocks == 0:
        return np.full(len(y), _median(step) * 1.4826 / np.sqrt(2.0) if len(step) else 0.0)
    blocks = step[: n_blocks * block].reshape(n_blocks, block)
    k = block // 2
    if block % 2:
        median = np.partition(blocks, k, axis=1)[:, k]
    else:  # np.median's value, without its overhead (a third of this function's time)
        middle = np.partition(blocks, (k - 1, k), axis=1)
        median = (middle[:, k - 1] + middle[:, k]) / 2.0
    sigma = median * (1.4826 / np.sqrt(2.0))
    out = np.empty(len(y))
    out[: n_blocks * block] = np.repeat(sigma, block)
    out[n_blocks * block:] = sigma[-1]
    return out


AMORPHOUS_FWHM_DEG = 4.0  # 2θ; the broadest strongest peak among the 96 measured scans of ../shared/data: 2.0°
_HUMP_BASE_WINDOW_DEG = 10.0


def strongest_feature_fwhm_deg(pattern: PowderPattern) -> float:
    """Full width at half maximum (2θ degrees) of the pattern's strongest feature, above the lowest point within
    ``_HUMP_BASE_WINDOW_DEG`` of it: a Bragg peak is a fraction of a degree to ~2° wide even in thin films, the
    scattering hump of a glass or polymer 5-10°."""
    two_theta = pattern.two_theta_deg
    y = uniform_filter1d(np.asarray(pattern.intensity, dtype=float), size=5, mode="nearest")
    top = int(np.argmax(y))
    base = y[np.abs(two_theta - two_theta[top]) <= _HUMP_BASE_WINDOW_DEG].min()
    above = np.flatnonzero(y <= base + (y[top] - base) / 2.0)
    low, high = above[above < top], above[above > top]
    return float(two_theta[high[0] if len(high) else -1] - two_theta[low[-1] if len(low) else 0])


def find_pattern_peaks(pattern: PowderPattern, subtracted: Subtracted | None = None) -> Peaks:
    """Peak positions (Q, parabolic sub-step refinement) and heights above background.

    A peak's prominence, measured within ``PROMINENCE_WINDOW_Q``, must exceed ``NOISE_PROMINENCE_SIGMAS`` local
    noise sigmas and ``MIN_PROMINENCE_FRACTION`` of the strongest peak. ``subtracted`` is
    ``background_subtracted(pattern)`` when the caller already has it.
    """
    q, signal, step_q, noise = subtracted if subtracted is not None else background_subtracted(pattern)
    prominence = np.maximum(MIN_PROMINENCE_FRACTION, NOISE_PROMINENCE_SIGMAS * noise)
    min_distance = max(1, int(round(0.01 / max(step_q, 1e-6))))
    window = max(3, int(round(PROMINENCE_WINDOW_Q / max(step_q, 1e-6))))
    # height >= prominence holds for every qualifying peak (signal >= 0) and is checked first, which spares
    # the prominence walk for most noise maxima
    idx = find_peak_indices(signal, prominence, prominence, min_distance, window)
    return Peaks(*refine_peaks(q, signal, idx))


def feature_columns(featurizer, feature_version: str, wanted: Callable[[str], bool], reader: str) -> np.ndarray:
    """Indices, in ``featurizer``'s column order, of the columns whose labels ``wanted`` accepts.

    Rows of another feature version are refused, naming ``reader`` (who reads the columns): a column's place
    means nothing across versions.
    """
    if feature_version != featurizer.version:
        raise ValueError(f"{reader} reads features {featurizer.version!r}, not {feature_version!r}")
    return np.array([i for i, name in enumerate(featurizer.feature_labels()) if wanted(name)], dtype=np.intp)


class XRDPatternFeaturizer:
    """Wavelength-independent features of a powder pattern.

    1. ``profile_*``: background-subtracted profile on a fixed Q grid (max per bin; NaN outside the
       measured range, which tree models treat as missing).
    2. ``peak_q_*``, ``peak_i_*``: Q and relative height of the first ``N_FIRST_PEAKS`` peaks.
    3. ``q2ratio_*``: (Q_i / Q_1)^2, the scale-free ratios indexing works with (cubic: ratios of
       h^2+k^2+l^2), and ``q2diff_*``: (Q_i^2 - Q_1^2) / Q_1^2 second differences.
    4. ``strong_q_*``, ``strong_i_*``: the ``N_STRONG_PEAKS`` strongest peaks.
    5. ``fom_*``: trial-indexing figures of merit for cubic P/I/F, tetragonal P/I and hexagonal P/R lattices
       and the best c/a (``tasks.indexing``), and ``n_peaks``, ``q_min``, ``q_max``.
    6. ``dicvol_*``: the best primitive tetragonal and hexagonal cells found by successive dichotomy
       (``tasks.dichotomy_indexing``): fraction of peaks indexed, calculated lines per peak, c/a; and the same
       two for the I- (tetragonal) or R-centred (hexagonal axes) lattice on that cell.
    """

    version = XRD_FEATURE_VERSION

    def __init__(self) -> None:
        self._grid = _q_grid()
        self._edges = np.concatenate([self._grid - Q_BIN_INV_ANGSTROM / 2, [self._grid[-1] + Q_BIN_INV_ANGSTROM / 2]])

    def feature_labels(self) -> list[str]:
        labels = [f"profile_{q:.3f}" for q in self._grid]
        labels += [f"peak_q_{i}" for i in range(N_FIRST_PEAKS)] + [f"peak_i_{i}" for i in range(N_FIRST_PEAKS)]
        labels += [f"q2ratio_{i}" for i in range(1, N_FIRST_PEAKS)]
        labels += [f"q2diff_{i}" for i in range(1, N_FIRST_PEAKS - 1)]
        labels += [f"strong_q_{i}" for i in range(N_STRONG_PEAKS)] + [f"strong_i_{i}" for i in range(N_STRONG_PEAKS)]
        labels += list(FOM_LABELS) + ["n_peaks", "q_min", "q_max"] + list(DICHOTOMY_LABELS)
        return labels

    def citations(self) -> list[str]:
        return ["@book{pecharsky2009, title={Fundamentals of Powder Diffraction and Structural "
                "Characterization of Materials}, author={Pecharsky, V. K. and Zavalij, P. Y.}, year={2009}}",
                "@article{boultif1991, title={Indexing of powder diffraction patterns for low-symmetry lattices by "
                "the successive dichotomy method}, author={Boultif, A. and Louër, D.}, "
                "journal={J. Appl. Cryst.}, volume={24}, pages={987--993}, year={1991}}"]

    def implementors(self) -> list[str]:
        return ["ml-space-group developers"]

    def featurize(self, pattern: PowderPattern) -> list[float]:
        return self.featurize_array(pattern).tolist()

    def featurize_many(self, patterns: list[PowderPattern]) -> np.ndarray:
        return np.vstack([self.featurize_array(p) for p in patterns]) if patterns else np.zeros((0, self.n_features))

    @property
    def n_features(self) -> int:
        return len(self.feature_labels())

    def featurize_array(self, pattern: PowderPattern) -> np.ndarray:
        q, signal, _, _ = subtracted = background_subtracted(pattern)
        grid = self._grid
        profile = max_per_bin(q, signal, self._edges)
        covered = (grid >= q[0]) & (grid <= q[-1])
        empty_inside = covered & ~np.isfinite(profile)
        profile[empty_inside] = np.interp(grid[empty_inside], q, signal)  # coarse scans: bins without a point
        profile[~covered] = np.nan

        peaks = find_pattern_peaks(pattern, subtracted)
        first_q = _pad(peaks.q_inv_angstrom[:N_FIRST_PEAKS], N_FIRST_PEAKS)
        first_i = _pad(peaks.intensity[:N_FIRST_PEAKS], N_FIRST_PEAKS)
        q1 = first_q[0]
        ratio = (first_q[1:] / q1) ** 2 if np.isfinite(q1) else np.full(N_FIRST_PEAKS - 1, np.nan)
        diff2 = np.diff(ratio)
        order = np.argsort(-peaks.intensity)[:N_STRONG_PEAKS]
        strong_q = _pad(peaks.q_inv_angstrom[order], N_STRONG_PEAKS)
        strong_i = _pad(peaks.intensity[order], N_STRONG_PEAKS)
        fom = indexing_features(peaks.q_inv_angstrom)
        extra = np.array([len(peaks.q_inv_angstrom), q[0], q[-1]], float)
        dicvol = dichotomy_features(peaks.q_inv_angstrom, pattern.wavelength_angstrom)
        return np.concatenate([profile, first_q, first_i, ratio, diff2, strong_q, strong_i, fom, extra, dicvol])


_WORKER_FEATURIZER: XRDPatternFeaturizer | None = None


def featurize_patterns_in_worker(patterns: list[PowderPattern]) -> np.ndarray:
    """``XRDPatternFeaturizer().featurize_many`` for a process pool (one featurizer per worker process)."""
    global _WORKER_FEATURIZER
    if _WORKER_FEATURIZER is None:
        _WORKER_FEATURIZER = XRDPatternFeaturizer()
    return _WORKER_FEATURIZER.featurize_many(patterns)


def _pad(values: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, np.nan)
    out[: min(n, len(values))] = values[:n]
    return out


class FormulaFeaturizer:
    """matminer ``ElementProperty.from_preset("magpie")`` plus ``Stoichiometry`` (p-norms) on a composition, then
    its structure-map coordinates (``tasks.prototypes.prototype_columns``: each element's share and Pettifor
    Mendeleev number, in a fixed order), which matminer does not compute.

    The element data, feature names, statistics and citations are matminer's. The statistics themselves are
    computed here with numpy on a table of the magpie properties (same definitions as matminer's
    ``PropertyStats``: min, max, range and mode ignore the weights, NaN if any element lacks the property; mean
    and average deviation are weighted by the amounts): matminer evaluates them one by one in Python, about
    4 ms per composition, which an online service pays for every new formula. ``tests/science/test_features.py``
    checks equality with matminer; ``bench/featurize_speed.py`` measures the gain.
    """

    version = FORMULA_FEATURE_VERSION

    def __init__(self) -> None:
        from matminer.featurizers.composition import ElementProperty, Stoichiometry

        self._parts = [ElementProperty.from_preset("magpie"), Stoichiometry()]
        magpie, stoichiometry = self._parts
        if list(magpie.stats) != ["minimum", "maximum", "range", "mean", "avg_dev", "mode"] or stoichiometry.num_atoms:
            raise RuntimeError("matminer's magpie preset changed; update FormulaFeaturizer")
        self._properties = list(magpie.features)
        self._p_norms = [float(p) for p in stoichiometry.p_list]
        self._table: dict[str, np.ndarray] = {}  # element symbol -> magpie properties (22,)

    def feature_labels(self) -> list[str]:
        from tasks.prototypes import PROTOTYPE_LABELS

        return [label for part in self._parts for label in part.feature_labels()] + list(PROTOTYPE_LABELS)

    def citations(self) -> list[str]:
        return [c for part in self._parts for c in part.citations()]

    def implementors(self) -> list[str]:
        return ["ml-space-group developers (wrapping matminer)"]

    def featurize(self, composition) -> list[float]:
        return self._cached(composition.formula).tolist()

    def featurize_many(self, compositions) -> np.ndarray:
        if not compositions:
            return np.zeros((0, len(self.feature_labels())))
        return np.vstack([self._cached(c.formula) for c in compositions])

    def featurize_with_matminer(self, composition) -> np.ndarray:
        """The same vector with matminer computing its part (the reference for tests and the benchmark)."""
        from tasks.prototypes import prototype_columns

        matminer_part = np.array([v for part in self._parts for v in part.featurize(composition)], dtype=float)
        return np.concatenate([matminer_part, prototype_columns(composition)])

    def _element_row(self, element) -> np.ndarray:
        row = self._table.get(element.symbol)
        if row is None:
            source = self._parts[0].data_source
            with warnings.catch_warnings():  # pymatgen warns for each property a noble gas lacks: NaN says it
                warnings.simplefilter("ignore", UserWarning)
                row = np.array([source.get_elemental_property(element, p) for p in self._properties], dtype=float)
            self._table[element.symbol] = row
        return row

    def featurize_array(self, composition) -> np.ndarray:
        from tasks.prototypes import prototype_columns

        return np.concatenate([self._magpie_and_stoichiometry(composition), prototype_columns(composition)])

    def _magpie_and_stoichiometry(self, composition) -> np.ndarray:
        items = list(composition.element_composition.items())
        data = np.vstack([self._element_row(el) for el, _ in items])  # (elements, properties)
        amounts = np.array([amount for _, amount in items], dtype=float)
        weights = amounts / amounts.sum()
        with np.errstate(invalid="ignore"):
            missing = np.isnan(data).any(axis=0)
            low, high = data.min(axis=0), data.max(axis=0)
            mean = weights @ data
            avg_dev = weights @ np.abs(data - mean)
            heaviest = np.isclose(amounts, amounts.max())
            mode = data[heaviest].min(axis=0)
        low, high = np.where(missing, np.nan, low), np.where(missing, np.nan, high)
        stats = np.stack([low, high, high - low, mean, avg_dev, mode], axis=1).ravel()  # property-major
        norms = [float(len(amounts)) if p == 0 else float(np.sum(weights**p) ** (1.0 / p)) for p in self._p_norms]
        return np.concatenate([stats, norms])

    def _cached(self, formula: str) -> np.ndarray:
        # served formulas repeat (a lab asks about the same compounds again and again): remember them
        cache = self.__dict__.setdefault("_cache", {})
        row = cache.get(formula)
        if row is None:
            from pymatgen.core import Composition

            row = self.featurize_array(Composition(formula))
            row.setflags(write=False)
            if len(cache) >= 100_000:
                cache.clear()
            cache[formula] = row
        return row
