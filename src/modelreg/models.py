"""Public records. Stores accept and return these pydantic models, never raw dicts.

Records are frozen. They allow unknown fields (``extra="allow"``) so that a
record written by a newer modelreg still loads in an older one; input
validation happens in :mod:`modelreg.validation` before anything is written.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import types
import typing
from collections.abc import Callable
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Artifact",
    "AuditCheck",
    "AuditEvent",
    "CodeVersion",
    "ColumnSpec",
    "Comparison",
    "Dataset",
    "Environment",
    "EventDraft",
    "FileEntry",
    "GcReport",
    "Lineage",
    "LoadedFrom",
    "MetricPoint",
    "ModelInfo",
    "ModelState",
    "ModelVersion",
    "Problem",
    "RegisteredModel",
    "Signature",
    "Stage",
    "UsageRecord",
    "VerifyReport",
    "VersionDraft",
    "VersionState",
    "from_store",
    "stored_record",
    "stored_records",
    "utcnow",
]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC, truncated to microseconds."""
    return datetime.now(timezone.utc)


def _parse_time(value: Any) -> Any:
    if type(value) is str:
        if value.endswith("Z"):  # Python 3.10's fromisoformat does not read "Z"
            value = value[:-1] + "+00:00"
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError(f"a stored time has no time zone: {value!r}")
        return parsed
    return value


def _converter(annotation: Any) -> Callable[[Any], Any] | None:
    """How :func:`from_store` turns a stored JSON value into a field of this type (None: as it is)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        convert = _converter(args[0]) if len(args) == 1 else None
        if convert is None:
            return None
        return lambda v: None if v is None else convert(v)
    if origin is list:
        inner = _converter(typing.get_args(annotation)[0])
        if inner is None:
            return None
        return lambda v: [inner(x) for x in v]
    if origin is dict:
        key, value = typing.get_args(annotation)
        if key is not str or _converter(value) is not None:
            raise TypeError(f"from_store cannot build {annotation}")
        if value is float:  # JSON writes 1.0 as 1.0, but an integer read back is made a float as pydantic does
            return lambda v: v if all(type(x) is float for x in v.values()) else {k: float(x) for k, x in v.items()}
        return None
    if annotation is datetime:
        return _parse_time
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        members = annotation._value2member_map_
        return lambda v: members[v] if v in members else annotation(v)
    if isinstance(annotation, type) and issubclass(annotation, _Record):
        return lambda v: from_store(annotation, v)
    return None


_MISSING: Any = object()
_PLANS: dict[type, tuple[list[tuple[str, Any, Any, Any]], frozenset[str]]] = {}


def _plan(cls: type[_Record]) -> tuple[list[tuple[str, Any, Any, Any]], frozenset[str]]:
    fields: list[tuple[str, Any, Any, Any]] = []
    for name, info in cls.model_fields.items():
        if info.default_factory is not None:
            fields.append((name, _converter(info.annotation), _MISSING, info.default_factory))
        elif info.is_required():
            fields.append((name, _converter(info.annotation), _MISSING, None))
        else:
            if not isinstance(info.default, (str, int, float, bool, Enum, type(None))):
                raise TypeError(f"{cls.__name__}.{name}: a mutable default needs a default_factory")
            fields.append((name, _converter(info.annotation), info.default, None))
    plan = (fields, frozenset(cls.model_fields))
    _PLANS[cls] = plan
    return plan


_R = TypeVar("_R", bound="_Record")


def from_store(cls: type[_R], data: dict[str, Any]) -> _R:
    """A record built from what a store wrote (JSON-decoded data that was validated when it was
    written), without validating it again. Equal to ``cls.model_validate(data)`` for such data, and
    it does not build the pydantic validator: a process that only reads a few records does not pay
    for building validators (and for pydantic's plugin discovery, which scans the entry points of
    every installed distribution). Raises ValueError or KeyError for data that lacks a required
    field; callers fall back to ``model_validate`` for its precise error."""
    fields, names = _PLANS.get(cls) or _plan(cls)
    values: dict[str, Any] = {}
    for name, convert, default, factory in fields:
        value = data.get(name, _MISSING)
        if value is _MISSING:
            if factory is not None:
                values[name] = factory()
            elif default is _MISSING:
                raise ValueError(f"{cls.__name__}: the stored data has no {name!r}")
            else:
                values[name] = default
        else:
            values[name] = value if convert is None else convert(value)
    record = cls.__new__(cls)
    set_ = object.__setattr__
    set_(record, "__dict__", values)
    extra = {k: v for k, v in data.items() if k not in names} if not names.issuperset(data) else {}
    set_(record, "__pydantic_extra__", extra)
    set_(record, "__pydantic_fields_set__", set(data))  # as pydantic: extra keys count as set
    set_(record, "__pydantic_private__", None)
    return record


FEW_UNVALIDATED = 16
"""A batch of at most this many stored records is built with :func:`stored_record` (larger
batches pay for the validator once and use it)."""
_UNVALIDATED_READS = 1000
_UNVALIDATED_BUDGET: dict[type, int] = {}


def _unvalidated(cls: type[BaseModel]) -> bool:
    """Whether to build a record of ``cls`` with ``from_store`` rather than its validator.

    What a store wrote was validated before it was committed. Until the process has built the
    validator anyway, a few records are built without it: a process that only reads a version (a
    server loading its model, ``modelreg list``) is spared the building of validators and pydantic's
    plugin discovery (20-30 ms). ``from_store`` costs about twice a built validator per record, so
    after ``_UNVALIDATED_READS`` records the validator is built and used."""
    if cls.__pydantic_complete__:
        return False
    left = _UNVALIDATED_BUDGET.get(cls, _UNVALIDATED_READS)
    _UNVALIDATED_BUDGET[cls] = left - 1
    return left > 0


def stored_record(cls: type[_R], data: str | dict[str, Any]) -> _R:
    """A record from what a store wrote (JSON text, or the dict it decodes to): built with
    :func:`from_store` while the validator of ``cls`` is not built yet (within a budget), else
    validated; stored data that ``from_store`` cannot build gets the validator's precise error."""
    if _unvalidated(cls):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            return from_store(cls, json.loads(data) if isinstance(data, str) else data)
    return cls.model_validate_json(data) if isinstance(data, str) else cls.model_validate(data)


