import pytest


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """Prefect's test harness: a real temporary Prefect server (SQLite) for the whole session."""
    import os

    os.environ.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture()
def mp_env(mp_standin, monkeypatch, spacegroup_home):
    """Settings pointing the refresh at the stand-in, with a key of the right shape."""
    from tasks.settings import get_settings

    monkeypatch.setenv("MP_API_KEY", "0123456789abcdef0123456789abcdef")
    monkeypatch.setenv("SPACEGROUP_MP_ENDPOINT", mp_standin.endpoint)
    monkeypatch.setenv("SPACEGROUP_N_JOBS", "1")
    monkeypatch.setenv("SPACEGROUP_FROZEN_EVAL_CRYSTALS", "12")
    get_settings.cache_clear()
    yield mp_standin
    get_settings.cache_clear()
