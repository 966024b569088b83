"""The search language: ``metrics.auc > 0.9 and tags.team = 'fraud'``.

A query is clauses joined by ``and``. A clause is ``field op value``:

- fields: ``name``, ``version``, ``stage``, ``alias``, ``created_by``,
  ``created_at``, ``description``, ``metrics.<key>`` (the latest logged value,
  else the registered one), ``params.<key>``, ``tags.<key>``,
  ``lineage.<path>`` (e.g. ``lineage.run_id``, ``lineage.code.commit``); a key
  with spaces goes in backquotes (``tags.`model family` = 'gbm'``);
- operators: ``=`` (or ``==``), ``!=``, ``<``, ``<=``, ``>``, ``>=``,
  ``like`` (``%`` and ``_`` wildcards, case-insensitive), ``in (v1, v2)``;
- values: numbers, ``'single'`` or ``"double"`` quoted strings, ``true``/``false``.

A clause on a field that a version lacks, or whose type differs from the
value's (number vs string), does not match. Every store returns the same
results; :func:`evaluate_in_python` is the reference semantics.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from .errors import InvalidInputError
from .models import ModelVersion

__all__ = ["Clause", "Query", "evaluate_in_python", "parse_order_by", "parse_query"]

_PLAIN_FIELDS = {"name", "version", "stage", "alias", "created_by", "created_at", "description"}
_PREFIXES = {"metrics", "params", "tags", "lineage"}
_OPS = {"=", "==", "!=", "<", "<=", ">", ">=", "like", "in"}
_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/ -]*$")  # the tag/param key rule; spaces need `backquotes`

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)
      | '(?P<sq>(?:[^'\\]|\\.)*)'
      | "(?P<dq>(?:[^"\\]|\\.)*)"
      | (?P<op>==|!=|<=|>=|=|<|>|\(|\)|,)
      | `(?P<bq>[^`]*)`
      | (?P<word>[A-Za-z_][A-Za-z0-9_:/-]*(?:\.(?:`[^`]*`|[A-Za-z0-9_:/-]+))*)
    )""",
    re.VERBOSE,
)

_KINDS = {"word": "a field name", "op": "an operator", "value": "a value (a number, a 'quoted string', true or false)"}

SYNTAX_HELP = "queries look like: metrics.auc > 0.9 and tags.team = 'fraud' and stage in ('staging', 'production')"


@dataclass(frozen=True)
class Clause:
    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class Query:
    clauses: tuple[Clause, ...] = ()


def _check_field(field: str) -> str:
    if field in _PLAIN_FIELDS:
        return field
    prefix, _, key = field.partition(".")
    if prefix in _PREFIXES and key and _KEY_RE.match(key) and ".." not in key:
        return field
    raise InvalidInputError(
        f"unknown search field {field!r}; use name, version, stage, alias, created_by, created_at, "
        "description, metrics.<key>, params.<key>, tags.<key> or lineage.<path>"
    )


def _tokens(text: str) -> list[tuple[str, Any]]:
    pos = 0
    out: list[tuple[str, Any]] = []
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise InvalidInputError(f"cannot parse search query at {text[pos : pos + 20]!r}; {SYNTAX_HELP}")
        pos = m.end()
        if m.group("num") is not None:
            num = m.group("num")
            out.append(("value", float(num) if any(c in num for c in ".eE") else int(num)))
        elif m.group("sq") is not None:
            out.append(("value", re.sub(r"\\(.)", r"\1", m.group("sq"))))
        elif m.group("dq") is not None:
            out.append(("value", re.sub(r"\\(.)", r"\1", m.group("dq"))))
        elif m.group("op") is not None:
            out.append(("op", m.group("op")))
        elif m.group("bq") is not None:
            out.append(("word", m.group("bq")))
        else:
            word = m.group("word")
            word = word.replace("`", "")
            low = word.lower()
            if low in ("and", "like", "in"):
                out.append(("op", low))
            elif low in ("true", "false"):
                out.append(("value", low == "true"))
            elif low == "or":
                raise InvalidInputError(f"'or' is not supported; run two searches. {SYNTAX_HELP}")
            else:
                out.append(("word", word))
    return out


