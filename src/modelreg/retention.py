"""Retention: rules in the stored policy that archive and purge old versions.

A :class:`RetentionRule` lives in the registry's policy (``Policy.retention``, a list); for each
model the first rule whose ``models`` patterns match it applies. A rule may

- keep the newest ``keep_experimental`` experimental versions and archive the older ones;
- archive experimental versions registered more than ``archive_experimental_after_days`` ago;
- purge archived versions that entered ``archived`` more than ``purge_archived_after_days`` ago;
- trim the model's usage log (fetch and load records) of records older than ``trim_usage_after_days``
  (at least ``keep_used_within_days``: the uses that protect a version are kept), with the store's
  :meth:`~modelreg.stores.base.MetadataStore.trim_usage`. The usage log is kept apart from the audit
  chain: a trim records no audit event; the plan reports it (:attr:`RetentionPlan.usage_trims`).

Whatever the rule says, a version is never touched when it is in an exclusive stage (production),
has an alias, is the subject of a pending transition request, was used (fetched or loaded with a
usage record) within ``keep_used_within_days`` days, is one of the newest ``keep_newest`` versions
of its stage, or has the tag ``keep_tag`` set to ``"true"``.

:meth:`Registry.apply_retention` plans first (``dry_run=True``, the default: nothing changes) and
returns a :class:`RetentionPlan` (each action with its reason, the versions a rule would have
touched but that are protected, and the bytes ``gc`` would free after). Applying carries out each
action in its own atomic step that checks again that the version is as planned (same stage, not
changed since, still unprotected): a version promoted, tagged, aliased or requested in between is
skipped, and two runs at once (cron on several machines) never archive or purge twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from .governance.policy import RetentionRule, days_text
from .models import EventDraft, ModelState, ModelVersion, Stage, utcnow

if TYPE_CHECKING:
    from .governance.policy import Policy
    from .registry import Registry

__all__ = ["RetentionAction", "RetentionPlan", "RetentionRule", "UsageTrim", "apply_retention", "plan_retention"]

DEFAULT_ACTOR = "modelreg-retention"


class RetentionAction(BaseModel):
    """One planned change: archive or purge ``ref``, and why. After applying, ``status`` is ``done``
    or ``skipped`` (``detail`` says why: changed since the plan, purged by another run...)."""

    model_config = ConfigDict(frozen=True)

    ref: str
    name: str
    version: int
    action: Literal["archive", "purge"]
    stage: Stage
    reason: str
    size: int
    updated_at: datetime | None = None
    by_count: bool = False
    """Planned only because of ``keep_experimental`` (re-checked when applied)."""
    by_age: bool = False
    status: Literal["planned", "done", "skipped"] = "planned"
    detail: str | None = None


class UsageTrim(BaseModel):
    """The usage-log records of model ``name`` older than ``before`` that a rule's
    ``trim_usage_after_days`` removes: ``records`` counted by the plan, the number removed once
    applied (``status`` ``done``; ``skipped`` with ``detail`` if the store cannot trim)."""

    model_config = ConfigDict(frozen=True)

    name: str
    before: datetime
    records: int
    reason: str
    status: Literal["planned", "done", "skipped"] = "planned"
    detail: str | None = None


class RetentionKept(BaseModel):
    """A version a rule would have archived or purged, and what protects it."""

    model_config = ConfigDict(frozen=True)

    ref: str
    reason: str


class RetentionPlan(BaseModel):
    """What :meth:`Registry.apply_retention` does (or did): ``actions`` in order, ``protected``
    versions, ``bytes_freed`` by ``gc`` once the purges are done (files no other version uses, and
    their signature bundles)."""

    model_config = ConfigDict(frozen=True)

    time: datetime
    dry_run: bool
    actor: str
    actions: list[RetentionAction] = Field(default_factory=list)
    protected: list[RetentionKept] = Field(default_factory=list)
    bytes_freed: int = 0
    usage_trims: list[UsageTrim] = Field(default_factory=list)
    """Usage logs trimmed by age (``trim_usage_after_days``), one entry per model with records to remove."""

    @property
    def archives(self) -> list[RetentionAction]:
        return [a for a in self.actions if a.action == "archive"]

    @property
    def purges(self) -> list[RetentionAction]:
        return [a for a in self.actions if a.action == "purge"]

    @property
    def done(self) -> list[RetentionAction]:
        return [a for a in self.actions if a.status == "done"]

    @property
    def skipped(self) -> list[RetentionAction]:
        return [a for a in self.actions if a.status == "skipped"]

    def __repr__(self) -> str:
        mode = "plan" if self.dry_run else f"applied {len(self.done)}, skipped {len(self.skipped)}"
        return (
            f"RetentionPlan({len(self.archives)} archive, {len(self.purges)} purge, "
            f"{len(self.protected)} protected, {self.bytes_freed} bytes freed after gc, "
            f"{sum(t.records for t in self.usage_trims)} usage records trimmed; {mode})"
        )

    __str__ = __repr__


class _Skip(Exception):
    """Raised inside an atomic step: the version is no longer as planned; nothing is written."""


# -- protection --------------------------------------------------------------------------------------
def _pending(state: ModelState) -> dict[int, list[str]]:
    from .governance.requests import load_requests

    out: dict[int, list[str]] = {}
    for req in load_requests(state).values():
        if req.is_open:
            out.setdefault(req.version, []).append(req.id)
    return out


def _state_guard(
    state: ModelState,
    act: RetentionAction,
    rule: RetentionRule,
    exclusive: Iterable[Stage],
) -> None:
    """Inside the atomic step: raise _Skip unless the version is still as planned and unprotected."""
    v = act.version
    if v not in state.versions:
        raise _Skip("purged meanwhile")
    vs = state.versions[v]
    stage = Stage(vs.stage)
    if stage != act.stage:
        raise _Skip(f"now in {stage.value}")
    if vs.updated_at != act.updated_at:
        raise _Skip("changed since the plan")
    if stage in set(exclusive):
        raise _Skip(f"in {stage.value}, an exclusive stage")
    aliases = sorted(a for a, n in state.aliases.items() if n == v)
    if aliases:
        raise _Skip(f"alias {', '.join(aliases)}")
    pending = _pending(state).get(v)
    if pending:
        raise _Skip(f"pending request {', '.join(pending)}")
    if vs.tags.get(rule.keep_tag, "").strip().lower() == "true":
        raise _Skip(f"tag {rule.keep_tag}=true")
    holders = state.holders(stage)
    if rule.keep_newest and v in holders[-rule.keep_newest :]:
        raise _Skip(f"one of the newest {rule.keep_newest} in {stage.value}")
    if act.by_count and not act.by_age:
        experimental = state.holders(Stage.EXPERIMENTAL)
        if rule.keep_experimental is not None and v in experimental[len(experimental) - rule.keep_experimental :]:
            raise _Skip(f"now one of the newest {rule.keep_experimental} experimental versions")


# -- planning ----------------------------------------------------------------------------------------
def _rule_for(policy: Policy, name: str) -> RetentionRule | None:
    return next((r for r in policy.retention if r.applies_to(name)), None)


def _archived_since(reg: Registry, name: str) -> dict[int, datetime]:
    """When each version last entered ``archived``, from the audit chain."""
    out: dict[int, datetime] = {}
    for ev in reg.metadata.list_events(name, actions=("transition", "rollback")):
        if ev.version is not None and (ev.after or {}).get("stage") == Stage.ARCHIVED.value:
            out[ev.version] = ev.time
    return out


def _plan_model(
    reg: Registry,
    name: str,
    rule: RetentionRule,
    exclusive: frozenset[Stage],
    now: datetime,
) -> tuple[list[RetentionAction], list[RetentionKept], list[ModelVersion]]:
    versions = reg.metadata.list_versions(name)
    state = reg.metadata.get_state_view(name)
    by_stage: dict[Stage, list[ModelVersion]] = {}
    for mv in versions:
        by_stage.setdefault(mv.stage, []).append(mv)
    for group in by_stage.values():
        group.sort(key=lambda m: m.version)
    aliases: dict[int, list[str]] = {}
    for alias, v in sorted(state.aliases.items()):
        aliases.setdefault(v, []).append(alias)
    pending = _pending(state)
    last_used: dict[int, datetime] = {}
    if rule.keep_used_within_days:
        for use in reg.metadata.list_usage(name):
            if use.version not in last_used or use.time > last_used[use.version]:
                last_used[use.version] = use.time
    archived_at = _archived_since(reg, name) if rule.purge_archived_after_days is not None else {}

    def protection(mv: ModelVersion) -> str | None:
        if mv.stage in exclusive:
            return f"in {mv.stage.value}, an exclusive stage"
        if mv.version in aliases:
            return f"alias {', '.join(aliases[mv.version])}"
        if mv.version in pending:
            return f"pending request {', '.join(pending[mv.version])}"
        if mv.tags.get(rule.keep_tag, "").strip().lower() == "true":
            return f"tag {rule.keep_tag}=true"
        used = last_used.get(mv.version)
        if used is not None and now - used < timedelta(days=rule.keep_used_within_days):
            return f"used {used.isoformat(timespec='seconds')}, within {days_text(rule.keep_used_within_days)}"
        holders = by_stage.get(mv.stage, [])
        if rule.keep_newest and mv in holders[-rule.keep_newest :]:
            return f"one of the newest {rule.keep_newest} in {mv.stage.value}"
        return None

    actions: list[RetentionAction] = []
    kept: list[RetentionKept] = []
    experimental = by_stage.get(Stage.EXPERIMENTAL, [])
    beyond = (
        set()
        if rule.keep_experimental is None
        else {m.version for m in experimental[: max(len(experimental) - rule.keep_experimental, 0)]}
    )
    for mv in experimental:
        reasons = []
        by_count = mv.version in beyond
        if by_count:
            reasons.append(f"older than the newest {rule.keep_experimental} experimental versions")
        by_age = False
        if rule.archive_experimental_after_days is not None:
            age = now - mv.created_at
            if age > timedelta(days=rule.archive_experimental_after_days):
                by_age = True
                reasons.append(
                    f"experimental for {age.days} days (> {days_text(rule.archive_experimental_after_days)})"
                )
        if not reasons:
            continue
        why_not = protection(mv)
        if why_not is not None:
            kept.append(RetentionKept(ref=mv.ref, reason=why_not))
            continue
        vs = state.versions[mv.version]
        actions.append(
            RetentionAction(
                ref=mv.ref,
                name=name,
                version=mv.version,
                action="archive",
                stage=mv.stage,
                reason="; ".join(reasons),
                size=mv.size,
                updated_at=vs.updated_at,
                by_count=by_count,
                by_age=by_age,
            )
        )
    if rule.purge_archived_after_days is not None:
        limit = timedelta(days=rule.purge_archived_after_days)
        for mv in by_stage.get(Stage.ARCHIVED, []):
            since = archived_at.get(mv.version) or mv.updated_at or mv.created_at
            if now - since <= limit:
                continue
            why_not = protection(mv)
            if why_not is not None:
                kept.append(RetentionKept(ref=mv.ref, reason=why_not))
                continue
            actions.append(
                RetentionAction(
                    ref=mv.ref,
                    name=name,
                    version=mv.version,
                    action="purge",
                    stage=mv.stage,
                    reason=f"archived since {since.date().isoformat()} (> {days_text(rule.purge_archived_after_days)})",
                    size=mv.size,
                    updated_at=state.versions[mv.version].updated_at,
                    by_age=True,
                )
            )
    return actions, kept, versions


def plan_retention(
    reg: Registry, *, actor: str, models: Iterable[str] | None = None, now: datetime | None = None
) -> RetentionPlan:
    """The plan of the stored policy's retention rules (nothing changes)."""
    from .signing import bundle_digests

    policy = reg.get_policy()
    exclusive = frozenset(policy.exclusive)
    now = now or utcnow()
    wanted = set(models) if models is not None else None
    actions: list[RetentionAction] = []
    kept: list[RetentionKept] = []
    referenced_after: set[str] = set()
    freed: dict[str, int] = {}
    trims: list[UsageTrim] = []
    for model in reg.metadata.list_models():
        if wanted is not None and model.name not in wanted:
            continue
        rule = _rule_for(policy, model.name)
        if rule is not None and rule.trim_usage_after_days is not None:
            before = now - timedelta(days=rule.trim_usage_after_days)
            old = sum(1 for use in reg.metadata.list_usage(model.name) if use.time < before)
            if old:
                why = f"used before {before.isoformat(timespec='seconds')} (> {days_text(rule.trim_usage_after_days)})"
                trims.append(UsageTrim(name=model.name, before=before, records=old, reason=why))
        if rule is None:
            versions = reg.metadata.list_versions(model.name)
            for mv in versions:
                referenced_after.update(f.digest for f in mv.artifact.files)
            continue
        found, protected, versions = _plan_model(reg, model.name, rule, exclusive, now)
        actions += found
        kept += protected
        purged = {a.version for a in found if a.action == "purge"}
        for mv in versions:
            if mv.version in purged:
                freed.update({f.digest: f.size for f in mv.artifact.files})
            else:
                referenced_after.update(f.digest for f in mv.artifact.files)
        if purged:
            state = reg.metadata.get_state_view(model.name)
            for link_version in purged:
                from .signing import links_of

                for link in links_of(state, link_version):
                    freed[str(link.get("bundle"))] = int(link.get("size") or 0)
            referenced_after |= bundle_digests(state, [mv.version for mv in versions if mv.version not in purged])
    if wanted is not None:  # blobs of the models not planned are still in use
        for mv in reg.metadata.iter_all_versions():
            if mv.name not in wanted:
                referenced_after.update(f.digest for f in mv.artifact.files)
    bytes_freed = sum(size for digest, size in freed.items() if digest not in referenced_after)
    return RetentionPlan(
        time=now,
        dry_run=True,
        actor=actor,
        actions=actions,
        protected=kept,
        bytes_freed=bytes_freed,
        usage_trims=trims,
    )


