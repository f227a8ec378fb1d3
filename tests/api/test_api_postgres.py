"""The API against PostgreSQL: the same registry code, a real server on loopback."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from sqlalchemy import text

pytestmark = pytest.mark.postgres


def test_api_on_postgresql(tmp_path):
    from werkzeug.serving import make_server

    from storage.keys import create_api_key
    from tasks.settings import Settings
    from tests.storage.conftest import _postgres_engine
    from webhooks.app import create_app

    engine, admin, name = _postgres_engine()
    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()
    settings = Settings(home=tmp_path / "home", database_url=url)
    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        state = app.extensions["spacegroup"]
        assert state.engine.dialect.name == "postgresql"
        _, key = create_api_key(state.engine, "user")
        headers = {"Authorization": f"Bearer {key}"}
        assert requests.post(f"{base}/predict", json={"formula": "NaCl"}, headers=headers,
                             timeout=30).json()["space_group"]["number"]
        job = requests.post(f"{base}/predict/batch", json={"items": [{"formula": "MgO"}, {"formula": "Q"}]},
                            headers=headers, timeout=30).json()
        deadline = time.time() + 60
        while (status := requests.get(f"{base}/jobs/{job['job_id']}", headers=headers, timeout=30).json())["status"] \
                != "done":
            assert time.time() < deadline
            time.sleep(0.2)
        assert (status["n_done"], status["n_failed"]) == (1, 1)
        state.recorder.flush()
        analytics = requests.get(f"{base}/analytics/predictions", headers=headers, timeout=30).json()
        assert analytics["n_predictions"] >= 1
    finally:
        server.shutdown()
        app.extensions["spacegroup"].engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
