"""Refresh of the whole shared Materials Project set (36.7k structures) through the MP stand-in and the real
mp-api client, then a no-change rerun, then a formula challenger trained on the refreshed dataset (what the
monthly retrain does) against the shipped formula model; results to BENCHMARKS.md.

    python bench/refresh.py [--limit N] [--workers 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import REPO, require_shared, write_section  # noqa: E402


def documents(limit: int | None, workers: int) -> list[dict]:
    from tests.support.mp_standin import load_cgcnn_documents

    cache = REPO / "bench" / "out" / f"mp_documents_{limit or 'all'}.json.gz"
    if cache.exists():
        with gzip.open(cache, "rt") as fh:
            return json.load(fh)
    docs = load_cgcnn_documents(require_shared("cgcnn_mp_crysxpp"), limit=limit, workers=workers)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(cache, "wt") as fh:
        json.dump(docs, fh)
    return docs


def formula_retrain(engine, store, tmp: Path, dataset_id: int) -> list[str]:
    """A formula challenger on the refreshed dataset with the shipped model's recipe (seed, rounds), judged against
    the shipped formula model on the dataset's frozen hold-out formulas, which neither trained on."""
    from storage.materials import get_dataset
    from tasks.pipeline import FORMULA_EVALUATION, train_formula_on_dataset_and_maybe_promote
    from tasks.pretrained import shipped_models

    shipped = {m.modality: m for m in shipped_models()}["formula"]
    seed = int(shipped.metadata["parameters"]["model"]["random_state"])
    rounds = int(shipped.metadata["parameters"]["model"]["n_estimators"])
    start = time.perf_counter()
    report, _ = train_formula_on_dataset_and_maybe_promote(engine, store, tmp / "reports",
                                                           get_dataset(engine, dataset_id), seed=seed,
                                                           n_estimators=rounds)
    seconds = time.perf_counter() - start
    print(f"formula retrain: {seconds:.0f} s, promoted {report.promoted}", flush=True)
    keys = ("n", "sg_top1", "sg_top5", "crystal_system_accuracy", "extinction_group_accuracy", "ece")
    lines = [f"Then the formula retrain of the monthly flow on that dataset (`tasks.pipeline."
             f"train_formula_on_dataset_and_maybe_promote`, the shipped model's seed {seed} and {rounds} rounds): "
             f"features, fit and the contest took {seconds:.0f} s. Both models are scored on the dataset's frozen "
             f"hold-out formulas ({FORMULA_EVALUATION}), which neither trained on:", "",
             "| model | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 1)]
    for name, metrics in (("challenger (trained on the refreshed dataset)", report.candidate_metrics),
                          ("champion (the shipped formula model)", report.champion_metrics or {})):
        lines.append(f"| {name} | " + " | ".join(
            "-" if metrics.get(k) is None else (f"{metrics[k]:d}" if k == "n" else f"{metrics[k]:.3f}")
            for k in keys) + " |")
    lines += ["", f"Promoted: {'yes' if report.promoted else 'no'} (the challenger must beat the champion's SG top-1 "
              "by more than the configured margin, 0 by default)."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    start = time.perf_counter()
    docs = documents(args.limit, args.workers)
    print(f"{len(docs)} documents ready in {time.perf_counter() - start:.0f} s", flush=True)

    from storage.artifacts import ArtifactStore
    from storage.engine import make_engine, migrate
    from tasks.refresh import refresh_from_source
    from tasks.sources import MaterialsProjectSource
    from tests.support.mp_standin import MPStandIn

    with tempfile.TemporaryDirectory() as tmp, MPStandIn(docs) as server:
        engine = make_engine(f"sqlite:///{tmp}/registry.sqlite")
        migrate(engine)
        store = ArtifactStore(Path(tmp) / "artifacts")
        source = MaterialsProjectSource("0123456789abcdef0123456789abcdef", endpoint=server.endpoint)
        full = refresh_from_source(engine, store, source, n_jobs=args.workers)
        print(f"full refresh: {full.seconds:.0f} s {full.counts}", flush=True)
        n_requests_full = len(server.requests)
        rerun = refresh_from_source(engine, store, source, n_jobs=args.workers)
        print(f"no-change rerun: {rerun.seconds:.1f} s {rerun.counts}", flush=True)
        n_requests_rerun = len(server.requests) - n_requests_full
        formula_lines = formula_retrain(engine, store, Path(tmp), full.dataset_version_id)

    n = len(docs)
    ratio = rerun.seconds / full.seconds
    body = f"""## Refresh of the shared MP set through the stand-in (issue 5)

Real mp-api `MPRester` against the Materials Project stand-in on 127.0.0.1, serving {n} real MP structures
(CGCNN set). Listing of (id, last_updated, deprecated) in pages of 5,000, then full documents in chunks of 500 ids;
validation and spglib labelling on {args.workers} processes; SQLite registry.

| run | time (s) | materials/s | added | unchanged | quarantined | dataset version | HTTP requests |
|---|---:|---:|---:|---:|---:|---|---:|
| full refresh | {full.seconds:.1f} | {n / full.seconds:.0f} | {full.counts['added']} | {full.counts['unchanged']} | {full.counts['quarantined']} | {full.dataset_version_id} (new) | {n_requests_full} |
| no-change rerun | {rerun.seconds:.2f} | {n / rerun.seconds:.0f} | {rerun.counts['added']} | {rerun.counts['unchanged']} | {rerun.counts['quarantined']} | {rerun.dataset_version_id} ({'new' if rerun.dataset_created else 'unchanged'}) | {n_requests_rerun} |

No-change rerun / full refresh = **{ratio:.3f}** (target < 0.10). The rerun fetches only the listing; nothing is
re-validated. Quarantined records are re-listed each run (they never reached the registry) but not re-stored.

""" + "\n".join(formula_lines) + "\n"
    write_section("refresh", body)
    print(body)


if __name__ == "__main__":
    main()
