"""The Starlette application of the HTTP API (``modelreg serve``), under ``/api/v1``.

Every endpoint of the table (:data:`ENDPOINTS`) goes through :func:`_dispatch`: the Host check
(a loopback server without auth), the bearer token (401), the rate limit (429), the role and
read-only mode (403), then the handler; whatever it raises becomes an :class:`ApiError` with the
status of :data:`modelreg.api.errors.STATUS`.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from .._version import __version__
from ..errors import NotFoundError
from .auth import RateLimiter, TokenTable
from .core import Call, Endpoint, Settings, State
from .errors import Forbidden, MethodNotAllowed, RangeNotSatisfiable, RateLimited, error_body, status_of
from .schemas import Health, Identity
from .tokens import role_allows

if TYPE_CHECKING:
    from ..registry import Registry

__all__ = ["BASE", "ENDPOINTS", "create_app", "json_response"]

BASE = "/api/v1"
log = logging.getLogger("modelreg.api")


async def health(call: Call) -> Health:
    return Health(version=__version__)


@functools.cache
def openapi_document() -> dict[str, Any]:
    """This API's OpenAPI document (built once per process from :data:`ENDPOINTS`)."""
    from .openapi import build_openapi

    return build_openapi(ENDPOINTS, BASE)


@functools.cache
def openapi_text() -> str:
    """The OpenAPI document as the committed ``openapi.json`` holds it (``python -m modelreg.api``
    prints it)."""
    from . import openapi

    return openapi.openapi_text(openapi_document())


async def openapi_json(call: Call) -> Response:
    root_path = call.request.scope.get("root_path", "")
    if root_path:  # behind a reverse proxy (modelreg serve --root-path): the paths start there
        from . import openapi

        doc = {**openapi_document(), "servers": [{"url": root_path}]}
        return Response(openapi.openapi_text(doc).encode("utf-8"), media_type="application/json")
    return Response(openapi_text().encode("utf-8"), media_type="application/json")


@functools.cache
def _docs_html() -> str:
    from .openapi import docs_html

    return docs_html(openapi_document())


async def docs_page(call: Call) -> Response:
    return HTMLResponse(_docs_html())


def _all_endpoints() -> list[Endpoint]:
    from . import routes_blobs, routes_read, routes_write

    meta = [
        Endpoint("GET", "/health", health, "Whether the server is up (no token needed)", role=None, response=Health),
        Endpoint("GET", "/openapi.json", openapi_json, "This API's OpenAPI document", role=None, response="openapi"),
        Endpoint("GET", "/docs", docs_page, "This API's reference, as a web page", role=None, response="html"),
    ]
    return [*meta, *routes_read.ENDPOINTS, *routes_blobs.ENDPOINTS, *routes_write.ENDPOINTS]


ENDPOINTS: list[Endpoint] = _all_endpoints()


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A record (or a list of records) as JSON, serialised as ``model_dump(mode="json")``."""
    if isinstance(data, BaseModel):
        body = data.model_dump_json().encode()
    elif isinstance(data, list):
        body = b"[" + b",".join(r.model_dump_json().encode() for r in data) + b"]"
    else:  # pragma: no cover - every handler returns records
        raise TypeError(f"cannot serialise {type(data).__name__}")
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def error_response(exc: BaseException) -> Response:
    status = status_of(exc)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="modelreg"'
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(int(exc.retry_after))
    if isinstance(exc, RangeNotSatisfiable):
        headers["Content-Range"] = f"bytes */{exc.size}"
    if status == 500:
        log.error("%s %s failed", type(exc).__name__, exc, exc_info=exc)
    return json_response(error_body(exc), status, headers)


def _identify(state: State, request: Request) -> Identity:
    settings = state.settings
    if settings.no_auth:
        actor = settings.actor or state.registry.who(None)
        return Identity(token=None, role="admin", actor=actor, read_only=settings.read_only)
    return state.tokens.identify(request.headers.get("authorization"), read_only=settings.read_only)


def _check_host(state: State, request: Request) -> None:
    allowed = state.settings.allowed_hosts
    if allowed is not None and request.headers.get("host", "") not in allowed:
        raise Forbidden(
            "this server answers only requests addressed to this machine by name (localhost or a loopback "
            "address); a request for another host name was refused (DNS rebinding?)"
        )


def _make_route(endpoint: Endpoint) -> Route:
    async def handle(request: Request) -> Response:
        state: State = request.app.state.api
        try:
            _check_host(state, request)
            if endpoint.role is None:
                identity = Identity(token=None, role="reader", actor="-", read_only=state.settings.read_only)
            else:
                identity = await _identify_async(state, request)
                state.limiter.take(identity.token or f"client:{request.client.host if request.client else '-'}")
                if not role_allows(identity.role, endpoint.role):
                    raise Forbidden(
                        f"token {identity.token!r} has the role {identity.role}; {endpoint.method} "
                        f"{BASE}{endpoint.path} needs {endpoint.role} or above"
                    )
                if endpoint.writes and state.settings.read_only:
                    raise Forbidden("this server is read-only (modelreg serve --read-only); nothing was changed")
            result = await endpoint.handler(Call(request, state, identity))
        except Exception as exc:
            return error_response(exc)
        if isinstance(result, Response):
            return result
        return json_response(result, endpoint.status)

    handle.__name__ = endpoint.operation_id
    methods = [endpoint.method]
    return Route(BASE + endpoint.starlette_path, handle, methods=methods, include_in_schema=False)


async def _identify_async(state: State, request: Request) -> Identity:
    from starlette.concurrency import run_in_threadpool

    if state.settings.no_auth:
        return _identify(state, request)
    if state.tokens.fresh():
        return _identify(state, request)  # cached: no registry read, no thread
    return await run_in_threadpool(_identify, state, request)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        response = error_response(MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}"))
        if exc.headers and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    if exc.status_code == 404:
        return error_response(NotFoundError(f"no such endpoint: {request.url.path}; see {BASE}/docs"))
    return json_response(error_body(exc), exc.status_code)


def create_app(registry: Registry, settings: Settings | None = None) -> Starlette:
    """The API application for ``registry``; see :class:`modelreg.api.core.Settings`."""
    settings = settings or Settings()
    state = State(
        registry=registry,
        settings=settings,
        tokens=TokenTable(registry, ttl=settings.token_ttl),
        limiter=RateLimiter(settings.rate, settings.burst),
    )
    app = Starlette(routes=[_make_route(e) for e in ENDPOINTS], exception_handlers={HTTPException: _http_error})
    app.state.api = state
    return app
