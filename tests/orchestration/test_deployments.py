"""prefect.yaml against a real Prefect server: `prefect deploy --all`, a worker of the process pool running a
deployment; and `spacegroup up` end to end (server, API, served schedules, a batch job, clean Ctrl-C)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from deployments.schedules import DEPLOYMENTS

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout_s: float = 180, proc=None) -> None:
    from deployments.serving import wait_for_http

    wait_for_http(url, timeout_s, proc)


def test_prefect_yaml_declares_the_served_deployments():
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    declared = {d["name"]: d for d in spec["deployments"]}
    assert set(declared) == {d.name for d in DEPLOYMENTS}
    for d in DEPLOYMENTS:
        entry = declared[d.name]
        assert entry["entrypoint"] == d.entrypoint
        crons = [s["cron"] for s in entry.get("schedules") or []]
        assert crons == ([d.cron] if d.cron else [])
        assert all(s.get("timezone") == "UTC" for s in entry.get("schedules") or [])
        assert entry["work_pool"]["name"] == "spacegroup-process"
    assert declared["refresh-weekly"]["schedules"][0]["cron"] == "0 3 * * 1"  # Mondays 03:00 UTC
    assert declared["retrain-monthly"]["schedules"][0]["cron"] == "0 4 1 * *"  # 1st, 04:00 UTC


def _env(tmp_path: Path, api_url: str | None = None) -> dict:
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect"), SPACEGROUP_HOME=str(tmp_path / "home"),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", SPACEGROUP_REPO=str(REPO),
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("SPACEGROUP_DATABASE_URL", None)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    else:
        env.pop("PREFECT_API_URL", None)
    return env


def _deployments(api_url: str) -> dict:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}):
        from prefect.client.orchestration import get_client

        async def read():
            async with get_client() as client:
                out = {}
                for d in await client.read_deployments():
                    flow = await client.read_flow(d.flow_id)
                    out[f"{flow.name}/{d.name}"] = [s.schedule.cron for s in d.schedules]
                return out

        return asyncio.run(read())


@pytest.mark.slow
def test_prefect_deploy_all_and_a_worker_runs_a_deployment(tmp_path):
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = _env(tmp_path)
    server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    env["PREFECT_API_URL"] = api_url
    try:
        wait_http(f"http://127.0.0.1:{port}/api/health", proc=server)
        run = lambda *args, **kw: subprocess.run([str(BIN / "prefect"), *args], env=env, cwd=REPO,  # noqa: E731
                                                 capture_output=True, text=True, timeout=300, **kw)
        pool = run("work-pool", "create", "spacegroup-process", "--type", "process")
        assert pool.returncode == 0, pool.stdout + pool.stderr
        deploy = run("--no-prompt", "deploy", "--all")
        assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
        found = _deployments(api_url)
        assert found == {"refresh/refresh-weekly": ["0 3 * * 1"], "retrain/retrain-monthly": ["0 4 1 * *"],
                         "drift/drift-monthly": ["0 5 1 * *"], "batch-predict/batch-predict": []}

        started = run("deployment", "run", "batch-predict/batch-predict", "--param",
                      'items=[{"formula": "NaCl"}, {"formula": "Fe2O3"}]')
        assert started.returncode == 0, started.stdout + started.stderr
        worker = run("worker", "start", "--pool", "spacegroup-process", "--run-once")
        assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]
        from sqlalchemy import create_engine, text

        engine = create_engine(f"sqlite:///{tmp_path / 'home' / 'registry.sqlite'}")
        with engine.connect() as connection:
            status, done = connection.execute(text("select status, n_done from batchjob")).one()
        assert (status, done) == ("done", 2), "the worker ran the deployed flow against the registry"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)


@pytest.mark.slow
def test_spacegroup_up_serves_everything_and_stops_cleanly_on_ctrl_c(tmp_path):
    api_port, prefect_port = free_port(), free_port()
    env = _env(tmp_path)
    up = subprocess.Popen([str(BIN / "spacegroup"), "up", "--port", str(api_port), "--prefect-port", str(prefect_port)],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
                          start_new_session=True)
    api = f"http://127.0.0.1:{api_port}"
    try:
        wait_http(f"{api}/health", 300, up)
        deadline = time.time() + 120
        found = {}
        while time.time() < deadline and len(found) < 4:
            found = _deployments(f"http://127.0.0.1:{prefect_port}/api")
            time.sleep(1)
        assert found == {"refresh/refresh-weekly": ["0 3 * * 1"], "retrain/retrain-monthly": ["0 4 1 * *"],
                         "drift/drift-monthly": ["0 5 1 * *"], "batch-predict/batch-predict": []}

        key = subprocess.run([str(BIN / "spacegroup"), "keys", "create", "--role", "user"], env=env,
                             capture_output=True, text=True, timeout=120).stdout.strip().splitlines()[-1]
        request = urllib.request.Request(f"{api}/predict/batch", method="POST",
                                         data=json.dumps({"items": [{"formula": "NaCl"}]}).encode(),
                                         headers={"Authorization": f"Bearer {key}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            job_id = json.load(response)["job_id"]
        deadline, status = time.time() + 180, None
        while time.time() < deadline and status != "done":
            request = urllib.request.Request(f"{api}/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"})
            with urllib.request.urlopen(request, timeout=30) as response:
                status = json.load(response)["status"]
            time.sleep(1)
        assert status == "done", "the served batch-predict deployment answered the job"
    finally:
        up.send_signal(signal.SIGINT)
        try:
            output, _ = up.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            raise
    assert up.returncode == 0, output[-3000:]
    assert "stopped" in output
    for port in (api_port, prefect_port):
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
