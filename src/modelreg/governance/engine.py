"""The governance engine behind the Registry's governance methods.

All rules are evaluated inside the ``MetadataStore.update`` function of the
model concerned, so a decision and the change it allows are one atomic commit.
Update functions may run more than once and must not read the store; the
immutable version records a gate needs (the candidate's, a baseline's) are
fetched beforehand, and a function that finds one missing aborts its attempt
with :class:`_NeedRecord`, which fetches it and runs the update again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidInputError,
    InvalidTransitionError,
    Message,
    ModelNotFound,
    NotFoundError,
    PolicyViolation,
    Remedy,
    VersionNotFound,
)
from ..models import (
    AuditEvent,
    EventDraft,
    ModelState,
    ModelVersion,
    RegisteredModel,
    Stage,
    utcnow,
)
from ..refs import Ref
from ..stages import StageRules
from ..stores.base import MetadataStore
from .events import EventsPage, Subscribers, read_feed, seal
from .policy import Candidate, Policy, evaluate_gates, same_actor
from .requests import (
    STATUSES,
    Approval,
    TransitionRequest,
    close,
    get_request,
    load_requests,
    new_request_id,
    parse_request_id,
    request_event,
    save_request,
    supersede,
)
from .webhooks import DeliveryResult, Dispatcher, WebhookConfig

if TYPE_CHECKING:
    from typing import TypedDict

    from ..registry import Registry

    class _History(TypedDict):
        after: int  # the events read are those after this sequence number
        entered: list[int]  # the versions those events moved into the target stage, oldest first


__all__ = ["DELIVERIES_DOC", "REGISTRY_DOC", "Governance"]

log = logging.getLogger("modelreg.governance")

REGISTRY_DOC = "_registry"
"""Reserved document holding registry-wide settings: ``extensions["policy"]`` and ``extensions["webhooks"]``."""
DELIVERIES_DOC = "_webhooks"
"""Reserved document whose audit chain records webhook delivery results."""

MAX_ATTEMPTS = 10


class _NeedHistory(Exception):
    """Raised inside a rollback's update function: the stage history read so far is too short."""


ROLLBACK_WINDOW = 64
"""Audit events a rollback reads first, from the head back; doubled until the history answers."""


class _NeedRecord(Exception):
    """Raised inside an update function: the record of ``version`` must be fetched first."""

    def __init__(self, version: int) -> None:
        super().__init__(version)
        self.version = version


class _Records:
    """Immutable version records of one model, fetched outside update functions."""

    def __init__(self, store: MetadataStore, name: str) -> None:
        self.store, self.name = store, name
        self.cache: dict[int, ModelVersion] = {}

    def fetch(self, versions: Iterable[int]) -> None:
        for v in versions:
            if v not in self.cache:
                self.cache[v] = self.store.get_version(self.name, v)

    def __call__(self, version: int) -> ModelVersion:
        try:
            return self.cache[version]
        except KeyError:
            raise _NeedRecord(version) from None


def _violation(what: str, unmet: list[str]) -> PolicyViolation:
    n = len(unmet)
    lines: list[str] = []
    for i, u in enumerate(unmet):
        lines += ["\n" if i else "", "  - ", u]
    return PolicyViolation(
        Message(what, f": {n} unmet gate{'s' if n != 1 else ''} of the registry policy:\n", *lines), unmet
    )


