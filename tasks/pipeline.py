"""The end-to-end pipeline the main job runs: train a challenger, evaluate against the champion, promote, predict.

Plain functions (no Prefect): the flows in ``flows/`` and the CLI both call them.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from storage.artifacts import ArtifactStore
from storage.bootstrap import bootstrap_pretrained
from storage.registry import (champion, load_artifact_bytes, promote, record_evaluation, register_model,
                              should_promote)
from tasks.evaluate import evaluate_probabilities, plot_confusion_and_calibration
from tasks.models import SpaceGroupClassifier
from tasks.synthetic import GeneratorConfig
from tasks.training import (fit_and_validate, frozen_synthetic_eval_set, search_hyperparameters,
                            synthetic_dataset_description, synthetic_xrd_features)

log = logging.getLogger(__name__)
PROMOTION_METRIC = "sg_top1"


@dataclass
class PipelineReport:
    candidate_id: int
    champion_id_before: int | None
    promoted: bool
    candidate_metrics: dict
    champion_metrics: dict | None
    plots: dict = field(default_factory=dict)
    n_training_patterns: int = 0
    n_training_crystals: int = 0


def challenge_champion(engine, store: ArtifactStore, reports_dir, candidate_id: int, candidate: SpaceGroupClassifier,
                       candidate_metrics: dict, eval_set, eval_name: str, margin: float,
                       allow_promotion: bool) -> PipelineReport:
    """Score the champion on the candidate's evaluation set, promote the candidate if it wins, plot."""
    record_evaluation(engine, candidate_id, eval_name, candidate_metrics)
    current = champion(engine, candidate.modality)
    champ_metrics = None
    # a champion on another feature version cannot be scored on these features (nor serve this code): no contest
    if current is not None and current.feature_version == candidate.feature_version:
        champ_model = SpaceGroupClassifier.from_bytes(load_artifact_bytes(store, current))
        champ_metrics = evaluate_probabilities(champ_model.predict_proba(eval_set.X), champ_model.classes_,
                                               eval_set.space_group)
        record_evaluation(engine, current.id, eval_name, champ_metrics)
    promoted = allow_promotion and should_promote(candidate_metrics, champ_metrics, PROMOTION_METRIC, margin)
    if promoted:
        promote(engine, candidate_id)
    plots = plot_confusion_and_calibration(candidate.predict_proba(eval_set.X), candidate.classes_,
                                           eval_set.space_group, reports_dir / f"model-{candidate_id}",
                                           f"model {candidate_id}")
    return PipelineReport(candidate_id, current.id if current else None, promoted, candidate_metrics, champ_metrics,
                          plots)


def default_parameters(engine, modality: str = "xrd") -> dict:
    """Hyperparameters recorded with the current champion of ``modality`` (from its Optuna search), else model
    defaults."""
    current = champion(engine, modality)
    if current is not None and current.parameters.get("searched"):
        return dict(current.parameters["searched"])
    return {}


def train_and_maybe_promote(engine, store: ArtifactStore, reports_dir, *, n_crystals: int, n_augment: int,
                            seed: int, n_trials: int, n_estimators: int = 400, margin: float = 0.0,
                            allow_promotion: bool = True, progress=None, generator: GeneratorConfig = GeneratorConfig(),
                            lattice_evidence: bool = False) -> tuple[PipelineReport, SpaceGroupClassifier]:
    """A challenger trained on synthetic crystals; with ``lattice_evidence`` it also learns how the patterns'
    cells correct its crystal systems (``tasks.lattice_evidence``), which ``spacegroup predict --lattice-evidence``
    uses."""
    bootstrap_pretrained(engine, store)
    options = (SYNTHETIC_TYPES_MODEL_OPTIONS if generator.prototype_fraction > 0 else {}) | {
        "lattice_evidence": lattice_evidence}
    features = synthetic_xrd_features(n_crystals, n_augment, seed, progress=progress, config=generator,
                                      with_lines=generator.prototype_fraction > 0)
    if n_trials > 0:
        params, history = search_hyperparameters(features, n_trials, seed)
    else:
        params, history = default_parameters(engine), []
    result = fit_and_validate(features, params | options, seed, n_estimators)
    frozen = frozen_synthetic_eval_set()
    cand_metrics = evaluate_probabilities(result.model.predict_proba(frozen.X), result.model.classes_,
                                          frozen.space_group)
    version = register_model(
        engine, store, result.model.to_bytes(), name=f"xrd-synthetic-{n_crystals}x{n_augment}-s{seed}",
        modality="xrd", feature_version=result.model.feature_version,
        parameters={"searched": params, "model": result.model.get_params(), "search_history": history,
                    "n_crystals": n_crystals, "n_augment": n_augment, "seed": seed,
                    "generator": asdict(generator)},
        metrics={"frozen_synthetic": cand_metrics, "holdout_synthetic": result.validation_metrics},
        dataset_description=synthetic_dataset_description(n_crystals, n_augment, seed, generator),
    )
    report = challenge_champion(engine, store, reports_dir, version.id, result.model, cand_metrics, frozen,
                                "frozen_synthetic", margin, allow_promotion)
    report.n_training_patterns, report.n_training_crystals = result.n_rows, result.n_structures
    return report, result.model


