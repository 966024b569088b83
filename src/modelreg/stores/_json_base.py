"""The layout layer of :class:`~modelreg.stores.json.JSONMetadataStore`: settings, the registry's
``format.json``, object paths, error translation, the disk cache of immutable documents and the
reads of state documents (see :mod:`modelreg.stores.json` for the protocol)."""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import re
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from ..errors import (
    BackendError,
    InvalidInputError,
    ModelNotFound,
    SchemaVersionError,
)
from ..models import (
    AuditEvent,
    utcnow,
)
from ._conditional import ObjectIO, PreconditionFailed, io_for
from ._json_rows import Rows
from .base import MetadataStore

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

log = logging.getLogger("modelreg.stores.json")
"""The JSON store's logger (its layers share it)."""

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*(?:/[A-Za-z0-9_][A-Za-z0-9._-]*)?$")


def dumps(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


@dataclass(frozen=True)
class Snap:
    """One read of a state document: raw bytes, parsed (read-only) dict, etag and listing stamp."""

    data: bytes
    doc: dict[str, Any]
    etag: str
    stamp: str | None


@dataclass
class Shared:
    """Process-wide caches, keyed by registry id, shared by every store instance."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    states: dict[tuple[str, str], Snap] = field(default_factory=dict)
    records: dict[tuple[str, str], dict[int, dict[str, Any]]] = field(default_factory=dict)
    packs: set[tuple[str, str, int]] = field(default_factory=set)
    rows: dict[tuple[str, str], Rows] = field(default_factory=dict)
    events: dict[tuple[str, str, int], tuple[str | None, AuditEvent]] = field(default_factory=dict)
    durable: set[tuple[str, str, str, int]] = field(default_factory=set)

    def reset(self) -> None:
        """Forget everything cached (tests and benchmarks start cold with it)."""
        with self.lock:
            for cache in (self.states, self.records, self.packs, self.rows, self.events, self.durable):
                cache.clear()


SHARED = Shared()


@contextlib.contextmanager
def bulk() -> Iterator[None]:
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


SINGLE_WRITER_LOCKS: dict[str, threading.RLock] = {}


def default_cache_dir() -> Path:
    """``$MODELREG_CACHE_DIR``, else ``~/.cache/modelreg`` (the same place as the download cache)."""
    env = os.environ.get("MODELREG_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "modelreg"


class JSONStoreBase(MetadataStore):
    """Settings, format, paths, errors, disk cache and state reads (subclassed by the store)."""

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
        self._write_lock = SINGLE_WRITER_LOCKS.setdefault(f"{self.io.protocol}:{self.root}", threading.RLock())
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
        path, data = f"{self.root}/format.json", dumps(fmt)
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
            base = default_cache_dir()
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
    ) -> Snap:
        """Cache a state document read (or just written: then ``doc`` is its parsed form, never mutated again)."""
        key = (self.registry_id, name)
        with SHARED.lock:
            cur = SHARED.states.get(key)
            if cur is not None and cur.etag == etag and cur.data == data:
                return cur
        if doc is None:
            try:
                doc = json.loads(data)
            except ValueError:
                raise BackendError(f"the state document of model {name!r} in {self.url!r} is not valid JSON") from None
        snap = Snap(data=data, doc=doc, etag=etag, stamp=stamp)
        with SHARED.lock:
            SHARED.states[key] = snap
        if stamp is not None and persist:
            self._cache_put(f"states/{self._enc(name)}.json", dumps({"etag": etag, "stamp": stamp}) + b"\n" + data)
        return snap

    def _fetch(self, name: str) -> Snap:
        path = self._state_path(name)
        try:
            r = self.io.read(path)
        except FileNotFoundError:
            raise self._not_found(name) from None
        except Exception as exc:
            raise self._fail("read", f"the state of model {name!r}", exc) from exc
        return self._remember(name, r.data, r.etag, self.io.stamp_of(r))

    def _cached(self, name: str) -> Snap | None:
        with SHARED.lock:
            return SHARED.states.get((self.registry_id, name))

    def _all_snaps(self) -> dict[str, Snap]:
        """Current state documents of every model (reserved ones included), by name."""
        try:
            stamps = self.io.list_stamps(f"{self.root}/models")
        except Exception as exc:
            raise self._fail("list", "models", exc) from exc
        out: dict[str, Snap] = {}
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
