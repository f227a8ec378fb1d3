"""The `spacegroup` command as a user runs it: a real process, a fresh home, the shipped model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tasks

EXAMPLES = Path(tasks.__file__).resolve().parent / "examples"


def run_cli(home: Path, *args: str, check: bool = False, env: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, SPACEGROUP_HOME=str(home), SPACEGROUP_LOG_LEVEL="WARNING", **(env or {}))
    env.pop("SPACEGROUP_DATABASE_URL", None)
    proc = subprocess.run([sys.executable, "-m", "deployments.cli", *args], capture_output=True, text=True,
                          env=env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def test_help_lists_the_subcommands_and_version(tmp_path):
    out = run_cli(tmp_path, "--help", check=True).stdout
    for command in ("run", "predict", "train", "models", "symmetry", "db"):
        assert command in out
    assert run_cli(tmp_path, "--version", check=True).stdout.startswith("ml-space-group ")


def test_predict_examples_right_after_install(tmp_path):
    proc = run_cli(tmp_path / "home", "predict", "--json", str(EXAMPLES), check=True)
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(results) == len(list(EXAMPLES.iterdir()))
    by_name = {Path(r["input"]).name: r for r in results}
    nacl = by_name["NaCl_rocksalt.cif"]
    assert nacl["modality"] == "structure" and nacl["space_group"] == {"number": 225, "symbol": "Fm-3m"}
    assert nacl["spglib"]["laue_class"] == "m-3m" and nacl["spglib"]["tolerance_sweep"]
    assert nacl["spglib"]["disordered_sites"] == 0
    assert by_name["POSCAR_TiO2_rutile"]["space_group"]["number"] == 136
    for name in ("Si_diamond_CuKa.xy", "TiO2_rutile_CuKa.xy", "ZnO_wurtzite_CuKa.xy"):
        r = by_name[name]
        assert r["modality"] == "xrd"
        assert len(r["top_k"]) == 5
        probs = [t["probability"] for t in r["top_k"]]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
        assert r["crystal_system"] in ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal",
                                       "hexagonal", "cubic")
        assert isinstance(r["model_version"]["id"], int) and r["model_version"]["name"] == "xrd_default"
        assert r["model_version"]["feature_version"]
        assert r["prior"] == "mp"  # answers assume how often space groups occur among real materials
    assert "champion" in run_cli(tmp_path / "home", "models", "list", check=True).stdout


def test_hundred_mixed_inputs_with_one_broken_file(tmp_path):
    data = tmp_path / "inputs"
    data.mkdir()
    examples = sorted(p for p in EXAMPLES.iterdir())
    for i in range(99):
        src = examples[i % len(examples)]
        shutil.copy(src, data / (f"POSCAR_{i:03d}" if src.name.startswith("POSCAR") else f"{i:03d}_{src.name}"))
    (data / "050_broken.xy").write_text("10.0 5\n10.1 7\n10.1 9\n" + "\n".join(f"{10.2 + k / 10} 3" for k in range(60)))
    proc = run_cli(tmp_path / "home", "predict", "--json", "--wavelength", "CuKa", str(data), check=True)
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == 100
    errors = [r for r in lines if "error" in r]
    assert len(errors) == 1
    assert errors[0]["input"].endswith("050_broken.xy") and "appears twice" in errors[0]["error"]
    assert sum("space_group" in r for r in lines) == 99


def test_excluded_regions_are_taken_out_of_every_pattern_and_reported(tmp_path):
    rutile = str(EXAMPLES / "TiO2_rutile_CuKa.xy")
    plain = json.loads(run_cli(tmp_path / "home", "predict", "--json", rutile, check=True).stdout)
    # rutile's strongest line, (110) at 27.4°, taken out as if it were a substrate's
    proc = run_cli(tmp_path / "home", "predict", "--json", "--exclude-two-theta", "26.9-27.9",
                   "--exclude-two-theta", "70-75,80-85", rutile, str(EXAMPLES / "NaCl_rocksalt.cif"), check=True)
    excluded, structure = (json.loads(line) for line in proc.stdout.splitlines())
    assert excluded["excluded_two_theta_deg"] == [[26.9, 27.9], [70.0, 75.0], [80.0, 85.0]]
    assert "excluded_two_theta_deg" not in plain and "excluded_two_theta_deg" not in structure
    assert excluded["top_k"] != plain["top_k"]
    # named substrates take out only the lines a pattern shows: none of cassiterite's (FTO) or silicon's in rutile,
    # though rutile TiO2 is isotypic with cassiterite; silicon's where its lines were added to rutile's
    import numpy as np

    tt, y = np.loadtxt(rutile, comments="#", unpack=True)
    si_lines = (28.44, 47.30, 56.12, 69.13, 76.38)
    for position, height in zip(si_lines, (1.0, 0.6, 0.35, 0.1, 0.15)):
        y = y + height * y.max() * np.exp(-0.5 * ((tt - position) / 0.05) ** 2)
    on_silicon = tmp_path / "rutile_on_si.xy"
    np.savetxt(on_silicon, np.column_stack([tt, y]))
    on_fto, with_si = (json.loads(line) for line in run_cli(
        tmp_path / "home", "predict", "--json", "--substrate", "FTO", "--substrate", "si", rutile, str(on_silicon),
        check=True).stdout.splitlines())
    assert "excluded_two_theta_deg" not in on_fto and on_fto["top_k"] == plain["top_k"]
    centres = [(a + b) / 2 for a, b in with_si["excluded_two_theta_deg"]]
    assert len(centres) == sum(tt[0] < t < tt[-1] for t in si_lines)
    np.testing.assert_allclose(centres, [t for t in si_lines if tt[0] < t < tt[-1]], atol=0.05)


def test_formulas_are_answered_per_input_by_the_shipped_formula_model(tmp_path):
    proc = run_cli(tmp_path / "home", "predict", "--json", "--formula", "NaCl", "--formula", "Xx3", "--formula", "XeF2",
                   "--formula", "Ar")
    good, bad, noble, argon = (json.loads(line) for line in proc.stdout.splitlines())
    assert good["modality"] == "formula" and good["model_version"]["name"] == "formula_default"
    assert good["space_group"]["number"] == 225  # rock salt: the commonest answer in MP by far
    assert good["prior"] == "mp"  # the default: the shipped formula model records its training frequencies
    assert "error" in bad and "'Xx'" in bad["error"]
    assert noble["space_group"]["number"] == 139  # XeF2's I4/mmm
    assert 1 <= argon["space_group"]["number"] <= 230  # argon has no Pauling electronegativity ...
    assert "Warning" not in proc.stderr, proc.stderr  # ... and pymatgen's note about it does not reach the user
    assert proc.returncode == 0
    only_bad = run_cli(tmp_path / "home", "predict", "--json", "--formula", "Xx3")
    assert only_bad.returncode == 1  # every input failed


@pytest.mark.parametrize("args,message", [
    (("predict",), "nothing to predict"),
    (("predict", "--wavelength", "CuKz", "x.xy"), "unknown wavelength"),
    (("predict", "--top-k", "0", "x.xy"), "--top-k"),
    (("predict", "--exclude-two-theta", "27.9-26.9", "x.xy"), "--exclude-two-theta: .*start must be below its end"),
    (("predict", "--substrate", "glass", "x.xy"), "--substrate: unknown substrate 'glass'; known: FTO"),
    (("predict", "--composition", "Xq2", "x.xy"), "--composition: 'Xq' in formula 'Xq2' is not a chemical element"),
    (("predict", "--composition", "Si", "--formula", "NaCl"), "--composition is the composition of the patterns"),
    (("predict", "--composition", "Si", "--compositions", "c.csv", "x.xy"), "not both"),
    (("predict", "--compositions", "missing.csv", "x.xy"), "--compositions: missing.csv does not exist"),
    (("models", "promote", "42"), "no model version with id 42"),
    (("models", "rollback"), "no predecessor|no xrd champion"),
    (("symmetry", "missing.cif"), "does not exist"),
    (("train", "--augment", "0"), "--augment must be at least 1, not 0"),
    (("train", "--modality", "formula", "--trials", "-2"), "--trials must be at least 0, not -2"),
    (("run", "--margin", "-0.1"), "--margin is the SG top-1 gain a challenger must exceed to be promoted: 0 or more"),
    (("train", "--crystals", "3", "--augment", "1"), "a model needs at least 20 training rows .* and got [0-9]+: "
                                                     "train on more crystals"),
])
def test_bad_requests_get_one_clear_line(tmp_path, args, message):
    proc = run_cli(tmp_path / "home", *args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    import re

    assert re.search(message, proc.stderr), proc.stderr


def test_tampered_champion_is_refused_without_traceback(tmp_path):
    home = tmp_path / "home"
    run_cli(home, "models", "list", check=True)  # bootstraps the shipped model
    artifacts = [p for p in (home / "artifacts").rglob("*.npz")]
    assert len(artifacts) == 2  # the shipped XRD and formula models
    for artifact in artifacts:
        artifact.write_bytes(artifact.read_bytes()[:-10] + b"0123456789")
    proc = run_cli(home, "predict", str(EXAMPLES / "Si_diamond_CuKa.xy"))
    assert proc.returncode == 2
    assert "modified" in proc.stderr and "Traceback" not in proc.stderr


def test_a_composition_is_read_with_every_pattern(tmp_path):
    rutile = str(EXAMPLES / "TiO2_rutile_CuKa.xy")
    answer = json.loads(run_cli(tmp_path / "home", "predict", "--json", "--composition", "TiO2", rutile,
                                check=True).stdout)
    assert answer["composition"] == "TiO2" and answer["prior"] == "composition"
    assert answer["space_group"]["symbol"] == "P4_2/mnm"


def test_prior_can_be_chosen_and_a_wrong_one_is_named(tmp_path):
    si = str(EXAMPLES / "Si_diamond_CuKa.xy")
    answers = {}
    for prior in ("mp", "training"):
        answers[prior] = json.loads(run_cli(tmp_path / "home", "predict", "--json", "--prior", prior, si,
                                            check=True).stdout)
        assert answers[prior]["prior"] == prior
    assert answers["mp"]["top_k"] != answers["training"]["top_k"]
    proc = run_cli(tmp_path / "home", "predict", "--json", si, env={"SPACEGROUP_SPACE_GROUP_PRIOR": "icsd"})
    assert proc.returncode != 0 and "unknown space-group prior 'icsd'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_port_in_use_is_named_before_anything_starts(tmp_path):
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = str(holder.getsockname()[1])
        env = {"PREFECT_API_URL": ""}  # `up` starts its own Prefect server
        for args, option in ((("serve", "--port", port), "--port"),
                             (("up", "--port", port, "--prefect-port", str(_free_port())), "--port"),
                             (("up", "--port", str(_free_port()), "--prefect-port", port), "--prefect-port")):
            proc = run_cli(tmp_path / "home", *args, env=env)
            assert proc.returncode == 2, proc.stderr
            assert f"127.0.0.1:{port} is already in use" in proc.stderr and f"another {option}" in proc.stderr
            assert "Traceback" not in proc.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cells_are_indexed_on_request_in_both_outputs(tmp_path):
    rutile = str(EXAMPLES / "TiO2_rutile_CuKa.xy")
    answer = json.loads(run_cli(tmp_path / "home", "predict", "--json", "--cell", rutile, check=True).stdout)
    # rutile's 4.594 / 2.959 Å under the example's +0.61 % strain (bench/make_examples.py), primitive
    assert answer["cell"]["lattice"] == "tP" and abs(answer["cell"]["a_angstrom"] - 4.622) < 0.005
    human = run_cli(tmp_path / "home", "predict", "--cell", rutile, check=True).stdout
    assert "cell tP a = 4.62" in human and "peaks indexed" in human


def test_a_monoclinic_cell_is_shown_with_beta_and_a_triclinic_answer_says_why_it_has_none():
    from deployments.commands import _human_cell

    cell = {"lattice": "mP", "a_angstrom": 6.0596, "b_angstrom": 4.14, "c_angstrom": 7.5865, "beta_deg": 101.524,
            "zero_shift_two_theta_deg": 0.06, "peaks_indexed": 20, "peaks_used": 20, "de_wolff_m": 81.9,
            "reflection_conditions": "lattice"}
    shown = _human_cell({"cell": cell, "space_group": {"number": 11}})
    assert "cell mP a = 6.0596, b = 4.1400, c = 7.5865 Å, β = 101.524°, zero +0.060°" in shown
    assert _human_cell({"cell": None, "space_group": {"number": 2}}) == "; cell: not searched for triclinic lattices"
    assert "none indexes the peaks" in _human_cell({"cell": None, "space_group": {"number": 14}})


def test_a_warning_is_shown_on_the_answers_line_in_place_of_the_low_confidence_flag():
    from deployments.commands import _human

    answer = {"input": "film.xy", "modality": "xrd", "space_group": {"number": 221, "symbol": "Pm-3m"},
              "crystal_system": "cubic", "crystal_system_probability": 0.4,
              "extinction_group": {"id": 1, "label": "P---"}, "top_k": [{"number": 221, "symbol": "Pm-3m",
                                                                      "probability": 0.3}], "abstained": True}
    assert _human(answer).endswith("[abstained: low confidence]")
    shown = _human(answer | {"warnings": ["only 3 peaks stand out of the noise"]})
    assert "[abstained; warning: only 3 peaks stand out of the noise]" in shown and "low confidence" not in shown
    assert "[warning: only 3 peaks" in _human(answer | {"abstained": False, "warnings": ["only 3 peaks"]})
    assert len(shown.splitlines()) == 1


def test_the_lattice_evidence_is_reported_in_both_outputs_and_refused_for_formulas(tmp_path):
    zno = str(EXAMPLES / "ZnO_wurtzite_CuKa.xy")
    answer = json.loads(run_cli(tmp_path / "home", "predict", "--json", "--lattice-evidence", zno,
                                check=True).stdout)
    assert answer["lattice_evidence"]["hexagonal"]["de_wolff_m"] > 20 and answer["crystal_system"] == "hexagonal"
    human = run_cli(tmp_path / "home", "predict", "--lattice-evidence", zno, check=True).stdout
    assert "; cells: orthorhombic M" in human and "hexagonal M" in human
    proc = run_cli(tmp_path / "home", "train", "--modality", "formula", "--lattice-evidence")
    assert proc.returncode != 0 and "--lattice-evidence indexes patterns" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_a_training_set_too_small_for_the_lattice_evidence_is_refused_before_the_fit(tmp_path):
    proc = run_cli(tmp_path / "home", "train", "--crystals", "30", "--augment", "2", "--lattice-evidence")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "it needs at least 300, and this training set gives" in proc.stderr + proc.stdout
