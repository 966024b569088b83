"""The search language: ``metrics.auc > 0.9 and tags.team = 'fraud'``.

A query is clauses joined by ``and``. A clause is ``field op value``:

- fields: ``name``, ``version``, ``stage``, ``alias``, ``created_by``,
  ``created_at``, ``description``, ``metrics.<key>`` (the latest logged value,
  else the registered one), ``params.<key>``, ``tags.<key>``,
  ``lineage.<path>`` (e.g. ``lineage.run_id``, ``lineage.code.commit``),
  ``model.<path>`` (what a saved model object is: ``model.flavor``, ``model.format``,
  ``model.libraries.scikit-learn``...); a key
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

__all__ = ["Clause", "Query", "SearchWarning", "evaluate_in_python", "parse_order_by", "parse_query", "unknown_keys"]

_PLAIN_FIELDS = {"name", "version", "stage", "alias", "created_by", "created_at", "description"}
_PREFIXES = {"metrics", "params", "tags", "lineage", "model"}
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


class SearchWarning(UserWarning):
    """A search matched nothing because a clause names a key that no version has (a typo?);
    the message lists the closest keys the versions do have."""


_KEYED = ("metrics", "params", "tags")


def unknown_keys(query: Query, versions: Iterable[ModelVersion]) -> list[str]:
    """One message per ``metrics.``, ``params.`` or ``tags.`` key of ``query`` that none of
    ``versions`` has, naming the closest keys they have (``tags.tema``: did you mean ``tags.team``?)."""
    wanted = [c.field for c in query.clauses if c.field.partition(".")[0] in _KEYED]
    if not wanted:
        return []
    known: dict[str, set[str]] = {prefix: set() for prefix in _KEYED}
    missing = set(wanted)
    for mv in versions:
        known["metrics"].update(mv.metrics, mv.logged_metrics)
        known["params"].update(mv.params)
        known["tags"].update(mv.tags)
        missing = {f for f in missing if f.partition(".")[2] not in known[f.partition(".")[0]]}
        if not missing:
            return []  # every key is on some version: no need to read the others
    from .suggest import closest_n

    out = []
    for field in dict.fromkeys(wanted):
        prefix, _, key = field.partition(".")
        if key in known[prefix]:
            continue
        near = closest_n(key, known[prefix])
        if near:
            hint = "did you mean " + " or ".join(repr(f"{prefix}.{k}") for k in near) + "?"
        elif known[prefix]:
            some = sorted(known[prefix])
            hint = f"the {prefix[:-1]} keys are: " + ", ".join(some[:10]) + (", ..." if len(some) > 10 else "")
        else:
            hint = f"no version has {prefix} yet"
        out.append(f"no version has the {prefix[:-1]} key {key!r}, so {field} matches nothing; {hint}")
    return out


def _field_hint(field: str) -> str:
    """``"; did you mean 'metrics.auc'?"`` for a misspelt field (``metric.auc``, ``stag``), else ``""``."""
    from .suggest import closest

    prefix, dot, key = field.partition(".")
    if dot and key:
        best = closest(prefix, _PREFIXES)
        return f"; did you mean {best + '.' + key!r}?" if best else ""
    best = closest(field, sorted(_PLAIN_FIELDS) + [f"{p}.<key>" for p in sorted(_PREFIXES)])
    return f"; did you mean {best!r}?" if best else ""


def _check_field(field: str) -> str:
    if field in _PLAIN_FIELDS:
        return field
    prefix, _, key = field.partition(".")
    if prefix in _PREFIXES and key and _KEY_RE.match(key) and ".." not in key:
        return field
    hint = _field_hint(field)
    raise InvalidInputError(
        f"unknown search field {field!r}; use name, version, stage, alias, created_by, created_at, "
        f"description, metrics.<key>, params.<key>, tags.<key>, lineage.<path> or model.<path>{hint}"
    )


_OP_RUN = re.compile(r"\s*([=!<>]{2,})")
_OP_TYPOS = {"=>": ">=", "=<": "<=", "<>": "!=", "=!": "!=", "===": "=", "!==": "!=", ">>": ">", "<<": "<"}
_WORD_OPS = {"eq": "=", "is": "=", "equals": "=", "ne": "!=", "neq": "!=", "gt": ">", "lt": "<"}
_WORD_OPS |= {"ge": ">=", "gte": ">=", "le": "<=", "lte": "<=", "not": "!=", "ilike": "like", "contains": "like"}


def _operator_hint(op: str) -> str:
    """The operator a mistyped one was probably meant to be: ``=>`` -> ``>=``, ``gt`` -> ``>``."""
    from .suggest import closest

    if op in _OP_TYPOS:
        return _OP_TYPOS[op]
    if op.lower() in _WORD_OPS:
        return _WORD_OPS[op.lower()]
    return closest(op.lower(), sorted(_OPS - {"=="})) or "="


def _unknown_operator(op: str, where: str = "") -> InvalidInputError:
    return InvalidInputError(
        f"{where}unknown operator {op!r} in search query; did you mean {_operator_hint(op)!r}? {SYNTAX_HELP}"
    )


def _tokens(text: str) -> list[tuple[str, Any]]:
    pos = 0
    out: list[tuple[str, Any]] = []
    text = text.rstrip()
    while pos < len(text):
        run = _OP_RUN.match(text, pos)
        if run and run.group(1) not in _OPS:  # '=>', '=<', '<>', '>>': not one operator
            raise _unknown_operator(run.group(1), f"cannot parse search query at {text[run.start(1) :][:20]!r}: ")
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
            if kind == "op" and i < len(toks) and toks[i][0] == "word":  # `tags.team is 'x'`, `auc gt 1`
                raise _unknown_operator(toks[i][1])
            got = repr(toks[i][1]) if i < len(toks) else "the end of the query"
            raise InvalidInputError(f"expected {_KINDS[kind]} in search query, got {got}; {SYNTAX_HELP}")
        i += 1
        return toks[i - 1][1]

    while True:
        field = _check_field(expect("word"))
        op = expect("op")
        if op not in _OPS:
            raise _unknown_operator(op)
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


_ORDER_ITEM = re.compile(
    r"\s*(?P<field>`[^`]*`|[A-Za-z_][A-Za-z0-9_:/-]*(?:\.(?:`[^`]*`|[A-Za-z0-9_:/-]+))*)(?:\s+(?P<dir>\S+))?\s*"
)
_OUTSIDE_BACKQUOTES = re.compile(r",(?=(?:[^`]*`[^`]*`)*[^`]*$)")  # a comma followed by pairs of backquotes


def parse_order_by(order_by: str | list[str] | None) -> list[tuple[str, bool]]:
    """``"metrics.auc desc, version"`` -> ``[("metrics.auc", True), ("version", False)]``; a key with
    spaces in backquotes, as in queries: ``"tags.`model family` desc"``."""
    if not order_by:
        return []
    items = _OUTSIDE_BACKQUOTES.split(order_by) if isinstance(order_by, str) else list(order_by)
    out = []
    for item in items:
        m = _ORDER_ITEM.fullmatch(item) if isinstance(item, str) else None
        direction = (m.group("dir") or "asc").lower() if m else ""
        if m is None or direction not in ("asc", "desc"):
            raise InvalidInputError(f"invalid order_by {item!r}; use e.g. 'metrics.auc desc, version asc'")
        field = _check_field(m.group("field").replace("`", ""))
        if field == "alias":
            raise InvalidInputError("cannot order by alias; order by name, version, stage, metrics.<key>, ...")
        out.append((field, direction == "desc"))
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
    if prefix in ("lineage", "model"):
        record = getattr(mv, prefix)
        node: Any = record.model_dump(mode="json") if record is not None else {}
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


def compare(actual: Any, op: str, expected: Any) -> bool:
    if actual is None:
        return False
    if op == "in":
        return any(compare(actual, "=", e) for e in expected)
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
            if not any(compare(a, clause.op, clause.value) for a in mv.aliases):
                return False
        elif not compare(field_value(mv, clause.field), clause.op, clause.value):
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
