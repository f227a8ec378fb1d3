"""`spacegroup train --source synthetic --structure-types`: crystals from known structure types, searched by type."""

from __future__ import annotations

import json

import pytest

from tests.behaviour.test_cli import run_cli


@pytest.mark.slow
def test_training_on_structure_types_records_the_search_and_how_to_rebuild(tmp_path):
    home, export = tmp_path / "home", tmp_path / "typed.npz"
    proc = run_cli(home, "train", "--modality", "xrd", "--source", "synthetic", "--crystals", "40", "--augment", "2",
                   "--structure-types", "0.5", "--no-promote", "--export", str(export),
                   env={"SPACEGROUP_FROZEN_EVAL_CRYSTALS": "12"}, check=True)
    assert "promoted: no" in proc.stdout
    meta = json.loads(export.with_suffix(".json").read_text())
    assert meta["parameters"]["model"]["structure_type_search"] is True
    assert meta["parameters"]["model"]["candidate_reranking"] is True
    assert "50% built from AFLOW structure types" in meta["dataset"]
    assert "--structure-types 0.5" in meta["command"]

    from tasks.features import XRDPatternFeaturizer
    from tasks.models import SpaceGroupClassifier
    from tasks.readers import read_pattern

    model = SpaceGroupClassifier.from_bytes(export.read_bytes())
    assert model.neighbours_ is not None and model.neighbours_.lines_ is not None
    proba = model.predict_proba(XRDPatternFeaturizer().featurize_many(
        [read_pattern("tasks/examples/Si_diamond_CuKa.xy", "CuKa")]))
    assert proba.shape == (1, len(model.classes_)) and abs(proba.sum() - 1) < 1e-6


def test_a_share_outside_zero_to_one_is_refused_by_name(tmp_path):
    proc = run_cli(tmp_path / "home", "train", "--modality", "xrd", "--source", "synthetic", "--structure-types", "1.5")
    assert proc.returncode != 0
    assert "--structure-types is a share between 0 and 1, not 1.5" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
