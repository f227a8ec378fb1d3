"""A fresh registry gets the shipped pretrained models as champions, so predictions work offline at once."""

from __future__ import annotations

import logging
from contextlib import contextmanager

from sqlalchemy.engine import Engine

from storage.artifacts import ArtifactStore
from storage.registry import champion, is_servable, list_models, promote, register_model

log = logging.getLogger(__name__)


@contextmanager
def _bootstrap_lock(store: ArtifactStore):
    """Processes starting together (gunicorn workers, flows) must not register the shipped models twice."""
    try:
        import fcntl
    except ImportError:  # not POSIX: the unique champion index still keeps the registry consistent
        yield
        return
    path = store.lock_path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _usable_champion(engine: Engine, modality: str) -> bool:
    """A champion exists and uses the features this code makes (one on an older feature set cannot answer)."""
    from tasks.feature_versions import FEATURE_VERSIONS

    current = champion(engine, modality)
    return current is not None and is_servable(current, FEATURE_VERSIONS)


def bootstrap_pretrained(engine: Engine, store: ArtifactStore) -> list[int]:
    """Register and promote each shipped model whose modality has no usable champion: none yet, or one trained on
    another feature version (after an upgrade that changed the features); returns new model ids."""
    if all(_usable_champion(engine, m) for m in ("xrd", "formula")):
        return []
    with _bootstrap_lock(store):
        return _bootstrap(engine, store)


def _bootstrap(engine: Engine, store: ArtifactStore) -> list[int]:
    from tasks.feature_versions import FEATURE_VERSIONS
    from tasks.pretrained import shipped_models

    added = []
    for shipped in shipped_models():
        outdated = champion(engine, shipped.modality)
        if outdated is not None and is_servable(outdated, FEATURE_VERSIONS):
            continue
        if shipped.metadata["feature_version"] != FEATURE_VERSIONS[shipped.modality]:
            log.warning("shipped %s model %s uses features %s, this code makes %s: not bootstrapped", shipped.modality,
                        shipped.name, shipped.metadata["feature_version"], FEATURE_VERSIONS[shipped.modality])
            continue
        if outdated is not None:
            log.warning("%s champion %d uses features %s, this code makes %s: the shipped model replaces it "
                        "(the old one is archived)", shipped.modality, outdated.id, outdated.feature_version,
                        shipped.metadata["feature_version"])
        existing = [m for m in list_models(engine, shipped.modality) if m.artifact_sha256 == shipped.metadata["sha256"]]
        if existing:
            version = existing[0]
        else:
            meta = shipped.metadata
            version = register_model(
                engine, store, shipped.artifact, name=shipped.name, modality=shipped.modality,
                feature_version=meta["feature_version"], parameters=meta.get("parameters", {}),
                metrics=meta.get("metrics", {}), dataset_description=meta.get("dataset"),
            )
        promote(engine, version.id)
        log.info("bootstrapped pretrained %s model %s as champion (id %d)", shipped.modality, shipped.name, version.id)
        added.append(version.id)
    return added
