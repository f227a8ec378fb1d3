"""Property-based tests of the live API from its own OpenAPI document (schemathesis strategies driven by
hypothesis): whatever a client sends within (or outside) the schema, the answer is never a 5xx, and every
error is a problem document."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

pytestmark = pytest.mark.slow
EXAMPLES_PER_OPERATION = 40
SKIPPED = {("POST", "/models/train")}  # would start real trainings; its parameter checks are tested directly


def _operations(live):
    schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) not in SKIPPED:
            yield operation


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors_on_any_operation(live, mode):
    checked = []
    for operation in _operations(live):
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def check(case):
            response = case.call(base_url=live.url, headers=live.headers("admin"), timeout=60)
            label = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, f"{label} -> {response.status_code}: {response.text[:500]}"
            if response.status_code >= 400:
                content_type = (response.headers.get("content-type") or [""])[0]
                assert content_type.startswith("application/problem+json"), \
                    f"{label} -> {response.status_code} {content_type}"

        try:
            check()
        except Unsatisfiable:
            assert mode == GenerationMode.NEGATIVE  # nothing to make invalid (no parameters, no body)
        checked.append(f"{operation.method.upper()} {operation.path}")
    documented = {f"{m.upper()} {p}" for p, ops in live.request("GET", "/openapi.json", who=None).json()["paths"].items()
                  for m in ops} - {f"{m} {p}" for m, p in SKIPPED} - {"GET /openapi.json"}  # the document itself
    assert set(checked) == documented
