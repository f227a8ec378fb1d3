"""Registry operations on model versions: register, list, promote (atomic), roll back, load verified."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from storage.artifacts import ArtifactStore
from storage.engine import session_scope
from storage.tables import EvaluationRun, ModelVersion, utcnow

STAGES = ("candidate", "champion", "archived")


class RegistryError(ValueError):
    """A registry request that cannot be carried out (unknown model, wrong modality ...)."""


class IncompatibleModelError(RegistryError):
    """The model was trained on another feature version than this code makes, so it cannot serve."""


def is_servable(version: ModelVersion, feature_versions: Mapping[str, str] | None) -> bool:
    """Whether ``version`` uses the feature version this code makes for its modality (any, without a mapping)."""
    wanted = (feature_versions or {}).get(version.modality)
    return wanted is None or version.feature_version == wanted


def _check_servable(version: ModelVersion, feature_versions: Mapping[str, str] | None) -> None:
    if not is_servable(version, feature_versions):
        wanted = feature_versions[version.modality]
        raise IncompatibleModelError(
            f"model {version.id} uses features {version.feature_version!r} but this code makes {wanted!r}, so it "
            f"cannot answer; train a new {version.modality} model instead (spacegroup train)")


def register_model(
    engine: Engine, store: ArtifactStore, artifact: bytes, *, name: str, modality: str, feature_version: str,
    parameters: dict, metrics: dict, dataset_version_id: int | None = None, dataset_description: str | None = None,
) -> ModelVersion:
    """Store the artifact and record a new candidate model version."""
    if modality not in ("xrd", "formula"):
        raise RegistryError(f"modality must be 'xrd' or 'formula', got {modality!r}")
    uri, digest = store.put_bytes(artifact, ".npz")
    with session_scope(engine) as session:
        version = ModelVersion(name=name, modality=modality, feature_version=feature_version, artifact_uri=uri,
                               artifact_sha256=digest, parameters=parameters, metrics=metrics,
                               dataset_version_id=dataset_version_id, dataset_description=dataset_description)
        session.add(version)
        session.flush()
        session.refresh(version)
    return version


def get_model(engine: Engine, model_id: int) -> ModelVersion:
    with Session(engine) as session:
        version = session.get(ModelVersion, model_id)
    if version is None:
        raise RegistryError(f"no model version with id {model_id}")
    return version


def list_models(engine: Engine, modality: str | None = None) -> list[ModelVersion]:
    with Session(engine) as session:
        query = select(ModelVersion).order_by(ModelVersion.id)
        if modality:
            query = query.where(ModelVersion.modality == modality)
        return list(session.execute(query).scalars())


def champion(engine: Engine, modality: str) -> ModelVersion | None:
    with Session(engine) as session:
        return session.execute(
            select(ModelVersion).where(ModelVersion.modality == modality, ModelVersion.stage == "champion")
        ).scalars().first()


def promote(engine: Engine, model_id: int, feature_versions: Mapping[str, str] | None = None) -> ModelVersion:
    """Make ``model_id`` the champion of its modality in one transaction; the old champion is archived.

    With ``feature_versions`` (modality -> the version this code makes), a model of another version is refused."""
    with session_scope(engine) as session:
        version = session.get(ModelVersion, model_id)
        if version is None:
            raise RegistryError(f"no model version with id {model_id}")
        _check_servable(version, feature_versions)
        _lock_modality(session, version.modality)
        session.refresh(version)
        current = session.execute(
            select(ModelVersion).where(ModelVersion.modality == version.modality, ModelVersion.stage == "champion")
        ).scalars().all()
        for old in current:
            if old.id != version.id:
                old.stage = "archived"
                version.previous_champion_id = old.id
        session.flush()  # archive first: the one-champion index must never see two
        version.stage = "champion"
        version.promoted_at = utcnow()
        session.flush()
        session.refresh(version)
    return version


def _lock_modality(session: Session, modality: str) -> None:
    """Serialise champion changes of one modality (PostgreSQL advisory lock; SQLite's BEGIN IMMEDIATE does it)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"champion:{modality}"})


def rollback(engine: Engine, modality: str, feature_versions: Mapping[str, str] | None = None) -> ModelVersion:
    """Re-promote the champion's predecessor; the current champion is archived. ``feature_versions`` as in
    :func:`promote`."""
    current = champion(engine, modality)
    if current is None:
        raise RegistryError(f"there is no {modality} champion to roll back")
    if current.previous_champion_id is None:
        raise RegistryError(f"{modality} champion {current.id} has no predecessor to roll back to")
    with session_scope(engine) as session:
        _lock_modality(session, modality)
        previous = session.get(ModelVersion, current.previous_champion_id)
        _check_servable(previous, feature_versions)
        now = session.get(ModelVersion, current.id)
        now.stage = "archived"
        session.flush()
        previous.stage = "champion"
        previous.promoted_at = utcnow()
        session.flush()
        session.refresh(previous)
    return previous


def record_evaluation(engine: Engine, model_id: int, eval_set: str, metrics: dict) -> EvaluationRun:
    with session_scope(engine) as session:
        run = EvaluationRun(model_version_id=model_id, eval_set=eval_set, metrics=metrics)
        session.add(run)
        session.flush()
        session.refresh(run)
    return run


def load_artifact_bytes(store: ArtifactStore, version: ModelVersion) -> bytes:
    """The artifact of ``version``, refused if missing or modified (sha256 checked)."""
    return store.read_verified(version.artifact_uri, version.artifact_sha256)


def should_promote(candidate_metrics: dict, champion_metrics: dict | None, metric: str, margin: float) -> bool:
    """Champion/challenger rule: promote only if the candidate beats the champion by more than ``margin`` on
    ``metric``. A tie keeps the champion: a retrain on unchanged data reproduces it, and swapping it for its twin
    would only churn the registry."""
    if champion_metrics is None or champion_metrics.get(metric) is None:
        return True
    if candidate_metrics.get(metric) is None:
        return False
    return float(candidate_metrics[metric]) > float(champion_metrics[metric]) + margin
