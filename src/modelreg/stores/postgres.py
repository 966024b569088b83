"""``PostgresMetadataStore``: the registry of a whole organisation, on PostgreSQL.

Plain SQL over psycopg 3 and a connection pool (psycopg_pool); no ORM.

- **Connection settings are libpq's.** The DSN is a ``postgresql://`` URL or a ``key=value``
  string; what it leaves out comes from the ``PG*`` environment variables and the service file
  (``service=...``), passwords from ``~/.pgpass``, ``PGPASSWORD`` or the service file, TLS from
  ``sslmode``/``sslrootcert``. A password in the DSN is kept only where libpq needs it (the
  connection pool's settings, to open connections), never logged or shown: :attr:`url`,
  ``repr`` and every error message carry the DSN without it. Prefer ``~/.pgpass`` or a service
  file to a password in the URL.
- **Schema** in a PostgreSQL schema of its own (``modelreg`` by default, ``schema=`` to choose),
  versioned like the SQLite store's: ``meta.schema_version`` with forward migrations, applied
  under ``pg_advisory_xact_lock`` so that clients starting at once do not race; a database
  written by a newer modelreg raises SchemaVersionError. Additive indexes need no version bump.
- **Concurrency by the database.** Every change locks its model's row (``SELECT ... FOR
  UPDATE``) first, in a READ COMMITTED transaction: version numbers come from the model's
  ``last_version`` counter, updated in the same transaction; the audit chain is appended under
  the same lock, so it stays linear and an exclusive stage has one holder. Primary keys on
  ``(name, version)``, ``(model, seq)`` and ``(name, alias)`` are the backstops. Serialization
  failures (40001) and deadlocks (40P01) are retried with backoff.
- **Search compiled to SQL** over jsonb, with the same results as
  :func:`modelreg.query.evaluate_in_python`: tag and metric filters use ``version_index`` (one
  row per tag and current metric of each version, kept by a trigger, B-tree indexed by key and
  value), stage and name filters the indexes of ``versions``.
- **Usage log** in its own table, appended without touching the model's row.
- **Errors** become modelreg's: UnreachableError (connection refused, timeout, unknown host,
  pool exhausted), AccessDeniedError (authentication failed, missing privileges),
  StorageNotFoundError (no such database), OutOfSpaceError, BackendBusyError (conflicts that
  outlived the retries), BackendError otherwise; each names the server (password-free) and
  what to check.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlencode

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import (
    AccessDeniedError,
    AlreadyExistsError,
    BackendBusyError,
    BackendError,
    InvalidInputError,
    ModelNotFound,
    OutOfSpaceError,
    SchemaVersionError,
    StorageNotFoundError,
    UnreachableError,
    no_such_model,
    no_such_version,
)
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
    from ..query import Clause, Query

__all__ = ["SCHEMA_VERSION", "PostgresMetadataStore", "redact_dsn"]

SCHEMA_VERSION = 1

_T = TypeVar("_T")
Conn = psycopg.Connection[Any]

_LOCK_KEY = 0x6D6F64656C726567  # "modelreg": the advisory lock migrations run under


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


# -- schema ---------------------------------------------------------------------------------------

_MIGRATION_1 = [
    """CREATE TABLE models (
        name text PRIMARY KEY,
        description text NOT NULL DEFAULT '',
        tags jsonb NOT NULL DEFAULT '{}',
        owner text,
        created_at text NOT NULL,
        updated_at text NOT NULL,
        last_version integer NOT NULL DEFAULT 0,
        event_seq integer NOT NULL DEFAULT 0,
        event_hash text NOT NULL,
        event_time timestamptz,
        extra text NOT NULL DEFAULT '{}',
        extensions text NOT NULL DEFAULT '{}')""",
    """CREATE TABLE versions (
        name text NOT NULL REFERENCES models (name),
        version integer NOT NULL,
        stage text NOT NULL,
        tags jsonb NOT NULL DEFAULT '{}',
        description text NOT NULL DEFAULT '',
        logged_metrics jsonb NOT NULL DEFAULT '{}',
        metrics jsonb NOT NULL DEFAULT '{}',
        params jsonb NOT NULL DEFAULT '{}',
        lineage jsonb,
        model jsonb,
        created_by text,
        created_at text NOT NULL,
        updated_at text NOT NULL,
        digest text NOT NULL,
        record text NOT NULL,
        PRIMARY KEY (name, version))""",
    "CREATE INDEX versions_name_stage ON versions (name, stage, version)",
    "CREATE INDEX versions_stage ON versions (stage)",
    "CREATE INDEX versions_digest ON versions (digest)",
    """CREATE TABLE aliases (
        name text NOT NULL,
        alias text NOT NULL,
        version integer NOT NULL,
        PRIMARY KEY (name, alias),
        FOREIGN KEY (name, version) REFERENCES versions (name, version) ON DELETE CASCADE)""",
    "CREATE INDEX aliases_version ON aliases (name, version)",
    """CREATE TABLE events (
        id bigserial PRIMARY KEY,
        model text NOT NULL, seq integer NOT NULL, time timestamptz NOT NULL, actor text NOT NULL,
        action text NOT NULL, version integer, before text, after text, comment text,
        prev_hash text NOT NULL, hash text NOT NULL,
        UNIQUE (model, seq))""",
    "CREATE INDEX events_model_action ON events (model, action, seq)",
    # the search index: tags and current metrics (the latest logged value, else the registered
    # one), one row per key, a number or a string, kept in step with versions by a trigger
    """CREATE TABLE version_index (
        name text NOT NULL,
        version integer NOT NULL,
        field text NOT NULL,
        key text NOT NULL,
        num double precision,
        str text COLLATE "C",
        PRIMARY KEY (name, version, field, key),
        FOREIGN KEY (name, version) REFERENCES versions (name, version) ON DELETE CASCADE)""",
    "CREATE INDEX version_index_num ON version_index (field, key, num, name, version)",
    "CREATE INDEX version_index_str ON version_index (field, key, str, name, version)",
    """CREATE FUNCTION version_index_refresh() RETURNS trigger LANGUAGE plpgsql
        SET search_path FROM CURRENT AS $body$
    BEGIN
        IF TG_OP = 'UPDATE' THEN
            DELETE FROM version_index WHERE name = OLD.name AND version = OLD.version;
        END IF;
        INSERT INTO version_index (name, version, field, key, num, str)
        SELECT NEW.name, NEW.version, f.field, f.key,
               CASE jsonb_typeof(f.value) WHEN 'number' THEN (f.value)::double precision
                    WHEN 'boolean' THEN CASE WHEN (f.value)::boolean THEN 1.0 ELSE 0.0 END END,
               CASE WHEN jsonb_typeof(f.value) = 'string' THEN f.value #>> '{}' END
        FROM (
            SELECT 'tags' AS field, t.key, t.value FROM jsonb_each(NEW.tags) t
            UNION ALL
            SELECT 'metrics', k.key, coalesce(NEW.logged_metrics -> k.key, NEW.metrics -> k.key)
            FROM (SELECT jsonb_object_keys(NEW.logged_metrics) AS key
                  UNION SELECT jsonb_object_keys(NEW.metrics)) k
        ) f
        WHERE jsonb_typeof(f.value) IN ('number', 'boolean', 'string');
        RETURN NULL;
    END
    $body$""",
    """CREATE TRIGGER version_index_insert AFTER INSERT ON versions
        FOR EACH ROW EXECUTE FUNCTION version_index_refresh()""",
    """CREATE TRIGGER version_index_update AFTER UPDATE OF tags, metrics, logged_metrics ON versions
        FOR EACH ROW WHEN (OLD.tags IS DISTINCT FROM NEW.tags OR OLD.metrics IS DISTINCT FROM NEW.metrics
                           OR OLD.logged_metrics IS DISTINCT FROM NEW.logged_metrics)
        EXECUTE FUNCTION version_index_refresh()""",
    # the usage log (fetch/load records): appended without touching the model's rows
    """CREATE TABLE usage (
        id bigserial PRIMARY KEY,
        name text NOT NULL,
        version integer NOT NULL,
        time timestamptz NOT NULL,
        record text NOT NULL)""",
    "CREATE INDEX usage_name_version ON usage (name, version, id)",
]

MIGRATIONS: dict[int, list[str]] = {1: _MIGRATION_1}

ADDITIVE_INDEXES: tuple[str, ...] = (
    # the newest registration first, for "who registered what lately" queries of a team
    "CREATE INDEX IF NOT EXISTS events_time ON events (time)",
)
"""Indexes (and tables) that older clients of the same schema version ignore: applied without a
schema bump, counted in ``meta.additive``."""


# -- DSNs -------------------------------------------------------------------------------------------


def _dsn_params(dsn: str) -> dict[str, str]:
    try:
        return {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
    except psycopg.ProgrammingError as exc:
        raise InvalidInputError(f"invalid PostgreSQL connection string: {_scrub(str(exc), dsn)}") from None


def redact_dsn(dsn: str) -> str:
    """``dsn`` as a ``postgresql://`` URL without its password (any other setting kept).

    >>> redact_dsn("postgresql://ana:s3cret@db.example.com:5432/registry?sslmode=require")
    'postgresql://ana@db.example.com:5432/registry?sslmode=require'
    >>> redact_dsn("host=db user=ana password=s3cret dbname=registry")
    'postgresql://ana@db/registry'
    """
    params = _dsn_params(dsn)
    params.pop("password", None)
    user, host, port, dbname = (params.pop(k, "") for k in ("user", "host", "port", "dbname"))
    netloc = (quote(user, safe="") + "@" if user else "") + quote(host, safe=",") + (f":{port}" if port else "")
    query = urlencode(sorted(params.items()))
    return f"postgresql://{netloc}/{quote(dbname, safe='')}" + (f"?{query}" if query else "")


def _scrub(text: str, *secrets: str | None) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


# -- search compilation ---------------------------------------------------------------------------

_TEXT_FIELDS = ("name", "stage", "created_by", "created_at", "description")


class _Params:
    """Named query parameters (``%(p0)s``): an expression that appears several times binds once."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> str:
        key = f"p{len(self.values)}"
        self.values[key] = value
        return f"%({key})s"


