"""The API's prediction recorder: rows recorded together share one transaction, and flush makes all durable."""

from __future__ import annotations

import threading
import time

from sqlalchemy import event, func, select
from sqlmodel import Session

from storage.predictions import PredictionRecorder
from storage.tables import Prediction


def _count(engine) -> int:
    with Session(engine) as session:
        return session.execute(select(func.count()).select_from(Prediction)).scalar_one()


def test_a_burst_of_predictions_is_one_transaction_and_flush_writes_all(engine):
    commits = []
    event.listen(engine, "commit", lambda conn: commits.append(1))
    recorder = PredictionRecorder(engine, interval_s=0.5)
    threads = [threading.Thread(target=lambda i=i: recorder.record(input_hash=f"h{i}", modality="xrd", error=None,
                                                                 latency_ms=1.0, result={"i": i}))
               for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recorder.flush()
    assert _count(engine) == 40
    assert 1 <= len(commits) <= 3  # not one per request
    recorder.record(input_hash="late", modality="formula", error="bad formula", latency_ms=0.5, result={})
    recorder.flush()
    assert _count(engine) == 41


def test_a_full_batch_is_written_without_waiting_for_the_interval(engine):
    recorder = PredictionRecorder(engine, max_batch=5, interval_s=30.0)
    for i in range(5):
        time.sleep(0.05)  # the writer thread has taken the first row by now
        recorder.record(input_hash=f"h{i}", modality="xrd", error=None, latency_ms=1.0, result={})
    deadline = time.monotonic() + 10
    while _count(engine) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _count(engine) == 5


def test_rows_are_numbered_in_the_order_they_were_recorded_even_when_a_flush_cuts_in(engine):
    recorder = PredictionRecorder(engine, interval_s=5.0)
    recorder.record(input_hash="first", modality="formula", error=None, latency_ms=1.0, result={})
    time.sleep(0.3)  # the writer thread has taken the first row and waits for more
    recorder.record(input_hash="second", modality="formula", error="bad formula", latency_ms=1.0, result={})
    recorder.flush()  # before, the flush wrote "second" while the writer still held "first"
    with Session(engine) as session:
        order = session.execute(select(Prediction.input_hash).order_by(Prediction.id)).scalars().all()
    assert order == ["first", "second"]
