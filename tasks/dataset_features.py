"""Features of a registry dataset version, cached by its content hash, and its frozen hold-out split."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
from pymatgen.core import Structure

from tasks.datasets import FeatureSet, xrd_feature_set
from tasks.features import XRDPatternFeaturizer

log = logging.getLogger(__name__)
HOLDOUT_MODULUS = 10  # one key in ten, chosen by a hash of it, is never trained on


def is_frozen_holdout(key: str) -> bool:
    """Whether a material (XRD models: ``key`` is its source id) or a reduced formula (formula models) is in the
    frozen hold-out. Stable across dataset versions and sources: in it for good, so evaluations stay comparable."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % HOLDOUT_MODULUS == 0


def material_features(materials, cache_dir: Path, key: str, n_augment: int = 2, seed: int = 0,
                      n_jobs: int = 0, with_reference_lines: bool = False) -> FeatureSet:
    """Measured-like XRD features of ``materials`` (registry rows); ``groups`` holds each row's material id.
    ``with_reference_lines``: also the materials' lines, for the structure-type search's cell refinement.

    Cached in ``cache_dir`` under ``key`` (a content hash) with the feature version: a rerun on the same
    dataset reads the file instead of simulating again.
    """
    from tasks.isotype_refinement import LineTable

    version = XRDPatternFeaturizer.version
    lines_tag = "-lines" if with_reference_lines else ""
    path = Path(cache_dir) / f"features-{key[:24]}-{version}-a{n_augment}-s{seed}{lines_tag}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as data:
            log.info("features from cache %s", path.name)
            if not with_reference_lines:
                return FeatureSet(data["X"], data["y"], data["groups"], version)
            return FeatureSet(data["X"], data["y"], data["groups"], version, LineTable.from_arrays(data),
                              data["line_rows"])
    structures = [Structure.from_dict(json.loads(m.structure_json)) for m in materials]
    labels = [m.space_group_number for m in materials]
    features = xrd_feature_set(structures, labels, n_augment=n_augment, seed=seed, n_jobs=n_jobs,
                               with_reference_lines=with_reference_lines)
    ids = np.array([m.id for m in materials])
    features = FeatureSet(features.X, features.space_group, ids[features.groups], version, features.reference_lines,
                          features.line_rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    lines = {} if features.reference_lines is None else features.reference_lines.to_arrays() | {
        "line_rows": features.line_rows}
    np.savez_compressed(tmp, X=features.X, y=features.space_group, groups=features.groups, **lines)
    tmp.replace(path)  # atomic: a killed run never leaves half a cache file
    return features


def split_frozen_holdout(features: FeatureSet, materials) -> tuple[FeatureSet, FeatureSet]:
    holdout_ids = np.array([m.id for m in materials if is_frozen_holdout(m.source_id)])
    mask = np.isin(features.groups, holdout_ids)
    return features.subset(~mask), features.subset(mask)
