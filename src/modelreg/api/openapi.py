"""The OpenAPI 3.1 document of the HTTP API, generated from the endpoint table and the pydantic
records (``model_json_schema`` with ``$ref`` into ``components/schemas``), and the docs page.

A copy is committed as ``src/modelreg/api/openapi.json``; a test checks that it equals what the
server serves, so a change to the API is a deliberate one. Regenerate it with::

    python -m modelreg.api.openapi > src/modelreg/api/openapi.json
"""

from __future__ import annotations

import html
import json
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .core import Endpoint
from .errors import ApiError

__all__ = ["build_openapi", "docs_html", "error_statuses"]

API_VERSION = "1.0"

ERROR_TEXT = {
    401: "no token, or an unknown or revoked one (Unauthorized)",
    403: "the token's role does not allow this, the server is read-only, or the policy refuses it",
    404: "the model, version, alias, request or blob does not exist",
    405: "the path does not take this method",
    409: "a conflict: exists already, a transition the table forbids, a concurrent change",
    413: "the request body is too large",
    416: "the Range starts past the end of the file",
    422: "invalid input: a bad name, reference, query, body or digest",
    429: "too many requests for this token; see Retry-After",
    500: "an internal error, or stored content that fails verification",
    503: "the storage backend is unreachable or busy; retry later",
    507: "the storage backend is out of space",
}
DESCRIPTION = """\
The modelreg registry over HTTP, for tools that are not Python. Every answer is a record as the
Python library returns it (`model_dump(mode="json")`); every error is `{"error", "message",
"remedy"}` with the error class and message Python raises. Send `Authorization: Bearer <token>`
(create tokens with `modelreg token create`). Roles: reader (GET), writer (+ register, tags,
metrics, description, aliases, transitions the policy allows, requests), approver (+ approve,
reject), admin (+ tokens)."""


def _record_types(endpoint: Endpoint) -> list[tuple[type[BaseModel], str]]:
    out: list[tuple[type[BaseModel], str]] = []
    resp = endpoint.response
    if typing.get_origin(resp) is list:
        resp = typing.get_args(resp)[0]
    if isinstance(resp, type) and issubclass(resp, BaseModel):
        out.append((resp, "serialization"))
    if isinstance(endpoint.body, type) and issubclass(endpoint.body, BaseModel):
        out.append((endpoint.body, "validation"))
    return out


def _param(p: Any) -> dict[str, Any]:
    return {"name": p.name, "in": p.where, "required": p.where == "path" or p.required, "description": p.description,
            "schema": p.schema}  # fmt: skip


LOOKUP_QUERY = frozenset({"model", "models", "name"})
"""Query parameters naming a model: an unknown one is a 404."""


def error_statuses(endpoint: Endpoint) -> list[int]:
    """The statuses other than its success that ``endpoint`` can answer with (and ``extra_statuses``).

    Without a token (the docs, the schema, health): 403 (a request for another host name to a
    loopback server without auth) and 500. With one: 401, 403 (role, read-only, policy), 429 (rate
    limit), 500, 503 (storage unreachable); 422 when it takes parameters or a body, 413 when it takes
    a body, 404 when it names something (a path parameter or a model in the query), 409 and 507
    when it changes something."""
    if endpoint.role is None:
        return sorted({403, 500, *endpoint.extra_statuses})
    statuses = {401, 403, 429, 500, 503, *endpoint.extra_statuses}
    if endpoint.params or endpoint.body is not None:
        statuses.add(422)
    if endpoint.body is not None:
        statuses.add(413)
    if any(p.where == "path" or (p.where == "query" and p.name in LOOKUP_QUERY) for p in endpoint.params):
        statuses.add(404)
    if endpoint.writes:
        statuses |= {409, 507}
    return sorted(statuses)


