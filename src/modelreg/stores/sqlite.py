"""``SQLiteMetadataStore``: the embedded default, one SQLite file.

- WAL journal, ``synchronous=NORMAL`` by default (``durability="full"`` for
  ``synchronous=FULL``): a committed change survives a process crash; with
  NORMAL a power loss may roll back the last transactions but never corrupts.
- Every write runs in ``BEGIN IMMEDIATE``, so allocate-and-insert and
  read-modify-write of the state are serialised across processes; a
  ``UNIQUE(name, version)`` key is the last line of defence.
- ``meta.schema_version`` with forward migrations; a database written by a
  newer modelreg raises SchemaVersionError. Schema 2 adds ``version_index``
  (the tags and current metrics of every version, one row per key, maintained
  by triggers) so that tag and metric filters of ``search`` use an index.
- Safe for many processes on one machine; not for a network file system (use a
  ``file://`` JSON registry there).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ..errors import AlreadyExistsError, BackendError, ModelNotFound, SchemaVersionError, VersionNotFound
from ..models import (
    GENESIS_HASH,
    AuditEvent,
    EventDraft,
    ModelState,
    ModelVersion,
    RegisteredModel,
    Stage,
    UsageRecord,
    VersionDraft,
    VersionState,
    stored_record,
    stored_records,
    utcnow,
)
from ..validation import MAX_EXTENSIONS_BYTES, check_json
from .base import MetadataStore, PurgeFn, UpdateFn, VersionView, stamp_events, version_changes

if TYPE_CHECKING:
    import sqlite_utils
    from sqlite_utils.db import Table

__all__ = ["SCHEMA_VERSION", "SQLiteMetadataStore"]

SCHEMA_VERSION = 2


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _version_json(
    record: str,
    name: str,
    version: int,
    stage: str,
    tags: str,
    description: str,
    logged: str,
    updated_at: str,
    aliases: str | None,
) -> str:
    """One JSON document for ModelVersion: the stored record (a JSON object) with the mutable
    columns added last (so they win over anything of the same name in the record). ``name``,
    ``stage``, ``description`` and ``updated_at`` are JSON-quoted already; ``aliases`` is the
    NUL-separated list of alias names, or None."""
    body = record.rstrip()
    if not body.endswith("}"):
        raise BackendError(f"a version record of {name} is not a JSON object; the database is damaged")
    sep = "," if body[:-1].strip() != "{" else ""
    alias_list = _dumps(sorted(aliases.split("\0"))) if aliases else "[]"
    return (
        f'{body[:-1]}{sep}"name":{name},"version":{version},"stage":{stage},"tags":{tags},'
        f'"description":{description},"logged_metrics":{logged},"updated_at":{updated_at},"aliases":{alias_list}}}'
    )


def _migrate_1(db: sqlite_utils.Database) -> None:
    # db[name] is a View only for the name of an existing view; these are new tables
    cast("Table", db["models"]).create(
        {
            "name": str,
            "description": str,
            "tags": str,
            "owner": str,
            "created_at": str,
            "updated_at": str,
            "last_version": int,
            "event_seq": int,
            "event_hash": str,
            "extra": str,
        },
        pk="name",
        not_null={"last_version", "event_seq", "event_hash", "created_at", "updated_at"},
        defaults={"description": "", "tags": "{}", "extra": "{}", "last_version": 0, "event_seq": 0},
    )
    cast("Table", db["versions"]).create(
        {
            "name": str,
            "version": int,
            "stage": str,
            "tags": str,
            "description": str,
            "logged_metrics": str,
            "metrics": str,
            "params": str,
            "created_by": str,
            "created_at": str,
            "updated_at": str,
            "digest": str,
            "record": str,
        },
        pk=("name", "version"),
        foreign_keys=[("name", "models", "name")],
        not_null={"stage", "record"},
    )
    cast("Table", db["versions"]).create_index(["stage"])
    cast("Table", db["versions"]).create_index(["digest"])
    cast("Table", db["aliases"]).create({"name": str, "alias": str, "version": int}, pk=("name", "alias"))
    db.execute(
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            model TEXT NOT NULL, seq INTEGER NOT NULL, time TEXT NOT NULL, actor TEXT NOT NULL,
            action TEXT NOT NULL, version INTEGER, before TEXT, after TEXT, comment TEXT,
            prev_hash TEXT NOT NULL, hash TEXT NOT NULL, UNIQUE(model, seq))"""
    )


_INDEX_ROWS = """
    INSERT INTO version_index (name, version, field, key, value)
        SELECT {row}.name, {row}.version, 'tags', key, value FROM json_each({row}.tags) WHERE type != 'null';
    INSERT INTO version_index (name, version, field, key, value)
        SELECT {row}.name, {row}.version, 'metrics', key, value FROM json_each({row}.logged_metrics)
            WHERE type != 'null'
        UNION ALL
        SELECT {row}.name, {row}.version, 'metrics', key, value FROM json_each({row}.metrics)
            WHERE type != 'null'
            AND key NOT IN (SELECT key FROM json_each({row}.logged_metrics) WHERE type != 'null');"""


