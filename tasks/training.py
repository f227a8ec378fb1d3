"""Training recipes: data -> features -> hyperparameter search -> fit -> evaluation on frozen sets.

Hyperparameters come from an Optuna (TPE) search on a validation split with early stopping
(``search_hyperparameters``); a run with ``n_trials=0`` reuses the parameters recorded with the current
champion or, for a fresh registry, the shipped model's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tasks.datasets import FeatureSet, xrd_feature_set
from tasks.evaluate import evaluate_probabilities
from tasks.features import XRD_FEATURE_VERSION
from tasks.models import SpaceGroupClassifier
from tasks.synthetic import GeneratorConfig, generate_crystals

log = logging.getLogger(__name__)

SEARCH_SPACE = {
    "max_depth": (4, 9),
    "learning_rate": (0.05, 0.3),
    "colsample_bytree": (0.3, 0.9),
    "min_child_weight": (0.5, 8.0),
    "subsample": (0.6, 1.0),
}
FROZEN_SYNTHETIC_SEED = 20261128  # the frozen synthetic evaluation set: never used for training
# The frozen set keeps the generator settings it was made with, so scores on it stay comparable across retrains.
FROZEN_SYNTHETIC_GENERATOR = GeneratorConfig(sampling="wyckoff-rows", flatten=0.3, max_atoms=32, prototype_fraction=0.0)


@dataclass
class TrainingResult:
    model: SpaceGroupClassifier
    validation_metrics: dict
    n_rows: int
    n_structures: int
    search: list[dict] = field(default_factory=list)


def synthetic_xrd_features(n_crystals: int, n_augment: int, seed: int, n_jobs: int = 0,
                           progress: Callable[[str, int], None] | None = None, use_cache: bool = True,
                           config: GeneratorConfig = GeneratorConfig(), with_lines: bool = False) -> FeatureSet:
    """Synthetic crystals (PyXtal, MP Wyckoff statistics) rendered as measured-like patterns.

    ``with_lines`` also keeps the crystals' lines (``reference_lines``, each row's crystal in ``line_rows``), which a
    model with the structure-type search refines its neighbours' cells with. The result is fully determined by
    ``(n_crystals, n_augment, seed)``, the generator's settings (``config.tag``) and the feature version, so it is
    cached under ``$SPACEGROUP_HOME/cache`` by those keys.
    """
    from tasks.isotype_refinement import LINES_VERSION, LineTable
    from tasks.settings import get_settings

    settings = get_settings()
    path = settings.cache_dir / f"synthetic-{XRD_FEATURE_VERSION}-{config.tag}-{n_crystals}x{n_augment}-seed{seed}.npz"
    if use_cache and path.exists():
        with np.load(path, allow_pickle=False) as data:
            if not with_lines or ("lines_version" in data and str(data["lines_version"]) == LINES_VERSION):
                log.info("synthetic features from cache %s", path)
                lines = LineTable.from_arrays(data) if with_lines else None
                return FeatureSet(data["X"], data["y"], data["g"], XRD_FEATURE_VERSION, lines,
                                  data["g"] if with_lines else None)
    features = _make_synthetic_xrd_features(n_crystals, n_augment, seed, n_jobs, progress, config, with_lines)
    if use_cache:
        settings.ensure_dirs()
        tmp = path.with_suffix(".tmp.npz")
        lines = features.reference_lines.to_arrays() | {"lines_version": np.array(LINES_VERSION)} if with_lines else {}
        np.savez_compressed(tmp, X=features.X, y=features.space_group, g=features.groups, **lines)
        tmp.replace(path)
    return features


def synthetic_dataset_description(n_crystals: int, n_augment: int, seed: int, config: GeneratorConfig) -> str:
    """How a synthetic training set was made, as recorded with the models trained on it."""
    types = (f"; {config.prototype_fraction:.0%} built from AFLOW structure types instead, "
             f"{config.subgroup_probability:.0%} of those lowered to a subgroup"
             if config.prototype_fraction > 0 else "")
    return (f"{n_crystals} synthetic PyXtal crystals (MP Wyckoff statistics, {config.sampling} sampling, "
            f"flatten {config.flatten:g}, at most {config.max_atoms} atoms per cell{types}) x {n_augment} "
            f"measured-like patterns, seed {seed}")


def _make_synthetic_xrd_features(n_crystals, n_augment, seed, n_jobs, progress, config,
                                 with_lines: bool = False) -> FeatureSet:
    crystals = []
    for crystal in generate_crystals(n_crystals, seed=seed, config=config, n_jobs=n_jobs):
        crystals.append(crystal)
        if progress:
            progress("crystals", 1)
    return xrd_feature_set([c.structure for c in crystals], [c.space_group_number for c in crystals],
                           n_augment=n_augment, seed=seed, n_jobs=n_jobs, with_reference_lines=with_lines,
                           progress=(lambda n: progress("patterns", n)) if progress else None)


def search_hyperparameters(features: FeatureSet, n_trials: int, seed: int = 0, n_estimators: int = 200,
                           modality: str = "xrd") -> tuple[dict, list[dict]]:
    """Optuna TPE search maximising validation top-1 accuracy of the boosters (a fifth of the groups held out);
    returns (best params, all trials)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from sklearn.model_selection import GroupShuffleSplit

    train, valid = next(GroupShuffleSplit(n_splits=1, test_size=0.2, random_state=seed)
                        .split(features.X, groups=features.groups))
    history = []

    def objective(trial):
        params = {
            "max_depth": trial.suggest_int("max_depth", *SEARCH_SPACE["max_depth"]),
            "learning_rate": trial.suggest_float("learning_rate", *SEARCH_SPACE["learning_rate"], log=True),
            "colsample_bytree": trial.suggest_float("colsample_bytree", *SEARCH_SPACE["colsample_bytree"]),
            "min_child_weight": trial.suggest_float("min_child_weight", *SEARCH_SPACE["min_child_weight"], log=True),
            "subsample": trial.suggest_float("subsample", *SEARCH_SPACE["subsample"]),
        }
        model = SpaceGroupClassifier(modality=modality, feature_version=features.feature_version,
                                     n_estimators=n_estimators, random_state=seed, **params)
        model.fit(features.X[train], features.space_group[train], groups=features.groups[train])
        proba = model.predict_proba(features.X[valid])
        score = evaluate_probabilities(proba, model.classes_, features.space_group[valid])["sg_top1"]
        history.append(params | {"sg_top1": score, "best_iteration": model.best_iteration_})
        return score

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials)
    return dict(study.best_params), history