#: models trained on real materials also search their training data by structure type: real structure types recur
#: across materials, so a new material's pattern often matches a scaled known one (tasks/neighbours.py), and a new
#: formula sits on Pettifor's map beside known compounds of its type (tasks/prototypes.py)
REAL_DATA_MODEL_OPTIONS = {"structure_type_search": True}
#: pattern models also re-rank the search's and the boosters' candidates (tasks/reranking.py: SG top-1 +2 points on
#: MP patterns); not measured for formulas yet, so formula models do not
REAL_PATTERN_MODEL_OPTIONS = REAL_DATA_MODEL_OPTIONS | {"candidate_reranking": True}
#: synthetic crystals built from known structure types recur as real ones do, so a synthetic model searches them the
#: same way (BENCHMARKS.md, synthetic_sources); over random placements alone the search added nothing (0.166 -> 0.171)
SYNTHETIC_TYPES_MODEL_OPTIONS = REAL_PATTERN_MODEL_OPTIONS


#: formula models, whatever they learn from, are judged on the reduced formulas ``is_frozen_holdout`` keeps out of
#: every formula model's training: a shipped model and one trained on a later MP export never see the formulas
#: their contest is held on
FORMULA_EVALUATION = "frozen_holdout_formulas"


def _train_formula_challenger(engine, store: ArtifactStore, reports_dir, compositions: list, labels, reduced: list,
                              *, name: str, seed: int, n_estimators: int, margin: float, allow_promotion: bool,
                              what: str, parameters: dict, dataset_version_id: int | None = None, n_trials: int = 0
                              ) -> tuple[PipelineReport, SpaceGroupClassifier]:
    """Fit a formula model on every formula outside the frozen hold-out, register it, and challenge the champion
    on the hold-out (``what`` names the formulas in errors and the registry). Hyperparameters: an Optuna search of
    ``n_trials`` on a fifth of the training formulas, else those the formula champion's search found."""
    import numpy as np

    from tasks.dataset_features import is_frozen_holdout
    from tasks.formula_data import formula_feature_set
    from tasks.training import fit_model

    bootstrap_pretrained(engine, store)
    features = formula_feature_set(compositions, np.asarray(labels), reduced)
    held = np.array([is_frozen_holdout(formula) for formula in reduced], dtype=bool)
    train, holdout = features.subset(~held), features.subset(held)
    if len(holdout) == 0 or len(set(train.space_group.tolist())) < 2:
        raise ValueError(f"{what} are too few or too uniform to train and evaluate a formula model on "
                         f"({len(set(reduced))} reduced formulas, {len(holdout)} of the rows in the frozen hold-out "
                         "of one reduced formula in ten)")
    if n_trials > 0:
        searched, history = search_hyperparameters(train, n_trials, seed, modality="formula")
    else:
        searched, history = default_parameters(engine, "formula"), []
    model = fit_model(train, searched | REAL_DATA_MODEL_OPTIONS, seed, n_estimators, modality="formula")
    metrics = evaluate_probabilities(model.predict_proba(holdout.X), model.classes_, holdout.space_group)
    version = register_model(
        engine, store, model.to_bytes(), name=name, modality="formula", feature_version=model.feature_version,
        dataset_version_id=dataset_version_id, metrics={FORMULA_EVALUATION: metrics},
        parameters={"searched": searched, "search_history": history, "model": model.get_params(), "seed": seed}
        | parameters,
        dataset_description=f"{what} ({len(train)} trained on; {len(holdout)} in the frozen hold-out, by reduced "
                            "formula)",
    )
    report = challenge_champion(engine, store, reports_dir, version.id, model, metrics, holdout, FORMULA_EVALUATION,
                                margin, allow_promotion)
    report.n_training_patterns, report.n_training_crystals = len(train), len(np.unique(train.groups))
    return report, model


