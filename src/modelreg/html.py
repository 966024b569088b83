"""HTML views of the records for notebooks (``_repr_html_``) and shared formatting helpers.

Jupyter, VS Code and Colab call ``_repr_html_`` to display an object, so a
:class:`~modelreg.ModelVersion`, :class:`~modelreg.RegisteredModel`,
:class:`~modelreg.Comparison`, :class:`~modelreg.AuditEvent`,
:class:`~modelreg.VerifyReport` or :class:`~modelreg.GcReport` shows as a
compact table. Lists get the same treatment through :func:`table`::

    >>> from modelreg.html import table
    >>> versions = table(reg.list_versions("churn"))
    >>> type(versions).__name__, versions._repr_html_().startswith("<div")
    ('VersionList', True)
    >>> type(table(reg.history("churn"))).__name__
    'EventList'

``VersionList``, ``EventList`` and ``ModelList`` are plain ``list`` subclasses
that add ``_repr_html_``. Every piece of user text is escaped. This module uses
the standard library only, so importing it costs nothing.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .formatting import flatten, fmt_time, fmt_value, human_size, short_digest

if TYPE_CHECKING:  # pragma: no cover
    from .models import AuditEvent, Comparison, GcReport, ModelInfo, ModelVersion, RegisteredModel, VerifyReport

__all__ = [
    "EventList",
    "ModelList",
    "VersionList",
    "comparison_html",
    "event_html",
    "events_html",
    "fmt_shape",
    "fmt_time",
    "fmt_value",
    "gc_html",
    "human_size",
    "model_html",
    "model_info_html",
    "models_html",
    "short_digest",
    "summarize_event",
    "table",
    "verify_html",
    "version_html",
    "versions_html",
]

MAX_ROWS = 200
"""Lists longer than this show their first and last rows only (the list itself is complete)."""

MAX_METRIC_COLUMNS = 6

_STAGE_COLORS = {
    "production": ("#0b6b2e", "#d9f5e3"),
    "staging": ("#7a4a00", "#fdecc8"),
    "experimental": ("#234d8c", "#dde8fa"),
    "archived": ("#555", "#e8e8e8"),
}

_TABLE = 'style="border-collapse:collapse;font-size:0.9em;text-align:left"'
_CELL = 'style="padding:2px 8px;text-align:left;vertical-align:top"'
_HEAD = 'style="padding:2px 8px;text-align:left;border-bottom:1px solid #bbb"'
_MONO = 'style="font-family:monospace"'


# -- formatting helpers (also used by the web UI) -----------------------------------------


def e(value: Any) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def summarize_event(event: AuditEvent) -> str:
    """One line saying what an audit event changed, e.g. ``stage: staging -> production``."""
    before, after = event.before or {}, event.after or {}
    a = event.action
    if a in ("transition", "rollback") or ("stage" in after and "stage" in before):
        return f"stage: {before.get('stage', '?')} \u2192 {after.get('stage', '?')}"
    if a == "register":
        size = human_size(after.get("size"))
        return f"registered {short_digest(after.get('digest'))} ({size}, {after.get('files', '?')} file(s))"
    if a == "set_alias":
        old = before.get("version")
        return f"alias {after.get('alias')} \u2192 v{after.get('version')}" + (f" (was v{old})" if old else "")
    if a == "delete_alias":
        return f"alias {before.get('alias')} removed (was v{before.get('version')})"
    if a == "log_metrics":
        metrics = after.get("metrics") or {}
        text = ", ".join(f"{k}={fmt_value(v)}" for k, v in metrics.items())
        return text + (f" (step {after['step']})" if "step" in after else "")
    if a == "set_tags":
        parts = []
        for k in sorted(set(before) | set(after)):
            new = after.get(k)
            parts.append(f"{k} removed" if new is None else f"{k}={fmt_value(new, 40)}")
        return "tags: " + ", ".join(parts)
    if a == "set_description":
        return "description changed"
    if a == "update_model":
        parts = []
        for k in after:
            if k == "description":
                parts.append("description changed")
            elif k == "tags" and isinstance(after[k], dict):
                parts.append("tags: " + ", ".join(f"{t}={fmt_value(v, 40)}" for t, v in sorted(after[k].items())))
            else:
                parts.append(f"{k} \u2192 {fmt_value(after[k], 40)}")
        return "; ".join(parts)
    if a == "purge":
        return f"purged (was {before.get('stage', '?')})"
    if "request" in after and "to" in after:  # governance: request, approve, reject, cancel, close
        verb = {
            "request_transition": "requested",
            "approve": "approved",
            "reject": "rejected",
            "cancel_request": "cancelled",
            "close_request": str(after.get("status") or "closed"),
        }.get(a, a)
        return f"{verb} {after.get('from', '?')} \u2192 {after.get('to', '?')} ({after['request']})"
    if a == "create_model":
        return f"model created, owner {after.get('owner')}" if after.get("owner") else "model created"
    if after:
        return ", ".join(f"{k}={fmt_value(v, 40)}" for k, v in after.items())
    return ""


# -- building blocks ------------------------------------------------------------------------


def _badge(stage: Any) -> str:
    value = getattr(stage, "value", stage)
    fg, bg = _STAGE_COLORS.get(str(value), ("#333", "#eee"))
    return (
        f'<span style="color:{fg};background:{bg};border-radius:4px;padding:0 6px;'
        f'font-size:0.85em;white-space:nowrap">{e(value)}</span>'
    )


def _chip(text: str) -> str:
    return (
        f'<span style="border:1px solid #999;border-radius:8px;padding:0 6px;'
        f'font-size:0.85em;white-space:nowrap">{e(text)}</span>'
    )


def _kv_table(rows: Iterable[tuple[str, str]], key_head: str = "", value_head: str = "") -> str:
    body = "".join(f"<tr><th {_CELL}>{e(k)}</th><td {_CELL}>{v}</td></tr>" for k, v in rows)
    head = f"<tr><th {_HEAD}>{e(key_head)}</th><th {_HEAD}>{e(value_head)}</th></tr>" if key_head else ""
    return f"<table {_TABLE}>{head}{body}</table>"


def _grid(headers: list[str], rows: list[list[str]], note: str = "") -> str:
    head = "".join(f"<th {_HEAD}>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td {_CELL}>{c}</td>" for c in row) + "</tr>" for row in rows)
    foot = f'<div style="font-size:0.85em;color:#666">{e(note)}</div>' if note else ""
    return f"<table {_TABLE}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{foot}"


def _section(title: str, content: str) -> str:
    return f'<details open><summary style="font-weight:600">{e(title)}</summary>{content}</details>'


def _elide(items: list[Any]) -> tuple[list[Any], str]:
    if len(items) <= MAX_ROWS:
        return items, ""
    half = MAX_ROWS // 2
    return items[:half] + items[-half:], f"showing {MAX_ROWS} of {len(items)} rows (first and last {half})"


# -- records ------------------------------------------------------------------------------------


def version_html(mv: ModelVersion) -> str:
    """A version: header with stage and aliases, then artifact, metrics, params, lineage, tags."""
    aliases = " ".join(_chip("@" + a) for a in mv.aliases)
    parts = [f"<div><strong {_MONO}>{e(mv.ref)}</strong> {_badge(mv.stage)} {aliases}</div>"]
    if mv.description:
        parts.append(f'<div style="margin:2px 0 4px 0">{e(fmt_value(mv.description, 300))}</div>')
    art = mv.artifact
    facts = [
        ("artifact", f"<code>{e(art.name)}</code> ({e(art.kind)}{', ' + e(art.format) if art.format else ''})"),
        ("digest", f'<code title="{e(art.digest)}">{e(short_digest(art.digest, 16))}</code>'),
        ("size", f"{e(human_size(art.size))} in {len(art.files)} file(s)"),
        ("created", f"{e(fmt_time(mv.created_at))} UTC by {e(mv.created_by)}"),
    ]
    parts.append(_kv_table(facts))
    info = getattr(mv, "model", None)  # what a saved model object is (Registry.save_model)
    if info is not None:
        parts.append(_section(f"model ({info.flavor})", model_info_html(info)))
    metrics = mv.current_metrics
    if metrics:
        rows = []
        for k in sorted(metrics):
            reg, cur = mv.metrics.get(k), metrics[k]
            note = (
                ""
                if k not in mv.logged_metrics
                else f" (registered {e(fmt_value(reg))})"
                if reg is not None
                else " (logged)"
            )
            rows.append((k, f"{e(fmt_value(cur))}{note}"))
        parts.append(_section(f"metrics ({len(metrics)})", _kv_table(rows)))
    params = flatten(mv.params)
    if params:
        parts.append(
            _section(f"params ({len(params)})", _kv_table((k, e(fmt_value(v))) for k, v in sorted(params.items())))
        )
    lin = mv.lineage
    lrows: list[tuple[str, str]] = []
    if lin.run_id or lin.run_url:
        lrows.append(("run", e(lin.run_id or "") + (f" <code>{e(lin.run_url)}</code>" if lin.run_url else "")))
    if lin.code and lin.code.commit:
        dirty = " (dirty)" if lin.code.dirty else ""
        repo = f" {e(lin.code.repo)}" if lin.code.repo else ""
        lrows.append(("code", f"<code>{e(lin.code.commit[:12])}</code>{e(dirty)}{repo}"))
    for ds in lin.datasets:
        at = f" @ {e(ds.version or short_digest(ds.digest))}" if ds.version or ds.digest else ""
        lrows.append(("dataset", e(ds.uri) + at))
    if lin.parents:
        lrows.append(("parents", ", ".join(f"<code>{e(p)}</code>" for p in lin.parents)))
    if lrows:
        parts.append(_section("lineage", _kv_table(lrows)))
    if mv.tags:
        parts.append(
            _section(f"tags ({len(mv.tags)})", _kv_table((k, e(fmt_value(v))) for k, v in sorted(mv.tags.items())))
        )
    return '<div class="modelreg-version">' + "".join(parts) + "</div>"


def fmt_shape(shape: list[int | None] | None) -> str:
    """A signature column's shape: ``[None, 4]`` is ``(any, 4)``; a column of scalars has none (``""``)."""
    if shape is None:
        return ""
    return "(" + ", ".join("any" if d is None else str(d) for d in shape) + ")"


