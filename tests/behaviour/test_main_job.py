"""The main job end to end on the embedded default (tiny sizes), and champion/challenger on a frozen set."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from sqlmodel import Session, select

from storage.engine import make_engine
from storage.tables import EvaluationRun, ModelVersion


@pytest.mark.slow
def test_main_job_trains_evaluates_promotes_predicts_and_reports(tmp_path):
    home = tmp_path / "home"
    env = dict(os.environ, SPACEGROUP_HOME=str(home), SPACEGROUP_FROZEN_EVAL_CRYSTALS="20",
               SPACEGROUP_LOG_LEVEL="WARNING")
    env.pop("SPACEGROUP_DATABASE_URL", None)
    proc = subprocess.run([sys.executable, "-m", "deployments.cli", "run", "--crystals", "40", "--augment", "2"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    match = re.search(r"candidate model (\d+): trained on \d+ patterns of \d+ synthetic crystals", out)
    assert match
    candidate_id = int(match.group(1))
    champion_match = re.search(r"champion (\d+) on the same set", out)
    assert champion_match
    champion_id = int(champion_match.group(1))
    assert re.search(r"promoted: (yes|no)", out)
    assert "Si_diamond_CuKa.xy [xrd]" in out and "NaCl_rocksalt.cif [structure]: Fm-3m (225)" in out
    assert "TiO2_rutile_CuKa.xy [xrd, with TiO2]: " in out  # the pattern with its composition
    assert re.search(r"from the pattern alone \d\.\d\d, from the formula alone \d\.\d\d", out)
    assert f"registry:  sqlite:///{home}" in out
    pngs = list((home / "reports").rglob("*.png"))
    assert {p.name for p in pngs} == {"confusion_crystal_system.png", "calibration.png"}

    engine = make_engine(f"sqlite:///{home / 'registry.sqlite'}")
    with Session(engine) as session:
        models = session.exec(select(ModelVersion).where(ModelVersion.modality == "xrd")
                              .order_by(ModelVersion.id)).all()
        runs = session.exec(select(EvaluationRun)).all()
    assert [m.id for m in models] == [champion_id, candidate_id]
    champions = [m for m in models if m.stage == "champion"]
    assert len(champions) == 1
    candidate = models[1]
    candidate_top1 = candidate.metrics["frozen_synthetic"]["sg_top1"]
    champion_top1 = next(r.metrics["sg_top1"] for r in runs if r.model_version_id == champion_id)
    promoted = "promoted: yes" in out
    assert promoted == (candidate_top1 >= champion_top1)
    assert champions[0].id == (candidate_id if promoted else champion_id)
    assert candidate.parameters["n_crystals"] == 40 and candidate.feature_version
