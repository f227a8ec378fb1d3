"""A fresh registry gets the shipped pretrained models as champions, so predictions work offline at once."""

from __future__ import annotations

import logging
from contextlib import contextmanager

from sqlalchemy.engine import Engine

from storage.artifacts import ArtifactStore
from storage.registry import champion, list_models, promote, register_model

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


def bootstrap_pretrained(engine: Engine, store: ArtifactStore) -> list[int]:
    """Register and promote each shipped model whose modality has no champion yet; returns new model ids."""
    if all(champion(engine, m) is not None for m in ("xrd", "formula")):
        return []
    with _bootstrap_lock(store):
        return _bootstrap(engine, store)


def _bootstrap(engine: Engine, store: ArtifactStore) -> list[int]:
    from tasks.pretrained import shipped_models

    added = []
    for shipped in shipped_models():
        if champion(engine, shipped.modality) is not None:
            continue
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