def parse_query(text: str | None) -> Query:
    """Parse a search query; raise InvalidInputError (with the syntax) on mistakes."""
    if text is None or not str(text).strip():
        return Query()
    toks = _tokens(str(text))
    clauses: list[Clause] = []
    i = 0

    def expect(kind: str) -> Any:
        nonlocal i
        if i >= len(toks) or toks[i][0] != kind:
            got = repr(toks[i][1]) if i < len(toks) else "the end of the query"
            raise InvalidInputError(f"expected {_KINDS[kind]} in search query, got {got}; {SYNTAX_HELP}")
        i += 1
        return toks[i - 1][1]

    while True:
        field = _check_field(expect("word"))
        op = expect("op")
        if op not in _OPS:
            raise InvalidInputError(f"unknown operator {op!r} in search query; {SYNTAX_HELP}")
        op = "=" if op == "==" else op
        if op == "in":
            if i >= len(toks) or toks[i] != ("op", "("):
                raise InvalidInputError(f"'in' needs a parenthesised list; {SYNTAX_HELP}")
            i += 1
            values = [expect("value")]
            while i < len(toks) and toks[i] == ("op", ","):
                i += 1
                values.append(expect("value"))
            if i >= len(toks) or toks[i] != ("op", ")"):
                raise InvalidInputError(f"unclosed list after 'in'; {SYNTAX_HELP}")
            i += 1
            value: Any = tuple(values)
        else:
            value = expect("value")
            if op == "like" and not isinstance(value, str):
                raise InvalidInputError(f"'like' needs a quoted string pattern; {SYNTAX_HELP}")
        if field == "stage":
            from .validation import parse_stage

            value = tuple(parse_stage(v).value for v in value) if op == "in" else parse_stage(value).value
        clauses.append(Clause(field, op, value))
        if i >= len(toks):
            break
        if toks[i] != ("op", "and"):
            raise InvalidInputError(f"clauses must be joined with 'and', got {toks[i][1]!r}; {SYNTAX_HELP}")
        i += 1
    return Query(tuple(clauses))


def parse_order_by(order_by: str | list[str] | None) -> list[tuple[str, bool]]:
    """``"metrics.auc desc, version"`` -> ``[("metrics.auc", True), ("version", False)]``."""
    if not order_by:
        return []
    items = order_by.split(",") if isinstance(order_by, str) else list(order_by)
    out = []
    for item in items:
        parts = item.strip().split()
        if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
            raise InvalidInputError(f"invalid order_by {item!r}; use e.g. 'metrics.auc desc, version asc'")
        field = _check_field(parts[0])
        if field == "alias":
            raise InvalidInputError("cannot order by alias; order by name, version, stage, metrics.<key>, ...")
        out.append((field, len(parts) == 2 and parts[1].lower() == "desc"))
    return out


# -- reference semantics ---------------------------------------------------------


def field_value(mv: ModelVersion, field: str) -> Any:
    if field == "stage":
        return mv.stage.value
    if field == "created_at":
        return mv.created_at.isoformat()
    if field in ("name", "version", "created_by", "description"):
        return getattr(mv, field)
    prefix, _, key = field.partition(".")
    if prefix == "metrics":
        return mv.logged_metrics.get(key, mv.metrics.get(key))
    if prefix == "params":
        return mv.params.get(key)
    if prefix == "tags":
        return mv.tags.get(key)
    if prefix == "lineage":
        node: Any = mv.lineage.model_dump(mode="json")
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node if isinstance(node, (str, int, float, bool)) else None
    return None


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float))


def _like(pattern: str) -> re.Pattern[str]:
    out = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile(f"^{out}$", re.IGNORECASE | re.DOTALL)


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if actual is None:
        return False
    if op == "in":
        return any(_compare(actual, "=", e) for e in expected)
    if op == "like":
        return isinstance(actual, str) and bool(_like(expected).match(actual))
    if _is_num(actual) and _is_num(expected):
        a, b = float(actual), float(expected)
    elif isinstance(actual, str) and isinstance(expected, str):
        a, b = actual, expected  # type: ignore[assignment]
    else:
        return False
    return {
        "=": a == b,
        "!=": a != b,
        "<": a < b,
        "<=": a <= b,
        ">": a > b,
        ">=": a >= b,
    }[op]


def matches(mv: ModelVersion, query: Query) -> bool:
    for clause in query.clauses:
        if clause.field == "alias":
            if not any(_compare(a, clause.op, clause.value) for a in mv.aliases):
                return False
        elif not _compare(field_value(mv, clause.field), clause.op, clause.value):
            return False
    return True


def sort_key(mv: ModelVersion, order_by: list[tuple[str, bool]]) -> tuple[Any, ...]:
    """Nulls last; numbers before strings; then each field ascending or descending."""
    key: list[Any] = []
    for field, desc in order_by:
        v = field_value(mv, field)
        if v is None:
            key.append((1, 0, 0))
        elif _is_num(v):
            key.append((0, 0, _Rev(float(v)) if desc else float(v)))
        else:
            key.append((0, 1, _Rev(str(v)) if desc else str(v)))
    return tuple(key)


class _Rev:
    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __lt__(self, other: _Rev) -> bool:
        return cast(bool, self.v > other.v)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Rev) and self.v == other.v


DEFAULT_ORDER = [("name", False), ("version", True)]


def evaluate_in_python(
    versions: Iterable[ModelVersion], query: Query, order_by: list[tuple[str, bool]], limit: int | None
) -> list[ModelVersion]:
    found = [mv for mv in versions if matches(mv, query)]
    found.sort(key=lambda mv: sort_key(mv, [*order_by, *DEFAULT_ORDER]))
    return found[:limit] if limit is not None else found
