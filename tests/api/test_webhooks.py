"""Signed incoming webhooks and signed outgoing callbacks."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tasks.callbacks import CallbackRefused, check_callback_url, send_callback
from tasks.signing import DELIVERY_HEADER, SIGNATURE_HEADER, SignatureError, sign, verify
from tests.api.conftest import WEBHOOK_SECRET


def post_webhook(live, body: dict, delivery: str | None, secret: str = WEBHOOK_SECRET, timestamp: int | None = None,
                 signature: str | None = None):
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json",
               SIGNATURE_HEADER: signature or sign(secret, raw, timestamp)}
    if delivery is not None:
        headers[DELIVERY_HEADER] = delivery
    return live.session.post(live.url + "/webhooks/batch", data=raw, headers=headers, timeout=30)


def test_valid_webhook_starts_one_job(live):
    response = post_webhook(live, {"items": [{"formula": "NaCl"}, {"formula": "MgO"}]}, "delivery-valid")
    assert response.status_code == 202
    job_id = response.json()["job_id"]
    deadline = time.time() + 60
    while live.request("GET", f"/jobs/{job_id}").json()["status"] != "done":
        assert time.time() < deadline
        time.sleep(0.2)


def test_bad_signature_stale_timestamp_and_missing_headers_are_refused(live):
    body = {"items": [{"formula": "NaCl"}]}
    wrong = post_webhook(live, body, "d-wrong", secret="not-the-secret")
    assert wrong.status_code == 401 and "does not match" in wrong.json()["detail"]
    stale = post_webhook(live, body, "d-stale", timestamp=int(time.time()) - 3600)
    assert stale.status_code == 401 and "from now" in stale.json()["detail"]
    garbage = post_webhook(live, body, "d-garbage", signature="sha256=abc")
    assert garbage.status_code == 401
    missing = live.session.post(live.url + "/webhooks/batch", json=body, timeout=30)
    assert missing.status_code == 401 and "missing" in missing.json()["detail"]
    no_delivery = post_webhook(live, body, None)
    assert no_delivery.status_code == 400 and DELIVERY_HEADER in no_delivery.json()["detail"]


def test_a_replayed_request_is_rejected(live):
    raw = json.dumps({"items": [{"formula": "NaCl"}]}).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(WEBHOOK_SECRET, raw),
               DELIVERY_HEADER: "delivery-replay"}
    first = live.session.post(live.url + "/webhooks/batch", data=raw, headers=headers, timeout=30)
    again = live.session.post(live.url + "/webhooks/batch", data=raw, headers=headers, timeout=30)
    assert first.status_code == 202 and again.status_code == 409
    assert again.headers["Content-Type"] == "application/problem+json"


def test_a_repeated_delivery_creates_exactly_one_job(live):
    body = {"items": [{"formula": "TiO2"}]}
    first = post_webhook(live, body, "delivery-repeat", timestamp=int(time.time()) - 5)
    second = post_webhook(live, body, "delivery-repeat")  # the sender retried: new signature, same delivery id
    assert first.status_code == 202 and second.status_code == 200
    assert first.json()["job_id"] == second.json()["job_id"] and second.json()["duplicate_delivery"]


def test_concurrent_deliveries_with_one_id_make_one_job(live):
    body = {"items": [{"formula": "ZnO"}]}
    results = []
    # distinct timestamps fixed before the threads start: read inside a thread that starts a second later, "now - i"
    # could repeat another thread's, making a byte-identical signed request that is rightly refused as a replay
    now = int(time.time())

    def send(i):
        results.append(post_webhook(live, body, "delivery-race", timestamp=now - i))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.status_code in (200, 202) for r in results), [r.text for r in results]
    assert len({r.json()["job_id"] for r in results}) == 1
    assert sum(r.status_code == 202 for r in results) == 1


def test_webhook_callback_off_the_allow_list_is_refused_before_any_request(live):
    response = post_webhook(live, {"items": [{"formula": "NaCl"}], "callback_url": "http://192.168.1.10/x"}, "d-cb")
    assert response.status_code == 422 and "allow-list" in response.json()["detail"]


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data", "http://localhost:5000/admin",
                                 "file:///etc/passwd", "http://user:pw@127.0.0.1/", "gopher://127.0.0.1/",
                                 "http://127.0.0.1.evil.example/", "not a url"])
def test_callback_urls_off_the_list(url):
    with pytest.raises(CallbackRefused):
        check_callback_url(url, {"127.0.0.1"})


def test_signatures_roundtrip_and_tamper():
    body = b'{"a": 1}'
    header = sign("k", body)
    assert verify("k", body, header)
    with pytest.raises(SignatureError):
        verify("k", body + b" ", header)
    with pytest.raises(SignatureError, match="from now"):
        verify("k", body, sign("k", body, int(time.time()) - 301))


def test_outgoing_callbacks_are_signed_and_retried_with_backoff():
    calls, statuses = [], [503, 500, 204]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            calls.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(statuses[len(calls) - 1])
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sleeps = []
    try:
        status = send_callback(f"http://127.0.0.1:{server.server_address[1]}/cb", {"job_id": 7}, "k", {"127.0.0.1"},
                               sleep=sleeps.append)
    finally:
        server.shutdown()
    assert status == "sent" and len(calls) == 3 and sleeps == [0.5, 1.0]
    for headers, body in calls:
        verify("k", body, headers[SIGNATURE_HEADER])
