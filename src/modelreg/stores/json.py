"""``JSONMetadataStore``: registry metadata as JSON documents on any fsspec filesystem.

A registry shared through nothing but a bucket (S3, GCS, Azure Blob), a
shared folder (``file://``) or memory. No server, no lock service: safety
comes from the two conditional writes every backend offers (see
:mod:`modelreg.stores._conditional`), create-if-absent and compare-and-swap.

Layout under the store's root (``<registry>/metadata``)::

    format.json                       {"format": "modelreg-json", "version": 2, "registry_id": ..., "pack_size": 64}
    models/<model>.json               the model's state document (compare-and-swap)
    models/<model>/versions/<n>.json  tombstone of purged version n (format 1: also written
                                      when n is registered: allocation + immutable record)
    models/<model>/events/<seq>.json  sealed audit event (create-if-absent), hash-chained
    models/<model>/packs/<k>.json     records of versions k*P+1 .. (k+1)*P (compaction, P = pack_size)

``<model>`` is the model name with ``/`` written as ``~`` (``fraud/churn`` ->
``fraud~churn``), so one folder listing of ``models/`` shows every model's
state document with its etag.

The state document holds everything mutable about a model: description,
tags, owner, the per-version stage/tags/description/logged metrics, aliases,
``extensions``, ``last_version``, the audit head (sequence, hash and time), the
records of versions not yet packed (``tail``), and ``pending``: the sealed
events (and purge tombstones) of the latest commits whose own documents may
not be written yet. Unknown fields in any document are kept when rewritten.

In a registry of format 2 the state document is *sparse* (``"sparse": true``):
``versions`` holds an entry only for a version whose state changed since it
was registered (a version without one is experimental, with the tags and
description of its record), and ``purged`` lists the purged numbers; the live
versions are 1..``last_version`` minus those. A change then reads and writes a
document whose size grows with the versions that were promoted, tagged or
described, not with every registration. A registry created in format 1 keeps
dense documents (an entry per live version), which format-1 clients read; a
format-1 client refuses a format-2 registry (SchemaVersionError).

Protocol
--------

- **Update** (``update``, ``purge_version``): read the state with its etag,
  apply the change, seal its audit events into ``pending``, and swap the
  document in with compare-and-swap. The swap is the commit point: the change
  and its events become visible together. A lost swap re-reads and retries at
  once; after a second loss it pauses (random, growing, at most
  ``BACKOFF_MAX``) and reads again, so that a swap always follows its read.
  The committer then writes its event documents. Another writer leaves them
  in ``pending`` (readers read them there) until they are ``PENDING_EVENTS``
  events old, then writes out any still missing, so a committer that died
  loses nothing and writers do not write each other's events again (format 1:
  every commit writes out all pending items first, as format-1 clients do).
- **Register** (``add_version``), format 2: a change like the others; the
  record joins the state's ``tail`` as number ``last_version + 1`` in the
  same swap, which both numbers and commits the version: numbers are
  consecutive, and a writer that dies before the swap leaves nothing. A full
  pack of committed records is written after the commit that fills it (by
  any writer that sees it missing, create-if-absent) and dropped from the
  tail by the next commit. Format 1: create ``versions/<n>.json`` with
  ``n = last_version + 1`` (create-if-absent; the loser of a race takes
  ``n + 1``), then commit into the state; a writer committing ``n`` while
  ``last_version < n - 1`` first commits the versions in between from their
  documents, so a registration whose writer died after creating its
  document is completed by the next one.
- **Purge** removes the version from the state (commit), then replaces its
  document with a tombstone and its record in a pack; the number stays taken.
- Every write carries a random token and the state remembers the last few,
  so a write whose response was lost (and was retried by the HTTP client) is
  recognised as ours instead of being applied twice.

Reads are consistent snapshots of the state document. Immutable documents
(packs, version records, sealed events) are cached in memory, and for remote
filesystems on local disk (``cache_dir``, default ``$MODELREG_CACHE_DIR`` or
``~/.cache/modelreg``), keyed by the registry's id and checked against the
etags a listing returns. ``list_models`` and ``search`` cost one listing of
``models/`` plus a read of each state document whose etag changed, plus any
pack not cached yet. ``search`` evaluates the query on the raw records with
the reference functions of :mod:`modelreg.query` (so its results equal
:func:`~modelreg.query.evaluate_in_python`) and validates ModelVersion records
only for the versions it returns.

A filesystem without conditional writes (anything other than local disk,
memory, S3, GCS and Azure) is read-only unless ``single_writer=True``. When a
store creates a registry it checks, once, that the object store really
enforces both conditions (some S3-compatible services accept and ignore them).
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import json
import logging
import os
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from ..errors import (
    AlreadyExistsError,
    BackendError,
    ConflictError,
    InvalidInputError,
    ModelNotFound,
    SchemaVersionError,
    VersionNotFound,
)
from ..models import (
    GENESIS_HASH,
    AuditEvent,
    EventDraft,
    ModelState,
    ModelVersion,
    RegisteredModel,
    Stage,
    VersionDraft,
    VersionState,
    utcnow,
)
from ..validation import MAX_EXTENSIONS_BYTES, check_json
from ._conditional import ObjectIO, PreconditionFailed, Read, io_for
from .base import MetadataStore, PurgeFn, UpdateFn, VersionView, stamp_events, version_changes

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "JSONMetadataStore"]

_T = TypeVar("_T")

FORMAT_NAME = "modelreg-json"
FORMAT_VERSION = 2
"""Version 2: new models keep sparse state documents (only the versions whose state changed since
registration, plus the purged numbers), so a change costs the same at any number of versions.
Registries created with version 1 keep dense documents, which version 1 clients can read; a
version 1 client refuses a version 2 registry with SchemaVersionError."""
DEFAULT_PACK_SIZE = 64
RECENT_WRITERS = 32
PENDING_EVENTS = 16
"""In a format 2 registry, how many events (counted back from the head) the state document may
keep pending for their own committer to write out (see ``JSONMetadataStore._flush_pending``)."""
CONTENTION_MEMORY = 2.0
"""Seconds after a refused state write during which a commit starts from a fresh read."""
BACKOFF_MAX = 0.25
"""Longest pause (seconds) between two attempts of a compare-and-swap that keeps losing; short, so
that a writer that lost several times in a row is not the one that waits longest."""
"""Seconds after a refused state write during which a commit starts from a fresh read."""

_log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*(?:/[A-Za-z0-9_][A-Za-z0-9._-]*)?$")


def _dumps(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


@dataclass(frozen=True)
class _Snap:
    """One read of a state document: raw bytes, parsed (read-only) dict, etag and listing stamp."""

    data: bytes
    doc: dict[str, Any]
    etag: str
    stamp: str | None


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _predicate(op: str, value: Any) -> Callable[[Any], bool]:
    """``lambda actual: modelreg.query._compare(actual, op, value)``, specialised for speed.

    Same rules as the reference: a missing value never matches; numbers (bools count as
    numbers, as in the reference) compare as floats with numbers, strings with strings, and
    mixed types never match. ``like`` and ``in`` use the reference function itself.
    """
    from ..query import _compare

    if op not in _OPERATORS:
        return lambda actual: _compare(actual, op, value)
    cmp = _OPERATORS[op]
    if isinstance(value, (int, float)):
        expected = float(value)
        return lambda actual: isinstance(actual, (int, float)) and cmp(float(actual), expected)
    if isinstance(value, str):
        return lambda actual: isinstance(actual, str) and cmp(actual, value)
    return lambda actual: _compare(actual, op, value)


class _Row:
    """A version as search sees it: the raw record and state, shaped like a ModelVersion for
    :func:`modelreg.query.field_value`, :func:`~modelreg.query.matches` and :func:`~modelreg.query.sort_key`
    (so searching rows gives exactly the reference results), without validating a ModelVersion."""

    __slots__ = ("_created", "aliases", "name", "record", "version", "vs")

    def __init__(self, name: str, version: int, record: dict[str, Any], vs: dict[str, Any], aliases: list[str]) -> None:
        self.name, self.version, self.record, self.vs, self.aliases = name, version, record, vs, aliases
        self._created: Any = None

    @property
    def stage(self) -> Stage:
        return Stage(self.vs.get("stage", "experimental"))

    @property
    def created_at(self) -> Any:
        if self._created is None:
            from datetime import datetime

            raw = str(self.record["created_at"])
            self._created = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith("Z") else raw)
        return self._created

    @property
    def created_by(self) -> Any:
        return self.record.get("created_by")

    @property
    def description(self) -> str:
        return self.vs.get("description") or ""

    @property
    def metrics(self) -> dict[str, Any]:
        return self.record.get("metrics") or {}

    @property
    def logged_metrics(self) -> dict[str, Any]:
        return self.vs.get("logged_metrics") or {}

    @property
    def params(self) -> dict[str, Any]:
        return self.record.get("params") or {}

    @property
    def tags(self) -> dict[str, Any]:
        return self.vs.get("tags") or {}

    @property
    def lineage(self) -> _Row:
        return self

    def model_dump(self, mode: str = "json") -> dict[str, Any]:  # as ``lineage.model_dump(mode="json")``
        return self.record.get("lineage") or {}


@dataclass
class _Rows:
    """The search rows of one state snapshot, with per-field columns computed on first use."""

    etag: str
    rows: list[_Row]
    columns: dict[str, list[Any]] = field(default_factory=dict)
    built: dict[int, ModelVersion] = field(default_factory=dict)

    def column(self, name: str) -> list[Any]:
        col = self.columns.get(name)
        if col is None:
            from ..query import field_value

            col = self.columns[name] = [field_value(r, name) for r in self.rows]  # type: ignore[arg-type]
        return col


@dataclass
class _Shared:
    """Process-wide caches, keyed by registry id, shared by every store instance."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    states: dict[tuple[str, str], _Snap] = field(default_factory=dict)
    records: dict[tuple[str, str], dict[int, dict[str, Any]]] = field(default_factory=dict)
    packs: set[tuple[str, str, int]] = field(default_factory=set)
    rows: dict[tuple[str, str], _Rows] = field(default_factory=dict)
    events: dict[tuple[str, str, int], tuple[str | None, AuditEvent]] = field(default_factory=dict)
    durable: set[tuple[str, str, str, int]] = field(default_factory=set)


