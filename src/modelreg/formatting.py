"""How values are written for people: sizes, times, digests, metric values, nested keys.

One place for the command line, the web UI, notebook views (:mod:`modelreg.html`), progress bars
and :meth:`modelreg.Registry.compare`, so that they agree. Standard library only.

    >>> human_size(1536), human_size(None)
    ('1.5 KiB', '')
    >>> short_digest("sha256:0123456789abcdef0123"), short_digest("sha256:0123456789abcdef", algorithm=True)
    ('0123456789ab', 'sha256:0123456789ab')
    >>> flatten({"opt": {"lr": 0.1}, "datasets": [{"uri": "s3://d"}], "extra": {}})
    {'opt.lr': 0.1, 'datasets[0].uri': 's3://d', 'extra': {}}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

__all__ = ["flatten", "fmt_time", "fmt_value", "human_size", "short_digest"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(n: float | None) -> str:
    """``1536`` -> ``'1.5 KiB'``: binary units, one decimal above bytes; ``None`` -> ``''``."""
    if n is None:
        return ""
    if abs(n) < 1024:
        return f"{int(n)} B"
    value = float(n)
    for unit in _UNITS[1:]:
        value /= 1024
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def short_digest(digest: str | None, n: int = 12, *, algorithm: bool = False) -> str:
    """The first ``n`` hex digits of ``sha256:<hex>`` (with ``algorithm``, prefixed by ``sha256:``);
    ``''`` for no digest."""
    if not digest:
        return ""
    name, sep, hexdigits = digest.partition(":")
    if not sep:
        return digest[:n]
    return f"{name}:{hexdigits[:n]}" if algorithm else hexdigits[:n]


def fmt_time(t: datetime | None, missing: str = "") -> str:
    """A time in UTC as ``2026-11-20 14:03:07``; ``missing`` for no time."""
    if t is None:
        return missing
    if t.tzinfo is not None:
        t = t.astimezone(timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M:%S")


def fmt_value(value: Any, limit: int = 80) -> str:
    """A metric, param or tag value as short text (floats with 4 significant digits)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.4e}"
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested params or lineage as dotted keys: ``{"opt": {"lr": 0.1}}`` -> ``{"opt.lr": 0.1}``; a
    list of mappings gets indexed keys (``datasets[0].uri``); an empty mapping stays a value."""
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and value and all(isinstance(i, Mapping) and i for i in value):
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value} if prefix else {}
