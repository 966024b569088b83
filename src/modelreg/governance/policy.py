"""The governance policy: one transition table, exclusive stages and gates per target stage.

A :class:`Policy` is a frozen pydantic record, so it round-trips through JSON
(``policy.to_json()`` / ``Policy.from_json(text)``) and can be stored in the
registry (``reg.set_policy(policy)``), where every client reads and enforces it.

Gates guard the *target* stage of a move. Each unmet gate becomes one line of
a :class:`~modelreg.errors.PolicyViolation`:

- ``approvals``: rules of ``count`` approvals, optionally from a named group.
  An approval counts toward every rule whose group holds the approver, so
  ``[{"count": 2}, {"count": 1, "group": "risk"}]`` means "two approvals, at
  least one of them from risk".
- ``approver_not_author`` (default on): the version's author (``created_by``)
  cannot approve its promotion. ``approver_not_requester`` (default on): the
  person who asked for the transition cannot approve it either (four eyes).
- ``metrics``: conditions such as ``"metrics.auc >= 0.9"`` or, relative to the
  version currently in a stage, ``"metrics.auc >= @production"`` ("not worse
  than production"), optionally with a tolerance: ``"metrics.auc >= @production - 0.005"``,
  ``"metrics.latency_ms <= @production + 2"``. The candidate's value is its
  current metric (the registered value overlaid with the latest logged one).
  A missing candidate metric fails the gate; with no version in the baseline
  stage, or a baseline without that metric, a relative condition passes.
- ``lineage``: required lineage fields, from :data:`LINEAGE_FIELDS`.
- ``tags``: tag keys the version must have (non-empty); ``description``: the
  version must have a description.
- ``signatures``: ``{"keys": [...], "min": N}``: at least N valid signatures of the version
  (:meth:`Registry.sign`) made by distinct keys from ``keys`` (fingerprints ``sha256:<hex>`` or PEM
  public keys; a plain list means ``min`` 1). A signature that does not match the version's files
  never counts.

``retention`` (on the policy, not a gate) holds the rules of :meth:`Registry.apply_retention`
(:class:`modelreg.retention.RetentionRule`).

Actor names are compared case-insensitively (``Ana@Example.com`` is ``ana@example.com``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ..errors import InvalidInputError, Message, Remedy, SchemaVersionError
from ..models import ModelState, ModelVersion, Stage
from ..stages import DEFAULT_TRANSITIONS, StageRules

__all__ = [
    "LINEAGE_FIELDS",
    "POLICY_SCHEMA_VERSION",
    "ApprovalRule",
    "Candidate",
    "Gate",
    "MetricCondition",
    "Policy",
    "RetentionRule",
    "SignatureRule",
    "days_text",
    "evaluate_gates",
    "same_actor",
]

POLICY_SCHEMA_VERSION = 1

LINEAGE_FIELDS: dict[str, str] = {
    "dataset": "at least one dataset",
    "dataset_digest": "at least one dataset, and a digest for every dataset",
    "code_commit": "the git commit of the code",
    "code_clean": "code committed with a clean work tree (lineage.code.dirty is false)",
    "run_id": "the experiment-tracker run id",
    "environment": "the Python environment",
}
"""Names accepted in ``Gate.lineage`` and what each one requires."""

_KEY = r"[A-Za-z0-9_][A-Za-z0-9_.:/ -]*?"
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_METRIC_RE = re.compile(rf"^\s*metrics\.(?P<key>{_KEY})\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<rhs>.+?)\s*$")
_RHS_NUMBER = re.compile(rf"^(?P<num>{_NUMBER})$")
_RHS_STAGE = re.compile(rf"^@(?P<stage>[A-Za-z]+)(?:\s*(?P<sign>[-+])\s*(?P<tol>{_NUMBER}))?$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
_METRIC_HELP = (
    "write 'metrics.<key> <op> <number>' or 'metrics.<key> <op> @<stage> [+|- <number>]' with op one of "
    ">=, >, <=, <, ==, != (e.g. 'metrics.auc >= 0.9', 'metrics.auc >= @production - 0.005')"
)


def same_actor(a: str | None, b: str | None) -> bool:
    """Actor names are compared case-insensitively, ignoring surrounding spaces."""
    return a is not None and b is not None and a.strip().casefold() == b.strip().casefold()


def _fmt(value: float) -> str:
    return format(value, ".6g")


@dataclass(frozen=True)
class MetricCondition:
    """A parsed metric gate: ``metrics.<key> <op> <value>`` or ``... <op> @<stage> [+|- offset]``."""

    key: str
    op: str
    value: float | None = None
    stage: Stage | None = None
    offset: float = 0.0

    @classmethod
    def parse(cls, text: str) -> MetricCondition:
        if not isinstance(text, str):
            raise ValueError(f"metric gate must be a string; {_METRIC_HELP}")
        m = _METRIC_RE.match(text)
        if not m:
            raise ValueError(f"cannot parse metric gate {text!r}; {_METRIC_HELP}")
        key, op, rhs = m.group("key").strip(), m.group("op"), m.group("rhs")
        num = _RHS_NUMBER.match(rhs)
        if num:
            value = float(num.group("num"))
            if not math.isfinite(value):
                raise ValueError(f"metric gate {text!r} compares with a non-finite number")
            return cls(key=key, op=op, value=value)
        st = _RHS_STAGE.match(rhs)
        if st:
            try:
                stage = Stage(st.group("stage").lower())
            except ValueError:
                valid = ", ".join(s.value for s in Stage)
                raise ValueError(
                    f"metric gate {text!r} names unknown stage {st.group('stage')!r}; use one of {valid}"
                ) from None
            offset = float(st.group("tol") or 0.0)
            if st.group("sign") == "-":
                offset = -offset
            return cls(key=key, op=op, stage=stage, offset=offset)
        raise ValueError(f"cannot parse the right-hand side of metric gate {text!r}; {_METRIC_HELP}")

    def __str__(self) -> str:
        if self.stage is None:
            return f"metrics.{self.key} {self.op} {_fmt(self.value or 0.0)}"
        tail = ""
        if self.offset:
            tail = f" {'-' if self.offset < 0 else '+'} {_fmt(abs(self.offset))}"
        return f"metrics.{self.key} {self.op} @{self.stage.value}{tail}"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)


class ApprovalRule(_Strict):
    """``count`` approvals, from members of ``group`` when one is named; with ``signed``, only approvals
    signed (``approve(sign=True)``) by a key the policy lists for the approver in ``member_keys``."""

    count: int = Field(1, ge=1, le=100)
    group: str | None = None
    signed: bool = False

    def describe(self) -> str:
        who = f" from group {self.group!r}" if self.group else ""
        kind = "signed approval" if self.signed else "approval"
        return f"{self.count} {kind}{'s' if self.count != 1 else ''}{who}"


class SignatureRule(_Strict):
    """``min`` valid signatures by distinct keys among ``keys`` (fingerprints or PEM public keys,
    kept as fingerprints)."""

    keys: list[str]
    min: int = Field(1, ge=1, le=100)

    @field_validator("keys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        from ..signing import fingerprint

        out: list[str] = []
        for key in value:
            try:
                fp = fingerprint(key)
            except InvalidInputError as exc:
                raise ValueError(str(exc)) from None
            if fp not in out:
                out.append(fp)
        if not out:
            raise ValueError("signatures needs at least one trusted key (a fingerprint or a PEM public key)")
        return out

    @model_validator(mode="after")
    def _enough(self) -> SignatureRule:
        if self.min > len(self.keys):
            raise ValueError(f"signatures needs min {self.min} signatures but trusts only {len(self.keys)} key(s)")
        return self

    def describe(self) -> str:
        keys = ", ".join(k[:19] + "…" for k in self.keys)
        return f"{self.min} valid signature{'s' if self.min != 1 else ''} by trusted key(s) {keys}"


SignerCheck = Callable[[ModelVersion, ModelState], list[tuple[str, str, "str | None"]]]
"""Checks the stored signatures of a version: ``(key fingerprint, signer, problem or None)`` for each."""


class Gate(_Strict):
    """What a version needs before it may enter one stage (see the module docs)."""

    approvals: list[ApprovalRule] = Field(default_factory=list)
    approver_not_author: bool = True
    approver_not_requester: bool = True
    metrics: list[str] = Field(default_factory=list)
    lineage: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    description: bool = False
    signatures: SignatureRule | None = None

    @field_validator("signatures", mode="before")
    @classmethod
    def _signatures(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return {"keys": list(value)}
        return value

    @field_validator("approvals", mode="before")
    @classmethod
    def _approvals(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("approvals must be a count, a rule {'count': 2, 'group': 'risk'} or a list of rules")
        if isinstance(value, int):
            return [] if value == 0 else [{"count": value}]
        if isinstance(value, (Mapping, ApprovalRule)):
            return [value]
        return value

    @field_validator("metrics", "lineage", "tags", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: list[str]) -> list[str]:
        return [str(MetricCondition.parse(v)) for v in value]

    @field_validator("lineage")
    @classmethod
    def _lineage(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in LINEAGE_FIELDS]
        if unknown:
            raise ValueError(f"unknown lineage requirement(s) {unknown}; use {sorted(LINEAGE_FIELDS)}")
        return value

    @property
    def conditions(self) -> list[MetricCondition]:
        return [MetricCondition.parse(m) for m in self.metrics]

    @property
    def needs_approval(self) -> bool:
        return bool(self.approvals)

    def is_empty(self) -> bool:
        return not (self.approvals or self.metrics or self.lineage or self.tags or self.description or self.signatures)


def _default_transitions() -> dict[Stage, list[Stage]]:
    order = list(Stage)
    return {s: [t for t in order if t in targets] for s, targets in DEFAULT_TRANSITIONS.items()}


def days_text(d: float) -> str:
    return f"{d:g} day{'s' if d != 1 else ''}"


class RetentionRule(BaseModel):
    """One retention rule of the policy: which versions :func:`modelreg.retention.apply_retention` may
    archive or purge, and which it keeps (see :mod:`modelreg.retention`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    models: list[str] = Field(default_factory=lambda: ["*"])
    """Model names or shell patterns (``fraud-*``) this rule applies to; ``["*"]``: every model."""
    keep_experimental: int | None = Field(None, ge=0)
    archive_experimental_after_days: float | None = Field(None, ge=0)
    purge_archived_after_days: float | None = Field(None, ge=0)
    keep_newest: int = Field(1, ge=0)
    """The newest this many versions of each stage are never touched."""
    keep_used_within_days: float = Field(30, ge=0)
    keep_tag: str = "keep"
    """A version whose tag of this name is ``"true"`` is never touched."""
    trim_usage_after_days: float | None = Field(None, ge=0)
    """Remove usage-log records (fetches and loads) older than this many days; at least
    ``keep_used_within_days``, so that the uses that protect a version are kept."""

    @field_validator("models", mode="before")
    @classmethod
    def _models(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _does_something(self) -> RetentionRule:
        if not self.models or any(not isinstance(m, str) or not m.strip() for m in self.models):
            raise ValueError("retention rule: models must be a non-empty list of names or patterns")
        if (
            self.keep_experimental is None
            and self.archive_experimental_after_days is None
            and self.purge_archived_after_days is None
            and self.trim_usage_after_days is None
        ):
            raise ValueError(
                "a retention rule needs keep_experimental, archive_experimental_after_days, purge_archived_after_days "
                "or trim_usage_after_days"
            )
        if self.trim_usage_after_days is not None and self.trim_usage_after_days < self.keep_used_within_days:
            raise ValueError(
                f"trim_usage_after_days ({days_text(self.trim_usage_after_days)}) is shorter than "
                f"keep_used_within_days ({days_text(self.keep_used_within_days)}): trimming would remove the uses "
                "that protect versions"
            )
        return self

    def applies_to(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.models)

    def describe(self) -> str:
        parts = []
        if self.keep_experimental is not None:
            parts.append(f"keep the newest {self.keep_experimental} experimental")
        if self.archive_experimental_after_days is not None:
            parts.append(f"archive experimental after {days_text(self.archive_experimental_after_days)}")
        if self.purge_archived_after_days is not None:
            parts.append(f"purge archived after {days_text(self.purge_archived_after_days)}")
        if self.trim_usage_after_days is not None:
            parts.append(f"trim the usage log after {days_text(self.trim_usage_after_days)}")
        return f"{', '.join(self.models)}: " + "; ".join(parts)

    def describe_protection(self) -> str:
        """What the rule never touches, besides versions in an exclusive stage, with an alias or a
        pending request (for ``modelreg policy show``)."""
        parts = []
        if self.keep_newest:
            parts.append(f"the newest {self.keep_newest} of each stage")
        if self.keep_used_within_days:
            parts.append(f"versions used within {days_text(self.keep_used_within_days)}")
        parts.append(f"tag {self.keep_tag}=true")
        return ", ".join([*parts, "aliased, requested and exclusive-stage versions"])


class Policy(_Strict):
    """Registry-wide governance rules: the transition table, exclusive stages and gates.

    >>> policy = Policy(gates={"production": Gate(approvals=2, metrics=["metrics.auc >= @production"])})
    >>> policy.gate("production").approvals[0].count, [str(s) for s in policy.exclusive]
    (2, ['production'])

    The default policy (``Policy()``) has the default transition table, an
    exclusive production stage and no gates: everything is allowed that the
    table allows. ``emergency_rollback`` lets :meth:`Registry.rollback` skip the
    gates of the stage it restores (the event records which gates were skipped,
    and a comment is required). ``auto_complete`` completes a transition request
    as soon as its gates are met (else someone calls ``complete``). When
    ``admins`` is non-empty only those actors may change the policy or the
    webhooks.
    """

    schema_version: int = POLICY_SCHEMA_VERSION
    transitions: dict[Stage, list[Stage]] = Field(default_factory=_default_transitions)
    exclusive: list[Stage] = Field(default_factory=lambda: [Stage.PRODUCTION])
    displaced_to: Stage = Stage.ARCHIVED
    groups: dict[str, list[str]] = Field(default_factory=dict)
    gates: dict[Stage, Gate] = Field(default_factory=dict)
    emergency_rollback: bool = True
    auto_complete: bool = True
    admins: list[str] = Field(default_factory=list)
    retention: list[RetentionRule] = Field(default_factory=list)
    member_keys: dict[str, list[str]] = Field(default_factory=dict)
    """Public keys (fingerprints or PEM, kept as fingerprints) of actors, for signed approvals."""

    @field_validator("member_keys")
    @classmethod
    def _member_keys(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        from ..signing import fingerprint

        try:
            return {actor: list(dict.fromkeys(fingerprint(k) for k in keys)) for actor, keys in value.items()}
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None

    def keys_of(self, actor: str) -> list[str]:
        """The key fingerprints listed for ``actor`` (names compared as :func:`same_actor`)."""
        return [k for name, keys in self.member_keys.items() if same_actor(name, actor) for k in keys]

    @field_validator("transitions", mode="before")
    @classmethod
    def _transitions(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: ([v] if isinstance(v, str) else v) for k, v in value.items()}
        return value

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, members in value.items():
            if not name or not isinstance(name, str):
                raise ValueError("group names must be non-empty strings")
            if any(not isinstance(m, str) or not m.strip() for m in members):
                raise ValueError(f"group {name!r} has an empty member name")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        if self.schema_version > POLICY_SCHEMA_VERSION:
            raise ValueError(f"schema_version {self.schema_version} is newer than this modelreg understands")
        if self.displaced_to in self.exclusive:
            raise ValueError(f"displaced_to ({self.displaced_to.value}) cannot itself be an exclusive stage")
        for stage, gate in self.gates.items():
            for rule in gate.approvals:
                if rule.group is not None and rule.group not in self.groups:
                    known = ", ".join(sorted(self.groups)) or "none defined"
                    raise ValueError(
                        f"gate for {stage.value} needs approvals from group {rule.group!r}, which the policy does "
                        f"not define (groups: {known}); add it under 'groups'"
                    )
        return self

    # -- construction and serialisation ------------------------------------------------
    @classmethod
    def from_rules(cls, rules: StageRules) -> Policy:
        """A gate-less policy with the table of ``rules``."""
        return cls(
            transitions={s: sorted(t, key=list(Stage).index) for s, t in rules.transitions.items()},
            exclusive=sorted(rules.exclusive, key=list(Stage).index),
            displaced_to=rules.displaced_to,
        )

    @classmethod
    def parse(cls, data: Policy | Mapping[str, Any] | str) -> Policy:
        """A policy from a Policy, a mapping or JSON text; InvalidInputError lists every problem."""
        if isinstance(data, Policy):
            return data
        try:
            if isinstance(data, (str, bytes)):
                return cls.model_validate_json(data)
            if isinstance(data, Mapping):
                return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise InvalidInputError(f"invalid policy: {_explain(exc)}") from None
        raise InvalidInputError(f"a policy must be a Policy, a mapping or JSON text, got {type(data).__name__}")

    from_json = parse

    @classmethod
    def load_stored(cls, data: Mapping[str, Any]) -> Policy:
        """Read the policy stored in a registry. A policy this version cannot read fails closed."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise SchemaVersionError(
                f"the registry's stored policy cannot be read by this modelreg ({_explain(exc)}); it was probably "
                "written by a newer version: upgrade modelreg (pip install -U modelreg). Nothing was changed"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        # fields added later are left out while unused: such a policy keeps its digest and still
        # reads in an older modelreg (which refuses unknown fields)
        for key in ("retention", "member_keys"):
            if not data.get(key):
                data.pop(key, None)
        for rule in data.get("retention", []):
            if rule.get("trim_usage_after_days") is None:
                rule.pop("trim_usage_after_days", None)
        for gate in data.get("gates", {}).values():
            if gate.get("signatures") is None:
                gate.pop("signatures", None)
            for rule in gate.get("approvals", []):
                if not rule.get("signed"):
                    rule.pop("signed", None)
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    def digest(self) -> str:
        """sha256 of the canonical JSON form; identifies a policy in the audit trail."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    # -- queries ------------------------------------------------------------------------------
    def stage_rules(self) -> StageRules:
        """The transition part of the policy, as used by every stage move."""
        return StageRules(
            transitions={s: frozenset(t) for s, t in self.transitions.items()},
            exclusive=frozenset(self.exclusive),
            displaced_to=self.displaced_to,
        )

    def gate(self, stage: Stage | str) -> Gate:
        """The gate of ``stage`` (an empty gate when none is configured)."""
        return self.gates.get(Stage(stage), Gate())

    def members(self, group: str) -> list[str]:
        return list(self.groups.get(group, []))

    def in_group(self, actor: str, group: str) -> bool:
        return any(same_actor(actor, m) for m in self.groups.get(group, []))

    def is_admin(self, actor: str) -> bool:
        return not self.admins or any(same_actor(actor, a) for a in self.admins)

    def approval_refusals(self, target: Stage, actor: str, author: str | None, requester: str | None) -> list[str]:
        """Why ``actor`` may not approve a move to ``target`` (empty when they may)."""
        gate = self.gate(target)
        reasons = []
        if gate.approver_not_author and same_actor(actor, author):
            reasons.append(
                f"separation of duties: {actor} registered this version and cannot approve its move to {target.value}"
            )
        if gate.approver_not_requester and same_actor(actor, requester):
            reasons.append(f"separation of duties: {actor} requested this transition and cannot approve it")
        groups = [r.group for r in gate.approvals]
        outside = not any(self.in_group(actor, g) for g in groups if g is not None)
        if gate.approvals and all(g is not None for g in groups) and outside:
            names = ", ".join(repr(g) for g in dict.fromkeys(groups))
            reasons.append(
                f"{actor} is not in {'group' if len(set(groups)) == 1 else 'any of the groups'} "
                f"{names}, whose approvals the move to {target.value} needs"
            )
        return reasons


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        msg = err.get("msg", "")
        msg = msg.removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


# -- evaluation --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """A version as seen by the gates: its immutable record plus its current mutable state."""

    record: ModelVersion
    state: ModelState

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def version(self) -> int:
        return self.record.version

    @property
    def ref(self) -> str:
        return f"{self.record.name}/{self.record.version}"

    def metrics_of(self, version: int, record: ModelVersion) -> dict[str, float]:
        vs = self.state.versions.get(version)
        logged = vs.logged_metrics if vs is not None else {}
        return {**record.metrics, **logged}


RecordLookup = Callable[[int], ModelVersion]
"""Returns the immutable record of another version of the same model (for baselines)."""


def evaluate_gates(
    policy: Policy,
    target: Stage,
    candidate: Candidate,
    records: RecordLookup,
    *,
    approvals: Sequence[Any] | None = None,
    requester: str | None = None,
    request_hint: str | None = None,
    signers: SignerCheck | None = None,
) -> list[str]:
    """Every unmet gate of moving ``candidate`` to ``target``, one line each (empty: all met).

    ``approvals`` are the approvals of a transition request (objects with an
    ``actor``); ``None`` means a direct transition, which carries none. ``signers`` checks the
    version's stored signatures (needed by a ``signatures`` gate).
    """
    gate = policy.gate(target)
    unmet: list[str] = []
    ref = candidate.ref
    vs = candidate.state.versions[candidate.version]
    author = candidate.record.created_by

    if gate.approvals:
        if approvals is None:
            rules = " and ".join(r.describe() for r in gate.approvals)
            hint = Remedy(
                request_hint or f"reg.request_transition({ref!r}, {target.value!r})",
                f"`modelreg request {ref} {target.value}`",
            )
            unmet.append(
                Message(
                    f"approvals: {target.value} needs {rules}; a direct transition carries none, so request it with ",
                    hint,
                    " and have it approved",
                )
            )
        else:
            valid_approvals = [
                a
                for a in approvals
                if not (
                    (gate.approver_not_author and same_actor(a.actor, author))
                    or (gate.approver_not_requester and same_actor(a.actor, requester))
                )
            ]
            for rule in gate.approvals:
                counted = [
                    a.actor
                    for a in valid_approvals
                    if (rule.group is None or policy.in_group(a.actor, rule.group))
                    and (not rule.signed or _signed_by_member(policy, a, candidate, target) is None)
                ]
                if len(counted) < rule.count:
                    have = f"has {len(counted)}" + (f" ({', '.join(counted)})" if counted else "")
                    members = ""
                    if rule.group is not None:
                        members = f"; members: {', '.join(policy.members(rule.group)) or 'none'}"
                    unmet.append(f"approvals: needs {rule.describe()}, {have}{members}")

    metrics = candidate.metrics_of(candidate.version, candidate.record)
    for cond in gate.conditions:
        label = str(cond)
        value = metrics.get(cond.key)
        if value is None:
            unmet.append(
                Message(
                    f"{label}: {ref} has no metric {cond.key!r}; log it with ",
                    Remedy(
                        f"reg.log_metrics({ref!r}, {{{cond.key!r}: ...}})",
                        f"`modelreg log-metrics {ref} {_arg(cond.key + '=')}NUMBER`",
                    ),
                )
            )
            continue
        if cond.stage is None:
            assert cond.value is not None
            if not _OPS[cond.op](value, cond.value):
                unmet.append(f"{label}: {ref} has {cond.key} = {_fmt(value)}")
            continue
        holders = [h for h in candidate.state.holders(cond.stage) if h != candidate.version]
        if not holders:
            continue  # nothing to compare with
        baseline_v = holders[-1]
        baseline = candidate.metrics_of(baseline_v, records(baseline_v)).get(cond.key)
        if baseline is None:
            continue  # the baseline never measured this metric
        bound = baseline + cond.offset
        if not _OPS[cond.op](value, bound):
            tol = f" (bound {_fmt(bound)})" if cond.offset else ""
            unmet.append(
                f"{label}: {ref} has {cond.key} = {_fmt(value)}, {cond.stage.value} version "
                f"{candidate.name}/{baseline_v} has {_fmt(baseline)}{tol}"
            )

    lineage = candidate.record.lineage
    for req in gate.lineage:
        missing = _lineage_missing(req, lineage)
        if missing:
            unmet.append(Message(f"lineage.{req}: {ref} ", missing))

    for key in gate.tags:
        if not vs.tags.get(key):
            unmet.append(
                Message(
                    f"tag {key!r}: {ref} has no tag {key!r}; add it with ",
                    Remedy(f"reg.set_tags({ref!r}, {{{key!r}: ...}})", f"`modelreg tag {ref} {_arg(key + '=')}VALUE`"),
                )
            )

    if gate.description and not vs.description.strip():
        unmet.append(
            Message(
                f"description: {ref} has no description; set one with ",
                Remedy(f"reg.set_description({ref!r}, '...')", f"`modelreg describe {ref} TEXT`"),
            )
        )

    if gate.signatures is not None:
        sig_rule = gate.signatures
        checked = signers(candidate.record, candidate.state) if signers is not None else []
        good = sorted({fp for fp, _who, problem in checked if problem is None and fp in sig_rule.keys})
        if len(good) < sig_rule.min:
            notes = []
            for fp, who, problem in checked:
                if problem is not None:
                    notes.append(f"{fp[:19]}… by {who} is invalid ({problem})")
                elif fp not in sig_rule.keys:
                    notes.append(f"{fp[:19]}… by {who} is not a trusted key")
            have = f"has {len(good)}" + (f"; {'; '.join(notes)}" if notes else "")
            unmet.append(
                Message(
                    f"signatures: {target.value} needs {sig_rule.describe()}, {ref} {have}; "
                    "sign it with a trusted key: ",
                    Remedy(f"reg.sign({ref!r}, key='key.pem')", f"`modelreg sign {ref} --key key.pem`"),
                )
            )
    return unmet


def _signed_by_member(policy: Policy, approval: Any, candidate: Candidate, target: Stage) -> str | None:
    """Why ``approval`` is not a valid signed approval by a key of its approver (None: it is)."""
    envelope = getattr(approval, "signature", None)
    if not envelope:
        return "not signed"
    from ..signing import approval_problem, fingerprint

    try:
        fp = fingerprint(str(envelope.get("public_key")))
    except InvalidInputError:
        return "no public key"
    if fp not in policy.keys_of(approval.actor):
        return f"signed with {fp[:19]}…, not a key listed for {approval.actor} in member_keys"
    return approval_problem(
        envelope, ref=candidate.ref, digest=candidate.record.digest, stage=target.value, actor=approval.actor
    )


def _arg(text: str) -> str:
    """``text`` as one shell word (quoted when it has spaces or shell characters)."""
    import shlex

    return shlex.quote(text)


def _lineage_missing(req: str, lineage: Any) -> str | None:
    datasets = list(lineage.datasets or [])
    code = lineage.code
    if req == "dataset":
        if datasets:
            return None
        return Message(
            "records no dataset; register it with ",
            Remedy("lineage={'datasets': [{'uri': ...}]}", "--dataset URI"),
        )
    if req == "dataset_digest":
        if not datasets:
            return Message(
                "records no dataset; register it with ",
                Remedy("lineage={'datasets': [{'uri': ..., 'digest': 'sha256:...'}]}", "--dataset URI@sha256:HEX"),
            )
        without = [d.uri for d in datasets if not d.digest]
        if without:
            return f"records no digest for dataset(s) {', '.join(without)}; record 'digest' for every dataset"
        return None
    if req == "code_commit":
        if code is None or not code.commit:
            return Message(
                "records no git commit; register from a git work tree ",
                Remedy("(capture='auto') or pass lineage.code.commit", "(without --no-capture)"),
            )
        return None
    if req == "code_clean":
        if code is None or code.dirty is not False:
            state = "unknown" if code is None or code.dirty is None else "dirty"
            return f"was registered from a {state} work tree; commit your changes and register again"
        return None
    if req == "run_id":
        if lineage.run_id:
            return None
        return Message("records no run id; pass ", Remedy("lineage={'run_id': ...}", "--run-id ID"))
    if req == "environment":
        if lineage.environment is not None:
            return None
        return Message("records no environment; register ", Remedy("with capture='auto'", "without --no-capture"))
    return f"has an unknown lineage requirement {req!r}"


def describe_gate(gate: Gate) -> list[str]:
    """Human-readable lines for a gate (for ``modelreg policy show``)."""
    lines = [f"approvals: {r.describe()}" for r in gate.approvals]
    if gate.approvals:
        sod = []
        if gate.approver_not_author:
            sod.append("not the author")
        if gate.approver_not_requester:
            sod.append("not the requester")
        if sod:
            lines.append("approver: " + ", ".join(sod))
    lines += [f"metric: {m}" for m in gate.metrics]
    lines += [f"lineage: {x} ({LINEAGE_FIELDS[x]})" for x in gate.lineage]
    lines += [f"tag: {t}" for t in gate.tags]
    if gate.description:
        lines.append("description: required")
    if gate.signatures is not None:
        lines.append(f"signatures: {gate.signatures.describe()}")
    return lines


def iter_groups(policy: Policy) -> Iterable[tuple[str, list[str]]]:
    return sorted(policy.groups.items())
