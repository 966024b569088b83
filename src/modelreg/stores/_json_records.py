"""The records and commit layer of :class:`~modelreg.stores.json.JSONMetadataStore`: building public
records from documents, the tail and packs of version records, sealing events and the
compare-and-swap commit loop (see :mod:`modelreg.stores.json` for the protocol)."""

from __future__ import annotations

import contextlib
import json
import random
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, cast

from ..errors import (
    BackendError,
    ConflictError,
    ModelNotFound,
)
from ..models import (
    GENESIS_HASH,
    AuditEvent,
    EventDraft,
    ModelState,
    ModelVersion,
    RegisteredModel,
    Stage,
    VersionState,
)
from ._conditional import PreconditionFailed, Read
from ._json_base import (
    _T,
    BACKOFF_MAX,
    CONTENTION_MEMORY,
    PENDING_EVENTS,
    RECENT_WRITERS,
    SHARED,
    JSONStoreBase,
    Snap,
    dumps,
    iso,
    log,
)
from ._json_rows import Row, Rows
from .base import VersionView, stamp_events


class JSONStoreRecords(JSONStoreBase):
    """Records, packs and commits (subclassed by the store)."""

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
        with SHARED.lock:
            return SHARED.records.setdefault(key, {})

    def _load_packs(self, wanted: Iterable[tuple[str, int]]) -> None:
        """Make sure the records of these packs are in memory (disk cache, then one concurrent fetch)."""
        rid = self.registry_id
        missing: dict[str, tuple[str, int]] = {}
        for name, k in wanted:
            if (rid, name, k) in SHARED.packs:
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
        with SHARED.lock:
            for n, r in records.items():
                recs.setdefault(n, r)
            SHARED.packs.add((self.registry_id, name, k))
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
        with SHARED.lock:
            recs.setdefault(n, vdoc["record"])
        return cast("dict[str, Any]", vdoc["record"])

    def _versions_of(self, snap: Snap) -> list[ModelVersion]:
        self._prefetch([snap])
        entry = self._rows(snap)
        return [self._materialize(entry, row) for row in entry.rows]

    def _prefetch(self, snaps: Iterable[Snap]) -> None:
        """Fetch, in one concurrent batch, every pack the given models need and do not have."""
        wanted: list[tuple[str, int]] = []
        for snap in snaps:
            doc = snap.doc
            with SHARED.lock:
                hit = SHARED.rows.get((self.registry_id, doc["name"]))
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
            if (self.registry_id, name, "event", seq) in SHARED.durable:
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
        if key in SHARED.durable:
            return
        with contextlib.suppress(FileExistsError):
            self.io.create(self._event_path(name, int(ev["seq"])), dumps(ev))
        with SHARED.lock:
            SHARED.durable.add(key)

    def _write_tombstone(self, name: str, n: int, doc: dict[str, Any]) -> None:
        key = (self.registry_id, name, "tombstone", n)
        if key in SHARED.durable:
            return
        self.io.put(
            self._version_path(name, n),
            dumps(
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
        with SHARED.lock:
            SHARED.durable.add(key)
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
                self.io.swap(path, dumps(pack), r.etag)
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
            doc["head"]["time"] = iso(previous)
        if drafts and previous is not None:
            doc["updated_at"] = iso(previous)

    def _backoff(self, attempt: int) -> None:
        time.sleep(random.uniform(0, min(BACKOFF_MAX, 0.005 * 2 ** min(attempt, 10))))

    def _commit(
        self,
        name: str,
        mutate: Callable[[dict[str, Any]], tuple[_T, bool]],
        *,
        start: Snap | None = None,
        fresh: bool = False,
    ) -> tuple[Snap, _T]:
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
            data = dumps(doc)
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
            log.debug("writing the committed events of %r failed (the next writer will): %s", name, exc)

    def _initial_vs(self, record: dict[str, Any]) -> dict[str, Any]:
        return VersionState(
            stage=Stage.EXPERIMENTAL,
            tags=record.get("tags") or {},
            description=record.get("description") or "",
            updated_at=record.get("created_at"),
        ).model_dump(mode="json")

    def _rows(self, snap: Snap) -> Rows:
        doc = snap.doc
        name = doc["name"]
        key = (self.registry_id, name)
        with SHARED.lock:
            hit = SHARED.rows.get(key)
        if hit is not None and hit.etag == snap.etag:
            return hit
        by_alias = self._aliases_by_version(doc)
        entries = doc.get("versions", {})
        rows = []
        for n in self._live(doc):
            record = self._record(name, doc, n)
            entry = entries.get(str(n))
            rows.append(
                Row(name, n, record, entry if entry is not None else self._initial_vs(record), by_alias.get(n, []))
            )
        entry = Rows(snap.etag, rows)
        with SHARED.lock:
            SHARED.rows[key] = entry
        return entry

    def _materialize(self, entry: Rows, row: Row) -> ModelVersion:
        mv = entry.built.get(row.version)
        if mv is None:
            mv = entry.built[row.version] = self._build(row.name, row.version, row.record, row.vs, row.aliases)
        return mv