def _json_expr(field: str, params: _Params) -> tuple[str, bool] | None:
    """The jsonb expression of a keyed field, and whether only scalars count (lineage, model)."""
    prefix, _, key = field.partition(".")
    if prefix == "metrics":
        k = params.add(key)
        return f"coalesce(v.logged_metrics -> {k}, v.metrics -> {k})", False
    if prefix in ("params", "tags"):
        return f"(v.{prefix} -> {params.add(key)})", False
    if prefix in ("lineage", "model"):
        return f"(v.{prefix} #> {params.add(key.split('.'))}::text[])", True
    return None


def _num(j: str) -> str:
    """A jsonb value as Python's ``_compare`` sees a number: numbers and booleans (True is 1.0)."""
    return (
        f"(CASE jsonb_typeof({j}) WHEN 'number' THEN ({j})::double precision "
        f"WHEN 'boolean' THEN CASE WHEN ({j})::boolean THEN 1.0 ELSE 0.0 END END)"
    )


def _str(j: str, scalars_only: bool) -> str:
    """A jsonb value as a string: a JSON string; for params an object or array orders as text
    (as the reference orders ``str(value)``), for lineage and model paths it is no value."""
    other = "NULL" if scalars_only else f"{j}::text"
    return (
        f"(CASE jsonb_typeof({j}) WHEN 'string' THEN ({j} #>> '{{}}') "
        f"WHEN 'object' THEN {other} WHEN 'array' THEN {other} END)"
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (bool, int, float))


