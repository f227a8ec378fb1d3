"""Formula models trained on a registry dataset: refreshed from the Materials Project stand-in, split by reduced
formula on a frozen hash, judged against the shipped formula champion."""

from __future__ import annotations

import json
import re

import pytest

from tests.behaviour.test_cli import run_cli

pytestmark = pytest.mark.slow


def test_formula_model_trains_on_a_refreshed_mp_dataset_and_is_judged_on_frozen_formulas(mp_env, spacegroup_home):
    from storage.artifacts import default_store
    from storage.engine import get_engine
    from storage.materials import dataset_materials, get_dataset
    from tasks.dataset_features import is_frozen_holdout

    home = spacegroup_home  # the CLI's home is the one the stand-in's settings point at
    proc = run_cli(home, "train", "--modality", "formula", "--source", "mp", "--estimators", "30", check=True)
    found = re.search(r"candidate formula model (\d+): held-out formulas \(n=(\d+)\)", proc.stdout)
    assert found, proc.stdout
    candidate_id, n_held_out = int(found.group(1)), int(found.group(2))
    shown = json.loads(run_cli(home, "models", "show", str(candidate_id), check=True).stdout)
    assert shown["modality"] == "formula" and shown["dataset_version_id"] is not None
    assert set(shown["metrics"]) == {"frozen_holdout_formulas"}
    # the refreshed dataset's materials: the frozen hold-out is every one whose reduced formula hashes into it
    materials = dataset_materials(get_engine(), default_store(), get_dataset(get_engine(), shown["dataset_version_id"]))
    assert shown["parameters"]["n_materials"] == len(materials) > 40
    assert n_held_out == sum(is_frozen_holdout(m.reduced_formula) for m in materials) > 0
    listing = run_cli(home, "models", "list", "--modality", "formula", check=True).stdout
    rows = {int(line.split()[0]): line for line in listing.strip().splitlines()}
    assert len(rows) == 2  # the shipped champion and the candidate
    assert f"top1={shown['metrics']['frozen_holdout_formulas']['sg_top1']:.3f} (frozen_holdout_formulas)" \
        in rows[candidate_id]
    assert ("promoted: yes" in proc.stdout) == (" champion " in rows[candidate_id])


def test_formula_training_on_a_dataset_needs_one(tmp_path):
    proc = run_cli(tmp_path / "home", "train", "--modality", "formula", "--source", "dataset")
    assert proc.returncode == 2 and "no dataset version to train on; run `spacegroup refresh` first" in proc.stderr
    proc = run_cli(tmp_path / "home", "train", "--modality", "formula", "--source", "dataset", "--dataset-id", "7")
    assert proc.returncode == 2 and "no dataset version with id 7" in proc.stderr


def test_without_an_orchestrator_both_models_are_retrained_on_the_dataset(mp_env, registry):
    """The API's fallback when Prefect cannot take a retrain: XRD, then formula, as the monthly flow does."""
    from storage.registry import champion, get_model
    from tasks.pipeline import retrain_models_once
    from tasks.refresh import refresh_from_source
    from tasks.settings import get_settings
    from tests.orchestration.test_sources_and_refresh import mp_source

    engine, store = registry
    refreshed = refresh_from_source(engine, store, mp_source(mp_env), n_jobs=1)
    xrd, formula = retrain_models_once(engine, store, get_settings(), n_augment=1, n_estimators=30)
    assert formula is not None
    for report, modality in ((xrd, "xrd"), (formula, "formula")):
        candidate = get_model(engine, report.candidate_id)
        assert candidate.modality == modality and candidate.dataset_version_id == refreshed.dataset_version_id
    assert set(get_model(engine, formula.candidate_id).metrics) == {"frozen_holdout_formulas"}
    shipped = get_model(engine, formula.champion_id_before)
    assert shipped.name == "formula_default"  # judged against the shipped formula model
    assert champion(engine, "formula").id == (formula.candidate_id if formula.promoted else shipped.id)


def test_formula_models_do_not_learn_from_synthetic_crystals(registry, tmp_path):
    """The weekly refresh without an MP key snapshots synthetic crystals: fine for XRD models, but their
    compositions are drawn at random, so no formula model is trained on them."""
    from storage.materials import get_dataset
    from storage.registry import list_models
    from tasks.pipeline import MIN_DATASET_MATERIALS, retrain_formula_once, train_formula_on_dataset_and_maybe_promote
    from tasks.refresh import refresh_from_source
    from tasks.settings import get_settings
    from tasks.sources import SyntheticSource

    engine, store = registry
    refreshed = refresh_from_source(engine, store, SyntheticSource(MIN_DATASET_MATERIALS + 5, seed=3, n_jobs=1),
                                    n_jobs=1)
    dataset = get_dataset(engine, refreshed.dataset_version_id)
    assert dataset.source == "synthetic" and dataset.n_materials >= MIN_DATASET_MATERIALS
    report, title = retrain_formula_once(engine, store, get_settings(), dataset.id, n_estimators=10)
    assert report is None and "synthetic crystals, not real materials" in title
    with pytest.raises(ValueError, match="compositions are drawn at random"):
        train_formula_on_dataset_and_maybe_promote(engine, store, tmp_path, dataset, n_estimators=10)
    assert list_models(engine, "formula") == []  # nothing trained, nothing registered
