"""What the synthetic training crystals are made of, measured on real patterns: random placements against
known structure types, each with and without the structure-type search.

For each share ``--fractions`` of crystals built from the AFLOW prototype library instead of placed at random
(``GeneratorConfig.prototype_fraction``, ``tasks/synthetic.py``), one training set is made by the shipped model's
recipe (its crystal count, patterns per crystal and seed) and two models are fitted on it with the shipped
model's recorded hyperparameters (no search): the boosters alone, and with the structure-type search and the
candidate re-ranking (``tasks.pipeline.SYNTHETIC_TYPES_MODEL_OPTIONS``). All are scored beside the shipped model
in one run on

- (v) 800 of the training materials of ``bench/accuracy.py``'s draw (``--train 20000 --test 800``): the
  settings are chosen here;
- (b) that draw's held-out MP materials: the same 1,600 measured-like patterns as ``bench/accuracy.py``;
- (c) the measured patterns;

as trained and under the MP prior (counted on the draw's other training materials).

    python bench/synthetic_sources.py [--crystals 4000 --augment 5 --fractions 0 0.5]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import REPO, held_out_draw, require_shared, write_section  # noqa: E402

OUT = REPO / "bench" / "out"
HEADLINE = ("n", "sg_top1", "sg_top3", "sg_top5", "crystal_system_accuracy", "extinction_group_accuracy",
            "sg_macro_f1", "ece")


def _fmt(m: dict) -> str:
    return " | ".join(f"{m[k]:d}" if isinstance(m[k], int) else f"{m[k]:.3f}" for k in HEADLINE)


def _mp_sets(n_train: int, n_test: int, n_validation: int = 800):
    """(b)'s test patterns as bench/accuracy.py makes them, patterns of ``n_validation`` of the draw's training
    materials (settings are chosen on these, never on (b)), and the other training materials' labels for the prior;
    cached."""
    from tasks.datasets import FeatureSet, xrd_feature_set
    from tasks.features import XRD_FEATURE_VERSION

    OUT.mkdir(parents=True, exist_ok=True)
    cache = OUT / f"mp-test-features-{XRD_FEATURE_VERSION}-{n_train}-{n_test}-v{n_validation}.npz"
    if not cache.exists():
        records, train_idx, test_idx = held_out_draw(n_train, n_test)
        valid_idx, prior_idx = train_idx[:n_validation], train_idx[n_validation:]
        test = xrd_feature_set([records[i][1] for i in test_idx], [records[i][2] for i in test_idx], n_augment=2,
                               seed=12)
        valid = xrd_feature_set([records[i][1] for i in valid_idx], [records[i][2] for i in valid_idx], n_augment=2,
                                seed=13)
        np.savez_compressed(cache, X=test.X, y=test.space_group, g=test.groups, Xv=valid.X, yv=valid.space_group,
                            gv=valid.groups, prior_labels=np.array([records[i][2] for i in prior_idx]))
    with np.load(cache) as d:
        return (FeatureSet(d["X"], d["y"], d["g"], XRD_FEATURE_VERSION),
                FeatureSet(d["Xv"], d["yv"], d["gv"], XRD_FEATURE_VERSION), d["prior_labels"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--crystals", type=int, default=None, help="crystals per model (default: the shipped model's)")
    parser.add_argument("--augment", type=int, default=None, help="patterns per crystal (default: the shipped model's)")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.5],
                        help="shares of crystals built from structure types, one model each")
    parser.add_argument("--subgroup-probability", type=float, default=0.5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from bench.accuracy import measured_patterns
    from tasks.evaluate import evaluate_probabilities
    from tasks.features import XRDPatternFeaturizer
    from tasks.models import SpaceGroupClassifier
    from tasks.pipeline import SYNTHETIC_TYPES_MODEL_OPTIONS as SEARCH_OPTIONS
    from tasks.pretrained import shipped_models
    from tasks.priors import MP_PRIOR_STRENGTH, SpaceGroupPrior
    from tasks.synthetic import GeneratorConfig, structure_types
    from tasks.training import fit_and_validate, synthetic_xrd_features

    require_shared("cgcnn_mp_crysxpp")
    started = time.perf_counter()
    shipped = {m.modality: m for m in shipped_models()}["xrd"]
    shipped_model = SpaceGroupClassifier.from_bytes(shipped.artifact)
    recorded = shipped.metadata["parameters"]
    crystals = args.crystals or int(shipped.metadata["command"].split("--crystals ")[1].split()[0])
    augment = args.augment or int(shipped.metadata["command"].split("--augment ")[1].split()[0])
    seed = int(recorded["model"]["random_state"])
    params = dict(recorded["searched"])

    test, valid, prior_labels = _mp_sets(20000, 800)
    counts = np.bincount(prior_labels, minlength=231)[1:] + 1.0
    prior = SpaceGroupPrior("mp (training materials)", counts / counts.sum(), MP_PRIOR_STRENGTH)
    measured, measured_y, _, _ = measured_patterns()
    X_measured = XRDPatternFeaturizer().featurize_many(measured)

    models = [("shipped model", shipped_model, None)]
    for fraction in args.fractions:
        config = GeneratorConfig(prototype_fraction=fraction, subgroup_probability=args.subgroup_probability)
        t = time.perf_counter()
        features = synthetic_xrd_features(crystals, augment, seed, config=config, with_lines=True)
        built = time.perf_counter() - t
        source = f"{fraction:.0%} from structure types" if fraction else "random placements only"
        for label, options in (("boosters", {}), ("with structure-type search and re-ranking", SEARCH_OPTIONS)):
            t = time.perf_counter()
            model = fit_and_validate(features, params | options, seed, n_estimators=400).model
            fitted = time.perf_counter() - t
            print(f"{source}, {label}: {len(features)} patterns built in {built:.0f} s, fitted in {fitted:.0f} s",
                  flush=True)
            models.append((f"{source}, {label}", model, (built, fitted, len(features))))

    rows = []
    for name, model, _ in models:
        for set_name, X, y in (("(v) MP validation materials", valid.X, valid.space_group),
                               ("(b) MP held-out, augmented", test.X, test.space_group),
                               ("(c) measured patterns", X_measured, measured_y)):
            for prior_name, p in (("as trained", None), ("MP prior", prior)):
                m = evaluate_probabilities(model.predict_proba(X, p), model.classes_, y)
                rows.append(f"| {set_name} | {name} | {prior_name} | {_fmt(m)} |")
                print(rows[-1], flush=True)

    n_types = len(structure_types())
    lines = ["## Synthetic training crystals: random placements against structure types (bench/synthetic_sources.py)",
             "",
             f"One training set per share of crystals built from known structure types ({n_types} of the AFLOW "
             "prototype library as pymatgen ships them: new elements, coordinates perturbed, lowered to a random "
             f"maximal subgroup with probability {args.subgroup_probability:g}, cell strained; labels from spglib), "
             f"made by the shipped model's recipe ({crystals} crystals x {augment} measured-like patterns, seed "
             f"{seed}), and two models on each with its recorded hyperparameters (no search): the boosters alone, and "
             "with the structure-type search and the candidate re-ranking. In one run with the shipped model. (v): "
             f"{len(valid)} patterns of 800 training materials of bench/accuracy.py's draw, on which the settings "
             f"were chosen; (b): the {len(test)} measured-like patterns of that draw's held-out MP materials, as "
             f"there; (c): {len(measured)} measured patterns. MP prior: strength {MP_PRIOR_STRENGTH}, counted on the "
             "draw's training materials outside (v).", "",
             "| set | model | answers | " + " | ".join(HEADLINE) + " |", "|" + "---|" * (len(HEADLINE) + 3), *rows, ""]
    for name, _, cost in models[1:]:
        built, fitted, n_patterns = cost
        made = f"built in {built:.0f} s" if built >= 1 else "read from the cache of an earlier run"
        lines.append(f"{name}: {n_patterns} patterns (and their crystals' lines) {made}, model fitted in {fitted:.0f} s.")
    lines.append(f"\nTotal {time.perf_counter() - started:.0f} s.")
    write_section("synthetic_sources", "\n".join(lines))


if __name__ == "__main__":
    main()