def _compare(num: str | None, text: str | None, op: str, value: Any, params: _Params) -> str:
    """``expr op value`` with the reference semantics: a value of another type never matches.
    ``num`` is the expression's value as a number (None: never a number), ``text`` as a string."""
    if op == "in":
        parts = [_compare(num, text, "=", item, params) for item in value]
        return "(" + " OR ".join(parts) + ")" if parts else "FALSE"
    if op == "like":
        if text is None or not isinstance(value, str):
            return "FALSE"
        return f"({text} ILIKE {params.add(value)} ESCAPE '')"
    sqlop = "<>" if op == "!=" else op
    if _is_number(value):
        return "FALSE" if num is None else f"({num} {sqlop} {params.add(float(value))})"
    if isinstance(value, str):
        return "FALSE" if text is None else f'({text} {sqlop} {params.add(value)} COLLATE "C")'
    return "FALSE"


def _clause_sql(clause: Clause, params: _Params) -> str:
    op, value, field = clause.op, clause.value, clause.field
    if field == "alias":
        cond = _compare(None, "a.alias", op, value, params)
        return f"EXISTS (SELECT 1 FROM aliases a WHERE a.name = v.name AND a.version = v.version AND {cond})"
    if field == "version":
        return _compare("(v.version)::double precision", None, op, value, params)
    if field in _TEXT_FIELDS:
        return _compare(None, f'(v.{field} COLLATE "C")', op, value, params)
    prefix, _, key = field.partition(".")
    if prefix in ("tags", "metrics"):
        # tags and current metrics are in version_index (kept by a trigger): an index range scan
        cond = _compare("i.num", "i.str", op, value, params)
        return (
            "(v.name, v.version) IN (SELECT i.name, i.version FROM version_index i"
            f" WHERE i.field = {params.add(prefix)} AND i.key = {params.add(key)} AND {cond})"
        )
    found = _json_expr(field, params)
    if found is None:
        raise ValueError(field)
    j, scalars_only = found
    return _compare(_num(j), _str(j, scalars_only), op, value, params)


def _order_sql(field: str, desc: bool, params: _Params) -> str:
    """Nulls last, numbers before strings, then the value (the reference's ``sort_key``)."""
    way = "DESC" if desc else "ASC"
    if field == "version":
        return f"v.version {way}"
    if field in _TEXT_FIELDS:
        return f'(v.{field} IS NULL), v.{field} COLLATE "C" {way}'
    found = _json_expr(field, params)
    if found is None:
        raise ValueError(field)
    j, scalars_only = found
    num, text = _num(j), _str(j, scalars_only)
    return f'({num} IS NULL AND {text} IS NULL), ({num} IS NULL), {num} {way}, {text} COLLATE "C" {way}'


# -- JSON documents of records --------------------------------------------------------------------


def _version_doc(
    record: str,
    name: str,
    version: int,
    stage: str,
    tags: str,
    description: str,
    logged: str,
    updated_at: str,
    aliases: list[str] | None,
) -> str:
    """One JSON document for ModelVersion: the stored record (a JSON object) with the mutable
    columns added last (so they win over anything of the same name in the record)."""
    body = record.rstrip()
    if not body.endswith("}"):
        raise BackendError(f"a version record of {name} is not a JSON object; the database is damaged")
    sep = "," if body[:-1].strip() != "{" else ""
    return (
        f'{body[:-1]}{sep}"name":{_dumps(name)},"version":{version},"stage":{_dumps(stage)},"tags":{tags},'
        f'"description":{_dumps(description)},"logged_metrics":{logged},"updated_at":{_dumps(updated_at)},'
        f'"aliases":{_dumps(sorted(aliases or []))}}}'
    )


def _version_from_row(row: tuple[Any, ...]) -> ModelVersion:
    return stored_record(ModelVersion, _version_doc(*row))


def _versions_from_rows(rows: list[tuple[Any, ...]]) -> list[ModelVersion]:
    return stored_records(ModelVersion, [_version_doc(*r) for r in rows])


_VERSION_COLS = (
    "v.record, v.name, v.version, v.stage, v.tags::text, v.description, v.logged_metrics::text, v.updated_at,"
    " (SELECT array_agg(a.alias) FROM aliases a WHERE a.name = v.name AND a.version = v.version)"
)
_ENTRY_COLS = "v.version, v.stage, v.tags::text, v.description, v.logged_metrics::text, v.updated_at"
_EVENT_COLS = "model, seq, time, actor, action, version, before, after, comment, prev_hash, hash"
_MODEL_COLS = (
    "m.name, m.description, m.tags::text, m.owner, m.created_at, m.updated_at, m.extra,"
    " (SELECT coalesce(json_agg(json_build_array(v.version, v.stage) ORDER BY v.version), '[]')::text"
    "  FROM versions v WHERE v.name = m.name),"
    " (SELECT coalesce(json_object_agg(a.alias, a.version), '{}')::text FROM aliases a WHERE a.name = m.name)"
)


def _entry(stage: str, tags: str, description: str, logged: str, updated_at: str) -> VersionState:
    return VersionState.model_validate_json(
        f'{{"stage":{_dumps(stage)},"tags":{tags},"description":{_dumps(description)},'
        f'"logged_metrics":{logged},"updated_at":{_dumps(updated_at)}}}'
    )