_SHARED = _Shared()


@contextlib.contextmanager
def _bulk() -> Iterator[None]:
    """Pause the cyclic garbage collector while a search decodes and indexes many documents (a cold
    search of 10,000 versions allocates millions of objects, none in a reference cycle: the
    collections it triggers cost about a fifth of its time). Restored on exit, if it was on."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


_SINGLE_WRITER_LOCKS: dict[str, threading.RLock] = {}


def _default_cache_dir() -> Path:
    """``$MODELREG_CACHE_DIR``, else ``~/.cache/modelreg`` (the same place as the download cache)."""
    env = os.environ.get("MODELREG_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "modelreg"


class JSONMetadataStore(MetadataStore):
    """Metadata as JSON documents on any fsspec URL (see the module docs for the protocol).

    ``single_writer=True`` allows writing through a filesystem without
    conditional writes, promising that only this process writes.
    ``cache_dir`` holds cached immutable documents of remote registries
    (``False`` disables the disk cache). ``max_wait`` bounds how long an update
    keeps retrying under contention before raising ConflictError.
    ``pack_size`` (versions per pack document) applies only when this store
    creates the registry; afterwards ``format.json`` fixes it.
    """

    def __init__(
        self,
        url: str,
        *,
        storage_options: dict[str, Any] | None = None,
        single_writer: bool = False,
        cache_dir: str | os.PathLike[str] | bool | None = None,
        fs: Any = None,
        max_wait: float = 120.0,
        pack_size: int | None = None,
    ) -> None:
        from ._fs import filesystem_for

        if fs is None:
            fs, root = filesystem_for(url, storage_options)
        else:
            root = fs._strip_protocol(url)
        self.url = url
        self.fs = fs
        self.root = root.rstrip("/")
        self.io: ObjectIO = io_for(fs)
        self.single_writer = bool(single_writer)
        self.max_wait = float(max_wait)
        if pack_size is not None and (isinstance(pack_size, bool) or not isinstance(pack_size, int) or pack_size < 1):
            raise InvalidInputError(f"pack_size must be a positive integer, got {pack_size!r}")
        self._new_pack_size = pack_size or DEFAULT_PACK_SIZE
        self._cache_setting = cache_dir
        self._format: dict[str, Any] | None = None
        self._local_id = f"unformatted-{uuid.uuid4().hex}"
        self.conflicts: Counter[str] = Counter()
        """Lost compare-and-swaps ("state") and version numbers taken by another writer ("version")."""
        self._contention: dict[str, float] = {}  # model -> monotonic time of the last refused state write
        self._write_lock = _SINGLE_WRITER_LOCKS.setdefault(f"{self.io.protocol}:{self.root}", threading.RLock())
        self._load_format()

    def __repr__(self) -> str:
        return f"JSONMetadataStore({self.url!r})"

    @property
    def requests(self) -> int:
        """Object-store requests made so far by this store (reads, writes, listings)."""
        return sum(self.io.stats.values())

    # -- format ------------------------------------------------------------------------
    def _load_format(self) -> None:
        try:
            raw = self.io.read(f"{self.root}/format.json").data
        except FileNotFoundError:
            return
        except Exception as exc:
            raise self._fail("open", "format.json", exc) from exc
        self._format = self._check_format(raw)

    def _check_format(self, raw: bytes) -> dict[str, Any]:
        try:
            fmt = json.loads(raw)
        except ValueError:
            raise BackendError(f"{self.url}/format.json is not valid JSON; this is not a modelreg registry") from None
        if not isinstance(fmt, dict) or fmt.get("format") != FORMAT_NAME:
            raise BackendError(
                f"{self.url}/format.json does not describe a modelreg JSON registry; "
                "point modelreg at the registry root or an empty location"
            )
        version = fmt.get("version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise SchemaVersionError(
                f"the registry at {self.url!r} uses JSON format version {version}, newer than this modelreg "
                f"understands ({FORMAT_VERSION}); upgrade modelreg (pip install -U modelreg)"
            )
        return fmt

    def _ensure_format(self) -> None:
        if self._format is not None:
            return
        fmt = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "registry_id": uuid.uuid4().hex,
            "created_at": utcnow().isoformat(),
            "pack_size": self._new_pack_size,
        }
        path, data = f"{self.root}/format.json", _dumps(fmt)
        try:
            self.io.create(path, data)
        except FileExistsError:
            self._load_format()
            return
        except Exception as exc:
            raise self._fail("create", "format.json", exc) from exc
        if self.io.conditional:
            self._probe_conditions(path, data)
        self._format = fmt

    def _probe_conditions(self, path: str, data: bytes) -> None:
        """Once, when a registry is created: check that the object store enforces both conditions
        (some S3-compatible services accept and ignore them, which would silently lose updates).
        The probe rewrites identical bytes, so even a failed probe changes nothing."""
        advice = (
            "modelreg needs create-if-absent (If-None-Match) and compare-and-swap (If-Match / generation "
            "match) to keep concurrent writers safe; use a store that enforces them, keep the metadata in SQLite "
            "(Registry(metadata='sqlite:///...', artifacts=<this url>)), or open with single_writer=True"
        )
        try:
            self.io.create(path, data)
        except FileExistsError:
            pass
        else:
            raise BackendError(
                f"{self.url!r} accepted a second create-if-absent of format.json: it ignores If-None-Match. {advice}"
            )
        try:
            self.io.swap(path, data, self.io.bogus_etag)
        except PreconditionFailed:
            pass
        else:
            raise BackendError(
                f"{self.url!r} accepted a compare-and-swap with a wrong etag: it ignores If-Match. {advice}"
            )

    @property
    def _sparse_docs(self) -> bool:
        """New models get sparse state documents in a registry of format 2 or later."""
        return int((self._format or {}).get("version") or 1) >= 2

    @property
    def registry_id(self) -> str:
        return str(self._format["registry_id"]) if self._format else self._local_id

    @property
    def pack_size(self) -> int:
        return int((self._format or {}).get("pack_size") or DEFAULT_PACK_SIZE)

    # -- paths and errors --------------------------------------------------------------------
    @staticmethod
    def _enc(name: str) -> str:
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or ".." in name or len(name) > 256:
            raise InvalidInputError(f"invalid model name {name!r} for the JSON store")
        return name.replace("/", "~")

    @staticmethod
    def _dec(filename: str) -> str:
        return filename[: -len(".json")].replace("~", "/")

    def _state_path(self, name: str) -> str:
        return f"{self.root}/models/{self._enc(name)}.json"

    def _model_dir(self, name: str) -> str:
        return f"{self.root}/models/{self._enc(name)}"

    def _version_path(self, name: str, n: int) -> str:
        return f"{self._model_dir(name)}/versions/{n}.json"

    def _event_path(self, name: str, seq: int) -> str:
        return f"{self._model_dir(name)}/events/{seq}.json"

    def _pack_path(self, name: str, k: int) -> str:
        return f"{self._model_dir(name)}/packs/{k}.json"

    def _fail(self, action: str, what: str, exc: BaseException) -> BackendError:
        """The :class:`BackendError` subclass that says what went wrong (see ``_cloud.classify``)."""
        from ..errors import (
            AccessDeniedError,
            BackendBusyError,
            OutOfSpaceError,
            StorageNotFoundError,
            UnreachableError,
        )
        from ._cloud import classify

        cls, hint = {
            "space": (
                OutOfSpaceError,
                "The storage is full: free space on it (or raise the storage quota), then retry",
            ),
            "access": (
                AccessDeniedError,
                "Access was denied: check your credentials and permissions for this "
                "location, and that it is not read-only",
            ),
            "no_bucket": (StorageNotFoundError, "The bucket, container or folder does not exist: check the location"),
            "busy": (BackendBusyError, "The service is busy (throttling requests): retry later"),
            "network": (
                UnreachableError,
                "The service is unreachable or failing: check the endpoint, the network "
                "and the service status, then retry",
            ),
        }.get(classify(exc), (BackendError, "Check that the location exists and is reachable, and your credentials"))
        return cls(
            f"{self.io.protocol} JSON registry at {self.url!r} could not {action} {what}: "
            f"{type(exc).__name__}: {exc}. {hint}"
        )

    @staticmethod
    def _not_found(name: str) -> ModelNotFound:
        return ModelNotFound(f"no model named {name!r}; list models with `modelreg list`")

    def _require_writable(self) -> None:
        if not self.io.conditional and not self.single_writer:
            raise BackendError(
                f"the {self.io.protocol} filesystem of {self.url!r} has no conditional writes, so concurrent writers "
                "could overwrite each other's changes; use local disk, S3, GCS or Azure, or open the registry with "
                "single_writer=True if only one process ever writes to it"
            )

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        self._require_writable()
        if self.io.conditional:
            yield
        else:
            with self._write_lock:
                yield

    # -- disk cache (remote filesystems only) ------------------------------------------------
    def _cache_root(self) -> Path | None:
        if not self.io.remote or self._cache_setting is False or self._format is None:
            return None
        if self._cache_setting in (None, True):
            base = _default_cache_dir()
        else:  # a folder (False returned above; mypy does not narrow on ``in``)
            base = Path(os.fspath(cast("str | os.PathLike[str]", self._cache_setting)))
        return base / "json" / self.registry_id

    def _cache_get(self, rel: str) -> bytes | None:
        root = self._cache_root()
        if root is None:
            return None
        try:
            return (root / rel).read_bytes()
        except OSError:
            return None

    def _cache_put(self, rel: str, data: bytes) -> None:
        root = self._cache_root()
        if root is None:
            return
        path = root / rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError:
            pass

    def _cache_drop(self, rel: str) -> None:
        root = self._cache_root()
        if root is not None:
            with contextlib.suppress(OSError):
                (root / rel).unlink()

    # -- state documents ----------------------------------------------------------------------
    def _remember(
        self,
        name: str,
        data: bytes,
        etag: str,
        stamp: str | None,
        doc: dict[str, Any] | None = None,
        *,
        persist: bool = True,
    ) -> _Snap:
        """Cache a state document read (or just written: then ``doc`` is its parsed form, never mutated again)."""
        key = (self.registry_id, name)
        with _SHARED.lock:
            cur = _SHARED.states.get(key)
            if cur is not None and cur.etag == etag and cur.data == data:
                return cur
        if doc is None:
            try:
                doc = json.loads(data)
            except ValueError:
                raise BackendError(f"the state document of model {name!r} in {self.url!r} is not valid JSON") from None
        snap = _Snap(data=data, doc=doc, etag=etag, stamp=stamp)
        with _SHARED.lock:
            _SHARED.states[key] = snap
        if stamp is not None and persist:
            self._cache_put(f"states/{self._enc(name)}.json", _dumps({"etag": etag, "stamp": stamp}) + b"\n" + data)
        return snap

    def _fetch(self, name: str) -> _Snap:
        path = self._state_path(name)
        try:
            r = self.io.read(path)
        except FileNotFoundError:
            raise self._not_found(name) from None
        except Exception as exc:
            raise self._fail("read", f"the state of model {name!r}", exc) from exc
        return self._remember(name, r.data, r.etag, self.io.stamp_of(r))

    def _cached(self, name: str) -> _Snap | None:
        with _SHARED.lock:
            return _SHARED.states.get((self.registry_id, name))

    def _all_snaps(self) -> dict[str, _Snap]:
        """Current state documents of every model (reserved ones included), by name."""
        try:
            stamps = self.io.list_stamps(f"{self.root}/models")
        except Exception as exc:
            raise self._fail("list", "models", exc) from exc
        out: dict[str, _Snap] = {}
        to_read: dict[str, str] = {}
        for fname, stamp in stamps.items():
            name = self._dec(fname)
            try:
                self._enc(name)
            except InvalidInputError:
                continue
            snap = self._cached(name)
            if stamp is not None and snap is not None and snap.stamp == stamp:
                out[name] = snap
                continue
            if stamp is not None:
                disk = self._cache_get(f"states/{fname}")
                if disk is not None:
                    head, _, data = disk.partition(b"\n")
                    with contextlib.suppress(ValueError):
                        meta = json.loads(head)
                        if meta.get("stamp") == stamp:
                            out[name] = self._remember(name, data, meta["etag"], stamp, persist=False)
                            continue
            to_read[name] = f"{self.root}/models/{fname}"
        if to_read:
            if self.io.remote:
                # one request per changed document, run concurrently (etag from the same response)
                reads = self._read_many_with_etag(list(to_read.values()))
                for name, path in to_read.items():
                    if path in reads:
                        r = reads[path]
                        out[name] = self._remember(name, r.data, r.etag, self.io.stamp_of(r))
            else:
                for name, path in to_read.items():
                    try:
                        r = self.io.read(path)
                    except FileNotFoundError:
                        continue
                    out[name] = self._remember(name, r.data, r.etag, None)
        return out

    def _read_many_with_etag(self, paths: list[str]) -> dict[str, Any]:
        import asyncio

        from ._conditional import READ_CONCURRENCY

        io: Any = self.io

        async def all_() -> dict[str, Any]:
            sem = asyncio.Semaphore(READ_CONCURRENCY)
            out: dict[str, Any] = {}

            async def one(p: str) -> None:
                async with sem:
                    with contextlib.suppress(FileNotFoundError):
                        out[p] = await io._aread(p)

            await asyncio.gather(*(one(p) for p in paths))
            return out

        try:
            return cast("dict[str, Any]", io._run(all_))
        except Exception as exc:
            raise self._fail("read", "model states", exc) from exc

    # -- building public records -----------------------------------------------------------------
    @staticmethod
    def _live(doc: dict[str, Any]) -> list[int]:
        """Live version numbers, ascending. A sparse document (format 2) lists every number up to
        ``last_version`` except ``purged``; a dense one (format 1) has an entry per live version."""
        if doc.get("sparse"):
            purged = set(doc.get("purged") or ())
            return [n for n in range(1, int(doc.get("last_version", 0)) + 1) if n not in purged]
        return sorted(int(k) for k in doc.get("versions", {}))

    @staticmethod
    def _is_live(doc: dict[str, Any], n: int) -> bool:
        if doc.get("sparse"):
            return 1 <= n <= int(doc.get("last_version", 0)) and n not in set(doc.get("purged") or ())
        return str(n) in doc.get("versions", {})

    def _entry(self, name: str, doc: dict[str, Any], n: int) -> dict[str, Any] | None:
        """The mutable state of live version ``n`` as a dict: its entry, or (sparse documents)
        the state it was registered with; None if ``n`` is not live."""
        entry: dict[str, Any] | None = doc.get("versions", {}).get(str(n))
        if entry is not None:
            return entry
        if doc.get("sparse") and self._is_live(doc, n):
            return self._initial_vs(self._record(name, doc, n))
        return None

    def _model_from_doc(self, doc: dict[str, Any]) -> RegisteredModel:
        live = self._live(doc)
        entries = doc.get("versions", {})
        stages: dict[str, list[int]] = {}
        for v in live:
            entry = entries.get(str(v))
            stages.setdefault(str(entry.get("stage", "experimental")) if entry else "experimental", []).append(v)
        return RegisteredModel.model_validate(
            {
                **(doc.get("extra") or {}),
                "name": doc["name"],
                "description": doc.get("description") or "",
                "tags": doc.get("tags") or {},
                "owner": doc.get("owner"),
                "created_at": doc["created_at"],
                "updated_at": doc["updated_at"],
                "latest_version": live[-1] if live else None,
                "version_count": len(live),
                "stages": stages,
                "aliases": dict(sorted((doc.get("aliases") or {}).items())),
            }
        )

    def _state_from_doc(self, doc: dict[str, Any]) -> ModelState:
        name = doc["name"]
        return ModelState(
            name=name,
            description=doc.get("description") or "",
            tags=doc.get("tags") or {},
            owner=doc.get("owner"),
            versions={n: VersionState.model_validate(self._entry(name, doc, n)) for n in self._live(doc)},
            aliases=dict(doc.get("aliases") or {}),
            last_version=int(doc.get("last_version", 0)),
            extensions=doc.get("extensions") or {},
        )

    def _view_from_doc(self, doc: dict[str, Any]) -> ModelState:
        """The state an update function sees: a version's entry read (and validated) when asked,
        holders found from the entries (a sparse document only has the versions whose state
        changed since registration; the experimental ones are the live ones left over)."""
        entries: dict[str, Any] = doc.get("versions", {})
        name = doc["name"]

        def load(numbers: list[int]) -> dict[int, VersionState]:
            out = {}
            for v in numbers:
                entry = self._entry(name, doc, v)
                if entry is not None:
                    out[v] = VersionState.model_validate(entry)
            return out

        def holders(stage: Stage) -> list[int]:
            found = sorted(int(k) for k, e in entries.items() if e.get("stage", "experimental") == stage.value)
            if stage == Stage.EXPERIMENTAL and doc.get("sparse"):
                other = {int(k) for k, e in entries.items() if e.get("stage", "experimental") != stage.value}
                found = [n for n in self._live(doc) if n not in other]
            return found

        def numbers() -> list[int]:
            return self._live(doc)

        return ModelState.model_construct(
            name=doc["name"],
            description=doc.get("description") or "",
            tags=dict(doc.get("tags") or {}),
            owner=doc.get("owner"),
            versions=VersionView(load, holders, numbers),
            aliases={a: int(v) for a, v in (doc.get("aliases") or {}).items()},
            last_version=int(doc.get("last_version", 0)),
            extensions=doc.get("extensions") or {},
        )

    @staticmethod
    def _build(name: str, n: int, record: dict[str, Any], vs: dict[str, Any], aliases: list[str]) -> ModelVersion:
        data = dict(record)
        data.update(
            name=name,
            version=n,
            stage=vs.get("stage", "experimental"),
            tags=vs.get("tags") or {},
            description=vs.get("description") or "",
            logged_metrics=vs.get("logged_metrics") or {},
            updated_at=vs.get("updated_at"),
            aliases=aliases,
        )
        for k, v in vs.items():  # unknown per-version state fields of newer writers
            if k not in VersionState.model_fields:
                data.setdefault(k, v)
        return ModelVersion.model_validate(data)

    @staticmethod
    def _aliases_by_version(doc: dict[str, Any]) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for alias, v in sorted((doc.get("aliases") or {}).items()):
            out.setdefault(int(v), []).append(alias)
        return out

    # -- records: tail, packs, version documents ------------------------------------------------------
    def _records(self, name: str) -> dict[int, dict[str, Any]]:
        key = (self.registry_id, name)
        with _SHARED.lock:
            return _SHARED.records.setdefault(key, {})

    def _load_packs(self, wanted: Iterable[tuple[str, int]]) -> None:
        """Make sure the records of these packs are in memory (disk cache, then one concurrent fetch)."""
        rid = self.registry_id
        missing: dict[str, tuple[str, int]] = {}
        for name, k in wanted:
            if (rid, name, k) in _SHARED.packs:
                continue
            rel = f"packs/{self._enc(name)}/{k}.json"
            data = self._cache_get(rel)
            if data is not None and self._absorb_pack(name, k, data):
                continue
            missing[self._pack_path(name, k)] = (name, k)
        if not missing:
            return
        try:
            got = self.io.read_many(missing)
        except Exception as exc:
            raise self._fail("read", "version packs", exc) from exc
        for path, data in got.items():
            name, k = missing[path]
            if self._absorb_pack(name, k, data):
                self._cache_put(f"packs/{self._enc(name)}/{k}.json", data)

    def _absorb_pack(self, name: str, k: int, data: bytes) -> bool:
        try:
            pack = json.loads(data)
            records = {int(n): r for n, r in pack["records"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            return False
        recs = self._records(name)
        with _SHARED.lock:
            for n, r in records.items():
                recs.setdefault(n, r)
            _SHARED.packs.add((self.registry_id, name, k))
        return True

    def _record(self, name: str, doc: dict[str, Any], n: int) -> dict[str, Any]:
        tail: dict[str, dict[str, Any]] = doc.get("tail") or {}
        if str(n) in tail:
            return tail[str(n)]
        recs = self._records(name)
        if n in recs:
            return recs[n]
        if n <= int(doc.get("packed", 0)):
            self._load_packs([(name, (n - 1) // self.pack_size)])
            if n in recs:
                return recs[n]
        # not in its pack: a registry of format 1, whose version documents hold the records too
        rel = f"versions/{self._enc(name)}/{n}.json"
        data = self._cache_get(rel)
        if data is None:
            try:
                data = self.io.read(self._version_path(name, n)).data
            except FileNotFoundError:
                raise BackendError(
                    f"the record of {name}/{n} is missing from {self.url!r} although the model lists it; "
                    "the registry was modified outside modelreg (run `modelreg verify`)"
                ) from None
            except Exception as exc:
                raise self._fail("read", f"version {name}/{n}", exc) from exc
        vdoc = json.loads(data)
        if vdoc.get("purged") or "record" not in vdoc:
            raise BackendError(f"the record of {name}/{n} in {self.url!r} was purged but the model still lists it")
        self._cache_put(rel, data)
        with _SHARED.lock:
            recs.setdefault(n, vdoc["record"])
        return cast("dict[str, Any]", vdoc["record"])

    def _versions_of(self, snap: _Snap) -> list[ModelVersion]:
        self._prefetch([snap])
        entry = self._rows(snap)
        return [self._materialize(entry, row) for row in entry.rows]

    def _prefetch(self, snaps: Iterable[_Snap]) -> None:
        """Fetch, in one concurrent batch, every pack the given models need and do not have."""
        wanted: list[tuple[str, int]] = []
        for snap in snaps:
            doc = snap.doc
            with _SHARED.lock:
                hit = _SHARED.rows.get((self.registry_id, doc["name"]))
            if hit is not None and hit.etag == snap.etag:
                continue
            live = [n for n in self._live(doc) if n <= int(doc.get("packed", 0))]
            wanted.extend((doc["name"], k) for k in sorted({(n - 1) // self.pack_size for n in live}))
        self._load_packs(wanted)

    # -- committing -------------------------------------------------------------------------------
    def _flush_pending(self, name: str, doc: dict[str, Any]) -> None:
        """Write out the pending items of earlier commits (idempotent) and take them out of ``pending``.

        Each committer writes its own events right after its commit (see :meth:`_after_commit`).
        In a registry of format 2, another writer leaves a pending event it does not know to be
        written in the state document (readers take it from there) until it is
        ``PENDING_EVENTS`` events old: writers that share a model do not write each other's events
        again, and a writer that died before writing its own gets them written by the next ones.
        A format 1 registry writes out every pending event at the next commit, as older clients do.
        """
        pending = doc.get("pending") or {}
        head = int((doc.get("head") or {}).get("seq", 0))
        lazy = self._sparse_docs
        keep = []
        for ev in pending.get("events", []):
            seq = int(ev["seq"])
            if (self.registry_id, name, "event", seq) in _SHARED.durable:
                continue
            if lazy and head - seq < PENDING_EVENTS:
                keep.append(ev)
                continue
            self._write_event(name, ev)
        for n in pending.get("tombstones", []):
            self._write_tombstone(name, int(n), doc)
        doc["pending"] = {"events": keep, "tombstones": []}

    def _write_event(self, name: str, ev: dict[str, Any]) -> None:
        key = (self.registry_id, name, "event", int(ev["seq"]))
        if key in _SHARED.durable:
            return
        with contextlib.suppress(FileExistsError):
            self.io.create(self._event_path(name, int(ev["seq"])), _dumps(ev))
        with _SHARED.lock:
            _SHARED.durable.add(key)

    def _write_tombstone(self, name: str, n: int, doc: dict[str, Any]) -> None:
        key = (self.registry_id, name, "tombstone", n)
        if key in _SHARED.durable:
            return
        self.io.put(
            self._version_path(name, n),
            _dumps(
                {
                    "kind": "modelreg-version",
                    "name": name,
                    "version": n,
                    "purged": True,
                }
            ),
        )
        size = self.pack_size
        if n <= int(doc.get("packed", 0)) or (
            self._sparse_docs and ((n - 1) // size + 1) * size <= int(doc.get("last_version", 0))
        ):
            # the pack of n exists, or may (format 2 writes a full pack before the state drops its records)
            self._prune_pack(name, (n - 1) // size, {str(v) for v in self._live(doc)})
        self._cache_drop(f"versions/{self._enc(name)}/{n}.json")
        with _SHARED.lock:
            _SHARED.durable.add(key)
            self._records(name).pop(n, None)

    def _prune_pack(self, name: str, k: int, live: set[str]) -> None:
        """Remove records of versions that are no longer live from pack ``k`` (compare-and-swap loop)."""
        path = self._pack_path(name, k)
        for attempt in range(1000):
            try:
                r = self.io.read(path)
            except FileNotFoundError:
                return
            pack = json.loads(r.data)
            keep = {n: rec for n, rec in pack.get("records", {}).items() if n in live}
            if keep == pack.get("records", {}):
                break
            pack["records"] = keep
            try:
                self.io.swap(path, _dumps(pack), r.etag)
                break
            except PreconditionFailed:
                time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))
        self._cache_drop(f"packs/{self._enc(name)}/{k}.json")

    def _seal(self, name: str, doc: dict[str, Any], drafts: list[EventDraft]) -> None:
        head = doc.setdefault("head", {"seq": 0, "hash": GENESIS_HASH})
        seq, prev = int(head["seq"]), str(head["hash"])
        pending = doc.setdefault("pending", {"events": [], "tombstones": []})
        # the time of the head event (kept in the state document since 0.2; an older document
        # gives it through its pending events, if any)
        last = head.get("time") or next(
            (e.get("time") for e in reversed(pending.get("events", [])) if int(e.get("seq", 0)) == seq), None
        )
        previous = datetime.fromisoformat(last) if isinstance(last, str) else None
        for draft in drafts:
            if not isinstance(draft, EventDraft):
                raise TypeError(f"audit events must be EventDraft records, got {type(draft).__name__}")
        for draft in stamp_events(list(drafts), previous):  # on every attempt of the compare-and-swap loop
            seq += 1
            previous = draft.time
            ev = AuditEvent.chain(name, seq, prev, draft)
            prev = ev.hash
            pending["events"].append(ev.model_dump(mode="json"))
        doc["head"] = {"seq": seq, "hash": prev}
        if previous is not None:
            doc["head"]["time"] = _iso(previous)
        if drafts and previous is not None:
            doc["updated_at"] = _iso(previous)

    def _backoff(self, attempt: int) -> None:
        time.sleep(random.uniform(0, min(BACKOFF_MAX, 0.005 * 2 ** min(attempt, 10))))

    def _commit(
        self,
        name: str,
        mutate: Callable[[dict[str, Any]], tuple[_T, bool]],
        *,
        start: _Snap | None = None,
        fresh: bool = False,
    ) -> tuple[_Snap, _T]:
        """Read-modify-write of a model's state document with compare-and-swap.

        ``mutate(doc)`` edits a private copy of the document and returns
        ``(result, changed)``. The first attempt may use a cached snapshot (``start``, or the
        cache; ``fresh``: ``start`` was just read); if ``mutate`` raises on it, or decides
        nothing needs to change, the decision is re-checked on a fresh read before it counts.
        """
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self.max_wait
        snap = start if start is not None else self._cached(name)
        fresh = fresh and start is not None
        if snap is None or (not fresh and self._contended(name)):
            # another writer committed to this model a moment ago: a swap against the cached
            # snapshot would most likely be refused (a wasted write and then the read anyway)
            snap, fresh = self._fetch(name), True
        attempt = 0
        while True:
            doc = json.loads(snap.data)
            since = int((doc.get("head") or {}).get("seq", 0))
            try:
                self._flush_pending(name, doc)
                result, changed = mutate(doc)
            except (ModelNotFound, BackendError):
                raise
            except Exception:
                if fresh:
                    raise
                snap, fresh = self._fetch(name), True
                continue
            if not changed:
                if fresh:
                    return snap, result
                snap, fresh = self._fetch(name), True
                continue
            writers = [w for w in doc.get("writers", []) if w != token][-(RECENT_WRITERS - 1) :]
            doc["writers"] = [*writers, token]
            doc["revision"] = int(doc.get("revision", 0)) + 1
            data = _dumps(doc)
            try:
                etag = self.io.swap(self._state_path(name), data, snap.etag)
            except PreconditionFailed:
                current = self._fetch(name)
                if token in current.doc.get("writers", []):
                    snap = current  # our write landed; the response was lost and the request retried
                    break
                attempt += 1
                self.conflicts["state"] += 1
                self._contention[name] = time.monotonic()
                if time.monotonic() > deadline:
                    raise ConflictError(
                        f"model {name!r} kept changing under {attempt} attempts in {self.max_wait:.0f} s; "
                        "retry the operation (or raise max_wait)"
                    ) from None
                if attempt > 1:
                    # lost again: step back (randomly, growing), then read again, so that the next
                    # swap follows its read at once (sleeping between the two would leave the state
                    # the most time to change, and repeated losers would wait longest)
                    self._backoff(attempt)
                    current = self._fetch(name)
                snap, fresh = current, True
                continue
            except Exception as exc:
                raise self._fail("write", f"the state of model {name!r}", exc) from exc
            snap = self._remember(name, data, etag, self.io.stamp_of(Read(data, etag)), doc)
            break
        self._after_commit(name, snap.doc, since)
        return snap, result

    def _contended(self, name: str) -> bool:
        """Whether a write to this model's state was refused in the last ``CONTENTION_MEMORY`` seconds."""
        at = self._contention.get(name)
        return at is not None and time.monotonic() - at < CONTENTION_MEMORY

    def _after_commit(self, name: str, doc: dict[str, Any], since: int | None = None) -> None:
        """Write the committed pending items (the events after sequence number ``since`` only, when
        given: the ones this commit added); on failure the next writers do it."""
        pending = doc.get("pending") or {}
        events = [e for e in pending.get("events", []) if since is None or int(e["seq"]) > since]
        try:
            for ev in events:
                self._write_event(name, ev)
            for n in pending.get("tombstones", []):
                self._write_tombstone(name, int(n), doc)
        except Exception as exc:
            _log.debug("writing the committed events of %r failed (the next writer will): %s", name, exc)

    # -- models ------------------------------------------------------------------------------------
    def create_model(self, model: RegisteredModel, event: EventDraft) -> RegisteredModel:
        name = model.name
        self._enc(name)
        with self._writing():
            self._ensure_format()
            token = uuid.uuid4().hex
            doc = self._new_doc(model, token, self._sparse_docs)
            self._seal(name, doc, [event])
            data = _dumps(doc)
            try:
                etag = self.io.create(self._state_path(name), data)
            except FileExistsError:
                try:
                    current = self._fetch(name)
                except ModelNotFound:
                    current = None
                if current is None or token not in current.doc.get("writers", []):
                    raise AlreadyExistsError(f"model {name!r} exists already; register a new version instead") from None
                snap = current
            except Exception as exc:
                raise self._fail("write", f"the state of model {name!r}", exc) from exc
            else:
                snap = self._remember(name, data, etag, self.io.stamp_of(Read(data, etag)), doc)
            self._after_commit(name, snap.doc)
            return self._model_from_doc(snap.doc)

    @staticmethod
    def _new_doc(model: RegisteredModel, token: str, sparse: bool) -> dict[str, Any]:
        """The state document of a new model, before its create_model event is sealed; ``sparse``
        in a registry of format 2 or later (see FORMAT_VERSION)."""
        known = set(RegisteredModel.model_fields)
        return {
            "sparse": sparse,
            "purged": [],
            "kind": "modelreg-model",
            "name": model.name,
            "created_at": _iso(model.created_at),
            "updated_at": _iso(model.updated_at),
            "description": model.description,
            "tags": dict(model.tags),
            "owner": model.owner,
            "extra": {k: v for k, v in (model.model_extra or {}).items() if k not in known},
            "versions": {},
            "aliases": {},
            "last_version": 0,
            "extensions": {},
            "head": {"seq": 0, "hash": GENESIS_HASH},
            "pending": {"events": [], "tombstones": []},
            "packed": 0,
            "tail": {},
            "writers": [token],
            "revision": 1,
        }

    def get_model(self, name: str) -> RegisteredModel:
        return self._model_from_doc(self._fetch(name).doc)

    def list_models(self) -> list[RegisteredModel]:
        snaps = self._all_snaps()
        return [self._model_from_doc(snaps[n].doc) for n in sorted(snaps) if not n.startswith(self.RESERVED_PREFIX)]

    # -- versions ------------------------------------------------------------------------------------
    def _version_doc(self, name: str, n: int, record: dict[str, Any], event: EventDraft, token: str) -> bytes:
        # a time the caller did not set is stamped when the version is committed (by this writer or,
        # if it dies first, by the next one), so it is not kept here
        exclude = None if "time" in event.model_fields_set else {"time"}
        ev = event.model_copy(update={"version": n}).model_dump(mode="json", exclude=exclude)
        return _dumps(
            {"kind": "modelreg-version", "name": name, "version": n, "record": record, "event": ev, "writer": token}
        )

    def _initial_vs(self, record: dict[str, Any]) -> dict[str, Any]:
        return VersionState(
            stage=Stage.EXPERIMENTAL,
            tags=record.get("tags") or {},
            description=record.get("description") or "",
            updated_at=record.get("created_at"),
        ).model_dump(mode="json")

    def add_version(
        self,
        draft: VersionDraft,
        event: EventDraft,
        *,
        create: tuple[RegisteredModel, EventDraft] | None = None,
    ) -> ModelVersion:
        name = draft.name
        self._enc(name)
        with self._writing():
            snap: _Snap | None
            fresh = False
            try:
                snap = self._cached(name)
                if snap is None or self._contended(name):
                    snap, fresh = self._fetch(name), True
            except ModelNotFound:
                if create is None:
                    raise
                self._ensure_format()
                snap = None  # a first registration: the model is created with its first version
            record = draft.model_dump(mode="json")
            # what get_version will read back, checked before anything is written
            checked = self._build(name, 1, record, self._initial_vs(record), [])
            token = uuid.uuid4().hex
            if self._sparse_docs:
                mutate = self._direct_commit(name, record, event)
            else:
                mutate = self._allocate_then_commit(name, record, event, token, snap, create is not None)
            if snap is None and create is not None:
                committed, n = self._create_with_version(name, create, token, mutate)
            else:
                committed, n = self._commit(name, mutate, start=snap, fresh=fresh)
            if self._sparse_docs:
                self._write_full_packs(name, committed.doc)
        return checked.model_copy(update={"version": n})  # validated above; only the number was unknown

    def _direct_commit(
        self,
        name: str,
        record: dict[str, Any],
        event: EventDraft,
    ) -> Callable[[dict[str, Any]], tuple[int, bool]]:
        """Format 2: the version takes the next number in the state's compare-and-swap itself,
        which is the one commit point (its record rides in the state's ``tail`` until a pack
        holds it): one write per registration, and the loser of a race just tries again on
        the new state."""

        def mutate(doc: dict[str, Any]) -> tuple[int, bool]:
            n = int(doc.get("last_version", 0)) + 1
            doc.setdefault("tail", {})[str(n)] = record
            doc["last_version"] = n
            self._seal(name, doc, [event.model_copy(update={"version": n})])
            self._drop_packed(name, doc)
            return n, True

        return mutate

    def _allocate_then_commit(
        self,
        name: str,
        record: dict[str, Any],
        event: EventDraft,
        token: str,
        snap: _Snap | None,
        creating: bool,
    ) -> Callable[[dict[str, Any]], tuple[int, bool]]:
        """Format 1 (shared with older clients): allocate number n with a create-if-absent of
        ``versions/<n>.json`` (the loser of a race takes n + 1), then commit every allocated
        number up to n into the state, in order."""
        n = (int(snap.doc.get("last_version", 0)) if snap is not None else 0) + 1
        while True:
            path = self._version_path(name, n)
            try:
                self.io.create(path, self._version_doc(name, n, record, event, token))
                break
            except FileExistsError:
                try:
                    other = json.loads(self.io.read(path).data)
                except FileNotFoundError:
                    continue
                if other.get("writer") == token:
                    break  # our create landed; the response was lost and the request retried
                self.conflicts["version"] += 1
                try:
                    snap = self._fetch(name)
                except ModelNotFound:
                    if not creating:
                        raise
                    snap, n = None, n + 1  # taken by a first registration not committed (yet)
                    continue
                n = max(n + 1, int(snap.doc.get("last_version", 0)) + 1)
            except Exception as exc:
                raise self._fail("write", f"version {name}/{n}", exc) from exc

        def mutate(doc: dict[str, Any]) -> tuple[int, bool]:
            last = int(doc.get("last_version", 0))
            if n <= last:
                return n, False  # committed already, by a writer that reached a later number first
            drafts = []
            for k in range(last + 1, n + 1):
                if k == n:
                    rec, ev = record, event.model_copy(update={"version": n})
                else:
                    rec, ev = self._orphan(name, k)
                doc.setdefault("tail", {})[str(k)] = rec
                if not doc.get("sparse"):  # a sparse document keeps only changed entries
                    doc.setdefault("versions", {})[str(k)] = self._initial_vs(rec)
                drafts.append(ev)
            doc["last_version"] = n
            self._seal(name, doc, drafts)
            self._maybe_pack(name, doc)
            return n, True

        return mutate

    def _create_with_version(
        self,
        name: str,
        create: tuple[RegisteredModel, EventDraft],
        token: str,
        mutate: Callable[[dict[str, Any]], tuple[int, bool]],
    ) -> tuple[_Snap, int]:
        """Commit a first registration: one create-if-absent of the state document holding the
        model, its create_model event and the version. If another writer created the model
        first, commit the version into its document like any later version. Returns the
        committed state and the version's number."""
        doc = self._new_doc(create[0], token, self._sparse_docs)
        self._seal(name, doc, [create[1]])
        n, _ = mutate(doc)
        data = _dumps(doc)
        try:
            etag = self.io.create(self._state_path(name), data)
        except FileExistsError:
            current = self._fetch(name)
            if token in current.doc.get("writers", []):
                self._after_commit(name, current.doc)  # ours landed; the response was lost
                return current, n
            return self._commit(name, mutate, start=current, fresh=True)
        except Exception as exc:
            raise self._fail("write", f"the state of model {name!r}", exc) from exc
        snap = self._remember(name, data, etag, self.io.stamp_of(Read(data, etag)), doc)
        self._after_commit(name, snap.doc)
        return snap, n

    def _orphan(self, name: str, k: int) -> tuple[dict[str, Any], EventDraft]:
        """The record and register event of version ``k``, created but not yet committed by its writer."""
        try:
            vdoc = json.loads(self.io.read(self._version_path(name, k)).data)
        except FileNotFoundError:
            raise BackendError(
                f"version document {k} of {name!r} is missing in {self.url!r} although a later number was "
                "allocated; the registry was modified outside modelreg"
            ) from None
        if vdoc.get("purged") or "record" not in vdoc:
            raise BackendError(
                f"version document {k} of {name!r} in {self.url!r} is a tombstone but was never committed"
            )
        return vdoc["record"], EventDraft.model_validate(vdoc["event"])

    def _drop_packed(self, name: str, doc: dict[str, Any]) -> None:
        """Format 2: take out of the state's ``tail`` the records of full packs that are known to
        be written (by :meth:`_write_full_packs`, in this process or, seen, in another)."""
        size = self.pack_size
        tail = doc.setdefault("tail", {})
        while int(doc["last_version"]) - int(doc.get("packed", 0)) >= size:
            packed = int(doc.get("packed", 0))
            if (self.registry_id, name, "pack", packed // size) not in _SHARED.durable:
                break
            for i in range(packed + 1, packed + size + 1):
                tail.pop(str(i), None)
            doc["packed"] = packed + size

    def _pack_doc(self, name: str, packed: int, tail: dict[str, Any]) -> dict[str, Any]:
        """The pack after the first ``packed`` versions: the records of the next ``pack_size``
        numbers that ``tail`` holds (a purged number has none)."""
        first, last = packed + 1, packed + self.pack_size
        records = {str(i): tail[str(i)] for i in range(first, last + 1) if str(i) in tail}
        return {"kind": "modelreg-pack", "name": name, "first": first, "last": last, "records": records}

    def _write_full_packs(self, name: str, doc: dict[str, Any]) -> None:
        """Format 2, after a commit: write each full pack of committed records that the state
        still carries in its ``tail`` (create-if-absent: a pack another writer wrote holds the
        same committed records, less the ones purged since, which are pruned); the next commit
        drops them from the tail. A failure leaves them in the tail for the next writer."""
        size = self.pack_size
        packed, last = int(doc.get("packed", 0)), int(doc.get("last_version", 0))
        tail = doc.get("tail") or {}
        while last - packed >= size:
            k = packed // size
            key = (self.registry_id, name, "pack", k)
            if key not in _SHARED.durable:
                data = _dumps(self._pack_doc(name, packed, tail))
                try:
                    self.io.create(self._pack_path(name, k), data)
                except FileExistsError:
                    try:
                        self._prune_pack(name, k, {str(v) for v in self._live(doc)})
                    except Exception as exc:
                        _log.debug("checking pack %d of %r failed (the next writer will): %s", k, name, exc)
                        return
                except Exception as exc:
                    _log.debug("writing pack %d of %r failed (the next writer will): %s", k, name, exc)
                    return
                else:
                    self._absorb_pack(name, k, data)
                with _SHARED.lock:
                    _SHARED.durable.add(key)
            packed += size

    def _maybe_pack(self, name: str, doc: dict[str, Any]) -> None:
        size = self.pack_size
        while int(doc["last_version"]) - int(doc.get("packed", 0)) >= size:
            packed = int(doc.get("packed", 0))
            k = packed // size
            tail = doc.setdefault("tail", {})
            pack = self._pack_doc(name, packed, tail)
            records = pack["records"]
            data = _dumps(pack)
            path = self._pack_path(name, k)
            try:
                self.io.create(path, data)
            except FileExistsError:
                # written by a writer whose commit lost; it can only hold records purged since then
                self._prune_pack(name, k, set(records))
            except Exception as exc:
                raise self._fail("write", f"pack {k} of {name!r}", exc) from exc
            for i in range(packed + 1, packed + size + 1):
                tail.pop(str(i), None)
            doc["packed"] = packed + size
            self._absorb_pack(name, k, data)

    def get_version(self, name: str, version: int) -> ModelVersion:
        snap = self._fetch(name)
        doc = snap.doc
        vs = self._entry(name, doc, int(version))
        if vs is None:
            raise VersionNotFound(f"model {name!r} has no version {version}; list them with `modelreg versions {name}`")
        with _SHARED.lock:
            hit = _SHARED.rows.get((self.registry_id, name))
        if hit is not None and hit.etag == snap.etag and int(version) in hit.built:
            return hit.built[int(version)]
        aliases = self._aliases_by_version(doc).get(int(version), [])
        return self._build(name, int(version), self._record(name, doc, int(version)), vs, aliases)

    def list_versions(self, name: str) -> list[ModelVersion]:
        return list(self._versions_of(self._fetch(name)))

    def iter_all_versions(self) -> Iterator[ModelVersion]:
        snaps = self._all_snaps()
        users = [snaps[n] for n in sorted(snaps) if not n.startswith(self.RESERVED_PREFIX)]
        self._prefetch(users)
        for snap in users:
            yield from self._versions_of(snap)

    def _rows(self, snap: _Snap) -> _Rows:
        doc = snap.doc
        name = doc["name"]
        key = (self.registry_id, name)
        with _SHARED.lock:
            hit = _SHARED.rows.get(key)
        if hit is not None and hit.etag == snap.etag:
            return hit
        by_alias = self._aliases_by_version(doc)
        entries = doc.get("versions", {})
        rows = []
        for n in self._live(doc):
            record = self._record(name, doc, n)
            entry = entries.get(str(n))
            rows.append(
                _Row(name, n, record, entry if entry is not None else self._initial_vs(record), by_alias.get(n, []))
            )
        entry = _Rows(snap.etag, rows)
        with _SHARED.lock:
            _SHARED.rows[key] = entry
        return entry

    def search(self, query: Any, order_by: list[tuple[str, bool]], limit: int | None) -> list[ModelVersion]:
        """Same results as :func:`modelreg.query.evaluate_in_python` over :meth:`iter_all_versions`,
        evaluated on raw records with the reference comparison and sort functions; only the
        returned versions are built as ModelVersion records."""
        with _bulk():
            return self._search(query, order_by, limit)

    def _search(self, query: Any, order_by: list[tuple[str, bool]], limit: int | None) -> list[ModelVersion]:
        from ..query import DEFAULT_ORDER, sort_key

        tests = [_predicate(c.op, c.value) for c in query.clauses]
        snaps = self._all_snaps()
        users = [snaps[n] for n in sorted(snaps) if not n.startswith(self.RESERVED_PREFIX)]
        self._prefetch(users)
        found: list[tuple[_Rows, _Row]] = []
        for snap in users:
            entry = self._rows(snap)
            rows = entry.rows
            idx: Iterable[int] = range(len(rows))
            for clause, test in zip(query.clauses, tests, strict=True):
                if clause.field == "alias":
                    idx = [i for i in idx if any(test(a) for a in rows[i].aliases)]
                else:
                    col = entry.column(clause.field)
                    idx = [i for i in idx if test(col[i])]
            found.extend((entry, rows[i]) for i in idx)
        keys = [*order_by, *DEFAULT_ORDER]
        found.sort(key=lambda pair: sort_key(pair[1], keys))  # type: ignore[arg-type]
        if limit is not None:
            found = found[:limit]
        return [self._materialize(entry, row) for entry, row in found]

    def _materialize(self, entry: _Rows, row: _Row) -> ModelVersion:
        mv = entry.built.get(row.version)
        if mv is None:
            mv = entry.built[row.version] = self._build(row.name, row.version, row.record, row.vs, row.aliases)
        return mv

    def purge_version(self, name: str, version: int, event: EventDraft | PurgeFn) -> None:
        with self._writing():

            def mutate(doc: dict[str, Any]) -> tuple[None, bool]:
                key = str(version)
                if not self._is_live(doc, int(version)):
                    raise VersionNotFound(f"model {name!r} has no version {version}")
                # the caller's precondition, evaluated on the state this compare-and-swap replaces
                ev = event(self._view_from_doc(doc)) if callable(event) else event
                doc.setdefault("versions", {}).pop(key, None)
                if doc.get("sparse"):
                    doc.setdefault("purged", []).append(int(version))
                doc.setdefault("tail", {}).pop(key, None)
                doc["aliases"] = {a: v for a, v in (doc.get("aliases") or {}).items() if int(v) != int(version)}
                self._seal(name, doc, [ev.model_copy(update={"version": version})])
                doc["pending"].setdefault("tombstones", []).append(int(version))
                return None, True

            self._commit(name, mutate)

    # -- state ------------------------------------------------------------------------------------------
    def get_state(self, name: str) -> ModelState:
        snap = self._fetch(name)
        self._prefetch([snap])  # the records of versions without an entry, in one batch
        return self._state_from_doc(snap.doc)

    def get_state_view(self, name: str) -> ModelState:
        return self._view_from_doc(self._fetch(name).doc)

    def update(self, name: str, fn: UpdateFn) -> ModelState:
        with self._writing():

            def mutate(doc: dict[str, Any]) -> tuple[ModelState, bool]:
                old = self._view_from_doc(doc)
                new, drafts = fn(old)
                if not isinstance(new, ModelState):
                    raise TypeError("the update function must return (ModelState, [EventDraft, ...])")
                changes = version_changes(old, new)
                drafts = list(drafts)
                now = utcnow()
                changed = bool(drafts)
                if (new.description, new.tags, new.owner) != (old.description, old.tags, old.owner):
                    doc["description"], doc["tags"], doc["owner"] = new.description, dict(new.tags), new.owner
                    doc["updated_at"] = now.isoformat()
                    changed = True
                if new.extensions != old.extensions:
                    # what every store can write and read back (depth, 64-bit integers, finite floats)
                    check_json(new.extensions, f"the extensions of model {name!r}", max_bytes=MAX_EXTENSIONS_BYTES)
                    doc["extensions"] = json.loads(json.dumps(new.extensions))
                    changed = True
                for v, vs in changes.items():
                    if vs.updated_at is None:
                        vs = vs.model_copy(update={"updated_at": now})
                    doc["versions"][str(v)] = vs.model_dump(mode="json")
                    changed = True
                if new.aliases != old.aliases:
                    doc["aliases"] = {a: int(v) for a, v in new.aliases.items()}
                    changed = True
                self._seal(name, doc, drafts)
                return new, changed

            _, new = self._commit(name, mutate)
            return new

    # -- audit --------------------------------------------------------------------------------------------
    def _events_of(self, snap: _Snap, after: int = 0) -> list[AuditEvent]:
        doc = snap.doc
        name = doc["name"]
        rid = self.registry_id
        head = int(doc.get("head", {}).get("seq", 0))
        pending = {int(e["seq"]): e for e in (doc.get("pending") or {}).get("events", [])}
        out: dict[int, AuditEvent] = {}
        for seq, e in pending.items():
            if after < seq <= head:
                out[seq] = AuditEvent.model_validate(e)
        wanted = [s for s in range(after + 1, head + 1) if s not in out]
        if not wanted:
            return [out[s] for s in sorted(out)]
        enc = self._enc(name)
        if self.io.remote:
            try:
                stamps = self.io.list_stamps(f"{self._model_dir(name)}/events")
            except Exception as exc:
                raise self._fail("list", f"events of {name!r}", exc) from exc
            fetch = []
            for s in wanted:
                stamp = stamps.get(f"{s}.json")
                if stamp is None:
                    continue  # missing: a gap that verify reports
                with _SHARED.lock:
                    hit = _SHARED.events.get((rid, name, s))
                if hit is not None and hit[0] == stamp:
                    out[s] = hit[1]
                    continue
                disk = self._cache_get(f"events/{enc}/{s}.json")
                if disk is not None:
                    line, _, data = disk.partition(b"\n")
                    if line.decode(errors="replace") == stamp:
                        with contextlib.suppress(ValueError):
                            ev = AuditEvent.model_validate_json(data)
                            out[s] = ev
                            with _SHARED.lock:
                                _SHARED.events[(rid, name, s)] = (stamp, ev)
                            continue
                fetch.append(s)
            reads = self._read_many_with_etag([self._event_path(name, s) for s in fetch]) if fetch else {}
            for s in fetch:
                r = reads.get(self._event_path(name, s))
                if r is None:
                    continue
                ev = AuditEvent.model_validate_json(r.data)
                stamp = self.io.stamp_of(r) or ""
                out[s] = ev
                with _SHARED.lock:
                    _SHARED.events[(rid, name, s)] = (stamp, ev)
                self._cache_put(f"events/{enc}/{s}.json", stamp.encode() + b"\n" + r.data)
        else:
            try:
                got = self.io.read_many([self._event_path(name, s) for s in wanted])
            except Exception as exc:
                raise self._fail("read", f"events of {name!r}", exc) from exc
            for s in wanted:
                found = got.get(self._event_path(name, s))
                if found is not None:
                    out[s] = AuditEvent.model_validate_json(found)
        return [out[s] for s in sorted(out)]

    def list_events(
        self, name: str | None = None, *, after: int = 0, actions: Collection[str] | None = None
    ) -> list[AuditEvent]:
        keep: Callable[[AuditEvent], bool] = (
            (lambda e: e.action in actions) if actions is not None else (lambda e: True)
        )
        if name is not None:
            # event documents have no index by action: the filter reads the chain (from ``after``)
            return [e for e in self._events_of(self._fetch(name), after=after) if keep(e)]
        snaps = self._all_snaps()
        chains = [self._events_of(snaps[n]) for n in sorted(snaps) if not n.startswith(self.RESERVED_PREFIX)]
        # each model's chain stays in sequence order; chains are interleaved by time
        return [e for e in heapq.merge(*chains, key=lambda e: (e.time, e.model, e.seq)) if keep(e)]

    def audit_head(self, name: str) -> tuple[int, str]:
        head = self._fetch(name).doc.get("head") or {}
        return int(head.get("seq", 0)), str(head.get("hash", GENESIS_HASH))

    def close(self) -> None:
        """Nothing to release: filesystem instances are shared (fsspec caches them)."""
