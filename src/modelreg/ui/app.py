"""The web UI as an ASGI application (Starlette + Jinja2, server-rendered).

Every read and every change goes through the :class:`~modelreg.Registry`
facade, so the UI follows exactly the same rules (stages, validation, audit)
as the API and the CLI, and shows the registry's error messages as they are.

Routes::

    GET  /                        models (search box: text, or the search language)
    GET  /model/<name>            versions, metric chart, stage timeline
    GET  /version/<name>/<n>      params, metrics, lineage, files, audit, actions
    GET  /download/<name>/<n>     the artifact (a folder as .zip; ?file=<path> for one file)
    GET  /compare?v=<ref>&v=...   two or more versions side by side
    GET  /audit                   the audit chain with its verification status
    GET  /requests                approval requests (when governance is available)
    POST /action/<kind>           a change: first a confirmation page, then the change
"""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._version import __version__
from ..errors import (
    AlreadyExistsError,
    BackendError,
    ConflictError,
    IntegrityError,
    InvalidInputError,
    InvalidTransitionError,
    ModelNotFound,
    ModelregError,
    NotFoundError,
    PolicyViolation,
    VersionNotFound,
)
from ..formatting import flatten, fmt_time, fmt_value, human_size, short_digest
from ..html import fmt_shape, summarize_event
from ..models import AuditEvent, ModelVersion, Stage, utcnow
from ..refs import parse_ref
from .charts import metric_chart, stage_timeline
from .security import CSRF_COOKIE, CSRF_FIELD, SECURITY_HEADERS, CsrfSigner, redact_url

if TYPE_CHECKING:  # pragma: no cover
    from ..registry import Registry

__all__ = ["create_app"]

HERE = Path(__file__).parent
PAGE_SIZE = 100
MAX_METRIC_COLUMNS = 6
AUDIT_PAGE = 200
SEARCH_LIMIT = 500

_STATUS: list[tuple[type[Exception], int]] = [
    (NotFoundError, 404),
    (PolicyViolation, 403),
    (InvalidTransitionError, 409),
    (ConflictError, 409),
    (AlreadyExistsError, 409),
    (IntegrityError, 500),
    (BackendError, 502),
    (InvalidInputError, 400),
    (ModelregError, 400),
]

DONE_MESSAGES = {
    "transition": "Stage changed.",
    "set_alias": "Alias set.",
    "delete_alias": "Alias removed.",
    "set_tag": "Tag saved.",
    "remove_tag": "Tag removed.",
    "set_description": "Description saved.",
    "model_description": "Model description saved.",
    "request_transition": "Approval requested.",
    "approve": "Request approved.",
    "reject": "Request rejected.",
    "cancel_request": "Request withdrawn.",
    "request_completed": "No approval was needed: the transition is done.",
    "approve_completed": "Approved: every gate is met and the transition is done.",
}


def _status_for(exc: Exception) -> int:
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            return code
    return 500


