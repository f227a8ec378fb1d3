"""A real API server on 127.0.0.1 (Werkzeug's threaded server in a thread) over a fresh registry, with keys."""

from __future__ import annotations

import os
import threading

import pytest
import requests

WEBHOOK_SECRET = "test-webhook-secret"


class Live:
    def __init__(self, url: str, app, user_key: str, admin_key: str):
        self.url = url
        self.app = app
        self.user_key = user_key
        self.admin_key = admin_key
        self.session = requests.Session()

    def headers(self, who: str | None) -> dict:
        key = {"user": self.user_key, "admin": self.admin_key, "wrong": "sgk_not-a-real-key", None: None}[who]
        return {"Authorization": f"Bearer {key}"} if key else {}

    def request(self, method: str, path: str, who: str | None = "user", **kwargs) -> requests.Response:
        headers = self.headers(who) | kwargs.pop("headers", {})
        return self.session.request(method, self.url + path, headers=headers, timeout=60, **kwargs)

    @property
    def state(self):
        return self.app.extensions["spacegroup"]


@pytest.fixture(scope="package")
def live(tmp_path_factory):
    from werkzeug.serving import make_server

    from storage.keys import create_api_key
    from tasks.settings import get_settings

    home = tmp_path_factory.mktemp("api-home")
    saved = {k: os.environ.get(k) for k in ("SPACEGROUP_HOME", "SPACEGROUP_WEBHOOK_SECRET",
                                            "SPACEGROUP_CALLBACK_ALLOWED_HOSTS", "SPACEGROUP_DATABASE_URL",
                                            "SPACEGROUP_MAX_SITES", "SPACEGROUP_MAX_PATTERN_POINTS",
                                            "SPACEGROUP_API_MAX_BODY_BYTES")}
    os.environ.update(SPACEGROUP_HOME=str(home), SPACEGROUP_WEBHOOK_SECRET=WEBHOOK_SECRET,
                      SPACEGROUP_CALLBACK_ALLOWED_HOSTS="127.0.0.1", SPACEGROUP_MAX_SITES="200",
                      SPACEGROUP_MAX_PATTERN_POINTS="20000", SPACEGROUP_API_MAX_BODY_BYTES="2000000")
    os.environ.pop("SPACEGROUP_DATABASE_URL", None)
    get_settings.cache_clear()
    from webhooks.app import create_app

    app = create_app()
    engine = app.extensions["spacegroup"].engine
    _, user = create_api_key(engine, "user", "tests")
    _, admin = create_api_key(engine, "admin", "tests")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Live(f"http://127.0.0.1:{server.server_port}", app, user, admin)
    server.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()
