"""The pieces every route uses: the endpoint table's entries, the settings, and the per-request
:class:`Call` (who is calling, the parsed path, query and body, and the registry)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ..errors import InvalidInputError
from .errors import PayloadTooLarge
from .schemas import Identity

if TYPE_CHECKING:
    from ..registry import Registry
    from .auth import RateLimiter, TokenTable

__all__ = ["MIB", "Call", "Endpoint", "Param", "Settings", "State"]

MIB = 1024 * 1024
B = TypeVar("B", bound=BaseModel)
T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """How the server behaves; ``modelreg serve`` sets them from its options."""

    read_only: bool = False
    no_auth: bool = False
    actor: str | None = None
    """The actor recorded for changes with ``no_auth`` (default: the registry's)."""
    max_body: int = 1 * MIB
    """Largest JSON request body, in bytes."""
    max_upload: int = 16 * 1024 * MIB
    """Largest blob upload (PUT /api/v1/blobs/{digest}), in bytes."""
    rate: float = 100.0
    """Requests a second each token (or, without auth, each client address) may make on average; 0: no limit."""
    burst: float | None = None
    """Requests a caller may make at once (default: twice ``rate``)."""
    token_ttl: float = 1.0
    """Seconds the token list read from the registry is reused."""
    tmp_dir: str | None = None
    """Where uploads are spooled before they are verified and stored (default: the system's)."""
    allowed_hosts: tuple[str, ...] | None = None
    """Host header values accepted (None: any); set for a loopback server without auth."""


@dataclass
class State:
    """What the app holds: the registry, the settings, the token table and the rate limiter."""

    registry: Registry
    settings: Settings
    tokens: TokenTable
    limiter: RateLimiter
    openapi: dict[str, Any] | None = None


@dataclass(frozen=True)
class Param:
    """A path, query or header parameter, for the router and the OpenAPI document."""

    name: str
    where: Literal["path", "query", "header"]
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


Handler = Callable[["Call"], Awaitable[Any]]


@dataclass(frozen=True)
class Endpoint:
    """One operation: ``path`` is the OpenAPI template, ``route`` Starlette's (``{ref:path}``)."""

    method: str
    path: str
    handler: Handler
    summary: str
    role: str | None = "reader"
    """The least role that may call it; None: no token needed (the docs and the schema)."""
    response: Any = None
    """A record class, ``list[Record]``, ``"binary"`` (a file) or None (no body)."""
    body: type[BaseModel] | Literal["binary"] | None = None
    params: tuple[Param, ...] = ()
    status: int = 200
    route: str = ""
    description: str = ""
    extra_statuses: tuple[int, ...] = ()

    @property
    def writes(self) -> bool:
        return self.method not in ("GET", "HEAD")

    @property
    def starlette_path(self) -> str:
        return self.route or self.path

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


def _problems(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ())) or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


class Call:
    """One request to an endpoint, after authentication."""

    def __init__(self, request: Request, state: State, identity: Identity) -> None:
        self.request, self.state, self.identity = request, state, identity

    @property
    def registry(self) -> Registry:
        return self.state.registry

    @property
    def actor(self) -> str:
        return self.identity.actor

    def path(self, name: str) -> str:
        return str(self.request.path_params[name])

    def query(self, name: str) -> str | None:
        return self.request.query_params.get(name)

    def query_list(self, name: str) -> list[str] | None:
        """A comma-separated (or repeated) query parameter as a list; None when absent."""
        values = self.request.query_params.getlist(name)
        if not values:
            return None
        return [v.strip() for item in values for v in item.split(",") if v.strip()]

    def query_int(self, name: str, *, minimum: int = 0) -> int | None:
        raw = self.query(name)
        if raw is None or raw == "":
            return None
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 18 or int(raw) < minimum:
            raise InvalidInputError(
                f"query parameter {name!r} must be an integer of at least {minimum}, got {raw!r:.40}"
            )
        return int(raw)

    def query_bool(self, name: str, default: bool) -> bool:
        raw = self.query(name)
        if raw is None or raw == "":
            return default
        if raw.lower() in ("1", "true", "yes"):
            return True
        if raw.lower() in ("0", "false", "no"):
            return False
        raise InvalidInputError(f"query parameter {name!r} must be true or false, got {raw!r:.40}")

    async def raw_body(self) -> bytes:
        limit = self.state.settings.max_body
        declared = self.request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"the request body is {int(declared)} bytes; this server accepts at most {limit}")
        chunks: list[bytes] = []
        n = 0
        async for chunk in self.request.stream():
            n += len(chunk)
            if n > limit:
                raise PayloadTooLarge(f"the request body is over {limit} bytes, the most this server accepts")
            chunks.append(chunk)
        return b"".join(chunks)

    async def body(self, model: type[B]) -> B:
        """The JSON body as ``model``; InvalidInputError for anything else (also a body not sent as
        ``application/json``: a browser cannot send that cross-site without asking first)."""
        ctype = self.request.headers.get("content-type", "").split(";")[0].strip().lower()
        raw = await self.raw_body()
        if ctype != "application/json":
            raise InvalidInputError(
                f"send the request body as JSON with 'Content-Type: application/json' (got {ctype or 'none'!r:.60}); "
                "with curl: --json '{...}'"
            )
        try:
            data = json.loads(raw) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"the request body is not valid JSON: {exc}") from None
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise InvalidInputError(f"invalid request body: {_problems(exc)}") from None

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a (blocking) registry call in the thread pool."""
        return await run_in_threadpool(fn, *args, **kwargs)
