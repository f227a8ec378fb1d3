"""The HTTP API on a real loopback server: auth matrix, predictions, batch jobs, models, data, analytics, errors."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "tasks" / "examples"
PUBLIC = {("GET", "/health"), ("GET", "/openapi.json"), ("GET", "/metrics"), ("POST", "/webhooks/batch")}


def routes(app) -> list[tuple[str, str, str | None]]:
    """(method, path with ids filled in, role needed) for every route of the app."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        view = app.view_functions[rule.endpoint]
        role = getattr(view, "_spacegroup_role", None)
        path = rule.rule.replace("<id:job_id>", "999999").replace("<id:model_id>", "999999") \
            .replace("<id:dataset_id>", "999999")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((method, path, role))
    return out


def test_every_route_is_public_or_needs_a_role(live):
    for method, path, role in routes(live.app):
        if (method, path) in PUBLIC:
            assert role is None
        else:
            assert role in ("user", "admin"), f"{method} {path} has no auth requirement"


@pytest.mark.parametrize("who", [None, "wrong", "user", "admin"])
def test_auth_matrix_on_every_route(live, who):
    for method, path, role in routes(live.app):
        if role is None:
            continue
        kwargs = {"json": {}} if method in ("POST", "PUT") and "upload" not in path else {}
        if path == "/models/train":
            kwargs = {}  # an empty body would start a training: only check the refusals here
            if who == "admin":
                continue
        response = live.request(method, path, who=who, **kwargs)
        if who in (None, "wrong"):
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["Content-Type"] == "application/problem+json"
            assert "Bearer" in response.headers.get("WWW-Authenticate", "")
        elif who == "user" and role == "admin":
            assert response.status_code == 403, (method, path, response.text)
        else:
            assert response.status_code not in (401, 403, 500), (method, path, response.text)


def test_health_and_status(live):
    assert live.request("GET", "/health", who=None).json() == {"status": "ok"}
    status = live.request("GET", "/status").json()
    assert status["champions"]["xrd"]["id"] and status["champions"]["formula"]["id"]
    assert status["uptime_s"] >= 0 and status["version"]


def _pattern(n: int = 700) -> dict:
    tt = np.linspace(10, 80, n)
    y = 1 + 100 * np.exp(-((tt - 31.7) / 0.1) ** 2) + 60 * np.exp(-((tt - 45.5) / 0.1) ** 2)
    return {"two_theta_deg": tt.tolist(), "intensity": y.tolist(), "wavelength": "CuKa"}


def test_predict_pattern_formula_structure_match_the_cli_contract(live):
    keys = {"input", "modality", "space_group", "crystal_system", "crystal_system_probability",
            "extinction_group", "top_k", "abstained", "model_version", "inference_ms", "prior"}
    xrd = live.request("POST", "/predict", json={"xrd": _pattern(), "top_k": 3}).json()
    assert keys <= set(xrd) and len(xrd["top_k"]) == 3 and xrd["modality"] == "xrd"
    # the line at 45.5° taken out, as a substrate's would be
    excluded = live.request("POST", "/predict", json={"xrd": _pattern() | {"exclude_two_theta_deg": [[45, 46]]},
                                                      "top_k": 3}).json()
    assert excluded["excluded_two_theta_deg"] == [[45.0, 46.0]] and "excluded_two_theta_deg" not in xrd
    assert excluded["top_k"] != xrd["top_k"]
    on_silicon = live.request("POST", "/predict", json={"xrd": _pattern() | {"substrate": ["Si"]}, "top_k": 3}).json()
    assert "excluded_two_theta_deg" not in on_silicon and on_silicon["top_k"] == xrd["top_k"]  # no Si lines in it
    with_composition = live.request("POST", "/predict", json={"xrd": _pattern() | {"composition": "Fe2O3"},
                                                               "top_k": 3}).json()
    assert keys <= set(with_composition) and with_composition["composition"] == "Fe2O3"
    assert with_composition["prior"] == "composition" and with_composition["top_k"] != xrd["top_k"]
    bad = live.request("POST", "/predict", json={"xrd": _pattern() | {"composition": ["Fe", "O"]}})
    assert bad.status_code == 422 and "'xrd.composition' must be the sample's formula" in bad.json()["detail"]
    formula = live.request("POST", "/predict", json={"formula": "Fe2O3"}).json()
    assert keys <= set(formula) and len(formula["top_k"]) == 5
    cif = (EXAMPLES / "NaCl_rocksalt.cif").read_text()
    structure = live.request("POST", "/predict", json={"structure": {"cif": cif}}).json()
    assert structure["space_group"]["number"] == 225 and structure["crystal_system"] == "cubic"
    poscar = (EXAMPLES / "POSCAR_TiO2_rutile").read_text()
    assert live.request("POST", "/predict", json={"structure": {"poscar": poscar}}).json()["space_group"]["number"] == 136


