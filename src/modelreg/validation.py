"""Input rules, checked before any I/O.

Model names: one or two segments separated by ``/`` (an optional namespace).
Each segment starts with a letter, then letters, digits, ``.``, ``_`` or ``-``;
it may not end with ``.`` or ``-`` and may not contain ``..``. A name is at
most 128 characters. So ``churn``, ``fraud/churn-v2`` and ``llm.ranker_2`` are
valid, and ``../x``, ``/abs``, ``churn/3`` (a version reference) and ``""`` are not.

Every rule is anchored at both ends (``re.fullmatch``): a trailing newline or
space is part of the string and fails the check. JSON data (params, lineage,
governance extensions) is limited to :data:`MAX_DEPTH` levels of nesting,
integers to 64 bits and floats to finite values, so that every metadata store
can write it and read it back. The limits are documented in docs/concepts.md
("Limits") and each refusal is an :class:`InvalidInputError` naming the field
and the limit.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, cast

from .errors import InvalidInputError
from .models import Stage

MAX_NAME_LENGTH = 128
MAX_KEY_LENGTH = 250
MAX_TAG_VALUE_LENGTH = 5000
MAX_TAGS = 100
MAX_PARAMS_BYTES = 1_000_000
MAX_DESCRIPTION_LENGTH = 20_000
MAX_COMMENT_LENGTH = 5_000
MAX_TEXT_LENGTH = 5_000
"""Short free-text fields: lineage strings (run id, URLs, dataset URIs, commit...), formats."""
MAX_ACTOR_LENGTH = 200
MAX_DEPTH = 32
"""Nesting depth of JSON data: ``{"a": 1}`` has depth 1, ``{"a": {"b": [1]}}`` depth 3."""
MAX_JSON_BYTES = 1_000_000
"""Size cap of params (as JSON), of lineage and of one model's extensions document."""
MAX_EXTENSIONS_BYTES = 16_000_000
"""Size cap of one model's extensions (governance requests, policies, webhooks) as JSON."""
MIN_INT = -(2**63)
MAX_INT = 2**63 - 1
"""Integers must fit in 64 bits (SQLite's INTEGER); larger ones are refused, not rounded."""
MAX_VERSION = MAX_INT

_SEGMENT = r"[A-Za-z](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?"
_NAME_RE = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})?")
_ALIAS_RE = re.compile(_SEGMENT)
_KEY_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.:/ -]*[A-Za-z0-9_.:/-])?")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

NAME_RULE = (
    "letters, digits, '.', '_' and '-', starting with a letter, with at most one '/' "
    f"namespace separator and at most {MAX_NAME_LENGTH} characters (e.g. 'churn' or 'fraud/churn')"
)


def check_name(name: Any, what: str = "model name") -> str:
    """Return ``name`` if it is a valid model name, else raise InvalidInputError."""
    if not isinstance(name, str):
        raise InvalidInputError(f"{what} must be a string, got {type(name).__name__}; use {NAME_RULE}")
    if not name:
        raise InvalidInputError(f"{what} is empty; use {NAME_RULE}")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInputError(f"{what} {name[:40]!r}... is {len(name)} characters long; use {NAME_RULE}")
    if ".." in name or name.startswith("/") or "\\" in name:
        raise InvalidInputError(f"{what} {name!r} looks like a path; use {NAME_RULE}")
    if not _NAME_RE.fullmatch(name):
        raise InvalidInputError(f"invalid {what} {name!r}; use {NAME_RULE}")
    return name


def check_alias(alias: Any) -> str:
    """Aliases follow the rule of one name segment and may not be a stage name."""
    if not isinstance(alias, str) or not _ALIAS_RE.fullmatch(alias) or len(alias) > MAX_NAME_LENGTH or ".." in alias:
        raise InvalidInputError(
            f"invalid alias {alias!r}; use letters, digits, '.', '_' and '-', starting with a letter (e.g. 'champion')"
        )
    if alias.lower() in {s.value for s in Stage}:
        raise InvalidInputError(
            f"alias {alias!r} is a stage name; stages are addressed as name@stage already, pick another alias"
        )
    return alias


def check_version_number(version: Any) -> int:
    if isinstance(version, bool) or not isinstance(version, int):
        if isinstance(version, str) and version.isascii() and version.isdigit():
            if len(version) > 19:
                raise InvalidInputError(f"version must be a positive integer of at most 64 bits, got {version[:40]!r}")
            version = int(version)
        else:
            raise InvalidInputError(f"version must be a positive integer, got {version!r}")
    if version < 1:
        raise InvalidInputError(f"version must be a positive integer, got {version!r}")
    if version > MAX_VERSION:
        raise InvalidInputError(f"version must be a positive integer of at most 64 bits, got {_short(version)}")
    return cast(int, version)  # an int by now: given as one, or parsed from digits above


