"""A pattern and its sample's composition together: the XRD model's answer combined with the formula model's
(``tasks/combine.py``), against each alone, in one run.

Patterns: (v) 1,600 patterns of 800 training materials of ``bench/accuracy.py``'s draw (``--train 20000 --test
800``), on which the powers of the combination are chosen; (b) the 1,600 measured-like patterns of that draw's
800 held-out materials, as in ``bench/accuracy.py`` (both cached by ``bench/synthetic_sources.py``). Each pattern
comes with its material's reduced formula. Then, pattern by pattern, the measured patterns whose composition is
recorded.

The formula model is the shipped one's recipe (``spacegroup train --modality formula``: the CGCNN table, seed 1,
200 rounds) trained here without any reduced formula of (v), (b) or the measured patterns, so that neither its
answers nor the powers chosen on (v) have seen them; it is cached in bench/out. The XRD model is the shipped
(synthetic-only) one, answering under the MP prior when alone, as `spacegroup predict` does (the frequencies
counted on the draw's other training materials).

    python bench/combined_accuracy.py
"""

from __future__ import annotations

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
PATTERN_POWERS = (0.25, 0.5, 0.75, 1.0, 1.5)
FORMULA_POWERS = (0.5, 0.75, 1.0, 1.25, 1.5)


def _fmt(m: dict) -> str:
    return " | ".join(f"{m[k]:d}" if isinstance(m[k], int) else f"{m[k]:.3f}" for k in HEADLINE)


def _formulas_of_rows(n_train: int, n_test: int, test, valid) -> tuple[list[str], list[str]]:
    """The reduced formula of each (b) and (v) pattern (their groups index the draw's test and first training
    materials, as ``bench/synthetic_sources._mp_sets`` built them; checked against the labels)."""
    records, train_idx, test_idx = held_out_draw(n_train, n_test)
    out = []
    for features, indices in ((test, test_idx), (valid, train_idx[:len(np.unique(valid.groups))])):
        chosen = [records[indices[g]] for g in features.groups]
        if not all(label == y for (_, _, label), y in zip(chosen, features.space_group)):
            raise RuntimeError("the cached patterns' groups are not the draw's materials: rebuild bench/out caches")
        out.append([structure.composition.reduced_formula for _, structure, _ in chosen])
    return out[0], out[1]


def _formula_model(excluded: set[str]):
    """The shipped formula model's recipe on the CGCNN table without the ``excluded`` reduced formulas; cached."""
    import hashlib

    from tasks.dataset_features import is_frozen_holdout
    from tasks.formula_data import formula_feature_set, read_formula_table
    from tasks.models import SpaceGroupClassifier
    from tasks.pipeline import REAL_DATA_MODEL_OPTIONS
    from tasks.pretrained import shipped_models
    from tasks.training import fit_model

    shipped = {m.modality: m for m in shipped_models()}["formula"]
    seed = int(shipped.metadata["parameters"]["model"]["random_state"])
    n_estimators = int(shipped.metadata["command"].split("--estimators ")[1].split()[0])
    key = hashlib.sha256("\n".join(sorted(excluded)).encode()).hexdigest()[:12]
    cache = OUT / f"formula-model-without-{key}-frozen-s{seed}-{n_estimators}.sgm"
    if cache.exists():
        return SpaceGroupClassifier.from_bytes(cache.read_bytes()), 0.0
    t = time.perf_counter()
    root = require_shared("cgcnn_mp_crysxpp")
    comps, labels, groups, _ = read_formula_table(root / "labels_spglib.csv", "formula_sum", "spg_number_symprec0.1")
    # as the shipped model: every formula outside the frozen hold-out, here less the excluded ones too
    keep = [i for i, g in enumerate(groups) if g not in excluded and not is_frozen_holdout(g)]
    features = formula_feature_set([comps[i] for i in keep], labels[keep], [groups[i] for i in keep])
    model = fit_model(features, dict(REAL_DATA_MODEL_OPTIONS), seed, n_estimators, modality="formula")
    OUT.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(model.to_bytes())
    return model, time.perf_counter() - t