def model_info_html(info: ModelInfo) -> str:
    """What a saved model object is (``ModelVersion.model``): flavor, format, whether loading it is
    unsafe, the library versions that wrote it and its signature as a small table."""
    cls = f' <span style="color:#666">{e(info.object_class)}</span>' if info.object_class else ""
    if info.unsafe:
        loading = (
            '<strong style="color:#7a4a00">unsafe</strong>: loading can run code from the artifact (pickle); '
            "load it only from a source you trust"
        )
    else:
        loading = "safe: loading runs no code from the artifact"
    libraries = ", ".join(f"<code>{e(k)} {e(v)}</code>" for k, v in sorted(info.libraries.items()))
    rows = [
        ("flavor", f"<code>{e(info.flavor)}</code>{cls}"),
        ("format", f"<code>{e(info.format)}</code> in <code>{e(info.path)}</code>"),
        ("loading", loading),
        ("libraries", libraries or "none recorded"),
    ]
    if info.requirements:
        rows.append(("requirements", f"<code>{e(' '.join(info.requirements))}</code>"))
    out = _kv_table(rows)
    sig = info.signature
    if sig is not None:
        srows = [
            [
                e(role),
                "<code>" + e(c.name) + "</code>" if c.name is not None else "(unnamed)",
                e(c.dtype),
                e(fmt_shape(c.shape)),
            ]
            for role, specs in (("input", sig.inputs), ("output", sig.outputs))
            for c in specs
        ]
        title = f'<div style="margin-top:4px">signature ({e(sig.kind)})</div>'
        out += title + _grid(["role", "name", "dtype", "shape"], srows)
    return f'<div class="modelreg-model-info">{out}</div>'


