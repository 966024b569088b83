"""PostgreSQL metadata store: what the conformance suite does not cover, on a real server
(tests/postgres_server.py).

- the location forms: ``metadata=postgresql://...``, one string with ``?artifacts=`` for
  ``Registry(...)``, ``--registry`` and ``$MODELREG_URI``, ``postgres://``, ``+driver``, ``?schema=``;
- libpq's settings: PG* environment variables, a password file, a service file;
- the password is never shown: ``url``, ``repr`` and error messages;
- errors: refused connection, failed login, missing database, missing privileges, a newer schema;
- migrations by clients starting at once; serialization failures and deadlocks retried;
- 16 writer processes on one model: consecutive numbers, one production holder after every
  commit (a replay of the audit chain), ``verify()`` clean;
- ``modelreg copy`` from SQLite to PostgreSQL with the audit history intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from modelreg import Registry, cli
from modelreg.errors import (
    AccessDeniedError,
    BackendBusyError,
    InvalidInputError,
    MissingDependencyError,
    SchemaVersionError,
    StorageNotFoundError,
    UnreachableError,
)
from modelreg.stores.postgres import SCHEMA_VERSION, PostgresMetadataStore, redact_dsn
from modelreg.testing.metadata import ev, make_draft, make_model
from tests.emulators import free_port
from tests.postgres_server import TEST_PASSWORD, TEST_ROLE, PostgresServer
from tests.test_copy import assert_same, build_source
from tests.test_races import replay

ROOT = Path(__file__).resolve().parents[1]


def blob(tmp_path: Path, content: bytes = b"weights") -> Path:
    path = tmp_path / f"m-{abs(hash(content)) % 10_000}.bin"
    path.write_bytes(content)
    return path


# -- locations ------------------------------------------------------------------------------------
def test_metadata_url_with_artifacts(postgres_dsn: str, tmp_path: Path) -> None:
    with Registry(metadata=postgres_dsn, artifacts=str(tmp_path / "blobs")) as reg:
        assert isinstance(reg.metadata, PostgresMetadataStore)
        mv = reg.register("churn", blob(tmp_path), capture=None)
        assert mv.version == 1
        assert TEST_PASSWORD not in repr(reg) and TEST_PASSWORD not in reg.metadata.url
    with Registry(
        metadata=postgres_dsn.replace("postgresql://", "postgres://", 1), artifacts=tmp_path / "blobs"
    ) as reg:
        assert reg.get_version("churn/1").artifact.digest == mv.artifact.digest


def test_one_string_carries_both_stores(postgres_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"{postgres_dsn}?artifacts={tmp_path / 'blobs'}"
    with Registry(url) as reg:
        reg.register("churn", blob(tmp_path), capture=None)
        assert reg.artifacts.url.endswith("blobs")
    driver = url.replace("postgresql://", "postgresql+psycopg://", 1)
    with Registry(driver) as reg:
        assert reg.get_version("churn/1").version == 1
    # $MODELREG_URI and --registry read the same grammar
    monkeypatch.setenv("MODELREG_URI", url)
    with Registry() as reg:
        assert [m.name for m in reg.list_models()] == ["churn"]
    monkeypatch.delenv("MODELREG_URI")
    assert cli.main(["--registry", url, "--json", "list"]) == 0


def test_a_bare_postgres_url_asks_for_artifacts(postgres_dsn: str) -> None:
    with pytest.raises(InvalidInputError, match=r"PostgreSQL metadata store only.*artifacts=") as info:
        Registry(postgres_dsn)
    assert TEST_PASSWORD not in str(info.value)  # the URL is shown without its password
    assert f"{TEST_ROLE}@127.0.0.1" in str(info.value)


def test_schema_parameter_keeps_registries_apart(
    postgres_server: PostgresServer, postgres_database: str, postgres_dsn: str, tmp_path: Path
) -> None:
    with Registry(f"{postgres_dsn}?schema=team_a&artifacts={tmp_path / 'a'}") as a:
        a.register("churn", blob(tmp_path), capture=None)
    with Registry(f"{postgres_dsn}?schema=team_b&artifacts={tmp_path / 'b'}") as b:
        assert b.list_models() == []
    rows = postgres_server.execute(
        postgres_database, "SELECT table_schema FROM information_schema.tables WHERE table_name = 'versions'"
    )
    assert sorted(r[0] for r in rows) == ["team_a", "team_b"]


def test_missing_driver_is_reported_before_anything_is_opened(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [m for m in sys.modules if m == "psycopg" or m.startswith("psycopg.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setattr("modelreg.uri.is_installed", lambda module: module != "psycopg")
    with pytest.raises(MissingDependencyError, match=r"psycopg.*\[postgres\]"):
        Registry(metadata="postgresql://db.example.com/reg", artifacts=str(tmp_path / "blobs"))
    assert not (tmp_path / "blobs").exists()


def test_import_modelreg_does_not_import_psycopg(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        import modelreg
        reg = modelreg.Registry(sys.argv[1])
        reg.list_models()
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("psycopg", "psycopg_pool")))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "reg")], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout


# -- libpq settings ---------------------------------------------------------------------------------
def test_libpq_environment_password_file_and_service_file(
    postgres_server: PostgresServer, postgres_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSERVICE", "PGSERVICEFILE"):
        monkeypatch.delenv(key, raising=False)
    # everything from the environment: an empty DSN
    monkeypatch.setenv("PGHOST", postgres_server.host)
    monkeypatch.setenv("PGPORT", str(postgres_server.port))
    monkeypatch.setenv("PGUSER", TEST_ROLE)
    monkeypatch.setenv("PGDATABASE", postgres_database)
    monkeypatch.setenv("PGPASSWORD", TEST_PASSWORD)
    store = PostgresMetadataStore("")
    store.create_model(make_model("churn"), ev("create_model"))
    store.close()
    # the password from a password file (~/.pgpass format), the rest from the URL
    monkeypatch.delenv("PGPASSWORD")
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"{postgres_server.host}:{postgres_server.port}:*:{TEST_ROLE}:{TEST_PASSWORD}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    store = PostgresMetadataStore(postgres_server.dsn(postgres_database, password=None))
    assert [m.name for m in store.list_models()] == ["churn"]
    store.close()
    # a service file names the server; the URL names the service only
    for key in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE"):
        monkeypatch.delenv(key)
    services = tmp_path / "pg_service.conf"
    services.write_text(
        f"[registry]\nhost={postgres_server.host}\nport={postgres_server.port}\n"
        f"user={TEST_ROLE}\ndbname={postgres_database}\n"
    )
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    with Registry(f"postgresql:///?service=registry&artifacts={tmp_path / 'blobs'}") as reg:
        assert [m.name for m in reg.list_models()] == ["churn"]
        assert "service=registry" in reg.metadata.url


def test_password_is_never_shown(postgres_dsn: str) -> None:
    store = PostgresMetadataStore(postgres_dsn)
    try:
        for text in (store.url, repr(store), str(store.__dict__)):
            assert TEST_PASSWORD not in text
        assert store.url.startswith(f"postgresql://{TEST_ROLE}@127.0.0.1:")
    finally:
        store.close()
    assert redact_dsn("host=db user=ana password=s3cret dbname=reg sslmode=require") == (
        "postgresql://ana@db/reg?sslmode=require"
    )


# -- errors -----------------------------------------------------------------------------------------
def test_connection_refused_is_unreachable() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(UnreachableError) as info:
        PostgresMetadataStore(f"postgresql://ana:s3cret-pw@127.0.0.1:{port}/registry", connect_timeout=3)
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "database 'registry'" in message
    assert "s3cret-pw" not in message and "check that the server is running" in message


def test_wrong_password_is_access_denied(postgres_server: PostgresServer, postgres_database: str) -> None:
    dsn = postgres_server.dsn(postgres_database, password="not-the-password")
    with pytest.raises(AccessDeniedError) as info:
        PostgresMetadataStore(dsn)
    message = str(info.value)
    assert "not-the-password" not in message and TEST_ROLE in message and "password" in message


def test_missing_database_is_named(postgres_server: PostgresServer) -> None:
    with pytest.raises(StorageNotFoundError, match=r"database does not exist.*createdb") as info:
        PostgresMetadataStore(postgres_server.dsn("no_such_db"))
    assert TEST_PASSWORD not in str(info.value)


def test_missing_privileges_are_access_denied(
    postgres_server: PostgresServer, postgres_database: str, postgres_dsn: str
) -> None:
    PostgresMetadataStore(postgres_dsn).close()  # the schema exists
    postgres_server.execute("postgres", "DROP ROLE IF EXISTS mr_nobody")
    postgres_server.execute("postgres", "CREATE ROLE mr_nobody LOGIN PASSWORD 'nobody-pw'")
    try:
        with pytest.raises(AccessDeniedError, match=r"permission denied.*schema 'modelreg'"):
            store = PostgresMetadataStore(
                postgres_server.dsn(postgres_database, user="mr_nobody", password="nobody-pw")
            )
            try:
                store.list_models()
            finally:
                store.close()
    finally:
        postgres_server.execute(postgres_database, "DROP OWNED BY mr_nobody")
        postgres_server.execute("postgres", "DROP ROLE mr_nobody")


def test_a_newer_schema_is_refused(postgres_server: PostgresServer, postgres_database: str, postgres_dsn: str) -> None:
    PostgresMetadataStore(postgres_dsn).close()
    postgres_server.execute(
        postgres_database, "UPDATE modelreg.meta SET value = %s WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 1)]
    )
    with pytest.raises(SchemaVersionError, match=r"newer than this modelreg understands.*pip install -U") as info:
        PostgresMetadataStore(postgres_dsn)
    assert TEST_PASSWORD not in str(info.value)


# -- migrations and retries ---------------------------------------------------------------------------
def test_clients_starting_at_once_migrate_once(
    postgres_server: PostgresServer, postgres_database: str, postgres_dsn: str
) -> None:
    stores: list[PostgresMetadataStore] = []
    failures: list[BaseException] = []
    go = threading.Barrier(8)

    def open_one() -> None:
        go.wait()
        try:
            stores.append(PostgresMetadataStore(postgres_dsn, pool_size=1))
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == [] and len(stores) == 8
    assert {s.schema_version for s in stores} == {SCHEMA_VERSION}
    rows = postgres_server.execute(postgres_database, "SELECT key, value FROM modelreg.meta ORDER BY key")
    assert dict(rows)["schema_version"] == str(SCHEMA_VERSION)
    stores[0].create_model(make_model("churn"), ev("create_model"))
    assert [m.name for m in stores[-1].list_models()] == ["churn"]
    for s in stores:
        s.close()


@pytest.mark.parametrize("error", [psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected])
def test_serialization_failures_and_deadlocks_are_retried(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch, error: type[psycopg.Error]
) -> None:
    store = PostgresMetadataStore(postgres_dsn)
    try:
        store.create_model(make_model("churn"), ev("create_model"))
        real = store._append_events
        failures = iter([True, True, False])

        def flaky(conn: Any, name: str, drafts: list[Any]) -> None:
            real(conn, name, drafts)
            if next(failures, False):
                raise error("simulated")

        monkeypatch.setattr(store, "_append_events", flaky)
        mv = store.add_version(make_draft(), ev("register"))
        assert mv.version == 1 and store.retries == 2  # the losers were rolled back whole
        assert [e.seq for e in store.list_events("churn")] == [1, 2]

        monkeypatch.setattr(store, "_retries", 1)
        failures = iter([True, True])
        with pytest.raises(BackendBusyError, match="conflicted with other writers"):
            store.add_version(make_draft(n=1), ev("register"))
        assert store.resolve("churn") == 1
    finally:
        store.close()


# -- many writers on one model ------------------------------------------------------------------------
PROCESSES = 16
OPERATIONS = 50

WORKER = textwrap.dedent(
    """
    import json, random, sys, time
    from pathlib import Path
    from modelreg import Registry, StageRules
    from modelreg.errors import InvalidTransitionError
    dsn, blobs, worker, n_ops, out, tmp = sys.argv[1:7]
    worker, n_ops = int(worker), int(n_ops)
    # production can only be left by being replaced (the displaced holder is archived), so after the
    # first promotion exactly one version must hold it at every commit
    rules = StageRules.from_table({
        "experimental": ["staging", "production", "archived"], "staging": ["production", "experimental", "archived"],
        "production": [], "archived": ["experimental", "staging", "production"],
    })
    reg = Registry(metadata=dsn, artifacts=blobs, actor=f"worker-{worker}", rules=rules, pool_size=1)
    rnd = random.Random(worker)
    done = {"registered": [], "tags": [], "metrics": [], "refused": 0}
    go = Path(tmp) / "go"
    while not go.exists():  # start together
        time.sleep(0.01)
    for i in range(n_ops):
        kinds = ["register", "transition", "transition", "set_alias", "set_tags", "log_metrics"]
        op = "register" if i < 2 else rnd.choice(kinds)
        if op == "register":
            f = Path(tmp) / f"w{worker}-{i}.bin"
            f.write_bytes(f"worker {worker} op {i}".encode())
            done["registered"].append(reg.register("race", f, capture=None).version)
            continue
        v = rnd.randint(1, reg.get_model("race").latest_version)
        try:
            if op == "transition":
                reg.transition("race", v, rnd.choice(["staging", "production", "production", "archived"]))
            elif op == "set_alias":
                reg.set_alias("race", rnd.choice(["champion", "challenger"]), v)
            elif op == "set_tags":
                key = f"w{worker}-{i}"
                reg.set_tags(f"race/{v}", {key: "1"})
                done["tags"].append([v, key])
            else:
                key = f"m_w{worker}_{i}"
                reg.log_metrics(f"race/{v}", {key: float(i)})
                done["metrics"].append([v, key])
        except InvalidTransitionError:
            done["refused"] += 1
    reg.close()
    Path(out).write_text(json.dumps(done))
    """
)


def test_many_writer_processes_on_one_model(postgres_dsn: str, tmp_path: Path) -> None:
    blobs = str(tmp_path / "blobs")
    with Registry(metadata=postgres_dsn, artifacts=blobs) as reg:
        reg.create_model("race")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs, outs = [], []
    for w in range(PROCESSES):
        out = tmp_path / f"worker-{w}.json"
        outs.append(out)
        args = [postgres_dsn, blobs, str(w), str(OPERATIONS), str(out), str(tmp_path)]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER, *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    (tmp_path / "go").write_text("go")
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    results = [json.loads(o.read_text()) for o in outs]

    with Registry(metadata=postgres_dsn, artifacts=blobs) as reg:
        registered = [v for r in results for v in r["registered"]]
        assert len(registered) == len(set(registered)), "a version number was handed out twice"
        assert sorted(registered) == [v.version for v in reg.list_versions("race")]
        assert sorted(registered) == list(range(1, len(registered) + 1))

        events = reg.history("race")
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        expected = replay(events)  # at most one production holder after every commit
        state = reg.metadata.get_state("race")
        assert {v: str(s.stage) for v, s in state.versions.items()} == expected["stages"]
        assert state.aliases == expected["aliases"]
        assert {v: s.tags for v, s in state.versions.items()} == expected["tags"]
        assert {v: s.logged_metrics for v, s in state.versions.items()} == expected["metrics"]
        assert len(state.holders("production")) == expected["ever"] == 1
        for r in results:  # nothing acknowledged was lost
            for v, key in r["tags"]:
                assert state.versions[v].tags.get(key) == "1", f"tag {key} on version {v} was lost"
            for v, key in r["metrics"]:
                assert key in state.versions[v].logged_metrics, f"metric {key} on version {v} was lost"
        assert sum(e.action == "register" for e in events) == len(registered)
        assert sum(e.action == "set_tags" for e in events) == sum(len(r["tags"]) for r in results)
        report = reg.verify()
        assert report.ok, report.problems
        assert report.events_checked == len(events)


# -- copy ---------------------------------------------------------------------------------------------------
def test_cli_copy_from_sqlite_to_postgres_keeps_history(postgres_dsn: str, tmp_path: Path) -> None:
    src_path = tmp_path / "src"
    with Registry(src_path) as src:
        build_source(src, tmp_path)
    dst_url = f"{postgres_dsn}?artifacts={tmp_path / 'dst-blobs'}"
    assert cli.main(["copy", str(src_path), dst_url]) == 0
    with Registry(src_path) as src, Registry(dst_url) as dst:
        assert_same(src, dst)  # events with their times, actors and hashes; states; versions; verify() clean
        head = dst.metadata.audit_head("churn")
        for e in dst.history("churn"):
            assert e.expected_hash() == e.hash  # the hashes verify on arrival
        assert head == src.metadata.audit_head("churn")
    assert cli.main(["copy", str(src_path), dst_url]) == 0  # idempotent: a second run has nothing to copy
    with Registry(dst_url) as dst:
        assert [v.version for v in dst.list_versions("churn")] == [1, 3, 4]


# -- the roles of docs/deploying.md ------------------------------------------------------------------------
def _documented_grants() -> list[str]:
    """The SQL of the roles section of docs/deploying.md: its statements, without psql's ``\\c``
    and the two example login roles."""
    text = (ROOT / "docs" / "deploying.md").read_text(encoding="utf-8")
    block = text.split("## 2. Roles and permissions", 1)[1].split("```sql", 1)[1].split("```", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.strip() and not ln.startswith(("\\", "--"))]
    statements = [s.strip() for s in " ".join(lines).split(";") if s.strip()]
    return [s for s in statements if not s.startswith(("CREATE ROLE ana", "CREATE ROLE scoring"))]


def test_documented_roles_let_writers_write_and_readers_read(
    postgres_server: PostgresServer, postgres_database: str, postgres_dsn: str, tmp_path: Path
) -> None:
    import uuid

    from modelreg.models import UsageRecord

    PostgresMetadataStore(postgres_dsn).close()  # the owner creates the schema
    suffix = uuid.uuid4().hex[:8]
    rw, ro, writer, reader = (f"{r}_{suffix}" for r in ("modelreg_rw", "modelreg_ro", "w", "r"))
    statements = [s.replace("modelreg_rw", rw).replace("modelreg_ro", ro) for s in _documented_grants()]
    assert any("GRANT SELECT, INSERT ON modelreg.events" in s for s in statements)
    try:
        for statement in statements:
            postgres_server.execute(postgres_database, statement)
        postgres_server.execute("postgres", f"CREATE ROLE {writer} LOGIN PASSWORD 'w-pw' IN ROLE {rw}")
        postgres_server.execute("postgres", f"CREATE ROLE {reader} LOGIN PASSWORD 'r-pw' IN ROLE {ro}")
        blobs = str(tmp_path / "blobs")
        as_writer = postgres_server.dsn(postgres_database, user=writer, password="w-pw")
        with Registry(metadata=as_writer, artifacts=blobs) as reg:
            reg.register("churn", blob(tmp_path, b"one"), capture=None)
            reg.register("churn", blob(tmp_path, b"two"), capture=None)
            reg.transition("churn", 1, "production")
            reg.set_alias("churn", "champion", 1)
            reg.set_tags("churn/2", {"team": "fraud"})
            reg.log_metrics("churn/2", {"auc": 0.9})
            reg.purge("churn/2")
            assert reg.verify().ok
        with psycopg.connect(as_writer) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE modelreg.events SET actor = 'someone else'")  # the audit log is append-only
        as_reader = postgres_server.dsn(postgres_database, user=reader, password="r-pw")
        with Registry(metadata=as_reader, artifacts=blobs) as reg:
            assert reg.get_version("churn@production").version == 1
            assert [v.ref for v in reg.search("stage = 'production'")] == ["churn/1"]
            use = UsageRecord(
                name="churn", version=1, digest="sha256:" + "0" * 64, action="load", actor="svc", host="h", pid=1
            )
            reg.metadata.record_usage(use)
            assert reg.metadata.list_usage("churn") == [use]
            with pytest.raises(AccessDeniedError, match=r"permission denied.*schema 'modelreg'") as info:
                reg.set_alias("churn", "challenger", 1)
            assert "r-pw" not in str(info.value)
    finally:
        for role in (writer, reader, rw, ro):
            with contextlib.suppress(psycopg.Error):
                postgres_server.execute(postgres_database, f"DROP OWNED BY {role}")
            with contextlib.suppress(psycopg.Error):
                postgres_server.execute("postgres", f"DROP ROLE {role}")