def _outside_table(n_augment: int = 2, seed: int = 14):
    """Measured-like patterns (and reduced formulas) of the LeMaterial sample's materials whose reduced formula the
    CGCNN table never had, the formula model's weakest ground (bench/formula_accuracy.py); cached."""
    import csv
    import tarfile

    from pymatgen.core import Composition, Structure

    from bench._common import SHARED
    from tasks.datasets import FeatureSet, xrd_feature_set
    from tasks.features import XRD_FEATURE_VERSION
    from tasks.formula_data import read_formula_table

    cache = OUT / f"outside-table-features-{XRD_FEATURE_VERSION}-{n_augment}-{seed}.npz"
    if not cache.exists():
        root = require_shared("lemat_mp_random_2473")
        _, _, table_groups, _ = read_formula_table(SHARED / "cgcnn_mp_crysxpp" / "labels_spglib.csv", "formula_sum",
                                                   "spg_number_symprec0.1")
        known = set(table_groups)
        with open(root / "labels_spglib.csv") as fh:
            rows = [r for r in csv.DictReader(fh)
                    if Composition(r["formula"]).reduced_formula not in known]
        wanted = {f"mp/{r['cif_file']}": r for r in rows}
        structures, labels, formulas = [], [], []
        with tarfile.open(root / "mp_cifs.tar.gz") as tar, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for member in tar:
                row = wanted.get(member.name)
                if row is not None:
                    structure = Structure.from_str(tar.extractfile(member).read().decode(), fmt="cif")
                    structures.append(structure)
                    labels.append(int(row["spg_number_spglib_symprec0.1"]))
                    formulas.append(structure.composition.reduced_formula)
        features = xrd_feature_set(structures, labels, n_augment=n_augment, seed=seed)
        OUT.mkdir(parents=True, exist_ok=True)
        if not np.array_equal(np.asarray(labels)[features.groups], features.space_group):
            raise RuntimeError("the feature rows' groups are not the structures' positions")
        np.savez_compressed(cache, X=features.X, y=features.space_group, g=features.groups,
                            formulas=np.array(formulas))
    with np.load(cache) as d:
        return FeatureSet(d["X"], d["y"], d["g"], XRD_FEATURE_VERSION), [str(f) for f in d["formulas"][d["g"]]]


def _measured_with_formulas():
    """The measured patterns whose composition is recorded: the single-phase IUCr Rietveld powder CIFs (their
    ``formula_sum``; BaTiO3 where the file names it only in its name, as labels.csv notes) and TaCr2O6."""
    import csv

    from bench._common import SHARED
    from bench.accuracy import measured_patterns

    patterns, labels, names, _ = measured_patterns()
    formulas = {"xrd_measurement_TaCr2O6.dat": "TaCr2O6"}
    with open(SHARED / "iucr_rietveld_pxrd_cifs" / "labels.csv") as fh:
        for row in csv.DictReader(fh):
            formulas[row["file"]] = "BaTiO3" if "BaTiO3" in row["formula_sum"] else row["formula_sum"]
    keep = [i for i, name in enumerate(names) if name in formulas]
    return ([patterns[i] for i in keep], labels[keep], [names[i] for i in keep],
            [formulas[names[i]] for i in keep])


