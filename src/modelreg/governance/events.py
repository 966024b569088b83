"""Events: in-process subscribers and the durable events feed.

Everything that happens in a registry is an :class:`~modelreg.AuditEvent` in
some model's hash-chained audit log. This module offers two ways to follow them.

In-process subscribers (``reg.on("transition", fn)``) are called synchronously,
in the thread that made the change, right after it is committed, with the
sealed event (``model``, ``seq``, ``hash`` filled in). They see the changes made
through *this* ``Registry`` object only. An exception in a subscriber is logged
(logger ``modelreg.events``) and never fails the operation.

The durable feed (``reg.events(since=cursor)``) reads the audit chains
themselves, so it sees every change by every client, survives restarts and
works on every metadata store. Its cursor is a *vector* of per-model sequence
numbers, ``{model: last seq seen}``, serialised as an opaque string. Sequence
numbers are gap-free and assigned at commit, so the vector is exact: unlike a
timestamp cursor, clock skew between clients or a commit that lands late can
never make the feed skip an event, and a repeated call with the same cursor
returns the same events again (at-least-once: keep the returned cursor only
after you have handled the events). Reading the feed costs one listing of the
models plus the audit head of each; only models with new events have their
chains read. Events are returned merged across models by time, each model's
events in sequence order.
"""

from __future__ import annotations

import base64
import heapq
import json
import logging
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidInputError, ModelNotFound, Remedy
from ..models import AuditEvent, EventDraft
from ..stores.base import MetadataStore

__all__ = ["TOPICS", "EventsPage", "Subscribers", "decode_cursor", "encode_cursor", "read_feed", "seal", "topic_of"]

log = logging.getLogger("modelreg.events")

TOPICS: dict[str, frozenset[str]] = {
    "create_model": frozenset({"create_model"}),
    "register": frozenset({"register"}),
    "transition": frozenset({"transition"}),
    "rollback": frozenset({"rollback"}),
    "alias": frozenset({"set_alias", "delete_alias"}),
    "tags": frozenset({"set_tags"}),
    "description": frozenset({"set_description"}),
    "metrics": frozenset({"log_metrics"}),
    "model": frozenset({"update_model"}),
    "purge": frozenset({"purge"}),
    "sign": frozenset({"sign"}),
    "request": frozenset({"request_transition"}),
    "approve": frozenset({"approve"}),
    "reject": frozenset({"reject"}),
    "cancel": frozenset({"cancel_request"}),
    "close": frozenset({"close_request"}),
    "policy": frozenset({"set_policy"}),
    "webhook": frozenset({"add_webhook", "remove_webhook"}),
}
"""Subscription topics and the audit actions each covers; ``"*"`` means every event.
Any audit action name is also accepted as a topic of its own."""

_ACTION_TOPIC = {action: topic for topic, actions in TOPICS.items() for action in actions}


def topic_of(action: str) -> str:
    """The topic of an audit action (the action itself when it has no topic)."""
    return _ACTION_TOPIC.get(action, action)


def check_topic(topic: Any) -> str:
    if not isinstance(topic, str) or not topic:
        raise InvalidInputError(f"event topic must be a non-empty string, got {topic!r}")
    known = set(TOPICS) | set(_ACTION_TOPIC) | {"*"}
    if topic not in known:
        raise InvalidInputError(f"unknown event {topic!r}; use '*' or one of: {', '.join(sorted(TOPICS))}")
    return topic


def matches(topics: Iterable[str], action: str) -> bool:
    return any(t in ("*", action) or action in TOPICS.get(t, ()) for t in topics)


Listener = Callable[[AuditEvent], Any]


