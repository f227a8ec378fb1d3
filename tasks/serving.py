"""The champions of the registry as a ready :class:`Predictor` (used by the CLI, the API and batch jobs)."""

from __future__ import annotations

from storage.artifacts import ArtifactStore
from storage.bootstrap import bootstrap_pretrained
from storage.registry import champion, load_artifact_bytes
from tasks.models import SpaceGroupClassifier
from tasks.predict import LoadedModel, Predictor


def champion_ids(engine) -> dict[str, int | None]:
    out = {}
    for modality in ("xrd", "formula"):
        version = champion(engine, modality)
        out[modality] = version.id if version else None
    return out


def load_champion_predictor(engine, store: ArtifactStore, top_k: int = 5, max_sites: int = 500,
                            max_pattern_points: int | None = None, bootstrap: bool = True,
                            model_threads: int | None = None, n_jobs: int = 1,
                            small_batches: bool = False, prior: str = "mp") -> Predictor:
    """Load each modality's champion (verified sha256); a fresh registry gets the shipped models first.

    ``model_threads`` caps XGBoost's threads per prediction call: the API runs one worker process per core, and
    more OpenMP threads than that only spin (measured in bench/api_load.py). ``small_batches`` prepares the
    compiled tree walk for one- and two-row predictions (worth its start-up cost in a long-running service).
    ``prior``: the space-group prior of the answers (``tasks.priors``).
    """
    if bootstrap:
        bootstrap_pretrained(engine, store)
    loaded = {}
    for modality in ("xrd", "formula"):
        version = champion(engine, modality)
        if version is not None:
            model = SpaceGroupClassifier.from_bytes(load_artifact_bytes(store, version))
            if model_threads:
                model.set_threads(model_threads)
            if small_batches:
                model.prepare_small_batches()
            loaded[modality] = LoadedModel(model, version.id, version.name, version.feature_version)
    return Predictor(loaded.get("xrd"), loaded.get("formula"), top_k=top_k, max_sites=max_sites,
                     max_pattern_points=max_pattern_points, n_jobs=n_jobs, prior=prior)
