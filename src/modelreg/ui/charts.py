"""Server-side SVG charts: a metric across versions and the stage timeline.

Inline SVG needs no JavaScript and no chart library; colours come from CSS
classes (``stage-production`` ...) in the stylesheet. Every label is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup

from ..html import e, fmt_time, fmt_value
from ..models import AuditEvent, ModelVersion

__all__ = ["Segment", "metric_chart", "stage_segments", "stage_timeline"]


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    return ticks


def metric_chart(versions: Sequence[ModelVersion], metric: str, *, width: int = 560, height: int = 250) -> Markup:
    """A line chart of ``metric`` (current value: logged if any, else registered) by version number."""
    pts = [(mv.version, mv.current_metrics[metric], mv.stage.value) for mv in versions if metric in mv.current_metrics]
    if not pts:
        return Markup(f'<p class="muted">No version has the metric <code>{e(metric)}</code>.</p>')
    left, right, top, bottom = 52, 12, 12, 36
    pw, ph = width - left - right, height - top - bottom
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if y0 == y1:
        pad = abs(y0) * 0.05 or 1.0
        y0, y1 = y0 - pad, y1 + pad
    else:
        pad = (y1 - y0) * 0.08
        y0, y1 = y0 - pad, y1 + pad

    def sx(v: float) -> float:
        return left + (pw / 2 if x1 == x0 else (v - x0) / (x1 - x0) * pw)

    def sy(v: float) -> float:
        return top + ph - (v - y0) / (y1 - y0) * ph

    out = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'aria-label="{e(metric)} by version" xmlns="http://www.w3.org/2000/svg">'
    ]
    for t in _nice_ticks(y0, y1):
        y = sy(t)
        out.append(f'<line class="grid" x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{e(fmt_value(t))}</text>')
    xticks = (
        sorted(set(xs)) if len(set(xs)) <= 12 else [int(t) for t in _nice_ticks(x0, x1, 10) if float(t).is_integer()]
    )
    for t in xticks:
        x = sx(t)
        out.append(f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{top + ph}" y2="{top + ph + 4}"/>')
        out.append(f'<text class="tick" x="{x:.1f}" y="{top + ph + 18}" text-anchor="middle">v{t}</text>')
    out.append(f'<line class="axis" x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}"/>')
    out.append(f'<text class="axis-label" x="{left + pw / 2:.1f}" y="{height - 2}" text-anchor="middle">version</text>')
    line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y, _ in pts)
    out.append(f'<polyline class="series" points="{line}"/>')
    r = 4 if len(pts) <= 60 else 2.5
    for x, y, stage in pts:
        out.append(
            f'<circle class="dot stage-{e(stage)}" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{r}">'
            f"<title>v{x} ({e(stage)}): {e(metric)} = {e(fmt_value(y))}</title></circle>"
        )
    out.append("</svg>")
    return Markup("".join(out))


@dataclass(frozen=True)
class Segment:
    """A version holding a stage from ``start`` until ``end`` (``None``: still holds it)."""

    stage: str
    version: int
    start: datetime
    end: datetime | None


def stage_segments(events: Sequence[AuditEvent]) -> list[Segment]:
    """Replay the audit history into stage holding periods (every stage, every version)."""
    current: dict[int, tuple[str, datetime]] = {}
    out: list[Segment] = []
    for ev in events:
        if ev.version is None:
            continue
        after = ev.after or {}
        if ev.action == "register":
            current[ev.version] = (str(after.get("stage", "experimental")), ev.time)
            continue
        if ev.action == "purge":
            if ev.version in current:
                stage, since = current.pop(ev.version)
                out.append(Segment(stage, ev.version, since, ev.time))
            continue
        new = after.get("stage")
        if not isinstance(new, str):
            continue
        if ev.version in current:
            stage, since = current[ev.version]
            out.append(Segment(stage, ev.version, since, ev.time))
        current[ev.version] = (new, ev.time)
    out.extend(Segment(stage, v, since, None) for v, (stage, since) in current.items())
    return sorted(out, key=lambda s: (s.start, s.version))


def _rows(segs: list[Segment], t_end: datetime) -> list[list[Segment]]:
    """Pack overlapping segments (a non-exclusive stage can have several holders) into rows."""
    rows: list[list[Segment]] = []
    for s in sorted(segs, key=lambda s: (s.start, s.version)):
        for row in rows:
            if (row[-1].end or t_end) <= s.start:
                row.append(s)
                break
        else:
            rows.append([s])
    return rows or [[]]


def stage_timeline(
    events: Sequence[AuditEvent], now: datetime, *, lanes: Sequence[str] = ("production", "staging"), width: int = 560
) -> Markup:
    """Lanes (one per stage) of coloured bars showing which version held the stage when.

    Overlapping holders of a non-exclusive stage get a row each within the lane.
    """
    segs = [s for s in stage_segments(events) if s.stage in lanes]
    if not segs:
        return Markup('<p class="muted">No version has been in production or staging yet.</p>')
    t0 = min(s.start for s in segs)
    t1 = max(now, *(s.end or now for s in segs))
    span = max((t1 - t0).total_seconds(), 1.0)
    left, right, row_h, gap, top = 84, 8, 20, 8, 4
    pw = width - left - right
    packed = {lane: _rows([s for s in segs if s.stage == lane], t1) for lane in lanes}
    height = top + sum(len(r) * row_h + gap for r in packed.values()) + 18

    def sx(t: datetime) -> float:
        return left + (t - t0).total_seconds() / span * pw

    out = [
        f'<svg class="timeline" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'aria-label="stage timeline" xmlns="http://www.w3.org/2000/svg">'
    ]
    y = top
    for lane in lanes:
        rows = packed[lane]
        lane_h = len(rows) * row_h
        out.append(f'<rect class="lane" x="{left}" y="{y}" width="{pw}" height="{lane_h}" rx="3"/>')
        out.append(
            f'<text class="lane-label" x="{left - 8}" y="{y + lane_h / 2 + 4:.1f}" text-anchor="end">{e(lane)}</text>'
        )
        for i, row in enumerate(rows):
            ry = y + i * row_h
            for s in row:
                xa, xb = sx(s.start), sx(s.end or t1)
                w = max(xb - xa, 2.0)
                until = fmt_time(s.end) if s.end else "now"
                out.append(
                    f'<g><rect class="seg stage-{e(lane)}" x="{xa:.1f}" y="{ry + 2}" width="{w:.1f}" '
                    f'height="{row_h - 4}" rx="3">'
                    f"<title>v{s.version} in {e(lane)} from {e(fmt_time(s.start))} to {e(until)}</title></rect>"
                )
                if w >= 8 * len(str(s.version)) + 14:
                    out.append(
                        f'<text class="seg-label" x="{xa + w / 2:.1f}" y="{ry + row_h / 2 + 4:.1f}" '
                        f'text-anchor="middle">v{s.version}</text>'
                    )
                out.append("</g>")
        y += lane_h + gap
    out.append(f'<text class="tick" x="{left}" y="{y + 8}" text-anchor="start">{e(fmt_time(t0))}</text>')
    out.append(f'<text class="tick" x="{left + pw}" y="{y + 8}" text-anchor="end">{e(fmt_time(t1))} (now)</text>')
    out.append("</svg>")
    return Markup("".join(out))
