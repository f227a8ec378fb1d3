"""Materials, quarantine and dataset versions in the registry: idempotent upserts and content-addressed snapshots."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from storage.artifacts import ArtifactStore
from storage.engine import session_scope
from storage.tables import DatasetVersion, Material, ModelVersion, QuarantinedRecord, utcnow
from tasks.ingest import RejectedRecord, ValidRecord


@dataclass
class UpsertCounts:
    added: int = 0
    updated: int = 0
    deprecated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    label_disagreements: int = 0
    duplicates_in_batch: int = 0

    def add(self, other: "UpsertCounts") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass
class DatasetSnapshot:
    version: DatasetVersion
    created: bool
    label_distribution: dict = field(default_factory=dict)


def known_state(engine: Engine, source: str) -> tuple[dict[str, datetime | None], dict[str, bool]]:
    """Source id -> (last update, deprecated) of what the registry already holds from ``source``."""
    with Session(engine) as session:
        rows = session.execute(
            select(Material.source_id, Material.last_updated, Material.deprecated).where(Material.source == source)
        ).all()
    return {r[0]: r[1] for r in rows}, {r[0]: bool(r[2]) for r in rows}


def upsert_chunk(engine: Engine, valid: list[ValidRecord], rejected: list[RejectedRecord]) -> UpsertCounts:
    """Insert new materials, update changed ones, quarantine rejects: all of a chunk in one transaction."""
    counts = UpsertCounts()
    by_id: dict[tuple[str, str], ValidRecord] = {}
    for record in valid:
        key = (record.source, record.source_id)
        if key in by_id:
            counts.duplicates_in_batch += 1
        by_id[key] = record  # the last delivered copy wins
    with session_scope(engine) as session:
        for source in {k[0] for k in by_id}:
            ids = [k[1] for k in by_id if k[0] == source]
            existing = {}
            for start in range(0, len(ids), 500):
                for m in session.execute(select(Material).where(Material.source == source,
                                                                Material.source_id.in_(ids[start:start + 500]))).scalars():
                    existing[m.source_id] = m
            for sid in ids:
                record = by_id[(source, sid)]
                counts.label_disagreements += int(record.label_disagrees)
                current = existing.get(sid)
                if current is None:
                    session.add(_material_from(record))
                    counts.added += 1
                    counts.deprecated += int(record.deprecated)
                elif current.content_hash == record.content_hash:
                    counts.unchanged += 1
                    if record.last_updated and current.last_updated != record.last_updated:
                        current.last_updated = record.last_updated  # newer stamp, same crystal
                else:
                    if record.deprecated and not current.deprecated:
                        counts.deprecated += 1
                    else:
                        counts.updated += 1
                    _update_material(current, record)
        for reject in rejected:
            seen = session.execute(select(QuarantinedRecord.id).where(
                QuarantinedRecord.source == reject.source, QuarantinedRecord.source_id == reject.source_id,
                QuarantinedRecord.reason == reject.reason)).first()
            if seen is None:  # the same bad record re-sent is not a new problem
                session.add(QuarantinedRecord(source=reject.source, source_id=reject.source_id, reason=reject.reason,
                                              payload=reject.payload))
                counts.quarantined += 1
    return counts


def _material_from(record: ValidRecord) -> Material:
    material = Material(source=record.source, source_id=record.source_id, formula=record.formula,
                        reduced_formula=record.reduced_formula, structure_json=record.structure_json,
                        space_group_number=record.space_group_number, crystal_system=record.crystal_system,
                        extinction_group=record.extinction_group, source_space_group=record.source_space_group,
                        label_disagrees=record.label_disagrees, content_hash=record.content_hash,
                        deprecated=record.deprecated, theoretical=record.theoretical)
    if record.last_updated is not None:
        material.last_updated = record.last_updated
    return material


def _update_material(material: Material, record: ValidRecord) -> None:
    for name in ("formula", "reduced_formula", "structure_json", "space_group_number", "crystal_system",
                 "extinction_group", "source_space_group", "label_disagrees", "content_hash", "deprecated",
                 "theoretical"):
        setattr(material, name, getattr(record, name))
    material.last_updated = record.last_updated or utcnow()


def dataset_rows(engine: Engine, source: str) -> list[tuple[int, str, str, int]]:
    """(id, source id, content hash, space group) of the live (not deprecated) materials of ``source``."""
    with Session(engine) as session:
        return [tuple(r) for r in session.execute(
            select(Material.id, Material.source_id, Material.content_hash, Material.space_group_number)
            .where(Material.source == source, Material.deprecated == False)  # noqa: E712
            .order_by(Material.source_id)).all()]


def snapshot_dataset(engine: Engine, store: ArtifactStore, source: str) -> DatasetSnapshot | None:
    """A dataset version of the live materials of ``source``; a new one only when the content changed."""
    rows = dataset_rows(engine, source)
    if not rows:
        return None
    # the source is part of the identity: two sources holding equal crystals are still two datasets
    digest = hashlib.sha256((source + "\n" + "\n".join(f"{sid}:{h}" for _, sid, h, _ in rows)).encode()).hexdigest()
    labels = Counter(str(sg) for *_, sg in rows)
    distribution = dict(sorted(labels.items(), key=lambda kv: int(kv[0])))
    with session_scope(engine) as session:
        found = session.execute(select(DatasetVersion).where(DatasetVersion.content_hash == digest)).scalars().first()
        if found is not None:
            return DatasetSnapshot(found, False, found.label_distribution)
        uri, _ = store.put_bytes(json.dumps([mid for mid, *_ in rows]).encode(), ".json")
        parent = session.execute(select(DatasetVersion.id).where(DatasetVersion.source == source)
                                 .order_by(DatasetVersion.id.desc())).scalars().first()
        version = DatasetVersion(content_hash=digest, source=source, n_materials=len(rows),
                                 label_distribution=distribution, parent_id=parent, material_ids_uri=uri)
        session.add(version)
        session.flush()
        session.refresh(version)
    return DatasetSnapshot(version, True, distribution)


def latest_dataset(engine: Engine, source: str | None = None) -> DatasetVersion | None:
    with Session(engine) as session:
        query = select(DatasetVersion).order_by(DatasetVersion.id.desc())
        if source:
            query = query.where(DatasetVersion.source == source)
        return session.execute(query).scalars().first()


def get_dataset(engine: Engine, dataset_id: int) -> DatasetVersion | None:
    with Session(engine) as session:
        return session.get(DatasetVersion, dataset_id)


def dataset_materials(engine: Engine, store: ArtifactStore, version: DatasetVersion) -> list[Material]:
    """The materials a dataset version froze (by id, verified against the stored id list)."""
    ids = json.loads(store.read_verified(version.material_ids_uri)) if version.material_ids_uri else []
    out: list[Material] = []
    with Session(engine) as session:
        for start in range(0, len(ids), 900):
            out.extend(session.execute(select(Material).where(Material.id.in_(ids[start:start + 900]))).scalars())
    return sorted(out, key=lambda m: m.id)


def _count(engine: Engine, table, source: str | None) -> int:
    with Session(engine) as session:
        query = select(func.count()).select_from(table)
        if source:
            query = query.where(table.source == source)
        return int(session.execute(query).scalar_one())


def quarantine_count(engine: Engine, source: str | None = None) -> int:
    return _count(engine, QuarantinedRecord, source)


def material_count(engine: Engine, source: str | None = None) -> int:
    return _count(engine, Material, source)


def delete_upload(engine: Engine, dataset_id: int) -> DatasetVersion:
    """Remove an uploaded dataset and its materials, unless a model was trained on it."""
    with session_scope(engine) as session:
        version = session.get(DatasetVersion, dataset_id)
        if version is None:
            raise LookupError(f"no dataset with id {dataset_id}")
        if not version.source.startswith("upload:"):
            raise PermissionError(f"dataset {dataset_id} comes from {version.source!r}; only uploads can be deleted")
        used = session.execute(select(ModelVersion.id).where(ModelVersion.dataset_version_id == dataset_id)).first()
        if used is not None:
            raise PermissionError(f"dataset {dataset_id} is the training data of model {used[0]}; it is kept")
        session.execute(delete(Material).where(Material.source == version.source))
        session.execute(delete(QuarantinedRecord).where(QuarantinedRecord.source == version.source))
        session.delete(version)
    return version
