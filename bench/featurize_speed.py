"""Pattern featurisation speed, one run: trial indexing by bit masks in a numba-compiled loop (ours) vs listing every
candidate's lines; dichotomy indexing with branch and bound (ours) vs the plain dichotomy; peak finding.

Measured on measured-like patterns of real Materials Project structures, so the peak lists are realistic. Also
reports the whole XRD featurizer and checks the two indexing implementations give the same features.

    python bench/featurize_speed.py [--structures 150]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import mp_structures, write_section


def index_by_listing(q_inv_angstrom: np.ndarray) -> np.ndarray:
    """The indexing features computed lattice by lattice with the line-listing scorer (the baseline)."""
    from tasks.indexing import LATTICES, N_PEAKS, _candidates, scores_by_listing

    q = np.asarray(q_inv_angstrom, float)[:N_PEAKS]
    if len(q) < 4:
        return np.full(9, np.nan)
    s_obs = (q / (2 * np.pi)) ** 2
    results = []
    for family, centring in LATTICES:
        a, c = _candidates(s_obs, family, centring)
        scores = scores_by_listing(s_obs, a, c, family, centring)
        best = int(np.argmax(scores))
        results.append((scores[best], np.nan if family == "cubic" else np.sqrt(a[best] / c[best])))
    return np.array([fom for fom, _ in results] + [results[3][1], results[5][1]])


def peaks_by_scipy(pattern) -> np.ndarray:
    """Peak positions (Q) from the numpy/scipy composition the compiled kernels replace (the baseline)."""
    from scipy.signal import find_peaks

    from tasks.features import (MIN_PROMINENCE_FRACTION, NOISE_PROMINENCE_SIGMAS, PROMINENCE_WINDOW_Q,
                                background_subtracted_reference)

    q, signal, step_q, noise = background_subtracted_reference(pattern)
    threshold = np.maximum(MIN_PROMINENCE_FRACTION, NOISE_PROMINENCE_SIGMAS * noise)
    idx, _ = find_peaks(signal, height=threshold, prominence=threshold, distance=max(1, int(round(0.01 / step_q))),
                        wlen=max(3, int(round(PROMINENCE_WINDOW_Q / step_q))))
    left, mid, right = signal[idx - 1], signal[idx], signal[idx + 1]
    denom = left - 2 * mid + right
    offset = np.clip(np.where(np.abs(denom) > 1e-12, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0.0),
                     -0.5, 0.5)
    return np.interp(idx + offset, np.arange(len(q)), q)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--structures", type=int, default=150)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from tasks.augment import MeasuredLikeAugmenter
    from tasks.dichotomy_indexing import dichotomy_features
    from tasks.features import XRDPatternFeaturizer, find_pattern_peaks
    from tasks.indexing import indexing_features
    from tasks.xrd import compute_reflections

    rng = np.random.default_rng(11)
    augmenter = MeasuredLikeAugmenter()
    patterns = []
    structures = [structure for _, structure, _ in mp_structures(args.structures, start=5, step=173)]
    for structure in structures:
        refl = compute_reflections(structure, 0.9)
        patterns += [augmenter.render(refl, augmenter.sample(rng), rng) for _ in range(2)]
    peak_lists = [find_pattern_peaks(p).q_inv_angstrom for p in patterns]

    def per_item_ms(fn, items, repeats=3):
        fn(items[0])
        best = np.inf
        for _ in range(repeats):
            t = time.perf_counter()
            for item in items:
                fn(item)
            best = min(best, (time.perf_counter() - t) / len(items) * 1e3)
        return best

    ours = np.array([indexing_features(q) for q in peak_lists])
    reference = np.array([index_by_listing(q) for q in peak_lists])
    same = np.isclose(ours, reference, rtol=1e-12, atol=1e-12, equal_nan=True).all(axis=1)
    t_listing = per_item_ms(index_by_listing, peak_lists)
    t_ours = per_item_ms(indexing_features, peak_lists)
    dicvol_items = [(q, p.wavelength_angstrom) for q, p in zip(peak_lists, patterns)]
    dicvol_same = sum(np.allclose(dichotomy_features(*item), dichotomy_features(*item, bound=False), rtol=0, atol=0,
                                  equal_nan=True) for item in dicvol_items)
    t_dicvol_plain = per_item_ms(lambda item: dichotomy_features(*item, bound=False), dicvol_items)
    t_dicvol = per_item_ms(lambda item: dichotomy_features(*item), dicvol_items)
    featurizer = XRDPatternFeaturizer()
    t_features = per_item_ms(featurizer.featurize_array, patterns)
    t_peaks = per_item_ms(find_pattern_peaks, patterns)
    t_peaks_scipy = per_item_ms(peaks_by_scipy, patterns)
    peaks_same = sum(len(a) == len(b) and np.allclose(a, b, rtol=1e-12, atol=0)
                     for a, b in zip(peak_lists, (peaks_by_scipy(p) for p in patterns)))

    from tasks.features import FormulaFeaturizer

    formula_featurizer = FormulaFeaturizer()
    compositions = [s.composition for s in structures]
    t_matminer = per_item_ms(formula_featurizer.featurize_with_matminer, compositions)
    t_numpy = per_item_ms(formula_featurizer.featurize_array, compositions)
    formula_same = sum(np.allclose(formula_featurizer.featurize_array(c), formula_featurizer.featurize_with_matminer(c),
                                   rtol=1e-12, atol=1e-12, equal_nan=True) for c in compositions)

    lines = ["## Featurisation speed (bench/featurize_speed.py)", "",
             f"{len(patterns)} measured-like patterns of {len(patterns) // 2} Materials Project structures "
             "(best of 3 passes, one process).", "",
             "| step | ms per pattern | ratio |", "|---|---|---|",
             f"| trial indexing, line listing and sorting (baseline) | {t_listing:.2f} | 1.00 |",
             f"| trial indexing, bit masks, compiled loop with early exits (ours) | {t_ours:.2f} | "
             f"{t_ours / t_listing:.2f} |",
             f"| peak finding (Q, background, noise, peaks, refinement), numpy/scipy calls (baseline) | "
             f"{t_peaks_scipy:.2f} | 1.00 |",
             f"| peak finding, compiled kernels `tasks/profile_kernels.py` (ours) | {t_peaks:.2f} | "
             f"{t_peaks / t_peaks_scipy:.2f} |",
             f"| dichotomy indexing, tetragonal + hexagonal, plain dichotomy (baseline) | {t_dicvol_plain:.2f} | 1.00 |",
             f"| dichotomy indexing, branch and bound (ours) | {t_dicvol:.2f} | {t_dicvol / t_dicvol_plain:.2f} |",
             f"| whole XRD featurizer (profile, peaks, trial and dichotomy indexing) | {t_features:.2f} | |", "",
             f"Same indexing features from both: {int(same.sum())} of {len(same)} patterns. Same peaks from both "
             f"peak finders: {peaks_same} of {len(patterns)} patterns. Same dichotomy features with and without the bound: "
             f"{dicvol_same} of {len(patterns)} patterns.", "",
             f"Formula features (magpie statistics + stoichiometry) of the {len(compositions)} compositions, "
             "each new to the featurizer:", "",
             "| implementation | ms per composition | ratio |", "|---|---|---|",
             f"| matminer ElementProperty + Stoichiometry (baseline) | {t_matminer:.3f} | 1.00 |",
             f"| numpy statistics on matminer's magpie table (ours) | {t_numpy:.3f} | {t_numpy / t_matminer:.3f} |", "",
             f"Same formula features from both: {formula_same} of {len(compositions)}."]
    write_section("featurize_speed", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
