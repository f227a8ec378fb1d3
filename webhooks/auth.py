"""Bearer API keys: 401 when there is no valid key, 403 when the key's role is not enough."""

from __future__ import annotations

import time
from functools import wraps

from flask import current_app, g, request

from storage.keys import find_api_key, hash_key
from webhooks.problems import Problem

_CACHE_TTL_S = 30.0
ROLE_RANK = {"user": 1, "admin": 2}


def _lookup(key: str):
    cache = current_app.extensions.setdefault("spacegroup_key_cache", {})
    digest = hash_key(key)
    hit = cache.get(digest)
    if hit is not None and time.monotonic() - hit[2] < _CACHE_TTL_S:
        return hit[0], hit[1]
    row = find_api_key(current_app.extensions["spacegroup"].engine, key)
    found = (row.id, row.role) if row is not None else (None, None)
    cache[digest] = (*found, time.monotonic())
    return found


def authenticate() -> None:
    """Set ``g.key_id``/``g.role`` from the Authorization header (or leave them None)."""
    g.key_id, g.role = None, None
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        key = header[7:].strip()
        if key:
            g.key_id, g.role = _lookup(key)
            g.bad_key = g.key_id is None


def require(role: str):
    """Decorator: the request needs a valid key of at least ``role``."""
    def decorate(view):
        view._spacegroup_role = role

        @wraps(view)
        def wrapper(*args, **kwargs):
            if g.get("key_id") is None:
                detail = ("the API key is not valid (unknown or revoked)" if g.get("bad_key") else
                          "send an API key as 'Authorization: Bearer <key>' (create one with `spacegroup keys create`)")
                raise Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="spacegroup"'})
            if ROLE_RANK.get(g.role, 0) < ROLE_RANK[role]:
                raise Problem(403, "Forbidden", f"this needs an {role} key; yours is a {g.role} key")
            return view(*args, **kwargs)

        wrapper._spacegroup_role = role
        return wrapper

    return decorate


def rate_limit_key() -> str:
    """Per-key rate limiting; anonymous callers share one bucket per address."""
    key_id = g.get("key_id")
    return f"key:{key_id}" if key_id is not None else f"addr:{request.remote_addr}"
