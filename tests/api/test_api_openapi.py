"""The OpenAPI contract: the committed copy is what the server serves, it is generated from the
same records the library returns, and Schemathesis finds no server error and no answer that
breaks it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from modelreg.api.app import openapi_document
from tests.api.conftest import Api, register

COMMITTED = Path(__file__).resolve().parents[2] / "src" / "modelreg" / "api" / "openapi.json"
REGENERATE = "python -m modelreg.api > src/modelreg/api/openapi.json"


def test_committed_copy_equals_the_served_document(api: Api) -> None:
    served = api.client().get("/openapi.json")
    assert served.status_code == 200
    committed = COMMITTED.read_text(encoding="utf-8")
    assert served.json() == json.loads(committed), f"the API changed: regenerate the committed copy with {REGENERATE}"
    assert served.content.decode() == committed


def test_schemas_are_the_python_records() -> None:
    from modelreg.models import ModelVersion

    doc = openapi_document()
    schemas = doc["components"]["schemas"]
    expected = ModelVersion.model_json_schema(mode="serialization", ref_template="#/components/schemas/{model}")
    assert schemas["ModelVersion"]["properties"] == expected["properties"]
    get = doc["paths"]["/api/v1/versions/{ref}"]["get"]
    assert get["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ModelVersion"
    }
    assert get["responses"]["404"] == {"$ref": "#/components/responses/Error404"}
    assert get["x-modelreg-role"] == "reader"
    ops = [(m, p) for p, item in doc["paths"].items() for m in item]
    assert len(ops) == len({op["operationId"] for item in doc["paths"].values() for op in item.values()})
    for method, path in ops:
        assert path.startswith("/api/v1/"), path
        assert doc["paths"][path][method]["summary"], (method, path)


def test_each_endpoint_lists_only_the_errors_it_can_return() -> None:
    paths = openapi_document()["paths"]

    def errors(method: str, path: str) -> set[int]:
        return {int(s) for s in paths["/api/v1" + path][method]["responses"] if int(s) >= 400}

    assert errors("get", "/health") == {403, 500}
    assert errors("get", "/whoami") == {401, 403, 429, 500, 503}
    assert errors("get", "/models") == {401, 403, 429, 500, 503}
    assert errors("get", "/versions/{ref}") == {401, 403, 404, 422, 429, 500, 503}
    assert errors("get", "/requests") == {401, 403, 404, 422, 429, 500, 503}  # ?model= names a model
    assert errors("post", "/models/{name}/versions") == {401, 403, 404, 409, 413, 422, 429, 500, 503, 507}
    assert errors("post", "/tokens") == {401, 403, 409, 413, 422, 429, 500, 503, 507}
    assert 416 in errors("get", "/download/{ref}")
    assert len({frozenset(errors(m, p.removeprefix("/api/v1"))) for p, item in paths.items() for m in item}) >= 6


def _populate(api: Api) -> None:
    w = api.client("writer")
    register(w, "churn", b"v1", metrics={"auc": 0.8})
    register(w, "churn", b"v2", metrics={"auc": 0.9})
    w.put("/models/churn/aliases/champion", json={"version": 2})
    w.post("/versions/churn/1/requests", json={"stage": "staging"})


def test_schemathesis_finds_no_server_errors_and_no_schema_violations(api: Api) -> None:
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    _populate(api)
    schema = schemathesis.openapi.from_dict(api.client().get("/openapi.json").json())
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]
    headers = {"Authorization": f"Bearer {api.tokens['admin']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30
    calls: list[tuple[str, int]] = []
    started = time.monotonic()
    for operation in operations:

        @settings(
            max_examples=20,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            response = case.call_and_validate(base_url=api.url, headers=headers, checks=checks)
            calls.append((f"{case.method} {case.path}", response.status_code))

        run()
    elapsed = time.monotonic() - started
    assert elapsed < 60, f"the Schemathesis run took {elapsed:.0f} s"
    assert not [c for c in calls if c[1] >= 500]
    assert len({c[0] for c in calls}) == len(operations)
    assert any(200 <= status < 300 for _, status in calls)
