"""Models (list, show, promote, train) and prediction analytics."""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, jsonify, request

from storage.predictions import error_analytics, prediction_analytics
from storage.registry import IncompatibleModelError, RegistryError, get_model, list_models, promote
from webhooks.app import json_body, state
from webhooks.auth import require
from webhooks.problems import Problem, conflict, not_found

blueprint = Blueprint("admin", __name__)
HEADLINE = ("sg_top1", "sg_top5", "crystal_system_accuracy", "extinction_group_accuracy", "ece", "n")


def _model_json(m, full: bool = False) -> dict:
    out = {"id": m.id, "name": m.name, "modality": m.modality, "stage": m.stage,
           "feature_version": m.feature_version, "dataset_version_id": m.dataset_version_id,
           "created_at": m.created_at.isoformat() if m.created_at else None,
           "promoted_at": m.promoted_at.isoformat() if m.promoted_at else None,
           "headline_metrics": {name: {k: v for k, v in metrics.items() if k in HEADLINE}
                                for name, metrics in m.metrics.items() if isinstance(metrics, dict)}}
    if full:
        out |= {"metrics": m.metrics, "parameters": m.parameters, "artifact_uri": m.artifact_uri,
                "artifact_sha256": m.artifact_sha256, "dataset_description": m.dataset_description,
                "previous_champion_id": m.previous_champion_id}
    return out


@blueprint.get("/models")
@require("user")
def models():
    modality = request.args.get("modality")
    if modality not in (None, "xrd", "formula"):
        raise Problem(400, "Bad request", "'modality' must be 'xrd' or 'formula'")
    return jsonify({"models": [_model_json(m) for m in list_models(state().engine, modality)]})


@blueprint.get("/models/<id:model_id>")
@require("user")
def model(model_id: int):
    try:
        return jsonify(_model_json(get_model(state().engine, model_id), full=True))
    except RegistryError as exc:
        raise not_found(str(exc)) from None


@blueprint.post("/models/<id:model_id>/promote")
@require("admin")
def promote_model(model_id: int):
    from tasks.feature_versions import FEATURE_VERSIONS

    try:
        version = promote(state().engine, model_id, FEATURE_VERSIONS)
    except IncompatibleModelError as exc:
        raise conflict(str(exc)) from None
    except RegistryError as exc:
        raise not_found(str(exc)) from None
    return jsonify(_model_json(version))


TRAIN_PARAMETERS = {"dataset_id": (int, 1, 10**9), "n_augment": (int, 1, 16), "n_estimators": (int, 10, 5000),
                    "synthetic_crystals": (int, 20, 1_000_000), "seed": (int, 0, 2**31 - 1)}


@blueprint.post("/models/train")
@require("admin")
def train():
    body = json_body() if request.content_length else {}
    parameters = {}
    for name, value in body.items():
        if name not in TRAIN_PARAMETERS:
            raise Problem(400, "Bad request", f"unknown parameter {name!r}; known: {', '.join(TRAIN_PARAMETERS)}")
        kind, low, high = TRAIN_PARAMETERS[name]
        if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
            raise Problem(400, "Bad request", f"{name!r} must be an integer from {low} to {high}")
        parameters[name] = value
    run = state().start_training(parameters)
    return jsonify({"status": "started", "run_id": run, "runner": state().runner, "parameters": parameters}), 202


def _time_arg(name: str) -> datetime | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        stamp = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise Problem(400, "Bad request", f"'{name}' must be an ISO 8601 date or time, e.g. 2026-11-01") from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


@blueprint.get("/analytics/predictions")
@require("user")
def analytics_predictions():
    start, end = _time_arg("start"), _time_arg("end")
    if start and end and end <= start:
        raise Problem(400, "Bad request", "'end' must be after 'start'")
    state().recorder.flush()
    return jsonify(prediction_analytics(state().engine, start, end) |
                   {"start": start.isoformat() if start else None, "end": end.isoformat() if end else None})


@blueprint.get("/analytics/errors")
@require("admin")
def analytics_errors():
    state().recorder.flush()
    return jsonify(error_analytics(state().engine))
