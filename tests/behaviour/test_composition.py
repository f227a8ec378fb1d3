"""A pattern given with its sample's composition is answered by the XRD and the formula model together."""

from pathlib import Path

import numpy as np
import pytest

from tasks.features import FORMULA_FEATURE_VERSION, XRD_FEATURE_VERSION
from tasks.inputs import InputError, parse_prediction_input
from tasks.models import SpaceGroupClassifier
from tasks.predict import LoadedModel, ModelUnavailableError, PredictionError, Predictor
from tasks.pretrained import shipped_models
from tasks.readers import read_pattern

EXAMPLES = Path(__file__).resolve().parents[2] / "tasks" / "examples"


@pytest.fixture(scope="module")
def predictor():
    shipped = {m.name: m for m in shipped_models()}
    return Predictor(
        LoadedModel(SpaceGroupClassifier.from_bytes(shipped["xrd_default"].artifact), None, "xrd_default",
                    XRD_FEATURE_VERSION),
        LoadedModel(SpaceGroupClassifier.from_bytes(shipped["formula_default"].artifact), None, "formula_default",
                    FORMULA_FEATURE_VERSION), top_k=230)


def test_the_composition_joins_the_patterns_evidence(predictor):
    rutile = read_pattern(EXAMPLES / "TiO2_rutile_CuKa.xy")
    alone = predictor.predict_pattern(rutile, "rutile")
    with_formula = predictor.predict_pattern(rutile, "rutile", composition="TiO2")
    assert alone["space_group"]["symbol"] == "I4/mmm" and alone["prior"] == "mp"  # the synthetic model errs here
    assert with_formula["space_group"]["symbol"] == "P4_2/mnm"  # rutile, with TiO2's structure types
    assert with_formula["composition"] == "TiO2" and with_formula["prior"] == "composition"
    assert with_formula["formula_model_version"]["name"] == "formula_default"
    assert with_formula["crystal_system"] == "tetragonal"
    assert sum(t["probability"] for t in with_formula["top_k"]) == pytest.approx(1.0, abs=1e-4)
    # each ranked group says what each source alone gave it: the same as the pattern's and the formula's own answers
    by_pattern = {t["number"]: t["probability"] for t in alone["top_k"]}
    by_formula = {t["number"]: t["probability"] for t in predictor.predict_formulas(["TiO2"])[0]["top_k"]}
    for entry in with_formula["top_k"][:20]:
        assert entry["pattern_probability"] == pytest.approx(by_pattern.get(entry["number"], 0.0), abs=2e-6)
        assert entry["formula_probability"] == pytest.approx(by_formula.get(entry["number"], 0.0), abs=2e-6)
    assert "pattern_probability" not in alone["top_k"][0]
    # the pattern still counts: the formula model alone answers Si with a hexagonal polymorph's group, silicon's
    # pattern with that formula stays Fd-3m
    silicon = read_pattern(EXAMPLES / "Si_diamond_CuKa.xy")
    assert predictor.predict_formulas(["Si"])[0]["space_group"]["symbol"] != "Fd-3m"
    si_alone, si_both = (predictor.predict_pattern(silicon, "si", composition=c) for c in (None, "Si"))
    assert si_both["space_group"]["symbol"] == si_alone["space_group"]["symbol"] == "Fd-3m"


def test_a_bad_composition_is_named_and_other_inputs_are_still_answered(predictor):
    silicon = read_pattern(EXAMPLES / "Si_diamond_CuKa.xy")
    with pytest.raises(PredictionError, match="composition: 'Xq' in formula 'Xq2' is not a chemical element"):
        predictor.predict_pattern(silicon, "si", composition="Xq2")
    with pytest.raises(ModelUnavailableError, match="formula model"):
        Predictor(predictor.xrd, None).predict_pattern(silicon, "si", composition="Si")
    spec = {"two_theta_deg": silicon.two_theta_deg.tolist(), "intensity": silicon.intensity.tolist()}
    with pytest.raises(InputError, match="'xrd.composition'"):
        parse_prediction_input({"xrd": spec | {"composition": "Si(("}})
    with pytest.raises(InputError, match="must be the sample's formula"):
        parse_prediction_input({"xrd": spec | {"composition": 14}})
    items = [parse_prediction_input({"xrd": spec | {"composition": "Si"}}), parse_prediction_input({"xrd": spec}),
             parse_prediction_input({"formula": "NaCl"})]
    assert items[0].composition == "Si" and items[0].input_hash != items[1].input_hash
    answers = predictor.predict_inputs(items)
    assert answers[0]["composition"] == "Si" and "composition" not in answers[1]
    assert answers[2]["modality"] == "formula"
    assert not np.isclose(answers[0]["top_k"][0]["probability"], answers[1]["top_k"][0]["probability"])
    # without a formula model, the patterns given a composition get an error each and the others their answers
    without = Predictor(predictor.xrd, None).predict_inputs(items[:2])
    assert "formula model" in without[0]["error"] and without[1]["space_group"] == answers[1]["space_group"]