def train_formula_and_maybe_promote(engine, store: ArtifactStore, reports_dir, *, table_path, formula_column: str,
                                    label_column: str, seed: int, n_estimators: int = 400, margin: float = 0.0,
                                    allow_promotion: bool = True, n_trials: int = 0
                                    ) -> tuple[PipelineReport, SpaceGroupClassifier, list]:
    """Formula model from a local table of formulas and space groups (``FORMULA_EVALUATION``); also returns the
    rows the table's reader rejected."""
    from tasks.formula_data import read_formula_table

    comps, labels, groups, rejected = read_formula_table(table_path, formula_column, label_column)
    report, model = _train_formula_challenger(
        engine, store, reports_dir, comps, labels, groups, name=f"formula-{Path(table_path).stem}-s{seed}", seed=seed,
        n_estimators=n_estimators, margin=margin, allow_promotion=allow_promotion, n_trials=n_trials,
        what=f"{len(comps)} formulas from {Path(table_path).name}",
        parameters={"table": str(table_path), "n_rows": len(comps), "n_rejected": len(rejected)})
    return report, model, rejected


MIN_DATASET_MATERIALS = 40


def train_on_dataset_and_maybe_promote(engine, store: ArtifactStore, reports_dir, cache_dir, dataset, *,
                                       n_augment: int = 2, seed: int = 0, n_estimators: int = 400,
                                       margin: float = 0.0, allow_promotion: bool = True, n_jobs: int = 0,
                                       lattice_evidence: bool | None = None
                                       ) -> tuple[PipelineReport, SpaceGroupClassifier]:
    """A challenger trained on a registry dataset version, judged against the champion on the frozen hold-out
    materials of that source (never trained on by either). It fits the lattice evidence (``tasks.lattice_evidence``)
    when asked, or (``None``) whenever its calibration split is large enough: a champion that replaces one with the
    stage should not take ``--lattice-evidence`` answers away."""
    from storage.materials import dataset_materials
    from tasks.dataset_features import material_features, split_frozen_holdout
    from tasks.lattice_evidence import enough_for_lattice_evidence

    bootstrap_pretrained(engine, store)
    materials = dataset_materials(engine, store, dataset)
    if len(materials) < MIN_DATASET_MATERIALS:
        raise ValueError(f"dataset {dataset.id} has {len(materials)} materials; at least {MIN_DATASET_MATERIALS} "
                         "are needed to train and hold out")
    features = material_features(materials, cache_dir, dataset.content_hash, n_augment, seed, n_jobs,
                                 with_reference_lines=True)
    train, holdout = split_frozen_holdout(features, materials)
    if len(holdout) == 0 or len(set(train.space_group.tolist())) < 2:
        raise ValueError(f"dataset {dataset.id} is too small or too uniform to train and evaluate on")
    if lattice_evidence is None:
        lattice_evidence = enough_for_lattice_evidence(len(train), SpaceGroupClassifier().calibration_fraction)
    options = REAL_PATTERN_MODEL_OPTIONS | {"lattice_evidence": lattice_evidence}
    result = fit_and_validate(train, default_parameters(engine) | options, seed, n_estimators)
    metrics = evaluate_probabilities(result.model.predict_proba(holdout.X), result.model.classes_,
                                     holdout.space_group)
    eval_name = f"frozen_holdout:{dataset.source}"
    version = register_model(
        engine, store, result.model.to_bytes(), name=f"xrd-{dataset.source}-ds{dataset.id}-s{seed}", modality="xrd",
        feature_version=result.model.feature_version, dataset_version_id=dataset.id,
        parameters={"model": result.model.get_params(), "n_augment": n_augment, "seed": seed,
                    "n_materials": len(materials)},
        metrics={"frozen_holdout": metrics, "holdout_validation": result.validation_metrics},
        dataset_description=f"dataset {dataset.id} ({dataset.source}, {dataset.n_materials} materials)",
    )
    report = challenge_champion(engine, store, reports_dir, version.id, result.model, metrics, holdout, eval_name,
                                margin, allow_promotion)
    report.n_training_patterns, report.n_training_crystals = result.n_rows, result.n_structures
    return report, result.model


def train_formula_on_dataset_and_maybe_promote(engine, store: ArtifactStore, reports_dir, dataset, *, seed: int = 0,
                                               n_estimators: int = 400, margin: float = 0.0,
                                               allow_promotion: bool = True, n_trials: int = 0
                                               ) -> tuple[PipelineReport, SpaceGroupClassifier]:
    """A formula challenger on a registry dataset version's formulas and spglib labels (``FORMULA_EVALUATION``).
    The formula model is a search-match that gains ~5 points of SG top-1 per doubling of its training formulas
    (BENCHMARKS.md, learning_curve), so a fresh, larger MP export is what improves it."""
    from pymatgen.core import Composition

    from storage.materials import dataset_materials
    from tasks.sources import SYNTHETIC_SOURCE

    if dataset.source == SYNTHETIC_SOURCE:
        raise ValueError(f"dataset {dataset.id} holds synthetic crystals, whose compositions are drawn at random: a "
                         "formula model learns which structures real compounds take, so it trains on real materials "
                         "(a dataset refreshed from the Materials Project or from local files)")
    materials = dataset_materials(engine, store, dataset)
    if len(materials) < MIN_DATASET_MATERIALS:
        raise ValueError(f"dataset {dataset.id} has {len(materials)} materials; at least {MIN_DATASET_MATERIALS} "
                         "are needed to train and hold out")
    return _train_formula_challenger(
        engine, store, reports_dir, [Composition(m.formula) for m in materials],
        [m.space_group_number for m in materials], [m.reduced_formula for m in materials],
        name=f"formula-{dataset.source}-ds{dataset.id}-s{seed}", seed=seed, n_estimators=n_estimators, margin=margin,
        allow_promotion=allow_promotion, what=f"the formulas of dataset {dataset.id} ({dataset.source})",
        parameters={"n_materials": len(materials)}, dataset_version_id=dataset.id, n_trials=n_trials)


