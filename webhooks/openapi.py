"""The OpenAPI 3.1 description of the API (kept in step with the routes by a test)."""

from __future__ import annotations

from functools import lru_cache

PROBLEM = {"$ref": "#/components/responses/Problem"}
AUTH_ERRORS = {"401": PROBLEM, "403": PROBLEM, "429": PROBLEM}


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _ok(description: str, schema: dict | None = None) -> dict:
    return {"description": description} | (_json(schema) if schema else {})


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _id_param(name: str, what: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": what,
            "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}}


SCHEMAS = {
    "XRD": {"type": "object", "required": ["intensity"],
            "description": "the peak positions as exactly one of two_theta_deg, q_inv_angstrom or d_angstrom",
            "oneOf": [{"required": ["two_theta_deg"]}, {"required": ["q_inv_angstrom"]}, {"required": ["d_angstrom"]}],
            "properties": {
        "two_theta_deg": {"type": "array", "items": {"type": "number"}, "minItems": 50,
                          "description": "2θ in degrees, strictly increasing"},
        "q_inv_angstrom": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}, "minItems": 50,
                           "description": "Q = 4π sin θ / λ in Å⁻¹, as integrated synchrotron data come; put in "
                                          "2θ at the wavelength"},
        "d_angstrom": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}, "minItems": 50,
                       "description": "d-spacings in Å; put in 2θ at the wavelength"},
        "intensity": {"type": "array", "items": {"type": "number", "minimum": 0},
                      "description": "intensity at each 2θ (same length)"},
        "wavelength": {"oneOf": [{"type": "string", "examples": ["CuKa", "MoKa1"]},
                                 {"type": "number", "exclusiveMinimum": 0}],
                       "description": "anode line name, wavelength in ångström, or photon energy such as 30keV "
                                      "(default CuKa)"},
        "exclude_two_theta_deg": {
            "type": "array", "maxItems": 50, "examples": [[[26.3, 26.9], [37.6, 38.2]]],
            "items": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
            "description": "2θ regions [start, end] in degrees taken out before the pattern is read (a substrate's "
                           "or sample holder's lines): bridged by a straight line; echoed in the answer"},
        "substrate": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                      "examples": ["FTO"], "description": "FTO, ITO, Si, Au, Pt or Al: the lines of it the pattern "
                                                          "shows are excluded (listed in the answer's regions)"},
        "composition": {"type": "string", "examples": ["Fe2O3"],
                        "description": "the sample's formula: the pattern is answered by the XRD and the formula "
                                       "model together (the answer's prior is then 'composition')"},
        "lattice_evidence": {"type": "boolean", "default": False,
                             "description": "index the pattern in the primitive cubic, tetragonal, hexagonal and "
                                            "orthorhombic lattices (and orthorhombic cells thinned by a C centring "
                                            "or Pnma's rules) and correct the crystal system by the cells (models "
                                            "trained with it; ~0.6 s); the cells are in the answer"}}},
    "LatticeCell": {"type": ["object", "null"], "description": "the lattice's best cell; null where none indexes the "
                    "peaks", "properties": {"de_wolff_m": {"type": "number"},
                                            "fraction_indexed": {"type": "number"}}},
    "Structure": {"type": "object", "description": "exactly one of cif or poscar (the file's text)",
                  "properties": {"cif": {"type": "string"}, "poscar": {"type": "string"}}},
    "PredictRequest": {"type": "object", "description": "exactly one of xrd, formula, structure", "properties": {
        "xrd": _ref("XRD"), "formula": {"type": "string", "examples": ["Fe2O3"]}, "structure": _ref("Structure"),
        "top_k": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
        "cell": {"type": "boolean", "default": False,
                 "description": "for a pattern, also index it: a cell of the answer's lattice and de Wolff's M20"}}},
    "Cell": {"type": ["object", "null"], "description": "a cell of the answer's lattice indexing the peaks; null "
             "where none is found or the lattice is triclinic", "properties": {
                 "lattice": {"type": "string", "examples": ["tP", "oP", "mC"]}, "a_angstrom": {"type": "number"},
                 "b_angstrom": {"type": ["number", "null"], "description": "orthorhombic and monoclinic cells only"},
                 "c_angstrom": {"type": ["number", "null"]},
                 "beta_deg": {"type": ["number", "null"], "description": "monoclinic cells only (unique axis b, "
                              "β >= 90°, a <= c for mP; mC cells C-centred)"},
                 "volume_angstrom3": {"type": "number"},
                 "reflection_conditions": {"type": "string", "enum": ["lattice", "space group"],
                                           "description": "whose absences the cell's lines follow; 'space group': "
                                           "the answer's glides and screws too, axes in its standard setting"},
                 "zero_shift_two_theta_deg": {"type": "number"}, "peaks_used": {"type": "integer"},
                 "peaks_indexed": {"type": "integer"}, "de_wolff_m": {"type": "number"},
                 "peaks": {"type": "array", "description": "each peak used: two_theta_deg, d_angstrom, hkl (null "
                           "where unindexed) and delta_two_theta_deg (measured - calculated)",
                           "items": {"type": "object"}}}},
    "SpaceGroup": {"type": "object", "properties": {
        "number": {"type": "integer"}, "symbol": {"type": "string"}, "probability": {"type": "number"},
        "pattern_probability": {"type": "number", "description": "with a composition: the pattern's answer alone"},
        "formula_probability": {"type": "number", "description": "with a composition: the formula's answer alone"}}},
    "Prediction": {"type": "object", "required": ["space_group", "crystal_system", "top_k", "model_version"],
                   "properties": {
                       "input": {"type": "string"}, "modality": {"enum": ["xrd", "formula", "structure"]},
                       "space_group": _ref("SpaceGroup"), "crystal_system": {"type": "string"},
                       "crystal_system_probability": {"type": "number"}, "extinction_group": {"type": "object"},
                       "top_k": {"type": "array", "items": _ref("SpaceGroup")}, "abstained": {"type": "boolean"},
                       "warnings": {"type": "array", "items": {"type": "string"},
                                    "description": "what limits this answer (peaks of one family of lattice planes)"},
                       "model_version": {"type": "object"}, "inference_ms": {"type": "number"},
                       "prior": {"enum": ["mp", "training", "composition"],
                                 "description": "space-group prior the probabilities assume ('composition': the "
                                                "formula model's answer for the given composition)"},
                       "composition": {"type": "string", "description": "the reduced formula the pattern was "
                                                                        "answered with, if one was given"},
                       "formula_model_version": {"type": "object"},
                       "excluded_two_theta_deg": {"type": "array", "items": {"type": "array"},
                                                  "description": "the 2θ regions taken out of the pattern, if any"},
                       "cell": _ref("Cell"),
                       "lattice_evidence": {"type": "object", "description": "with xrd.lattice_evidence: the best "
                                            "cell of each search the model's stage reads (models of artifact "
                                            "format 8 read the first four)",
                                            "properties": {lattice: _ref("LatticeCell") for lattice in
                                                           ("orthorhombic", "cubic", "tetragonal", "hexagonal",
                                                            "orthorhombic_c_or_pnma")}}}},
    "BatchRequest": {"type": "object", "required": ["items"], "properties": {
        "items": {"type": "array", "items": _ref("PredictRequest"), "minItems": 1},
        "callback_url": {"type": "string", "format": "uri",
                         "description": "POSTed the signed job summary when done (allow-listed hosts only)"},
        "top_k": {"type": "integer", "minimum": 1, "maximum": 20}}},
    "Job": {"type": "object", "properties": {
        "job_id": {"type": "integer"}, "status": {"enum": ["queued", "running", "done", "failed"]},
        "n_items": {"type": "integer"}, "n_done": {"type": "integer"}, "n_failed": {"type": "integer"},
        "progress": {"type": "number"}, "created_at": {"type": ["string", "null"]},
        "started_at": {"type": ["string", "null"]}, "finished_at": {"type": ["string", "null"]},
        "elapsed_s": {"type": ["number", "null"]}, "error": {"type": ["string", "null"]},
        "callback_status": {"type": ["string", "null"]}}},
    "JobResults": {"type": "object", "properties": {
        "job_id": {"type": "integer"}, "offset": {"type": "integer"}, "limit": {"type": "integer"},
        "total": {"type": "integer"}, "items": {"type": "array", "items": {"type": "object"}},
        "next": {"type": ["string", "null"]}}},
    "Model": {"type": "object", "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"}, "modality": {"enum": ["xrd", "formula"]},
        "stage": {"enum": ["candidate", "champion", "archived"]}, "feature_version": {"type": "string"},
        "headline_metrics": {"type": "object"}}},
    "TrainRequest": {"type": "object", "additionalProperties": False, "properties": {
        "dataset_id": {"type": "integer", "minimum": 1}, "n_augment": {"type": "integer", "minimum": 1, "maximum": 16},
        "n_estimators": {"type": "integer", "minimum": 10, "maximum": 5000},
        "synthetic_crystals": {"type": "integer", "minimum": 20}, "seed": {"type": "integer", "minimum": 0}}},
    "Dataset": {"type": "object", "properties": {
        "id": {"type": "integer"}, "source": {"type": "string"}, "n_materials": {"type": "integer"},
        "content_hash": {"type": "string"}, "label_distribution": {"type": "object"},
        "n_quarantined": {"type": "integer"}}},
    "Problem": {"type": "object", "required": ["title", "status", "detail"], "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}}},
}