class Governance:
    """Policy, transition requests, events and webhooks of one :class:`~modelreg.Registry`."""

    hooks_ttl = 5.0
    """Seconds the webhook list read from the registry is reused before it is read again."""

    def __init__(self, registry: Registry, rules: StageRules | None = None) -> None:
        self.reg = registry
        self.local_policy = Policy.from_rules(rules) if rules is not None else Policy()
        self.subscribers = Subscribers()
        self._dispatcher: Dispatcher | None = None
        self._hooks: tuple[float, list[WebhookConfig]] | None = None
        self._lock = threading.Lock()

    @property
    def store(self) -> MetadataStore:
        return self.reg.metadata

    def signers(self, record: ModelVersion, state: ModelState) -> list[tuple[str, str, str | None]]:
        """The stored signatures of a version, each checked (for a ``signatures`` gate): bundles are
        immutable blobs, so this reads no metadata and the results are cached across attempts."""
        from ..signing import check_link, links_of

        if not hasattr(self, "_signature_cache"):
            self._signature_cache: dict[Any, Any] = {}
        return [
            (str(link.get("key")), str(link.get("actor")), check_link(self.reg, record, link, self._signature_cache))
            for link in links_of(state, record.version)
        ]

    # -- reserved documents ----------------------------------------------------------------------
    def _internal_state(self, name: str) -> ModelState | None:
        try:
            return self.store.get_state_view(name)
        except ModelNotFound:
            return None

    def _ensure(self, name: str, actor: str) -> None:
        try:
            self.store.get_model(name)
            return
        except ModelNotFound:
            pass
        now = utcnow()
        model = RegisteredModel(
            name=name, description="modelreg internal document", owner=actor, created_at=now, updated_at=now
        )
        try:
            self.store.create_model(model, EventDraft(action="create_model", actor=actor, after={"owner": actor}))
        except AlreadyExistsError:
            pass

    def _stored_policy(self, state: ModelState | None) -> Policy:
        if state is None or "policy" not in state.extensions:
            return self.local_policy
        return Policy.load_stored(state.extensions["policy"])

    # -- policy ---------------------------------------------------------------------------------------
    def policy(self) -> Policy:
        """The policy in force: the stored one, else the local default."""
        return self._stored_policy(self._internal_state(REGISTRY_DOC))

    def policy_is_stored(self) -> bool:
        state = self._internal_state(REGISTRY_DOC)
        return state is not None and "policy" in state.extensions

    def set_policy(self, policy: Any, actor: str, comment: str | None) -> Policy:
        new = Policy.parse(policy)
        self._ensure(REGISTRY_DOC, actor)

        def fn(state: ModelState) -> tuple[ModelState, list[EventDraft]]:
            current = self._stored_policy(state)
            self._require_admin(current, actor, "change the policy")
            if new.admins and not new.is_admin(actor):
                raise PolicyViolation(
                    f"the new policy's admins ({', '.join(new.admins)}) do not include {actor}, who would be locked "
                    "out of changing it again; add yourself to 'admins' or leave it empty"
                )
            if state.extensions.get("policy") == new.to_dict():
                return state, []
            draft = state.model_copy(deep=True)
            draft.extensions["policy"] = new.to_dict()
            return draft, [
                EventDraft(
                    action="set_policy",
                    actor=actor,
                    comment=comment,
                    before={"digest": current.digest(), "stored": "policy" in state.extensions},
                    after={"digest": new.digest(), "policy": new.to_dict()},
                )
            ]

        self.update(REGISTRY_DOC, fn)
        return new

    def update_registry_document(
        self, actor: str, what: str, fn: Callable[[ModelState], tuple[ModelState, list[EventDraft]]]
    ) -> ModelState:
        """Change the registry-wide document (``_registry``, where extensions such as the HTTP API's
        tokens keep settings) as an admin of the stored policy: created when missing; inside the
        atomic step, ``actor`` must be allowed to ``what`` (PolicyViolation otherwise), then ``fn``
        applies the change and its events, which are notified as every commit's are."""
        self._ensure(REGISTRY_DOC, actor)

        def guarded(state: ModelState) -> tuple[ModelState, list[EventDraft]]:
            self._require_admin(self._stored_policy(state), actor, what)
            return fn(state)

        return self.update(REGISTRY_DOC, guarded)

    @staticmethod
    def _require_admin(policy: Policy, actor: str, what: str) -> None:
        if not policy.is_admin(actor):
            raise PolicyViolation(
                f"only the policy's admins ({', '.join(policy.admins)}) may {what}; {actor} is not one of them"
            )

    def policy_history(self) -> list[AuditEvent]:
        try:
            return [e for e in self.store.list_events(REGISTRY_DOC) if e.action == "set_policy"]
        except ModelNotFound:
            return []

    # -- committing and notifying ------------------------------------------------------------------------
    def update(self, name: str, fn: Callable[[ModelState], tuple[ModelState, list[EventDraft]]]) -> ModelState:
        """``MetadataStore.update`` plus notification of the events it committed."""
        box: list[list[EventDraft]] = []

        def wrapped(state: ModelState) -> tuple[ModelState, list[EventDraft]]:
            new, events = fn(state)
            box[:] = [list(events)]
            return new, events

        new = self.store.update(name, wrapped)
        self.committed(name, box[0] if box else [])
        return new

    def committed(self, name: str, drafts: list[EventDraft]) -> None:
        """Tell subscribers and webhooks about events just committed to ``name``; never raises."""
        if not drafts or name == DELIVERIES_DOC:
            return
        try:
            if self.subscribers:
                self.subscribers.dispatch(seal(self.store, name, drafts))
            hooks = self.webhooks(cached=True)
            if hooks:
                self.dispatcher().submit(hooks, name, drafts)
        except Exception:
            log.exception("could not notify listeners of %s's %s", name, [d.action for d in drafts])

    def _run(
        self, name: str, fn: Callable[[ModelState], tuple[ModelState, list[EventDraft]]], records: _Records
    ) -> ModelState:
        for _ in range(MAX_ATTEMPTS):
            try:
                return self.update(name, fn)
            except _NeedRecord as need:
                records.fetch([need.version])
        raise ConflictError(f"the versions of {name!r} kept changing while the policy was evaluated; retry")

    def _prepare(self, r: Ref, policy: Policy, target: Stage) -> tuple[int, _Records]:
        """Resolve ``r`` and fetch the records the gates of ``target`` will need."""
        version = self.reg._resolve(r)
        records = _Records(self.store, r.name)
        self._prefetch(records, policy, target, version)
        return version, records

    def _prefetch(self, records: _Records, policy: Policy, target: Stage, version: int) -> None:
        records.fetch([version])
        stages = {c.stage for c in policy.gate(target).conditions if c.stage is not None}
        if stages:
            state = self.store.get_state_view(records.name)
            with_holders = [h for s in stages for h in state.holders(s)]
            try:
                records.fetch(with_holders)
            except VersionNotFound:
                pass  # purged meanwhile; the update function asks again if it still needs it

    # -- direct moves -----------------------------------------------------------------------------------------
    def transition(
        self,
        r: Ref,
        target: Stage,
        who: str,
        note: str | None,
        strict: bool = True,
        guard: Callable[[ModelState], None] | None = None,
        signer: Any = None,
    ) -> ModelVersion:
        """Move ``r`` to ``target``. A version already in ``target`` raises InvalidTransitionError
        with ``strict``, else stays as it is: nothing is written (no audit event). ``guard`` is
        called with the current state inside the store's atomic step, first, and refuses the move
        by raising (retention checks that nothing changed since its plan). ``signer`` (a
        :class:`~modelreg.signing.SigningKey`): the decision (version, digest, stages, actor, time)
        is signed with it and the envelope kept with the transition's audit event, as for
        :meth:`approve`."""
        policy = self.policy()
        rules = policy.stage_rules()
        name = r.name
        version, records = self._prepare(r, policy, target)

        def fn(state: ModelState) -> tuple[ModelState, list[EventDraft]]:
            if version not in state.versions:
                raise VersionNotFound(f"model {name!r} has no version {version}")
            if guard is not None:
                guard(state)
            source = Stage(state.versions[version].stage)
            if source == target and not strict:
                return state, []  # already there: nothing to do, nothing to record
            draft = state.model_copy(deep=True)
            rules.check(name, version, source, target)
            unmet = evaluate_gates(policy, target, Candidate(records(version), draft), records, signers=self.signers)
            if unmet:
                raise _violation(f"cannot move {name}/{version} from {source.value} to {target.value}", unmet)
            signed: dict[str, Any] | None = None
            if signer is not None:
                from ..signing import sign_statement, transition_statement

                statement = transition_statement(
                    f"{name}/{version}", records(version).digest, source.value, target.value, who, utcnow()
                )
                signed = {"signature": sign_statement(signer, statement)}
            events = rules.move(draft, version, target, who, note, extra=signed)
            events += supersede(draft, version, target, who)
            return draft, events

        self._run(name, fn, records)
        return self.store.get_version(name, version)

    def check_transition(self, r: Ref, target: Stage) -> list[str]:
        """Unmet gates of a direct transition (also the table's refusal, as a line), without changing anything."""
        policy = self.policy()
        version, records = self._prepare(r, policy, target)
        state = self.store.get_state_view(r.name)
        if version not in state.versions:
            raise VersionNotFound(f"model {r.name!r} has no version {version}")
        lines = []
        try:
            policy.stage_rules().check(r.name, version, Stage(state.versions[version].stage), target)
        except InvalidTransitionError as exc:
            lines.append(f"transition: {exc}")
        for _ in range(MAX_ATTEMPTS):
            try:
                return lines + evaluate_gates(
                    policy, target, Candidate(records(version), state), records, signers=self.signers
                )
            except _NeedRecord as need:
                records.fetch([need.version])
        raise ConflictError(f"the versions of {r.name!r} kept changing; retry")

    def rollback(self, name: str, target: Stage, who: str, note: str | None) -> ModelVersion:
        policy = self.policy()
        rules = policy.stage_rules()
        gate = policy.gate(target)
        # the stage history, read from the head back: the last window of events first (on a store
        # without an index by action, reading the whole chain costs what the history costs)
        history: _History = {"after": max(0, self.store.audit_head(name)[0] - ROLLBACK_WINDOW), "entered": []}

        def read_history() -> None:
            history["entered"] = [
                e.version
                for e in self.store.list_events(name, after=history["after"], actions=("transition", "rollback"))
                if e.version is not None and (e.after or {}).get("stage") == target.value
            ]

        read_history()
        records = _Records(self.store, name)
        chosen: dict[str, int] = {}

        def fn(state: ModelState) -> tuple[ModelState, list[EventDraft]]:
            entered: list[int] = history["entered"]
            current = set(state.holders(target))
            if not current:
                raise InvalidTransitionError(
                    f"no version of {name!r} is in {target.value}; there is nothing to roll back"
                )
            previous = None
            for v in reversed(entered):
                if v not in current and v in state.versions:
                    previous = v
                    break
            if history["after"] > 0 and (previous is None or not current <= set(entered)):
                raise _NeedHistory  # what decides the rollback happened before the events read so far
            newest = max(current, key=lambda v: max((i for i, x in enumerate(entered) if x == v), default=-1))
            if previous is None:
                raise InvalidTransitionError(
                    f"{name!r} has no earlier version that held {target.value} and still exists; nothing to roll "
                    "back to"
                )
            draft = state.model_copy(deep=True)
            bypassed: list[str] = []
            if not gate.is_empty():
                unmet = evaluate_gates(
                    policy, target, Candidate(records(previous), draft), records, signers=self.signers
                )
                if unmet and not policy.emergency_rollback:
                    raise _violation(
                        Message(
                            f"cannot roll back {name}@{target.value} to version {previous} (this policy does not let "
                            "rollbacks bypass gates; request the transition with ",
                            Remedy(
                                f"reg.request_transition('{name}/{previous}', {target.value!r})",
                                f"`modelreg request {name}/{previous} {target.value}`",
                            ),
                            ")",
                        ),
                        unmet,
                    )
                if unmet and not note:
                    raise _violation(
                        Message(
                            f"rolling {name}@{target.value} back to version {previous} is an emergency rollback that "
                            "bypasses gates; say why with ",
                            Remedy("comment=...", "--comment TEXT"),
                            ", it is recorded in the audit trail",
                        ),
                        unmet,
                    )
                bypassed = [str.__str__(u) for u in unmet]  # plain text in the audit event
            now = utcnow()
            events = []
            displaced = rules.displaced_to
            for out in sorted(current if target in rules.exclusive else {newest}):
                draft.versions[out] = draft.versions[out].model_copy(update={"stage": displaced, "updated_at": now})
                events.append(
                    EventDraft(
                        action="rollback",
                        actor=who,
                        version=out,
                        before={"stage": target.value},
                        after={"stage": displaced.value},
                        comment=note or f"rolled back to version {previous}",
                    )
                )
            before = Stage(draft.versions[previous].stage)
            draft.versions[previous] = draft.versions[previous].model_copy(update={"stage": target, "updated_at": now})
            after: dict[str, Any] = {"stage": target.value}
            if bypassed:
                after.update(emergency=True, bypassed=bypassed)
            events.append(
                EventDraft(
                    action="rollback",
                    actor=who,
                    version=previous,
                    before={"stage": before.value},
                    after=after,
                    comment=note or f"rolled back from version {newest}",
                )
            )
            events += supersede(draft, previous, target, who)
            chosen["version"] = previous
            return draft, events

        while True:
            try:
                self._run(name, fn, records)
                break
            except _NeedHistory:  # nothing was written: read further back and decide again
                head = self.store.audit_head(name)[0]
                history["after"] = max(0, history["after"] - max(ROLLBACK_WINDOW, head - history["after"]))
                read_history()
        return self.store.get_version(name, chosen["version"])

    # -- requests -----------------------------------------------------------------------------------------------
    def _try_complete(
        self,
        policy: Policy,
        rules: StageRules,
        draft: ModelState,
        req: TransitionRequest,
        records: _Records,
        actor: str,
        *,
        explicit: bool = False,
        comment: str | None = None,
    ) -> tuple[TransitionRequest, list[EventDraft]]:
        """Complete ``req`` if its gates are met (and auto-completion is on, or ``explicit``)."""
        now = utcnow()
        unmet = evaluate_gates(
            policy,
            req.to_stage,
            Candidate(records(req.version), draft),
            records,
            approvals=req.approvals,
            requester=req.requester,
            signers=self.signers,
        )
        source = Stage(draft.versions[req.version].stage)
        try:
            rules.check(req.model, req.version, source, req.to_stage)
        except InvalidTransitionError as exc:
            if explicit:
                raise
            unmet = [f"transition: {exc}", *unmet]
        if unmet:
            if explicit:
                raise _violation(f"cannot complete request {req.id} ({req.ref} to {req.to_stage.value})", unmet)
            return req.model_copy(update={"unmet": unmet, "updated_at": now}), []
        if not policy.auto_complete and not explicit:
            return req.model_copy(update={"unmet": [], "updated_at": now}), []
        events = rules.move(
            draft,
            req.version,
            req.to_stage,
            actor,
            comment or req.comment,
            extra={"request": req.id, "requested_by": req.requester, "approved_by": req.approvers},
        )
        done = close(req, "completed", actor, comment)
        events += supersede(draft, req.version, req.to_stage, actor, except_id=req.id)
        return done, events

    def request_transition(self, r: Ref, target: Stage, who: str, note: str | None) -> TransitionRequest:
        policy = self.policy()
        rules = policy.stage_rules()
        name = r.name
        version, records = self._prepare(r, policy, target)
        rid = new_request_id(name)
        out: dict[str, TransitionRequest] = {}

        def fn(state: ModelState) -> tuple[ModelState, list[EventDraft]]:
            if version not in state.versions:
                raise VersionNotFound(f"model {name!r} has no version {version}")
            draft = state.model_copy(deep=True)
            source = Stage(draft.versions[version].stage)
            rules.check(name, version, source, target)
            existing = load_requests(draft)
            for q in existing.values():
                if q.is_open and q.version == version and q.to_stage == target:
                    raise AlreadyExistsError(
                        f"request {q.id} by {q.requester} already asks to move {name}/{version} to {target.value}; "
                        f"approve it (modelreg approve {q.id}) or cancel it first"
                    )
            if rid in existing:
                raise ConflictError(f"request id {rid} is taken; retry")
            now = utcnow()
            req = TransitionRequest(
                id=rid,
                model=name,
                version=version,
                from_stage=source,
                to_stage=target,
                requester=who,
                comment=note,
                created_at=now,
                updated_at=now,
            )
            events = [request_event("request_transition", req, who, note)]
            req, more = self._try_complete(policy, rules, draft, req, records, who)
            save_request(draft, req)
            out["req"] = req
            return draft, events + more

        self._run(name, fn, records)
        return out["req"]

    def _request_op(
        self,
        request_id: str,
        who: str,
        body: Callable[
            [Policy, StageRules, ModelState, TransitionRequest, _Records], tuple[TransitionRequest, list[EventDraft]]
        ],
    ) -> TransitionRequest:
        name = parse_request_id(request_id)
        policy = self.policy()
        rules = policy.stage_rules()
        state0 = self.store.get_state_view(name)
        req0 = get_request(state0, request_id)
        records = _Records(self.store, name)
        try:
            self._prefetch(records, policy, req0.to_stage, req0.version)
        except VersionNotFound:
            pass
        out: dict[str, TransitionRequest] = {}

        def fn(state: ModelState) -> tuple[ModelState, list[EventDraft]]:
            draft = state.model_copy(deep=True)
            req = get_request(draft, request_id)
            new, events = body(policy, rules, draft, req, records)
            save_request(draft, new)
            out["req"] = new
            return draft, events

        self._run(name, fn, records)
        return out["req"]

    @staticmethod
    def _require_open(req: TransitionRequest, what: str) -> None:
        if req.status != "pending":
            when = req.closed_at.isoformat(timespec="seconds") if req.closed_at else "earlier"
            raise InvalidTransitionError(
                f"request {req.id} ({req.ref} to {req.to_stage.value}) was already {req.status} by {req.closed_by} "
                f"at {when}; only pending requests can be {what}. Start a new one with "
                f"`modelreg request {req.ref} {req.to_stage.value}`"
            )

    @staticmethod
    def _require_version(draft: ModelState, req: TransitionRequest) -> None:
        if req.version not in draft.versions:
            raise VersionNotFound(f"{req.ref} no longer exists (purged); cancel request {req.id}")

    def approve(
        self,
        request_id: str,
        who: str,
        note: str | None,
        signer: Any = None,
        signature: dict[str, Any] | None = None,
    ) -> TransitionRequest:
        """``signer`` (a :class:`~modelreg.signing.SigningKey`): the approval is signed with it; the
        envelope is kept with the approval and its audit event. ``signature``: an envelope the
        approver made elsewhere (with a key that never left their machine) over this approval's
        statement; it must verify and name this request, version, digest, stage and actor
        (PolicyViolation otherwise), and is kept the same way."""
        if signer is not None and signature is not None:
            raise InvalidInputError("give a signing key or a signature made elsewhere, not both")

        def body(
            policy: Policy, rules: StageRules, draft: ModelState, req: TransitionRequest, records: _Records
        ) -> Any:
            self._require_open(req, "approved")
            self._require_version(draft, req)
            author = records(req.version).created_by
            refusals = policy.approval_refusals(req.to_stage, who, author, req.requester)
            if refusals:
                raise PolicyViolation(
                    f"{who} cannot approve request {req.id} ({req.ref} to {req.to_stage.value}): "
                    + "; ".join(refusals),
                    refusals,
                )
            if any(same_actor(a.actor, who) for a in req.approvals):
                raise AlreadyExistsError(
                    f"{who} already approved request {req.id}; it needs approvals from other people"
                )
            now = utcnow()
            signed: dict[str, Any] = {}
            if signature is not None:
                from ..signing import approval_problem, check_signed_statement

                digest = records(req.version).digest
                problem = approval_problem(signature, ref=req.ref, digest=digest, stage=req.to_stage.value, actor=who)
                if problem is None and check_signed_statement(signature)[0].get("request") != req.id:
                    problem = "the signed statement names another request"
                if problem is not None:
                    why = f"{who} cannot approve request {req.id} with this signature: {problem}"
                    raise PolicyViolation(why, [problem])
                signed = {"signature": dict(signature)}
            elif signer is not None:
                from ..signing import approval_statement, sign_statement

                statement = approval_statement(
                    req.id, req.ref, records(req.version).digest, req.to_stage.value, who, now
                )
                signed = {"signature": sign_statement(signer, statement)}
            approval = Approval(actor=who, time=now, comment=note, **signed)
            approved = req.model_copy(update={"approvals": [*req.approvals, approval], "updated_at": now})
            events = [request_event("approve", req, who, note, approvals=len(approved.approvals), **signed)]
            done, more = self._try_complete(policy, rules, draft, approved, records, who)
            return done, events + more

        return self._request_op(request_id, who, body)

    def complete(self, request_id: str, who: str, note: str | None) -> TransitionRequest:
        def body(
            policy: Policy, rules: StageRules, draft: ModelState, req: TransitionRequest, records: _Records
        ) -> Any:
            self._require_open(req, "completed")
            self._require_version(draft, req)
            return self._try_complete(policy, rules, draft, req, records, who, explicit=True, comment=note)

        return self._request_op(request_id, who, body)

    def reject(self, request_id: str, who: str, note: str | None) -> TransitionRequest:
        def body(
            policy: Policy, rules: StageRules, draft: ModelState, req: TransitionRequest, records: _Records
        ) -> Any:
            self._require_open(req, "rejected")
            if same_actor(who, req.requester):
                raise PolicyViolation(
                    f"{who} made request {req.id}; withdraw it with cancel (modelreg cancel {req.id}) instead of "
                    "rejecting it"
                )
            gate = policy.gate(req.to_stage)
            groups = [r.group for r in gate.approvals]
            if (
                gate.approvals
                and all(g is not None for g in groups)
                and not any(policy.in_group(who, g) for g in groups if g is not None)
                and not (policy.admins and policy.is_admin(who))
            ):
                names = ", ".join(repr(g) for g in dict.fromkeys(groups))
                raise PolicyViolation(
                    f"{who} cannot reject request {req.id}: only reviewers in {names} (or a policy admin) can"
                )
            done = close(req, "rejected", who, note)
            return done, [request_event("reject", req, who, note, status="rejected")]

        return self._request_op(request_id, who, body)

    def cancel(self, request_id: str, who: str, note: str | None) -> TransitionRequest:
        def body(
            policy: Policy, rules: StageRules, draft: ModelState, req: TransitionRequest, records: _Records
        ) -> Any:
            self._require_open(req, "cancelled")
            if not same_actor(who, req.requester) and not (policy.admins and policy.is_admin(who)):
                raise PolicyViolation(
                    f"only the requester {req.requester} (or a policy admin) can cancel request {req.id}; "
                    f"reviewers use reject (modelreg reject {req.id})"
                )
            done = close(req, "cancelled", who, note)
            return done, [request_event("cancel_request", req, who, note, status="cancelled")]

        return self._request_op(request_id, who, body)

    def get_request(self, request_id: str) -> TransitionRequest:
        name = parse_request_id(request_id)
        return get_request(self.store.get_state_view(name), request_id)

    def list_requests(self, status: str | None = "pending", model: str | None = None) -> list[TransitionRequest]:
        if status is not None and status != "all" and status not in STATUSES:
            raise InvalidInputError(f"unknown request status {status!r}; use one of {', '.join(STATUSES)} or 'all'")
        names = [model] if model is not None else [m.name for m in self.store.list_models()]
        out = []
        for name in names:
            for req in load_requests(self.store.get_state_view(name)).values():
                if status in (None, "all") or req.status == status:
                    out.append(req)
        return sorted(out, key=lambda q: (q.created_at, q.id))

    # -- events feed ------------------------------------------------------------------------------------------------
    def events(
        self,
        since: str | None,
        *,
        limit: int | None,
        actions: Iterable[str] | None,
        models: Iterable[str] | None,
        include_internal: bool,
    ) -> EventsPage:
        return read_feed(
            self.store,
            since,
            limit=limit,
            actions=actions,
            models=models,
            internal=[REGISTRY_DOC] if include_internal else (),
        )

    # -- webhooks --------------------------------------------------------------------------------------------------
    def webhooks(self, cached: bool = False) -> list[WebhookConfig]:
        if cached and self._hooks is not None and time.monotonic() - self._hooks[0] < self.hooks_ttl:
            return self._hooks[1]
        state = self._internal_state(REGISTRY_DOC)
        raw = (state.extensions.get("webhooks") or {}) if state is not None else {}
        hooks = [WebhookConfig.model_validate(v) for _, v in sorted(raw.items())]
        self._hooks = (time.monotonic(), hooks)
        return hooks

    def add_webhook(self, hook: WebhookConfig, actor: str, comment: str | None) -> WebhookConfig:
        self._ensure(REGISTRY_DOC, actor)

        def fn(state: ModelState) -> tuple[ModelState, list[EventDraft]]:
            self._require_admin(self._stored_policy(state), actor, "change webhooks")
            draft = state.model_copy(deep=True)
            hooks = dict(draft.extensions.get("webhooks") or {})
            hooks[hook.id] = hook.model_dump(mode="json")
            draft.extensions["webhooks"] = hooks
            return draft, [
                EventDraft(
                    action="add_webhook",
                    actor=actor,
                    comment=comment,
                    after={
                        "webhook": hook.id,
                        "url": hook.url,
                        "secret_env": hook.secret_env,
                        "events": hook.events,
                        "models": hook.models,
                    },
                )
            ]

        self.update(REGISTRY_DOC, fn)
        self._hooks = None
        return hook

    def remove_webhook(self, webhook_id: str, actor: str, comment: str | None) -> None:
        def fn(state: ModelState) -> tuple[ModelState, list[EventDraft]]:
            hooks = dict(state.extensions.get("webhooks") or {})
            if webhook_id not in hooks:
                raise NotFoundError(f"no webhook {webhook_id!r}; list them with `modelreg webhook list`")
            self._require_admin(self._stored_policy(state), actor, "change webhooks")
            old = hooks.pop(webhook_id)
            draft = state.model_copy(deep=True)
            draft.extensions["webhooks"] = hooks
            return draft, [
                EventDraft(
                    action="remove_webhook",
                    actor=actor,
                    comment=comment,
                    before={"webhook": webhook_id, "url": old.get("url")},
                )
            ]

        try:
            self.update(REGISTRY_DOC, fn)
        except ModelNotFound:
            raise NotFoundError(f"no webhook {webhook_id!r}; list them with `modelreg webhook list`") from None
        self._hooks = None

    def dispatcher(self) -> Dispatcher:
        with self._lock:
            if self._dispatcher is None:
                self._dispatcher = Dispatcher(
                    self.store, self._record_delivery, registry=self.reg.uri or getattr(self.store, "url", None)
                )
            return self._dispatcher

    def _record_delivery(self, result: DeliveryResult) -> None:
        actor = self.reg.who(None)
        self._ensure(DELIVERIES_DOC, actor)
        event = EventDraft(action="webhook_delivery", actor=actor, after=result.model_dump(mode="json"))
        self.store.update(DELIVERIES_DOC, lambda state: (state, [event]))

    def deliveries(self, *, limit: int | None = None, local: bool = False) -> list[DeliveryResult]:
        if local:
            results = list(self._dispatcher.results) if self._dispatcher is not None else []
        else:
            try:
                events = self.store.list_events(DELIVERIES_DOC)
            except ModelNotFound:
                events = []
            results = [
                DeliveryResult.model_validate(e.after) for e in events if e.action == "webhook_delivery" and e.after
            ]
        return results[-limit:] if limit else results

    def flush(self, timeout: float | None) -> bool:
        return self._dispatcher.flush(timeout) if self._dispatcher is not None else True

    def close(self, timeout: float | None = None) -> None:
        if self._dispatcher is not None:
            from .webhooks import EXIT_FLUSH_TIMEOUT

            self._dispatcher.close(EXIT_FLUSH_TIMEOUT if timeout is None else timeout)