def test_an_orthorhombic_answer_gets_its_cell_in_its_space_groups_setting(live):
    from tests.science.test_cells import ORTHORHOMBIC, measured_like

    structure, _, a, b, c = ORTHORHOMBIC["marcasite"]
    pattern = measured_like(structure, 0.0, 0.03)
    body = {"xrd": {"two_theta_deg": pattern.two_theta_deg.tolist(), "intensity": pattern.intensity.tolist(),
                    "composition": "FeS2"}, "cell": True}
    answer = live.request("POST", "/predict", json=body).json()
    assert answer["space_group"]["symbol"] == "Pnnm", answer["top_k"]
    cell = answer["cell"]
    assert cell["lattice"] == "oP" and cell["reflection_conditions"] == "space group"
    assert [cell["a_angstrom"], cell["b_angstrom"], cell["c_angstrom"]] == pytest.approx([a, b, c], rel=2e-3)


def test_the_lattice_evidence_is_asked_per_pattern_and_reported(live):
    from tasks.readers import read_pattern

    pattern = read_pattern(EXAMPLES / "ZnO_wurtzite_CuKa.xy")
    spec = {"two_theta_deg": pattern.two_theta_deg.tolist(), "intensity": pattern.intensity.tolist()}
    plain = live.request("POST", "/predict", json={"xrd": spec}).json()
    answer = live.request("POST", "/predict", json={"xrd": spec | {"lattice_evidence": True}}).json()
    assert "lattice_evidence" not in plain
    assert set(answer["lattice_evidence"]) == {"orthorhombic", "cubic", "tetragonal", "hexagonal"}
    assert answer["lattice_evidence"]["hexagonal"]["de_wolff_m"] > 20
    assert answer["crystal_system_probability"] != plain["crystal_system_probability"]
    with open(EXAMPLES / "ZnO_wurtzite_CuKa.xy", "rb") as fh:
        uploaded = live.request("POST", "/predict", files={"file": ("ZnO.xy", fh)},
                                data={"lattice_evidence": "true"}).json()
    assert uploaded["lattice_evidence"] == answer["lattice_evidence"]
    bad = live.request("POST", "/predict", json={"xrd": spec | {"lattice_evidence": "yes"}})
    assert bad.status_code == 422 and "'xrd.lattice_evidence' must be true or false" in bad.json()["detail"]


def test_a_cell_is_indexed_for_a_pattern_on_request(live):
    from tasks.readers import read_pattern

    pattern = read_pattern(EXAMPLES / "ZnO_wurtzite_CuKa.xy")
    body = {"xrd": {"two_theta_deg": pattern.two_theta_deg.tolist(), "intensity": pattern.intensity.tolist()}}
    plain = live.request("POST", "/predict", json=body).json()
    assert "cell" not in plain
    answer = live.request("POST", "/predict", json=body | {"cell": True}).json()
    assert answer["crystal_system"] == "hexagonal", answer["crystal_system"]
    cell = answer["cell"]
    # the example's cell: ZnO's 3.250 / 5.207 Å under the -0.78 % strain it was simulated with (bench/make_examples.py)
    assert cell["lattice"] == "hP" and abs(cell["a_angstrom"] - 3.2246) < 0.005
    assert abs(cell["c_angstrom"] - 5.1663) < 0.01
    assert cell["b_angstrom"] is None and cell["beta_deg"] is None and cell["reflection_conditions"] == "lattice"
    with open(EXAMPLES / "ZnO_wurtzite_CuKa.xy", "rb") as fh:
        uploaded = live.request("POST", "/predict", files={"file": ("ZnO.xy", fh)}, data={"cell": "true"}).json()
    assert uploaded["cell"] == cell
    bad = live.request("POST", "/predict", json=body | {"cell": "yes"})
    assert bad.status_code == 400 and "'cell' must be true or false" in bad.json()["detail"]
    formula = live.request("POST", "/predict", json={"formula": "ZnO", "cell": True}).json()
    assert "cell" not in formula  # only patterns are indexed


