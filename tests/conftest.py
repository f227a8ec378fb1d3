"""Shared fixtures: paths to ../shared/data (skipping clearly when absent) and an isolated SPACEGROUP_HOME."""

from __future__ import annotations

import functools
import os
import tarfile
import warnings
from pathlib import Path

import pytest

# no telemetry or update checks from Prefect: the tests talk to loopback only
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_UI_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SPACEGROUP_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test saying what is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (../shared/data is only beside developer/CI checkouts)")
    return path


def read_mp_cifs(count: int, start: int = 0, step: int = 1):
    """``count`` real Materials Project structures from the CGCNN tarball, as (mp-id, Structure)."""
    from pymatgen.core import Structure

    tar_path = shared_path("cgcnn_mp_crysxpp", "cifs.tar.gz")
    ids = {}
    for line in shared_path("cgcnn_mp_crysxpp", "material_id_hash.csv").read_text().splitlines():
        i, mp_id = line.split(",")
        ids[f"data/{i}.cif"] = mp_id
    wanted = {f"data/{i}.cif" for i in range(start, start + count * step, step)}
    out = []
    with tarfile.open(tar_path) as tar, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for member in tar:
            if member.name in wanted:
                text = tar.extractfile(member).read().decode()
                out.append((ids[member.name], Structure.from_str(text, fmt="cif")))
    return out


@pytest.fixture()
def spacegroup_home(tmp_path, monkeypatch):
    """A fresh SPACEGROUP_HOME (and SQLite registry) for one test."""
    from tasks.settings import get_settings

    monkeypatch.setenv("SPACEGROUP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SPACEGROUP_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path / "home"
    get_settings.cache_clear()


@pytest.fixture()
def registry(spacegroup_home):
    """A migrated SQLite registry and artifact store in a fresh home."""
    from storage.artifacts import default_store
    from storage.engine import get_engine
    from tasks.settings import get_settings

    get_settings().ensure_dirs()
    return get_engine(), default_store()


def mp_documents(limit: int) -> list[dict]:
    """Real MP summary documents from ../shared/data, or the self-made fixture when it is absent (fresh copies)."""
    import json

    return json.loads(_mp_documents_json(limit))


@functools.lru_cache(maxsize=4)
def _mp_documents_json(limit: int) -> str:
    import json

    from tests.support.mp_standin import fixture_documents, load_cgcnn_documents

    root = SHARED_DATA / "cgcnn_mp_crysxpp"
    if (root / "cifs.tar.gz").exists():
        return json.dumps(load_cgcnn_documents(root, limit=limit))
    return json.dumps(fixture_documents(limit))


@pytest.fixture()
def mp_standin():
    """A Materials Project stand-in on 127.0.0.1 serving real MP documents (or the fixture)."""
    from tests.support.mp_standin import MPStandIn

    with MPStandIn(mp_documents(60), timeout_sleep_s=2.0) as server:
        yield server