def _migrate_2(db: sqlite_utils.Database) -> None:
    """A search index of the tags and current metrics of every version (the latest logged value of
    a metric, else the registered one), kept in step with ``versions`` by triggers, so that a tag
    or metric filter is an index range scan instead of parsing the JSON of every version."""
    db.execute(
        """CREATE TABLE version_index (
            name TEXT NOT NULL, version INTEGER NOT NULL, field TEXT NOT NULL, key TEXT NOT NULL, value,
            PRIMARY KEY (name, version, field, key)) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX version_index_value ON version_index (field, key, value, name, version)")
    db.execute("CREATE INDEX versions_name_stage ON versions (name, stage, version)")  # name@stage
    db.execute(
        f"CREATE TRIGGER version_index_insert AFTER INSERT ON versions BEGIN {_INDEX_ROWS.format(row='NEW')} END"
    )
    db.execute(
        "CREATE TRIGGER version_index_update AFTER UPDATE OF name, version, tags, metrics, logged_metrics ON versions"
        " WHEN OLD.name IS NOT NEW.name OR OLD.version IS NOT NEW.version OR OLD.tags IS NOT NEW.tags"
        " OR OLD.metrics IS NOT NEW.metrics OR OLD.logged_metrics IS NOT NEW.logged_metrics BEGIN"
        " DELETE FROM version_index WHERE name=OLD.name AND version=OLD.version;"
        f" {_INDEX_ROWS.format(row='NEW')} END"
    )
    db.execute(
        "CREATE TRIGGER version_index_delete AFTER DELETE ON versions BEGIN"
        " DELETE FROM version_index WHERE name=OLD.name AND version=OLD.version; END"
    )
    # index the versions already there, as the insert trigger would have
    db.execute(
        "INSERT INTO version_index (name, version, field, key, value)"
        " SELECT v.name, v.version, 'tags', j.key, j.value FROM versions v, json_each(v.tags) j WHERE j.type != 'null'"
    )
    db.execute(
        "INSERT INTO version_index (name, version, field, key, value)"
        " SELECT v.name, v.version, 'metrics', j.key, j.value FROM versions v, json_each(v.logged_metrics) j"
        " WHERE j.type != 'null'"
        " UNION ALL"
        " SELECT v.name, v.version, 'metrics', j.key, j.value FROM versions v, json_each(v.metrics) j"
        " WHERE j.type != 'null'"
        " AND j.key NOT IN (SELECT key FROM json_each(v.logged_metrics) WHERE type != 'null')"
    )


MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {1: _migrate_1, 2: _migrate_2}

ADDITIVE_INDEXES = (
    # a model's events by action (rollback reads the stage entries, not every registration)
    "CREATE INDEX IF NOT EXISTS events_model_action ON events (model, action, seq)",
    # the usage log (fetch/load records): a table of its own, appended to without touching the
    # model's rows; older clients of schema 2 ignore it
    "CREATE TABLE IF NOT EXISTS usage (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,"
    " version INTEGER NOT NULL, record TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS usage_name_version ON usage (name, version, id)",
)


# SQLite's primary result codes (https://sqlite.org/rescode.html); Python 3.10 has only the message
_SQLITE_PERM, _SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY, _SQLITE_IOERR = 3, 5, 6, 8, 10
_SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_AUTH, _SQLITE_NOTADB = 11, 13, 14, 23, 26
_NEARLY_FULL = 256 * 1024  # bytes free below which an I/O error is taken for a full disk


def _translate(exc: sqlite3.Error, path: Path, action: str, timeout: float | None = None) -> Exception:
    """The :class:`BackendError` subclass for a storage failure of the SQLite database at ``path``,
    naming the file and what to check. Errors that are not about storage (a constraint violation,
    misuse of the connection) are returned unchanged.

    - disk full (``SQLITE_FULL``, or an I/O error with the disk nearly full): OutOfSpaceError
    - read-only file system or file, no permission: AccessDeniedError
    - locked past the busy timeout: BackendBusyError (an UnreachableError: retry later)
    - the folder is missing or is a file: StorageNotFoundError
    - anything else (I/O error, damaged file): BackendError
    """
    if isinstance(exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)):
        return exc
    import os
    import shutil

    from ..errors import AccessDeniedError, BackendBusyError, OutOfSpaceError, StorageNotFoundError

    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc)
    low = text.lower()
    where = f"SQLite database {str(path)!r}"
    folder = path.parent if str(path.parent) else Path(".")
    detail = f"{type(exc).__name__}: {text}"

    def has(codes: tuple[int, ...], *phrases: str) -> bool:
        return primary in codes or any(p in low for p in phrases)

    def probe(check: Callable[[], Any], failed: Any) -> Any:  # e.g. a folder that may not be searched
        try:
            return check()
        except OSError:
            return failed

    folder_exists = probe(folder.exists, True)
    folder_is_dir = probe(folder.is_dir, False)
    space = probe(lambda: shutil.disk_usage(folder).free, None) if folder_is_dir else None
    if has((_SQLITE_FULL,), "database or disk is full") or (
        has((_SQLITE_IOERR, _SQLITE_CANTOPEN), "disk i/o error", "unable to open")
        and space is not None
        and space < _NEARLY_FULL
    ):
        unsaved = "; nothing of the change was saved" if action in ("start a write", "write", "commit") else ""
        return OutOfSpaceError(
            f"{where} could not {action}: the disk is full ({detail}); free space on the disk "
            f"that holds {str(folder)!r} (or raise the quota), then retry{unsaved}"
        )
    if has((_SQLITE_BUSY, _SQLITE_LOCKED), "database is locked", "database table is locked"):
        waited = f" past the {timeout:g} s busy timeout" if timeout is not None else ""
        return BackendBusyError(
            f"{where} stayed locked{waited} ({detail}); retry, or look for a stuck process "
            "holding it (e.g. `fuser` on the file); never put SQLite on a network file system"
        )
    if has((_SQLITE_CANTOPEN,), "unable to open database file"):
        if not folder_exists:
            return StorageNotFoundError(
                f"{where} could not {action}: its folder {str(folder)!r} does not exist "
                f"({detail}); create the folder or fix the path"
            )
        if not folder_is_dir:
            return StorageNotFoundError(
                f"{where} could not {action}: {str(folder)!r} is a file, not a folder ({detail}); fix the path"
            )
        if probe(path.is_dir, False):
            return BackendError(
                f"{where} could not {action}: it is a folder, not a database file ({detail}); "
                "point at a database file (or pass the folder as the registry location)"
            )
    readonly = folder_is_dir and (
        not os.access(folder, os.W_OK) or (probe(path.exists, False) and not os.access(path, os.W_OK))
    )
    if has((_SQLITE_READONLY, _SQLITE_PERM, _SQLITE_AUTH), "readonly database", "access permission denied") or (
        has((_SQLITE_IOERR, _SQLITE_CANTOPEN), "disk i/o error", "unable to open") and readonly
    ):
        return AccessDeniedError(
            f"{where} could not {action}: it cannot be written ({detail}); check that this user "
            f"may write to the file and to {str(folder)!r} (SQLite creates its -wal and -shm "
            "files there) and that the file system is not mounted read-only"
        )
    if has((_SQLITE_CORRUPT, _SQLITE_NOTADB), "malformed", "file is not a database"):
        return BackendError(
            f"{where} could not {action}: it is damaged or not a SQLite database ({detail}); "
            "restore it from a backup, or point at the right file"
        )
    if has((_SQLITE_CANTOPEN,), "unable to open"):
        return BackendError(f"{where} could not {action} ({detail}); check that the folder exists and is writable")
    return BackendError(
        f"{where} could not {action} ({detail}); check the disk and its file system (free space, "
        "errors in the system log), and that the database is on a local disk"
    )


def _rollback(conn: sqlite3.Connection) -> bool:
    """Roll back the open transaction, if any; True when none is open afterwards. After SQLITE_FULL,
    SQLITE_IOERR or SQLITE_BUSY SQLite may have rolled it back itself, and ROLLBACK may fail: that
    is not raised (the original error matters)."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
    return not conn.in_transaction


class SQLiteMetadataStore(MetadataStore):
    """Metadata in one SQLite database file (see the module docs for guarantees)."""

    def __init__(self, path: str | Path, *, durability: str = "normal", timeout: float = 60.0) -> None:
        if durability not in ("normal", "full"):
            raise ValueError("durability must be 'normal' or 'full'")
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._lock = threading.RLock()
        self._timeout = timeout
        self._unfinished = False  # a write transaction whose ROLLBACK failed is still open
        try:
            self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=timeout)
        except sqlite3.Error as exc:
            raise _translate(exc, self.path, "open", timeout) from exc
        try:
            self._conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()  # its sqlite3 errors are translated by _write
        except BaseException as exc:
            self._conn.close()
            if isinstance(exc, sqlite3.Error):
                err = _translate(exc, self.path, "open", timeout)
                if err is not exc:
                    raise err from exc
            raise

    def __repr__(self) -> str:
        return f"SQLiteMetadataStore({str(self.path)!r})"

    @cached_property
    def db(self) -> sqlite_utils.Database:
        """The connection as a ``sqlite_utils.Database`` (the migrations create tables with it).
        Imported on first use: sqlite-utils loads its plugins on start-up, which costs more than
        opening the store."""
        import sqlite_utils

        return sqlite_utils.Database(self._conn)

    # -- plumbing ----------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. Storage failures (disk full, read-only, locked, I/O errors) of
        BEGIN, of the statements and of COMMIT roll everything back and raise the BackendError
        subclass that says what to do (:func:`_translate`); nothing of the change is kept."""
        with self._lock:
            if self._unfinished:  # an earlier ROLLBACK failed: finish it before starting anew
                self._unfinished = not _rollback(self._conn)
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                err = _translate(exc, self.path, "start a write", self._timeout)
                if err is exc:
                    raise
                raise err from exc
            try:
                yield self._conn
            except BaseException as exc:
                self._unfinished = not _rollback(self._conn)
                if isinstance(exc, sqlite3.Error):
                    err = _translate(exc, self.path, "write", self._timeout)
                    if err is not exc:
                        raise err from exc
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:  # e.g. SQLITE_FULL writing the WAL: the transaction may still be open
                self._unfinished = not _rollback(self._conn)
                err = _translate(exc, self.path, "commit", self._timeout)
                if err is exc:
                    raise
                raise err from exc

    def _query(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                err = _translate(exc, self.path, "read", self._timeout)
                if err is exc:
                    raise
                raise err from exc

    def _migrate(self) -> None:
        with self._write() as conn:
            has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone()
            if not has_meta:
                conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
                conn.execute("INSERT INTO meta VALUES ('schema_version', '0')")
            current = int(conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])
            if current > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"{str(self.path)!r} has schema version {current}, newer than this modelreg understands "
                    f"({SCHEMA_VERSION}); upgrade modelreg (pip install -U modelreg)"
                )
            for target in range(current + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[target](self.db)
                conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(target),))
            # additive indexes: older clients of the same schema version ignore them and keep them
            # up to date, so they need no schema bump (a registry stays readable by older releases)
            for sql in ADDITIVE_INDEXES:
                conn.execute(sql)

    @property
    def schema_version(self) -> int:
        return int(self._query("SELECT value FROM meta WHERE key='schema_version'")[0][0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- events ------------------------------------------------------------------
    def _append_events(self, conn: sqlite3.Connection, name: str, drafts: list[EventDraft]) -> None:
        if not drafts:
            return
        seq, head = conn.execute("SELECT event_seq, event_hash FROM models WHERE name=?", (name,)).fetchone()
        last = conn.execute("SELECT time FROM events WHERE model=? AND seq=?", (name, seq)).fetchone() if seq else None
        previous = datetime.fromisoformat(last[0]) if last else None
        rows = []
        stamped = stamp_events(drafts, previous)  # inside the write transaction: never runs backwards
        for draft in stamped:
            seq += 1
            ev = AuditEvent.chain(name, seq, head, draft)
            head = ev.hash
            rows.append(
                (
                    name,
                    seq,
                    ev.time.isoformat(),
                    ev.actor,
                    ev.action,
                    ev.version,
                    None if ev.before is None else _dumps(ev.before),
                    None if ev.after is None else _dumps(ev.after),
                    ev.comment,
                    ev.prev_hash,
                    ev.hash,
                )
            )
        conn.executemany(
            "INSERT INTO events (model, seq, time, actor, action, version, before, after, comment, prev_hash, hash)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        conn.execute(
            "UPDATE models SET event_seq=?, event_hash=?, updated_at=? WHERE name=?",
            (seq, head, stamped[-1].time.isoformat(), name),
        )

    # -- models -------------------------------------------------------------------
    def _model_from_row(self, row: tuple[Any, ...]) -> RegisteredModel:
        name, description, tags, owner, created_at, updated_at, extra = row
        versions = self._query("SELECT version, stage FROM versions WHERE name=? ORDER BY version", (name,))
        stages: dict[str, list[int]] = {}
        for version, stage in versions:
            stages.setdefault(stage, []).append(version)
        aliases = dict(self._query("SELECT alias, version FROM aliases WHERE name=? ORDER BY alias", (name,)))
        stored_extra = {k: v for k, v in json.loads(extra or "{}").items() if k != "extensions"}
        data = {
            **stored_extra,
            "name": name,
            "description": description or "",
            "tags": json.loads(tags or "{}"),
            "owner": owner,
            "created_at": created_at,
            "updated_at": updated_at,
            "latest_version": versions[-1][0] if versions else None,
            "version_count": len(versions),
            "stages": stages,
            "aliases": aliases,
        }
        return stored_record(RegisteredModel, data)

    _MODEL_COLS = "name, description, tags, owner, created_at, updated_at, extra"

    def _insert_model(self, conn: sqlite3.Connection, model: RegisteredModel, event: EventDraft) -> None:
        known = set(RegisteredModel.model_fields)
        extra = {k: v for k, v in (model.model_extra or {}).items() if k not in known}
        conn.execute(
            "INSERT INTO models (name, description, tags, owner, created_at, updated_at, last_version,"
            " event_seq, event_hash, extra) VALUES (?,?,?,?,?,?,0,0,?,?)",
            (
                model.name,
                model.description,
                _dumps(model.tags),
                model.owner,
                model.created_at.isoformat(),
                model.updated_at.isoformat(),
                GENESIS_HASH,
                _dumps(extra),
            ),
        )
        self._append_events(conn, model.name, [event])

    def create_model(self, model: RegisteredModel, event: EventDraft) -> RegisteredModel:
        try:
            with self._write() as conn:
                self._insert_model(conn, model, event)
        except sqlite3.IntegrityError:
            raise AlreadyExistsError(f"model {model.name!r} exists already; register a new version instead") from None
        return self.get_model(model.name)

    def get_model(self, name: str) -> RegisteredModel:
        rows = self._query(f"SELECT {self._MODEL_COLS} FROM models WHERE name=?", (name,))
        if not rows:
            raise ModelNotFound(f"no model named {name!r}; list models with `modelreg list`")
        return self._model_from_row(rows[0])

    def list_models(self) -> list[RegisteredModel]:
        rows = self._query(
            f"SELECT {self._MODEL_COLS} FROM models WHERE name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY name"
        )
        return [self._model_from_row(r) for r in rows]

    # -- versions -------------------------------------------------------------------
    # A row becomes one JSON document (the stored registration record plus the mutable columns and
    # the aliases) validated by pydantic-core in one call: several times faster than json.loads of
    # each column followed by model_validate.
    _VERSION_COLS = (
        "v.record, json_quote(v.name), v.version, json_quote(v.stage), v.tags, json_quote(coalesce(v.description, '')),"
        " v.logged_metrics, json_quote(v.updated_at),"
        " (SELECT group_concat(a.alias, char(0)) FROM aliases a WHERE a.name=v.name AND a.version=v.version)"
    )

    @staticmethod
    def _version_from_row(row: tuple[Any, ...]) -> ModelVersion:
        return stored_record(ModelVersion, _version_json(*row))

    @classmethod
    def _versions_from_rows(cls, rows: list[tuple[Any, ...]]) -> list[ModelVersion]:
        return stored_records(ModelVersion, [_version_json(*r) for r in rows])

    def _require_model(self, name: str) -> None:
        if not self._query("SELECT 1 FROM models WHERE name=?", (name,)):
            raise ModelNotFound(f"no model named {name!r}; list models with `modelreg list`")

    def add_version(
        self,
        draft: VersionDraft,
        event: EventDraft,
        *,
        create: tuple[RegisteredModel, EventDraft] | None = None,
    ) -> ModelVersion:
        record = _dumps(draft.model_dump(mode="json", exclude={"name", "tags", "description"}))
        tags = _dumps(draft.tags)
        now = draft.created_at.isoformat()
        with self._write() as conn:
            row = conn.execute("SELECT last_version FROM models WHERE name=?", (draft.name,)).fetchone()
            if row is None:
                if create is None:
                    raise ModelNotFound(f"no model named {draft.name!r}; create it before adding versions")
                self._insert_model(conn, create[0], create[1])  # rolled back with the version on failure
                row = (0,)
            version = row[0] + 1
            # exactly what get_version will read back, checked before the commit: a record that
            # cannot be read back (pydantic refuses it) is never stored
            mv = ModelVersion.model_validate_json(
                _version_json(
                    record,
                    _dumps(draft.name),
                    version,
                    _dumps(Stage.EXPERIMENTAL.value),
                    tags,
                    _dumps(draft.description or ""),
                    "{}",
                    _dumps(now),
                    None,
                )
            )
            conn.execute(
                "INSERT INTO versions (name, version, stage, tags, description, logged_metrics, metrics, params,"
                " created_by, created_at, updated_at, digest, record) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    draft.name,
                    version,
                    Stage.EXPERIMENTAL.value,
                    tags,
                    draft.description,
                    "{}",
                    _dumps(draft.metrics),
                    _dumps(draft.params),
                    draft.created_by,
                    now,
                    now,
                    draft.artifact.digest,
                    record,
                ),
            )
            conn.execute("UPDATE models SET last_version=? WHERE name=?", (version, draft.name))
            self._append_events(conn, draft.name, [event.model_copy(update={"version": version})])
        return mv

    def get_version(self, name: str, version: int) -> ModelVersion:
        rows = self._query(
            f"SELECT {self._VERSION_COLS} FROM versions v WHERE v.name=? AND v.version=?", (name, version)
        )
        if not rows:
            self._require_model(name)
            raise VersionNotFound(f"model {name!r} has no version {version}; list them with `modelreg versions {name}`")
        return self._version_from_row(rows[0])

    def list_versions(self, name: str) -> list[ModelVersion]:
        rows = self._query(f"SELECT {self._VERSION_COLS} FROM versions v WHERE v.name=? ORDER BY v.version", (name,))
        if not rows:
            self._require_model(name)
        return self._versions_from_rows(rows)

    def iter_all_versions(self) -> Iterator[ModelVersion]:
        rows = self._query(
            f"SELECT {self._VERSION_COLS} FROM versions v WHERE v.name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY v.name, "
            "v.version"
        )
        for r in rows:
            yield self._version_from_row(r)

    def purge_version(self, name: str, version: int, event: EventDraft | PurgeFn) -> None:
        with self._write() as conn:
            if not conn.execute("SELECT 1 FROM versions WHERE name=? AND version=?", (name, version)).fetchone():
                self._require_model(name)
                raise VersionNotFound(f"model {name!r} has no version {version}")
            if callable(event):  # the caller's precondition, under the write lock
                event = event(self._load_head(conn, name))
            conn.execute("DELETE FROM aliases WHERE name=? AND version=?", (name, version))
            conn.execute("DELETE FROM versions WHERE name=? AND version=?", (name, version))
            self._append_events(conn, name, [event.model_copy(update={"version": version})])

    def search(self, query: Any, order_by: list[tuple[str, bool]], limit: int | None) -> list[ModelVersion]:
        from ..query import DEFAULT_ORDER

        where, params = [], []
        for clause in query.clauses:
            sql, p = _clause_sql(clause)
            where.append(sql)
            params.extend(p)
        order_sql = []
        for field, desc in [*order_by, *DEFAULT_ORDER]:
            expr, p = _field_sql(field)
            order_sql.append(f"({expr}) IS NULL, typeof({expr}) = 'text', ({expr}) {'DESC' if desc else 'ASC'}")
            params.extend(p * 3)
        where.insert(0, "v.name NOT LIKE '\\_%' ESCAPE '\\'")
        sql = f"SELECT {self._VERSION_COLS} FROM versions v WHERE " + " AND ".join(where)
        sql += " ORDER BY " + ", ".join(order_sql)
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return self._versions_from_rows(self._query(sql, params))

    # -- state ------------------------------------------------------------------------
    # The whole state as one JSON document built by SQLite (number texts are copied verbatim) and
    # validated by pydantic-core in one call: update() reads it on every change.
    _STATE_SQL = """SELECT json_object(
        'name', m.name,
        'description', coalesce(m.description, ''),
        'tags', json(coalesce(nullif(m.tags, ''), '{}')),
        'owner', m.owner,
        'versions', json(coalesce((SELECT json_group_object(v.version, json_object(
            'stage', v.stage, 'tags', json(v.tags), 'description', coalesce(v.description, ''),
            'logged_metrics', json(v.logged_metrics), 'updated_at', v.updated_at))
            FROM versions v WHERE v.name = m.name), '{}')),
        'aliases', json(coalesce((SELECT json_group_object(a.alias, a.version) FROM aliases a
                                  WHERE a.name = m.name), '{}')),
        'last_version', m.last_version,
        'extensions', json(coalesce(json_extract(coalesce(nullif(m.extra, ''), '{}'), '$.extensions'), '{}'))
    ) FROM models m WHERE m.name = ?"""

    def _load_state(self, conn: sqlite3.Connection, name: str) -> ModelState:
        row = conn.execute(self._STATE_SQL, (name,)).fetchone()
        if row is None:
            raise ModelNotFound(f"no model named {name!r}; list models with `modelreg list`")
        return ModelState.model_validate_json(row[0])

    _HEAD_SQL = """SELECT json_object(
        'name', m.name,
        'description', coalesce(m.description, ''),
        'tags', json(coalesce(nullif(m.tags, ''), '{}')),
        'owner', m.owner,
        'aliases', json(coalesce((SELECT json_group_object(a.alias, a.version) FROM aliases a
                                  WHERE a.name = m.name), '{}')),
        'last_version', m.last_version,
        'extensions', json(coalesce(json_extract(coalesce(nullif(m.extra, ''), '{}'), '$.extensions'), '{}'))
    ) FROM models m WHERE m.name = ?"""

    _ENTRY_SQL = """SELECT v.version, json_object(
        'stage', v.stage, 'tags', json(v.tags), 'description', coalesce(v.description, ''),
        'logged_metrics', json(v.logged_metrics), 'updated_at', v.updated_at)
        FROM versions v WHERE v.name = ? AND v.version IN ({marks})"""

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Reads on the connection itself (outside ``_query``), with storage errors translated."""
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                err = _translate(exc, self.path, "read", self._timeout)
                if err is exc:
                    raise
                raise err from exc

    def get_state_view(self, name: str) -> ModelState:
        with self._reading():
            return self._load_head(self._conn, name, locked=False)

    def _load_head(self, conn: sqlite3.Connection, name: str, *, locked: bool = True) -> ModelState:
        """The state an update function sees: the model row, its aliases and extensions, and a
        :class:`VersionView` that reads version rows by primary key and stage holders through
        the ``versions_name_stage`` index, within the write transaction."""
        row = conn.execute(self._HEAD_SQL, (name,)).fetchone()
        if row is None:
            raise ModelNotFound(f"no model named {name!r}; list models with `modelreg list`")
        head = json.loads(row[0])
        # inside a write transaction, reads go to its connection as they are; outside (a view for
        # reading), each read takes the store's lock like any query
        run = (lambda sql, params: conn.execute(sql, params).fetchall()) if locked else self._query

        def load(numbers: list[int]) -> dict[int, VersionState]:
            out: dict[int, VersionState] = {}
            for i in range(0, len(numbers), 500):
                chunk = numbers[i : i + 500]
                sql = self._ENTRY_SQL.format(marks=",".join("?" * len(chunk)))
                for version, data in run(sql, (name, *chunk)):
                    out[version] = VersionState.model_validate_json(data)
            return out

        def holders(stage: Stage) -> list[int]:
            rows = run("SELECT version FROM versions WHERE name=? AND stage=? ORDER BY version", (name, stage.value))
            return [r[0] for r in rows]

        def numbers() -> list[int]:
            return [r[0] for r in run("SELECT version FROM versions WHERE name=? ORDER BY version", (name,))]

        return ModelState.model_construct(
            name=head["name"],
            description=head["description"],
            tags=head["tags"],
            owner=head["owner"],
            versions=VersionView(load, holders, numbers),
            aliases={a: int(v) for a, v in head["aliases"].items()},
            last_version=int(head["last_version"]),
            extensions=head["extensions"],
        )

    def resolve(self, name: str, *, stage: str | None = None, alias: str | None = None) -> int | None:
        if alias is not None:
            rows = self._query("SELECT version FROM aliases WHERE name=? AND alias=?", (name, alias))
        elif stage is not None:
            rows = self._query("SELECT max(version) FROM versions WHERE name=? AND stage=?", (name, Stage(stage).value))
        else:
            rows = self._query("SELECT max(version) FROM versions WHERE name=?", (name,))
        found = rows[0][0] if rows else None
        if found is None:
            self._require_model(name)
        return found

    def get_state(self, name: str) -> ModelState:
        with self._reading():
            return self._load_state(self._conn, name)

    def update(self, name: str, fn: UpdateFn) -> ModelState:
        with self._write() as conn:
            old = self._load_head(conn, name)
            new, events = fn(old)
            changed = version_changes(old, new)
            now = utcnow().isoformat()
            if (new.description, new.tags, new.owner) != (old.description, old.tags, old.owner):
                conn.execute(
                    "UPDATE models SET description=?, tags=?, owner=?, updated_at=? WHERE name=?",
                    (new.description, _dumps(new.tags), new.owner, now, name),
                )
            if new.extensions != old.extensions:
                check_json(new.extensions, f"the extensions of model {name!r}", max_bytes=MAX_EXTENSIONS_BYTES)
                extra = json.loads(conn.execute("SELECT extra FROM models WHERE name=?", (name,)).fetchone()[0] or "{}")
                extra["extensions"] = new.extensions
                conn.execute("UPDATE models SET extra=? WHERE name=?", (_dumps(extra), name))
            for version, vs in changed.items():
                conn.execute(
                    "UPDATE versions SET stage=?, tags=?, description=?, logged_metrics=?, updated_at=?"
                    " WHERE name=? AND version=?",
                    (
                        Stage(vs.stage).value,
                        _dumps(vs.tags),
                        vs.description,
                        _dumps(vs.logged_metrics),
                        (vs.updated_at or utcnow()).isoformat(),
                        name,
                        version,
                    ),
                )
            if new.aliases != old.aliases:
                gone = [a for a in old.aliases if a not in new.aliases]
                moved = [(name, a, v) for a, v in new.aliases.items() if old.aliases.get(a) != v]
                conn.executemany("DELETE FROM aliases WHERE name=? AND alias=?", [(name, a) for a in gone])
                conn.executemany("INSERT OR REPLACE INTO aliases (name, alias, version) VALUES (?,?,?)", moved)
            self._append_events(conn, name, events)
            return new

    # -- audit -----------------------------------------------------------------------------
    def _event_from_row(self, row: tuple[Any, ...]) -> AuditEvent:
        model, seq, time, actor, action, version, before, after, comment, prev_hash, hash_ = row
        return AuditEvent(
            model=model,
            seq=seq,
            time=datetime.fromisoformat(time),
            actor=actor,
            action=action,
            version=version,
            before=None if before is None else json.loads(before),
            after=None if after is None else json.loads(after),
            comment=comment,
            prev_hash=prev_hash,
            hash=hash_,
        )

    _EVENT_COLS = "model, seq, time, actor, action, version, before, after, comment, prev_hash, hash"

    def list_events(
        self, name: str | None = None, *, after: int = 0, actions: Collection[str] | None = None
    ) -> list[AuditEvent]:
        wanted = sorted(set(actions)) if actions is not None else None
        only = f" AND action IN ({','.join('?' * len(wanted))})" if wanted is not None else ""
        if name is None:
            rows = self._query(
                f"SELECT {self._EVENT_COLS} FROM events WHERE model NOT LIKE '\\_%' ESCAPE '\\'{only} ORDER BY id",
                wanted or [],
            )
        else:
            # with actions, read through (model, action, seq): the planner would otherwise walk every
            # event of the model in seq order
            index = " INDEXED BY events_model_action" if wanted is not None else ""
            rows = self._query(
                f"SELECT {self._EVENT_COLS} FROM events{index} WHERE model=? AND seq>?{only} ORDER BY seq",
                [name, int(after), *(wanted or [])],
            )
            if not rows:
                self._require_model(name)
        return [self._event_from_row(r) for r in rows]

    def audit_head(self, name: str) -> tuple[int, str]:
        rows = self._query("SELECT event_seq, event_hash FROM models WHERE name=?", (name,))
        if not rows:
            raise ModelNotFound(f"no model named {name!r}")
        return rows[0][0], rows[0][1]

    def record_usage(self, record: UsageRecord) -> None:
        data = record.model_dump_json()
        with self._write() as conn:
            conn.execute(
                "INSERT INTO usage (name, version, record) VALUES (?, ?, ?)", (record.name, record.version, data)
            )

    def list_usage(self, name: str, version: int | None = None, *, limit: int | None = None) -> list[UsageRecord]:
        where, args = ("name=? AND version=?", [name, int(version)]) if version is not None else ("name=?", [name])
        tail = f" LIMIT {int(limit)}" if limit is not None else ""
        rows = self._query(f"SELECT record FROM usage WHERE {where} ORDER BY id DESC{tail}", args)
        return [UsageRecord.model_validate_json(r[0]) for r in reversed(rows)]

    def trim_usage(self, name: str, before: datetime) -> int:
        # the time is inside the JSON record (the table has no column of its own): each record is
        # read and judged here, in the write transaction that deletes the old ones
        with self._write() as conn:
            rows = conn.execute("SELECT id, record FROM usage WHERE name=?", (name,)).fetchall()
            old = [(r[0],) for r in rows if UsageRecord.model_validate_json(r[1]).time < before]
            conn.executemany("DELETE FROM usage WHERE id=?", old)
        return len(old)


