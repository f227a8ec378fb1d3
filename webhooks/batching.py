"""Micro-batching of concurrent /predict requests within one API process.

An XGBoost prediction over ~15k trees costs ~10 ms whether it is for 1 row or 16 (the per-call overhead grows
with the number of trees), so requests that arrive together are answered in one call: the first request of a
batch waits at most ``max_wait_s`` for company. Measured in bench/api_load.py (BENCHMARKS.md).
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future


class MicroBatcher:
    def __init__(self, answer, max_batch: int = 32, max_wait_s: float = 0.002) -> None:
        self._answer = answer  # list of items -> list of results (same order)
        self._queue: queue.Queue = queue.Queue()
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._thread = threading.Thread(target=self._run, name="predict-batcher", daemon=True)
        self._thread.start()

    def submit(self, item, timeout_s: float = 60.0):
        future: Future = Future()
        self._queue.put((item, future))
        return future.result(timeout_s)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            try:
                while len(batch) < self.max_batch:
                    batch.append(self._queue.get(timeout=self.max_wait_s))
            except queue.Empty:
                pass
            try:
                results = self._answer([item for item, _ in batch])
            except Exception as exc:  # every waiting request learns of it; the batcher keeps serving
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results):
                future.set_result(result)
