"""One refresh of the registry from a source: fetch what changed, validate, label, upsert, snapshot.

Each chunk is committed on its own (upserts are idempotent), and the dataset version is written last, in one
transaction: a refresh killed at any point leaves whole materials and no partial dataset version, and the
rerun only fetches what is still missing.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlmodel import Session

from storage.artifacts import ArtifactStore
from storage.materials import UpsertCounts, known_state, snapshot_dataset, upsert_chunk
from storage.tables import QuarantinedRecord
from tasks.crystallography import CRYSTAL_SYSTEMS, space_group_type
from tasks.ingest import validate_chunk
from tasks.sources import Source

log = logging.getLogger(__name__)


@dataclass
class RefreshReport:
    source: str
    counts: dict
    dataset_version_id: int | None
    dataset_created: bool
    n_materials: int
    label_distribution: dict = field(default_factory=dict)
    quarantine_reasons: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return self.dataset_created


def _validate(args):
    records, max_sites = args
    return validate_chunk(records, max_sites)


def refresh_from_source(engine, store: ArtifactStore, source: Source, max_sites: int = 500, n_jobs: int = 0,
                        progress=None) -> RefreshReport:
    start = time.perf_counter()
    known, deprecated = known_state(engine, source.name)
    totals = UpsertCounts()
    chunks = source.fetch(known, deprecated)
    workers = (os.cpu_count() or 1) if n_jobs == 0 else n_jobs
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            # validation (parsing + spglib) is the costly part; the database writes stay in this process
            outcomes = pool.map(_validate, ((chunk, max_sites) for chunk in chunks))
            for valid, rejected in outcomes:
                _commit(engine, totals, valid, rejected, progress)
    else:
        for chunk in chunks:
            valid, rejected = validate_chunk(chunk, max_sites)
            _commit(engine, totals, valid, rejected, progress)
    snapshot = snapshot_dataset(engine, store, source.name)
    reasons = _quarantine_reasons(engine, source.name) if totals.quarantined else {}
    report = RefreshReport(
        source=source.name, counts=totals.as_dict(),
        dataset_version_id=snapshot.version.id if snapshot else None,
        dataset_created=bool(snapshot and snapshot.created),
        n_materials=snapshot.version.n_materials if snapshot else 0,
        label_distribution=snapshot.label_distribution if snapshot else {},
        quarantine_reasons=reasons, seconds=time.perf_counter() - start,
    )
    log.info("refresh of %s: %s; dataset %s (%s) in %.1f s", source.name, report.counts, report.dataset_version_id,
             "new" if report.dataset_created else "unchanged", report.seconds)
    return report


def _commit(engine, totals: UpsertCounts, valid, rejected, progress) -> None:
    totals.add(upsert_chunk(engine, valid, rejected))
    if progress:
        progress(len(valid) + len(rejected))


def _quarantine_reasons(engine, source: str, limit: int = 10) -> dict:
    with Session(engine) as session:
        reasons = session.execute(select(QuarantinedRecord.reason).where(QuarantinedRecord.source == source)).scalars()
        # group by the reason's first clause so numbers inside messages do not split the groups
        return dict(Counter(r.split(";")[0].split("(")[0].strip()[:120] for r in reasons).most_common(limit))


def crystal_system_distribution(label_distribution: dict) -> dict:
    counts = Counter()
    for sg, n in label_distribution.items():
        counts[space_group_type(int(sg)).crystal_system] += n
    return {system: counts.get(system, 0) for system in CRYSTAL_SYSTEMS}


def refresh_markdown(report: RefreshReport) -> str:
    c = report.counts
    lines = [
        f"# Refresh of `{report.source}`", "",
        "| added | updated | deprecated | unchanged | quarantined | label disagreements |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {c['added']} | {c['updated']} | {c['deprecated']} | {c['unchanged']} | {c['quarantined']} | "
        f"{c['label_disagreements']} |", "",
        f"Dataset version: **{report.dataset_version_id}** ({'new' if report.dataset_created else 'unchanged'}), "
        f"{report.n_materials} live materials, {report.seconds:.1f} s.", "",
    ]
    if report.label_distribution:
        lines += ["## Crystal systems", "", "| crystal system | materials |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in crystal_system_distribution(report.label_distribution).items()]
        top = sorted(report.label_distribution.items(), key=lambda kv: -kv[1])[:15]
        lines += ["", "## Most common space groups", "", "| space group | materials |", "|---|---:|"]
        lines += [f"| {sg} {space_group_type(int(sg)).symbol} | {n} |" for sg, n in top]
    if report.quarantine_reasons:
        lines += ["", "## Quarantine reasons", "", "| reason | records |", "|---|---:|"]
        lines += [f"| {reason} | {n} |" for reason, n in report.quarantine_reasons.items()]
    return "\n".join(lines) + "\n"
