"""``POST /predict`` (one input, JSON or a file upload) and ``POST /predict/batch`` (a job)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from flask import Blueprint, jsonify, request

from tasks.inputs import InputError, PredictionInput, input_hash, parse_prediction_input
from tasks.predict import ModelUnavailableError, PredictionError
from tasks.readers import PATTERN_SUFFIXES as READABLE_PATTERN_SUFFIXES
from webhooks.app import json_body, state
from webhooks.auth import require
from webhooks.metrics import PREDICTIONS
from webhooks.problems import Problem, unprocessable

blueprint = Blueprint("predict", __name__)
PATTERN_SUFFIXES = tuple(sorted(READABLE_PATTERN_SUFFIXES))  # what the CLI reads, uploads read too


def _from_upload() -> tuple[PredictionInput, str]:
    from tasks.excluded_regions import parse_regions, take_out, validate_substrates
    from tasks.patterns import PatternError
    from tasks.readers import StructureError, pattern_from_bytes, read_pdcif, structure_from_text

    s = state().settings
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise Problem(400, "Bad request", "a multipart upload needs a 'file' field with a pattern, CIF or POSCAR")
    name = Path(upload.filename).name
    data = upload.read()
    digest = input_hash(data.hex())
    text = data.decode("utf-8", errors="replace")
    wavelength = request.form.get("wavelength") or None
    lower = name.lower()
    try:
        excluded = parse_regions(request.form.get("exclude_two_theta_deg", ""))
        substrates = validate_substrates(n for n in request.form.get("substrate", "").split(",") if n.strip())
        if lower.endswith(".cif") and "_pd_" in text:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / name
                path.write_bytes(data)
                pattern, excluded = take_out(read_pdcif(path, wavelength, s.max_pattern_points), excluded, substrates)
            return _pattern_input(name, pattern, excluded, data, digest), name
        if lower.endswith(".cif") or lower.startswith(("poscar", "contcar")) or lower.endswith((".vasp", ".poscar")):
            fmt = "cif" if lower.endswith(".cif") else "poscar"
            return PredictionInput("structure", name, structure_from_text(text, fmt, s.max_sites, name), digest), name
        if lower.endswith(PATTERN_SUFFIXES):
            pattern = pattern_from_bytes(data, name, wavelength, s.default_wavelength, s.max_pattern_points)
            pattern, excluded = take_out(pattern, excluded, substrates)
            return _pattern_input(name, pattern, excluded, data, digest), name
    except (PatternError, StructureError, ValueError) as exc:
        raise unprocessable(str(exc)) from None
    raise unprocessable(f"{name}: unknown file type; send a pattern ({', '.join(PATTERN_SUFFIXES)}), a CIF "
                        "or a POSCAR")


@blueprint.post("/predict")
@require("user")
def predict():
    s = state()
    start = time.perf_counter()
    if request.mimetype == "multipart/form-data":
        wanted = _form_top_k()
        cell = _form_flag("cell")
        item, _ = _from_upload()
    else:
        body = json_body()
        wanted = _top_k(body)
        cell = _flag(body, "cell")
        try:
            item = parse_prediction_input({k: v for k, v in body.items() if k not in ("top_k", "cell")},
                                          s.settings.default_wavelength, s.settings.max_pattern_points,
                                          s.settings.max_sites)
        except InputError as exc:
            _record(None, input_hash(body), _modality_of(body), str(exc), start)
            raise unprocessable(str(exc)) from None
    try:
        result = s.batcher.submit(item)
    except ModelUnavailableError as exc:
        raise Problem(503, "Model unavailable", str(exc)) from None
    except PredictionError as exc:
        result = {"error": str(exc)}
    if "error" in result:
        _record(None, item.input_hash, item.modality, result["error"], start)
        raise unprocessable(result["error"])
    result["top_k"] = result["top_k"][:wanted]
    if cell and item.modality == "xrd":
        from tasks.cells import cell_for_answer

        result["cell"] = cell_for_answer(item.value, result["space_group"]["number"])
    result["inference_ms"] = round((time.perf_counter() - start) * 1000, 3)
    _record(result, item.input_hash, item.modality, None, start)
    return jsonify(result)


MAX_TOP_K = 20


def _top_k(body: dict) -> int:
    top_k = body.get("top_k", 5)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise Problem(400, "Bad request", f"'top_k' must be an integer from 1 to {MAX_TOP_K}")
    return top_k


def _flag(body: dict, key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise Problem(400, "Bad request", f"'{key}' must be true or false")
    return value


def _pattern_input(name: str, pattern, excluded, data: bytes, digest: str) -> PredictionInput:
    """An uploaded pattern with the form's ``composition`` (the sample's) and ``lattice_evidence``, if given: part
    of its hash too."""
    from tasks.inputs import parse_composition

    evidence = _form_flag("lattice_evidence")
    raw = request.form.get("composition", "").strip()
    composition = parse_composition(raw, "composition") if raw else None  # an InputError is answered 422
    if composition is None and not evidence:
        return PredictionInput("xrd", name, pattern, digest, excluded)
    digest = input_hash(data.hex() + (f"|{composition}" if composition else "")
                        + ("|lattice-evidence" if evidence else ""))
    return PredictionInput("xrd", name, pattern, digest, excluded, composition, evidence)


def _form_flag(key: str) -> bool:
    raw = request.form.get(key, "false").strip().lower()
    if raw not in ("true", "false", "1", "0", "yes", "no", ""):
        raise Problem(400, "Bad request", f"'{key}' must be true or false")
    return raw in ("true", "1", "yes")


def _form_top_k() -> int:
    raw = request.form.get("top_k", "5")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_TOP_K:
        raise Problem(400, "Bad request", f"'top_k' must be an integer from 1 to {MAX_TOP_K}")
    return int(raw)


def _modality_of(body) -> str:
    return next((k for k in ("xrd", "formula", "structure") if isinstance(body, dict) and k in body), "unknown")


def _record(result: dict | None, digest: str, modality: str, error: str | None, start: float) -> None:
    latency_ms = (time.perf_counter() - start) * 1000
    PREDICTIONS.labels(modality, "error" if error else "ok").inc()
    state().recorder.record(
        input_hash=digest, modality=modality, error=error, latency_ms=latency_ms, result=result or {},
        space_group_number=(result or {}).get("space_group", {}).get("number"),
        crystal_system=(result or {}).get("crystal_system"),
        model_version_id=(result or {}).get("model_version", {}).get("id"))


def validated_callback(url) -> str | None:
    from tasks.callbacks import CallbackRefused, check_callback_url

    if url is None:
        return None
    if not isinstance(url, str):
        raise Problem(400, "Bad request", "'callback_url' must be a string")
    try:
        return check_callback_url(url, state().settings.allowed_callback_hosts)
    except CallbackRefused as exc:
        raise unprocessable(str(exc)) from None


def submit(body: dict, delivery_id: str | None = None):
    from tasks.batch import JobError, create_job, job_summary

    s = state()
    items = body.get("items")
    top_k = _top_k(body)
    if isinstance(items, list) and any(isinstance(i, dict) and "path" in i for i in items):
        # server-side file paths are for manifests run by an operator, never for HTTP clients
        raise unprocessable("batch items over HTTP carry the data itself ('xrd', 'formula' or 'structure'), "
                            "not file paths")
    callback = validated_callback(body.get("callback_url"))
    try:
        job, created = create_job(s.engine, s.store, items, callback, delivery_id, top_k,
                                  s.settings.api_max_batch_items)
    except JobError as exc:
        raise unprocessable(str(exc)) from None
    if created:
        s.start_job(job.id)
    summary = job_summary(job) | {"status_url": f"/jobs/{job.id}", "results_url": f"/jobs/{job.id}/results"}
    return summary, created


@blueprint.post("/predict/batch")
@require("user")
def predict_batch():
    summary, _ = submit(json_body())
    return jsonify(summary), 202
