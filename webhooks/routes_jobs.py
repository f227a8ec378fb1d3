"""Batch job status and results."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from tasks.batch import JobError, get_job, job_results, job_summary
from webhooks.app import state
from webhooks.auth import require
from webhooks.problems import Problem, not_found

blueprint = Blueprint("jobs", __name__)
MAX_PAGE = 1000


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Problem(400, "Bad request", f"'{name}' must be an integer") from None
    if not low <= value <= high:
        raise Problem(400, "Bad request", f"'{name}' must be between {low} and {high}")
    return value


@blueprint.get("/jobs/<id:job_id>")
@require("user")
def job_status(job_id: int):
    try:
        return jsonify(job_summary(get_job(state().engine, job_id)))
    except JobError as exc:
        raise not_found(str(exc)) from None


@blueprint.get("/jobs/<id:job_id>/results")
@require("user")
def results(job_id: int):
    offset = _int_arg("offset", 0, 0, 10**9)
    limit = _int_arg("limit", 100, 1, MAX_PAGE)
    try:
        job = get_job(state().engine, job_id)
    except JobError as exc:
        raise not_found(str(exc)) from None
    rows = job_results(state().engine, job_id, offset, limit)
    items = [{"item_index": r.item_index, "modality": r.modality, "model_version_id": r.model_version_id,
              "result": r.result or None, "error": r.error} for r in rows]
    answered = job.n_done + job.n_failed
    following = offset + len(items)
    return jsonify({"job_id": job_id, "status": job.status, "offset": offset, "limit": limit,
                    "total": answered, "items": items,
                    "next": f"/jobs/{job_id}/results?offset={following}&limit={limit}" if following < answered else None})
