"""Health, status, the OpenAPI document and Prometheus metrics."""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify

from webhooks.app import state
from webhooks.auth import require

blueprint = Blueprint("service", __name__)


@blueprint.get("/health")
def health():
    return jsonify({"status": "ok"})


@blueprint.get("/status")
@require("user")
def status():
    from importlib.metadata import version

    from storage.registry import get_model

    s = state()
    champions = {}
    for modality, model_id in s.champions().items():
        if model_id is not None:
            m = get_model(s.engine, model_id)
            champions[modality] = {"id": m.id, "name": m.name, "feature_version": m.feature_version,
                                   "promoted_at": m.promoted_at.isoformat() if m.promoted_at else None}
        else:
            champions[modality] = None
    return jsonify({"version": version("ml-space-group"), "champions": champions,
                    "uptime_s": round(time.time() - s.started, 1), "batch_runner": s.runner})


@blueprint.get("/openapi.json")
def openapi():
    from webhooks.openapi import openapi_document

    return jsonify(openapi_document())


@blueprint.get("/metrics")
def metrics():
    from webhooks.metrics import exposition

    return Response(exposition(), mimetype="text/plain; version=0.0.4")
