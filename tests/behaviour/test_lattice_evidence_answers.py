"""`--lattice-evidence`: a pattern's answer corrected by its indexed cells, reported with them; refused by name
for a model trained without it, per input where a batch mixes both."""

import numpy as np
import pytest

from tasks.crystallography import CRYSTAL_SYSTEMS
from tasks.features import XRD_FEATURE_VERSION, XRDPatternFeaturizer
from tasks.inputs import InputError, parse_prediction_input
from tasks.lattice_evidence import LATTICE_SEARCHES, LatticeEvidence, lattice_cells
from tasks.models import SpaceGroupClassifier
from tasks.predict import LoadedModel, PredictionError, Predictor
from tasks.pretrained import shipped_models
from tests.science.test_cells import ORTHORHOMBIC, measured_like

ORTHORHOMBIC_M_ABOVE_20 = 2 * len(LATTICE_SEARCHES) + list(LATTICE_SEARCHES).index("orthorhombic")


def _shipped_xrd() -> SpaceGroupClassifier:
    return SpaceGroupClassifier.from_bytes({m.modality: m for m in shipped_models()}["xrd"].artifact)


@pytest.fixture(scope="module")
def predictors():
    """The shipped XRD model with a stage that trusts an orthorhombic cell of M > 20 strongly, and without one."""
    with_stage, without = _shipped_xrd(), _shipped_xrd()
    weights = np.zeros((3 * len(LATTICE_SEARCHES), len(CRYSTAL_SYSTEMS)))
    weights[ORTHORHOMBIC_M_ABOVE_20, CRYSTAL_SYSTEMS.index("orthorhombic")] = 8.0
    with_stage.lattice_evidence_, without.lattice_evidence_ = LatticeEvidence(weights), None
    return (Predictor(LoadedModel(with_stage, None, "with-stage", XRD_FEATURE_VERSION)),
            Predictor(LoadedModel(without, None, "without-stage", XRD_FEATURE_VERSION)))


@pytest.fixture(scope="module")
def marcasite():
    return measured_like(ORTHORHOMBIC["marcasite"][0], 0.002, 0.03)


def test_the_cells_correct_the_answer_and_come_with_it(predictors, marcasite):
    predictor, _ = predictors
    plain = predictor.predict_pattern(marcasite, "marcasite")
    corrected = predictor.predict_pattern(marcasite, "marcasite", lattice_evidence=True)
    assert "lattice_evidence" not in plain
    cells = corrected["lattice_evidence"]
    assert set(cells) == set(LATTICE_SEARCHES) and cells["orthorhombic"]["de_wolff_m"] > 20
    assert corrected["crystal_system"] == "orthorhombic" and corrected["crystal_system_probability"] > 0.9
    # the answer is the model's, given the cells of the pattern's feature row
    model = predictor.xrd.model
    X = XRDPatternFeaturizer().featurize_many([marcasite])
    expected = model.predict_proba(X, predictor._xrd_prior, lattice_cells(X, XRD_FEATURE_VERSION))[0]
    assert corrected["top_k"][0]["probability"] == pytest.approx(expected.max(), abs=1e-6)
    assert corrected["space_group"]["number"] == model.classes_[expected.argmax()]


def test_a_batch_asks_per_input_and_a_model_without_the_stage_refuses_only_those(predictors, marcasite):
    spec = {"two_theta_deg": marcasite.two_theta_deg.tolist(), "intensity": marcasite.intensity.tolist()}
    plain = parse_prediction_input({"xrd": spec, "name": "plain"})
    asked = parse_prediction_input({"xrd": spec | {"lattice_evidence": True}, "name": "asked"})
    assert asked.lattice_evidence and not plain.lattice_evidence and asked.input_hash != plain.input_hash
    with_stage, without = predictors
    answers = with_stage.predict_inputs([plain, asked])
    assert "lattice_evidence" not in answers[0] and "lattice_evidence" in answers[1]
    refused, answered = without.predict_inputs([asked, plain])
    assert "--lattice-evidence" in refused["error"] and "without-stage" in refused["error"]
    assert answered["space_group"]["number"] == answers[0]["space_group"]["number"]


def test_files_are_not_read_for_a_model_without_the_stage(predictors, tmp_path):
    _, without = predictors
    with pytest.raises(PredictionError, match="trained without the lattice evidence"):
        next(without.predict_paths([tmp_path / "not-even-there.xy"], lattice_evidence=True))


def test_a_flag_that_is_not_true_or_false_is_named(marcasite):
    spec = {"two_theta_deg": marcasite.two_theta_deg.tolist(), "intensity": marcasite.intensity.tolist()}
    with pytest.raises(InputError, match="'xrd.lattice_evidence' must be true or false"):
        parse_prediction_input({"xrd": spec | {"lattice_evidence": "yes"}})
