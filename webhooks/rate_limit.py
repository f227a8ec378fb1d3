"""Storage for the per-key rate limit: limits' in-memory counters, with stale keys swept inline.

``limits``' ``MemoryStorage`` starts a ``threading.Timer`` thread to expire keys whenever none is alive, which
under steady traffic is about one new thread per request; that cost ~0.45 ms of CPU per ``/predict`` call
(bench/api_load.py, and ``tests/api/test_rate_limit_storage.py`` checks no thread is started). Counters are
still checked for expiry on every read (``MemoryStorage.get``); only the sweep of keys nobody reads any more
moves into the request that finds it due, at most every ``SWEEP_INTERVAL_S``.
"""

from __future__ import annotations

import time

from limits.storage.memory import MemoryStorage

SWEEP_INTERVAL_S = 5.0
SCHEME = "spacegroup-memory"


class SweptMemoryStorage(MemoryStorage):
    STORAGE_SCHEME = [SCHEME]  # limits registers storages by scheme: "spacegroup-memory://"

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: str) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._next_sweep = 0.0

    def _MemoryStorage__schedule_expiry(self) -> None:  # replaces the parent's private timer-thread scheduler
        now = time.time()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_INTERVAL_S
            self._MemoryStorage__expire_events()