def test_a_table_gives_each_pattern_its_own_composition(predictor, tmp_path):
    from tasks.readers import FormulaError, read_compositions

    for name in ("Si_diamond_CuKa.xy", "TiO2_rutile_CuKa.xy", "ZnO_wurtzite_CuKa.xy"):
        (tmp_path / name.replace("_CuKa", "")).write_bytes((EXAMPLES / name).read_bytes())
    (tmp_path / "my sample.xy").write_bytes((EXAMPLES / "ZnO_wurtzite_CuKa.xy").read_bytes())
    table = tmp_path / "compositions.csv"
    table.write_text("\ufefffile,formula\nSi_diamond.xy,Si\nTiO2_rutile.xy,TiO2  # rutile\n\n", encoding="utf-8")
    spaced = tmp_path / "spaced.txt"
    spaced.write_text("\ufeffmy sample.xy ZnO\n", encoding="utf-8")  # a spreadsheet's byte-order mark
    compositions = read_compositions(table)
    assert compositions == {str((tmp_path / "Si_diamond.xy").resolve()): "Si",
                            str((tmp_path / "TiO2_rutile.xy").resolve()): "TiO2"}
    assert read_compositions(spaced) == {str((tmp_path / "my sample.xy").resolve()): "ZnO"}  # names with spaces
    answers = {Path(r["input"]).name: r for r in predictor.predict_paths([tmp_path], composition=compositions)}
    assert answers["Si_diamond.xy"]["composition"] == "Si" and answers["TiO2_rutile.xy"]["composition"] == "TiO2"
    assert answers["TiO2_rutile.xy"]["space_group"]["symbol"] == "P4_2/mnm"
    assert "composition" not in answers["ZnO_wurtzite.xy"] and answers["ZnO_wurtzite.xy"]["prior"] == "mp"
    assert "error" in answers["compositions.csv"]  # not a pattern: named like any other unknown file
    for text, message in (("a.xy\n", "line 1 has 1 field"), ("a.xy, Fe2O3, x\n", "line 1 has 3 field"),
                          ("a.xy, Qq2\n", "line 1: 'Qq' in formula 'Qq2' is not a chemical element"),
                          ("# nothing\n", "lists no pattern file")):
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(FormulaError, match=message):
            read_compositions(bad)


def test_a_composition_is_answered_by_the_formula_model_once(predictor, monkeypatch):
    import tasks.predict as predict_module

    fresh = Predictor(predictor.xrd, predictor.formula)
    calls = []
    original = fresh.formula.model.predict_proba
    monkeypatch.setattr(fresh.formula.model, "predict_proba", lambda X, *a: calls.append(len(X)) or original(X, *a))
    monkeypatch.setattr(predict_module, "COMPOSITION_CACHE_SIZE", 2)
    silicon = read_pattern(EXAMPLES / "Si_diamond_CuKa.xy")
    first = fresh.predict_pattern(silicon, "si", composition="Si")
    assert fresh.predict_pattern(silicon, "si", composition="Si") == first and len(calls) == 1
    for composition in ("Ge", "C", "Si"):  # two others push Si out of a cache of two: answered again
        fresh.predict_pattern(silicon, "si", composition=composition)
    assert len(calls) == 4 and len(fresh._composition_answers) == 2


def test_a_film_showing_one_or_two_families_of_planes_is_answered_with_a_warning_and_abstained_on(predictor):
    from tasks.patterns import PowderPattern

    # a (100)-textured CsPbBr3 film (a = 5.87 Å): only its (100), (200) and (300) lines, Cu Kα
    two_theta = np.linspace(5, 60, 2751)
    orders = [2 * np.degrees(np.arcsin(1.54184 * n / (2 * 5.87))) for n in (1, 2, 3)]
    lines = sum(h * np.exp(-(((two_theta - c) / 0.08) ** 2)) for c, h in zip(orders, (1000, 400, 80)))
    film = PowderPattern(two_theta, 50 + lines + np.random.default_rng(3).normal(0, 2, len(two_theta)), 1.54184,
                         "film")
    alone = predictor.predict_pattern(film, "film")
    assert alone["abstained"] and "space_group" in alone and len(alone["warnings"]) == 1
    assert alone["warnings"][0].startswith("all 3 peaks are orders of one reflection (d = 5.8")
    assert "so few plane spacings cannot fix a lattice" in alone["warnings"][0]
    assert "confidence is overstated" in alone["warnings"][0]
    with_formula = predictor.predict_pattern(film, "film", composition="CsPbBr3")
    assert "leans on the composition" in with_formula["warnings"][0]
    threshold = predictor.xrd.model.abstain_threshold
    assert with_formula["abstained"] == (with_formula["top_k"][0]["probability"] < threshold)
    # grains of a second orientation add (110): two families, still too few
    d_110 = 5.87 / np.sqrt(2)
    tilted = PowderPattern(two_theta, film.intensity + 300 * np.exp(
        -(((two_theta - 2 * np.degrees(np.arcsin(1.54184 / (2 * d_110)))) / 0.08) ** 2)), 1.54184, "two orientations")
    assert "orders of two reflections (d = 5.870 and 4.15" in predictor.predict_pattern(tilted, "two")["warnings"][0]
    # and a third, (111): a lattice could be fitted, so no warning
    d_111 = 5.87 / np.sqrt(3)
    three = PowderPattern(two_theta, tilted.intensity + 200 * np.exp(
        -(((two_theta - 2 * np.degrees(np.arcsin(1.54184 / (2 * d_111)))) / 0.08) ** 2)), 1.54184, "three")
    assert "warnings" not in predictor.predict_pattern(three, "three")
    silicon = predictor.predict_pattern(read_pattern(EXAMPLES / "Si_diamond_CuKa.xy"), "si")
    assert "warnings" not in silicon and not silicon["abstained"]
