"""The rate limiter's counter storage: limits' semantics, without a timer thread per request."""

from __future__ import annotations

import threading
import time

from limits import RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from webhooks import rate_limit
from webhooks.rate_limit import SweptMemoryStorage


def test_hits_start_no_threads_and_the_limit_holds(monkeypatch):
    storage = storage_from_string(f"{rate_limit.SCHEME}://")
    assert isinstance(storage, SweptMemoryStorage)
    started = []
    monkeypatch.setattr(threading.Thread, "start", lambda self: started.append(self))
    limiter, item = FixedWindowRateLimiter(storage), RateLimitItemPerSecond(50, 1)
    allowed = [limiter.hit(item, "key:1") for _ in range(60)]
    assert allowed.count(True) == 50 and not any(allowed[50:])
    assert limiter.hit(item, "key:2")  # other keys have their own budget
    assert started == []


def test_stale_keys_are_swept_inline(monkeypatch):
    monkeypatch.setattr(rate_limit, "SWEEP_INTERVAL_S", 0.0)
    storage = SweptMemoryStorage()
    limiter, item = FixedWindowRateLimiter(storage), RateLimitItemPerSecond(5, 1)
    for i in range(20):
        limiter.hit(item, f"key:{i}")
    time.sleep(1.1)
    limiter.hit(item, "key:fresh")  # the sweep runs in this call and drops the 20 expired counters
    assert len(storage.storage) == 1 and all("fresh" in key for key in storage.storage)
    assert len(storage.expirations) == 1
