"""`spacegroup serve` (the API under gunicorn) and `spacegroup up` (registry + Prefect server + scheduled
deployments + API, stopped together on Ctrl-C)."""

from __future__ import annotations

import gc
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

log = logging.getLogger(__name__)
GUNICORN_CONF = Path(__file__).with_name("gunicorn.conf.py")


def freeze_start_up_objects() -> None:
    """Move everything loaded at start-up (models, matminer's tables, pymatgen's data: ~330k objects) out of the
    garbage collector's sight: a full collection walks them all and holds the process ~120 ms (measured); rare under
    steady traffic, but each one is a 120 ms stall for every request in flight. Called once the app is loaded."""
    gc.collect()
    gc.freeze()


def one_blas_thread() -> None:
    """Cap BLAS at one thread in this process: the API runs one worker process per core, and a BLAS call from the
    ranking (small matrix products per micro-batch) on more threads only spins against the other workers."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")  # not as a context manager: for the life of the worker


def ensure_port_free(host: str, port: int, what: str, option: str) -> None:
    """Raise RuntimeError naming the port when nothing could listen on it: said before anything starts, instead of
    a server process that exits with code 1 (gunicorn retries five times first)."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise RuntimeError(f"{host}:{port} is already in use, so {what} cannot listen there: stop whatever "
                                   f"holds it (another `spacegroup up` or `serve`?) or choose another "
                                   f"{option}") from None
            raise RuntimeError(f"{what} cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def serve_api(host: str, port: int, workers: int | None = None, dev: bool = False) -> None:
    """Run the API in the foreground: gunicorn (gthread workers) where available, else Werkzeug's server."""
    from storage.artifacts import default_store
    from storage.bootstrap import bootstrap_pretrained
    from storage.engine import get_engine
    from tasks.settings import get_settings

    get_settings().ensure_dirs()
    bootstrap_pretrained(get_engine(), default_store())  # once, before workers start
    try:
        if dev:
            raise ImportError
        from gunicorn.app.base import BaseApplication
    except ImportError:
        from werkzeug.serving import run_simple

        from webhooks.app import create_app

        app = create_app()
        freeze_start_up_objects()
        run_simple(host, port, app, threaded=True)
        return

    class _Application(BaseApplication):
        def load_config(self):
            namespace: dict = {}
            exec(compile(GUNICORN_CONF.read_text(), str(GUNICORN_CONF), "exec"), namespace)  # our own file
            for key, value in namespace.items():
                if key in self.cfg.settings and value is not None:
                    self.cfg.set(key, value)
            self.cfg.set("bind", f"{host}:{port}")
            if workers:
                self.cfg.set("workers", workers)

        def load(self):
            from webhooks.app import create_app

            return create_app()

    _Application().run()


def wait_for_http(url: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    """Return once ``url`` answers 200; raise RuntimeError at the timeout or if ``proc`` exits first."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with code {proc.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s")


def _stop(proc: subprocess.Popen | None, name: str) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        log.warning("%s did not stop in 20 s; killing it", name)
        proc.kill()
        proc.wait(5)


def up(host: str, port: int, prefect_port: int) -> int:
    """Bootstrap, then run the Prefect server (unless PREFECT_API_URL points at one), the API and the
    deployments with their schedules, until Ctrl-C or SIGTERM."""
    from storage.artifacts import default_store
    from storage.bootstrap import bootstrap_pretrained
    from storage.engine import get_engine
    from tasks.settings import get_settings

    ensure_port_free(host, port, "the API", "--port")
    if not os.environ.get("PREFECT_API_URL"):
        ensure_port_free("127.0.0.1", prefect_port, "the Prefect server", "--prefect-port")
    settings = get_settings()
    settings.ensure_dirs()
    bootstrap_pretrained(get_engine(), default_store())
    env = dict(os.environ, PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    server = api = None
    stopping = {"flag": False}

    def _terminate(signum, frame):
        stopping["flag"] = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        if not os.environ.get("PREFECT_API_URL"):
            url = f"http://127.0.0.1:{prefect_port}"
            server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                       "--port", str(prefect_port)], env=env, stdin=subprocess.DEVNULL)
            wait_for_http(f"{url}/api/health", 180, server)
            os.environ["PREFECT_API_URL"] = env["PREFECT_API_URL"] = f"{url}/api"
            print(f"Prefect UI: {url}", flush=True)
        api_env = dict(env, SPACEGROUP_BATCH_RUNNER="prefect")
        api = subprocess.Popen([sys.executable, "-m", "deployments.cli", "serve", "--host", host, "--port", str(port)],
                               env=api_env, stdin=subprocess.DEVNULL)
        wait_for_http(f"http://{host}:{port}/health", 180, api)
        print(f"API: http://{host}:{port} (OpenAPI at /openapi.json)", flush=True)

        from prefect import serve

        from deployments.schedules import runner_deployments

        print("Serving deployments refresh-weekly, retrain-monthly, drift-monthly, batch-predict; Ctrl-C stops.",
              flush=True)
        serve(*runner_deployments(), print_starting_message=False)
    except KeyboardInterrupt:
        pass
    finally:
        _stop(api, "the API")
        _stop(server, "the Prefect server")
        print("stopped", flush=True)
    return 0