def build_openapi(endpoints: list[Endpoint], base: str) -> dict[str, Any]:
    """The OpenAPI document of ``endpoints`` served under ``base``, as a dict."""
    pairs: list[tuple[type[BaseModel], Any]] = [(ApiError, "serialization")]
    for e in endpoints:
        for pair in _record_types(e):
            if pair not in pairs:
                pairs.append(pair)
    refs, top = models_json_schema(pairs, ref_template="#/components/schemas/{model}")
    error = {"application/json": {"schema": refs[(ApiError, "serialization")]}}
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        op: dict[str, Any] = {"operationId": e.operation_id, "summary": e.summary}
        if e.role is None:
            op["security"] = []
        else:
            op["x-modelreg-role"] = e.role
        if e.params:
            op["parameters"] = [_param(p) for p in e.params]
        if e.body == "binary":
            op["requestBody"] = {
                "required": True,
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            }
        elif e.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(e.body, "validation")]}},
            }
        responses: dict[str, Any] = {}
        resp = e.response
        ok: dict[str, Any] = {"description": "OK"}
        if typing.get_origin(resp) is list:
            item = typing.get_args(resp)[0]
            ok["content"] = {"application/json": {"schema": {"type": "array", "items": refs[(item, "serialization")]}}}
        elif isinstance(resp, type) and issubclass(resp, BaseModel):
            ok["content"] = {"application/json": {"schema": refs[(resp, "serialization")]}}
        elif resp == "binary":
            ok["content"] = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
            ok["headers"] = {
                "X-Modelreg-Digest": {"description": "the file's sha256 digest", "schema": {"type": "string"}}
            }
        elif resp == "openapi":
            ok["content"] = {"application/json": {"schema": {"type": "object"}}}
        elif resp == "html":
            ok["content"] = {"text/html": {"schema": {"type": "string"}}}
        responses[str(e.status)] = ok
        for status in error_statuses(e):
            if status == 206:
                responses["206"] = {**ok, "description": "Partial Content: the bytes a Range asked for"}
            elif str(status) not in responses:
                responses[str(status)] = {"$ref": f"#/components/responses/Error{status}"}
        if e.method == "HEAD":  # no body, not even for an error
            responses = {
                k: {"description": v.get("description", ERROR_TEXT.get(int(k), ""))} for k, v in responses.items()
            }
        op["responses"] = responses
        paths.setdefault(base + e.path, {})[e.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "modelreg HTTP API", "version": API_VERSION, "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": top.get("$defs", {}),
            "responses": {
                f"Error{status}": {"description": text, "content": error} for status, text in ERROR_TEXT.items()
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def openapi_text(doc: dict[str, Any]) -> str:
    """The document as the committed file holds it."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def docs_html(doc: dict[str, Any]) -> str:
    """A small self-contained reference page (no script, nothing fetched from elsewhere)."""
    esc = html.escape
    rows = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            params = "".join(
                f"<li><code>{esc(p['name'])}</code> ({esc(p['in'])}{', required' if p['required'] else ''}): "
                f"{esc(p['description'])}</li>"
                for p in op.get("parameters", [])
            )
            body = op.get("requestBody", {}).get("content", {})
            body_text = ""
            for ctype, spec in body.items():
                ref = spec["schema"].get("$ref", "")
                body_text = f"<p>Body: <code>{esc(ctype)}</code> {esc(ref.rsplit('/', 1)[-1])}</p>"
            role = op.get("x-modelreg-role", "none")
            rows.append(
                f"<section><h3><code>{esc(method.upper())} {esc(path)}</code></h3><p>{esc(op['summary'])}. "
                f"Role: <b>{esc(role)}</b>.</p>{body_text}{f'<ul>{params}</ul>' if params else ''}</section>"
            )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>modelreg HTTP API</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "code{background:#f3f3f3;padding:0 .2rem}h3{margin-bottom:.2rem}</style></head><body>"
        f"<h1>modelreg HTTP API {esc(API_VERSION)}</h1><p>{esc(DESCRIPTION)}</p>"
        "<p>The machine-readable contract: <a href='openapi.json'>openapi.json</a>.</p>"
        + "".join(rows)
        + "</body></html>"
    )