def model_html(model: RegisteredModel) -> str:
    """A registered model: description, owner, version count and stage holders."""
    stages = model.stages or {}
    rows = [
        ("versions", f"{model.version_count}" + (f" (latest v{model.latest_version})" if model.latest_version else "")),
        ("production", e(", ".join(f"v{v}" for v in stages.get("production", [])) or "\u2014")),
        ("staging", e(", ".join(f"v{v}" for v in stages.get("staging", [])) or "\u2014")),
    ]
    if model.aliases:
        rows.append(("aliases", " ".join(_chip(f"@{a} \u2192 v{v}") for a, v in sorted(model.aliases.items()))))
    rows.append(("owner", e(model.owner or "")))
    rows.append(("updated", f"{e(fmt_time(model.updated_at))} UTC"))
    if model.tags:
        rows.append(("tags", e(", ".join(f"{k}={fmt_value(v, 40)}" for k, v in sorted(model.tags.items())))))
    desc = f'<div style="margin:2px 0 4px 0">{e(fmt_value(model.description, 300))}</div>' if model.description else ""
    return (
        f'<div class="modelreg-model"><div><strong {_MONO}>{e(model.name)}</strong></div>{desc}{_kv_table(rows)}</div>'
    )


def comparison_html(c: Comparison) -> str:
    """The differences between two versions, one row per differing key."""
    rows: list[list[str]] = []
    for section in ("metrics", "params", "tags", "lineage"):
        for key, pair in getattr(c, section).items():
            rows.append(
                [e(section), f"<code>{e(key)}</code>", e(fmt_value(pair.get("a"))), e(fmt_value(pair.get("b")))]
            )
    for label, paths in (("added", c.files_added), ("removed", c.files_removed), ("changed", c.files_changed)):
        for p in paths:
            rows.append(["files", f"<code>{e(p)}</code>", "" if label == "added" else "\u2713", e(label)])
    title = f"<div><strong {_MONO}>{e(c.a)}</strong> vs <strong {_MONO}>{e(c.b)}</strong>"
    title += " \u2014 same artifact" if c.same_artifact else " \u2014 different artifacts"
    title += "</div>"
    if not rows:
        nothing = "no differences in params, metrics, tags, lineage or files"
        return f'<div class="modelreg-compare">{title}<div>{nothing}</div></div>'
    return f'<div class="modelreg-compare">{title}{_grid(["", "key", c.a, c.b], rows)}</div>'


