"""The two storage contracts.

Stores persist and enforce atomicity; they never decide whether a change is
allowed. Workflow rules live in :class:`modelreg.Registry`, which hands the
store a function to apply atomically (:meth:`MetadataStore.update`).

Every implementation runs the conformance suites in :mod:`modelreg.testing`.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, BinaryIO

from ..hashing import ProgressFn
from ..models import (
    AuditEvent,
    EventDraft,
    ModelState,
    ModelVersion,
    RegisteredModel,
    Stage,
    UsageRecord,
    VersionDraft,
    VersionState,
)

if TYPE_CHECKING:
    from ..query import Query

__all__ = ["ArtifactStore", "BlobInfo", "MetadataStore", "PartialUpload", "PurgeFn", "StoredBlob", "UpdateFn"]

UpdateFn = Callable[[ModelState], "tuple[ModelState, list[EventDraft]]"]
"""Receives the current state, returns the new state and the events that record the change."""

PurgeFn = Callable[[ModelState], EventDraft]
"""Receives the current state inside the store's atomic step; returns the purge event, or raises
(for example InvalidTransitionError for a version in an exclusive stage) to refuse the purge."""


class VersionView(MutableMapping[int, VersionState]):
    """``ModelState.versions`` as an update function sees it: loaded on demand.

    A store builds one per :meth:`MetadataStore.update` from three functions: ``load(numbers)``
    returns the entries of those versions that exist, ``holders(stage)`` the numbers of the
    versions in a stage (from the store's index), ``numbers()`` every live version number (only
    iteration needs it). Reads are cached; assignments are recorded and read back first, and
    :meth:`changed` tells the store what to write. A deep copy (``state.model_copy(deep=True)``)
    shares the loaded entries (they are frozen records) and copies the assignments.
    """

    def __init__(
        self,
        load: Callable[[list[int]], dict[int, VersionState]],
        holders: Callable[[Stage], list[int]],
        numbers: Callable[[], list[int]],
    ) -> None:
        self._load, self._holders, self._numbers = load, holders, numbers
        self._base: dict[int, VersionState | None] = {}
        self._changes: dict[int, VersionState] = {}

    def _fetch(self, numbers: Iterable[int]) -> None:
        missing = [v for v in numbers if v not in self._base]
        if missing:
            found = self._load(missing)
            for v in missing:
                self._base[v] = found.get(v)

    def _stored(self, version: int) -> VersionState | None:
        self._fetch([version])
        return self._base[version]

    def __getitem__(self, version: int) -> VersionState:
        if version in self._changes:
            return self._changes[version]
        if isinstance(version, bool) or not isinstance(version, int):
            raise KeyError(version)
        vs = self._stored(version)
        if vs is None:
            raise KeyError(version)
        return vs

    def __setitem__(self, version: int, value: VersionState) -> None:
        if isinstance(version, bool) or not isinstance(version, int) or not isinstance(value, VersionState):
            raise TypeError("versions maps version numbers to VersionState records")
        self._changes[version] = value

    def __delitem__(self, version: int) -> None:
        raise TypeError("MetadataStore.update cannot remove versions; use purge_version")

    def __contains__(self, version: object) -> bool:
        if version in self._changes:
            return True
        if isinstance(version, bool) or not isinstance(version, int):
            return False
        return self._stored(version) is not None

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(set(self._numbers()) | set(self._changes)))

    def __len__(self) -> int:
        return len(set(self._numbers()) | set(self._changes))

    def items(self) -> list[tuple[int, VersionState]]:  # type: ignore[override]  # a list, not an ItemsView
        numbers = sorted(set(self._numbers()) | set(self._changes))
        self._fetch(v for v in numbers if v not in self._changes)  # one batch, not one read each
        # a view read outside a store's atomic step (get_state_view) can see a number that another
        # writer purges before its entry is loaded: that version is gone, not an error
        return [(v, self[v]) for v in numbers if v in self._changes or self._base.get(v) is not None]

    def values(self) -> list[VersionState]:  # type: ignore[override]  # a list, not a ValuesView
        return [vs for _, vs in self.items()]

    def holders(self, stage: Stage) -> list[int]:
        """Numbers of the versions in ``stage``, assignments included, ascending."""
        found = set(self._holders(Stage(stage)))
        for v, vs in self._changes.items():
            if Stage(vs.stage) == Stage(stage):
                found.add(v)
            else:
                found.discard(v)
        return sorted(found)

    def changed(self) -> dict[int, VersionState]:
        """The assigned entries that differ from what is stored (a version that does not exist
        is included: the store refuses it)."""
        self._fetch(self._changes)
        return {v: vs for v, vs in self._changes.items() if vs != self._base[v]}

    def added(self) -> list[int]:
        """Assigned numbers that are not stored versions."""
        self._fetch(self._changes)
        return sorted(v for v in self._changes if self._base[v] is None)

    def __deepcopy__(self, memo: dict[int, object] | None = None) -> VersionView:
        twin = VersionView.__new__(VersionView)
        twin._load, twin._holders, twin._numbers = self._load, self._holders, self._numbers
        twin._base = self._base  # loaded entries are frozen records: shared
        twin._changes = dict(self._changes)
        return twin

    def __eq__(self, other: object) -> bool:
        if isinstance(other, VersionView) and other._base is self._base:
            return self.changed() == other.changed() and self._changes.keys() == other._changes.keys()
        return dict(self.items()) == dict(other.items()) if isinstance(other, Mapping) else NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"VersionView(loaded={sorted(v for v, vs in self._base.items() if vs)}, assigned={sorted(self._changes)})"
        )


def version_changes(old: ModelState, new: ModelState) -> dict[int, VersionState]:
    """The version entries an update changed, checked: no version added or removed, no alias
    pointing at a version that does not exist. Reads only what the update touched when
    ``new.versions`` is the store's :class:`VersionView` (a plain mapping is compared in full)."""
    versions = new.versions
    if isinstance(versions, VersionView):
        added = versions.added()
        if added:
            raise ValueError(f"MetadataStore.update cannot add versions ({added}); use add_version")
        changed = versions.changed()
    else:
        before = dict(old.versions.items())
        added = sorted(set(versions) - set(before))
        if added:
            raise ValueError(f"MetadataStore.update cannot add versions ({added}); use add_version")
        if set(before) - set(versions):
            raise ValueError("MetadataStore.update cannot remove versions; use purge_version")
        changed = {v: vs for v, vs in versions.items() if vs != before[v]}
    if new.aliases != old.aliases:
        for alias, v in new.aliases.items():
            if old.aliases.get(alias) != v and v not in versions:
                raise ValueError(f"alias {alias!r} points at version {v}, which does not exist")
    return changed