def parse_stage(stage: Any) -> Stage:
    """Turn ``"production"`` (any case) or a Stage into a Stage, naming the valid stages otherwise."""
    if isinstance(stage, Stage):
        return stage
    if isinstance(stage, str):
        try:
            return Stage(stage.strip().lower())
        except ValueError:
            pass
    valid = ", ".join(s.value for s in Stage)
    hint = ""
    if isinstance(stage, str):
        from .suggest import did_you_mean

        hint = did_you_mean(stage.strip(), [s.value for s in Stage])
    raise InvalidInputError(f"unknown stage {stage!r}; valid stages are: {valid}{hint}")


def _check_key(key: Any, what: str) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidInputError(f"{what} keys must be non-empty strings, got {key!r}")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInputError(f"{what} key {key[:40]!r}... is longer than {MAX_KEY_LENGTH} characters; shorten it")
    if not _KEY_RE.fullmatch(key) or ".." in key:
        raise InvalidInputError(
            f"invalid {what} key {key!r}; use letters, digits, '_', '-', '.', ':', '/' and inner spaces, "
            "starting with a letter, digit or '_' (no control characters, no leading or trailing space)"
        )
    return key


def check_tags(tags: Any) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise InvalidInputError(f"tags must be a mapping of str to str, got {type(tags).__name__}")
    if len(tags) > MAX_TAGS:
        raise InvalidInputError(f"{len(tags)} tags given; at most {MAX_TAGS} are allowed, move bulk data to params")
    out: dict[str, str] = {}
    for key, value in tags.items():
        _check_key(key, "tag")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise InvalidInputError(f"tag {key!r} must have a string value, got {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInputError(f"tag {key!r} is {value}; tag values are strings (finite numbers are converted)")
        if isinstance(value, int) and not MIN_INT <= value <= MAX_INT:
            raise InvalidInputError(f"tag {key!r} is an integer beyond 64 bits; pass it as a string")
        value = str(value)
        _check_encodable(value, f"tag {key!r}")
        if len(value) > MAX_TAG_VALUE_LENGTH:
            raise InvalidInputError(
                f"tag {key!r} is {len(value)} characters long; tag values are capped at "
                f"{MAX_TAG_VALUE_LENGTH}, store large data as params or in the artifact"
            )
        out[key] = value
    return out


def _short(value: Any) -> str:
    """A printable excerpt of a value for an error message (never the 10,000-digit integer itself)."""
    if isinstance(value, int) and not isinstance(value, bool) and not MIN_INT <= value <= MAX_INT:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_encodable(value: str, what: str) -> None:
    """Refuse strings that UTF-8 cannot encode (lone surrogates): no store could write them."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(
            f"{what} contains a lone surrogate character, which is not valid Unicode text"
        ) from None


def check_json(value: Any, what: str, *, depth: int = MAX_DEPTH, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Return ``value`` (tuples as lists) if it is JSON data every store can write and read back.

    Refused, each with an :class:`InvalidInputError` naming the path and the limit: nesting
    deeper than ``depth`` levels, integers beyond 64 bits, NaN and infinite floats, non-string
    object keys, lone surrogates, values that are not JSON (sets, objects...), and data larger
    than ``max_bytes`` as JSON. Never recurses deeper than ``depth`` + 1 frames, so a
    100,000-level structure is refused with the same error, not a RecursionError.
    """
    out = _json_value(value, what, depth)
    try:
        size = len(json.dumps(out, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8"))
    except (ValueError, TypeError, RecursionError) as exc:  # pragma: no cover - _json_value refuses these first
        raise InvalidInputError(f"{what} is not JSON-serialisable: {exc}") from None
    if size > max_bytes:
        raise InvalidInputError(
            f"{what} is {size} bytes as JSON; the cap is {max_bytes}, store large data in the artifact"
        )
    return out


def _json_value(value: Any, path: str, depth: int) -> Any:
    t = type(value)
    if value is None or t is bool or t is str:
        if t is str:
            _check_encodable(value, path)
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        if not MIN_INT <= value <= MAX_INT:
            raise InvalidInputError(
                f"{path} is {_short(value)}; integers must fit in 64 bits ({MIN_INT}..{MAX_INT}), "
                "store larger numbers as strings"
            )
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            if path.startswith("param "):
                raise InvalidInputError(f"{path} is {value}; params must be finite JSON values (no NaN or inf)")
            raise InvalidInputError(f"{path} is {value}; use finite numbers (or null) in JSON data")
        return float(value)
    if isinstance(value, str):
        _check_encodable(value, path)
        return str(value)
    if isinstance(value, (list, tuple, Mapping)):
        if depth <= 0:
            raise InvalidInputError(
                f"{path} is nested more than {MAX_DEPTH} levels deep; flatten it (the limit is {MAX_DEPTH} levels)"
            )
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for k, item in value.items():
                if not isinstance(k, str):
                    raise InvalidInputError(f"{path} has a non-string key {_short(k)}; JSON objects need string keys")
                _check_encodable(k, f"a key of {path}")
                out[k] = _json_value(item, f"{path}.{k}", depth - 1)
            return out
        return [_json_value(item, f"{path}[{i}]", depth - 1) for i, item in enumerate(value)]
    raise InvalidInputError(
        f"{path} is a {type(value).__name__}, which is not JSON-serialisable; "
        "convert it to a string, number, bool, list or dict"
    )


def check_params(params: Any) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise InvalidInputError(f"params must be a mapping, got {type(params).__name__}")
    out = {}
    for key, value in params.items():
        _check_key(key, "param")
        # the top level counts as one level: a param's value may nest MAX_DEPTH - 1 levels
        out[key] = _json_value(value, f"param {key}", MAX_DEPTH - 1)
    size = len(json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > MAX_PARAMS_BYTES:
        raise InvalidInputError(
            f"params are {size} bytes as JSON; the cap is {MAX_PARAMS_BYTES}, store large data in the artifact"
        )
    return out


def check_metrics(metrics: Any) -> dict[str, float]:
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise InvalidInputError(f"metrics must be a mapping of str to number, got {type(metrics).__name__}")
    out: dict[str, float] = {}
    for key, value in metrics.items():
        _check_key(key, "metric")
        if isinstance(value, (bool, str, bytes)):
            raise InvalidInputError(f"metric {key!r} must be a number, got {type(value).__name__} {value!r}")
        try:
            value = float(value)  # also numpy scalars and similar
        except OverflowError:
            raise InvalidInputError(
                f"metric {key!r} is {_short(value)}, too large for a float; metrics must be finite 64-bit floats"
            ) from None
        except (TypeError, ValueError):
            raise InvalidInputError(f"metric {key!r} must be a number, got {type(value).__name__}") from None
        if not math.isfinite(value):
            raise InvalidInputError(f"metric {key!r} is {value}; metrics must be finite numbers (no NaN or inf)")
        out[key] = value
    return out


def check_finite(value: Any, what: str) -> None:
    """Raise InvalidInputError if ``value`` holds a NaN or infinite float anywhere (dicts, lists)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"{what} is {value}; use finite numbers (or null) in JSON data")
    elif isinstance(value, Mapping):
        for k, item in value.items():
            check_finite(item, f"{what}.{k}")
    elif isinstance(value, (list, tuple, set, frozenset)):
        for i, item in enumerate(value):
            check_finite(item, f"{what}[{i}]")


def check_text(value: Any, what: str, cap: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > cap:
        raise InvalidInputError(f"{what} is {len(value)} characters long; the cap is {cap}")
    _check_encodable(value, what)
    return value


def check_label(value: Any, what: str, cap: int = MAX_TEXT_LENGTH) -> str:
    """A one-line label (actor, run id, URL, commit...): a string of at most ``cap`` characters
    with no control characters (newlines, tabs, NUL...) and no leading or trailing whitespace."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > cap:
        raise InvalidInputError(f"{what} {value[:40]!r}... is {len(value)} characters long; the cap is {cap}")
    if _CONTROL_RE.search(value):
        raise InvalidInputError(
            f"{what} {_short(value)} contains a control character (newline, tab, NUL...); remove it"
        )
    if value != value.strip():
        raise InvalidInputError(f"{what} {value!r} has leading or trailing whitespace; remove it")
    _check_encodable(value, what)
    return value


def check_actor(actor: Any) -> str:
    if not isinstance(actor, str) or not actor.strip() or len(actor) > MAX_ACTOR_LENGTH:
        raise InvalidInputError(
            f"actor must be a non-empty string of at most {MAX_ACTOR_LENGTH} characters, got {actor!r}"
        )
    return check_label(actor, "actor", MAX_ACTOR_LENGTH)


def check_relpath(path: str) -> str:
    """A file path inside an artifact: relative, POSIX, no '..' or empty segments."""
    if not path or path.startswith("/") or "\\" in path or re.match(r"^[A-Za-z]:", path):
        raise InvalidInputError(f"artifact file path {path!r} must be relative")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidInputError(f"artifact file path {path!r} may not contain '.', '..' or empty segments")
    return path