def verify_html(report: VerifyReport) -> str:
    """The result of ``Registry.verify``: a verdict, what was checked and one row per problem."""
    ok = report.ok and not report.problems
    colour = "#0b6b2e" if ok else "#b42318"
    count = len(report.problems)
    verdict = "OK: nothing is wrong" if ok else f"{count} problem{'' if count == 1 else 's'} found"
    checked = (
        f"checked {report.models_checked} model(s), {report.events_checked} audit event(s), "
        f"{report.blobs_checked} blob(s), {human_size(report.bytes_checked)}"
    )
    parts = [
        f'<div><strong style="color:{colour}">{e(verdict)}</strong></div>',
        f'<div style="font-size:0.85em;color:#666">{e(checked)}</div>',
    ]
    if report.problems:
        shown, note = _elide(list(report.problems))
        rows = [
            [
                f"<code>{e(p.kind)}</code>",
                f"<code>{e(p.model)}</code>" if p.model is not None else "",
                "" if p.version is None else f"v{p.version}",
                e(p.detail),
            ]
            for p in shown
        ]
        parts.append(_grid(["problem", "model", "version", "detail"], rows, note))
    return '<div class="modelreg-verify">' + "".join(parts) + "</div>"


def gc_html(report: GcReport) -> str:
    """The result of ``Registry.gc``: what was (or, in a dry run, would be) removed and what was kept."""
    n = len(report.removed)
    verb = "would remove" if report.dry_run else "removed"
    head = f"{'dry run: ' if report.dry_run else ''}{verb} {n} unreferenced blob{'' if n == 1 else 's'}"
    head += f", {human_size(report.bytes_freed)}"
    rows = [
        ("kept (referenced)", e(report.kept_referenced)),
        ("kept (too recent)", e(report.kept_recent)),
        ("interrupted uploads removed", f"{report.partials_removed} ({e(human_size(report.partial_bytes_freed))})"),
    ]
    if report.partials_error:
        rows.append(("cleaning uploads failed", f'<span style="color:#b42318">{e(report.partials_error)}</span>'))
    parts = [f"<div><strong>{e(head)}</strong></div>", _kv_table(rows)]
    if report.removed:
        shown, note = _elide(list(report.removed))
        blobs = _grid(["blob"], [[f"<code>{e(b)}</code>"] for b in shown], note)
        parts.append(_section(f"blobs ({n})", blobs))
    return '<div class="modelreg-gc">' + "".join(parts) + "</div>"


def _event_row(ev: AuditEvent, with_model: bool) -> list[str]:
    if not hasattr(ev, "seq"):  # a usage record (history(usage=True)): outside the hash chain
        use: Any = ev
        row = [
            "",
            e(fmt_time(use.time)),
            e(use.actor),
            f"<code>used ({e(use.action)})</code>",
            f"v{use.version}",
            e(f"{use.host} pid {use.pid}"),
            e(fmt_value(use.purpose or "", 120)),
        ]
        return ([f"<code>{e(use.name)}</code>"] if with_model else []) + row
    row = [
        str(ev.seq),
        e(fmt_time(ev.time)),
        e(ev.actor),
        f"<code>{e(ev.action)}</code>",
        "" if ev.version is None else f"v{ev.version}",
        e(summarize_event(ev)),
        e(fmt_value(ev.comment or "", 120)),
    ]
    return ([f"<code>{e(ev.model)}</code>"] if with_model else []) + row


_EVENT_HEADERS = ["#", "time (UTC)", "actor", "action", "version", "change", "comment"]


def event_html(ev: AuditEvent) -> str:
    """One audit event as a one-row table, with its hash."""
    grid = _grid(["model", *_EVENT_HEADERS], [_event_row(ev, True)])
    link = f"hash <code>{e(ev.hash[:16])}</code> \u2190 <code>{e(ev.prev_hash[:16])}</code>"
    return f'<div class="modelreg-event">{grid}<div style="font-size:0.8em;color:#666">{link}</div></div>'


