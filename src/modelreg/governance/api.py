"""The governance methods of :class:`modelreg.Registry` (mixed into it).

See ``docs/governance.md`` for the workflow and :mod:`modelreg.governance` for the parts.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..models import AuditEvent, Stage
from ..validation import MAX_COMMENT_LENGTH, check_name, check_text, parse_stage

if TYPE_CHECKING:  # the governance modules load with the first Registry, not with ``import modelreg``
    from .engine import Governance
    from .events import EventsPage, Listener
    from .policy import Policy
    from .requests import TransitionRequest
    from .webhooks import DeliveryResult, WebhookConfig

__all__ = ["GovernanceMixin"]


def _keyword_only(
    verb: str, args: tuple[str | None, ...], actor: str | None, comment: str | None
) -> tuple[str | None, str | None]:
    """``actor`` and ``comment`` of approve/reject/cancel/complete, which older code passes by
    position: still accepted, with a DeprecationWarning, until a later release refuses them."""
    if not args:
        return actor, comment
    if len(args) > 2 or (actor is not None) or (len(args) == 2 and comment is not None):
        raise TypeError(f"{verb}() takes the request id, then actor= and comment= by keyword")
    warnings.warn(
        f"passing actor and comment to {verb}() by position is deprecated; "
        f"write reg.{verb}(request_id, actor=..., comment=...)",
        DeprecationWarning,
        stacklevel=3,
    )
    return args[0], args[1] if len(args) == 2 else comment


class GovernanceMixin:
    """Policies, the approval workflow, events and webhooks."""

    if TYPE_CHECKING:  # provided by Registry

        @property
        def _gov(self) -> Governance: ...
        def who(self, actor: str | None = None) -> str: ...
        def _ref(self, ref: Any, version: Any = None, stage: Any = None, alias: Any = None) -> Any: ...

    # -- policy ----------------------------------------------------------------------------------------
    def get_policy(self) -> Policy:
        """The policy in force: the one stored in the registry (shared by every client),
        else this Registry's local default (``Registry(rules=...)``, or :class:`Policy()`)."""
        return self._gov.policy()

    def set_policy(
        self, policy: Policy | Mapping[str, Any] | str, *, actor: str | None = None, comment: str | None = None
    ) -> Policy:
        """Store ``policy`` (a Policy, a mapping or JSON text) in the registry; every client enforces it.

        Audited as a ``set_policy`` event (with the whole new policy and its digest)
        in the ``_registry`` chain. When the current policy names ``admins``, only
        they may change it. Raises InvalidInputError listing every problem of an
        invalid policy, before anything is written.
        """
        note = check_text(comment, "comment", MAX_COMMENT_LENGTH) or None
        return self._gov.set_policy(policy, self.who(actor), note)

    def policy_history(self) -> list[AuditEvent]:
        """Every ``set_policy`` event, oldest first (``event.after["policy"]`` is the policy set)."""
        return self._gov.policy_history()

    def check_transition(self, ref: str, stage: Stage | str) -> list[str]:
        """What would stop a direct ``transition(ref, stage)`` now: one line per unmet gate (empty: allowed)."""
        return self._gov.check_transition(self._ref(ref), parse_stage(stage))

    # -- requests ----------------------------------------------------------------------------------------
    def request_transition(
        self, ref: str, stage: Stage | str, comment: str | None = None, *, actor: str | None = None
    ) -> TransitionRequest:
        """Ask for ``ref`` (e.g. ``"churn/3"``, ``"churn@staging"``) to move to ``stage``.

        Returns a pending :class:`TransitionRequest` whose ``unmet`` lists what it
        waits for. When the target's gates are already met (a stage that needs no
        approval) and the policy auto-completes, the transition happens at once and
        the request comes back ``completed``. Raises InvalidTransitionError if the
        transition table forbids the move, AlreadyExistsError if an open request
        already asks for the same move.
        """
        note = check_text(comment, "comment", MAX_COMMENT_LENGTH) or None
        return self._gov.request_transition(self._ref(ref), parse_stage(stage), self.who(actor), note)

    def approve(
        self,
        request_id: str,
        *args: str | None,
        actor: str | None = None,
        comment: str | None = None,
        sign: bool = False,
        key: Any = None,
        signature: dict[str, Any] | None = None,
    ) -> TransitionRequest:
        """Approve a pending request. With auto-completion (the default) the transition
        happens in the same atomic step once every gate is met.

        Raises PolicyViolation if ``actor`` may not approve (the version's author,
        the requester, or not in the required group), AlreadyExistsError if they
        already approved, InvalidTransitionError if the request is closed.

        ``sign=True`` signs the approval (request id, version, artifact digest, target stage,
        actor, time) with ``key`` (else the registry's signing key); a gate rule with
        ``signed: true`` counts only such approvals, by keys the policy lists for the approver
        (``member_keys``). ``signature``: the same signed statement made elsewhere by the approver
        (``modelreg.api.signed.sign_approval``, or any tool that writes the documented envelope),
        checked and kept as if signed here. See docs/trust.md.
        """
        actor, comment = _keyword_only("approve", args, actor, comment)
        note = check_text(comment, "comment", MAX_COMMENT_LENGTH) or None
        signer = None
        if sign or key is not None:
            from ..errors import InvalidInputError
            from ..signing import SigningKey

            signer = SigningKey.load(key) if key is not None else getattr(self, "signing_key", None)
            if signer is None:
                raise InvalidInputError(
                    "approve(sign=True) needs a signing key: key=..., Registry(signing_key=...) or "
                    "$MODELREG_SIGNING_KEY_FILE"
                )
        return self._gov.approve(request_id, self.who(actor), note, signer, signature)

    def reject(
        self, request_id: str, *args: str | None, actor: str | None = None, comment: str | None = None
    ) -> TransitionRequest:
        """Reject a pending request (closes it). The requester cancels instead."""
        actor, comment = _keyword_only("reject", args, actor, comment)
        note = check_text(comment, "comment", MAX_COMMENT_LENGTH) or None
        return self._gov.reject(request_id, self.who(actor), note)

    def cancel(
        self, request_id: str, *args: str | None, actor: str | None = None, comment: str | None = None
    ) -> TransitionRequest:
        """Withdraw a pending request (the requester, or a policy admin)."""
        actor, comment = _keyword_only("cancel", args, actor, comment)
        note = check_text(comment, "comment", MAX_COMMENT_LENGTH) or None
        return self._gov.cancel(request_id, self.who(actor), note)

    def complete(
        self, request_id: str, *args: str | None, actor: str | None = None, comment: str | None = None
    ) -> TransitionRequest:
        """Carry out an approved request now. Needed when the policy has ``auto_complete=False``,
        or after a gate that was unmet at approval time (a metric, a tag) has been fixed.
        Raises PolicyViolation listing every gate still unmet."""
        actor, comment = _keyword_only("complete", args, actor, comment)
        note = check_text(comment, "comment", MAX_COMMENT_LENGTH) or None
        return self._gov.complete(request_id, self.who(actor), note)

    def get_request(self, request_id: str) -> TransitionRequest:
        """One transition request by id (``churn:1f2e3d4c``)."""
        return self._gov.get_request(request_id)

    def list_requests(self, status: str | None = "pending", *, model: str | None = None) -> list[TransitionRequest]:
        """Transition requests, oldest first: ``status`` is pending (default), completed,
        rejected, cancelled, superseded, or ``"all"``/None; ``model`` restricts to one model."""
        return self._gov.list_requests(status, check_name(model) if model is not None else None)

    # -- events -------------------------------------------------------------------------------------------
    def on(self, event: str, fn: Listener) -> Callable[[], bool]:
        """Call ``fn(audit_event)`` after each matching change made through this Registry.

        ``event`` is a topic (``register``, ``transition``, ``rollback``, ``alias``,
        ``request``, ``approve``, ``reject``, ``cancel``, ``policy``, ... see
        :data:`modelreg.governance.events.TOPICS`), an audit action, or ``"*"``.
        Listeners run synchronously after the commit; their exceptions are logged,
        never raised. Returns a function that unsubscribes.
        """
        return self._gov.subscribers.add(event, fn)

    def off(self, event: str, fn: Listener) -> bool:
        """Remove a listener added with :meth:`on`; False if it was not subscribed."""
        return self._gov.subscribers.remove(event, fn)

    def events(
        self,
        since: str | None = None,
        *,
        limit: int | None = None,
        actions: Iterable[str] | None = None,
        models: Iterable[str] | None = None,
        include_internal: bool = False,
    ) -> EventsPage:
        """The durable events feed: audit events of every model committed after ``since``.

        Pass the ``cursor`` of the previous page to get only newer events;
        ``None`` starts from the beginning, ``"now"`` returns no events and a
        cursor at the current end. ``actions`` keeps only some topics or actions
        (the cursor still moves past the others); ``include_internal`` adds the
        registry's own ``_registry`` chain (policy and webhook changes)::

            page = reg.events(since=cursor, actions=["transition", "rollback"])
            for ev in page:
                deploy(ev.model, ev.version, ev.after["stage"])
            cursor = page.cursor   # persist it after handling the events
        """
        return self._gov.events(since, limit=limit, actions=actions, models=models, include_internal=include_internal)

    # -- webhooks -------------------------------------------------------------------------------------------
    def add_webhook(
        self,
        url: str,
        *,
        secret_env: str,
        events: Iterable[str] | None = None,
        models: Iterable[str] | None = None,
        timeout: float = 5.0,
        max_attempts: int = 4,
        backoff: float = 0.5,
        actor: str | None = None,
        comment: str | None = None,
    ) -> WebhookConfig:
        """Register a webhook for the whole registry (stored and audited in ``_registry``).

        Every client that commits a matching change POSTs the event to ``url``,
        signed with HMAC-SHA256 using the secret in the environment variable
        named ``secret_env`` (the secret itself is never stored). See
        :mod:`modelreg.governance.webhooks` for headers, retries and recording.
        """
        from .webhooks import WebhookConfig as _Config

        who = self.who(actor)
        hook = _Config.create(
            url,
            secret_env=secret_env,
            events=events,
            models=models,
            timeout=timeout,
            max_attempts=max_attempts,
            backoff=backoff,
            actor=who,
        )
        note = check_text(comment, "comment", MAX_COMMENT_LENGTH) or None
        return self._gov.add_webhook(hook, who, note)

    def remove_webhook(self, webhook_id: str, *, actor: str | None = None, comment: str | None = None) -> None:
        """Remove a webhook by id (audited)."""
        note = check_text(comment, "comment", MAX_COMMENT_LENGTH) or None
        self._gov.remove_webhook(webhook_id, self.who(actor), note)

    def list_webhooks(self) -> list[WebhookConfig]:
        """The registered webhooks."""
        return self._gov.webhooks()

    def webhook_deliveries(self, *, limit: int | None = None, local: bool = False) -> list[DeliveryResult]:
        """Delivery results, oldest first: all recorded in the registry (by any client), or with
        ``local=True`` only this process's (including ones not yet recorded)."""
        return self._gov.deliveries(limit=limit, local=local)

    def flush_webhooks(self, timeout: float | None = None) -> bool:
        """Wait until this process has delivered (or given up on) every webhook queued so far;
        False if ``timeout`` seconds passed first. ``close()`` does this with a bound."""
        return self._gov.flush(timeout)