def test_predict_file_uploads(live):
    xy = EXAMPLES / "Si_diamond_CuKa.xy"
    with open(xy, "rb") as fh:
        result = live.request("POST", "/predict", files={"file": (xy.name, fh)}, data={"top_k": "2"}).json()
    assert result["modality"] == "xrd" and len(result["top_k"]) == 2
    with open(xy, "rb") as fh:
        excluded = live.request("POST", "/predict", files={"file": (xy.name, fh)},
                                data={"top_k": "2", "exclude_two_theta_deg": "27.9-28.9, 46.7-47.7"}).json()
    assert excluded["excluded_two_theta_deg"] == [[27.9, 28.9], [46.7, 47.7]] and excluded["top_k"] != result["top_k"]
    with open(xy, "rb") as fh:
        bad_region = live.request("POST", "/predict", files={"file": (xy.name, fh)},
                                  data={"exclude_two_theta_deg": "28.9-27.9"})
    assert bad_region.status_code == 422 and "start must be below its end" in bad_region.json()["detail"]
    cif = EXAMPLES / "NaCl_rocksalt.cif"
    with open(cif, "rb") as fh:
        assert live.request("POST", "/predict", files={"file": (cif.name, fh)}).json()["space_group"]["number"] == 225
    bad = live.request("POST", "/predict", files={"file": ("notes.docx", b"hello")})
    assert bad.status_code == 422 and "unknown file type" in bad.json()["detail"]
    from tasks.readers import read_pattern
    from tests.science.test_xrdml import CU_DOUBLET, _start_end, xrdml

    pattern = read_pattern(xy)
    scan = xrdml(_start_end(pattern.two_theta_deg[0], pattern.two_theta_deg[-1]),
                 " ".join(f"{v:g}" for v in pattern.intensity), CU_DOUBLET)
    from_xrdml = live.request("POST", "/predict", files={"file": ("Si.xrdml", scan)}, data={"top_k": "2"}).json()
    assert from_xrdml["modality"] == "xrd" and from_xrdml["space_group"] == result["space_group"]
    broken = live.request("POST", "/predict", files={"file": ("Si.xrdml", scan[:-40])})
    assert broken.status_code == 422 and "not a readable XRDML file" in broken.json()["detail"]
    from tests.science.test_instrument_formats import brml, ras, raw_data_xml

    tt, y = pattern.two_theta_deg, pattern.intensity
    archive = brml({"Experiment0/RawData0.xml": raw_data_xml(tt, y, tt[0], tt[-1], float(tt[1] - tt[0]))})
    for name, content in (("Si.brml", archive), ("Si.ras", ras([[(a, b, 1.0) for a, b in zip(tt, y)]]))):
        answer = live.request("POST", "/predict", files={"file": (name, content)}, data={"top_k": "2"}).json()
        assert answer["space_group"] == result["space_group"], name
    broken = live.request("POST", "/predict", files={"file": ("Si.brml", archive[:200])})
    assert broken.status_code == 422 and "not a readable BRML file" in broken.json()["detail"]
    q = 4 * np.pi * np.sin(np.radians(tt) / 2) / 1.54184
    q_file = ("# Wavelength: 7.2932e-11 m\n#  q_A^-1  I\n" + "".join(f"{a:.6e} {b:.6e}\n" for a, b in zip(q, y)))
    answer = live.request("POST", "/predict", files={"file": ("Si_q.xy", q_file.encode())}, data={"top_k": "2"})
    assert answer.json()["space_group"] == result["space_group"]
    from tests.science.test_gsas import gsas_fxye

    fxye = gsas_fxye(tt, y).encode()  # a GSAS file does not say its wavelength: it is asked for, not assumed
    silent = live.request("POST", "/predict", files={"file": ("Si.fxye", fxye)})
    assert silent.status_code == 422 and "does not say its wavelength" in silent.json()["detail"]
    answer = live.request("POST", "/predict", files={"file": ("Si.fxye", fxye)}, data={"wavelength": "CuKa"})
    assert answer.json()["space_group"] == result["space_group"]
    with open(xy, "rb") as fh:
        with_composition = live.request("POST", "/predict", files={"file": (xy.name, fh)},
                                        data={"composition": "Si"}).json()
    assert with_composition["composition"] == "Si" and with_composition["prior"] == "composition"
    assert with_composition["space_group"] == result["space_group"]  # Fd-3m, with or without it
    bad_composition = live.request("POST", "/predict", files={"file": ("Si.fxye", fxye)},
                                   data={"wavelength": "CuKa", "composition": "Xq2"})
    assert bad_composition.status_code == 422 and "'composition'" in bad_composition.json()["detail"]