# -- applying ---------------------------------------------------------------------------------------
def _archive(reg: Registry, act: RetentionAction, rule: RetentionRule, who: str) -> None:
    from .refs import Ref

    gov = reg.governance
    exclusive = gov.policy().stage_rules().exclusive
    # the policy's gates and the transition table apply as to any move; the guard, run inside the
    # store's atomic step, refuses a version changed since the plan
    gov.transition(
        Ref(act.name, version=act.version),
        Stage.ARCHIVED,
        who,
        f"retention: {act.reason}",
        guard=lambda state: _state_guard(state, act, rule, exclusive),
    )


def _purge(reg: Registry, act: RetentionAction, rule: RetentionRule, who: str, digest: str) -> None:
    exclusive = reg.governance.policy().stage_rules().exclusive
    box: list[EventDraft] = []

    def guard(state: ModelState) -> EventDraft:
        # evaluated by the store inside its atomic step: a version promoted, tagged, aliased or
        # requested since the plan is seen here, and refuses the purge (as Registry.purge's guard)
        _state_guard(state, act, rule, exclusive)
        box[:] = [
            EventDraft(
                action="purge",
                actor=who,
                version=act.version,
                comment=f"retention: {act.reason}",
                before={"digest": digest, "stage": act.stage.value, "aliases": []},
                after=None,
            )
        ]
        return box[0]

    reg.metadata.purge_version(act.name, act.version, guard)
    reg.governance.committed(act.name, box)


