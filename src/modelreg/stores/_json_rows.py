"""Search over the raw JSON records of :class:`~modelreg.stores.json.JSONMetadataStore`: rows shaped
like a ModelVersion for :mod:`modelreg.query`'s reference functions, so the results are the
reference results without validating a record per version."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..models import ModelVersion, Stage

__all__ = ["Doc", "Row", "Rows", "predicate"]


OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def predicate(op: str, value: Any) -> Callable[[Any], bool]:
    """``lambda actual: modelreg.query.compare(actual, op, value)``, specialised for speed.

    Same rules as the reference: a missing value never matches; numbers (bools count as
    numbers, as in the reference) compare as floats with numbers, strings with strings, and
    mixed types never match. ``like`` and ``in`` use the reference function itself.
    """
    from ..query import compare

    if op not in OPERATORS:
        return lambda actual: compare(actual, op, value)
    cmp = OPERATORS[op]
    if isinstance(value, (int, float)):
        expected = float(value)
        return lambda actual: isinstance(actual, (int, float)) and cmp(float(actual), expected)
    if isinstance(value, str):
        return lambda actual: isinstance(actual, str) and cmp(actual, value)
    return lambda actual: compare(actual, op, value)


class Row:
    """A version as search sees it: the raw record and state, shaped like a ModelVersion for
    :func:`modelreg.query.field_value`, :func:`~modelreg.query.matches` and :func:`~modelreg.query.sort_key`
    (so searching rows gives exactly the reference results), without validating a ModelVersion."""

    __slots__ = ("_created", "aliases", "name", "record", "version", "vs")

    def __init__(self, name: str, version: int, record: dict[str, Any], vs: dict[str, Any], aliases: list[str]) -> None:
        self.name, self.version, self.record, self.vs, self.aliases = name, version, record, vs, aliases
        self._created: Any = None

    @property
    def stage(self) -> Stage:
        return Stage(self.vs.get("stage", "experimental"))

    @property
    def created_at(self) -> Any:
        if self._created is None:
            from datetime import datetime

            raw = str(self.record["created_at"])
            self._created = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith("Z") else raw)
        return self._created

    @property
    def created_by(self) -> Any:
        return self.record.get("created_by")

    @property
    def description(self) -> str:
        return self.vs.get("description") or ""

    @property
    def metrics(self) -> dict[str, Any]:
        return self.record.get("metrics") or {}

    @property
    def logged_metrics(self) -> dict[str, Any]:
        return self.vs.get("logged_metrics") or {}

    @property
    def params(self) -> dict[str, Any]:
        return self.record.get("params") or {}

    @property
    def tags(self) -> dict[str, Any]:
        return self.vs.get("tags") or {}

    @property
    def lineage(self) -> Doc:
        return Doc(self.record.get("lineage") or {})

    @property
    def model(self) -> Doc | None:
        doc = self.record.get("model")
        return None if doc is None else Doc(doc)


class Doc:
    """A nested part of a raw record (``lineage``, ``model``) as :func:`modelreg.query.field_value`
    reads it: through ``model_dump(mode="json")``."""

    __slots__ = ("doc",)

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def model_dump(self, mode: str = "json") -> dict[str, Any]:
        return self.doc


@dataclass
class Rows:
    """The search rows of one state snapshot, with per-field columns computed on first use."""

    etag: str
    rows: list[Row]
    columns: dict[str, list[Any]] = field(default_factory=dict)
    built: dict[int, ModelVersion] = field(default_factory=dict)

    def column(self, name: str) -> list[Any]:
        col = self.columns.get(name)
        if col is None:
            from ..query import field_value

            col = self.columns[name] = [field_value(r, name) for r in self.rows]  # type: ignore[arg-type]
        return col
