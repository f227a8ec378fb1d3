"""Signed job-finished callbacks: only to allow-listed hosts, never to other internal addresses, with retries."""

from __future__ import annotations

import json
import logging
import time
from urllib.parse import urlsplit

from tasks.signing import SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)


class CallbackRefused(ValueError):
    """A callback URL the service will not call."""


def check_callback_url(url: str, allowed_hosts: set[str]) -> str:
    """Return the URL if its host (or host:port) is on the allow-list; raise :class:`CallbackRefused` otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise CallbackRefused(f"callback URL {url!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackRefused(f"callback URL {url!r} must be an http(s) URL with a host")
    if parts.username or parts.password:
        raise CallbackRefused("callback URLs may not carry credentials")
    host = parts.hostname.lower()
    if host not in allowed_hosts and (port is None or f"{host}:{port}" not in allowed_hosts):
        raise CallbackRefused(f"callback host {host!r} is not on the allow-list "
                              "(SPACEGROUP_CALLBACK_ALLOWED_HOSTS)")
    return url


def send_callback(url: str, payload: dict, secret: str | None, allowed_hosts: set[str], attempts: int = 4,
                  backoff_s: float = 0.5, timeout_s: float = 10.0, sleep=time.sleep) -> str:
    """POST ``payload`` signed; returns ``sent``, or ``failed: ...`` after the retries (never raises for HTTP)."""
    import requests

    check_callback_url(url, allowed_hosts)
    body = json.dumps(payload, sort_keys=True).encode()
    last = ""
    for attempt in range(1, attempts + 1):
        headers = {"Content-Type": "application/json"}
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, body)
        try:
            # redirects could lead off the allow-list, so they are not followed
            response = requests.post(url, data=body, headers=headers, timeout=timeout_s, allow_redirects=False)
            if 200 <= response.status_code < 300:
                return "sent"
            last = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code != 429:
                break
        except requests.RequestException as exc:
            last = type(exc).__name__
        if attempt < attempts:
            sleep(backoff_s * 2 ** (attempt - 1))
    log.warning("callback to %s failed: %s", url, last)
    return f"failed: {last}"
