"""Model references: one grammar for the API, the CLI and the UI.

========================  ==========================================
``churn``                 the latest version of ``churn``
``churn/3``               version 3
``churn@production``      the version in a stage (the newest, if several)
``churn@champion``        the version an alias points at
``models:/churn/3``       the same forms with an MLflow-style prefix
========================  ==========================================

Namespaced names work the same way: ``fraud/churn/3``, ``fraud/churn@staging``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidInputError, InvalidReferenceError
from .models import Stage
from .validation import check_alias, check_name, check_version_number

__all__ = ["Ref", "parse_ref"]


@dataclass(frozen=True)
class Ref:
    """A parsed reference: a model name and at most one of version, stage or alias."""

    name: str
    version: int | None = None
    stage: Stage | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}/{self.version}"
        if self.stage is not None:
            return f"{self.name}@{self.stage.value}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def parse_ref(ref: str) -> Ref:
    """Parse a reference string; raise InvalidReferenceError with the grammar on failure."""
    if not isinstance(ref, str):
        raise InvalidReferenceError(
            f"model reference must be a string such as 'churn/3', got {type(ref).__name__}; "
            "use name, name/3, name@stage or name@alias"
        )
    if not ref.strip():
        raise InvalidReferenceError(f"empty model reference {ref!r}; use name, name/3, name@stage or name@alias")
    if ref != ref.strip():
        raise InvalidReferenceError(
            f"model reference {ref!r} has leading or trailing whitespace (a newline?); remove it. "
            "References look like 'churn', 'churn/3', 'churn@production' or 'churn@champion'"
        )
    text = ref
    if text.startswith("models:/"):
        text = text[len("models:/") :]
    try:
        if "@" in text:
            name, _, selector = text.partition("@")
            check_name(name)
            if selector.lower() in {s.value for s in Stage}:
                return Ref(name, stage=Stage(selector.lower()))
            return Ref(name, alias=check_alias(selector))
        head, sep, tail = text.rpartition("/")
        if sep and tail.isascii() and tail.isdigit():
            return Ref(check_name(head), version=check_version_number(tail))
        return Ref(check_name(text))
    except InvalidInputError as exc:
        raise InvalidReferenceError(
            f"invalid model reference {ref!r}: {exc}. References look like 'churn', 'churn/3', "
            "'churn@production' or 'churn@champion'"
        ) from None