class Subscribers:
    """In-process listeners by topic. Thread-safe; listeners run in the committing thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[tuple[str, Listener]] = []

    def __bool__(self) -> bool:
        return bool(self._items)

    def add(self, topic: str, fn: Listener) -> Callable[[], bool]:
        check_topic(topic)
        if not callable(fn):
            raise InvalidInputError(f"listener for {topic!r} must be callable, got {type(fn).__name__}")
        with self._lock:
            self._items.append((topic, fn))
        return lambda: self.remove(topic, fn)

    def remove(self, topic: str, fn: Listener) -> bool:
        with self._lock:
            for i, (t, f) in enumerate(self._items):
                if t == topic and f == fn:
                    del self._items[i]
                    return True
        return False

    def dispatch(self, events: Sequence[AuditEvent]) -> None:
        with self._lock:
            items = list(self._items)
        for ev in events:
            for topic, fn in items:
                if matches([topic], ev.action):
                    try:
                        fn(ev)
                    except Exception:
                        log.exception(
                            "event listener %r for %r failed on %s#%d (%s)", fn, topic, ev.model, ev.seq, ev.action
                        )


def _same(ev: AuditEvent, draft: EventDraft) -> bool:
    if not (ev.action == draft.action and ev.actor == draft.actor and ev.version == draft.version):
        return False
    if "time" in draft.model_fields_set:  # an explicit time is recorded as given
        return abs((ev.time - draft.time).total_seconds()) < 0.001  # a store may keep milliseconds only
    # otherwise the store stamped it at commit: not before the draft was made
    return (ev.time - draft.time).total_seconds() > -0.001


def seal(store: MetadataStore, name: str, drafts: Sequence[EventDraft]) -> list[AuditEvent]:
    """The committed audit events of ``drafts`` (just written to ``name``), with seq and hash.

    Found by matching action, actor, version and time (microseconds) from the
    end of the chain; an empty list if they cannot be found.
    """
    if not drafts:
        return []
    n = len(drafts)
    # the tail is enough unless many writers committed since (then read the whole chain)
    head = store.audit_head(name)[0]
    events = store.list_events(name, after=max(0, head - n - SEAL_SLACK))
    found = _find(events, drafts)
    if found is None and head - n - SEAL_SLACK > 0:
        found = _find(store.list_events(name), drafts)
    if found is not None:
        return found
    log.warning("could not find the committed events of %r (%s) in its audit chain", name, [d.action for d in drafts])
    return []


SEAL_SLACK = 64
"""Events other writers may commit between a change and its notification, read with the tail."""


def _find(events: list[AuditEvent], drafts: Sequence[EventDraft]) -> list[AuditEvent] | None:
    n = len(drafts)
    for end in range(len(events), n - 1, -1):
        window = events[end - n : end]
        if all(_same(e, d) for e, d in zip(window, drafts, strict=False)):
            return window
    return None


# -- the durable feed ---------------------------------------------------------------------------------
_CURSOR_PREFIX = "mr1."


def encode_cursor(heads: dict[str, int]) -> str:
    payload = json.dumps(heads, sort_keys=True, separators=(",", ":")).encode()
    return _CURSOR_PREFIX + base64.urlsafe_b64encode(zlib.compress(payload, 9)).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, int]:
    if cursor is None or cursor == "":
        return {}
    bad = InvalidInputError(
        f"invalid events cursor {cursor[:40] if isinstance(cursor, str) else cursor!r}",
        remedy=Remedy(
            "pass the `cursor` of an earlier reg.events() page, 'now', or None to start from the beginning",
            "pass --since the cursor an earlier `modelreg events` printed (or use --cursor-file), 'now', "
            "or no --since to start from the beginning",
        ),
    )
    if not isinstance(cursor, str) or not cursor.startswith(_CURSOR_PREFIX):
        raise bad
    body = cursor[len(_CURSOR_PREFIX) :]
    try:
        data = json.loads(zlib.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))
    except (ValueError, zlib.error):
        raise bad from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0 for k, v in data.items()
    ):
        raise bad
    return data


class EventsPage(BaseModel):
    """One read of the events feed: the new events and the cursor to pass next time."""

    model_config = ConfigDict(frozen=True)

    events: list[AuditEvent] = Field(default_factory=list)
    cursor: str
    has_more: bool = False

    def __iter__(self) -> Iterator[AuditEvent]:  # type: ignore[override]
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)


def read_feed(
    store: MetadataStore,
    since: str | None,
    *,
    limit: int | None = None,
    actions: Iterable[str] | None = None,
    models: Iterable[str] | None = None,
    internal: Iterable[str] = (),
) -> EventsPage:
    """Events committed after ``since`` (see the module docs). ``actions`` filters by topic or action
    (the cursor still moves past the others); ``models`` restricts to some models; ``internal`` names
    reserved documents (such as ``_registry``) to include."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidInputError(f"limit must be a positive integer, got {limit!r}")
    wanted = [check_topic(a) for a in actions] if actions is not None else None
    names = [m.name for m in store.list_models()]
    if models is not None:
        chosen = set(models)
        names = [n for n in names if n in chosen]
    heads: dict[str, int] = {}
    for name in [*names, *internal]:
        try:
            heads[name] = store.audit_head(name)[0]
        except ModelNotFound:
            continue
    if since == "now":
        return EventsPage(events=[], cursor=encode_cursor(heads))
    seen = decode_cursor(since)
    batches = []
    for name, head in heads.items():
        last = seen.get(name, 0)
        if head > last:
            batches.append(store.list_events(name, after=last))
    merged = list(heapq.merge(*batches, key=lambda e: e.time))
    has_more = limit is not None and len(merged) > limit
    if limit is not None:
        merged = merged[:limit]
    cursor = dict(seen)
    for ev in merged:
        cursor[ev.model] = max(cursor.get(ev.model, 0), ev.seq)
    out = merged if wanted is None else [e for e in merged if matches(wanted, e.action)]
    return EventsPage(events=out, cursor=encode_cursor(cursor), has_more=has_more)
