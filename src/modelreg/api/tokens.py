"""API tokens: created, listed and revoked in the registry itself, so they work on every backend.

A token is ``mrt_`` followed by 43 URL-safe characters (32 random bytes). Only its sha256 is
stored, in the reserved ``_registry`` document (``ModelState.extensions["api_tokens"]``), next to
the governance policy and the webhooks, through one atomic ``MetadataStore.update`` with an
audited ``create_token`` or ``revoke_token`` event. The token is shown once, when it is created.

Each token has a name (unique), a role (``reader``, ``writer``, ``approver``, ``admin``) and the
actor that the audit chain records for what it does. When the stored policy names ``admins``,
only they may create or revoke tokens. Imports nothing from the web stack.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import AlreadyExistsError, InvalidInputError, ModelNotFound, NotFoundError, Remedy
from ..models import EventDraft, ModelState, utcnow
from ..validation import MAX_COMMENT_LENGTH, check_actor, check_text

if TYPE_CHECKING:
    from ..registry import Registry

__all__ = [
    "EXTENSION_KEY",
    "ROLES",
    "Role",
    "TokenInfo",
    "create_token",
    "hash_token",
    "list_tokens",
    "load_tokens",
    "revoke_token",
    "role_allows",
]

EXTENSION_KEY = "api_tokens"
PREFIX = "mrt_"

Role = Literal["reader", "writer", "approver", "admin"]
ROLES: tuple[str, ...] = ("reader", "writer", "approver", "admin")
"""The roles, each allowing what the ones before it allow: reader (reads), writer (+ register,
tags, metrics, description, aliases, transitions the policy lets through, requests), approver
(+ approve and reject requests), admin (+ tokens)."""

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")


class TokenInfo(BaseModel):
    """A stored API token, without its secret."""

    model_config = ConfigDict(frozen=True, extra="allow")

    name: str
    role: Role
    actor: str = Field(description="the actor the audit chain records for this token's changes")
    created_at: datetime
    created_by: str
    hint: str = Field(description="the token's first characters, to tell tokens apart")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def role_allows(role: str, needed: str) -> bool:
    """Whether ``role`` may do what ``needed`` may."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def check_token_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidInputError(
            f"invalid token name {name!r:.80}; use up to 64 letters, digits, '.', '_' and '-', starting with a "
            "letter (e.g. 'ci-deploy')"
        )
    return name


def check_role(role: Any) -> str:
    if role not in ROLES:
        raise InvalidInputError(f"invalid role {role!r:.40}; use one of: {', '.join(ROLES)}")
    return str(role)


def load_tokens(state: ModelState | None) -> dict[str, dict[str, Any]]:
    """The stored tokens of the ``_registry`` state: name -> record (with its ``sha256``)."""
    if state is None:
        return {}
    raw = state.extensions.get(EXTENSION_KEY) or {}
    return {k: dict(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}


def _info(record: Mapping[str, Any]) -> TokenInfo:
    return TokenInfo.model_validate({k: v for k, v in record.items() if k != "sha256"})


def _registry_state(reg: Registry) -> ModelState | None:
    from ..governance.engine import REGISTRY_DOC

    try:
        return reg.metadata.get_state_view(REGISTRY_DOC)
    except ModelNotFound:
        return None


def stored_tokens(reg: Registry) -> dict[str, dict[str, Any]]:
    """Every stored token record (name -> record with its ``sha256``), read now."""
    return load_tokens(_registry_state(reg))


def list_tokens(reg: Registry) -> list[TokenInfo]:
    """The stored tokens, by name, without their secrets."""
    return [_info(r) for _, r in sorted(stored_tokens(reg).items())]


def create_token(
    reg: Registry,
    name: str,
    role: str,
    *,
    actor: str | None = None,
    by: str | None = None,
    comment: str | None = None,
) -> tuple[TokenInfo, str]:
    """Create a token; return its record and the secret (shown once, never stored).

    ``actor`` is who the audit chain records for the token's changes (default: its name);
    ``by`` who creates it (default: the registry's actor). Raises AlreadyExistsError for a
    name in use, PolicyViolation when the policy's admins do not include ``by``."""

    check_token_name(name)
    check_role(role)
    token_actor = check_actor(actor if actor is not None else name)
    who = reg.who(by)
    note = check_text(comment, "comment", MAX_COMMENT_LENGTH) or None
    secret = PREFIX + secrets.token_urlsafe(32)
    record = {
        "name": name,
        "role": role,
        "actor": token_actor,
        "created_at": utcnow().isoformat(),
        "created_by": who,
        "hint": secret[: len(PREFIX) + 4],
        "sha256": hash_token(secret),
    }

    def fn(state: ModelState) -> tuple[ModelState, list[EventDraft]]:
        tokens = load_tokens(state)
        if name in tokens:
            raise AlreadyExistsError(
                f"an API token named {name!r} exists already",
                remedy=Remedy(
                    f"revoke_token(reg, {name!r}) first, or pick another name",
                    f"revoke it first with `modelreg token revoke {name}`, or pick another --name",
                ),
            )
        tokens[name] = record
        draft = state.model_copy(deep=True)
        draft.extensions[EXTENSION_KEY] = tokens
        event = EventDraft(
            action="create_token", actor=who, comment=note, after={"token": name, "role": role, "actor": token_actor}
        )
        return draft, [event]

    reg.governance.update_registry_document(who, "manage API tokens", fn)
    return _info(record), secret


def revoke_token(reg: Registry, name: str, *, by: str | None = None, comment: str | None = None) -> TokenInfo:
    """Delete a token (it stops working at once on this server, within a second on others);
    return its record. Raises NotFoundError for an unknown name."""

    check_token_name(name)
    who = reg.who(by)
    note = check_text(comment, "comment", MAX_COMMENT_LENGTH) or None
    box: list[TokenInfo] = []
    missing = NotFoundError(f"no API token named {name!r}; list them with `modelreg token list`")

    def fn(state: ModelState) -> tuple[ModelState, list[EventDraft]]:
        tokens = load_tokens(state)
        if name not in tokens:
            raise missing
        old = tokens.pop(name)
        box[:] = [_info(old)]
        draft = state.model_copy(deep=True)
        draft.extensions[EXTENSION_KEY] = tokens
        event = EventDraft(
            action="revoke_token",
            actor=who,
            comment=note,
            before={"token": name, "role": old.get("role"), "actor": old.get("actor")},
        )
        return draft, [event]

    if _registry_state(reg) is None:
        raise missing
    reg.governance.update_registry_document(who, "manage API tokens", fn)
    return box[0]
