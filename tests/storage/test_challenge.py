"""Champion/challenger across feature versions: a champion whose features this code no longer makes is not
scored on the new features (its numbers would be meaningless) and gives way to the candidate."""

import numpy as np

from storage.registry import champion, promote, register_model
from tasks.datasets import FeatureSet
from tasks.models import SpaceGroupClassifier
from tasks.pipeline import challenge_champion


def _fitted(feature_version: str, seed: int) -> tuple[SpaceGroupClassifier, FeatureSet]:
    rng = np.random.default_rng(seed)
    classes = np.array([14, 62, 225])
    y = np.repeat(classes, 40)
    X = rng.normal(scale=3.0, size=(3, 5))[np.searchsorted(classes, y)] + rng.normal(size=(120, 5))
    groups = np.arange(120)
    model = SpaceGroupClassifier(feature_version=feature_version, n_estimators=30, max_depth=2).fit(X, y, groups=groups)
    return model, FeatureSet(X, y, groups, feature_version)


def _register(engine, store, model, name):
    return register_model(engine, store, model.to_bytes(), name=name, modality="xrd",
                          feature_version=model.feature_version, parameters={}, metrics={})


def _contest(engine, store, reports_dir, champion_version: str, candidate_version: str):
    """A champion fitted on the evaluation data against a candidate that scores 0 on it."""
    old_model, evaluation = _fitted(champion_version, 0)
    new_model, _ = _fitted(candidate_version, 1)
    old = _register(engine, store, old_model, "old")
    promote(engine, old.id)
    new = _register(engine, store, new_model, "new")
    report = challenge_champion(engine, store, reports_dir, new.id, new_model, {"sg_top1": 0.0}, evaluation,
                                "holdout", margin=0.0, allow_promotion=True)
    return report, old.id, new.id


def test_a_champion_on_the_same_features_is_scored_and_can_win(engine, store, tmp_path):
    report, old_id, _ = _contest(engine, store, tmp_path, "v-same", "v-same")
    assert report.champion_metrics is not None and report.champion_metrics["sg_top1"] > 0.5
    assert not report.promoted and champion(engine, "xrd").id == old_id


def test_a_champion_on_older_features_is_not_scored_and_gives_way(engine, store, tmp_path):
    report, _, new_id = _contest(engine, store, tmp_path, "v-old", "v-new")
    assert report.champion_metrics is None
    assert report.promoted and champion(engine, "xrd").id == new_id