def stored_records(cls: type[_R], docs: list[str]) -> list[_R]:
    """Records from stored JSON texts: :func:`stored_record` for a few, the validator for more."""
    if len(docs) <= FEW_UNVALIDATED:
        return [stored_record(cls, d) for d in docs]
    return [cls.model_validate_json(d) for d in docs]


class Stage(str, Enum):
    """Lifecycle stage of a model version. Compares equal to its string value."""

    EXPERIMENTAL = "experimental"
    STAGING = "staging"
    PRODUCTION = "production"
    ARCHIVED = "archived"

    def __str__(self) -> str:
        return self.value


class _Record(BaseModel):
    # defer_build: a record's validator is built when it is first used, not at import time
    model_config = ConfigDict(frozen=True, extra="allow", use_enum_values=False, defer_build=True)


_M = TypeVar("_M", bound=BaseModel)
_ATOMS = frozenset({str, int, float, bool, bytes, type(None), datetime, Stage})
_SHARED = (str, int, float, bytes, datetime, Enum)
"""Immutable values a deep copy may share instead of copying."""


def _clone(value: Any, memo: dict[int, Any]) -> Any:
    """Deep copy of JSON-like data: new dicts and lists, immutable leaves shared, records through
    their ``__deepcopy__``, anything else through ``copy.deepcopy``. Several times faster than
    ``copy.deepcopy`` on the nested dicts of a state. (A dict or list referenced twice becomes two
    copies; JSON-like data has no such sharing.)"""
    t = type(value)
    if t in _ATOMS:
        return value
    if t is dict:
        if _ATOMS.issuperset(map(type, value.values())):  # flat (tags, metrics): a C-level copy
            return value.copy()
        return {k: v if type(v) in _ATOMS else _clone(v, memo) for k, v in value.items()}
    if t is list:
        if _ATOMS.issuperset(map(type, value)):
            return value[:]
        return [v if type(v) in _ATOMS else _clone(v, memo) for v in value]
    if isinstance(value, _SHARED):
        return value
    if isinstance(value, (VersionState, ModelState)):
        return _fast_deepcopy(value, memo)
    return copy.deepcopy(value, memo)


def _fast_deepcopy(record: _M, memo: dict[int, Any] | None) -> _M:
    """``record.model_copy(deep=True)`` as pydantic's ``__deepcopy__`` does it, with :func:`_clone`
    for the field values (update functions deep-copy the whole ModelState on every change)."""
    memo = {} if memo is None else memo
    cls = type(record)
    m = cls.__new__(cls)
    memo[id(record)] = m
    setattr_ = object.__setattr__
    setattr_(m, "__dict__", _clone(record.__dict__, memo))
    extra = record.__pydantic_extra__
    setattr_(m, "__pydantic_extra__", extra if extra is None else _clone(extra, memo))
    setattr_(m, "__pydantic_fields_set__", set(record.__pydantic_fields_set__))
    private = record.__pydantic_private__  # records declare no private attributes: None
    setattr_(m, "__pydantic_private__", None if private is None else copy.deepcopy(private, memo))
    return m