def events_html(events: Iterable[AuditEvent]) -> str:
    """An audit history, oldest first."""
    items = list(events)
    if not items:
        return "<div>no audit events</div>"
    with_model = len({getattr(ev, "model", None) or getattr(ev, "name", "") for ev in items}) > 1
    shown, note = _elide(items)
    headers = (["model"] if with_model else []) + _EVENT_HEADERS
    return (
        '<div class="modelreg-events">' + _grid(headers, [_event_row(ev, with_model) for ev in shown], note) + "</div>"
    )


def versions_html(versions: Iterable[ModelVersion]) -> str:
    """A version table: stage, aliases, the most common metrics, author, size and digest."""
    items = list(versions)
    if not items:
        return "<div>no versions</div>"
    counts: dict[str, int] = {}
    for mv in items:
        for k in mv.current_metrics:
            counts[k] = counts.get(k, 0) + 1
    keys = sorted(counts, key=lambda k: (-counts[k], k))[:MAX_METRIC_COLUMNS]
    keys.sort()
    with_name = len({mv.name for mv in items}) > 1
    shown, note = _elide(items)
    rows = []
    for mv in shown:
        m = mv.current_metrics
        row = ([f"<code>{e(mv.name)}</code>"] if with_name else []) + [
            f"v{mv.version}",
            _badge(mv.stage),
            " ".join(_chip("@" + a) for a in mv.aliases),
            *[e(fmt_value(m.get(k))) for k in keys],
            e(mv.created_by),
            e(fmt_time(mv.created_at)),
            e(human_size(mv.size)),
            f'<code title="{e(mv.digest)}">{e(short_digest(mv.digest))}</code>',
        ]
        rows.append(row)
    headers = (["model"] if with_name else []) + [
        "version",
        "stage",
        "aliases",
        *keys,
        "created by",
        "created (UTC)",
        "size",
        "digest",
    ]
    return '<div class="modelreg-versions">' + _grid(headers, rows, note) + "</div>"


def models_html(models: Iterable[RegisteredModel]) -> str:
    """A model table: latest version, stage holders, owner and last change."""
    items = list(models)
    if not items:
        return "<div>no models</div>"
    shown, note = _elide(items)
    rows = []
    for m in shown:
        st = m.stages or {}
        rows.append(
            [
                f"<code>{e(m.name)}</code>",
                "" if m.latest_version is None else f"v{m.latest_version}",
                str(m.version_count),
                e(", ".join(f"v{v}" for v in st.get("production", []))),
                e(", ".join(f"v{v}" for v in st.get("staging", []))),
                e(m.owner or ""),
                e(fmt_time(m.updated_at)),
                e(fmt_value(m.description, 60)),
            ]
        )
    headers = ["model", "latest", "versions", "production", "staging", "owner", "last change (UTC)", "description"]
    return '<div class="modelreg-models">' + _grid(headers, rows, note) + "</div>"


# -- list wrappers ---------------------------------------------------------------------------------


class VersionList(list["ModelVersion"]):
    """A ``list`` of :class:`~modelreg.ModelVersion` that displays as a table in notebooks."""

    def _repr_html_(self) -> str:
        return versions_html(self)


class EventList(list["AuditEvent"]):
    """A ``list`` of :class:`~modelreg.AuditEvent` that displays as a table in notebooks."""

    def _repr_html_(self) -> str:
        return events_html(self)


class ModelList(list["RegisteredModel"]):
    """A ``list`` of :class:`~modelreg.RegisteredModel` that displays as a table in notebooks."""

    def _repr_html_(self) -> str:
        return models_html(self)


def table(items: Iterable[Any]) -> VersionList | EventList | ModelList:
    """Wrap versions, audit events or models in the list type that renders as a table.

    The kind is taken from the first item; an empty input gives an empty ``VersionList``.
    """
    # the kind of record, by the fields only it has: views know records by their shape and do not
    # import them (the records import their views when they render in a notebook)
    data = list(items)
    first = data[0] if data else None
    if first is None or (hasattr(first, "artifact") and hasattr(first, "version")):
        kind: type[VersionList | EventList | ModelList] = VersionList
    elif hasattr(first, "seq") and hasattr(first, "prev_hash"):
        kind = EventList
    elif hasattr(first, "version_count") and hasattr(first, "stages"):
        kind = ModelList
    else:
        raise TypeError(
            f"table() shows ModelVersion, AuditEvent or RegisteredModel items, not {type(data[0]).__name__}"
        )
    if any(not isinstance(x, type(data[0])) for x in data):
        raise TypeError("table() needs items of one kind (all versions, all events or all models)")
    return kind(data)
