"""Patterns whose peaks are all orders of one or two reflections (``tasks.texture``): how the XRD models answer them,
beside the other patterns and beside patterns with merely few peaks, on the measured patterns of ../shared/data
(bench/accuracy.py's set (c)) and, where bench/accuracy.py left them in bench/out, its 1,600 measured-like patterns
of held-out MP materials (set (b)).

The reason `spacegroup predict` warns on such patterns and abstains unless a composition is given. Models: the
shipped one under the MP prior (as `spacegroup predict` answers), and the MP-trained model bench/accuracy.py saved
(``--mp-model``, default bench/out/mp-model-all.sgm) where present.

    python bench/plane_families.py [--mp-model bench/out/mp-model-all.sgm]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import REPO, require_shared, write_section  # noqa: E402

OUT = REPO / "bench" / "out"


def _groups(X: np.ndarray) -> dict[str, np.ndarray]:
    from tasks.features import XRD_FEATURE_VERSION, XRDPatternFeaturizer, feature_columns
    from tasks.texture import too_few_plane_families

    featurizer = XRDPatternFeaturizer()
    n_peaks = X[:, featurizer.feature_labels().index("n_peaks")].astype(int)
    first_q = X[:, feature_columns(featurizer, XRD_FEATURE_VERSION, lambda name: name.startswith("peak_q_"), "bench")]
    families = np.array([0 if n == 0 else len(too_few_plane_families(q[:n]) or []) for q, n in zip(first_q, n_peaks)])
    return {"orders of one reflection": families == 1, "orders of two reflections (3 peaks or more)": families == 2,
            "the others, 1-5 peaks": (families == 0) & (n_peaks > 0) & (n_peaks < 6),
            "the others, 6 peaks or more": (families == 0) & (n_peaks >= 6)}


def _rows(data: str, model: str, proba: np.ndarray, classes: np.ndarray, y: np.ndarray,
          groups: dict[str, np.ndarray]) -> list[str]:
    from tasks.crystallography import space_group_type

    top = np.asarray(classes)[np.argmax(proba, axis=1)]
    right = top == y
    system_right = np.array([space_group_type(int(a)).crystal_system == space_group_type(int(b)).crystal_system
                             for a, b in zip(top, y)])
    confidence = proba.max(axis=1)
    out = []
    for name, rows in groups.items():
        if rows.any():
            out.append(f"| {data} | {model} | {name} | {rows.sum()} | {right[rows].mean():.2f} | "
                       f"{system_right[rows].mean():.2f} | {confidence[rows].mean():.2f} | "
                       f"{confidence[rows].mean() - right[rows].mean():+.2f} |")
        else:
            out.append(f"| {data} | {model} | {name} | 0 | - | - | - | - |")
    return out


def main() -> None:
    from bench.accuracy import measured_patterns
    from tasks.features import XRD_FEATURE_VERSION, XRDPatternFeaturizer
    from tasks.models import SpaceGroupClassifier
    from tasks.pretrained import shipped_models
    from tasks.priors import space_group_prior

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mp-model", type=Path, default=OUT / "mp-model-all.sgm",
                        help="an MP-trained model saved by bench/accuracy.py --save-model (skipped when absent)")
    parser.add_argument("--mp-test-features", type=Path,
                        default=OUT / f"mp-test-features-{XRD_FEATURE_VERSION}-20000-800.npz",
                        help="bench/accuracy.py's cached set (b) features (skipped when absent)")
    args = parser.parse_args()
    require_shared("autoxrd_thinfilm_exp")
    patterns, labels, _, skipped = measured_patterns()
    sets = {"(c) measured": (XRDPatternFeaturizer().featurize_many(patterns), np.asarray(labels))}
    if args.mp_test_features.exists():
        with np.load(args.mp_test_features) as cached:
            sets["(b) MP held-out, augmented"] = (cached["X"], cached["y"])
    else:
        print(f"no cached set (b) features at {args.mp_test_features}: its rows are left out")
    models = {"shipped (synthetic), MP prior": (
        SpaceGroupClassifier.from_bytes({m.modality: m for m in shipped_models()}["xrd"].artifact),
        space_group_prior("mp"))}
    if args.mp_model.exists():
        models["MP-trained"] = (SpaceGroupClassifier.from_bytes(args.mp_model.read_bytes()), None)
    else:
        print(f"no MP-trained model at {args.mp_model}: its rows are left out")
    lines = ["| set | model | patterns | n | SG top-1 | crystal system | mean confidence | confidence - top-1 |",
             "|---|---|---|---|---|---|---|---|"]
    for data, (X, y) in sets.items():
        groups = _groups(X)
        for name, (model, prior) in models.items():
            proba = model.predict_proba(X, prior) if prior is not None else model.predict_proba(X)
            lines += _rows(data, name, proba, model.classes_, y, groups)
    body = "\n".join([
        "## Patterns of one or two families of lattice planes (bench/plane_families.py)", "",
        "Patterns whose peaks (the first 16 the featuriser finds) are all orders, Q, 2Q, 3Q, ... within 1 %, of one "
        "reflection (a single peak counts) or of two (with 3 peaks or more; `tasks.texture`): a textured film's or "
        "an oriented crystal's, which one or two plane spacings cannot index. `spacegroup predict` answers them "
        "with a warning and abstains unless a composition is given. Beside them, the other patterns with 1-5 peaks "
        "and with more. (c): the "
        f"{len(labels)} readable measured patterns of bench/accuracy.py (thin films, IUCr Rietveld powder CIFs, "
        "TaCr2O6); (b): its measured-like patterns of 800 held-out MP materials. Confidence - top-1: how far the "
        "answers' mean confidence is above the share that is right (0 for calibrated answers).", "",
        *lines, "",
        f"Unreadable measured files left out: {len(skipped)}.",
    ])
    print(body)
    write_section("plane_families", body)


if __name__ == "__main__":
    main()
