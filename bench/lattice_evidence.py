"""Would indexing each pattern in each lattice sharpen the shipped XRD model's crystal system? A measurement of a
candidate, not a shipped feature.

For each measured-like pattern of bench/accuracy.py's MP draw (20,000 / 800): the shipped model's answer under the
MP prior, and the cells ``tasks/cells.py`` finds for the primitive cubic, tetragonal, hexagonal and orthorhombic
lattices (de Wolff's M and the fraction of peaks indexed, with the pattern's own wavelength). A multinomial
logistic regression over the 7 crystal systems, fitted on patterns of 800 of the draw's training materials (v),
maps the model's system probabilities (and the cells' figures) to new ones; each space group's probability is
scaled by its system's ratio. Scored on the held-out materials' patterns (b) and on the measured patterns (c) of
bench/accuracy.py, in the same run: the answer as it is, recalibrated on the model's system probabilities alone (the
baseline), with the orthorhombic cell, and with all four.

    python bench/lattice_evidence.py
"""

from __future__ import annotations

import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import held_out_draw, require_shared, write_section  # noqa: E402

LATTICE_GROUPS = {"orthorhombic": 47, "cubic": 221, "tetragonal": 123, "hexagonal": 191}  # the P lattices' lines
HEADLINE = ("n", "sg_top1", "sg_top5", "crystal_system_accuracy", "extinction_group_accuracy", "ece")


def _cells(pattern) -> tuple[np.ndarray, float]:
    """(M, fraction indexed) of the cell of each lattice in ``LATTICE_GROUPS`` (0, 0 where none) for a pattern's
    peaks, and the seconds the searches took."""
    from tasks.cells import index_answer
    from tasks.features import find_pattern_peaks

    q = find_pattern_peaks(pattern).q_inv_angstrom
    start = time.perf_counter()
    cells = []
    for number in LATTICE_GROUPS.values():
        cell = index_answer(q, pattern.wavelength_angstrom, number)
        cells += [0.0, 0.0] if cell is None else [cell.de_wolff_m, cell.peaks_indexed / cell.peaks_used]
    return np.array(cells), time.perf_counter() - start


def _patterns_and_cells(chunk: list[tuple[int, object, int]]) -> list[tuple[np.ndarray, np.ndarray, float, int]]:
    """Per (seed, structure, label): the features of one measured-like pattern, as ``tasks.datasets`` makes them,
    its cells' (M, fraction indexed) per lattice in ``LATTICE_GROUPS`` order (0, 0 where none), the seconds the
    four searches took, and the label."""
    from tasks.augment import MeasuredLikeAugmenter
    from tasks.datasets import D_MIN_ANGSTROM
    from tasks.features import XRDPatternFeaturizer
    from tasks.xrd import compute_reflections

    warnings.simplefilter("ignore")
    augmenter, featurizer = MeasuredLikeAugmenter(), XRDPatternFeaturizer()
    out = []
    for seed, structure, label in chunk:
        rng = np.random.default_rng(seed)
        try:
            reflections = compute_reflections(structure, D_MIN_ANGSTROM)
        except ValueError:  # an element without scattering factors, as tasks.datasets skips it
            continue
        pattern = augmenter.render(reflections, augmenter.sample(rng), rng)
        cells, seconds = _cells(pattern)
        out.append((featurizer.featurize_array(pattern), cells, seconds, label))
    return out


