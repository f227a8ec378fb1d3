"""Batch prediction jobs: submit items, answer them in chunks with progress in the registry, call back when done.

Each chunk's predictions and the job's counters are written in one transaction, and an item already answered is
skipped (unique per job and item), so a job killed at any point is finished by simply running it again.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from sqlalchemy import func, select
from sqlmodel import Session

from storage.artifacts import ArtifactStore
from storage.engine import session_scope
from storage.tables import BatchJob, Prediction, utcnow
from tasks.cells import cell_for_answer
from tasks.inputs import InputError, input_hash, parse_prediction_input
from tasks.predict import ModelUnavailableError, Predictor

log = logging.getLogger(__name__)


class JobError(ValueError):
    """A batch job that cannot be created or found."""


def items_from_manifest(path: str | Path, wavelength: str | None = None) -> list[dict]:
    """A manifest (one file path per line; # comments) -> items ``{"path": ...}`` for a local batch run."""
    base = Path(path).parent
    items = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            file = Path(line) if Path(line).is_absolute() else base / line
            items.append({"path": str(file)} | ({"wavelength": wavelength} if wavelength else {}))
    if not items:
        raise JobError(f"{path}: the manifest lists no files")
    return items


def create_job(engine, store: ArtifactStore, items: list, callback_url: str | None = None,
               delivery_id: str | None = None, top_k: int = 5, max_items: int = 10_000) -> tuple[BatchJob, bool]:
    """Store the items and a queued job. With a ``delivery_id`` already used, the existing job is returned
    (``created`` False), so a repeated delivery never makes a second job."""
    if not isinstance(items, list) or not items:
        raise JobError("'items' must be a non-empty list of prediction requests")
    if len(items) > max_items:
        raise JobError(f"a batch holds at most {max_items} items; got {len(items)}")
    if delivery_id is not None:
        existing = job_by_delivery(engine, delivery_id)
        if existing is not None:
            return existing, False
    uri, digest = store.put_bytes(json.dumps(items).encode(), ".json")
    try:
        with session_scope(engine) as session:
            job = BatchJob(n_items=len(items), callback_url=callback_url, delivery_id=delivery_id, items_uri=uri,
                           items_sha256=digest, top_k=top_k)
            session.add(job)
            session.flush()
            session.refresh(job)
    except Exception:
        # two deliveries with one id racing: the database's unique constraint decides, the loser reads the winner
        if delivery_id is not None and (existing := job_by_delivery(engine, delivery_id)) is not None:
            return existing, False
        raise
    return job, True


def job_by_delivery(engine, delivery_id: str) -> BatchJob | None:
    with Session(engine) as session:
        return session.execute(select(BatchJob).where(BatchJob.delivery_id == delivery_id)).scalars().first()


def get_job(engine, job_id: int) -> BatchJob:
    with Session(engine) as session:
        job = session.get(BatchJob, job_id)
    if job is None:
        raise JobError(f"no batch job with id {job_id}")
    return job


def job_results(engine, job_id: int, offset: int = 0, limit: int = 100) -> list[Prediction]:
    with Session(engine) as session:
        return list(session.execute(select(Prediction).where(Prediction.job_id == job_id)
                                    .order_by(Prediction.item_index).offset(offset).limit(limit)).scalars())


def _answer(predictor: Predictor, items: list, settings) -> list[tuple[str, str | None, dict | None, str | None, float]]:
    """(input hash, modality, result, error, latency ms) per item."""
    parsed, out = [], [None] * len(items)
    for i, item in enumerate(items):
        try:
            if isinstance(item, dict) and "path" in item and len(item) <= 2:
                result = next(iter(predictor.predict_paths([item["path"]], item.get("wavelength"))))
                out[i] = (input_hash(item), result.get("modality"), None if "error" in result else result,
                          result.get("error"), 0.0)
                continue
            if isinstance(item, dict) and not isinstance(item.get("cell", False), bool):
                raise InputError("'cell' must be true or false")
            parsed.append((i, parse_prediction_input(item, settings.default_wavelength, settings.max_pattern_points,
                                                     settings.max_sites, name=f"item {i}")))
        except InputError as exc:
            modality = next((k for k in ("xrd", "formula", "structure") if isinstance(item, dict) and k in item), None)
            out[i] = (input_hash(item), modality, None, str(exc), 0.0)
    if parsed:
        start = time.perf_counter()
        try:
            results = predictor.predict_inputs([p for _, p in parsed])
        except ModelUnavailableError as exc:
            results = [{"error": str(exc)}] * len(parsed)
        per_item_ms = (time.perf_counter() - start) * 1000 / len(parsed)
        for (i, p), result in zip(parsed, results):
            error = result.get("error")
            if not error and p.modality == "xrd" and items[i].get("cell") is True:
                result["cell"] = cell_for_answer(p.value, result["space_group"]["number"])
            out[i] = (p.input_hash, p.modality, None if error else result, error, per_item_ms)
    return out  # type: ignore[return-value]


def run_job(engine, store: ArtifactStore, job_id: int, predictor: Predictor, settings, chunk_size: int = 64,
            progress=None) -> BatchJob:
    """Answer every not-yet-answered item of the job, chunk by chunk; mark it done (or failed) at the end."""
    job = get_job(engine, job_id)
    if job.status == "done":
        return job
    with session_scope(engine) as session:
        row = session.get(BatchJob, job_id)
        row.status = "running"
        row.started_at = row.started_at or utcnow()
    try:
        items = json.loads(store.read_verified(job.items_uri, job.items_sha256))
        with Session(engine) as session:
            answered = set(session.execute(select(Prediction.item_index).where(Prediction.job_id == job_id)).scalars())
        pending = [i for i in range(len(items)) if i not in answered]
        predictor.top_k = job.top_k
        for start in range(0, len(pending), chunk_size):
            indices = pending[start:start + chunk_size]
            answers = _answer(predictor, [items[i] for i in indices], settings)
            with session_scope(engine) as session:
                for index, (digest, modality, result, error, ms) in zip(indices, answers):
                    model_id = (result or {}).get("model_version", {}).get("id")
                    session.add(Prediction(job_id=job_id, item_index=index, input_hash=digest,
                                           modality=modality or "unknown",
                                           space_group_number=(result or {}).get("space_group", {}).get("number"),
                                           crystal_system=(result or {}).get("crystal_system"),
                                           result=result or {}, error=error, model_version_id=model_id,
                                           latency_ms=ms))
                session.flush()
                _recount(session, job_id)
            if progress:
                progress(len(indices))
        with session_scope(engine) as session:
            row = session.get(BatchJob, job_id)
            _recount(session, job_id)
            row.status = "done"
            row.finished_at = utcnow()
    except Exception as exc:
        with session_scope(engine) as session:
            row = session.get(BatchJob, job_id)
            row.status = "failed"
            row.error = f"{type(exc).__name__}: {exc}"[:1000]
            row.finished_at = utcnow()
        raise
    return get_job(engine, job_id)


def _recount(session, job_id: int) -> None:
    row = session.get(BatchJob, job_id)
    counts = dict(session.execute(select(Prediction.error.is_(None), func.count()).where(Prediction.job_id == job_id)
                                  .group_by(Prediction.error.is_(None))).all())
    row.n_done = int(counts.get(True, 0))
    row.n_failed = int(counts.get(False, 0))


def job_summary(job: BatchJob) -> dict:
    def iso(value):
        return value.isoformat() if value else None

    elapsed = None
    if job.started_at:
        end = job.finished_at or utcnow()
        started = job.started_at if job.started_at.tzinfo else job.started_at.replace(tzinfo=end.tzinfo)
        end = end if end.tzinfo else end.replace(tzinfo=started.tzinfo)
        elapsed = round((end - started).total_seconds(), 3)
    processed = job.n_done + job.n_failed
    return {"job_id": job.id, "status": job.status, "n_items": job.n_items, "n_done": job.n_done,
            "n_failed": job.n_failed, "progress": round(processed / job.n_items, 4) if job.n_items else 1.0,
            "created_at": iso(job.created_at), "started_at": iso(job.started_at), "finished_at": iso(job.finished_at),
            "elapsed_s": elapsed, "error": job.error, "callback_status": job.callback_status}


def deliver_callback(engine, job_id: int, secret: str | None, allowed_hosts: set[str], **kwargs) -> str | None:
    """Send the signed job summary to the job's callback URL (if any) and record how it went."""
    from tasks.callbacks import CallbackRefused, send_callback

    job = get_job(engine, job_id)
    if not job.callback_url:
        return None
    try:
        status = send_callback(job.callback_url, job_summary(job), secret, allowed_hosts, **kwargs)
    except CallbackRefused as exc:
        status = f"refused: {exc}"
    with session_scope(engine) as session:
        session.get(BatchJob, job_id).callback_status = status[:500]
    return status
