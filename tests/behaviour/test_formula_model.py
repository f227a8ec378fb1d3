"""Formula model: trained from a local table through the CLI, registered, promoted, then answering formulas."""

from __future__ import annotations

import itertools
import json
import re

import pytest

from tests.behaviour.test_cli import run_cli


def write_table(path):
    rows = []
    for a, x in itertools.product(["Li", "Na", "K", "Rb"], ["F", "Cl", "Br", "I"]):
        rows.append((f"{a}{x}", 225))  # rock salt
    for x in ("Cl", "Br", "I"):
        rows.append((f"Cs{x}", 221))  # CsCl type
    for a, b in itertools.product(["Sr", "Ba", "Ca", "Pb"], ["Ti", "Zr", "Hf", "Sn"]):
        rows.append((f"{a}{b}O3", 221))  # cubic perovskite (idealised)
    for m in ("Ti", "Sn", "Ge", "Ru", "Ir", "Mn", "Cr", "V", "Nb", "Os"):
        rows.append((f"{m}O2", 136))  # rutile
    for a, x in itertools.product(["Ca", "Sr", "Ba", "Cd", "Pb"], ["F"]):
        rows.append((f"{a}{x}2", 225))  # fluorite
    for a, b in itertools.product(["Zn", "Cd", "Hg"], ["S", "Se", "Te"]):
        rows.append((f"{a}{b}", 216))  # zinc blende
    for a, b in itertools.product(["Al", "Ga", "In"], ["N", "P", "As", "Sb"]):
        rows.append((f"{a}{b}", 216 if b != "N" else 186))
    rows.append(("Xx2O", 225))  # rejected: not an element
    rows.append(("NaCl", 999))  # rejected: not a space group
    path.write_text("formula,space_group\n" + "\n".join(f"{f},{s}" for f, s in rows) + "\n")
    return len(rows)


@pytest.mark.slow
def test_formula_model_trains_registers_and_answers(tmp_path):
    table = tmp_path / "formulas.csv"
    write_table(table)
    home = tmp_path / "home"
    proc = run_cli(home, "train", "--modality", "formula", "--source", "local", "--path", str(table),
                   "--estimators", "30", check=True)
    assert "2 rows rejected" in proc.stdout
    # judged on the frozen hold-out: the rows whose reduced formula a hash keeps out of every formula model
    from pymatgen.core import Composition

    from tasks.dataset_features import is_frozen_holdout

    rows = table.read_text().splitlines()[1:]
    accepted = [line.split(",")[0] for line in rows if not line.startswith(("Xx2O,", "NaCl,999"))]
    expected = sum(is_frozen_holdout(Composition(f).reduced_formula) for f in accepted)
    assert f"held-out formulas (n={expected})" in proc.stdout and expected > 0
    assert "promoted: yes" in proc.stdout or "promoted: no" in proc.stdout
    listing = run_cli(home, "models", "list", "--modality", "formula", check=True).stdout
    assert "formula" in listing and "champion" in listing and len(listing.strip().splitlines()) == 2
    out = run_cli(home, "predict", "--json", "--formula", "KCl", "--formula", "Q2", check=True).stdout
    first, second = (json.loads(line) for line in out.splitlines())
    assert first["modality"] == "formula" and len(first["top_k"]) == 5
    assert first["model_version"]["feature_version"].startswith("formula-")
    assert "error" in second and "'Q'" in second["error"]


def test_bad_table_is_named(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("name,sg\nNaCl,225\n")
    proc = run_cli(tmp_path / "home", "train", "--modality", "formula", "--source", "local", "--path", str(table))
    assert proc.returncode == 2 and "no column 'formula'" in proc.stderr
    proc = run_cli(tmp_path / "home", "train", "--modality", "formula", "--source", "synthetic")
    assert proc.returncode == 2 and "--source local" in proc.stderr


@pytest.mark.slow
def test_formula_hyperparameters_come_from_a_search_and_are_reused(tmp_path):
    """`--trials N` searches the boosters' hyperparameters on a fifth of the training formulas; the export records
    them, and a later retrain without a search (the monthly flow's) takes them from the champion."""
    from tasks.pipeline import default_parameters

    table = tmp_path / "formulas.csv"
    write_table(table)
    home = tmp_path / "home"
    export = tmp_path / "searched.npz"
    proc = run_cli(home, "train", "--modality", "formula", "--source", "local", "--path", str(table), "--trials",
                   "2", "--estimators", "20", "--export", str(export), check=True)
    meta = json.loads(export.with_suffix(".json").read_text())
    assert set(meta["parameters"]["searched"]) == {"max_depth", "learning_rate", "colsample_bytree",
                                                   "min_child_weight", "subsample"}
    assert "--trials 2" in meta["command"]
    candidate = int(re.search(r"candidate formula model (\d+)", proc.stdout).group(1))
    shown = json.loads(run_cli(home, "models", "show", str(candidate), check=True).stdout)
    assert len(shown["parameters"]["search_history"]) == 2
    assert shown["parameters"]["searched"] == meta["parameters"]["searched"]
    if shown["stage"] != "champion":
        run_cli(home, "models", "promote", str(candidate), check=True)
    from storage.engine import make_engine

    engine = make_engine(f"sqlite:///{home / 'registry.sqlite'}")
    assert default_parameters(engine, "formula") == shown["parameters"]["searched"]