class MetadataStore(abc.ABC):
    """Models, versions, their mutable state and the per-model audit chain.

    Guarantees every implementation must give (and the conformance suite checks):

    - version numbers are allocated atomically, 1, 2, 3... per model, never reused,
      also after :meth:`purge_version`;
    - a change and its audit events are committed together or not at all;
    - an event's time is stamped inside the atomic step and never runs backwards within a
      model's chain: a draft whose ``time`` was not set explicitly gets
      ``max(now, previous event's time)``; an explicitly set time (a replay, which must keep
      its original time so the hashes match) earlier than the previous event's is refused
      with InvalidInputError (see :func:`event_time`);
    - nothing is committed that the store cannot read back: records are serialised and
      checked before the transaction commits;
    - :meth:`update` applies ``fn`` to the latest state atomically: two concurrent
      updates never both see the same state and both commit;
    - the audit chain of a model is gap-free and hash-linked, and the model's head
      (last sequence and hash) is stored with it so that a deleted tail is detectable;
    - ``ModelState.extensions`` (any JSON) is persisted with the state;
    - names starting with ``_`` are reserved for registry-internal documents (such as
      ``_registry``, which holds registry-wide settings): they are never valid user model
      names, can be created and updated like models, and are hidden from
      :meth:`list_models`, :meth:`iter_all_versions`, :meth:`search` and
      ``list_events(None)``.
    """

    RESERVED_PREFIX = "_"

    url: str = ""

    # -- models ------------------------------------------------------------
    @abc.abstractmethod
    def create_model(self, model: RegisteredModel, event: EventDraft) -> RegisteredModel:
        """Create a model; raise AlreadyExistsError if the name is taken."""

    @abc.abstractmethod
    def get_model(self, name: str) -> RegisteredModel:
        """Return a model or raise ModelNotFound."""

    @abc.abstractmethod
    def list_models(self) -> list[RegisteredModel]:
        """All models, sorted by name."""

    # -- versions ----------------------------------------------------------
    @abc.abstractmethod
    def add_version(
        self,
        draft: VersionDraft,
        event: EventDraft,
        *,
        create: tuple[RegisteredModel, EventDraft] | None = None,
    ) -> ModelVersion:
        """Allocate the next version number of ``draft.name`` and store the version
        and ``event`` (whose ``version`` the store fills in) in one atomic step.

        If the model does not exist: with ``create`` (its record and ``create_model``
        event) the model is created in the same atomic step, its event sealed before
        the version's, so a failure leaves neither; without it raise ModelNotFound.
        ``create`` is ignored when the model exists."""

    @abc.abstractmethod
    def get_version(self, name: str, version: int) -> ModelVersion:
        """Return one version or raise VersionNotFound (ModelNotFound for an unknown model)."""

    @abc.abstractmethod
    def list_versions(self, name: str) -> list[ModelVersion]:
        """All live versions of a model, ascending. Raise ModelNotFound for an unknown model."""

    @abc.abstractmethod
    def purge_version(self, name: str, version: int, event: EventDraft | PurgeFn) -> None:
        """Delete a version's record and state (and the aliases naming it); its number stays
        reserved. Raise VersionNotFound if it is not live.

        ``event`` is the purge event, or a :data:`PurgeFn` that the store calls with the
        current state inside its atomic step (under its lock, or again after a lost
        compare-and-swap) to check a precondition and build the event; if it raises,
        nothing is written."""

    def iter_all_versions(self) -> Iterator[ModelVersion]:
        """Every live version of every model (used by search, gc and verify)."""
        for model in self.list_models():
            yield from self.list_versions(model.name)

    def search(self, query: Query, order_by: list[tuple[str, bool]], limit: int | None) -> list[ModelVersion]:
        """Versions matching a parsed :class:`modelreg.query.Query`.

        The default evaluates the query in Python over :meth:`iter_all_versions`;
        stores with an index override it and must return the same results.
        """
        from ..query import evaluate_in_python

        return evaluate_in_python(self.iter_all_versions(), query, order_by, limit)

    # -- mutable state -------------------------------------------------------
    @abc.abstractmethod
    def get_state(self, name: str) -> ModelState:
        """The current mutable state of a model (raise ModelNotFound)."""

    def get_state_view(self, name: str) -> ModelState:
        """The model's state for reading a few parts of it: description, tags, aliases and
        extensions as they are now, and ``versions`` as a :class:`VersionView` that reads a
        version (or a stage's holders) when asked, so the cost does not grow with the number of
        versions. Not one snapshot: use :meth:`get_state` (or :meth:`update`) for that. The
        default returns :meth:`get_state`; stores override it (raise ModelNotFound)."""
        return self.get_state(name)

    def resolve(self, name: str, *, stage: str | None = None, alias: str | None = None) -> int | None:
        """The version number an unnumbered reference points at: the highest live version in
        ``stage``, the version ``alias`` points at, or (neither given) the latest live version;
        None when there is none. Raise ModelNotFound for an unknown model.

        The default reads :meth:`get_state`; stores override it with a cheaper lookup
        (``get_version("churn@production")`` calls it on every read).
        """
        state = self.get_state(name)
        if stage is not None:
            holders = state.holders(stage)
            return holders[-1] if holders else None
        if alias is not None:
            return state.aliases.get(alias)
        return max(state.versions) if state.versions else None

    @abc.abstractmethod
    def update(self, name: str, fn: UpdateFn) -> ModelState:
        """Apply ``fn`` to the current state atomically and return the new state.

        ``fn`` may be called more than once (optimistic stores retry it on
        conflict), so it must not have side effects. If it raises, nothing is
        written. Only ``description``, ``tags``, ``owner``, ``aliases`` and the
        ``versions`` entries of existing versions may change.

        The cost must not grow with the number of versions: hand ``fn`` a state whose
        ``versions`` is a :class:`VersionView` (the model's head, tags, aliases and
        extensions read whole; a version's entry read when ``fn`` reads it; stage holders
        from an index), and write only what :func:`version_changes` returns. The
        conformance suite counts what an update reads and writes.
        """

    # -- audit -----------------------------------------------------------------
    @abc.abstractmethod
    def list_events(
        self, name: str | None = None, *, after: int = 0, actions: Collection[str] | None = None
    ) -> list[AuditEvent]:
        """Audit events of one model (oldest first), or of all user models in commit order.

        For one model, ``after`` skips events up to that sequence number (a reader of the tail
        of the chain pays for the tail only), and ``actions`` keeps only events with those
        actions (an index lookup where the store has one: rollback asks for the stage entries
        of a model without reading its registrations)."""

    @abc.abstractmethod
    def audit_head(self, name: str) -> tuple[int, str]:
        """The sequence number and hash of the model's last event, as recorded with the model."""

    # -- usage log ----------------------------------------------------------------
    @abc.abstractmethod
    def record_usage(self, record: UsageRecord) -> None:
        """Append one usage record (a fetch or load of a version) to the usage log.

        The log is kept apart from the model's state and audit chain: appending never conflicts
        with writers of the model, and a record is never changed afterwards. The model need not
        be checked (a serving process may hold read-only credentials for everything else)."""

    @abc.abstractmethod
    def list_usage(self, name: str, version: int | None = None, *, limit: int | None = None) -> list[UsageRecord]:
        """Usage records of a model (of one version, if given), oldest first; with ``limit``, the
        newest ``limit`` of them. An empty list when nothing was recorded."""

    def trim_usage(self, name: str, before: datetime) -> int:
        """Remove the usage records of a model whose ``time`` is earlier than ``before`` (retention's
        ``trim_usage_after_days``); returns how many were removed. Later records, and the model's
        state and audit chain, are untouched; a model without records removes nothing (0).

        Optional for third-party stores: the default raises NotImplementedError, and retention
        then reports that this store cannot trim its usage log."""
        raise NotImplementedError(f"{type(self).__name__} cannot trim its usage log")

    def close(self) -> None:  # noqa: B027 - optional: a store without connections keeps this one
        """Release connections; the store must not be used afterwards."""


