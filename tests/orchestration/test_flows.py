"""The Prefect flows, run for real on a temporary Prefect server (Prefect's test harness) on small data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from storage.tables import BatchJob, DatasetVersion, DriftReport, Material, ModelVersion, Prediction

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def artifact_markdown(key: str) -> str | None:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read():
        async with get_client() as client:
            found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
            return found[0].data if found else None

    return asyncio.run(read())


def engine_now():
    from storage.engine import get_engine

    return get_engine()


def test_refresh_flow_twice_then_a_change_runs_drift(prefect_harness, mp_env):
    from flows.refresh import refresh_flow

    first = refresh_flow(chunk_size=25)
    assert first["dataset_created"] and first["counts"]["added"] == len(mp_env.documents)
    report = artifact_markdown("refresh-report")
    assert report and "| added |" in report and "Crystal systems" in report
    assert first["drift"].get("report_id"), "a changed dataset is checked for drift"
    assert first["drift"]["traffic"]["window_days"] == 30, "real API traffic is part of the drift report"

    second = refresh_flow(chunk_size=25)
    assert not second["dataset_created"] and second["dataset_version_id"] == first["dataset_version_id"]
    assert "drift" not in second

    mp_env.update(mp_env.order[0], last_updated="2026-11-21 00:00:00", deprecated=True)
    third = refresh_flow(chunk_size=25)
    assert third["counts"]["deprecated"] == 1 and third["dataset_created"]
    engine = engine_now()
    with Session(engine) as session:
        assert session.execute(select(func.count()).select_from(DriftReport)).scalar_one() == 2
        assert session.execute(select(func.count()).select_from(DatasetVersion)).scalar_one() == 2
    assert "Drift:" in artifact_markdown("drift-report")


def test_retrain_flow_trains_on_the_newest_dataset_and_judges_on_frozen_holdout(prefect_harness, mp_env):
    from flows.refresh import refresh_flow
    from flows.retrain import retrain_flow

    refresh_flow(check_drift=False)
    result = retrain_flow(n_estimators=30, n_augment=1)
    assert result["dataset_version_id"] is not None
    engine = engine_now()
    with Session(engine) as session:
        candidate = session.get(ModelVersion, result["candidate_id"])
    assert candidate.dataset_version_id == result["dataset_version_id"]
    assert "frozen_holdout" in candidate.metrics
    assert candidate.parameters["model"]["structure_type_search"]  # real materials: searched by structure type
    assert result["promoted"] == (candidate.stage == "champion")
    markdown = artifact_markdown("retrain-report")
    assert "| sg_top1 |" in markdown and f"Candidate model **{candidate.id}**" in markdown
    # and a formula challenger on the same dataset's formulas, judged against the shipped formula champion
    with Session(engine) as session:
        formula = session.get(ModelVersion, result["formula"]["candidate_id"])
    assert formula.modality == "formula" and formula.dataset_version_id == result["dataset_version_id"]
    assert formula.metrics["frozen_holdout_formulas"]["n"] > 0
    assert result["formula"]["champion_before"] is not None  # the shipped formula model
    assert result["formula"]["promoted"] == (formula.stage == "champion")
    assert f"Candidate model **{formula.id}**" in artifact_markdown("retrain-formula-report")
    # the features of that dataset are cached by content hash, with the structures' lines for the search's cell
    # refinement: a second retrain reuses them
    cached = list((Path(os.environ["SPACEGROUP_HOME"]) / "cache").glob("features-*-lines.npz"))
    assert cached
    with np.load(cached[0]) as data:
        assert data["lines_hkl"].shape[1:] == (64, 3) and len(data["line_rows"]) == len(data["X"])


class _Receiver:
    """A loopback HTTP server recording callbacks."""

    def __init__(self):
        self.calls: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/done"

    def close(self):
        self.server.shutdown()


def test_batch_predict_flow_stores_each_item_and_calls_back_signed(prefect_harness, spacegroup_home, monkeypatch):
    from flows.batch_predict import batch_predict_flow
    from tasks.settings import get_settings
    from tasks.signing import SIGNATURE_HEADER, verify

    receiver = _Receiver()
    monkeypatch.setenv("SPACEGROUP_WEBHOOK_SECRET", "s3cret")
    monkeypatch.setenv("SPACEGROUP_CALLBACK_ALLOWED_HOSTS", "127.0.0.1")
    get_settings.cache_clear()
    examples = REPO / "tasks" / "examples"
    items = [{"formula": "NaCl"}, {"formula": "Qq2"},
             {"structure": {"cif": (examples / "NaCl_rocksalt.cif").read_text()}}, {"xrd": {"two_theta_deg": [1, 2]}}]
    try:
        summary = batch_predict_flow(items=items, callback_url=receiver.url, top_k=3)
    finally:
        receiver.close()
    assert summary["status"] == "done" and summary["n_done"] == 2 and summary["n_failed"] == 2
    assert summary["callback_status"] == "sent"
    headers, body = receiver.calls[0]
    verify("s3cret", body, headers.get(SIGNATURE_HEADER))
    assert json.loads(body)["job_id"] == summary["job_id"]
    with Session(engine_now()) as session:
        rows = session.execute(select(Prediction).where(Prediction.job_id == summary["job_id"])
                               .order_by(Prediction.item_index)).scalars().all()
    assert [r.item_index for r in rows] == [0, 1, 2, 3]
    assert rows[0].model_version_id is not None and rows[0].space_group_number is not None
    assert "not a chemical element" in rows[1].error
    assert rows[2].result["space_group"]["number"] == 225
    assert "missing 'intensity'" in rows[3].error


def test_batch_callback_to_a_host_off_the_allow_list_is_refused(prefect_harness, spacegroup_home, monkeypatch):
    from flows.batch_predict import batch_predict_flow
    from tasks.settings import get_settings

    monkeypatch.setenv("SPACEGROUP_CALLBACK_ALLOWED_HOSTS", "beamline.example.org")
    get_settings.cache_clear()
    summary = batch_predict_flow(items=[{"formula": "NaCl"}], callback_url="http://169.254.169.254/latest")
    assert summary["status"] == "done"
    assert summary["callback_status"].startswith("refused") and "allow-list" in summary["callback_status"]


def kill_when(proc: subprocess.Popen, progress, at_least: int, timeout_s: float = 120) -> int:
    """SIGKILL ``proc`` as soon as ``progress()`` reaches ``at_least`` (or at the timeout); returns the progress."""
    deadline, value = time.time() + timeout_s, 0
    try:
        while time.time() < deadline:
            value = progress()
            if value >= at_least:
                break
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    return value


KILL_SCRIPT = """
import os, sys
sys.path.insert(0, {repo!r})
from flows.refresh import refresh_flow
refresh_flow(chunk_size=5, check_drift=False)
"""


def test_a_refresh_killed_mid_run_leaves_the_registry_consistent_and_the_rerun_finishes(prefect_harness, mp_env):
    from prefect.settings import PREFECT_API_URL

    from storage.engine import get_engine

    mp_env.delay_s = 0.3  # slow enough to be caught between chunks
    env = dict(os.environ, PREFECT_API_URL=PREFECT_API_URL.value())
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT.format(repo=str(REPO))], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engine = get_engine()

    def materials() -> int:
        try:
            with Session(engine) as session:
                return session.execute(select(func.count()).select_from(Material)).scalar_one()
        except Exception:
            return 0  # the child may still be creating the schema

    count = kill_when(proc, materials, 10)
    assert 10 <= count < len(mp_env.documents), "killed between chunks"
    with Session(engine) as session:
        assert session.execute(select(func.count()).select_from(DatasetVersion)).scalar_one() == 0
        n_killed = session.execute(select(func.count()).select_from(Material)).scalar_one()
    assert n_killed % 5 == 0, "only whole chunks were committed"

    mp_env.delay_s = 0.0
    from flows.refresh import refresh_flow

    result = refresh_flow(chunk_size=5, check_drift=False)
    assert result["counts"]["added"] == len(mp_env.documents) - n_killed
    with Session(engine) as session:
        assert session.execute(select(func.count()).select_from(Material)).scalar_one() == len(mp_env.documents)
        assert session.execute(select(func.count()).select_from(DatasetVersion)).scalar_one() == 1


def test_a_batch_job_killed_mid_run_is_finished_by_the_rerun(prefect_harness, spacegroup_home):
    from storage.artifacts import default_store
    from storage.engine import get_engine
    from tasks.batch import create_job

    engine, store = get_engine(), default_store()
    formulas = ["NaCl", "Fe2O3", "SiO2", "TiO2", "MgO", "ZnS", "GaAs", "CsCl"] * 25
    job, _ = create_job(engine, store, [{"formula": f} for f in formulas])
    script = (f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
              "import time, tasks.batch as b\n"
              "original = b._answer\n"
              "def slow(*a, **k):\n    time.sleep(0.4)\n    return original(*a, **k)\n"
              "b._answer = slow\n"
              "from storage.engine import get_engine\nfrom storage.artifacts import default_store\n"
              "from tasks.serving import load_champion_predictor\nfrom tasks.settings import get_settings\n"
              f"e, s = get_engine(), default_store()\n"
              f"b.run_job(e, s, {job.id}, load_champion_predictor(e, s), get_settings(), chunk_size=10)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def answered() -> int:
        with Session(engine) as session:
            return session.get(BatchJob, job.id).n_done

    kill_when(proc, answered, 20)
    with Session(engine) as session:
        killed = session.get(BatchJob, job.id)
        n_rows = session.execute(select(func.count()).select_from(Prediction)
                                 .where(Prediction.job_id == job.id)).scalar_one()
    assert killed.status == "running" and 20 <= killed.n_done < len(formulas)
    assert n_rows == killed.n_done, "counters and rows were written together"

    from flows.batch_predict import batch_predict_flow

    summary = batch_predict_flow(job_id=job.id)
    assert summary["status"] == "done" and summary["n_done"] == len(formulas)
    with Session(engine) as session:
        n_rows = session.execute(select(func.count()).select_from(Prediction)
                                 .where(Prediction.job_id == job.id)).scalar_one()
    assert n_rows == len(formulas), "no item answered twice"


def test_synthetic_features_run_on_a_dask_cluster(prefect_harness, spacegroup_home):
    from distributed import Client, LocalCluster

    from flows.synthetic_features import run_on_dask

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        result = run_on_dask(cluster.scheduler_address, n_crystals=12, n_augment=2, seed=3, chunk_size=4)
        done = client.run_on_scheduler(
            lambda dask_scheduler: {name: sum(p.states.values()) for name, p in dask_scheduler.task_prefixes.items()})
    assert result["n_crystals"] == 12 and result["n_patterns"] == 24 and Path(result["path"]).exists()
    ran = " ".join(done)
    assert "generate_chunk" in ran and "featurize_chunk" in ran, f"tasks the scheduler saw: {done}"


def test_a_batch_posted_before_its_deployment_is_registered_is_still_answered(prefect_harness, spacegroup_home,
                                                                               caplog):
    # `spacegroup up` answers HTTP a moment before `serve` registers the deployments: a job posted then used to
    # get a 500 and stay queued for ever
    import requests
    from werkzeug.serving import make_server

    from storage.keys import create_api_key
    from webhooks.app import create_app

    app = create_app(runner="prefect")
    _, key = create_api_key(app.extensions["spacegroup"].engine, "user", "tests")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url, headers = f"http://127.0.0.1:{server.server_port}", {"Authorization": f"Bearer {key}"}
    try:
        response = requests.post(f"{url}/predict/batch", json={"items": [{"formula": "NaCl"}]}, headers=headers,
                                 timeout=120)
        assert response.status_code == 202, response.text
        deadline, status = time.time() + 120, None
        while time.time() < deadline and status != "done":
            status = requests.get(f"{url}{response.json()['status_url']}", headers=headers, timeout=30).json()["status"]
            time.sleep(0.5)
        assert status == "done"
        results = requests.get(f"{url}{response.json()['results_url']}", headers=headers, timeout=30).json()
        assert results["items"][0]["result"]["space_group"]["number"] == 225
    finally:
        server.shutdown()
    assert "batch-predict/batch-predict cannot take batch job" in caplog.text and "not registered" in caplog.text