def retrain_formula_once(engine, store: ArtifactStore, settings, dataset_id: int | None = None,
                         n_estimators: int = 400, seed: int = 0,
                         allow_promotion: bool = True) -> tuple[PipelineReport | None, str]:
    """One formula retraining on dataset ``dataset_id`` (default: the newest with enough materials). Formula models
    learn from real materials only: with no such dataset there is nothing to train on (``None``)."""
    from storage.materials import get_dataset, latest_dataset
    from tasks.sources import SYNTHETIC_SOURCE

    dataset = get_dataset(engine, dataset_id) if dataset_id is not None else latest_dataset(engine)
    if dataset_id is not None and dataset is None:
        raise ValueError(f"no dataset version with id {dataset_id}")
    if dataset is None or dataset.n_materials < MIN_DATASET_MATERIALS:
        return None, f"No formula retrain: no dataset version with {MIN_DATASET_MATERIALS}+ materials"
    if dataset.source == SYNTHETIC_SOURCE:  # the weekly refresh without an MP key: random compositions
        return None, f"No formula retrain: dataset {dataset.id} holds synthetic crystals, not real materials"
    report, _ = train_formula_on_dataset_and_maybe_promote(
        engine, store, settings.reports_dir, dataset, seed=seed, n_estimators=n_estimators,
        margin=settings.promotion_margin, allow_promotion=allow_promotion)
    return report, f"Formula retrain on dataset {dataset.id} ({dataset.source})"


def retrain_once(engine, store: ArtifactStore, settings, dataset_id: int | None = None, n_augment: int = 2,
                 n_estimators: int = 400, synthetic_crystals: int = 600, seed: int = 0,
                 allow_promotion: bool = True) -> tuple[PipelineReport, str, int | None]:
    """One retraining: on dataset ``dataset_id`` (default: the newest with enough materials), else on synthetic
    crystals. Returns the report, a title, and the dataset version used (None for synthetic)."""
    from storage.materials import get_dataset, latest_dataset

    dataset = get_dataset(engine, dataset_id) if dataset_id is not None else latest_dataset(engine)
    if dataset_id is not None and dataset is None:
        raise ValueError(f"no dataset version with id {dataset_id}")
    if dataset is not None and dataset.n_materials >= MIN_DATASET_MATERIALS:
        report, _ = train_on_dataset_and_maybe_promote(
            engine, store, settings.reports_dir, settings.cache_dir, dataset, n_augment=n_augment, seed=seed,
            n_estimators=n_estimators, margin=settings.promotion_margin, allow_promotion=allow_promotion,
            n_jobs=settings.n_jobs)
        return report, f"Retrain on dataset {dataset.id} ({dataset.source})", dataset.id
    log.info("no dataset version with %d+ materials: training on synthetic crystals", MIN_DATASET_MATERIALS)
    report, _ = train_and_maybe_promote(engine, store, settings.reports_dir, n_crystals=synthetic_crystals,
                                        n_augment=n_augment, seed=seed, n_trials=0, n_estimators=n_estimators,
                                        margin=settings.promotion_margin, allow_promotion=allow_promotion)
    return report, f"Retrain on {synthetic_crystals} synthetic crystals", None


def retrain_models_once(engine, store: ArtifactStore, settings, dataset_id: int | None = None, n_augment: int = 2,
                        n_estimators: int = 400, synthetic_crystals: int = 600, seed: int = 0,
                        allow_promotion: bool = True) -> tuple[PipelineReport, PipelineReport | None]:
    """What the monthly retrain flow does, for callers without an orchestrator (the API's fallback): the XRD
    retrain, then the formula retrain on the dataset the XRD challenger learnt from (none: no formula retrain)."""
    report, _, used = retrain_once(engine, store, settings, dataset_id, n_augment, n_estimators, synthetic_crystals,
                                   seed, allow_promotion)
    formula_report, _ = retrain_formula_once(engine, store, settings, used, n_estimators, seed, allow_promotion)
    return report, formula_report
