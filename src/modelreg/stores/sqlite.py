"""``SQLiteMetadataStore``: the embedded default, one SQLite file.

- WAL journal, ``synchronous=NORMAL`` by default (``durability="full"`` for
  ``synchronous=FULL``): a committed change survives a process crash; with
  NORMAL a power loss may roll back the last transactions but never corrupts.
- Every write runs in ``BEGIN IMMEDIATE``, so allocate-and-insert and
  read-modify-write of the state are serialised across processes; a
  ``UNIQUE(name, version)`` key is the last line of defence.
- ``meta.schema_version`` with forward migrations; a database written by a
  newer modelreg raises SchemaVersionError.
- Safe for many processes on one machine; not for a network file system (use a
  ``file://`` JSON registry there).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from ..errors import AlreadyExistsError, BackendError, ModelNotFound, SchemaVersionError, VersionNotFound
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
from .base import MetadataStore, UpdateFn

__all__ = ["SQLiteMetadataStore", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _migrate_1(db: sqlite_utils.Database) -> None:
    db["models"].create(
        {
            "name": str, "description": str, "tags": str, "owner": str, "created_at": str,
            "updated_at": str, "last_version": int, "event_seq": int, "event_hash": str, "extra": str,
        },
        pk="name",
        not_null={"last_version", "event_seq", "event_hash", "created_at", "updated_at"},
        defaults={"description": "", "tags": "{}", "extra": "{}", "last_version": 0, "event_seq": 0},
    )
    db["versions"].create(
        {
            "name": str, "version": int, "stage": str, "tags": str, "description": str,
            "logged_metrics": str, "metrics": str, "params": str, "created_by": str, "created_at": str,
            "updated_at": str, "digest": str, "record": str,
        },
        pk=("name", "version"),
        foreign_keys=[("name", "models", "name")],
        not_null={"stage", "record"},
    )
    db["versions"].create_index(["stage"])
    db["versions"].create_index(["digest"])
    db["aliases"].create({"name": str, "alias": str, "version": int}, pk=("name", "alias"))
    db.execute(
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            model TEXT NOT NULL, seq INTEGER NOT NULL, time TEXT NOT NULL, actor TEXT NOT NULL,
            action TEXT NOT NULL, version INTEGER, before TEXT, after TEXT, comment TEXT,
            prev_hash TEXT NOT NULL, hash TEXT NOT NULL, UNIQUE(model, seq))"""
    )


MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {1: _migrate_1}