def main() -> None:
    warnings.filterwarnings("ignore")
    from pymatgen.core import Composition

    from bench.synthetic_sources import _mp_sets
    from tasks.combine import FORMULA_POWER, PATTERN_POWER, combine_with_formula
    from tasks.evaluate import evaluate_probabilities
    from tasks.features import FormulaFeaturizer
    from tasks.models import SpaceGroupClassifier
    from tasks.pretrained import shipped_models
    from tasks.priors import MP_PRIOR_STRENGTH, SpaceGroupPrior

    require_shared("cgcnn_mp_crysxpp")
    started = time.perf_counter()
    test, valid, prior_labels = _mp_sets(20000, 800)
    formulas_b, formulas_v = _formulas_of_rows(20000, 800, test, valid)
    measured, measured_y, measured_names, measured_formulas = _measured_with_formulas()
    measured_reduced = [Composition(f).reduced_formula for f in measured_formulas]
    formula_model, fitted = _formula_model(set(formulas_b) | set(formulas_v) | set(measured_reduced))
    xrd = SpaceGroupClassifier.from_bytes({m.modality: m for m in shipped_models()}["xrd"].artifact)
    # the XRD model alone answers under MP frequencies as `spacegroup predict` does, counted here on the draw's
    # training materials outside (v) (the shipped counts include (b)'s materials)
    counts = np.bincount(prior_labels, minlength=231)[1:] + 1.0
    mp_prior = SpaceGroupPrior("mp (training materials)", counts / counts.sum(), MP_PRIOR_STRENGTH)
    all_groups = np.arange(1, 231)
    featurizer = FormulaFeaturizer()

    outside, formulas_o = _outside_table()
    sets = {}
    for name, features, formulas in (("(v) MP validation materials", valid, formulas_v),
                                     ("(b) MP held-out, augmented", test, formulas_b),
                                     ("(o) formulas outside the CGCNN table", outside, formulas_o)):
        distinct = sorted(set(formulas))
        answers = formula_model.predict_proba(featurizer.featurize_many([Composition(f) for f in distinct]))
        by_formula = dict(zip(distinct, answers))
        sets[name] = (features, np.array([by_formula[f] for f in formulas]), xrd.predict_proba(features.X),
                      len(distinct))

    def combined(name, pattern_power, formula_power):
        features, formula_proba, pattern_proba, _ = sets[name]
        return combine_with_formula(pattern_proba, xrd.classes_, xrd.class_prior_, formula_proba,
                                    formula_model.classes_, pattern_power, formula_power)

    def log_likelihood(proba, labels):
        return float(np.mean(np.log(proba[np.arange(len(labels)), labels - 1])))

    valid_name = "(v) MP validation materials"
    grid = {(a, b): log_likelihood(combined(valid_name, a, b), valid.space_group)
            for a in PATTERN_POWERS for b in FORMULA_POWERS}
    best = max(grid, key=grid.get)

    rows = []
    for name, (features, formula_proba, _, n_formulas) in sets.items():
        y = features.space_group
        scored = [("XRD model alone (shipped, MP prior)", xrd.predict_proba(features.X, mp_prior), xrd.classes_),
                  ("formula model alone (without these formulas)", formula_proba, formula_model.classes_),
                  ("combined, powers 1 and 1 (two independent calibrated models)", combined(name, 1.0, 1.0),
                   all_groups),
                  (f"combined as `--composition` answers (powers {PATTERN_POWER:g} and {FORMULA_POWER:g})",
                   combined(name, PATTERN_POWER, FORMULA_POWER), all_groups)]
        for label, proba, classes in scored:
            m = evaluate_probabilities(proba, classes, y)
            rows.append(f"| {name} | {label} | {_fmt(m)} |")
            print(rows[-1], flush=True)

    from tasks.crystallography import space_group_type
    from tasks.features import XRDPatternFeaturizer

    symbol = lambda number: space_group_type(int(number)).symbol  # noqa: E731
    X_measured = XRDPatternFeaturizer().featurize_many(measured)
    alone = xrd.predict_proba(X_measured, mp_prior)
    by_formula = formula_model.predict_proba(featurizer.featurize_many([Composition(f) for f in measured_reduced]))
    both = combine_with_formula(xrd.predict_proba(X_measured), xrd.classes_, xrd.class_prior_, by_formula,
                                formula_model.classes_, PATTERN_POWER, FORMULA_POWER)
    measured_rows, right = [], np.zeros(3, int)
    for i, name in enumerate(measured_names):
        picks = [(xrd.classes_, alone[i]), (formula_model.classes_, by_formula[i]), (all_groups, both[i])]
        cells = []
        for column, (classes, proba) in enumerate(picks):
            top = int(classes[np.argmax(proba)])
            right[column] += top == measured_y[i]
            cells.append(f"{symbol(top)} {proba.max():.2f}")
        measured_rows.append(f"| {name} | {measured_reduced[i]} | {symbol(measured_y[i])} | {' | '.join(cells)} |")
    grid_text = ", ".join(f"{a:g}/{b:g} {v:.3f}" for (a, b), v in sorted(grid.items()))
    lines = ["## A pattern with its composition (bench/combined_accuracy.py)", "",
             "Each pattern's answer combined with the formula model's answer for its material's reduced formula "
             "(`tasks/combine.py`: the formula model's probability to one power times the XRD model's likelihood "
             "ratio, its probability over its training frequency, to another). XRD: the shipped synthetic-only "
             "model. Formula: the shipped formula model's recipe retrained here on the CGCNN table without any "
             f"reduced formula of (v), (b) or the measured patterns below ({sets[valid_name][3]} and "
             f"{sets['(b) MP held-out, augmented'][3]} formulas). (v): {len(valid)} patterns of 800 training "
             "materials of bench/accuracy.py's draw, where the powers are chosen (highest mean log-probability of "
             f"the true group); (b): the {len(test)} measured-like patterns of that draw's held-out materials, as "
             f"in bench/accuracy.py; (o): {len(outside)} measured-like patterns (2 each) of the "
             f"{len(np.unique(outside.groups))} materials of LeMaterial's random sample of MP whose reduced formula "
             "the CGCNN table never had (bench/formula_accuracy.py's outside set: later and hypothetical entries, "
             "where the formula model is weakest).", "",
             "| set | answer | " + " | ".join(HEADLINE) + " |", "|" + "---|" * (len(HEADLINE) + 2), *rows, "",
             f"Measured patterns whose composition is recorded ({len(measured_names)} of (c): the single-phase IUCr "
             "Rietveld powder CIFs and TaCr2O6; the formula model above, which saw none of their formulas either), "
             "each answer's top group and its probability:", "",
             "| measured pattern | composition | published | XRD alone | formula alone | combined |",
             "|---|---|---|---|---|---|", *measured_rows, "",
             f"Right: XRD alone {right[0]}, formula alone {right[1]}, combined {right[2]} of {len(measured_names)}.",
             "",
             f"Mean log-probability of the true group on (v), pattern power / formula power: {grid_text}. Best: "
             f"{best[0]:g} / {best[1]:g}; `tasks/combine.py` uses {PATTERN_POWER:g} / {FORMULA_POWER:g}.", "",
             f"Formula model {'fitted in ' + format(fitted, '.0f') + ' s' if fitted else 'read from bench/out'}; "
             f"total {time.perf_counter() - started:.0f} s."]
    write_section("combined_accuracy", "\n".join(lines))


if __name__ == "__main__":
    main()
