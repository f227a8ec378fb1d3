"""Synthetic crystals and their measured-like XRD features, generated on a Dask cluster.

The flow's tasks run through prefect-dask's ``DaskTaskRunner``: on the cluster at ``SPACEGROUP_DASK_ADDRESS``
(e.g. ``tcp://scheduler:8786``) when set, otherwise on a LocalCluster of this machine's cores. The result is the
same feature file ``spacegroup train`` and the retrain flow read from the cache.
"""

from __future__ import annotations

import os

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect_dask import DaskTaskRunner

from flows.common import registry
from tasks.datasets import FeatureSet, _augmented_features_chunk
from tasks.features import XRDPatternFeaturizer
from tasks.synthetic import GeneratorConfig, _generate_chunk, dedup_key


def dask_task_runner(address: str | None = None) -> DaskTaskRunner:
    address = address or os.environ.get("SPACEGROUP_DASK_ADDRESS") or None
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": os.cpu_count() or 1, "threads_per_worker": 1,
                                          "processes": True, "dashboard_address": None})


@task(name="generate-crystals-chunk", cache_policy=NO_CACHE)
def generate_chunk(start: int, stop: int, seed: int) -> list[tuple[dict, int, tuple]]:
    crystals = _generate_chunk((range(start, stop), seed, GeneratorConfig()))
    return [(c.structure.as_dict(), c.space_group_number, dedup_key(c)) for c in crystals]


@task(name="featurize-chunk", cache_policy=NO_CACHE)
def featurize_chunk(items: list[tuple[int, dict]], n_augment: int, seed: int) -> list[tuple[int, np.ndarray]]:
    from pymatgen.core import Structure

    return _augmented_features_chunk(([(i, Structure.from_dict(d)) for i, d in items], n_augment, seed))


@flow(name="synthetic-features", task_runner=dask_task_runner(), log_prints=True)
def synthetic_features_flow(n_crystals: int = 200, n_augment: int = 4, seed: int = 0, chunk_size: int = 25) -> dict:
    logger = get_run_logger()
    settings, _, _ = registry()
    # over-draw a little: rejections and duplicates are dropped after the gather
    draws = int(n_crystals * 1.15) + 8
    futures = [generate_chunk.submit(s, min(s + chunk_size, draws), seed) for s in range(0, draws, chunk_size)]
    seen, crystals = set(), []
    for future in futures:
        for structure, label, key in future.result():
            if key not in seen and len(crystals) < n_crystals:
                seen.add(key)
                crystals.append((structure, label))
    labels = np.array([label for _, label in crystals])
    items = list(enumerate(structure for structure, _ in crystals))
    parts = [featurize_chunk.submit(items[s:s + chunk_size], n_augment, seed) for s in range(0, len(items), chunk_size)]
    rows = sorted((pair for part in parts for pair in part.result()), key=lambda pair: pair[0])
    X = np.vstack([r for _, r in rows])
    groups = np.concatenate([np.full(len(r), i) for i, r in rows])
    features = FeatureSet(X, labels[groups], groups, XRDPatternFeaturizer.version)
    path = settings.cache_dir / f"synthetic-dask-{features.feature_version}-{n_crystals}x{n_augment}-seed{seed}.npz"
    np.savez_compressed(path, X=features.X, y=features.space_group, g=features.groups)
    logger.info("%d crystals, %d patterns -> %s", len(crystals), len(features), path)
    return {"n_crystals": len(crystals), "n_patterns": int(len(features)), "n_space_groups": int(len(set(labels))),
            "path": str(path)}


def run_on_dask(address: str | None = None, **parameters) -> dict:
    """Run the flow on the Dask scheduler at ``address`` (or a fresh LocalCluster)."""
    return synthetic_features_flow.with_options(task_runner=dask_task_runner(address))(**parameters)


if __name__ == "__main__":
    synthetic_features_flow()