def _local_path(value: str | None, default: str) -> str:
    """Only same-site paths are allowed as redirect targets."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value and "\n" not in value:
        return value
    return default


class SecurityHeaders:
    """Pure ASGI middleware adding the security headers to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for k, v in SECURITY_HEADERS.items():
                    if k.encode() not in present:
                        headers.append((k.encode(), v.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, wrapped)


@dataclass
class Action:
    """A change the UI can make: its form fields, a confirmation text and the registry call."""

    title: str
    fields: tuple[str, ...]
    describe: Callable[[UI, dict[str, str]], list[str]]
    run: Callable[[UI, dict[str, str]], Any]
    danger: bool = False
    optional: tuple[str, ...] = field(default=())


class UI:
    """Application state: the registry, templates, CSRF signer and options."""

    def __init__(self, registry: Registry, *, read_only: bool, actor: str | None, secret: bytes | None) -> None:
        from ..registry import default_actor

        self.registry = registry
        self.read_only = read_only
        self.actor = actor
        self.actor_display = actor or getattr(registry, "_actor", None) or default_actor()
        self.signer = CsrfSigner(secret)
        self.location = _describe_location(registry)
        self.env = Environment(
            loader=FileSystemLoader(str(HERE / "templates")),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            size=human_size,
            short=short_digest,
            time=fmt_time,
            val=fmt_value,
            summary=summarize_event,
        )
        self.env.globals.update(version=__version__, stages=[s.value for s in Stage])

    @property
    def governance(self) -> bool:
        """True when the registry offers approval requests (``list_requests``, ``approve``, ``reject``...)."""
        return all(
            hasattr(self.registry, m)
            for m in ("list_requests", "request_transition", "approve", "reject", "cancel", "get_request")
        )

    # -- rendering --------------------------------------------------------------------
    def csrf_token(self, request: Request) -> tuple[str, bool]:
        token = request.cookies.get(CSRF_COOKIE)
        if token and self.signer.valid(token):
            return token, False
        return self.signer.new_token(), True

    def render(self, request: Request, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
        token, fresh = self.csrf_token(request)
        base = request.scope.get("root_path", "").rstrip("/")
        done = request.query_params.get("done")
        ctx = {
            "request": request,
            "base": base,
            "csrf_token": token,
            "csrf_field": CSRF_FIELD,
            "read_only": self.read_only,
            "actor": self.actor_display,
            "location": self.location,
            "governance": self.governance,
            "done_message": DONE_MESSAGES.get(done or ""),
            "nav": "",
            "page_title": "",
        }
        ctx.update(context)
        body = self.env.get_template(template).render(ctx)
        response = HTMLResponse(body, status_code=status)
        if fresh:
            response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", path="/")
        return response

    def error(
        self,
        request: Request,
        exc: Exception | str,
        status: int | None = None,
        *,
        back: str | None = None,
        model: str | None = None,
    ) -> HTMLResponse:
        """The error page. A 404 suggests where to go next in the browser (links), not a command:
        ``model`` names the model the page was about, for a "see its versions" link."""
        message = str(exc)
        kind = type(exc).__name__ if isinstance(exc, Exception) else "Error"
        code = status or (_status_for(exc) if isinstance(exc, Exception) else 400)
        links: list[tuple[str, str]] = []
        if code == 404:
            message = _without_cli_hint(message)
            links = self._not_found_links(exc, model)
        elif back:
            links = [("Back", back)]
        return self.render(
            request,
            "error.html",
            {
                "error_kind": kind,
                "message": message,
                "status": code,
                "links": links,
                "page_title": "Not found" if code == 404 else "Error",
            },
            status=code,
        )

    def _not_found_links(self, exc: Exception | str, model: str | None) -> list[tuple[str, str]]:
        """What a person can do next in the browser after a 404 (label, same-site path)."""
        links: list[tuple[str, str]] = []
        if isinstance(exc, VersionNotFound) and model:
            links.append((f"See the versions of {model}", f"/model/{model}"))
        if isinstance(exc, ModelNotFound) and model:
            leaf = model.rsplit("/", 1)[-1]
            links.append((f"Search the models for \u201c{leaf}\u201d", "/?" + _query(q=leaf)))
        links.append(("Browse all models", "/"))
        if not isinstance(exc, NotFoundError):  # an unknown address: the other pages
            links.append(("Compare versions", "/compare"))
            links.append(("Audit log", "/audit"))
            if self.governance:
                links.append(("Approval requests", "/requests"))
        return links


_CLI_HINT = re.compile(r"(;\s*[^;]*`modelreg [^`]*`[^;]*|\s*\(CLI: modelreg [^)]*\))")


def _without_cli_hint(message: str) -> str:
    """The registry's message without its hint for the command line (``; list models with `modelreg list```):
    the page offers links instead."""
    return _CLI_HINT.sub("", message).strip()


def _describe_location(registry: Registry) -> str:
    """Where the registry lives, without credentials."""
    uri = getattr(registry, "uri", None)
    if uri:
        return redact_url(str(uri))
    meta = redact_url(getattr(registry.metadata, "url", "") or "")
    arts = redact_url(getattr(registry.artifacts, "url", "") or "")
    return f"{meta} + {arts}" if meta and arts else meta or arts


# -- helpers -------------------------------------------------------------------------------


def _metric_keys(versions: Iterable[ModelVersion]) -> list[str]:
    counts: dict[str, int] = {}
    for mv in versions:
        for k in mv.current_metrics:
            counts[k] = counts.get(k, 0) + 1
    return sorted(counts, key=lambda k: (-counts[k], k))


_STAGE_ORDER = {"production": 0, "staging": 1, "experimental": 2, "archived": 3}


def _sort_versions(versions: list[ModelVersion], sort: str, desc: bool) -> list[ModelVersion]:
    if sort.startswith("metric:"):
        key = sort[len("metric:") :]
        have = [v for v in versions if key in v.current_metrics]
        missing = [v for v in versions if key not in v.current_metrics]
        have.sort(key=lambda v: (v.current_metrics[key], v.version), reverse=desc)
        return have + missing  # versions without the metric always last
    keyfn: Callable[[ModelVersion], Any] = {
        "stage": lambda v: (_STAGE_ORDER.get(v.stage.value, 9), v.version),
        "created": lambda v: (v.created_at, v.version),
        "created_by": lambda v: (v.created_by, v.version),
        "size": lambda v: (v.size, v.version),
    }.get(sort, lambda v: v.version)
    return sorted(versions, key=keyfn, reverse=desc)


def _version_path(name: str, version: int) -> str:
    return f"/version/{name}/{version}"


def _safe_link(url: str | None) -> str | None:
    """Only http(s) links become clickable (never ``javascript:`` and friends)."""
    if url and url.lower().startswith(("http://", "https://")):
        return url
    return None


def _query(**params: Any) -> str:
    return urlencode({k: v for k, v in params.items() if v not in (None, "")}, doseq=True)


# -- pages ---------------------------------------------------------------------------------------


def _looks_like_query(q: str) -> bool:
    low = f" {q.lower()} "
    return any(op in q for op in ("=", "<", ">")) or " like " in low or " in (" in low


async def models_page(request: Request) -> Response:
    ui: UI = request.app.state.ui
    q = request.query_params.get("q", "").strip()

    def load() -> dict[str, Any]:
        reg = ui.registry
        if q and _looks_like_query(q):
            try:
                hits = reg.search(q, limit=SEARCH_LIMIT)
            except InvalidInputError as exc:
                return {"q": q, "search_error": str(exc), "hits": None, "models": []}
            return {
                "q": q,
                "hits": hits,
                "metric_keys": _metric_keys(hits)[:4],
                "models": [],
                "search_error": None,
                "limit": SEARCH_LIMIT,
            }
        models = reg.list_models()
        if q:
            needle = q.lower()

            def match(m: Any) -> bool:
                hay = [m.name, m.description, m.owner or "", *m.tags.keys(), *m.tags.values(), *m.aliases.keys()]
                return any(needle in str(h).lower() for h in hay)

            models = [m for m in models if match(m)]
        return {"q": q, "models": models, "hits": None, "search_error": None}

    ctx = await run_in_threadpool(load)
    status = 400 if ctx.get("search_error") else 200
    return ui.render(request, "models.html", {**ctx, "nav": "models", "page_title": "Models"}, status=status)


async def model_page(request: Request) -> Response:
    ui: UI = request.app.state.ui
    name = request.path_params["name"]
    qp = request.query_params
    sort = qp.get("sort", "version")
    desc = qp.get("order", "desc") == "desc"
    stage_filter = qp.get("stage", "")
    try:
        page = max(1, int(qp.get("page", "1")))
    except ValueError:
        page = 1

    def load() -> dict[str, Any]:
        reg = ui.registry
        model = reg.get_model(name)
        versions = reg.list_versions(name)
        events = reg.history(name)
        keys = _metric_keys(versions)
        columns = keys[:MAX_METRIC_COLUMNS]
        metric = qp.get("metric") or (columns[0] if columns else "")
        shown = [v for v in versions if not stage_filter or v.stage.value == stage_filter]
        shown = _sort_versions(shown, sort, desc)
        pages = max(1, -(-len(shown) // PAGE_SIZE))
        current = min(page, pages)
        rows = shown[(current - 1) * PAGE_SIZE : current * PAGE_SIZE]
        stage_changes = [ev for ev in events if ev.action in ("transition", "rollback")][-25:][::-1]
        return {
            "model": model,
            "versions": versions,
            "rows": rows,
            "columns": columns,
            "metric_keys": keys,
            "metric": metric,
            "chart": metric_chart(versions, metric) if metric else None,
            "timeline": stage_timeline(events, utcnow()),
            "stage_changes": stage_changes,
            "sort": sort,
            "desc": desc,
            "stage_filter": stage_filter,
            "page": current,
            "pages": pages,
            "total": len(shown),
            "page_size": PAGE_SIZE,
            "counts": {s.value: sum(1 for v in versions if v.stage == s) for s in Stage},
            "requests": _open_requests(ui, name),
        }

    try:
        ctx = await run_in_threadpool(load)
    except ModelregError as exc:
        return ui.error(request, exc, back="/", model=name)

    def sort_url(key: str) -> str:
        new_desc = not desc if sort == key else key != "created_by"
        return "?" + _query(sort=key, order="desc" if new_desc else "asc", stage=stage_filter, metric=ctx["metric"])

    def page_url(n: int) -> str:
        return "?" + _query(
            sort=sort, order="desc" if desc else "asc", stage=stage_filter, metric=ctx["metric"], page=n
        )

    ctx.update(
        sort_url=sort_url,
        page_url=page_url,
        nav="models",
        page_title=name,
        stage_url=lambda s: "?" + _query(stage=s, sort=sort, order="desc" if desc else "asc", metric=ctx["metric"]),
    )
    return ui.render(request, "model.html", ctx)


USAGE_ROWS = 50
"""Usage records shown on a version's page (the newest)."""


async def version_page(request: Request) -> Response:
    ui: UI = request.app.state.ui
    raw = request.path_params["ref"]
    try:
        ref = parse_ref(raw)
    except ModelregError as exc:
        return ui.error(request, exc, back="/")
    if ref.version is None:
        try:
            mv = await run_in_threadpool(ui.registry.get_version, raw)
        except ModelregError as exc:
            return ui.error(request, exc, back=f"/model/{ref.name}", model=ref.name)
        return RedirectResponse(
            request.scope.get("root_path", "") + _version_path(mv.name, mv.version), status_code=302
        )

    def load() -> dict[str, Any]:
        reg = ui.registry
        mv = reg.get_version(ref.name, ref.version)
        model = reg.get_model(ref.name)
        points = reg.metric_history(mv.ref)
        history: dict[str, list[Any]] = {}
        for p in points:
            history.setdefault(p.key, []).append(p)
        metrics = []
        for key in sorted(set(mv.current_metrics) | set(history)):
            pts = history.get(key, [])
            metrics.append(
                {
                    "key": key,
                    "registered": mv.metrics.get(key),
                    "current": mv.current_metrics.get(key),
                    "points": pts,
                    "spark": _sparkline([p.value for p in pts]) if len(pts) > 1 else None,
                }
            )
        events = reg.history(ref.name, ref.version)
        usage = reg.metadata.list_usage(ref.name, ref.version, limit=USAGE_ROWS)
        lineage = mv.lineage
        parents: list[dict[str, str | None]] = []
        for parent in lineage.parents:
            try:
                pr = parse_ref(parent)
                parents.append(
                    {"ref": parent, "url": f"/version/{pr.name}/{pr.version}" if pr.version else f"/version/{parent}"}
                )
            except ModelregError:
                parents.append({"ref": parent, "url": None})
        targets = [s.value for s in reg.rules.allowed(mv.stage)]
        gated = _approval_gates(ui, targets)
        live = sorted({v for vs in model.stages.values() for v in vs})
        production = [v for v in model.stages.get("production", []) if v != mv.version]
        earlier = [v for v in live if v < mv.version]
        compare_with = production[-1] if production else (earlier[-1] if earlier else None)
        return {
            "mv": mv,
            "model": model,
            "params": flatten(mv.params),
            "metrics": metrics,
            "events": events,
            "usage": list(reversed(usage)),
            "usage_rows": USAGE_ROWS,
            "lineage": lineage,
            "run_link": _safe_link(lineage.run_url),
            "parents": parents,
            "targets": targets,
            # a direct move for a stage whose gate needs no approval, a request form for one that does
            "direct_targets": [s for s in targets if s not in gated],
            "approval_targets": gated,
            "model_info": _model_info(mv),
            "model_aliases": model.aliases,
            "compare_with": compare_with,
            "n_points": len(points),
            "requests": _open_requests(ui, ref.name, ref.version),
        }

    try:
        ctx = await run_in_threadpool(load)
    except ModelregError as exc:
        return ui.error(request, exc, back=f"/model/{ref.name}", model=ref.name)
    ctx.update(nav="models", page_title=ctx["mv"].ref)
    return ui.render(request, "version.html", ctx)


def _approval_gates(ui: UI, targets: list[str]) -> dict[str, str]:
    """The target stages whose policy gate asks for approvals, each with what it asks for
    (e.g. ``{"production": "1 approval"}``); empty without governance or without such gates."""
    get_policy = getattr(ui.registry, "get_policy", None)
    if not ui.governance or get_policy is None:
        return {}
    policy = get_policy()
    gated = {}
    for target in targets:
        gate = policy.gate(target)
        if gate.needs_approval:
            gated[target] = " and ".join(rule.describe() for rule in gate.approvals)
    return gated


def _model_info(mv: ModelVersion) -> dict[str, Any] | None:
    """What the version's saved model object is (``mv.model``), laid out for the page; None without one."""
    info = getattr(mv, "model", None)
    if info is None:
        return None
    sig = info.signature
    columns: list[dict[str, Any]] = []
    if sig is not None:
        for role, specs in (("input", sig.inputs), ("output", sig.outputs)):
            for spec in specs:
                columns.append({"role": role, "name": spec.name, "dtype": spec.dtype, "shape": fmt_shape(spec.shape)})
    return {"info": info, "signature": sig, "columns": columns}


def _sparkline(values: list[float], width: int = 120, height: int = 24) -> Markup:
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    n = len(values)
    pts = " ".join(
        f"{2 + i * (width - 4) / max(n - 1, 1):.1f},{height - 3 - (v - lo) / span * (height - 6):.1f}"
        for i, v in enumerate(values)
    )
    return Markup(
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-hidden="true" xmlns="http://www.w3.org/2000/svg"><polyline points="{pts}"/></svg>'
    )


async def download(request: Request) -> Response:
    ui: UI = request.app.state.ui
    raw = request.path_params["ref"]
    wanted = request.query_params.get("file")

    def fetch() -> tuple[Path, str, str]:
        mv = ui.registry.get_version(raw)
        tmp = Path(tempfile.mkdtemp(prefix="modelreg-ui-"))
        try:
            path = ui.registry.download(mv.ref, tmp)
            if wanted is not None:
                if mv.artifact.kind != "directory" or wanted not in {f.path for f in mv.artifact.files}:
                    raise NotFoundError(f"{mv.ref} has no file {wanted!r}; see the file list on its page")
                return tmp, str(path / wanted), wanted.rsplit("/", 1)[-1]
            if mv.artifact.kind == "directory":
                archive = tmp / f"{mv.artifact.name}.zip"
                with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
                    for f in mv.artifact.files:
                        zf.write(path / f.path, f"{mv.artifact.name}/{f.path}")
                return tmp, str(archive), f"{mv.name.replace('/', '-')}-v{mv.version}-{mv.artifact.name}.zip"
            return tmp, str(path), mv.artifact.name
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    try:
        tmp, path, filename = await run_in_threadpool(fetch)
    except ModelregError as exc:
        try:
            name: str | None = parse_ref(raw).name
        except ModelregError:
            name = None
        return ui.error(request, exc, model=name)
    return FileResponse(
        path,
        filename=filename,
        media_type="application/octet-stream",
        background=BackgroundTask(shutil.rmtree, tmp, True),
    )


def _compare_rows(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = sorted(set().union(*values)) if values else []
    rows = []
    for k in keys:
        cells = [v.get(k) for v in values]
        rows.append({"key": k, "cells": cells, "differs": any(c != cells[0] for c in cells[1:])})
    return rows


async def compare_page(request: Request) -> Response:
    ui: UI = request.app.state.ui
    refs = [r.strip() for r in request.query_params.getlist("v") if r.strip()]
    only_diff = request.query_params.get("diff") == "1"
    if len(refs) < 2:
        return ui.render(
            request,
            "compare.html",
            {
                "refs": refs,
                "versions": [],
                "nav": "compare",
                "page_title": "Compare",
                "only_diff": only_diff,
                "message": (
                    "Pick two or more versions: tick them in a model's version table, or type their references "
                    "(such as churn/3) in the boxes above and press Compare."
                ),
            },
        )

    def load() -> dict[str, Any]:
        reg = ui.registry
        versions = [reg.get_version(r) for r in refs]
        base = versions[0]
        pairs = [(mv, reg.compare(base.ref, mv.ref)) for mv in versions[1:]]
        overview: list[dict[str, Any]] = [
            {"key": "stage", "cells": [mv.stage.value for mv in versions]},
            {"key": "aliases", "cells": [", ".join(mv.aliases) for mv in versions]},
            {"key": "created", "cells": [f"{fmt_time(mv.created_at)} by {mv.created_by}" for mv in versions]},
            {"key": "size", "cells": [human_size(mv.size) for mv in versions]},
            {"key": "files", "cells": [len(mv.artifact.files) for mv in versions]},
            {"key": "digest", "cells": [short_digest(mv.digest, 16) for mv in versions]},
        ]
        for row in overview:
            row["differs"] = any(c != row["cells"][0] for c in row["cells"][1:])
        lineage = [flatten(_lineage_dict(mv)) for mv in versions]
        files = [{f.path: f for f in mv.artifact.files} for mv in versions]
        file_rows = []
        for path in sorted(set().union(*files)):
            cells = [fs.get(path) for fs in files]
            digests = [c.digest if c else None for c in cells]
            file_rows.append({"key": path, "cells": cells, "differs": any(d != digests[0] for d in digests[1:])})
        return {
            "versions": versions,
            "pairs": pairs,
            "overview": overview,
            "metrics": _compare_rows([mv.current_metrics for mv in versions]),
            "params": _compare_rows([flatten(mv.params) for mv in versions]),
            "tags": _compare_rows([mv.tags for mv in versions]),
            "lineage": _compare_rows(lineage),
            "files": file_rows,
        }

    try:
        ctx = await run_in_threadpool(load)
    except ModelregError as exc:
        return ui.error(request, exc, back="/compare")
    toggle = "?" + _query(v=refs, diff=None if only_diff else "1")
    ctx.update(refs=refs, only_diff=only_diff, toggle_url=toggle, nav="compare", page_title="Compare", message=None)
    return ui.render(request, "compare.html", ctx)


def _lineage_dict(mv: ModelVersion) -> dict[str, Any]:
    data = mv.lineage.model_dump(mode="json", exclude_none=True)
    out: dict[str, Any] = {}
    for k, v in data.items():
        if k == "datasets":
            for i, ds in enumerate(v):
                out[f"datasets[{i}]"] = " @ ".join(
                    str(x) for x in (ds.get("uri"), ds.get("version") or ds.get("digest")) if x
                )
        elif k == "parents":
            out["parents"] = ", ".join(v)
        elif v not in ({}, [], ""):
            out[k] = v
    return out


async def audit_page(request: Request) -> Response:
    ui: UI = request.app.state.ui
    qp = request.query_params
    model = qp.get("model", "").strip()
    actor = qp.get("actor", "").strip()
    action = qp.get("action", "").strip()
    try:
        page = max(1, int(qp.get("page", "1")))
    except ValueError:
        page = 1

    def load() -> dict[str, Any]:
        reg = ui.registry
        names = [m.name for m in reg.list_models()]
        checked = [model] if model else names
        status = []
        for n in checked:
            problems, count = reg.verify_audit(n)
            status.append({"model": n, "problems": problems, "events": count})
        events: list[AuditEvent] = reg.history(model) if model else reg.history()
        actors = sorted({ev.actor for ev in events})
        actions = sorted({ev.action for ev in events})
        if actor:
            events = [ev for ev in events if ev.actor == actor]
        if action:
            events = [ev for ev in events if ev.action == action]
        events = events[::-1]
        pages = max(1, -(-len(events) // AUDIT_PAGE))
        current = min(page, pages)
        return {
            "names": names,
            "status": status,
            "broken": [s for s in status if s["problems"]],
            "events": events[(current - 1) * AUDIT_PAGE : current * AUDIT_PAGE],
            "total": len(events),
            "actors": actors,
            "actions": actions,
            "page": current,
            "pages": pages,
        }

    try:
        ctx = await run_in_threadpool(load)
    except ModelregError as exc:
        return ui.error(request, exc, back="/audit")
    ctx.update(
        model=model,
        actor_filter=actor,
        action_filter=action,
        nav="audit",
        page_title="Audit",
        page_url=lambda n: "?" + _query(model=model, actor=actor, action=action, page=n),
    )
    return ui.render(request, "audit.html", ctx)


def _open_requests(ui: UI, name: str, version: int | None = None) -> list[Any]:
    """Pending approval requests of a model (or of one version), when governance is available."""
    if not ui.governance:
        return []
    found = ui.registry.list_requests("pending", model=name)
    return [r for r in found if version is None or r.version == version]


REQUEST_STATUSES = ("pending", "completed", "rejected", "cancelled", "superseded", "all")


async def requests_page(request: Request) -> Response:
    ui: UI = request.app.state.ui
    if not ui.governance:
        return ui.error(request, "Approval requests are not available in this version of modelreg.", 404, back="/")
    model = request.query_params.get("model", "").strip() or None
    status = request.query_params.get("status", "pending").strip() or "pending"

    def load() -> dict[str, Any]:
        reg = ui.registry
        found = reg.list_requests(status, model=model)
        return {"found": list(found)[::-1], "names": [m.name for m in reg.list_models()]}

    try:
        ctx = await run_in_threadpool(load)
    except ModelregError as exc:
        return ui.error(request, exc, back="/requests")
    ctx.update(model=model or "", status=status, statuses=REQUEST_STATUSES, nav="requests", page_title="Requests")
    return ui.render(request, "requests.html", ctx)


# -- actions ---------------------------------------------------------------------------------------------


def _ref_of(form: dict[str, str]) -> str:
    ref = parse_ref(form.get("ref", ""))
    if ref.version is None:
        raise InvalidInputError(f"the UI changes explicit versions only, e.g. 'churn/3'; got {form.get('ref')!r}")
    return str(ref)


def _describe_transition(ui: UI, f: dict[str, str]) -> list[str]:
    ref = parse_ref(_ref_of(f))
    reg = ui.registry
    mv = reg.get_version(str(ref))
    target = f.get("stage", "")
    lines = [f"Move {mv.ref} from {mv.stage.value} to {target}."]
    try:
        stage = Stage(target)
    except ValueError:
        return lines
    rules = reg.rules
    if stage in rules.exclusive:
        holders = [v.version for v in reg.list_versions(mv.name, stage=stage) if v.version != mv.version]
        for v in holders:
            lines.append(f"Version {v} is in {stage.value} now and will move to {rules.displaced_to.value}.")
    if hasattr(reg, "check_transition"):
        for gate in reg.check_transition(mv.ref, stage):
            lines.append(f"The policy will refuse this: {gate}")
    return lines


def _describe_request(ui: UI, verb: str, f: dict[str, str]) -> list[str]:
    req = ui.registry.get_request(f.get("request_id", ""))
    lines = [
        f"{verb} request {req.id}: move {req.ref} from {req.from_stage.value} to {req.to_stage.value}, "
        f"requested by {req.requester}."
    ]
    if req.comment:
        lines.append(f"Reason given: {req.comment}")
    if req.approvals:
        lines.append("Approved so far by " + ", ".join(req.approvers) + ".")
    return lines


def _describe_alias(ui: UI, f: dict[str, str]) -> list[str]:
    ref = parse_ref(_ref_of(f))
    lines = [f"Point the alias @{f.get('alias')} at {ref}."]
    current = ui.registry.get_model(ref.name).aliases.get(f.get("alias", ""))
    if current is not None and current != ref.version:
        lines.append(f"It points at version {current} now.")
    return lines


def _actor_kw(ui: UI) -> dict[str, Any]:
    return {"actor": ui.actor} if ui.actor else {}


ACTIONS: dict[str, Action] = {
    "transition": Action(
        "Change stage",
        ("ref", "stage"),
        _describe_transition,
        # strict: the confirmation promised a move, so a version someone else moved there meanwhile is
        # reported ("already in staging; nothing to do"), not shown as "Stage changed."
        lambda ui, f: ui.registry.transition(
            _ref_of(f), stage=f["stage"], comment=f.get("comment") or None, strict=True, **_actor_kw(ui)
        ),
        optional=("comment",),
    ),
    "set_alias": Action(
        "Set alias",
        ("ref", "alias"),
        lambda ui, f: _describe_alias(ui, f),
        lambda ui, f: ui.registry.set_alias(
            parse_ref(_ref_of(f)).name,
            f["alias"],
            cast(int, parse_ref(_ref_of(f)).version),  # _ref_of refuses a reference without a version
            comment=f.get("comment") or None,
            **_actor_kw(ui),
        ),
        optional=("comment",),
    ),
    "delete_alias": Action(
        "Remove alias",
        ("name", "alias"),
        lambda ui, f: [f"Remove the alias @{f.get('alias')} of {f.get('name')}."],
        lambda ui, f: ui.registry.delete_alias(f["name"], f["alias"], **_actor_kw(ui)),
        danger=True,
    ),
    "set_tag": Action(
        "Set tag",
        ("ref", "key"),
        lambda ui, f: [f"Set the tag {f.get('key')} = {f.get('value', '')!r} on {_ref_of(f)}."],
        lambda ui, f: ui.registry.set_tags(_ref_of(f), {f["key"]: f.get("value", "")}, **_actor_kw(ui)),
        optional=("value",),
    ),
    "remove_tag": Action(
        "Remove tag",
        ("ref", "key"),
        lambda ui, f: [f"Remove the tag {f.get('key')} from {_ref_of(f)}."],
        lambda ui, f: ui.registry.set_tags(_ref_of(f), {}, remove=[f["key"]], **_actor_kw(ui)),
        danger=True,
    ),
    "set_description": Action(
        "Change description",
        ("ref",),
        lambda ui, f: [f"Replace the description of {_ref_of(f)} with:", f.get("description", "") or "(empty)"],
        lambda ui, f: ui.registry.set_description(_ref_of(f), f.get("description", ""), **_actor_kw(ui)),
        optional=("description",),
    ),
    "model_description": Action(
        "Change model description",
        ("name",),
        lambda ui, f: [
            f"Replace the description of the model {f.get('name')} with:",
            f.get("description", "") or "(empty)",
        ],
        lambda ui, f: ui.registry.update_model(f["name"], description=f.get("description", ""), **_actor_kw(ui)),
        optional=("description",),
    ),
    "request_transition": Action(
        "Request approval",
        ("ref", "stage"),
        lambda ui, f: [f"Ask for approval to move {_ref_of(f)} to {f.get('stage')}."],
        lambda ui, f: ui.registry.request_transition(
            _ref_of(f), f["stage"], comment=f.get("comment") or None, **_actor_kw(ui)
        ),
        optional=("comment",),
    ),
    "approve": Action(
        "Approve request",
        ("request_id",),
        lambda ui, f: _describe_request(ui, "Approve", f),
        lambda ui, f: ui.registry.approve(f["request_id"], comment=f.get("comment") or None, **_actor_kw(ui)),
        optional=("comment",),
    ),
    "reject": Action(
        "Reject request",
        ("request_id",),
        lambda ui, f: _describe_request(ui, "Reject", f),
        lambda ui, f: ui.registry.reject(f["request_id"], comment=f.get("comment") or None, **_actor_kw(ui)),
        danger=True,
        optional=("comment",),
    ),
    "cancel_request": Action(
        "Withdraw request",
        ("request_id",),
        lambda ui, f: _describe_request(ui, "Withdraw", f),
        lambda ui, f: ui.registry.cancel(f["request_id"], comment=f.get("comment") or None, **_actor_kw(ui)),
        danger=True,
        optional=("comment",),
    ),
}
GOVERNANCE_ACTIONS = {"request_transition", "approve", "reject", "cancel_request"}


def _return_path(ui: UI, kind: str, f: dict[str, str]) -> str:
    if f.get("request_id"):
        return "/requests"
    if f.get("ref"):
        try:
            r = parse_ref(f["ref"])
            if r.version is not None:
                return _version_path(r.name, r.version)
        except ModelregError:
            pass
    if f.get("name"):
        return f"/model/{f['name']}"
    return "/"


async def action(request: Request) -> Response:
    ui: UI = request.app.state.ui
    kind = request.path_params["kind"]
    if ui.read_only:
        return ui.error(request, "This registry is open read-only (modelreg ui --read-only): nothing was changed.", 403)
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.url.netloc}"
    if (origin is not None and origin != own) or request.headers.get("sec-fetch-site") == "cross-site":
        return ui.error(request, "Cross-site request refused: changes can only be made from this UI's own pages.", 403)
    form_data = await request.form()
    form = {k: v for k, v in form_data.items() if isinstance(v, str)}
    if not ui.signer.check(request.cookies.get(CSRF_COOKIE), form.get(CSRF_FIELD)):
        return ui.error(
            request, "Missing or invalid CSRF token: reload the page and try again. Nothing was changed.", 403
        )
    spec = ACTIONS.get(kind)
    if spec is None or (kind in GOVERNANCE_ACTIONS and not ui.governance):
        return ui.error(request, f"Unknown action {kind!r}.", 404)
    back = _local_path(form.get("next"), _return_path(ui, kind, form))
    missing = [k for k in spec.fields if not form.get(k)]
    if missing:
        return ui.error(request, f"{spec.title}: missing {', '.join(missing)}.", 400, back=back)
    values = {k: form[k] for k in (*spec.fields, *spec.optional) if k in form}

    if form.get("confirm") != "yes":
        try:
            lines = await run_in_threadpool(spec.describe, ui, values)
        except ModelregError as exc:
            return ui.error(request, exc, back=back)
        return ui.render(
            request,
            "confirm.html",
            {
                "kind": kind,
                "spec": spec,
                "lines": lines,
                "values": values,
                "back": back,
                "page_title": f"Confirm: {spec.title}",
            },
        )
    try:
        result = await run_in_threadpool(spec.run, ui, values)
    except ModelregError as exc:
        return ui.error(request, exc, back=back)
    done = kind
    if kind in ("request_transition", "approve") and getattr(result, "status", None) == "completed":
        done = f"{kind.split('_')[0]}_completed"
    sep = "&" if "?" in back else "?"
    root = request.scope.get("root_path", "")
    return RedirectResponse(f"{root}{back}{sep}done={done}", status_code=303)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def not_found(request: Request, exc: Exception) -> Response:
    ui: UI = request.app.state.ui
    code = getattr(exc, "status_code", 404)
    detail = getattr(exc, "detail", "Not found")
    if code == 404:
        return ui.error(request, f"There is no page at {request.url.path}.", 404)
    return ui.error(request, str(detail), code, back="/")


def create_app(
    registry: Registry,
    *,
    read_only: bool = False,
    actor: str | None = None,
    allowed_hosts: list[str] | None = None,
    secret: bytes | None = None,
) -> Starlette:
    """The web UI for ``registry`` as an ASGI app (serve it with uvicorn, or ``modelreg ui``).

    ``read_only`` hides every form and refuses every change. ``allowed_hosts``
    restricts the ``Host`` header (protection against DNS rebinding; ``modelreg ui``
    sets it to the loopback names when it binds to loopback). ``secret`` signs the
    CSRF tokens (random per process by default).
    """
    ui = UI(registry, read_only=read_only, actor=actor, secret=secret)
    routes = [
        Route("/", models_page),
        Route("/model/{name:path}", model_page),
        Route("/version/{ref:path}", version_page),
        Route("/download/{ref:path}", download),
        Route("/compare", compare_page),
        Route("/audit", audit_page),
        Route("/requests", requests_page),
        Route("/action/{kind}", action, methods=["POST"]),
        Route("/healthz", healthz),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [Middleware(SecurityHeaders)]
    if allowed_hosts:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={HTTPException: not_found})
    app.state.ui = ui
    return app
