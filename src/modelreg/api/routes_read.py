"""Read endpoints: models, versions, search, history, the events feed, verify, requests, whoami."""

from __future__ import annotations

from ..governance.events import EventsPage
from ..governance.requests import TransitionRequest
from ..models import AuditEvent, ModelVersion, RegisteredModel, VerifyReport
from ..query import parse_order_by, parse_query
from ..refs import parse_ref
from ..validation import check_name
from .core import Call, Endpoint, Param
from .schemas import Identity

__all__ = ["ENDPOINTS"]

NAME = Param("name", "path", "model name (may contain '/': fraud/churn)", required=True)
REF = Param(
    "ref",
    "path",
    "a version reference: churn (latest), churn/3, churn@production (stage), churn@champion (alias)",
    required=True,
)
REQUEST_ID = Param("id", "path", "a transition request id, e.g. churn:1f2e3d4c", required=True)
INT = {"type": "integer", "minimum": 0}
BOOL = {"type": "boolean"}


async def list_models(call: Call) -> list[RegisteredModel]:
    return list(await call.run(call.registry.list_models))


async def get_model(call: Call) -> RegisteredModel:
    return await call.run(call.registry.get_model, call.path("name"))


async def list_versions(call: Call) -> list[ModelVersion]:
    stage = call.query("stage")
    return list(await call.run(call.registry.list_versions, call.path("name"), stage or None))


async def get_version(call: Call) -> ModelVersion:
    return await call.run(call.registry.get_version, call.path("ref"))


def _search(call: Call, query: str | None, order_by: str | None, limit: int | None) -> list[ModelVersion]:
    # as Registry.search, without its SearchWarning (a warning has no place in a JSON answer)
    parsed = parse_query(query)
    order = parse_order_by([o.strip() for o in order_by.split(",") if o.strip()] if order_by else None)
    return call.registry.metadata.search(parsed, order, limit)


async def search(call: Call) -> list[ModelVersion]:
    return await call.run(_search, call, call.query("q") or None, call.query("order_by"), call.query_int("limit"))


def _history(call: Call, model: str | None, version: int | None) -> list[AuditEvent]:
    if model is None:
        if version is not None:
            from ..errors import InvalidInputError

            raise InvalidInputError("history: 'version' needs 'model'")
        return list(call.registry.history())
    r = parse_ref(model)
    return list(call.registry.history(r.name, version if version is not None else r.version))


async def history(call: Call) -> list[AuditEvent]:
    return await call.run(_history, call, call.query("model") or None, call.query_int("version", minimum=1))


async def events(call: Call) -> EventsPage:
    models = call.query_list("models")
    return await call.run(
        call.registry.events,
        call.query("since") or None,
        limit=call.query_int("limit", minimum=1),
        actions=call.query_list("actions"),
        models=[check_name(m) for m in models] if models is not None else None,
        include_internal=call.query_bool("include_internal", False),
    )


async def verify(call: Call) -> VerifyReport:
    model = call.query("model") or None
    return await call.run(call.registry.verify, model, blobs=call.query_bool("blobs", True))


async def list_requests(call: Call) -> list[TransitionRequest]:
    status = call.query("status") or "pending"
    model = call.query("model") or None
    return list(await call.run(call.registry.list_requests, status, model=model))


async def get_request(call: Call) -> TransitionRequest:
    return await call.run(call.registry.get_request, call.path("id"))


async def whoami(call: Call) -> Identity:
    return call.identity


def _stage_param() -> Param:
    return Param(
        "stage",
        "query",
        "only versions in this stage",
        {"type": "string", "enum": ["experimental", "staging", "production", "archived"]},
    )


ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", "/whoami", whoami, "Who the server takes the caller for", response=Identity),
    Endpoint("GET", "/models", list_models, "List models", response=list[RegisteredModel]),
    Endpoint(
        "GET",
        "/models/{name}/versions",
        list_versions,
        "List a model's versions",
        response=list[ModelVersion],
        params=(NAME, _stage_param()),
        route="/models/{name:path}/versions",
    ),
    Endpoint(
        "GET",
        "/models/{name}",
        get_model,
        "Get a model",
        response=RegisteredModel,
        params=(NAME,),
        route="/models/{name:path}",
    ),
    Endpoint(
        "GET",
        "/versions/{ref}",
        get_version,
        "Get a version by number, stage or alias",
        response=ModelVersion,
        params=(REF,),
        route="/versions/{ref:path}",
    ),
    Endpoint(
        "GET",
        "/search",
        search,
        "Search versions of all models",
        response=list[ModelVersion],
        params=(
            Param("q", "query", "a query: metrics.auc > 0.9 and tags.team = 'fraud' (see docs/concepts.md)"),
            Param("order_by", "query", "comma-separated keys, each optionally followed by asc or desc"),
            Param("limit", "query", "at most this many versions", INT),
        ),
    ),
    Endpoint(
        "GET",
        "/history",
        history,
        "Audit events, oldest first: of one model (optionally one version), or of all models",
        response=list[AuditEvent],
        params=(
            Param("model", "query", "a model name (or name/version)"),
            Param("version", "query", "only this version's events (needs model)", {"type": "integer", "minimum": 1}),
        ),
    ),
    Endpoint(
        "GET",
        "/events",
        events,
        "The durable events feed: events committed after a cursor",
        response=EventsPage,
        params=(
            Param(
                "since", "query", "the cursor of the previous page; 'now' for the current end; absent: from the start"
            ),
            Param("limit", "query", "at most this many events", {"type": "integer", "minimum": 1}),
            Param("actions", "query", "comma-separated topics or audit actions (transition,rollback,...)"),
            Param("models", "query", "comma-separated model names"),
            Param("include_internal", "query", "also the registry's own _registry chain", BOOL),
        ),
    ),
    Endpoint(
        "GET",
        "/verify",
        verify,
        "Re-hash the blobs in use and check the audit chains",
        response=VerifyReport,
        params=(
            Param("model", "query", "only this model"),
            Param("blobs", "query", "re-hash the blobs (default true); false checks the audit chains only", BOOL),
        ),
    ),
    Endpoint(
        "GET",
        "/requests",
        list_requests,
        "List transition requests",
        response=list[TransitionRequest],
        params=(
            Param(
                "status",
                "query",
                "pending (default), completed, rejected, cancelled, superseded or all",
                {"type": "string", "enum": ["pending", "completed", "rejected", "cancelled", "superseded", "all"]},
            ),
            Param("model", "query", "only this model's requests"),
        ),
    ),
    Endpoint(
        "GET",
        "/requests/{id}",
        get_request,
        "Get a transition request",
        response=TransitionRequest,
        params=(REQUEST_ID,),
        route="/requests/{id:path}",
    ),
]