# -- search compilation --------------------------------------------------------------------


def _json_path(key: str) -> str:
    return '$."' + key + '"'


def _field_sql(field: str) -> tuple[str, list[Any]]:
    if field in ("name", "version", "stage", "created_by", "created_at", "description"):
        return f"v.{field}", []
    prefix, _, key = field.partition(".")
    if prefix == "metrics":
        return "COALESCE(json_extract(v.logged_metrics, ?), json_extract(v.metrics, ?))", [_json_path(key)] * 2
    if prefix in ("params", "tags"):
        return f"json_extract(v.{prefix}, ?)", [_json_path(key)]
    if prefix in ("lineage", "model"):
        path = f"$.{prefix}" + "".join(f'."{p}"' for p in key.split("."))
        return "json_extract(v.record, ?)", [path]
    raise ValueError(field)


def _typed(expr: str, value: Any) -> str:
    if isinstance(value, (bool, int, float)):
        return f"typeof({expr}) IN ('integer', 'real')"
    return f"typeof({expr}) = 'text'"


def _compare_sql(expr: str, p: list[Any], op: str, value: Any) -> tuple[str, list[Any]]:
    """``expr op value`` with the reference semantics: a value of another type never matches."""
    if op == "in":
        parts, params = [], []
        for item in value:
            parts.append(f"({_typed(expr, item)} AND {expr} = ?)")
            params.extend(p + p + [item])
        return "(" + " OR ".join(parts) + ")", params
    if op == "like":
        return f"({_typed(expr, value)} AND {expr} LIKE ?)", p + p + [value]
    if isinstance(value, bool):
        value = int(value)
    return f"({_typed(expr, value)} AND {expr} {op} ?)", p + p + [value]


def _clause_sql(clause: Any) -> tuple[str, list[Any]]:
    op, value = clause.op, clause.value
    if clause.field == "alias":
        if op == "in":
            marks = ",".join("?" * len(value))
            return (
                "EXISTS (SELECT 1 FROM aliases a WHERE a.name=v.name AND a.version=v.version AND a.alias IN "
                f"({marks}))",
                list(value),
            )
        sqlop = "LIKE" if op == "like" else op
        return f"EXISTS (SELECT 1 FROM aliases a WHERE a.name=v.name AND a.version=v.version AND a.alias {sqlop} ?)", [
            value
        ]
    prefix, _, key = clause.field.partition(".")
    if prefix in ("tags", "metrics"):
        # tags and current metrics are in version_index (kept by triggers): an index range scan
        cond, params = _compare_sql("i.value", [], op, value)
        sql = (
            "(v.name, v.version) IN (SELECT i.name, i.version FROM version_index i"
            f" WHERE i.field = ? AND i.key = ? AND {cond})"
        )
        return sql, [prefix, key, *params]
    expr, p = _field_sql(clause.field)
    return _compare_sql(expr, p, op, value)
