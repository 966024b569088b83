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
    usage/<model>/<n>-<time>-<id>.json  one usage record (a fetch or load of version n), append-only
                                      (``trim_usage`` deletes old ones)

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
import heapq
import json
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator
from datetime import datetime
from typing import Any

from ..errors import (
    AlreadyExistsError,
    BackendError,
    ModelNotFound,
    VersionNotFound,
)
from ..models import (
    GENESIS_HASH,
    AuditEvent,
    EventDraft,
    ModelState,
    ModelVersion,
    RegisteredModel,
    UsageRecord,
    VersionDraft,
    utcnow,
)
from ..validation import MAX_EXTENSIONS_BYTES, check_json
from ._conditional import Read
from ._json_base import (
    FORMAT_NAME,
    FORMAT_VERSION,
    PENDING_EVENTS,
    SHARED,
    Snap,
    bulk,
    dumps,
    iso,
    log,
)
from ._json_records import JSONStoreRecords
from ._json_rows import Row, Rows, predicate
from .base import PurgeFn, UpdateFn, version_changes

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "PENDING_EVENTS", "JSONMetadataStore"]


class JSONMetadataStore(JSONStoreRecords):
    """Metadata as JSON documents on any fsspec URL (see the module docs for the protocol).

    ``single_writer=True`` allows writing through a filesystem without
    conditional writes, promising that only this process writes.
    ``cache_dir`` holds cached immutable documents of remote registries
    (``False`` disables the disk cache). ``max_wait`` bounds how long an update
    keeps retrying under contention before raising ConflictError.
    ``pack_size`` (versions per pack document) applies only when this store
    creates the registry; afterwards ``format.json`` fixes it.
    """

    # -- models ------------------------------------------------------------------------------------
    def create_model(self, model: RegisteredModel, event: EventDraft) -> RegisteredModel:
        name = model.name
        self._enc(name)
        with self._writing():
            self._ensure_format()
            token = uuid.uuid4().hex
            doc = self._new_doc(model, token, self._sparse_docs)
            self._seal(name, doc, [event])
            data = dumps(doc)
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
            "created_at": iso(model.created_at),
            "updated_at": iso(model.updated_at),
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
        return dumps(
            {"kind": "modelreg-version", "name": name, "version": n, "record": record, "event": ev, "writer": token}
        )

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
            snap: Snap | None
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
        snap: Snap | None,
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
    ) -> tuple[Snap, int]:
        """Commit a first registration: one create-if-absent of the state document holding the
        model, its create_model event and the version. If another writer created the model
        first, commit the version into its document like any later version. Returns the
        committed state and the version's number."""
        doc = self._new_doc(create[0], token, self._sparse_docs)
        self._seal(name, doc, [create[1]])
        n, _ = mutate(doc)
        data = dumps(doc)
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
            if (self.registry_id, name, "pack", packed // size) not in SHARED.durable:
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
            if key not in SHARED.durable:
                data = dumps(self._pack_doc(name, packed, tail))
                try:
                    self.io.create(self._pack_path(name, k), data)
                except FileExistsError:
                    try:
                        self._prune_pack(name, k, {str(v) for v in self._live(doc)})
                    except Exception as exc:
                        log.debug("checking pack %d of %r failed (the next writer will): %s", k, name, exc)
                        return
                except Exception as exc:
                    log.debug("writing pack %d of %r failed (the next writer will): %s", k, name, exc)
                    return
                else:
                    self._absorb_pack(name, k, data)
                with SHARED.lock:
                    SHARED.durable.add(key)
            packed += size

    def _maybe_pack(self, name: str, doc: dict[str, Any]) -> None:
        size = self.pack_size
        while int(doc["last_version"]) - int(doc.get("packed", 0)) >= size:
            packed = int(doc.get("packed", 0))
            k = packed // size
            tail = doc.setdefault("tail", {})
            pack = self._pack_doc(name, packed, tail)
            records = pack["records"]
            data = dumps(pack)
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
        with SHARED.lock:
            hit = SHARED.rows.get((self.registry_id, name))
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

    def search(self, query: Any, order_by: list[tuple[str, bool]], limit: int | None) -> list[ModelVersion]:
        """Same results as :func:`modelreg.query.evaluate_in_python` over :meth:`iter_all_versions`,
        evaluated on raw records with the reference comparison and sort functions; only the
        returned versions are built as ModelVersion records."""
        with bulk():
            return self._search(query, order_by, limit)

    def _search(self, query: Any, order_by: list[tuple[str, bool]], limit: int | None) -> list[ModelVersion]:
        from ..query import DEFAULT_ORDER, sort_key

        tests = [predicate(c.op, c.value) for c in query.clauses]
        snaps = self._all_snaps()
        users = [snaps[n] for n in sorted(snaps) if not n.startswith(self.RESERVED_PREFIX)]
        self._prefetch(users)
        found: list[tuple[Rows, Row]] = []
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
    def _events_of(self, snap: Snap, after: int = 0) -> list[AuditEvent]:
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
                with SHARED.lock:
                    hit = SHARED.events.get((rid, name, s))
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
                            with SHARED.lock:
                                SHARED.events[(rid, name, s)] = (stamp, ev)
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
                with SHARED.lock:
                    SHARED.events[(rid, name, s)] = (stamp, ev)
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

    # -- usage log: usage/<model>/<version>-<time>-<token>.json, one document per record -------------
    def _usage_dir(self, name: str) -> str:
        return f"{self.root}/usage/{self._enc(name)}"

    def record_usage(self, record: UsageRecord) -> None:
        # a new document under a unique name: no condition needed, no contention with the state
        stamp = record.time.strftime("%Y%m%dT%H%M%S%f")
        path = f"{self._usage_dir(record.name)}/{record.version:010d}-{stamp}-{uuid.uuid4().hex[:12]}.json"
        try:
            self.io.put(path, record.model_dump_json().encode())
        except Exception as exc:
            raise self._fail("write", f"a usage record of {record.ref!r}", exc) from exc

    def list_usage(self, name: str, version: int | None = None, *, limit: int | None = None) -> list[UsageRecord]:
        folder = self._usage_dir(name)
        try:
            names = sorted(self.io.list_stamps(folder))
        except Exception as exc:
            raise self._fail("list", f"the usage log of {name!r}", exc) from exc
        if version is not None:
            names = [n for n in names if n.startswith(f"{int(version):010d}-")]
        paths = [f"{folder}/{n}" for n in names if n.endswith(".json")]
        try:
            got = self.io.read_many(paths)
        except Exception as exc:
            raise self._fail("read", f"the usage log of {name!r}", exc) from exc
        records = sorted(
            (UsageRecord.model_validate_json(got[p]) for p in paths if p in got), key=lambda r: (r.time, r.version)
        )
        return records[max(len(records) - int(limit), 0) :] if limit is not None else records

    def trim_usage(self, name: str, before: datetime) -> int:
        # one document per record: each old one is deleted (a record is never rewritten, so a
        # concurrent append only ever adds newer documents)
        folder = self._usage_dir(name)
        try:
            paths = [f"{folder}/{n}" for n in sorted(self.io.list_stamps(folder)) if n.endswith(".json")]
            got = self.io.read_many(paths)
        except Exception as exc:
            raise self._fail("read", f"the usage log of {name!r}", exc) from exc
        old = [p for p in paths if p in got and UsageRecord.model_validate_json(got[p]).time < before]
        for path in old:
            try:
                self.io.delete(path)
            except Exception as exc:
                raise self._fail("delete", f"a usage record of {name!r}", exc) from exc
        return len(old)

    def close(self) -> None:
        """Nothing to release: filesystem instances are shared (fsspec caches them)."""