def _build(structures: list, labels: list[int], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(features, cells, seconds, labels) of one pattern per structure given."""
    items = [(seed * 1_000_003 + i, s, y) for i, (s, y) in enumerate(zip(structures, labels))]
    chunks = [items[i:i + 40] for i in range(0, len(items), 40)]
    with ProcessPoolExecutor(max_workers=2) as pool:
        rows = [row for part in pool.map(_patterns_and_cells, chunks) for row in part]
    return tuple(np.array([r[j] for r in rows]) for j in range(4))


def _cell_features(cells: np.ndarray, lattices: list[str]) -> np.ndarray:
    columns = []
    for lattice in lattices:
        j = 2 * list(LATTICE_GROUPS).index(lattice)
        m, fraction = cells[:, j], cells[:, j + 1]
        columns += [np.log1p(m), np.log1p(m * fraction ** 8), (m > 20).astype(float)]
    return np.column_stack(columns) if columns else np.zeros((len(cells), 0))


def main() -> None:
    warnings.filterwarnings("ignore")
    from sklearn.linear_model import LogisticRegression

    from tasks.crystallography import CRYSTAL_SYSTEMS as SYSTEMS
    from tasks.crystallography import crystal_system_of
    from tasks.evaluate import evaluate_probabilities
    from tasks.models import SpaceGroupClassifier
    from tasks.pretrained import shipped_models
    from tasks.priors import MP_PRIOR_STRENGTH, SpaceGroupPrior

    require_shared("cgcnn_mp_crysxpp")
    started = time.perf_counter()
    records, train_idx, test_idx = held_out_draw(20000, 800)
    valid_idx, prior_idx = train_idx[:800], train_idx[800:]
    sets = {}
    for name, indices, seed in (("v", valid_idx, 13), ("b", test_idx, 12)):
        structures = [records[i][1] for i in indices for _ in range(2)]  # two patterns per material, as (b)
        sets[name] = _build(structures, [records[i][2] for i in indices for _ in range(2)], seed)
    model = SpaceGroupClassifier.from_bytes({m.modality: m for m in shipped_models()}["xrd"].artifact)
    counts = np.bincount([records[i][2] for i in prior_idx], minlength=231)[1:] + 1.0
    prior = SpaceGroupPrior("mp (training materials)", counts / counts.sum(), MP_PRIOR_STRENGTH)
    system_of_class = np.array([SYSTEMS.index(crystal_system_of(c)) for c in model.classes_])

    def system_probabilities(P):
        return np.clip(np.column_stack([P[:, system_of_class == k].sum(axis=1) for k in range(7)]), 1e-6, 1.0)

    from bench.accuracy import measured_patterns
    from tasks.features import XRDPatternFeaturizer

    measured, measured_y, _, _ = measured_patterns()
    measured_cells = [_cells(pattern) for pattern in measured]
    sets["c"] = (XRDPatternFeaturizer().featurize_many(measured), np.array([c for c, _ in measured_cells]),
                 np.array([t for _, t in measured_cells]), measured_y)
    P = {name: model.predict_proba(sets[name][0], prior) for name in sets}
    y_valid = np.array([SYSTEMS.index(crystal_system_of(y)) for y in sets["v"][3]])
    rows = [(f"{s}: the shipped model, MP prior, as it is", evaluate_probabilities(P[s], model.classes_, sets[s][3]))
            for s in ("b", "c")]
    for name, lattices in (("recalibrated on its crystal-system probabilities (baseline)", []),
                           ("with the orthorhombic cell", ["orthorhombic"]),
                           ("with the four lattices' cells", list(LATTICE_GROUPS))):
        features = {s: np.column_stack([np.log(system_probabilities(P[s])), _cell_features(sets[s][1], lattices)])
                    for s in sets}
        regression = LogisticRegression(C=1.0, max_iter=2000).fit(features["v"], y_valid)
        for s in ("b", "c"):
            old, new = system_probabilities(P[s]), regression.predict_proba(features[s])
            adjusted = P[s] * (new / old)[:, system_of_class]
            adjusted /= adjusted.sum(axis=1, keepdims=True)
            rows.append((f"{s}: {name}", evaluate_probabilities(adjusted, model.classes_, sets[s][3])))
    rows.sort(key=lambda row: row[0][0])  # (b) first, then (c)

    cells_b = sets["b"][1]
    is_system = {s: np.array([crystal_system_of(y) == s for y in sets["b"][3]]) for s in ("orthorhombic", "monoclinic",
                                                                                         "triclinic")}
    m_ortho = cells_b[:, 0]
    seconds = np.concatenate([sets["v"][2], sets["b"][2]])  # simulated patterns only
    lines = ["## Cells as evidence for the crystal system (bench/lattice_evidence.py)", "",
             f"(b): {len(sets['b'][3])} measured-like patterns of the 800 held-out MP materials of bench/accuracy.py's "
             f"draw (new patterns, their own augmentation draws); the regression fitted on {len(sets['v'][3])} "
             "patterns of 800 of the draw's training materials (v). The shipped XRD model answers under the MP prior "
             "counted on the other training materials. (c): the measured patterns of bench/accuracy.py, with the "
             "same regressions. A candidate measured, not a feature of `spacegroup predict`.",
             "", "| answer | " + " | ".join(HEADLINE) + " |", "|" + "---|" * (len(HEADLINE) + 1)]
    for name, m in rows:
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:d}" if isinstance(m[k], int) else f"{m[k]:.3f}"
                                                 for k in HEADLINE) + " |")
    lines += ["", "The primitive orthorhombic cell's M on (b): above 20 for "
              + ", ".join(f"{np.mean(m_ortho[mask] > 20):.0%} of {s} patterns" for s, mask in is_system.items())
              + "; median " + ", ".join(f"{np.median(m_ortho[mask]):.1f} ({s})" for s, mask in is_system.items())
              + ".",
              f"Time for the four searches: {np.mean(seconds) * 1000:.0f} ms a pattern on average, "
              f"{np.percentile(seconds, 95) * 1000:.0f} ms at the 95th percentile (the shipped model's whole "
              "answer takes ~1 ms): too slow for every answer; an option where the user waits for the cells anyway.",
              f"Total {time.perf_counter() - started:.0f} s."]
    body = "\n".join(lines)
    print(body)
    write_section("lattice_evidence", body)


if __name__ == "__main__":
    main()
