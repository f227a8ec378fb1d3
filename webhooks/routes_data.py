"""Structure uploads: through the same validation and quarantine as the refresh flow."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from flask import Blueprint, jsonify, request

from storage.materials import delete_upload, get_dataset, material_count, quarantine_count
from tasks.refresh import refresh_from_source
from tasks.sources import LocalSource, SourceError
from webhooks.app import state
from webhooks.auth import require
from webhooks.problems import Problem, not_found, unprocessable

blueprint = Blueprint("data", __name__)
UPLOAD_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".csv", ".json")


def _dataset_json(version) -> dict:
    s = state()
    return {"id": version.id, "source": version.source, "n_materials": version.n_materials,
            "content_hash": version.content_hash, "parent_id": version.parent_id,
            "created_at": version.created_at.isoformat() if version.created_at else None,
            "label_distribution": version.label_distribution,
            "n_quarantined": quarantine_count(s.engine, version.source)}


@blueprint.post("/data/upload")
@require("user")
def upload():
    file = request.files.get("file")
    if file is None or not file.filename:
        raise Problem(400, "Bad request", "send a multipart 'file': a .zip or .tar.gz of CIF/POSCAR files, or an "
                                          "MP-style .csv or .json")
    name = Path(file.filename).name
    if not name.lower().endswith(UPLOAD_SUFFIXES):
        raise unprocessable(f"{name}: expected one of {', '.join(UPLOAD_SUFFIXES)}")
    s = state()
    source_name = f"upload:{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        file.save(path)
        try:
            report = refresh_from_source(s.engine, s.store, LocalSource(path, name=source_name),
                                         s.settings.max_sites, n_jobs=1)
        except SourceError as exc:
            raise unprocessable(str(exc)) from None
    body = {"source": source_name, "counts": report.counts, "quarantine_reasons": report.quarantine_reasons}
    if report.dataset_version_id is None:
        raise unprocessable(f"{name}: no usable structure in the upload", **body)
    version = get_dataset(s.engine, report.dataset_version_id)
    return jsonify(_dataset_json(version) | body), 201


@blueprint.get("/data/<id:dataset_id>")
@require("user")
def dataset(dataset_id: int):
    version = get_dataset(state().engine, dataset_id)
    if version is None:
        raise not_found(f"no dataset with id {dataset_id}")
    return jsonify(_dataset_json(version) | {"n_materials_stored": material_count(state().engine, version.source)})


@blueprint.delete("/data/<id:dataset_id>")
@require("admin")
def delete_dataset(dataset_id: int):
    try:
        version = delete_upload(state().engine, dataset_id)
    except LookupError as exc:
        raise not_found(str(exc)) from None
    except PermissionError as exc:
        raise Problem(409, "Conflict", str(exc)) from None
    return jsonify({"deleted": dataset_id, "source": version.source})
