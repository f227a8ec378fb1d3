"""How the XRD models answer measured patterns with few peaks: SG top-1, crystal system and mean confidence by the
number of peaks found, on the measured patterns of ../shared/data (bench/accuracy.py's set (c)).

The reason for ``tasks.predict.FEW_PEAKS``: a pattern with fewer peaks is answered with a warning, and abstained
on without a composition. Models: the shipped one under the MP prior (as `spacegroup predict` answers), and the
MP-trained model that bench/accuracy.py saved (``--mp-model``, default bench/out/mp-model-all.sgm) where present.

    python bench/few_peaks.py [--mp-model bench/out/mp-model-all.sgm]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import REPO, require_shared, write_section  # noqa: E402

BINS = ((0, 0), (1, 3), (4, 5), (6, 9), (10, 10 ** 6))


def _rows(name: str, proba: np.ndarray, classes: np.ndarray, y: np.ndarray, n_peaks: np.ndarray) -> list[str]:
    from tasks.crystallography import space_group_type

    top = np.asarray(classes)[np.argmax(proba, axis=1)]
    right = top == y
    system_right = np.array([space_group_type(int(a)).crystal_system == space_group_type(int(b)).crystal_system
                             for a, b in zip(top, y)])
    confidence = proba.max(axis=1)
    out = []
    for lo, hi in BINS:
        rows = (n_peaks >= lo) & (n_peaks <= hi)
        if not rows.any():
            continue
        shown = f"{lo}" if lo == hi else (f"{lo} or more" if hi >= 10 ** 6 else f"{lo}-{hi}")
        out.append(f"| {name} | {shown} | {rows.sum()} | {right[rows].mean():.2f} | {system_right[rows].mean():.2f} "
                   f"| {confidence[rows].mean():.2f} | {confidence[rows].mean() - right[rows].mean():+.2f} |")
    return out


def main() -> None:
    from bench.accuracy import measured_patterns
    from tasks.features import XRDPatternFeaturizer
    from tasks.models import SpaceGroupClassifier
    from tasks.predict import FEW_PEAKS
    from tasks.pretrained import shipped_models
    from tasks.priors import space_group_prior

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mp-model", type=Path, default=REPO / "bench" / "out" / "mp-model-all.sgm",
                        help="an MP-trained model saved by bench/accuracy.py --save-model (skipped when absent)")
    args = parser.parse_args()
    require_shared("autoxrd_thinfilm_exp")
    patterns, labels, _, skipped = measured_patterns()
    featurizer = XRDPatternFeaturizer()
    X = featurizer.featurize_many(patterns)
    n_peaks = X[:, featurizer.feature_labels().index("n_peaks")].astype(int)
    y = np.asarray(labels)
    shipped = SpaceGroupClassifier.from_bytes({m.modality: m for m in shipped_models()}["xrd"].artifact)
    prior = space_group_prior("mp")  # as `spacegroup predict` answers by default
    lines = ["| model | peaks found | patterns | SG top-1 | crystal system | mean confidence | confidence - top-1 |",
             "|---|---|---|---|---|---|---|",
             *_rows("shipped (synthetic), MP prior", shipped.predict_proba(X, prior), shipped.classes_, y, n_peaks)]
    if args.mp_model.exists():
        mp_model = SpaceGroupClassifier.from_bytes(args.mp_model.read_bytes())
        lines += _rows("MP-trained", mp_model.predict_proba(X), mp_model.classes_, y, n_peaks)
    else:
        print(f"no MP-trained model at {args.mp_model}: its rows are left out")
    few = (n_peaks > 0) & (n_peaks < FEW_PEAKS)
    body = "\n".join([
        "## Measured patterns with few peaks (bench/few_peaks.py)", "",
        f"The {len(y)} readable measured patterns of bench/accuracy.py's set (c) (thin films, most of them textured "
        "and some scanned over a degree or two; IUCr Rietveld powder CIFs; TaCr2O6), by the number of peaks the "
        f"featuriser finds. `spacegroup predict` answers a pattern with no peak with an error, and one with 1 to "
        f"{FEW_PEAKS - 1} peaks ({few.sum()} of these) with a warning, abstaining unless a composition is given "
        "(`tasks.predict.FEW_PEAKS`). Confidence - top-1: how far the answers' mean confidence is above the share "
        "that is right (0 for calibrated answers).", "",
        *lines, "",
        f"Unreadable files left out: {len(skipped)}.",
    ])
    print(body)
    write_section("few_peaks", body)


if __name__ == "__main__":
    main()