@pytest.mark.parametrize("body,status,words", [
    ({"formula": "Xx2"}, 422, "not a chemical element"),
    ({"formula": 3}, 422, "must be a string"),
    ({"xrd": {"two_theta_deg": [1, 2, 3]}}, 422, "missing 'intensity'"),
    ({"xrd": {"two_theta_deg": list(range(10)), "intensity": list(range(10))}}, 422, "at least 50"),
    ({"xrd": {"two_theta_deg": [float(i) for i in range(60)][::-1], "intensity": [1.0] * 60}}, 422, "falls throughout"),
    ({"xrd": {"two_theta_deg": list(range(60)), "intensity": [1] * 60, "wavelength": "Unobtainium"}}, 422, "wavelength"),
    ({"xrd": {"two_theta_deg": list(range(60)), "intensity": [1] * 60, "exclude_two_theta_deg": [[30, 20]]}}, 422,
     "start must be below its end"),
    ({"xrd": {"two_theta_deg": list(range(60)), "intensity": [1] * 60, "exclude_two_theta_deg": "20-30"}}, 422,
     "array of [start, end] pairs"),
    ({"xrd": {"two_theta_deg": list(range(60)), "intensity": [1] * 60, "substrate": "glass"}}, 422,
     "unknown substrate 'glass'"),
    ({"xrd": {"two_theta_deg": list(range(60)), "intensity": [1] * 60, "substrate": {"FTO": 1}}}, 422,
     "'xrd.substrate' must be a name or an array of names"),
    ({"structure": {"cif": "data_x\nloop_\n"}}, 422, "not a readable structure"),
    ({"structure": {"cif": "a", "poscar": "b"}}, 422, "one of 'cif' or 'poscar'"),
    ({"formula": "NaCl", "xrd": {}}, 422, "exactly one"),
    ({}, 422, "exactly one"),
    ({"formula": "NaCl", "top_k": 0}, 400, "top_k"),
    ([1, 2], 400, "must be an object"),
])
def test_bad_input_is_a_problem_document_never_a_500(live, body, status, words):
    response = live.request("POST", "/predict", json=body)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and words in problem["detail"] and "Traceback" not in response.text


def test_limits_body_size_pattern_length_and_atoms(live):
    huge = live.request("POST", "/predict", data=b"x" * 2_100_000, headers={"Content-Type": "application/json"})
    assert huge.status_code == 413 and "larger than" in huge.json()["detail"]
    long = {"xrd": {"two_theta_deg": np.linspace(5, 90, 25_000).tolist(), "intensity": [1.0] * 25_000}}
    too_long = live.request("POST", "/predict", json=long)
    assert too_long.status_code == 422 and "at most 20000" in too_long.json()["detail"]
    from pymatgen.core import Lattice, Structure

    big = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [.5, .5, .5]])
    big.make_supercell([4, 4, 4])  # 512 atoms
    response = live.request("POST", "/predict", json={"structure": {"poscar": big.to(fmt="poscar")}})
    assert response.status_code == 422 and "at most 200" in response.json()["detail"]