UPLOAD = {"content": {"multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
    "file": {"type": "string", "format": "binary"}}}}}}


@lru_cache(maxsize=1)
def openapi_document() -> dict:
    from importlib.metadata import version

    user = [{"bearer": []}]
    paths = {
        "/health": {"get": {"summary": "Liveness", "security": [], "responses": {"200": _ok("alive")}}},
        "/status": {"get": {"summary": "Version, champion per modality, uptime", "security": user,
                            "responses": {"200": _ok("status", {"type": "object"}), **AUTH_ERRORS}}},
        "/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {"200": _ok("OpenAPI")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "security": [],
                             "responses": {"200": {"description": "Prometheus text format",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/predict": {"post": {
            "summary": "Space group of one pattern, formula or structure", "security": user,
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": _ref("PredictRequest")},
                "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                    "file": {"type": "string", "format": "binary"}, "wavelength": {"type": "string"},
                    "top_k": {"type": "string"}, "cell": {"type": "string", "examples": ["true"]},
                    "exclude_two_theta_deg": {"type": "string", "examples": ["26.3-26.9, 37.6-38.2"],
                                              "description": "2θ regions in degrees to take out of a pattern"},
                    "substrate": {"type": "string", "examples": ["FTO"],
                                  "description": "substrates whose lines to take out (comma-separated)"},
                    "composition": {"type": "string", "examples": ["Fe2O3"],
                                    "description": "the sample's formula, read by the formula model too"},
                    "lattice_evidence": {"type": "string", "examples": ["true"],
                                         "description": "correct the crystal system by the pattern's cells"}}}}}},
            "responses": {"200": _ok("prediction", _ref("Prediction")), "400": PROBLEM, "413": PROBLEM,
                          "415": PROBLEM, "422": PROBLEM, "503": PROBLEM, **AUTH_ERRORS}}},
        "/predict/batch": {"post": {
            "summary": "Start a batch job", "security": user, "requestBody": {"required": True,
                                                                              **_json(_ref("BatchRequest"))},
            "responses": {"202": _ok("job accepted", _ref("Job")), "400": PROBLEM, "413": PROBLEM, "415": PROBLEM,
                          "422": PROBLEM, **AUTH_ERRORS}}},
        "/jobs/{job_id}": {"get": {
            "summary": "Job status and progress", "security": user, "parameters": [_id_param("job_id", "job id")],
            "responses": {"200": _ok("job", _ref("Job")), "404": PROBLEM, **AUTH_ERRORS}}},
        "/jobs/{job_id}/results": {"get": {
            "summary": "Job results, paginated", "security": user, "parameters": [
                _id_param("job_id", "job id"),
                {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
            "responses": {"200": _ok("a page of results", _ref("JobResults")), "400": PROBLEM, "404": PROBLEM,
                          **AUTH_ERRORS}}},
        "/models": {"get": {
            "summary": "Model versions", "security": user,
            "parameters": [{"name": "modality", "in": "query", "schema": {"enum": ["xrd", "formula"]}}],
            "responses": {"200": _ok("models", {"type": "object", "properties": {
                "models": {"type": "array", "items": _ref("Model")}}}), "400": PROBLEM, **AUTH_ERRORS}}},
        "/models/{model_id}": {"get": {
            "summary": "One model version with metrics and lineage", "security": user,
            "parameters": [_id_param("model_id", "model version id")],
            "responses": {"200": _ok("model", _ref("Model")), "404": PROBLEM, **AUTH_ERRORS}}},
        "/models/{model_id}/promote": {"post": {
            "summary": "Make a model version the champion (admin)", "security": user,
            "parameters": [_id_param("model_id", "model version id")],
            "responses": {"200": _ok("promoted", _ref("Model")), "404": PROBLEM, "409": PROBLEM,
                          **AUTH_ERRORS}}},
        "/models/train": {"post": {
            "summary": "Start the retraining of the XRD and formula models (admin)", "security": user,
            "requestBody": {"required": False, **_json(_ref("TrainRequest"))},
            "responses": {"202": _ok("training started", {"type": "object"}), "400": PROBLEM, "415": PROBLEM,
                          **AUTH_ERRORS}}},
        "/data/upload": {"post": {
            "summary": "Upload structures (zip/tar.gz of CIF/POSCAR, MP-style CSV/JSON)", "security": user,
            "requestBody": {"required": True, **UPLOAD},
            "responses": {"201": _ok("stored", _ref("Dataset")), "400": PROBLEM, "413": PROBLEM, "422": PROBLEM,
                          **AUTH_ERRORS}}},
        "/data/{dataset_id}": {
            "get": {"summary": "A dataset version", "security": user,
                    "parameters": [_id_param("dataset_id", "dataset version id")],
                    "responses": {"200": _ok("dataset", _ref("Dataset")), "404": PROBLEM, **AUTH_ERRORS}},
            "delete": {"summary": "Delete an uploaded dataset (admin)", "security": user,
                       "parameters": [_id_param("dataset_id", "dataset version id")],
                       "responses": {"200": _ok("deleted"), "404": PROBLEM, "409": PROBLEM, **AUTH_ERRORS}}},
        "/analytics/predictions": {"get": {
            "summary": "Counts, space-group and crystal-system distribution, latency percentiles", "security": user,
            "parameters": [{"name": "start", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                           {"name": "end", "in": "query", "schema": {"type": "string", "format": "date-time"}}],
            "responses": {"200": _ok("analytics", {"type": "object"}), "400": PROBLEM, **AUTH_ERRORS}}},
        "/analytics/errors": {"get": {
            "summary": "Most common prediction errors (admin)", "security": user,
            "responses": {"200": _ok("errors", {"type": "object"}), **AUTH_ERRORS}}},
        "/webhooks/batch": {"post": {
            "summary": "Signed incoming webhook that starts a batch job", "security": [],
            "description": "HMAC-SHA256 over '<t>.' + body in X-Spacegroup-Signature: t=<unix>,v1=<hex>; "
                           "X-Spacegroup-Delivery names the delivery (a repeat returns the same job).",
            "parameters": [{"name": "X-Spacegroup-Signature", "in": "header", "required": True,
                            "schema": {"type": "string"}},
                           {"name": "X-Spacegroup-Delivery", "in": "header", "required": True,
                            "schema": {"type": "string"}}],
            "requestBody": {"required": True, **_json(_ref("BatchRequest"))},
            "responses": {"200": _ok("duplicate delivery: the existing job", _ref("Job")),
                          "202": _ok("job accepted", _ref("Job")), "400": PROBLEM, "401": PROBLEM, "409": PROBLEM,
                          "413": PROBLEM, "422": PROBLEM, "503": PROBLEM}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "ml-space-group API", "version": version("ml-space-group"),
                 "description": "Space group, crystal system and extinction group from powder XRD patterns, "
                                "formulas and structures. Errors are application/problem+json (RFC 9457)."},
        "servers": [{"url": "/"}],
        "security": user,
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "API key from `spacegroup keys create`"}},
            "schemas": SCHEMAS,
            "responses": {"Problem": {"description": "problem details (RFC 9457)",
                                      "content": {"application/problem+json": {"schema": _ref("Problem")}}}},
        },
    }