class CodeVersion(_Record):
    """The code that produced a model: git commit, repository and dirty flag."""

    commit: str | None = None
    repo: str | None = None
    branch: str | None = None
    dirty: bool | None = None
    path: str | None = None


class Dataset(_Record):
    """A dataset a model was trained or evaluated on: URI plus version or digest."""

    uri: str
    version: str | None = None
    digest: str | None = None
    name: str | None = None
    role: str | None = None


class Environment(_Record):
    """Where a model was trained: interpreter, platform and key package versions."""

    python: str | None = None
    platform: str | None = None
    packages: dict[str, str] = Field(default_factory=dict)


class Lineage(_Record):
    """What made a model version: run, code, data, parents and environment."""

    run_id: str | None = None
    run_url: str | None = None
    code: CodeVersion | None = None
    datasets: list[Dataset] = Field(default_factory=list)
    parents: list[str] = Field(default_factory=list)
    environment: Environment | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class FileEntry(_Record):
    """One file of an artifact: path relative to the artifact root (POSIX), digest, size."""

    path: str
    digest: str
    size: int


class Artifact(_Record):
    """The stored content of a version: one file, or a folder with a manifest.

    ``symlink_target`` is set when the registered path was a symlink: its resolved target, whose
    content was stored (None otherwise, and in records written before it existed).
    """

    kind: Literal["file", "directory"]
    name: str
    digest: str
    size: int
    files: list[FileEntry]
    format: str | None = None
    symlink_target: str | None = None


class ColumnSpec(_Record):
    """One input or output of a model's signature: a named column (a DataFrame's, a dict's key) or
    an unnamed tensor. ``shape`` has None for a dimension of any size (the batch); None for a
    column of scalars."""

    name: str | None = None
    dtype: str
    shape: list[int | None] | None = None


class Signature(_Record):
    """What a model takes and returns, inferred from an input example or given by the caller.

    ``kind`` says how the inputs are laid out: ``"tensor"`` (one array), ``"columns"`` (a
    table: a DataFrame, or a dict of equal-length columns) or ``"tensors"`` (a dict of arrays).
    """

    kind: Literal["tensor", "columns", "tensors"]
    inputs: list[ColumnSpec]
    outputs: list[ColumnSpec] = Field(default_factory=list)


class ModelInfo(_Record):
    """What a saved model object is: written by ``Registry.save_model`` into the version's folder
    (``modelreg-model.json``) and kept on the version (``ModelVersion.model``, searchable as
    ``model.flavor``, ``model.format``...).

    ``flavor`` is the framework (``sklearn``, ``xgboost``, ``lightgbm``, ``onnx``, ``pytorch``,
    ``safetensors``, ``files``), ``format`` the serialisation (``skops``, ``joblib``, ``ubj``,
    ``onnx``...), ``path`` the file or folder inside the artifact that holds it, ``unsafe``
    whether loading it can run code from the artifact (pickle), ``libraries`` the versions of the
    libraries that wrote it (``requirements`` pins them for ``pip install``).
    """

    flavor: str
    format: str
    path: str
    object_class: str | None = None
    libraries: dict[str, str] = Field(default_factory=dict)
    requirements: list[str] = Field(default_factory=list)
    unsafe: bool = False
    signature: Signature | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class VersionDraft(_Record):
    """Everything the caller fixes at registration; the store assigns the number."""

    name: str
    artifact: Artifact
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    lineage: Lineage = Field(default_factory=Lineage)
    description: str = ""
    created_by: str
    created_at: datetime = Field(default_factory=utcnow)
    model: ModelInfo | None = None


