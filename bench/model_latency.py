"""Model latency for small batches: XGBoost's predictor vs the compiled tree walk (tasks/forest.py), one run.

Uses the shipped XRD model, so it runs without ../shared. Also reports in-process single-pattern prediction
(features + model) on the example patterns shipped in the repository.

    python bench/model_latency.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import write_section


def best_ms(fn, repeats: int = 7, inner: int = 20) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t) / inner * 1e3)
    return float(np.median(times))


def main() -> None:
    import xgboost as xgb

    from tasks.forest import CompiledForest
    from tasks.models import COMPILED_FOREST_MAX_ROWS, SpaceGroupClassifier
    from tasks.predict import LoadedModel, Predictor
    from tasks.features import XRD_FEATURE_VERSION
    from tasks.pretrained import shipped_models
    from tasks.patterns import PowderPattern
    from tasks.readers import read_pattern

    shipped = {m.name: m for m in shipped_models()}["xrd_default"]
    model = SpaceGroupClassifier.from_bytes(shipped.artifact).prepare_small_batches()  # as the API does
    n_iter = model.best_iteration_ + 1
    forest = CompiledForest(model.booster_, n_iter)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, model.n_features_in_)).astype(np.float32)

    def xgb_margins(rows):
        return model.booster_.predict(xgb.DMatrix(rows, missing=np.nan), output_margin=True,
                                      iteration_range=(0, n_iter))

    lines = ["## Model latency for small batches (bench/model_latency.py)", "",
             f"Shipped XRD model: {len(forest.roots)} trees ({n_iter} rounds x {forest.n_classes} classes), "
             "median of 7 x 20 calls.", "",
             "| rows | XGBoost predict (ms) | compiled tree walk (ms) | ratio |", "|---|---|---|---|"]
    for rows in (1, 2, 4, 8, 16):
        t_xgb = best_ms(lambda: xgb_margins(X[:rows]))
        t_np = best_ms(lambda: forest.margins(X[:rows]))
        lines.append(f"| {rows} | {t_xgb:.2f} | {t_np:.2f} | {t_np / t_xgb:.2f} |")
    t = time.perf_counter()
    CompiledForest(model.booster_, n_iter)
    t_build = time.perf_counter() - t
    lines += ["", f"Once `prepare_small_batches()` has run (the API does it at start-up; it took {t_build:.2f} s "
              f"here), `SpaceGroupClassifier` walks the trees in compiled code up to {COMPILED_FOREST_MAX_ROWS} rows and "
              "calls XGBoost above; one-shot commands skip it."]

    predictor = Predictor(LoadedModel(model, None, "pretrained", XRD_FEATURE_VERSION))
    examples = sorted((Path(__file__).resolve().parents[1] / "tasks" / "examples").glob("*.xy"))
    patterns = [read_pattern(p) for p in examples]
    single = []
    for _ in range(30):
        for pattern in patterns:
            t = time.perf_counter()
            predictor.predict_pattern(pattern)
            single.append((time.perf_counter() - t) * 1e3)
    features = [best_ms(lambda: predictor._xrd_featurizer.featurize_array(p), 3, 10) for p in patterns]
    lines += ["", f"In-process prediction of the {len(patterns)} shipped example patterns, one at a time "
              f"({len(single)} calls): p50 {np.percentile(single, 50):.2f} ms, p95 {np.percentile(single, 95):.2f} ms "
              f"(features alone: {np.mean(features):.2f} ms). Target (issue 4): p50 ≤ 5 ms: "
              f"**{'met' if np.percentile(single, 50) <= 5 else 'not met'}**."]
    # 1,200 distinct patterns (the examples with 1 % counting noise), so that shipping them to worker processes
    # costs what it would for real files; the median of 3 calls
    rng = np.random.default_rng(0)
    batch = [PowderPattern(p.two_theta_deg, p.intensity * (1 + 0.01 * rng.standard_normal(len(p.intensity))),
                           p.wavelength_angstrom) for p in (patterns * 400)[:1200]]
    rates = {}
    for n_jobs in (1, 0):
        batch_predictor = Predictor(LoadedModel(model, None, "pretrained", XRD_FEATURE_VERSION), n_jobs=n_jobs)
        batch_predictor.predict_patterns(batch[:256], ["x"] * 256)  # start the worker processes
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            batch_predictor.predict_patterns(batch, ["x"] * len(batch))
            runs.append(len(batch) / (time.perf_counter() - t))
        rates[n_jobs] = float(np.median(runs))
        batch_predictor.close()
    import os

    lines += ["", f"Batch of {len(batch):,} distinct patterns in one call (median of 3): {rates[1]:.0f} patterns/s in one process, "
              f"{rates[0]:.0f} patterns/s with featurisation in {os.cpu_count()} worker processes (ratio "
              f"{rates[0] / rates[1]:.2f}). Target (issue 4): ≥ 1,000 patterns/s on 2 cores: "
              f"**{'met' if rates[0] >= 1000 else 'not met'}**."]
    lines += ["", _with_composition(model, patterns)]
    write_section("model_latency", "\n".join(lines))
    print("\n".join(lines))


def _with_composition(model, patterns) -> str:
    """In-process p50 of a pattern answered with its composition (``--composition``, tasks/combine.py), the
    formula model prepared as the API prepares it: each composition new to the predictor, and repeated."""
    from tasks.features import FORMULA_FEATURE_VERSION, XRD_FEATURE_VERSION
    from tasks.models import SpaceGroupClassifier
    from tasks.predict import LoadedModel, Predictor
    from tasks.pretrained import shipped_models

    formula = {m.name: m for m in shipped_models()}["formula_default"]
    formula_model = SpaceGroupClassifier.from_bytes(formula.artifact).prepare_small_batches()
    predictor = Predictor(LoadedModel(model, None, "pretrained", XRD_FEATURE_VERSION),
                          LoadedModel(formula_model, None, "formula_default", FORMULA_FEATURE_VERSION))
    # distinct compositions (first sight: the formula model answers) and the same ones again (kept answers)
    compositions = [f"{a}{b}O{n}" for a in ("Ti", "Zr", "Sn", "Ge", "Mn") for b in ("Ca", "Sr", "Ba") for n in (2, 3)]
    p50 = {}
    for label, sequence in (("new", compositions), ("repeated", compositions)):
        times = []
        for i, composition in enumerate(sequence):
            t = time.perf_counter()
            predictor.predict_pattern(patterns[i % len(patterns)], "x", composition=composition)
            times.append((time.perf_counter() - t) * 1e3)
        p50[label] = float(np.percentile(times, 50))
    return (f"With a composition (`--composition`, {len(compositions)} calls each): p50 {p50['new']:.2f} ms for a "
            f"composition new to the predictor (the formula model answers it too), {p50['repeated']:.2f} ms for one it "
            f"has answered before (kept). Target p50 ≤ 5 ms: **{'met' if p50['new'] <= 5 else 'not met'}**.")


if __name__ == "__main__":
    main()
