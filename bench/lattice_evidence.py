"""The lattice evidence (``--lattice-evidence``, tasks/lattice_evidence.py): how much a model's answer gains when
each pattern's best primitive cubic, tetragonal, hexagonal and orthorhombic cells, and its best orthorhombic cell
whose lines a C centring or Pnma's rules thin, correct its crystal systems. Where a model's stage is refitted here,
the stage of the four primitive lattices alone (artifact format 8) is fitted beside it on the same answers.

1. The shipped XRD model, whose stage was fitted on its own synthetic calibration patterns, on (b) (the held-out MP
   materials' patterns of bench/accuracy.py's 20,000 / 800 draw, under the MP prior counted on the draw's other
   training materials) and on the measured patterns (c): without and with the stage. As a reference, the same
   model with the stage refitted on patterns of 800 of the draw's training materials (v): what a fit on real
   patterns gives.
2. An MP-trained model (``--mp-model``, saved by ``bench/accuracy.py --save-model`` for the ``--mp-train`` /
   ``--mp-test`` draw): its answer calibration refitted as that run did, and the stage fitted on its own
   calibration split (``refit_answer_calibration`` with ``lattice_evidence``), as `spacegroup train
   --lattice-evidence` fits it; scored on that draw's (b) and on (c), without and with the stage.

The cells of every pattern are cached under bench/out (keyed by the feature rows' hash); a cache of fewer searches
is extended by the missing ones.

    python bench/lattice_evidence.py [--mp-model bench/out/mp-model-8000-800.sgm --mp-train 8000 --mp-test 800]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import cached_lattice_cells, mp_draw_features, require_shared, write_section  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
TIMED_PATTERNS = 200
HEADLINE = ("n", "sg_top1", "sg_top5", "crystal_system_accuracy", "extinction_group_accuracy", "ece")


def _seconds_per_pattern(X: np.ndarray, lattices: tuple[str, ...]) -> float:
    """Wall seconds a pattern for the searches of ``lattices`` on ``X`` (all cores), measured now."""
    from tasks.features import XRD_FEATURE_VERSION
    from tasks.lattice_evidence import lattice_cells

    start = time.perf_counter()
    lattice_cells(X, XRD_FEATURE_VERSION, n_jobs=0, lattices=lattices)
    return (time.perf_counter() - start) / len(X)


def _row(name: str, metrics: dict) -> str:
    return f"| {name} | " + " | ".join(f"{metrics[k]:d}" if isinstance(metrics[k], int) else f"{metrics[k]:.3f}"
                                       for k in HEADLINE) + " |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mp-model", type=Path, default=OUT / "mp-model-8000-800.sgm")
    parser.add_argument("--mp-train", type=int, default=8000)
    parser.add_argument("--mp-test", type=int, default=800)
    parser.add_argument("--augment", type=int, default=3, help="training patterns per material of the --mp-model run")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from bench.accuracy import measured_patterns
    from bench.synthetic_sources import _mp_sets
    from scipy.special import softmax

    from tasks.calibration import IDENTITY, fit_beta_calibration
    from tasks.crystallography import CRYSTAL_SYSTEMS, crystal_system_of
    from tasks.evaluate import evaluate_probabilities
    from tasks.features import XRDPatternFeaturizer
    from tasks.lattice_evidence import CONFIDENT_M, FORMAT_8_LATTICES, LATTICE_SEARCHES, LatticeEvidence
    from tasks.models import _three_way_group_split
    from tasks.models import SpaceGroupClassifier
    from tasks.pipeline import REAL_PATTERN_MODEL_OPTIONS
    from tasks.pretrained import shipped_models
    from tasks.priors import MP_PRIOR_STRENGTH, SpaceGroupPrior
    from tasks.training import training_and_held_out_rows

    require_shared("cgcnn_mp_crysxpp")
    started = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    test, valid, prior_labels = _mp_sets(20000, 800)
    counts = np.bincount(prior_labels, minlength=231)[1:] + 1.0
    prior = SpaceGroupPrior("mp (training materials)", counts / counts.sum(), MP_PRIOR_STRENGTH)
    measured, measured_y, _, _ = measured_patterns()
    X_c = XRDPatternFeaturizer().featurize_many(measured)
    cells_b, cells_v, cells_c = (cached_lattice_cells(X) for X in (test.X, valid.X, X_c))
    four = tuple(LATTICE_SEARCHES)[:FORMAT_8_LATTICES]
    timing = {lattices: _seconds_per_pattern(test.X[:TIMED_PATTERNS], lattices)
              for lattices in (four, tuple(LATTICE_SEARCHES))}

    def scored(model, X, y, p, cells=None):
        if cells is not None:  # the cells of the searches the model's stage reads
            cells = cells[:, :2 * len(model.lattice_searches)]
        return evaluate_probabilities(model.predict_proba(X, p, cells), model.classes_, y)

    def with_linear_stage(model, offset, cells, systems, n_searches=FORMAT_8_LATTICES):
        """A copy of the model whose stage is the linear one (artifact formats 8 and 9) of the first ``n_searches``
        (default: the four primitive lattices alone), fitted on the same answers, without a calibration of its own."""
        copy = SpaceGroupClassifier.from_bytes(model.to_bytes())
        copy.lattice_evidence_ = LatticeEvidence.fit(offset, cells[:, :2 * n_searches], systems)
        copy.lattice_confidence_calibration_ = IDENTITY
        return copy

    shipped = SpaceGroupClassifier.from_bytes({m.modality: m for m in shipped_models()}["xrd"].artifact)
    lines = ["## The lattice evidence (bench/lattice_evidence.py)", "",
             "`spacegroup predict --lattice-evidence`: each pattern's best primitive orthorhombic, cubic, tetragonal "
             "and hexagonal cells, and its best orthorhombic cell whose lines a C centring or Pnma's rules may thin "
             "(from the first 16 peaks of its feature row), correct the model's crystal systems, by a small booster "
             "over the answer's crystal-system probabilities and the cells' figures (new fits) or by weights of the "
             "cells' figures alone (the linear stage of artifact formats 8 and 9, the shipped model's), fitted on the "
             "model's calibration split (tasks/lattice_evidence.py). 'four lattices': the linear stage of the "
             "primitive lattices alone (as models of artifact format 8 have it), fitted on the same answers; "
             "'linear': the linear stage of the five searches with its staged answers' calibration (format 9).", "",
             "1. The shipped XRD model. (b): 1600 measured-like patterns of the 800 held-out MP materials of "
             "bench/accuracy.py's 20,000 / 800 draw, under the MP prior counted on the draw's other training "
             "materials; (c): bench/accuracy.py's measured patterns, same prior. 'refitted on (v)': the stage fitted "
             "instead on 1600 patterns of 800 of the draw's training materials (real patterns, for reference).", "",
             "| answer | " + " | ".join(HEADLINE) + " |", "|" + "---|" * (len(HEADLINE) + 1)]
    sets = {"b": (test.X, test.space_group, cells_b), "c": (X_c, np.asarray(measured_y), cells_c)}
    reference = SpaceGroupClassifier.from_bytes(shipped.to_bytes())
    system_of = np.array([CRYSTAL_SYSTEMS.index(crystal_system_of(int(v))) for v in valid.space_group])
    offset_v = np.log(np.clip(reference._system_marginals(reference.predict_proba(valid.X)), 1e-9, 1.0))
    reference.lattice_evidence_ = LatticeEvidence.fit(offset_v, cells_v, system_of)
    reference_four = with_linear_stage(reference, offset_v, cells_v, system_of)
    for name, (X, y, cells) in sets.items():
        lines.append(_row(f"{name}: shipped model, as it is", scored(shipped, X, y, prior)))
        if shipped.has_lattice_evidence:
            lines.append(_row(f"{name}: shipped model, with its lattice evidence "
                              f"({len(shipped.lattice_searches)} searches)", scored(shipped, X, y, prior, cells)))
        lines.append(_row(f"{name}: shipped model, lattice evidence refitted on (v)",
                          scored(reference, X, y, prior, cells)))
        lines.append(_row(f"{name}: shipped model, lattice evidence refitted on (v), four lattices",
                          scored(reference_four, X, y, prior, cells)))

    lines += ["", f"Patterns of (b) whose search finds a cell with M > {CONFIDENT_M:.0f} indexing at least 90 % of the "
              "first peaks, by their true crystal system (what each search tells the stage):", "",
              "| true system | n | " + " | ".join(LATTICE_SEARCHES) + " |", "|" + "---|" * (len(LATTICE_SEARCHES) + 2)]
    true_system = np.array([crystal_system_of(int(v)) for v in test.space_group])
    confident = (cells_b[:, 0::2] > CONFIDENT_M) & (cells_b[:, 1::2] >= 0.9)
    for system in CRYSTAL_SYSTEMS:
        rows = true_system == system
        lines.append(f"| {system} | {rows.sum()} | " + " | ".join(f"{v:.2f}" for v in confident[rows].mean(axis=0))
                     + " |")

    if args.mp_model.exists():
        draw = mp_draw_features(args.mp_train, args.mp_test, args.augment)
        X_tr, y_tr, g_tr = draw.train.X, draw.train.space_group, draw.train.groups
        X_te, y_te = draw.test.X, draw.test.space_group
        fitted = training_and_held_out_rows(draw.train, seed=0)[0]
        train_lines = draw.train_lines
        model = SpaceGroupClassifier.from_bytes(args.mp_model.read_bytes())
        model.set_params(**REAL_PATTERN_MODEL_OPTIONS, lattice_evidence=True)
        t_fit = time.perf_counter()
        # as refit_answer_calibration does, with the calibration split's cells from the cache
        X, y, g = X_tr[fitted], y_tr[fitted], g_tr[fitted]
        model.neighbours_.groups_ = g
        model._attach_reference_lines(train_lines, g)
        _, _, calib = _three_way_group_split(g, model.validation_fraction, model.calibration_fraction,
                                             model.random_state)
        encoded = np.searchsorted(model.classes_, y[calib])
        answers = model.fit_answer_calibration(X[calib], encoded, g[calib])
        cells_calib = cached_lattice_cells(X[calib])
        model.fit_lattice_evidence(X[calib], encoded, cells=cells_calib, answers=answers, groups=g[calib])
        t_fit = time.perf_counter() - t_fit
        log_answers = np.log(np.clip(answers, 1e-300, 1.0))
        offset = model._system_log_proba_of(log_answers)
        true_systems = model.systems_[model.class_system_[encoded]]
        model_four = with_linear_stage(model, offset, cells_calib, true_systems)
        # the linear stage of the five searches, with its in-sample calibration, as models of format 9 have it
        model_linear = with_linear_stage(model, offset, cells_calib, true_systems, len(LATTICE_SEARCHES))
        staged = softmax(log_answers + model_linear._lattice_shift(cells_calib, log_answers), axis=1)
        model_linear.lattice_confidence_calibration_ = fit_beta_calibration(staged.max(axis=1),
                                                                            staged.argmax(axis=1) == encoded)
        cells_te = cached_lattice_cells(X_te)
        lines += ["", f"2. An MP-trained model ({args.mp_model.name}: boosters and structure-type search trained on "
                  f"the {args.mp_train} / {args.mp_test} draw's training materials, {args.augment} patterns each), "
                  f"its gate, re-ranker, confidence calibration and lattice evidence refitted on its own calibration "
                  f"split in {t_fit:.0f} s. (b): the draw's {len(y_te)} held-out patterns; (c) as above; answers as "
                  "trained (its training frequencies are MP's).", "",
                  "| answer | " + " | ".join(HEADLINE) + " |", "|" + "---|" * (len(HEADLINE) + 1)]
        for name, (X, y, cells) in {"b": (X_te, y_te, cells_te), "c": sets["c"]}.items():
            lines.append(_row(f"{name}: MP-trained, as it is", scored(model, X, y, None)))
            lines.append(_row(f"{name}: MP-trained, with its lattice evidence, four lattices",
                              scored(model_four, X, y, None, cells)))
            lines.append(_row(f"{name}: MP-trained, with its lattice evidence, linear",
                              scored(model_linear, X, y, None, cells)))
            lines.append(_row(f"{name}: MP-trained, with its lattice evidence", scored(model, X, y, None, cells)))
    else:
        lines += ["", f"2. No MP-trained model at {args.mp_model} (make one with bench/accuracy.py --save-model): "
                  "not measured in this run."]
    lines += ["", f"Time for the searches, on the first {TIMED_PATTERNS} patterns of (b) with all cores, in this run: "
              f"the four primitive lattices {timing[four] * 1000:.0f} ms a pattern, all {len(LATTICE_SEARCHES)} searches "
              f"{timing[tuple(LATTICE_SEARCHES)] * 1000:.0f} ms; the model's own answer takes ~1 ms.",
              f"Total {time.perf_counter() - started:.0f} s."]
    body = "\n".join(lines)
    print(body)
    write_section("lattice_evidence", body)


if __name__ == "__main__":
    main()
