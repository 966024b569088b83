"""Transition requests: records and the pure state changes of the approval workflow.

Requests live in the model's own state document (``ModelState.extensions["governance"]``),
so a request, its approvals and the transition they complete are committed by
one ``MetadataStore.update`` together with their audit events: two approvers
acting at once, or an approval racing a registration or another promotion,
cannot leave a half-applied state on any store.

A request id is ``<model>:<8 hex digits>`` (``churn:1f2e3d4c``): the model name
locates the document, and ``:`` never occurs in a model name.

Statuses: ``pending`` -> ``completed`` (the transition happened), ``rejected``
(a reviewer said no), ``cancelled`` (the requester withdrew it) or
``superseded`` (the version reached the target stage another way). Closed
requests are kept in the state document up to :data:`KEEP_CLOSED` per model
(the oldest are dropped from the document; their whole story stays in the
audit chain).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidInputError, NotFoundError
from ..models import EventDraft, ModelState, Stage, utcnow
from ..validation import check_name

__all__ = [
    "EXTENSION_KEY",
    "KEEP_CLOSED",
    "Approval",
    "RequestStatus",
    "TransitionRequest",
    "load_requests",
    "new_request_id",
    "parse_request_id",
    "save_request",
    "supersede",
]

EXTENSION_KEY = "governance"
KEEP_CLOSED = 200

RequestStatus = Literal["pending", "completed", "rejected", "cancelled", "superseded"]
STATUSES: tuple[str, ...] = ("pending", "completed", "rejected", "cancelled", "superseded")


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", use_enum_values=False)


class Approval(_Record):
    """One reviewer's approval of a request."""

    actor: str
    time: datetime
    comment: str | None = None


class TransitionRequest(_Record):
    """A request to move one version to a stage, and its approvals.

    ``unmet`` holds the gates still unmet when the request was last evaluated
    (at creation and at each approval), so ``modelreg requests`` can say what a
    request is waiting for.
    """

    id: str
    model: str
    version: int
    from_stage: Stage
    to_stage: Stage
    requester: str
    comment: str | None = None
    status: RequestStatus = "pending"
    created_at: datetime
    updated_at: datetime
    approvals: list[Approval] = Field(default_factory=list)
    unmet: list[str] = Field(default_factory=list)
    closed_by: str | None = None
    closed_at: datetime | None = None
    close_comment: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.model}/{self.version}"

    @property
    def approvers(self) -> list[str]:
        return [a.actor for a in self.approvals]

    @property
    def is_open(self) -> bool:
        return self.status == "pending"

    def __repr__(self) -> str:
        return (
            f"TransitionRequest({self.id!r}, {self.ref} {self.from_stage.value} -> {self.to_stage.value}, "
            f"status={self.status!r}, approvals={self.approvers})"
        )

    __str__ = __repr__


def new_request_id(model: str) -> str:
    return f"{model}:{uuid.uuid4().hex[:8]}"


def parse_request_id(request_id: Any) -> str:
    """The model name of a request id; InvalidInputError for anything else."""
    if not isinstance(request_id, str) or ":" not in request_id:
        raise InvalidInputError(
            f"invalid request id {request_id!r}; ids look like 'churn:1f2e3d4c' (see `modelreg requests`)"
        )
    model, _, token = request_id.rpartition(":")
    if not token or not all(c in "0123456789abcdef" for c in token):
        raise InvalidInputError(
            f"invalid request id {request_id!r}; ids look like 'churn:1f2e3d4c' (see `modelreg requests`)"
        )
    check_name(model, "model name in request id")
    return model


def load_requests(state: ModelState) -> dict[str, TransitionRequest]:
    raw = (state.extensions.get(EXTENSION_KEY) or {}).get("requests") or {}
    return {rid: TransitionRequest.model_validate(data) for rid, data in raw.items()}


def get_request(state: ModelState, request_id: str) -> TransitionRequest:
    reqs = load_requests(state)
    if request_id not in reqs:
        raise NotFoundError(
            f"model {state.name!r} has no transition request {request_id!r} (closed requests older than the last "
            f"{KEEP_CLOSED} are only in `modelreg history {state.name}`); list pending ones with `modelreg requests`"
        )
    return reqs[request_id]


def save_request(state: ModelState, req: TransitionRequest) -> None:
    """Store ``req`` in ``state`` (a mutable copy), pruning the oldest closed requests."""
    ext = dict(state.extensions.get(EXTENSION_KEY) or {})
    raw = dict(ext.get("requests") or {})
    raw[req.id] = req.model_dump(mode="json")
    closed = sorted(
        (rid for rid, data in raw.items() if data.get("status") != "pending"),
        key=lambda rid: str(raw[rid].get("closed_at") or raw[rid].get("updated_at") or ""),
    )
    for rid in closed[: max(0, len(closed) - KEEP_CLOSED)]:
        del raw[rid]
    ext["requests"] = raw
    state.extensions[EXTENSION_KEY] = ext


def close(req: TransitionRequest, status: str, actor: str, comment: str | None, **extra: Any) -> TransitionRequest:
    now = utcnow()
    return req.model_copy(
        update={
            "status": status,
            "closed_by": actor,
            "closed_at": now,
            "close_comment": comment,
            "updated_at": now,
            "unmet": [],
            **extra,
        }
    )


def request_event(action: str, req: TransitionRequest, actor: str, comment: str | None, **after: Any) -> EventDraft:
    return EventDraft(
        action=action,
        actor=actor,
        version=req.version,
        comment=comment,
        before={"request": req.id, "status": req.status} if action != "request_transition" else None,
        after={"request": req.id, "from": req.from_stage.value, "to": req.to_stage.value, **after},
    )


def supersede(
    state: ModelState, version: int, stage: Stage, actor: str, except_id: str | None = None
) -> list[EventDraft]:
    """Close pending requests that asked to move ``version`` to ``stage``, which it has now reached."""
    events = []
    for req in load_requests(state).values():
        if req.is_open and req.version == version and req.to_stage == stage and req.id != except_id:
            closed = close(req, "superseded", actor, f"{req.ref} reached {stage.value} another way")
            save_request(state, closed)
            events.append(request_event("close_request", req, actor, closed.close_comment, status="superseded"))
    return events