class PostgresMetadataStore(MetadataStore):
    """Metadata in a PostgreSQL database (see the module docs for guarantees).

    ``dsn``: a ``postgresql://`` URL or a libpq ``key=value`` string (empty: everything from the
    ``PG*`` environment variables or ``PGSERVICE``). ``pool_size``: the most connections this
    store opens (threads beyond it wait up to ``timeout`` seconds for one). ``schema``: the
    PostgreSQL schema that holds the tables (created on first use). ``retries``: how often a
    transaction that lost to a serialization failure or deadlock is run again. Other keyword
    arguments go to ``psycopg.connect`` (e.g. ``prepare_threshold=None`` behind PgBouncer in
    transaction mode).
    """

    def __init__(
        self,
        dsn: str = "",
        *,
        pool_size: int = 8,
        schema: str = "modelreg",
        timeout: float = 30.0,
        connect_timeout: int = 10,
        retries: int = 10,
        **connect_kwargs: Any,
    ) -> None:
        if pool_size < 1:
            raise InvalidInputError("pool_size must be at least 1")
        params = _dsn_params(dsn)
        self.url = redact_dsn(dsn)
        self.schema = schema
        self._timeout = timeout
        self._retries = retries
        self.retries = 0
        """Transactions run again after a serialization failure or deadlock (for monitoring)."""
        self._meter: list[int] | None = None
        self._meter_lock = threading.Lock()
        kwargs: dict[str, Any] = {"autocommit": True, "fallback_application_name": "modelreg", **connect_kwargs}
        if "connect_timeout" not in params and not os.environ.get("PGCONNECT_TIMEOUT"):
            kwargs.setdefault("connect_timeout", connect_timeout)
        self._where = self._describe(params)
        try:
            first = psycopg.connect(dsn, **kwargs)
        except psycopg.Error as exc:
            raise self._translate(exc, "connect") from exc
        try:
            self._configure(first)
            self._migrate(first)
        except psycopg.Error as exc:
            raise self._translate(exc, "open its schema") from exc
        finally:
            first.close()
        self._pool: ConnectionPool[Any] = ConnectionPool(
            dsn,
            kwargs=kwargs,
            min_size=1,
            max_size=pool_size,
            open=False,
            configure=self._configure,
            check=ConnectionPool.check_connection,
            name="modelreg",
        )
        self._pool.open(wait=False)

    def __repr__(self) -> str:
        return f"PostgresMetadataStore({self.url!r})"

    @staticmethod
    def _describe(params: dict[str, str]) -> str:
        """``PostgreSQL server db.example.com:5432, database 'registry' as 'ana'`` (no password),
        filling in what libpq takes from the environment."""
        host = params.get("hostaddr") or params.get("host") or os.environ.get("PGHOST") or "localhost (default socket)"
        port = params.get("port") or os.environ.get("PGPORT") or "5432"
        db = params.get("dbname") or os.environ.get("PGDATABASE")
        user = params.get("user") or os.environ.get("PGUSER")
        service = params.get("service") or os.environ.get("PGSERVICE")
        text = f"PostgreSQL server {host}:{port}"
        text += f", database {db!r}" if db else ""
        text += f" as {user!r}" if user else ""
        return text + (f" (service {service!r})" if service else "")

    def _configure(self, conn: Conn) -> None:
        conn.execute(
            "SELECT set_config('search_path', %s, false), set_config('TimeZone', 'UTC', false)",
            [sql.Identifier(self.schema).as_string(conn)],
        )

    # -- errors ---------------------------------------------------------------------------------
    def _translate(self, exc: BaseException, action: str) -> Exception:
        """The modelreg error for a failure of the server or the connection, naming the server
        (without the password) and what to check."""
        sqlstate = getattr(exc, "sqlstate", None) or ""
        detail = " ".join(str(exc).split())  # libpq's messages never hold the password
        low = detail.lower()
        where = f"{self._where} ({self.url})"
        if isinstance(exc, PoolTimeout):
            return UnreachableError(
                f"{where}: no connection could be obtained within {self._timeout:g} s to {action} ({detail}); "
                "check that the server is up and reachable, and that pool_size and the server's "
                "max_connections fit the number of clients"
            )
        if sqlstate in ("28P01", "28000") or any(
            p in low for p in ("password authentication failed", "no password supplied", "authentication failed")
        ):
            return AccessDeniedError(
                f"{where} refused the login ({detail}); check the user name and its password (PGPASSWORD, "
                "~/.pgpass or the service file, rather than the URL) and the server's pg_hba.conf"
            )
        if sqlstate == "42501":
            return AccessDeniedError(
                f"{where} could not {action}: permission denied ({detail}); grant the role the privileges "
                f"on schema {self.schema!r} and its tables (see docs/deploying.md, roles and permissions)"
            )
        if sqlstate == "3D000" or ("database" in low and "does not exist" in low):
            return StorageNotFoundError(
                f"{where} could not {action}: the database does not exist ({detail}); create it "
                "(createdb, or CREATE DATABASE) or fix the database name"
            )
        if sqlstate == "53100":
            return OutOfSpaceError(
                f"{where} could not {action}: the server's disk is full ({detail}); free space on the database "
                "server, then retry; nothing of the change was saved"
            )
        if sqlstate in ("53300", "57P03", "55P03") or "too many clients" in low:
            return BackendBusyError(
                f"{where} is busy and could not {action} ({detail}); retry later, or raise max_connections "
                "(or put a connection pooler such as PgBouncer in front)"
            )
        if sqlstate in ("22P05", "22021"):
            return InvalidInputError(
                f"{where} could not store the data ({detail}); PostgreSQL cannot store NUL characters "
                "(\\u0000) in text: remove them"
            )
        if isinstance(exc, psycopg.OperationalError) or sqlstate.startswith(("08", "57P")):
            return UnreachableError(
                f"{where} is unreachable, could not {action} ({detail}); check that the server is running and "
                "accepts connections on that host and port (listen_addresses, firewall, the host name), "
                "and sslmode if it requires TLS"
            )
        return BackendError(
            f"{where} could not {action} ({type(exc).__name__}: {detail}); check the server's log "
            "and that the database holds a modelreg schema"
        )

    # -- plumbing -------------------------------------------------------------------------------
    @contextmanager
    def _connection(self, action: str) -> Iterator[Conn]:
        try:
            with self._pool.connection(timeout=self._timeout) as conn:
                yield conn
        except PoolTimeout as exc:
            raise self._translate(exc, action) from exc

    def _transaction(self, action: str, body: Callable[[Conn], _T]) -> _T:
        """Run ``body`` in one transaction; storage failures roll it back and raise modelreg's
        errors; serialization failures and deadlocks run it again (with backoff)."""
        attempt = 0
        while True:
            try:
                with self._connection(action) as conn, conn.transaction():
                    start = self._rows(conn)
                    result = body(conn)
                    self._count(conn, start)
                return result
            except (pgerrors.SerializationFailure, pgerrors.DeadlockDetected) as exc:
                attempt += 1
                if attempt > self._retries:
                    raise BackendBusyError(
                        f"{self._where} ({self.url}): the change conflicted with other writers "
                        f"{attempt} times ({exc}); retry later"
                    ) from exc
                self.retries += 1
                time.sleep(min(0.5, 0.002 * 2**attempt) * random.uniform(0.5, 1.5))
            except psycopg.Error as exc:
                raise self._translate(exc, action) from exc

    def _run_plain(self, statement: str) -> None:
        try:
            with self._connection("run maintenance") as conn:
                conn.execute(statement)
        except psycopg.Error as exc:
            raise self._translate(exc, "run maintenance") from exc

    def _query(self, statement: str, params: Any = ()) -> list[tuple[Any, ...]]:
        def run(conn: Conn) -> list[tuple[Any, ...]]:
            return conn.execute(statement, params).fetchall()

        if self._meter is not None:
            return self._transaction("read", run)
        try:
            with self._connection("read") as conn:
                return run(conn)
        except psycopg.Error as exc:
            raise self._translate(exc, "read") from exc

    # -- I/O meter (the conformance suite's ``metadata_io_meter``) ------------------------------
    _XACT_ROWS = (
        "SELECT coalesce(sum(seq_tup_read + coalesce(idx_tup_fetch, 0) + coalesce(idx_scan, 0)"
        " + n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_xact_user_tables"
    )

    def _rows(self, conn: Conn) -> int:
        """With the meter on: the rows counted so far in ``pg_stat_xact_user_tables`` (which also holds
        earlier transactions' counts until the backend flushes them: the meter takes differences)."""
        if self._meter is None:
            return 0
        # plan as on big tables, where a scan of every row shows: no sequential scans, and no plan cached
        # before (foreign-key checks keep the plan made when the table was small)
        conn.execute("DISCARD PLANS")
        conn.execute("SET LOCAL enable_seqscan = off")
        row = conn.execute(self._XACT_ROWS).fetchone()
        return int(row[0]) if row is not None else 0

    def _count(self, conn: Conn, start: int) -> None:
        if self._meter is not None:
            done = self._rows(conn) - start
            with self._meter_lock:
                if self._meter is not None:
                    self._meter[0] += done

    @contextmanager
    def io_meter(self) -> Iterator[list[int]]:
        """Count the rows the store's transactions read (sequential scans, index fetches) and
        write inside the ``with`` block, from ``pg_stat_xact_user_tables``; ``box[0]`` holds it.
        Metered transactions plan without sequential scans (``enable_seqscan=off``), as on tables
        too big to scan: on a test's small tables the planner would otherwise scan every row of
        a table whatever the statement needs, and the count would not show what it touches."""
        box = [0]
        self._run_plain("ANALYZE")  # plans from the tables' statistics, as autovacuum keeps them
        self._meter = box
        try:
            yield box
        finally:
            self._meter = None

    # -- schema ----------------------------------------------------------------------------------
    def _migrate(self, conn: Conn) -> None:
        def version() -> tuple[int, int] | None:
            if conn.execute("SELECT to_regclass('meta')").fetchone() == (None,):
                return None
            rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            return int(rows.get("schema_version", 0)), int(rows.get("additive", 0))

        found = version()  # the fast path: up to date, no lock taken and nothing written
        if found is not None:
            self._check_newer(found[0])
            if found == (SCHEMA_VERSION, len(ADDITIVE_INDEXES)):
                return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            found = version()
            if found is None:
                conn.execute("CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL)")
                conn.execute("INSERT INTO meta VALUES ('schema_version', '0'), ('additive', '0')")
                found = (0, 0)
            current, additive = found
            self._check_newer(current)
            for target in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[target]:
                    conn.execute(statement)
                conn.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", [str(target)])
            if additive < len(ADDITIVE_INDEXES):
                for statement in ADDITIVE_INDEXES:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO meta VALUES ('additive', %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    [str(len(ADDITIVE_INDEXES))],
                )

    def _check_newer(self, current: int) -> None:
        if current > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{self._where} ({self.url}) holds a modelreg schema of version {current} in schema "
                f"{self.schema!r}, newer than this modelreg understands ({SCHEMA_VERSION}); upgrade modelreg "
                "(pip install -U modelreg)"
            )

    @property
    def schema_version(self) -> int:
        return int(self._query("SELECT value FROM meta WHERE key = 'schema_version'")[0][0])

    def close(self) -> None:
        self._pool.close()

    # -- events ----------------------------------------------------------------------------------
    @staticmethod
    def _lock(conn: Conn, name: str) -> int | None:
        """Lock the model's row until the transaction ends; its ``last_version``, or None (no such model)."""
        row = conn.execute("SELECT last_version FROM models WHERE name = %s FOR UPDATE", [name]).fetchone()
        return None if row is None else int(row[0])

    def _append_events(self, conn: Conn, name: str, drafts: list[EventDraft]) -> None:
        """Seal ``drafts`` after the model's head and append them, advancing the head (the caller
        holds the model's row lock)."""
        if not drafts:
            return
        row = conn.execute("SELECT event_seq, event_hash, event_time FROM models WHERE name = %s", [name]).fetchone()
        if row is None:  # pragma: no cover - callers lock the row first
            raise no_such_model(name)
        seq, head, previous = row
        rows = []
        stamped = stamp_events(drafts, previous)  # under the row lock: never runs backwards
        for draft in stamped:
            seq += 1
            event = AuditEvent.chain(name, seq, head, draft)
            head = event.hash
            rows.append(
                (
                    name,
                    seq,
                    event.time,
                    event.actor,
                    event.action,
                    event.version,
                    None if event.before is None else _dumps(event.before),
                    None if event.after is None else _dumps(event.after),
                    event.comment,
                    event.prev_hash,
                    event.hash,
                )
            )
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO events ({_EVENT_COLS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows
            )
        last = stamped[-1].time
        conn.execute(
            "UPDATE models SET event_seq = %s, event_hash = %s, event_time = %s, updated_at = %s WHERE name = %s",
            [seq, head, last, last.isoformat(), name],
        )

    # -- models ------------------------------------------------------------------------------------
    @staticmethod
    def _model_from_row(row: tuple[Any, ...]) -> RegisteredModel:
        name, description, tags, owner, created_at, updated_at, extra, versions, aliases = row
        pairs = json.loads(versions)
        stages: dict[str, list[int]] = {}
        for version, stage in pairs:
            stages.setdefault(stage, []).append(version)
        data = {
            **json.loads(extra or "{}"),
            "name": name,
            "description": description or "",
            "tags": json.loads(tags),
            "owner": owner,
            "created_at": created_at,
            "updated_at": updated_at,
            "latest_version": pairs[-1][0] if pairs else None,
            "version_count": len(pairs),
            "stages": stages,
            "aliases": dict(sorted(json.loads(aliases).items())),
        }
        return stored_record(RegisteredModel, data)

    def _insert_model(self, conn: Conn, model: RegisteredModel, event: EventDraft) -> bool:
        """Insert the model and its first event; False if the name is taken."""
        known = set(RegisteredModel.model_fields)
        extra = {k: v for k, v in (model.model_extra or {}).items() if k not in known and k != "extensions"}
        row = conn.execute(
            "INSERT INTO models (name, description, tags, owner, created_at, updated_at, event_hash, extra)"
            " VALUES (%s, %s, %s::jsonb, %s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING RETURNING name",
            [
                model.name,
                model.description,
                _dumps(model.tags),
                model.owner,
                model.created_at.isoformat(),
                model.updated_at.isoformat(),
                GENESIS_HASH,
                _dumps(extra),
            ],
        ).fetchone()
        if row is None:
            return False
        self._append_events(conn, model.name, [event])
        return True

    def create_model(self, model: RegisteredModel, event: EventDraft) -> RegisteredModel:
        if not self._transaction("create a model", lambda conn: self._insert_model(conn, model, event)):
            raise AlreadyExistsError(f"model {model.name!r} exists already; register a new version instead")
        return self.get_model(model.name)

    def get_model(self, name: str) -> RegisteredModel:
        rows = self._query(f"SELECT {_MODEL_COLS} FROM models m WHERE m.name = %s", [name])
        if not rows:
            raise no_such_model(name)
        return self._model_from_row(rows[0])

    def list_models(self) -> list[RegisteredModel]:
        rows = self._query(
            f"SELECT {_MODEL_COLS} FROM models m WHERE left(m.name, 1) <> '_' ORDER BY m.name COLLATE \"C\""
        )
        return [self._model_from_row(r) for r in rows]

    def _require_model(self, name: str) -> None:
        if not self._query("SELECT 1 FROM models WHERE name = %s", [name]):
            raise no_such_model(name)

    # -- versions ----------------------------------------------------------------------------------
    def add_version(
        self,
        draft: VersionDraft,
        event: EventDraft,
        *,
        create: tuple[RegisteredModel, EventDraft] | None = None,
    ) -> ModelVersion:
        dumped = draft.model_dump(mode="json", exclude={"name", "tags", "description"})
        record = _dumps(dumped)
        tags = _dumps(draft.tags)
        now = draft.created_at.isoformat()
        stage = Stage.EXPERIMENTAL.value

        def body(conn: Conn) -> ModelVersion:
            last_version = self._lock(conn, draft.name)
            if last_version is None:
                if create is None:
                    raise ModelNotFound(f"no model named {draft.name!r}; create it before adding versions")
                self._insert_model(conn, create[0], create[1])  # rolled back with the version on failure
                last_version = self._lock(conn, draft.name)  # ours, or a concurrent creator's (now committed)
                if last_version is None:  # pragma: no cover - the insert or the other creator left the row
                    raise ModelNotFound(f"no model named {draft.name!r}")
            version = last_version + 1
            # exactly what get_version will read back, checked before the commit: a record that
            # cannot be read back (pydantic refuses it) is never stored
            mv = ModelVersion.model_validate_json(
                _version_doc(record, draft.name, version, stage, tags, draft.description, "{}", now, None)
            )
            conn.execute(
                "INSERT INTO versions (name, version, stage, tags, description, logged_metrics, metrics, params,"
                " lineage, model, created_by, created_at, updated_at, digest, record)"
                " VALUES (%s, %s, %s, %s::jsonb, %s, '{}', %s::jsonb, %s::jsonb, %s::jsonb, %s::jsonb, %s, %s, %s,"
                " %s, %s)",
                [
                    draft.name,
                    version,
                    stage,
                    tags,
                    draft.description,
                    _dumps(dumped.get("metrics") or {}),
                    _dumps(dumped.get("params") or {}),
                    _dumps(dumped.get("lineage")),
                    _dumps(dumped.get("model")),
                    draft.created_by,
                    now,
                    now,
                    draft.artifact.digest,
                    record,
                ],
            )
            conn.execute("UPDATE models SET last_version = %s WHERE name = %s", [version, draft.name])
            self._append_events(conn, draft.name, [event.model_copy(update={"version": version})])
            return mv

        return self._transaction("register a version", body)

    def get_version(self, name: str, version: int) -> ModelVersion:
        rows = self._query(
            f"SELECT {_VERSION_COLS} FROM versions v WHERE v.name = %s AND v.version = %s", [name, version]
        )
        if not rows:
            self._require_model(name)
            raise no_such_version(name, version)
        return _version_from_row(rows[0])

    def list_versions(self, name: str) -> list[ModelVersion]:
        rows = self._query(f"SELECT {_VERSION_COLS} FROM versions v WHERE v.name = %s ORDER BY v.version", [name])
        if not rows:
            self._require_model(name)
        return _versions_from_rows(rows)

    def iter_all_versions(self) -> Iterator[ModelVersion]:
        rows = self._query(
            f"SELECT {_VERSION_COLS} FROM versions v WHERE left(v.name, 1) <> '_'"
            ' ORDER BY v.name COLLATE "C", v.version'
        )
        for row in rows:
            yield _version_from_row(row)

    def purge_version(self, name: str, version: int, event: EventDraft | PurgeFn) -> None:
        def body(conn: Conn) -> None:
            if self._lock(conn, name) is None:
                raise no_such_model(name)
            if (
                conn.execute("SELECT 1 FROM versions WHERE name = %s AND version = %s", [name, version]).fetchone()
                is None
            ):
                raise no_such_version(name, version)
            draft = event(self._load_head(conn, name)) if callable(event) else event  # under the row lock
            conn.execute("DELETE FROM aliases WHERE name = %s AND version = %s", [name, version])
            conn.execute("DELETE FROM versions WHERE name = %s AND version = %s", [name, version])
            self._append_events(conn, name, [draft.model_copy(update={"version": version})])

        self._transaction("purge a version", body)

    def search(self, query: Query, order_by: list[tuple[str, bool]], limit: int | None) -> list[ModelVersion]:
        from ..query import DEFAULT_ORDER

        params = _Params()
        where = ["left(v.name, 1) <> '_'"] + [_clause_sql(c, params) for c in query.clauses]
        order = [_order_sql(f, desc, params) for f, desc in [*order_by, *DEFAULT_ORDER]]
        statement = f"SELECT {_VERSION_COLS} FROM versions v WHERE " + " AND ".join(where)
        statement += " ORDER BY " + ", ".join(order)
        if limit is not None:
            statement += f" LIMIT {params.add(int(limit))}"
        return _versions_from_rows(self._query(statement, params.values))

    # -- state ---------------------------------------------------------------------------------------
    _STATE_SQL = """SELECT m.name, m.description, m.tags::text, m.owner, m.last_version, m.extensions,
        (SELECT coalesce(json_object_agg(v.version, json_build_object(
            'stage', v.stage, 'tags', v.tags, 'description', v.description,
            'logged_metrics', v.logged_metrics, 'updated_at', v.updated_at)), '{}')::text
         FROM versions v WHERE v.name = m.name),
        (SELECT coalesce(json_object_agg(a.alias, a.version), '{}')::text FROM aliases a WHERE a.name = m.name)
        FROM models m WHERE m.name = %s"""

    def get_state(self, name: str) -> ModelState:
        rows = self._query(self._STATE_SQL, [name])  # one statement: one snapshot
        if not rows:
            raise no_such_model(name)
        mname, description, tags, owner, last_version, extensions, versions, aliases = rows[0]
        return ModelState.model_validate_json(
            f'{{"name":{_dumps(mname)},"description":{_dumps(description)},"tags":{tags},"owner":{_dumps(owner)},'
            f'"versions":{versions},"aliases":{aliases},"last_version":{int(last_version)},'
            f'"extensions":{extensions or "{}"}}}'
        )

    _HEAD_SQL = """SELECT m.name, m.description, m.tags::text, m.owner, m.last_version, m.extensions,
        (SELECT coalesce(json_object_agg(a.alias, a.version), '{}')::text FROM aliases a WHERE a.name = m.name)
        FROM models m WHERE m.name = %s"""

    def get_state_view(self, name: str) -> ModelState:
        return self._load_head(None, name)

    def _load_head(self, conn: Conn | None, name: str) -> ModelState:
        """The state an update function sees: the model row, its aliases and extensions, and a
        :class:`VersionView` that reads version rows by primary key and stage holders through the
        ``versions_name_stage`` index; inside a transaction on ``conn``, else each read on its own."""

        def run(statement: str, params: Any) -> list[tuple[Any, ...]]:
            if conn is None:
                return self._query(statement, params)
            return conn.execute(statement, params).fetchall()

        rows = run(self._HEAD_SQL, [name])
        if not rows:
            raise no_such_model(name)
        mname, description, tags, owner, last_version, extensions, aliases = rows[0]

        def load(numbers: list[int]) -> dict[int, VersionState]:
            found = run(
                f"SELECT {_ENTRY_COLS} FROM versions v WHERE v.name = %s AND v.version = ANY(%s)", [name, numbers]
            )
            return {row[0]: _entry(*row[1:]) for row in found}

        def holders(stage: Stage) -> list[int]:
            found = run(
                "SELECT version FROM versions WHERE name = %s AND stage = %s ORDER BY version", [name, stage.value]
            )
            return [r[0] for r in found]

        def numbers() -> list[int]:
            return [r[0] for r in run("SELECT version FROM versions WHERE name = %s ORDER BY version", [name])]

        return ModelState.model_construct(
            name=mname,
            description=description or "",
            tags=json.loads(tags),
            owner=owner,
            versions=VersionView(load, holders, numbers),
            aliases={a: int(v) for a, v in json.loads(aliases).items()},
            last_version=int(last_version),
            extensions=json.loads(extensions or "{}"),
        )

    def resolve(self, name: str, *, stage: str | None = None, alias: str | None = None) -> int | None:
        if alias is not None:
            rows = self._query("SELECT version FROM aliases WHERE name = %s AND alias = %s", [name, alias])
        elif stage is not None:
            rows = self._query(
                "SELECT max(version) FROM versions WHERE name = %s AND stage = %s", [name, Stage(stage).value]
            )
        else:
            rows = self._query("SELECT max(version) FROM versions WHERE name = %s", [name])
        found = rows[0][0] if rows else None
        if found is None:
            self._require_model(name)
        return int(found) if found is not None else None

    def update(self, name: str, fn: UpdateFn) -> ModelState:
        def body(conn: Conn) -> ModelState:
            if self._lock(conn, name) is None:
                raise no_such_model(name)
            old = self._load_head(conn, name)
            new, events = fn(old)
            changed = version_changes(old, new)
            now = utcnow().isoformat()
            if (new.description, new.tags, new.owner) != (old.description, old.tags, old.owner):
                conn.execute(
                    "UPDATE models SET description = %s, tags = %s::jsonb, owner = %s, updated_at = %s WHERE name = %s",
                    [new.description, _dumps(new.tags), new.owner, now, name],
                )
            if new.extensions != old.extensions:
                check_json(new.extensions, f"the extensions of model {name!r}", max_bytes=MAX_EXTENSIONS_BYTES)
                conn.execute("UPDATE models SET extensions = %s WHERE name = %s", [_dumps(new.extensions), name])
            if changed:
                with conn.cursor() as cur:
                    cur.executemany(
                        "UPDATE versions SET stage = %s, tags = %s::jsonb, description = %s,"
                        " logged_metrics = %s::jsonb, updated_at = %s WHERE name = %s AND version = %s",
                        [
                            (
                                Stage(vs.stage).value,
                                _dumps(vs.tags),
                                vs.description,
                                _dumps(vs.logged_metrics),
                                (vs.updated_at or utcnow()).isoformat(),
                                name,
                                version,
                            )
                            for version, vs in changed.items()
                        ],
                    )
            if new.aliases != old.aliases:
                gone = [(name, a) for a in old.aliases if a not in new.aliases]
                moved = [(name, a, v) for a, v in new.aliases.items() if old.aliases.get(a) != v]
                with conn.cursor() as cur:
                    if gone:
                        cur.executemany("DELETE FROM aliases WHERE name = %s AND alias = %s", gone)
                    if moved:
                        cur.executemany(
                            "INSERT INTO aliases (name, alias, version) VALUES (%s, %s, %s)"
                            " ON CONFLICT (name, alias) DO UPDATE SET version = EXCLUDED.version",
                            moved,
                        )
            self._append_events(conn, name, events)
            return new

        return self._transaction("update the model", body)

    # -- audit -----------------------------------------------------------------------------------------
    @staticmethod
    def _event_from_row(row: tuple[Any, ...]) -> AuditEvent:
        model, seq, time_, actor, action, version, before, after, comment, prev_hash, hash_ = row
        return AuditEvent(
            model=model,
            seq=seq,
            time=time_,
            actor=actor,
            action=action,
            version=version,
            before=None if before is None else json.loads(before),
            after=None if after is None else json.loads(after),
            comment=comment,
            prev_hash=prev_hash,
            hash=hash_,
        )

    def list_events(
        self, name: str | None = None, *, after: int = 0, actions: Collection[str] | None = None
    ) -> list[AuditEvent]:
        wanted = sorted(set(actions)) if actions is not None else None
        only = " AND action = ANY(%(actions)s)" if wanted is not None else ""
        params: dict[str, Any] = {"actions": wanted, "name": name, "after": int(after)}
        if name is None:
            rows = self._query(
                f"SELECT {_EVENT_COLS} FROM events WHERE left(model, 1) <> '_'{only} ORDER BY id", params
            )
        else:
            rows = self._query(
                f"SELECT {_EVENT_COLS} FROM events WHERE model = %(name)s AND seq > %(after)s{only} ORDER BY seq",
                params,
            )
            if not rows:
                self._require_model(name)
        return [self._event_from_row(r) for r in rows]

    def audit_head(self, name: str) -> tuple[int, str]:
        rows = self._query("SELECT event_seq, event_hash FROM models WHERE name = %s", [name])
        if not rows:
            raise no_such_model(name)
        return int(rows[0][0]), str(rows[0][1])

    # -- usage log -----------------------------------------------------------------------------------
    def record_usage(self, record: UsageRecord) -> None:
        data = record.model_dump_json()
        self._transaction(
            "record usage",
            lambda conn: conn.execute(
                "INSERT INTO usage (name, version, time, record) VALUES (%s, %s, %s, %s)",
                [record.name, record.version, record.time, data],
            ),
        )

    def list_usage(self, name: str, version: int | None = None, *, limit: int | None = None) -> list[UsageRecord]:
        where, args = (
            ("name = %s AND version = %s", [name, int(version)]) if version is not None else ("name = %s", [name])
        )
        tail = f" LIMIT {int(limit)}" if limit is not None else ""
        rows = self._query(f"SELECT record FROM usage WHERE {where} ORDER BY id DESC{tail}", args)
        return [UsageRecord.model_validate_json(r[0]) for r in reversed(rows)]

    def trim_usage(self, name: str, before: datetime) -> int:
        return self._transaction(
            "trim usage",
            lambda conn: conn.execute("DELETE FROM usage WHERE name = %s AND time < %s", [name, before]).rowcount,
        )