class SQLiteMetadataStore(MetadataStore):
    """Metadata in one SQLite database file (see the module docs for guarantees)."""

    def __init__(self, path: str | Path, *, durability: str = "normal", timeout: float = 60.0) -> None:
        if durability not in ("normal", "full"):
            raise ValueError("durability must be 'normal' or 'full'")
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=timeout
            )
        except sqlite3.Error as exc:
            raise BackendError(f"cannot open SQLite database {str(self.path)!r}: {exc}; check the folder exists and is writable") from exc
        self._conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self.db = sqlite_utils.Database(self._conn)
        self._migrate()

    def __repr__(self) -> str:
        return f"SQLiteMetadataStore({str(self.path)!r})"

    # -- plumbing ----------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise BackendError(f"SQLite database {str(self.path)!r} stayed locked: {exc}; retry, or look for a stuck process") from exc
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")

    def _query(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

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
        rows = []
        for draft in drafts:
            seq += 1
            ev = AuditEvent.chain(name, seq, head, draft)
            head = ev.hash
            rows.append((
                name, seq, ev.time.isoformat(), ev.actor, ev.action, ev.version,
                None if ev.before is None else _dumps(ev.before),
                None if ev.after is None else _dumps(ev.after),
                ev.comment, ev.prev_hash, ev.hash,
            ))
        conn.executemany(
            "INSERT INTO events (model, seq, time, actor, action, version, before, after, comment, prev_hash, hash)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        conn.execute(
            "UPDATE models SET event_seq=?, event_hash=?, updated_at=? WHERE name=?",
            (seq, head, drafts[-1].time.isoformat(), name),
        )

    # -- models -------------------------------------------------------------------
    def _model_from_row(self, row: tuple) -> RegisteredModel:
        name, description, tags, owner, created_at, updated_at, extra = row
        versions = self._query("SELECT version, stage FROM versions WHERE name=? ORDER BY version", (name,))
        stages: dict[str, list[int]] = {}
        for version, stage in versions:
            stages.setdefault(stage, []).append(version)
        aliases = dict(self._query("SELECT alias, version FROM aliases WHERE name=? ORDER BY alias", (name,)))
        stored_extra = {k: v for k, v in json.loads(extra or "{}").items() if k != "extensions"}
        return RegisteredModel.model_validate({
            **stored_extra,
            "name": name, "description": description or "", "tags": json.loads(tags or "{}"), "owner": owner,
            "created_at": created_at, "updated_at": updated_at,
            "latest_version": versions[-1][0] if versions else None, "version_count": len(versions),
            "stages": stages, "aliases": aliases,
        })

    _MODEL_COLS = "name, description, tags, owner, created_at, updated_at, extra"

    def create_model(self, model: RegisteredModel, event: EventDraft) -> RegisteredModel:
        known = set(RegisteredModel.model_fields)
        extra = {k: v for k, v in (model.model_extra or {}).items() if k not in known}
        try:
            with self._write() as conn:
                conn.execute(
                    "INSERT INTO models (name, description, tags, owner, created_at, updated_at, last_version,"
                    " event_seq, event_hash, extra) VALUES (?,?,?,?,?,?,0,0,?,?)",
                    (model.name, model.description, _dumps(model.tags), model.owner, model.created_at.isoformat(),
                     model.updated_at.isoformat(), GENESIS_HASH, _dumps(extra)),
                )
                self._append_events(conn, model.name, [event])
        except sqlite3.IntegrityError:
            raise AlreadyExistsError(f"model {model.name!r} exists already; register a new version instead") from None
        return self.get_model(model.name)

    def get_model(self, name: str) -> RegisteredModel:
        rows = self._query(f"SELECT {self._MODEL_COLS} FROM models WHERE name=?", (name,))
        if not rows:
            raise ModelNotFound(f"no model named {name!r}; list models with `modelreg list`")
        return self._model_from_row(rows[0])

    def list_models(self) -> list[RegisteredModel]:
        rows = self._query(f"SELECT {self._MODEL_COLS} FROM models WHERE name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY name")
        return [self._model_from_row(r) for r in rows]

    # -- versions -------------------------------------------------------------------
    _VERSION_COLS = "v.name, v.version, v.stage, v.tags, v.description, v.logged_metrics, v.updated_at, v.record"

    def _version_from_row(self, row: tuple, aliases: dict[tuple[str, int], list[str]] | None = None) -> ModelVersion:
        name, version, stage, tags, description, logged, updated_at, record = row
        data = json.loads(record)
        data.update(
            name=name, version=version, stage=stage, tags=json.loads(tags), description=description or "",
            logged_metrics=json.loads(logged), updated_at=updated_at,
        )
        if aliases is None:
            data["aliases"] = [a for (a,) in self._query(
                "SELECT alias FROM aliases WHERE name=? AND version=? ORDER BY alias", (name, version))]
        else:
            data["aliases"] = aliases.get((name, version), [])
        return ModelVersion.model_validate(data)

    def _require_model(self, name: str) -> None:
        if not self._query("SELECT 1 FROM models WHERE name=?", (name,)):
            raise ModelNotFound(f"no model named {name!r}; list models with `modelreg list`")

    def add_version(self, draft: VersionDraft, event: EventDraft) -> ModelVersion:
        record = draft.model_dump(mode="json", exclude={"name", "tags", "description"})
        now = draft.created_at.isoformat()
        with self._write() as conn:
            row = conn.execute("SELECT last_version FROM models WHERE name=?", (draft.name,)).fetchone()
            if row is None:
                raise ModelNotFound(f"no model named {draft.name!r}; create it before adding versions")
            version = row[0] + 1
            conn.execute(
                "INSERT INTO versions (name, version, stage, tags, description, logged_metrics, metrics, params,"
                " created_by, created_at, updated_at, digest, record) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (draft.name, version, Stage.EXPERIMENTAL.value, _dumps(draft.tags), draft.description, "{}",
                 _dumps(draft.metrics), _dumps(draft.params), draft.created_by, now, now,
                 draft.artifact.digest, _dumps(record)),
            )
            conn.execute("UPDATE models SET last_version=? WHERE name=?", (version, draft.name))
            self._append_events(conn, draft.name, [event.model_copy(update={"version": version})])
        return self.get_version(draft.name, version)

    def get_version(self, name: str, version: int) -> ModelVersion:
        rows = self._query(f"SELECT {self._VERSION_COLS} FROM versions v WHERE v.name=? AND v.version=?", (name, version))
        if not rows:
            self._require_model(name)
            raise VersionNotFound(f"model {name!r} has no version {version}; list them with `modelreg versions {name}`")
        return self._version_from_row(rows[0])

    def _aliases_of(self, name: str | None = None) -> dict[tuple[str, int], list[str]]:
        sql = "SELECT name, version, alias FROM aliases" + (" WHERE name=?" if name else "") + " ORDER BY alias"
        out: dict[tuple[str, int], list[str]] = {}
        for n, v, a in self._query(sql, (name,) if name else ()):
            out.setdefault((n, v), []).append(a)
        return out

    def list_versions(self, name: str) -> list[ModelVersion]:
        rows = self._query(f"SELECT {self._VERSION_COLS} FROM versions v WHERE v.name=? ORDER BY v.version", (name,))
        if not rows:
            self._require_model(name)
        aliases = self._aliases_of(name)
        return [self._version_from_row(r, aliases) for r in rows]

    def iter_all_versions(self) -> Iterator[ModelVersion]:
        aliases = self._aliases_of()
        rows = self._query(
            f"SELECT {self._VERSION_COLS} FROM versions v WHERE v.name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY v.name, v.version")
        for r in rows:
            yield self._version_from_row(r, aliases)

    def purge_version(self, name: str, version: int, event: EventDraft) -> None:
        with self._write() as conn:
            if not conn.execute("SELECT 1 FROM versions WHERE name=? AND version=?", (name, version)).fetchone():
                self._require_model(name)
                raise VersionNotFound(f"model {name!r} has no version {version}")
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
        rows = self._query(sql, params)
        if not rows:
            return []
        aliases = self._aliases_of()
        return [self._version_from_row(r, aliases) for r in rows]

    # -- state ------------------------------------------------------------------------
    def _load_state(self, conn: sqlite3.Connection, name: str) -> ModelState:
        row = conn.execute(
            "SELECT description, tags, owner, last_version, extra FROM models WHERE name=?", (name,)).fetchone()
        if row is None:
            raise ModelNotFound(f"no model named {name!r}; list models with `modelreg list`")
        versions = {
            v: VersionState(stage=s, tags=json.loads(t), description=d or "", logged_metrics=json.loads(m), updated_at=u)
            for v, s, t, d, m, u in conn.execute(
                "SELECT version, stage, tags, description, logged_metrics, updated_at FROM versions WHERE name=?", (name,)
            )
        }
        aliases = dict(conn.execute("SELECT alias, version FROM aliases WHERE name=?", (name,)).fetchall())
        return ModelState(
            name=name, description=row[0] or "", tags=json.loads(row[1] or "{}"), owner=row[2],
            versions=versions, aliases=aliases, last_version=row[3],
            extensions=json.loads(row[4] or "{}").get("extensions", {}),
        )

    def get_state(self, name: str) -> ModelState:
        with self._lock:
            return self._load_state(self._conn, name)

    def update(self, name: str, fn: UpdateFn) -> ModelState:
        with self._write() as conn:
            old = self._load_state(conn, name)
            new, events = fn(old)
            if set(new.versions) - set(old.versions):
                raise ValueError("MetadataStore.update cannot add versions; use add_version")
            now = utcnow().isoformat()
            if (new.description, new.tags, new.owner) != (old.description, old.tags, old.owner):
                conn.execute(
                    "UPDATE models SET description=?, tags=?, owner=?, updated_at=? WHERE name=?",
                    (new.description, _dumps(new.tags), new.owner, now, name),
                )
            if new.extensions != old.extensions:
                extra = json.loads(conn.execute("SELECT extra FROM models WHERE name=?", (name,)).fetchone()[0] or "{}")
                extra["extensions"] = new.extensions
                conn.execute("UPDATE models SET extra=? WHERE name=?", (_dumps(extra), name))
            for version, vs in new.versions.items():
                if vs != old.versions[version]:
                    conn.execute(
                        "UPDATE versions SET stage=?, tags=?, description=?, logged_metrics=?, updated_at=?"
                        " WHERE name=? AND version=?",
                        (Stage(vs.stage).value, _dumps(vs.tags), vs.description, _dumps(vs.logged_metrics),
                         (vs.updated_at or utcnow()).isoformat(), name, version),
                    )
            if new.aliases != old.aliases:
                if set(new.aliases.values()) - set(new.versions):
                    raise ValueError("an alias points at a version that does not exist")
                conn.execute("DELETE FROM aliases WHERE name=?", (name,))
                conn.executemany(
                    "INSERT INTO aliases (name, alias, version) VALUES (?,?,?)",
                    [(name, a, v) for a, v in new.aliases.items()],
                )
            self._append_events(conn, name, events)
            return new

    # -- audit -----------------------------------------------------------------------------
    def _event_from_row(self, row: tuple) -> AuditEvent:
        model, seq, time, actor, action, version, before, after, comment, prev_hash, hash_ = row
        return AuditEvent(
            model=model, seq=seq, time=datetime.fromisoformat(time), actor=actor, action=action, version=version,
            before=None if before is None else json.loads(before), after=None if after is None else json.loads(after),
            comment=comment, prev_hash=prev_hash, hash=hash_,
        )

    _EVENT_COLS = "model, seq, time, actor, action, version, before, after, comment, prev_hash, hash"

    def list_events(self, name: str | None = None) -> list[AuditEvent]:
        if name is None:
            rows = self._query(f"SELECT {self._EVENT_COLS} FROM events WHERE model NOT LIKE '\\_%' ESCAPE '\\' ORDER BY id")
        else:
            rows = self._query(f"SELECT {self._EVENT_COLS} FROM events WHERE model=? ORDER BY seq", (name,))
            if not rows:
                self._require_model(name)
        return [self._event_from_row(r) for r in rows]

    def audit_head(self, name: str) -> tuple[int, str]:
        rows = self._query("SELECT event_seq, event_hash FROM models WHERE name=?", (name,))
        if not rows:
            raise ModelNotFound(f"no model named {name!r}")
        return rows[0][0], rows[0][1]


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
    if prefix == "lineage":
        path = "$.lineage" + "".join(f'."{p}"' for p in key.split("."))
        return "json_extract(v.record, ?)", [path]
    raise ValueError(field)


def _typed(expr: str, value: Any) -> str:
    if isinstance(value, (bool, int, float)):
        return f"typeof({expr}) IN ('integer', 'real')"
    return f"typeof({expr}) = 'text'"


def _clause_sql(clause: Any) -> tuple[str, list[Any]]:
    op, value = clause.op, clause.value
    if clause.field == "alias":
        if op == "in":
            marks = ",".join("?" * len(value))
            return f"EXISTS (SELECT 1 FROM aliases a WHERE a.name=v.name AND a.version=v.version AND a.alias IN ({marks}))", list(value)
        sqlop = "LIKE" if op == "like" else op
        return f"EXISTS (SELECT 1 FROM aliases a WHERE a.name=v.name AND a.version=v.version AND a.alias {sqlop} ?)", [value]
    expr, p = _field_sql(clause.field)
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