class ModelVersion(_Record):
    """A registered, numbered, immutable model version with its mutable state.

    Immutable: ``artifact``, ``params``, ``metrics`` (as registered), ``lineage``,
    ``created_by``, ``created_at``, ``model`` (what a saved model object is, set by
    ``Registry.save_model``). Mutable and audited: ``stage``, ``aliases``,
    ``tags``, ``description`` and ``logged_metrics`` (the latest value of each
    metric logged after registration).
    """

    name: str
    version: int = Field(ge=1)
    stage: Stage = Stage.EXPERIMENTAL
    aliases: list[str] = Field(default_factory=list)
    artifact: Artifact
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    logged_metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    lineage: Lineage = Field(default_factory=Lineage)
    description: str = ""
    created_by: str
    created_at: datetime
    updated_at: datetime | None = None
    model: ModelInfo | None = None

    @property
    def ref(self) -> str:
        """The canonical reference, ``name/version``."""
        return f"{self.name}/{self.version}"

    @property
    def digest(self) -> str:
        return self.artifact.digest

    @property
    def size(self) -> int:
        return self.artifact.size

    @property
    def current_metrics(self) -> dict[str, float]:
        """Registration metrics overlaid with the latest logged values."""
        return {**self.metrics, **self.logged_metrics}

    def __repr__(self) -> str:
        return (
            f"ModelVersion({self.name!r}, version={self.version}, stage={self.stage.value!r}, "
            f"digest={self.artifact.digest[:19]!r}, size={self.artifact.size})"
        )

    __str__ = __repr__

    def _repr_html_(self) -> str:
        from .html import version_html

        return version_html(self)


class VersionState(_Record):
    """The mutable part of one version, as held in a :class:`ModelState`."""

    stage: Stage = Stage.EXPERIMENTAL
    tags: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    logged_metrics: dict[str, float] = Field(default_factory=dict)
    updated_at: datetime | None = None

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> VersionState:
        return _fast_deepcopy(self, memo)


class ModelState(_Record):
    """The mutable state of one model, read and written atomically by ``MetadataStore.update``.

    In an update function, ``versions`` is a view (a mutable mapping) that loads a version's
    entry when it is first read, answers :meth:`holders` from the store's index, and records
    what the function assigns: an update costs what it touches, not the number of versions.
    Iterating over it reads every version.
    """

    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    owner: str | None = None
    versions: dict[int, VersionState] = Field(default_factory=dict)
    aliases: dict[str, int] = Field(default_factory=dict)
    last_version: int = 0
    extensions: dict[str, Any] = Field(default_factory=dict)
    """JSON-serialisable state of optional features (e.g. governance requests, policies),
    persisted atomically with the rest of the state by every store."""

    def holders(self, stage: Stage | str) -> list[int]:
        """Version numbers currently in ``stage``, ascending."""
        stage = Stage(stage)
        # a store's view answers from its index
        lookup: Callable[[Stage], list[int]] | None = getattr(self.versions, "holders", None)
        if lookup is not None:
            return lookup(stage)
        return sorted(v for v, s in self.versions.items() if s.stage == stage)

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> ModelState:
        return _fast_deepcopy(self, memo)


class RegisteredModel(_Record):
    """A named model: its description, tags, owner and a summary of its versions."""

    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    owner: str | None = None
    created_at: datetime
    updated_at: datetime
    latest_version: int | None = None
    version_count: int = 0
    stages: dict[str, list[int]] = Field(default_factory=dict)
    aliases: dict[str, int] = Field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"RegisteredModel({self.name!r}, versions={self.version_count}, "
            f"latest={self.latest_version}, production={self.stages.get('production', [])})"
        )

    __str__ = __repr__

    def _repr_html_(self) -> str:
        from .html import model_html

        return model_html(self)


class EventDraft(_Record):
    """An audit event before the store gives it a sequence number and hash."""

    action: str
    actor: str
    version: int | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    comment: str | None = None
    time: datetime = Field(default_factory=utcnow)


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


class AuditEvent(_Record):
    """One entry of a model's audit chain. ``hash`` covers every other field and ``prev_hash``."""

    model: str
    seq: int = Field(ge=1)
    time: datetime
    actor: str
    action: str
    version: int | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    comment: str | None = None
    prev_hash: str
    hash: str

    def __repr__(self) -> str:
        target = f"{self.model}/{self.version}" if self.version is not None else self.model
        return f"AuditEvent(#{self.seq} {self.action} {target!r} by {self.actor!r} at {self.time.isoformat()})"

    __str__ = __repr__

    def _repr_html_(self) -> str:
        from .html import event_html

        return event_html(self)

    @staticmethod
    def compute_hash(model: str, seq: int, prev_hash: str, draft: EventDraft) -> str:
        payload = {
            "model": model,
            "seq": seq,
            "time": draft.time.astimezone(timezone.utc).isoformat(),
            "actor": draft.actor,
            "action": draft.action,
            "version": draft.version,
            "before": draft.before,
            "after": draft.after,
            "comment": draft.comment,
            "prev_hash": prev_hash,
        }
        return hashlib.sha256(_canonical(payload)).hexdigest()

    @classmethod
    def chain(cls, model: str, seq: int, prev_hash: str, draft: EventDraft) -> AuditEvent:
        """Seal ``draft`` as event ``seq`` of ``model``, linked to ``prev_hash``."""
        return cls(
            model=model,
            seq=seq,
            time=draft.time,
            actor=draft.actor,
            action=draft.action,
            version=draft.version,
            before=draft.before,
            after=draft.after,
            comment=draft.comment,
            prev_hash=prev_hash,
            hash=cls.compute_hash(model, seq, prev_hash, draft),
        )

    def expected_hash(self) -> str:
        """Recompute this event's hash from its fields."""
        draft = EventDraft(
            action=self.action,
            actor=self.actor,
            version=self.version,
            before=self.before,
            after=self.after,
            comment=self.comment,
            time=self.time,
        )
        return self.compute_hash(self.model, self.seq, self.prev_hash, draft)


