"""API keys: random bearer tokens shown once, stored only as their SHA-256 (a fast hash suffices for 256-bit
random tokens; there is nothing to brute-force)."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlmodel import Session

from storage.engine import session_scope
from storage.tables import ApiKey

ROLES = ("user", "admin")
PREFIX = "sgk_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(engine, role: str, label: str | None = None) -> tuple[ApiKey, str]:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    key = PREFIX + secrets.token_urlsafe(32)
    with session_scope(engine) as session:
        row = ApiKey(key_hash=hash_key(key), role=role, label=label)
        session.add(row)
        session.flush()
        session.refresh(row)
    return row, key


def find_api_key(engine, key: str) -> ApiKey | None:
    with Session(engine) as session:
        row = session.execute(select(ApiKey).where(ApiKey.key_hash == hash_key(key))).scalars().first()
    return row if row is not None and not row.revoked else None


def revoke_api_key(engine, key_id: int) -> None:
    with session_scope(engine) as session:
        row = session.get(ApiKey, key_id)
        if row is None:
            raise LookupError(f"no API key with id {key_id}")
        row.revoked = True
