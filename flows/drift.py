"""Drift check (monthly, and after a refresh that changed the data): newest dataset vs the champion's training
data. A report goes to the registry and the Prefect UI; above threshold the retrain deployment is started."""

from __future__ import annotations

import hashlib

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import registry
from storage.engine import session_scope
from storage.materials import dataset_materials, get_dataset, latest_dataset
from storage.registry import champion, load_artifact_bytes
from storage.tables import DriftReport
from tasks.dataset_features import material_features
from tasks.drift import accuracy_drift, compare, drift_markdown
from tasks.features import XRDPatternFeaturizer
from tasks.models import SpaceGroupClassifier
from tasks.training import frozen_synthetic_eval_set

RETRAIN_DEPLOYMENT = "retrain/retrain-monthly"


def _sample(materials, n: int, seed: int = 0):
    if len(materials) <= n:
        return list(materials)
    picks = np.random.default_rng(seed).choice(len(materials), n, replace=False)
    return [materials[i] for i in sorted(picks)]


def _features_of(materials, cache_dir):
    key = hashlib.sha256(",".join(str(m.id) + m.content_hash[:8] for m in materials).encode()).hexdigest()
    return material_features(materials, cache_dir, "drift-" + key, n_augment=1, seed=0)


def _reference_metric(version) -> float | None:
    for key in ("frozen_holdout", "frozen_synthetic"):
        if isinstance(version.metrics.get(key), dict) and "sg_top1" in version.metrics[key]:
            return float(version.metrics[key]["sg_top1"])
    return None


@task(name="measure-drift", cache_policy=NO_CACHE)
def measure_drift(engine, store, settings, dataset, champ):
    current_all = dataset_materials(engine, store, dataset)
    current = _sample(current_all, settings.drift_sample)
    cur = _features_of(current, settings.cache_dir)
    if champ.dataset_version_id is not None and (ref_ds := get_dataset(engine, champ.dataset_version_id)):
        reference = _sample(dataset_materials(engine, store, ref_ds), settings.drift_sample, seed=1)
        ref = _features_of(reference, settings.cache_dir)
    else:
        ref = frozen_synthetic_eval_set()  # what a synthetic champion was judged on
    result = compare(ref.X, ref.space_group, cur.X, cur.space_group, XRDPatternFeaturizer().feature_labels(),
                     settings.drift_ks_threshold, settings.drift_psi_threshold)
    created = _aware(champ.created_at)
    new_ids = {m.id for m in current if _aware(m.first_seen) > created}
    mask = np.isin(cur.groups, list(new_ids))
    model = SpaceGroupClassifier.from_bytes(load_artifact_bytes(store, champ))
    result.accuracy = accuracy_drift(model, cur.X[mask], cur.space_group[mask], _reference_metric(champ),
                                     settings.drift_accuracy_drop)
    return result


def _aware(stamp):
    from datetime import timezone

    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


@task(name="traffic-drift", cache_policy=NO_CACHE)
def traffic_drift(engine, days: int = 30) -> dict:
    """Real traffic: PSI of the space groups the XRD model answered in the last ``days`` vs the ``days`` before
    (reported, not a retrain trigger: a change of what users measure is not a fault of the model)."""
    from datetime import datetime, timedelta, timezone

    from storage.predictions import predicted_space_groups
    from tasks.drift import population_stability_index

    now = datetime.now(timezone.utc)
    recent = predicted_space_groups(engine, "xrd", now - timedelta(days=days), now)
    before = predicted_space_groups(engine, "xrd", now - timedelta(days=2 * days), now - timedelta(days=days))
    psi = population_stability_index(before, recent) if recent and before else None
    return {"window_days": days, "n_recent": len(recent), "n_before": len(before),
            "predicted_space_group_psi": None if psi is None else round(psi, 4)}


@task(name="start-retrain-deployment", cache_policy=NO_CACHE)
def start_retrain(reason: str) -> str:
    from prefect.deployments import run_deployment

    try:
        run = run_deployment(RETRAIN_DEPLOYMENT, timeout=0, tags=["drift"],
                             parameters={}, flow_run_name=f"retrain after drift: {reason[:60]}")
        return f"started flow run {run.id}"
    except Exception as exc:  # no server deployment (e.g. a local one-off run): say so in the report
        return f"not started: {type(exc).__name__}: {str(exc)[:200]}"


@flow(name="drift", log_prints=True)
def drift_flow(dataset_id: int | None = None, trigger_retrain: bool = True) -> dict:
    logger = get_run_logger()
    settings, engine, store = registry()
    champ = champion(engine, "xrd")
    dataset = get_dataset(engine, dataset_id) if dataset_id is not None else latest_dataset(engine)
    if champ is None or dataset is None:
        logger.info("nothing to compare: champion %s, dataset %s", champ and champ.id, dataset and dataset.id)
        return {"drifted": False, "skipped": "no champion or no dataset version yet"}
    result = measure_drift(engine, store, settings, dataset, champ)
    summary = result.as_dict()
    summary["traffic"] = traffic_drift(engine)
    if result.drifted and trigger_retrain:
        summary["retrain"] = start_retrain("; ".join(result.reasons()))
    with session_scope(engine) as session:
        report = DriftReport(modality="xrd", model_version_id=champ.id, dataset_version_id=dataset.id,
                             metrics=summary, drifted=result.drifted)
        session.add(report)
        session.flush()
        summary["report_id"] = report.id
    create_markdown_artifact(key="drift-report", description="drift of the newest data vs the champion's",
                             markdown=drift_markdown(result, f"Drift: dataset {dataset.id} vs champion {champ.id}")
                             + f"\nAPI traffic (XRD answers, last vs previous {summary['traffic']['window_days']} "
                               f"days): {summary['traffic']}\n"
                             + (f"\nRetrain: {summary['retrain']}\n" if "retrain" in summary else ""))
    logger.info("drift %s: %s", "found" if result.drifted else "not found", result.reasons())
    return summary


if __name__ == "__main__":
    drift_flow()