def test_not_json_and_unknown_routes(live):
    assert live.request("POST", "/predict", data="formula=NaCl",
                        headers={"Content-Type": "text/plain"}).status_code == 415
    broken = live.request("POST", "/predict", data="{not json", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["detail"]
    nan = live.request("POST", "/predict", data='{"xrd": {"two_theta_deg": [NaN], "intensity": [1]}}',
                       headers={"Content-Type": "application/json"})
    assert nan.status_code == 400 and "NaN and Infinity are not JSON numbers" in nan.json()["detail"]
    missing = live.request("GET", "/nowhere")
    assert missing.status_code == 404 and missing.headers["Content-Type"] == "application/problem+json"
    assert live.request("DELETE", "/predict").status_code == 405


def _wait_job(live, job_id: int, timeout_s: float = 60) -> dict:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        job = live.request("GET", f"/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_batch_job_status_and_paginated_results(live):
    from tasks.readers import read_pattern

    zinc_oxide = read_pattern(EXAMPLES / "ZnO_wurtzite_CuKa.xy")
    zno = {"two_theta_deg": zinc_oxide.two_theta_deg.tolist(), "intensity": zinc_oxide.intensity.tolist()}
    items = [{"formula": f} for f in ("NaCl", "Fe2O3", "SiO2", "Zz", "TiO2")] + [
        {"xrd": _pattern() | {"exclude_two_theta_deg": [[45, 46]]}}, {"xrd": zno, "cell": True},
        {"xrd": zno, "cell": "yes"}, {"xrd": zno | {"composition": "ZnO"}}, {"xrd": zno | {"composition": "Zq"}}]
    accepted = live.request("POST", "/predict/batch", json={"items": items, "top_k": 2})
    assert accepted.status_code == 202
    job = _wait_job(live, accepted.json()["job_id"])
    assert job["status"] == "done" and job["n_done"] == 7 and job["n_failed"] == 3 and job["progress"] == 1.0
    first = live.request("GET", f"/jobs/{job['job_id']}/results?limit=4").json()
    assert [i["item_index"] for i in first["items"]] == [0, 1, 2, 3] and first["next"]
    second = live.request("GET", first["next"]).json()
    assert [i["item_index"] for i in second["items"]] == [4, 5, 6, 7] and second["next"]
    third = live.request("GET", second["next"]).json()
    assert [i["item_index"] for i in third["items"]] == [8, 9] and third["next"] is None
    assert third["items"][0]["result"]["composition"] == "ZnO" and third["items"][0]["result"]["prior"] == "composition"
    assert "'xrd.composition'" in third["items"][1]["error"]
    assert second["items"][1]["result"]["excluded_two_theta_deg"] == [[45.0, 46.0]]
    assert "cell" not in second["items"][1]["result"] and second["items"][2]["result"]["cell"]["lattice"] == "hP"
    assert "'cell' must be true or false" in second["items"][3]["error"]
    assert "not a chemical element" in first["items"][3]["error"]
    assert len(first["items"][0]["result"]["top_k"]) == 2
    assert live.request("GET", "/jobs/999999").status_code == 404
    assert live.request("GET", f"/jobs/{job['job_id']}/results?limit=0").status_code == 400


def test_batch_refuses_bad_jobs(live):
    assert live.request("POST", "/predict/batch", json={"items": []}).status_code == 422
    paths = live.request("POST", "/predict/batch", json={"items": [{"path": "/etc/passwd"}]})
    assert paths.status_code == 422 and "not file paths" in paths.json()["detail"]
    off_list = live.request("POST", "/predict/batch", json={"items": [{"formula": "NaCl"}],
                                                            "callback_url": "http://10.0.0.1/hook"})
    assert off_list.status_code == 422 and "allow-list" in off_list.json()["detail"]


def test_models_list_show_promote(live):
    models = live.request("GET", "/models").json()["models"]
    assert {m["modality"] for m in models} == {"xrd", "formula"}
    champion = next(m for m in models if m["modality"] == "xrd" and m["stage"] == "champion")
    detail = live.request("GET", f"/models/{champion['id']}").json()
    assert detail["artifact_sha256"] and "metrics" in detail
    assert live.request("POST", f"/models/{champion['id']}/promote", who="admin").json()["stage"] == "champion"
    from storage.registry import register_model

    service = live.app.extensions["spacegroup"]
    old = register_model(service.engine, service.store, b"trained before an upgrade", name="old", modality="xrd",
                         feature_version="xrd-older", parameters={}, metrics={})
    refused = live.request("POST", f"/models/{old.id}/promote", who="admin")
    assert refused.status_code == 409 and "cannot answer" in refused.json()["detail"]
    assert live.request("GET", f"/models/{champion['id']}").json()["stage"] == "champion"
    assert live.request("GET", "/models/999999").status_code == 404
    assert live.request("GET", "/models?modality=neutron").status_code == 400


def test_train_parameters_are_checked(live):
    bad = live.request("POST", "/models/train", who="admin", json={"n_estimators": "many"})
    assert bad.status_code == 400 and "n_estimators" in bad.json()["detail"]
    unknown = live.request("POST", "/models/train", who="admin", json={"learning_rate": 3})
    assert unknown.status_code == 400 and "unknown parameter" in unknown.json()["detail"]


def _zip_of(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def test_data_upload_get_delete_and_bad_uploads_lose_nothing(live):
    from storage.materials import material_count

    cif = (EXAMPLES / "NaCl_rocksalt.cif").read_text()
    poscar = (EXAMPLES / "POSCAR_TiO2_rutile").read_text()
    upload = live.request("POST", "/data/upload",
                          files={"file": ("set.zip", _zip_of({"a.cif": cif, "POSCAR_b": poscar, "c.cif": "junk"}))})
    assert upload.status_code == 201, upload.text
    body = upload.json()
    assert body["counts"]["added"] == 2 and body["counts"]["quarantined"] == 1 and body["n_materials"] == 2
    stored_before = material_count(live.state.engine)

    for name, data in (("broken.zip", b"not a zip"), ("empty.zip", _zip_of({"x.cif": "junk"})),
                       ("notes.txt", b"hello")):
        bad = live.request("POST", "/data/upload", files={"file": (name, data)})
        assert bad.status_code == 422, (name, bad.text)
    assert material_count(live.state.engine) == stored_before, "a bad upload changes nothing stored"

    fetched = live.request("GET", f"/data/{body['id']}").json()
    assert fetched["n_materials"] == 2 and fetched["n_quarantined"] == 1
    assert live.request("DELETE", f"/data/{body['id']}", who="user").status_code == 403
    assert live.request("DELETE", f"/data/{body['id']}", who="admin").status_code == 200
    assert live.request("GET", f"/data/{body['id']}").status_code == 404


def test_analytics_metrics_and_errors(live):
    live.request("POST", "/predict", json={"formula": "NaCl"})
    live.request("POST", "/predict", json={"formula": "Qq"})
    analytics = live.request("GET", "/analytics/predictions?start=2020-01-01").json()
    assert analytics["n_predictions"] >= 2 and analytics["n_errors"] >= 1
    assert analytics["latency_ms"]["p50"] is not None and analytics["crystal_systems"]
    assert live.request("GET", "/analytics/predictions?start=yesterday").status_code == 400
    errors = live.request("GET", "/analytics/errors", who="admin").json()
    assert errors["n_errors"] >= 1 and any("Qq" in e["error"] for e in errors["most_common"])
    metrics = live.request("GET", "/metrics", who=None).text
    assert 'spacegroup_predictions_total{modality="formula",outcome="ok"}' in metrics
    assert "spacegroup_http_request_seconds_bucket" in metrics


def test_rate_limit_is_per_key(live):
    import threading

    from werkzeug.serving import make_server

    from storage.keys import create_api_key
    from webhooks.app import create_app

    app = create_app(live.state.settings.model_copy(update={"api_rate_limit_per_minute": 3}))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/status"
        keys = [create_api_key(live.state.engine, "user", f"rate {i}")[1] for i in range(2)]
        first = [live.session.get(url, headers={"Authorization": f"Bearer {keys[0]}"}).status_code for _ in range(5)]
        other = live.session.get(url, headers={"Authorization": f"Bearer {keys[1]}"})
    finally:
        server.shutdown()
    assert first[:3] == [200, 200, 200] and first[3:] == [429, 429]
    assert other.status_code == 200, "another key has its own budget"


def test_openapi_document_matches_the_routes(live):
    document = live.request("GET", "/openapi.json", who=None).json()
    assert document["openapi"].startswith("3.1")
    documented = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    served = set()
    for rule in live.app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<id:", "{").replace(">", "}")
        served |= {(m, path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == documented


def test_every_prediction_is_recorded(live):
    from sqlalchemy import func, select
    from sqlmodel import Session

    from storage.tables import Prediction

    live.state.recorder.flush()
    with Session(live.state.engine) as session:
        before = session.execute(select(func.count()).select_from(Prediction)).scalar_one()
    live.request("POST", "/predict", json={"formula": "MgO"})
    live.request("POST", "/predict", json={"formula": ""})
    live.state.recorder.flush()
    with Session(live.state.engine) as session:
        rows = session.execute(select(Prediction).order_by(Prediction.id.desc()).limit(2)).scalars().all()
        after = session.execute(select(func.count()).select_from(Prediction)).scalar_one()
    assert after == before + 2
    ok, bad = rows[1], rows[0]
    assert ok.model_version_id and ok.input_hash and ok.latency_ms > 0 and ok.space_group_number
    assert bad.error and "empty" in bad.error


def test_json_dump_roundtrip_of_problem(live):
    problem = live.request("POST", "/predict", json={"formula": "Xx"}).json()
    assert set(problem) >= {"type", "title", "status", "detail"}
    json.dumps(problem)
