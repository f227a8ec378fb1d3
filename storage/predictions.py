"""Recorded predictions (online and batch): a buffered writer for the API, and the analytics read from them."""

from __future__ import annotations

import atexit
import logging
import queue
import threading
from collections import Counter
from datetime import datetime

import numpy as np
from sqlalchemy import func, insert, select
from sqlmodel import Session

from storage.engine import session_scope
from storage.tables import Prediction, utcnow

log = logging.getLogger(__name__)


class PredictionRecorder:
    """Writes prediction rows from a background thread, one transaction per ``interval_s`` (or per ``max_batch``
    rows), so a request never waits on the database; :meth:`flush` (called before analytics reads and at exit)
    makes everything queued durable. A transaction per request cost ~1 ms of a busy worker's CPU each."""

    def __init__(self, engine, max_batch: int = 500, interval_s: float = 0.2) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.interval_s = interval_s
        self._queue: queue.Queue = queue.Queue()
        self._idle = threading.Event()  # set while every recorded row is written (or given up on)
        self._idle.set()
        self._pending = 0
        self._hurry = threading.Event()  # a full batch is waiting, or someone flushes
        self._lock = threading.Lock()  # guards _pending
        self._writing = threading.Lock()  # one transaction at a time
        self._thread = threading.Thread(target=self._run, name="prediction-recorder", daemon=True)
        self._thread.start()
        atexit.register(self.flush)

    def record(self, **fields) -> None:
        """Queue one ``Prediction`` row given as its column values (``created_at`` defaults to now)."""
        fields.setdefault("created_at", utcnow())
        with self._lock:
            self._pending += 1
            self._idle.clear()
            full = self._pending >= self.max_batch
        self._queue.put(fields)
        if full:
            self._hurry.set()

    def _drain(self) -> None:
        with self._writing:
            self._write(None)

    def _write(self, first: dict | None) -> None:
        """One transaction of ``first`` and what is queued behind it (the caller holds ``_writing``)."""
        rows = [first] if first is not None else []
        while len(rows) < self.max_batch:
            try:
                rows.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if rows:
            try:
                with session_scope(self.engine) as session:
                    # one executemany: building ORM objects cost ~0.3 ms a row in the request path
                    session.execute(insert(Prediction), rows)
            except Exception:  # the registry being unavailable must not take the API down
                log.exception("could not record %d predictions", len(rows))
        with self._lock:
            self._pending -= len(rows)
            if self._pending == 0:
                self._idle.set()

    def _run(self) -> None:
        while True:
            # the row taken here is written before any behind it: a flush in between waits for the lock, so rows
            # are written (and numbered) in the order they were recorded
            with self._writing:
                try:
                    first = self._queue.get(timeout=self.interval_s)
                except queue.Empty:
                    continue
                self._hurry.wait(self.interval_s)  # let the batch gather
                self._hurry.clear()
                self._write(first)

    def flush(self, timeout_s: float = 10.0) -> None:
        self._hurry.set()
        while not self._queue.empty():
            self._drain()
        self._idle.wait(timeout_s)


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"p50": None, "p90": None, "p99": None}
    arr = np.asarray(values, float)
    return {f"p{q}": round(float(np.percentile(arr, q)), 3) for q in (50, 90, 99)}


def prediction_analytics(engine, start: datetime | None = None, end: datetime | None = None) -> dict:
    with Session(engine) as session:
        query = select(Prediction.modality, Prediction.space_group_number, Prediction.crystal_system,
                       Prediction.error.is_(None), Prediction.latency_ms)
        if start is not None:
            query = query.where(Prediction.created_at >= start)
        if end is not None:
            query = query.where(Prediction.created_at < end)
        rows = session.execute(query).all()
    ok = [r for r in rows if r[3]]
    return {
        "n_predictions": len(rows),
        "n_errors": len(rows) - len(ok),
        "by_modality": dict(Counter(r[0] for r in rows)),
        "space_groups": {str(k): v for k, v in Counter(r[1] for r in ok if r[1] is not None).most_common(50)},
        "crystal_systems": dict(Counter(r[2] for r in ok if r[2])),
        "latency_ms": _percentiles([r[4] for r in ok if r[4] is not None]),
    }


def error_analytics(engine, limit: int = 20) -> dict:
    with Session(engine) as session:
        grouped = session.execute(
            select(Prediction.modality, Prediction.error, func.count()).where(Prediction.error.is_not(None))
            .group_by(Prediction.modality, Prediction.error).order_by(func.count().desc()).limit(limit)).all()
        total = session.execute(select(func.count()).select_from(Prediction)
                                .where(Prediction.error.is_not(None))).scalar_one()
    return {"n_errors": int(total),
            "most_common": [{"modality": m, "error": e, "count": int(n)} for m, e, n in grouped]}


def predicted_space_groups(engine, modality: str, start: datetime, end: datetime) -> list[int]:
    """Space groups the service answered for ``modality`` between ``start`` and ``end`` (real traffic)."""
    with Session(engine) as session:
        return [int(v) for v in session.execute(
            select(Prediction.space_group_number).where(
                Prediction.modality == modality, Prediction.error.is_(None),
                Prediction.space_group_number.is_not(None), Prediction.created_at >= start,
                Prediction.created_at < end)).scalars()]
