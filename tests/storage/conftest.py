"""Registry engines on SQLite and on a real PostgreSQL (required under CI=true)."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import text

from storage.artifacts import ArtifactStore
from storage.engine import make_engine, migrate

POSTGRES_URL = os.environ.get("SPACEGROUP_TEST_POSTGRES_URL")


def _postgres_engine():
    if not POSTGRES_URL:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but SPACEGROUP_TEST_POSTGRES_URL is not set: .ci/run must start PostgreSQL")
        pytest.skip("no PostgreSQL: set SPACEGROUP_TEST_POSTGRES_URL (bash .ci/run does) to run these tests")
    admin = make_engine(POSTGRES_URL).execution_options(isolation_level="AUTOCOMMIT")
    name = f"spacegroup_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    return engine, admin, name


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'registry.sqlite'}")
        migrate(eng)
        yield eng
        eng.dispose()
        return
    eng, admin, name = _postgres_engine()
    migrate(eng)
    yield eng
    eng.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture()
def store(tmp_path):
    return ArtifactStore(tmp_path / "artifacts")