def apply_retention(
    reg: Registry,
    *,
    dry_run: bool = True,
    actor: str | None = None,
    models: Iterable[str] | None = None,
    now: datetime | None = None,
) -> RetentionPlan:
    """Plan, and unless ``dry_run`` apply, the stored policy's retention rules (see the module docs)."""
    from .errors import NotFoundError
    from .validation import check_actor

    who = check_actor(actor) if actor is not None else reg.who(None)
    plan = plan_retention(reg, actor=who, models=models, now=now)
    if dry_run:
        return plan
    policy = reg.get_policy()
    now_ = now or utcnow()
    done: list[RetentionAction] = []
    for act in plan.actions:
        rule = _rule_for(policy, act.name)
        status, detail = "done", None
        try:
            if rule is None:
                raise _Skip("no retention rule applies any more")
            if rule.keep_used_within_days:  # uses are logged apart from the state: checked right before
                recent = reg.metadata.list_usage(act.name, act.version, limit=1)
                if recent and now_ - recent[-1].time < timedelta(days=rule.keep_used_within_days):
                    raise _Skip(f"used {recent[-1].time.isoformat(timespec='seconds')}")
            if act.action == "archive":
                _archive(reg, act, rule, who)
            else:
                _purge(reg, act, rule, who, reg.metadata.get_version(act.name, act.version).digest)
        except _Skip as skip:
            status, detail = "skipped", str(skip)
        except NotFoundError:
            status, detail = "skipped", "purged meanwhile"
        done.append(act.model_copy(update={"status": status, "detail": detail}))
    trimmed: list[UsageTrim] = []
    for trim in plan.usage_trims:  # after the actions, which re-check recent uses
        try:
            removed = reg.metadata.trim_usage(trim.name, trim.before)
        except NotImplementedError as exc:
            trimmed.append(trim.model_copy(update={"status": "skipped", "detail": str(exc)}))
            continue
        trimmed.append(trim.model_copy(update={"status": "done", "records": removed}))
    return plan.model_copy(update={"dry_run": False, "actions": done, "usage_trims": trimmed})