def fit_and_validate(features: FeatureSet, params: dict, seed: int = 0, n_estimators: int = 400,
                     modality: str = "xrd") -> TrainingResult:
    """Fit on 90 % of the groups (internal early-stopping/calibration splits); metrics on the other 10 %."""
    return fit_and_validate_split(features, params, seed, n_estimators, modality)[0]


def training_and_held_out_rows(features: FeatureSet, seed: int = 0,
                               test_size: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The rows :func:`fit_and_validate` fits on and holds out (by group, seeded by ``seed``)."""
    from sklearn.model_selection import GroupShuffleSplit

    return next(GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed + 7)
                .split(features.X, groups=features.groups))


def fit_model(features: FeatureSet, params: dict, seed: int = 0, n_estimators: int = 400,
               modality: str = "xrd") -> SpaceGroupClassifier:
    """A model fitted on every row of ``features`` (its early stopping and calibration split off inside ``fit``),
    for callers that hold out their own evaluation rows."""
    model = SpaceGroupClassifier(modality=modality, feature_version=features.feature_version,
                                 n_estimators=n_estimators, random_state=seed, **params)
    lines = features.reference_lines if model.structure_type_search and modality == "xrd" else None
    model.fit(features.X, features.space_group, groups=features.groups, reference_lines=lines,
              line_rows=None if lines is None else features.line_rows)
    return model


def fit_and_validate_split(features: FeatureSet, params: dict, seed: int = 0, n_estimators: int = 400,
                           modality: str = "xrd", test_size: float = 0.1) -> tuple[TrainingResult, FeatureSet]:
    """As :func:`fit_and_validate`, also returning the held-out rows (no group on both sides)."""
    train, hold = training_and_held_out_rows(features, seed, test_size)
    model = fit_model(features.subset(train), params, seed, n_estimators, modality)
    metrics = evaluate_probabilities(model.predict_proba(features.X[hold]), model.classes_, features.space_group[hold])
    held_out = features.subset(np.isin(np.arange(len(features)), hold))
    return TrainingResult(model, metrics, len(features), len(np.unique(features.groups))), held_out


def frozen_synthetic_eval_set(n_crystals: int | None = None, n_augment: int = 2, n_jobs: int = 0) -> FeatureSet:
    """The frozen synthetic evaluation set (fixed seed, cached by feature version under the home directory)."""
    from tasks.settings import get_settings

    settings = get_settings()
    n_crystals = n_crystals or settings.frozen_eval_crystals
    settings.ensure_dirs()
    path = settings.cache_dir / f"frozen-synthetic-{XRD_FEATURE_VERSION}-{FROZEN_SYNTHETIC_SEED}-{n_crystals}x{n_augment}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as data:
            return FeatureSet(data["X"], data["y"], data["g"], XRD_FEATURE_VERSION)
    features = _make_synthetic_xrd_features(n_crystals, n_augment, FROZEN_SYNTHETIC_SEED, n_jobs, None,
                                            FROZEN_SYNTHETIC_GENERATOR)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, X=features.X, y=features.space_group, g=features.groups)
    tmp.replace(path)
    return features
