"""Accuracy of the shipped formula model on the reduced formulas it never saw, with a prior baseline.

Re-creates the held-out split of `spacegroup train --modality formula` (the frozen hold-out: the reduced formulas
one in ten of which a hash keeps out of every formula model's training) on the CGCNN Materials Project table,
featurises only that part,
and scores the shipped model next to the label-frequency baseline (always answer the commonest groups); in the
same run, the shipped model without its prototype search and the search alone (``tasks/prototypes.py``).
Then the same models on formulas from outside the table: the LeMaterial random sample of all of today's MP
(2,457 materials, hypothetical entries included), keeping only reduced formulas the CGCNN table never had.

    python bench/formula_accuracy.py
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import SHARED, require_shared, write_section  # noqa: E402

HEADLINE = ("n", "sg_top1", "sg_top3", "sg_top5", "crystal_system_accuracy", "extinction_group_accuracy",
            "sg_macro_f1", "ece", "ece_sampling_floor")


def _row(name: str, m: dict) -> str:
    return f"| {name} | " + " | ".join(f"{m[k]:d}" if isinstance(m[k], int) else f"{m[k]:.3f}" for k in HEADLINE) + " |"


def _scored(model, features, labels, prior) -> list[tuple[str, dict]]:
    """The shipped model, the same without its prototype search, the search alone and the label-frequency baseline."""
    import copy

    from tasks.calibration import IDENTITY
    from tasks.evaluate import evaluate_probabilities
    from tasks.prototypes import prototype_features

    rows = [("shipped formula model", evaluate_probabilities(model.predict_proba(features.X), model.classes_, labels))]
    if model.neighbours_ is not None:
        boosters = copy.copy(model)  # shares the boosters
        boosters.neighbours_, boosters.confidence_calibration_ = None, IDENTITY
        rows.append(("the same model, prototype search switched off",
                     evaluate_probabilities(boosters.predict_proba(features.X), model.classes_, labels)))
        vote = model.neighbours_.predict_proba(prototype_features(features.X, features.feature_version),
                                               model.classes_)
        rows.append(("prototype search alone (Pettifor map, 10 nearest)",
                     evaluate_probabilities(vote, model.classes_, labels)))
    classes, frequencies = prior
    rows.append(("baseline: training label frequencies",
                 evaluate_probabilities(np.tile(frequencies, (len(labels), 1)), classes, labels)))
    return rows


def held_out_formulas():
    """The CGCNN table's entries split as `spacegroup train --modality formula` splits them (the frozen hold-out of
    ``tasks.dataset_features.is_frozen_holdout`` over reduced formulas): (compositions, labels, reduced formulas,
    training rows, held-out rows)."""
    from tasks.dataset_features import is_frozen_holdout
    from tasks.formula_data import read_formula_table

    table = require_shared("cgcnn_mp_crysxpp", "labels_spglib.csv")
    comps, labels, groups, _ = read_formula_table(table, "formula_sum", "spg_number_symprec0.1")
    held = np.array([is_frozen_holdout(g) for g in groups], dtype=bool)
    return comps, labels, groups, np.flatnonzero(~held), np.flatnonzero(held)


def main() -> None:
    warnings.filterwarnings("ignore")
    from tasks.formula_data import formula_feature_set, read_formula_table
    from tasks.models import SpaceGroupClassifier
    from tasks.pretrained import shipped_models

    require_shared("cgcnn_mp_crysxpp", "labels_spglib.csv")
    shipped = {m.modality: m for m in shipped_models()}.get("formula")
    if shipped is None:
        print("skipped: no shipped formula model")
        return
    model = SpaceGroupClassifier.from_bytes(shipped.artifact)
    comps, labels, groups, train, hold = held_out_formulas()
    started = time.perf_counter()
    held = formula_feature_set([comps[i] for i in hold], labels[hold], [groups[i] for i in hold])
    featurise_s = time.perf_counter() - started
    classes, counts = np.unique(labels[train], return_counts=True)
    prior = classes, counts / counts.sum()
    rows = _scored(model, held, labels[hold], prior)

    outside = SHARED / "lemat_mp_random_2473" / "labels_spglib.csv"
    outside_rows, outside_note = [], f"skipped: {outside} is absent"
    if outside.exists():
        new_comps, new_labels, new_groups, _ = read_formula_table(outside, "formula", "spg_number_spglib_symprec0.1")
        known = set(groups)
        keep = [i for i, g in enumerate(new_groups) if g not in known]
        new_set = formula_feature_set([new_comps[i] for i in keep], new_labels[keep], [new_groups[i] for i in keep])
        outside_rows = _scored(model, new_set, new_labels[keep], prior)
        outside_note = (f"of LeMaterial's random sample of all of MP (lemat_mp_random_2473, {len(new_groups)} "
                        f"materials): the {len(keep)} whose reduced formula ({len(set(new_groups[i] for i in keep))} "
                        f"distinct) is nowhere in the CGCNN table, training or held-out part.")
    t = time.perf_counter()
    model.predict_proba(held.X)
    rate = len(hold) / (time.perf_counter() - t)

    lines = ["## Formula accuracy (bench/formula_accuracy.py)", "",
             f"Held-out reduced formulas of the CGCNN Materials Project table ({len(hold)} entries, no reduced formula "
             f"shared with the {len(train)} training entries).", "",
             "| model | " + " | ".join(HEADLINE) + " |", "|" + "---|" * (len(HEADLINE) + 1)]
    lines += [_row(name, m) for name, m in rows]
    lines += ["", "Formulas from outside the table: " + outside_note, ""]
    if outside_rows:
        lines += ["| model | " + " | ".join(HEADLINE) + " |", "|" + "---|" * (len(HEADLINE) + 1)]
        lines += [_row(name, m) for name, m in outside_rows]
    lines += ["", "Switched off: the same boosters (system head, temperature) without the prototype vote and without the "
              "confidence calibration fitted to the mixture; the search alone: the vote of the 10 training formulas of "
              "the same stoichiometry nearest on Pettifor's map (tasks/prototypes.py). ece_sampling_floor: the ECE a "
              "perfectly calibrated model would show on these answers (tasks/evaluate.py)."]
    lines += ["", f"Model inference (features precomputed): {rate:.0f} formulas/s; featurising the held-out part took "
              f"{featurise_s:.0f} s.",
              "Target (issue 4): SG top-1 ≥ 65 %, top-5 ≥ 85 % (a 2021 study on 34.5k compounds: 60.8 % / 76.5 %). "
              "**Not met.**"]
    write_section("formula_accuracy", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