GENESIS_HASH = "0" * 64


class UsageRecord(_Record):
    """One use of a version (``Registry.fetch``/``load_model`` with ``record_use``): which exact
    version a process served, who ran it, where and what for. Kept in a usage log apart from the
    hash-chained audit trail (appended without touching the model's state)."""

    name: str
    version: int = Field(ge=1)
    digest: str
    action: Literal["fetch", "load"]
    actor: str
    host: str
    pid: int
    purpose: str | None = None
    time: datetime = Field(default_factory=utcnow)

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"


class LoadedFrom(_Record):
    """Where a loaded model object came from (``Registry.loaded_from(obj)``): stamp it on each
    prediction log to answer "which version made that prediction?"."""

    ref: str
    digest: str
    path: str


class MetricPoint(_Record):
    """One value of a metric: registered with the version, or logged later."""

    key: str
    value: float
    time: datetime
    actor: str
    source: Literal["register", "log"]
    step: int | None = None


class Problem(_Record):
    """One finding of :meth:`Registry.verify`."""

    kind: str
    model: str | None = None
    version: int | None = None
    detail: str


class AuditCheck(NamedTuple):
    """What :meth:`Registry.verify_audit` found in one model's audit chain: the problems, and how
    many events it checked. A tuple, so ``problems, count = reg.verify_audit(name)`` also works."""

    problems: list[Problem]
    events: int

    @property
    def ok(self) -> bool:
        return not self.problems


class VerifyReport(_Record):
    """Result of :meth:`Registry.verify`; ``ok`` is true when nothing is wrong."""

    ok: bool
    problems: list[Problem] = Field(default_factory=list)
    models_checked: int = 0
    events_checked: int = 0
    blobs_checked: int = 0
    bytes_checked: int = 0

    def _repr_html_(self) -> str:
        from .html import verify_html

        return verify_html(self)


class GcReport(_Record):
    """Result of :meth:`Registry.gc`.

    ``removed`` and ``bytes_freed`` are the unreferenced blobs; ``partials_removed`` and
    ``partial_bytes_freed`` the leftovers of interrupted uploads older than the grace period
    (local ``tmp/`` files, S3 multipart uploads; none in a dry run). ``partials_error`` holds
    the message if cleaning them failed (the blobs were still collected; run gc again).
    """

    removed: list[str] = Field(default_factory=list)
    bytes_freed: int = 0
    kept_referenced: int = 0
    kept_recent: int = 0
    dry_run: bool = False
    partials_removed: int = 0
    partial_bytes_freed: int = 0
    partials_error: str | None = None

    def _repr_html_(self) -> str:
        from .html import gc_html

        return gc_html(self)


class Comparison(_Record):
    """Differences between two versions, as returned by :meth:`Registry.compare`.

    Each ``*_diff`` maps a key to ``{"a": old, "b": new}`` for keys that differ
    (a missing side is ``None``).
    """

    a: str
    b: str
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = Field(default_factory=dict)
    tags: dict[str, dict[str, Any]] = Field(default_factory=dict)
    lineage: dict[str, dict[str, Any]] = Field(default_factory=dict)
    files_added: list[str] = Field(default_factory=list)
    files_removed: list[str] = Field(default_factory=list)
    files_changed: list[str] = Field(default_factory=list)
    same_artifact: bool = False

    def __repr__(self) -> str:
        files = (
            "same artifact"
            if self.same_artifact
            else (f"files +{len(self.files_added)} -{len(self.files_removed)} ~{len(self.files_changed)}")
        )
        return (
            f"Comparison({self.a!r} vs {self.b!r}: {len(self.params)} params, {len(self.metrics)} metrics, "
            f"{len(self.tags)} tags, {len(self.lineage)} lineage fields differ; {files})"
        )

    __str__ = __repr__

    def _repr_html_(self) -> str:
        from .html import comparison_html

        return comparison_html(self)
