"""Input rules, checked before any I/O.

Model names: one or two segments separated by ``/`` (an optional namespace).
Each segment starts with a letter, then letters, digits, ``.``, ``_`` or ``-``;
it may not end with ``.`` or ``-`` and may not contain ``..``. A name is at
most 128 characters. So ``churn``, ``fraud/churn-v2`` and ``llm.ranker_2`` are
valid, and ``../x``, ``/abs``, ``churn/3`` (a version reference) and ``""`` are not.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from .errors import InvalidInputError
from .models import Stage

MAX_NAME_LENGTH = 128
MAX_KEY_LENGTH = 250
MAX_TAG_VALUE_LENGTH = 5000
MAX_TAGS = 100
MAX_PARAMS_BYTES = 1_000_000
MAX_DESCRIPTION_LENGTH = 20_000
MAX_COMMENT_LENGTH = 5_000

_SEGMENT = r"[A-Za-z](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?"
_NAME_RE = re.compile(rf"^{_SEGMENT}(?:/{_SEGMENT})?$")
_ALIAS_RE = re.compile(rf"^{_SEGMENT}$")
_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/ -]*$")

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
    if not _NAME_RE.match(name):
        raise InvalidInputError(f"invalid {what} {name!r}; use {NAME_RULE}")
    return name


def check_alias(alias: Any) -> str:
    """Aliases follow the rule of one name segment and may not be a stage name."""
    if not isinstance(alias, str) or not _ALIAS_RE.match(alias) or len(alias) > MAX_NAME_LENGTH or ".." in alias:
        raise InvalidInputError(
            f"invalid alias {alias!r}; use letters, digits, '.', '_' and '-', starting with a letter "
            "(e.g. 'champion')"
        )
    if alias.lower() in {s.value for s in Stage}:
        raise InvalidInputError(
            f"alias {alias!r} is a stage name; stages are addressed as name@stage already, pick another alias"
        )
    return alias


def check_version_number(version: Any) -> int:
    if isinstance(version, bool) or not isinstance(version, int):
        if isinstance(version, str) and version.isdigit():
            version = int(version)
        else:
            raise InvalidInputError(f"version must be a positive integer, got {version!r}")
    if version < 1:
        raise InvalidInputError(f"version must be a positive integer, got {version!r}")
    return version


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
    raise InvalidInputError(f"unknown stage {stage!r}; valid stages are: {valid}")


def _check_key(key: Any, what: str) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidInputError(f"{what} keys must be non-empty strings, got {key!r}")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInputError(f"{what} key {key[:40]!r}... is longer than {MAX_KEY_LENGTH} characters; shorten it")
    if not _KEY_RE.match(key) or ".." in key:
        raise InvalidInputError(
            f"invalid {what} key {key!r}; use letters, digits, '_', '-', '.', ':', '/' and spaces, "
            "starting with a letter, digit or '_'"
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
        value = str(value)
        if len(value) > MAX_TAG_VALUE_LENGTH:
            raise InvalidInputError(
                f"tag {key!r} is {len(value)} characters long; tag values are capped at "
                f"{MAX_TAG_VALUE_LENGTH}, store large data as params or in the artifact"
            )
        out[key] = value
    return out


def _finite_json(value: Any, path: str) -> None:
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"param {path} is {value}; params must be finite JSON values")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _finite_json(item, f"{path}[{i}]")
        return
    if isinstance(value, Mapping):
        for k, item in value.items():
            if not isinstance(k, str):
                raise InvalidInputError(f"param {path} has a non-string key {k!r}; JSON objects need string keys")
            _finite_json(item, f"{path}.{k}")
        return
    raise InvalidInputError(
        f"param {path} is a {type(value).__name__}, which is not JSON-serialisable; "
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
        _finite_json(value, key)
        out[key] = list(value) if isinstance(value, tuple) else value
    size = len(json.dumps(out))
    if size > MAX_PARAMS_BYTES:
        raise InvalidInputError(f"params are {size} bytes as JSON; the cap is {MAX_PARAMS_BYTES}, store large data in the artifact")
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
        if not isinstance(value, (int, float)):
            try:
                value = float(value)  # numpy scalars and similar
            except (TypeError, ValueError):
                raise InvalidInputError(f"metric {key!r} must be a number, got {type(value).__name__}") from None
        value = float(value)
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
    return value


def check_actor(actor: Any) -> str:
    if not isinstance(actor, str) or not actor.strip() or len(actor) > 200:
        raise InvalidInputError(f"actor must be a non-empty string of at most 200 characters, got {actor!r}")
    return actor.strip()


def check_relpath(path: str) -> str:
    """A file path inside an artifact: relative, POSIX, no '..' or empty segments."""
    if not path or path.startswith("/") or "\\" in path or re.match(r"^[A-Za-z]:", path):
        raise InvalidInputError(f"artifact file path {path!r} must be relative")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidInputError(f"artifact file path {path!r} may not contain '.', '..' or empty segments")
    return path
