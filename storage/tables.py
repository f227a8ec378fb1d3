"""Registry tables (SQLModel). Tables only: the engine lives in ``storage.engine``."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Material(SQLModel, table=True):
    """One crystal from a source, with the labels spglib gave it and the source's own label."""

    __table_args__ = (UniqueConstraint("source", "source_id"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    source: str = Field(index=True)
    source_id: str
    formula: str
    reduced_formula: str = Field(index=True)
    structure_json: str = Field(sa_column=Column(Text, nullable=False))
    space_group_number: int = Field(index=True)
    crystal_system: str
    extinction_group: int
    source_space_group: Optional[int] = None
    label_disagrees: bool = False
    content_hash: str = Field(index=True)
    first_seen: datetime = Field(default_factory=utcnow)
    last_updated: datetime = Field(default_factory=utcnow)  # the source's own timestamp when it has one
    deprecated: bool = False
    theoretical: Optional[bool] = None


class QuarantinedRecord(SQLModel, table=True):
    """A record a source sent that failed validation, kept with the reason."""

    id: Optional[int] = Field(default=None, primary_key=True)
    source: str = Field(index=True)
    source_id: Optional[str] = Field(default=None, index=True)
    reason: str
    payload: Optional[str] = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)


class DatasetVersion(SQLModel, table=True):
    """A frozen set of materials, identified by the hash of its content."""

    id: Optional[int] = Field(default=None, primary_key=True)
    content_hash: str = Field(index=True, unique=True)
    source: str
    n_materials: int
    label_distribution: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    parent_id: Optional[int] = Field(default=None, foreign_key="datasetversion.id")
    material_ids_uri: Optional[str] = None
    created_at: datetime = Field(default_factory=utcnow)


class ModelVersion(SQLModel, table=True):
    """A trained model: its artifact, lineage, metrics and stage (candidate, champion, archived)."""

    __table_args__ = (
        Index("ix_modelversion_modality_stage", "modality", "stage"),
        # at most one champion per modality, enforced by the database itself
        Index("uq_modelversion_one_champion", "modality", unique=True,
              postgresql_where=text("stage = 'champion'"), sqlite_where=text("stage = 'champion'")),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str
    modality: str  # xrd | formula
    stage: str = "candidate"  # candidate | champion | archived
    feature_version: str
    dataset_version_id: Optional[int] = Field(default=None, foreign_key="datasetversion.id")
    dataset_description: Optional[str] = None
    artifact_uri: str
    artifact_sha256: str
    parameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)
    promoted_at: Optional[datetime] = None
    previous_champion_id: Optional[int] = None


class EvaluationRun(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    model_version_id: int = Field(foreign_key="modelversion.id", index=True)
    eval_set: str
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)


class DriftReport(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    modality: str
    model_version_id: Optional[int] = Field(default=None, foreign_key="modelversion.id")
    dataset_version_id: Optional[int] = Field(default=None, foreign_key="datasetversion.id")
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    drifted: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class BatchJob(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    status: str = Field(default="queued", index=True)  # queued | running | done | failed
    n_items: int = 0
    n_done: int = 0
    n_failed: int = 0
    error: Optional[str] = None
    callback_url: Optional[str] = None
    callback_status: Optional[str] = None  # sent | failed: <reason> | refused: <reason>
    delivery_id: Optional[str] = Field(default=None, unique=True)
    items_uri: Optional[str] = None  # the submitted items, in the artifact store
    items_sha256: Optional[str] = None
    top_k: int = 5
    created_at: datetime = Field(default_factory=utcnow)
    started_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None


class WebhookDelivery(SQLModel, table=True):
    """A signed incoming webhook already accepted: replays of its signature are refused."""

    id: Optional[int] = Field(default=None, primary_key=True)
    signature: str = Field(unique=True)
    delivery_id: str = Field(index=True)
    job_id: Optional[int] = Field(default=None, foreign_key="batchjob.id")
    received_at: datetime = Field(default_factory=utcnow)


class Prediction(SQLModel, table=True):
    """One answered (or refused) input, recorded for monitoring and drift."""

    # a batch item is answered once, however often its job is rerun
    __table_args__ = (Index("uq_prediction_job_item", "job_id", "item_index", unique=True),)
    id: Optional[int] = Field(default=None, primary_key=True)
    job_id: Optional[int] = Field(default=None, foreign_key="batchjob.id", index=True)
    item_index: Optional[int] = None
    input_hash: str = Field(index=True)
    modality: str
    space_group_number: Optional[int] = None
    crystal_system: Optional[str] = None
    result: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    error: Optional[str] = None
    model_version_id: Optional[int] = Field(default=None, foreign_key="modelversion.id")
    latency_ms: Optional[float] = None
    created_at: datetime = Field(default_factory=utcnow, index=True)


class ApiKey(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    key_hash: str = Field(index=True, unique=True)
    role: str  # user | admin
    label: Optional[str] = None
    created_at: datetime = Field(default_factory=utcnow)
    revoked: bool = False
