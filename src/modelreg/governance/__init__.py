"""Governance: policies, the approval workflow, identity, events and webhooks.

- :mod:`.policy`: :class:`Policy` (transition table, exclusive stages, gates per target stage);
- :mod:`.requests`: :class:`TransitionRequest` and the approval workflow's state changes;
- :mod:`.events`: in-process subscribers and the durable events feed;
- :mod:`.webhooks`: signed, retried, recorded HTTP deliveries;
- :mod:`.identity`: who is acting (an identification, not an authentication).

Everything is reached through :class:`modelreg.Registry` (``set_policy``,
``request_transition``, ``approve``, ``on``, ``events``, ``add_webhook``, ...).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .events import TOPICS, EventsPage
    from .identity import resolve_actor, set_actor_resolvers
    from .policy import LINEAGE_FIELDS, ApprovalRule, Gate, Policy
    from .requests import Approval, TransitionRequest
    from .webhooks import DeliveryResult, WebhookConfig, sign, verify_signature

# imported on first use, so that ``import modelreg`` stays light
_LAZY = {
    "TOPICS": "events",
    "EventsPage": "events",
    "resolve_actor": "identity",
    "set_actor_resolvers": "identity",
    "LINEAGE_FIELDS": "policy",
    "ApprovalRule": "policy",
    "Gate": "policy",
    "Policy": "policy",
    "Approval": "requests",
    "TransitionRequest": "requests",
    "DeliveryResult": "webhooks",
    "WebhookConfig": "webhooks",
    "sign": "webhooks",
    "verify_signature": "webhooks",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "LINEAGE_FIELDS",
    "TOPICS",
    "Approval",
    "ApprovalRule",
    "DeliveryResult",
    "EventsPage",
    "Gate",
    "Policy",
    "TransitionRequest",
    "WebhookConfig",
    "resolve_actor",
    "set_actor_resolvers",
    "sign",
    "verify_signature",
]