@dataclass(frozen=True)
class BlobInfo:
    digest: str
    size: int
    modified: datetime | None


@dataclass(frozen=True)
class PartialUpload:
    """A leftover of an interrupted upload removed by :meth:`ArtifactStore.cleanup_partial`."""

    name: str
    size: int
    """Bytes it held (0 where the store cannot tell cheaply)."""


@dataclass(frozen=True)
class StoredBlob:
    """What :meth:`ArtifactStore.put_file_hashed` stored."""

    digest: str
    """``sha256:<hex>`` of the bytes stored."""
    size: int
    created: bool
    """True if this call created the blob; False if it was stored already (reused, or replaced
    because it failed verification) or another writer published it first."""


class ArtifactStore(abc.ABC):
    """Content-addressed blobs: ``sha256:<hex>`` digest -> bytes.

    Writes publish atomically: a reader sees a whole blob or none. :meth:`put_file`
    does not hash: the caller passes the digest it computed, and downloads are
    verified by the caller (see :meth:`modelreg.Registry.download`).
    :meth:`put_file_hashed` ("store this file and tell me its digest") returns the
    digest of what it stored: a store that can hash the bytes as it writes them
    (:attr:`hashes_on_put`) reads the file once, the default hashes it, then calls
    :meth:`put_file`.

    Repair: a stored blob whose content does not match its digest ("fails
    verification") is replaced by the next :meth:`put_file` of that content. A store
    must do so at least for a digest flagged with :meth:`mark_suspect` (the Registry
    flags what ``verify()`` or a download found damaged); it may check more, for
    instance re-hash every stored copy where that is cheap.
    """

    url: str = ""

    @abc.abstractmethod
    def exists(self, digest: str) -> bool:
        """True if the blob is stored."""

    @abc.abstractmethod
    def put_file(self, digest: str, path: str | os.PathLike[str], *, progress: ProgressFn | None = None) -> None:
        """Store a local file under ``digest``, atomically.

        Deduplication: an intact stored blob is reused (and :meth:`touch` ed), not uploaded
        again. A stored blob that fails verification is replaced: at least one flagged with
        :meth:`mark_suspect` (which the store then may un-flag), or one of the wrong size.
        """

    hashes_on_put: bool = False
    """True if :meth:`put_file_hashed` hashes the bytes as it writes them, reading the file once;
    ``Registry.register`` then stores big files with it instead of hashing them first."""

    def put_file_hashed(self, path: str | os.PathLike[str], *, progress: ProgressFn | None = None) -> StoredBlob:
        """Store a local file under the digest of its content, atomically; return the digest and
        size of the bytes stored and whether this call created the blob.

        Deduplication and repair as in :meth:`put_file`. The default hashes the file (progress
        phase ``hash``), then calls :meth:`put_file` (phase ``upload``): two reads, and the digest
        is that of the stored bytes only if the file did not change in between (a caller checks
        that, for instance by comparing the file's stat before and after). A store that hashes the
        bytes it writes overrides it (one read of the file, the digest always that of the stored
        bytes, progress reported as ``upload``) and sets :attr:`hashes_on_put`.
        """
        from ..hashing import sha256_file

        digest, size = sha256_file(path, progress=progress)
        created = not self.exists(digest)
        self.put_file(digest, path, progress=progress)
        return StoredBlob(digest, size, created)

    @abc.abstractmethod
    def put_bytes(self, digest: str, data: bytes) -> None:
        """Store small content under ``digest``."""

    @abc.abstractmethod
    def open(self, digest: str) -> BinaryIO:
        """Open a blob for streaming reads; raise BlobNotFound if absent."""

    @abc.abstractmethod
    def size(self, digest: str) -> int:
        """Stored size in bytes; raise BlobNotFound if absent."""

    @abc.abstractmethod
    def delete(self, digest: str) -> None:
        """Remove a blob; a missing blob is not an error."""

    @abc.abstractmethod
    def iter_blobs(self) -> Iterator[BlobInfo]:
        """Every stored blob (for gc and verify)."""

    def get_file(self, digest: str, dest: str | os.PathLike[str], *, progress: ProgressFn | None = None) -> None:
        """Copy a blob to a local path (unverified; the Registry verifies)."""
        from ..hashing import CHUNK

        total = self.size(digest)
        done = 0
        with self.open(digest) as src, open(dest, "wb") as out:
            while True:
                chunk = src.read(CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress("download", done, total)

    def touch(self, digest: str) -> None:  # noqa: B027 - optional: stores without times keep this one
        """Mark a blob as recently used, so gc's grace period protects it (best effort)."""

    def mark_suspect(self, digest: str, suspect: bool = True) -> None:
        """Flag the stored blob ``digest`` as failing verification (``suspect=False`` clears the flag).

        The Registry calls it when ``verify()`` or a download finds the blob damaged, and with
        ``suspect=False`` when ``verify()`` finds it intact. The next :meth:`put_file` of that
        content then replaces the blob instead of reusing it. Flagging a digest that is not
        stored, or flagging twice, is harmless. Raise InvalidInputError for a malformed digest;
        never raise for a failure to record the flag (best effort: a lost flag only means the
        damage is found again by the next ``verify()``).

        The default keeps the flags in memory, on this instance; stores whose blobs are
        expensive to re-check should persist them so that another process sees them (see
        :class:`modelreg.stores.artifacts.FsspecArtifactStore`).
        """
        from ..hashing import check_digest

        flags: set[str] = self.__dict__.setdefault("_suspect_digests", set())
        if suspect:
            flags.add(check_digest(digest))
        else:
            flags.discard(check_digest(digest))

    def is_suspect(self, digest: str) -> bool:
        """True if ``digest`` is flagged by :meth:`mark_suspect` (for :meth:`put_file`)."""
        return digest in self.__dict__.get("_suspect_digests", ())

    def cleanup_partial(self, older_than: datetime) -> list[PartialUpload]:
        """Remove leftovers of interrupted uploads started before ``older_than``; return what was
        removed, each with its size (0 where the store cannot tell cheaply).

        Raise (a ModelregError, or OSError) if the cleanup fails: ``Registry.gc`` reports the
        failure in ``GcReport.partials_error`` and logs it, it does not hide it. (A store written
        for the earlier contract may return plain names: gc counts each with size 0.)
        """
        return []

    def close(self) -> None:  # noqa: B027 - optional, as MetadataStore.close
        """Release resources."""


def event_time(draft: EventDraft, previous: datetime | None, now: datetime | None = None) -> EventDraft:
    """``draft`` with the time a store records for it, after an event stamped ``previous``.

    A draft whose ``time`` was not set explicitly is stamped ``now`` (default: the current time),
    inside the store's atomic step, and never earlier than ``previous``; an explicit time (a
    replay keeps the original one, so the hashes still match) earlier than ``previous`` is refused.
    """
    from ..errors import InvalidInputError
    from ..models import utcnow

    if "time" in draft.model_fields_set:
        if previous is not None and draft.time < previous:
            raise InvalidInputError(
                f"event time {draft.time.isoformat()} ({draft.action}) is earlier than the model's previous "
                f"event at {previous.isoformat()}; audit times never run backwards"
            )
        return draft
    now = utcnow() if now is None else now
    return draft.model_copy(update={"time": now if previous is None or now >= previous else previous})


def stamp_events(drafts: list[EventDraft], previous: datetime | None) -> list[EventDraft]:
    """:func:`event_time` for the drafts of one commit: they share one time (the events of one
    change, such as a promotion and the displacement it causes, happen at the same moment)."""
    from ..models import utcnow

    now = utcnow()
    out = []
    for draft in drafts:
        draft = event_time(draft, previous, now)
        previous = draft.time
        out.append(draft)
    return out
