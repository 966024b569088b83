"""A throwaway PostgreSQL server for the test suite: a pytest plugin (listed in conftest's
``pytest_plugins``), in the style of tests/emulators.py.

- ``postgres_server`` (session): ``initdb`` into a temporary folder and ``postgres`` listening on
  127.0.0.1 at a free port, its unix socket in that folder, stopped by PID (fast shutdown) when the
  session ends. ``initdb`` refuses to run as root, so as root both run as the ``postgres`` user
  (``runuser -u postgres --``; Debian's package creates that user) and the folder is owned by it.
  Durability is off (``fsync=off``): the cluster lives for one session. TCP logins need a
  password (scram-sha-256); the test role ``modelreg_test`` has one and may create databases.
- ``postgres_dsn`` (function): a fresh database owned by the test role for each test, dropped
  afterwards, as a ``postgresql://`` URL with the password in it (the stores must never show it).

Binaries: ``$PG_BIN`` if set, else ``initdb`` on PATH, else the newest
``/usr/lib/postgresql/<version>/bin``. Install them with ``apt-get install postgresql`` (the nox
session does so when they are missing). When the server cannot start, the test is skipped with
the reason, except with ``CI=true``, where it fails.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.emulators import EmulatorUnavailable, free_port, unavailable

TEST_ROLE = "modelreg_test"
TEST_PASSWORD = "pw-" + uuid.uuid4().hex[:16]
ADMIN_ROLE = "postgres"


def postgres_bindir() -> Path:
    """The folder holding initdb and postgres."""
    env = os.environ.get("PG_BIN")
    if env:
        return Path(env)
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1].parent
    raise EmulatorUnavailable(
        "PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin): "
        "apt-get install postgresql, or set PG_BIN"
    )


class PostgresServer:
    """One PostgreSQL cluster in a temporary folder, on 127.0.0.1:<free port>."""

    name = "postgres"
    start_timeout = 60.0

    def __init__(self, workdir: Path) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.workdir = workdir
        self.data = workdir / "data"
        self.socket_dir = workdir / "socket"
        self.log_path = workdir / "postgres.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.as_root = os.geteuid() == 0
        self.bindir = postgres_bindir()

    # -- commands ---------------------------------------------------------------------------------
    def _as_owner(self, cmd: list[str]) -> list[str]:
        if not self.as_root:
            return cmd
        runuser = shutil.which("runuser")
        if runuser is None:
            raise EmulatorUnavailable("running as root, and runuser (util-linux) is missing: cannot run initdb")
        return [runuser, "-u", ADMIN_ROLE, "--", *cmd]

    def _chown(self, path: Path) -> None:
        if self.as_root:
            shutil.chown(path, ADMIN_ROLE, ADMIN_ROLE)

    @property
    def admin_user(self) -> str:
        return ADMIN_ROLE if self.as_root else getpass.getuser()

    def admin_dsn(self, dbname: str = "postgres") -> str:
        """The superuser over the unix socket (trust), for setting up roles and databases."""
        return f"host={self.socket_dir} port={self.port} user={self.admin_user} dbname={dbname}"

    def dsn(self, dbname: str, *, user: str = TEST_ROLE, password: str | None = TEST_PASSWORD) -> str:
        auth = f"{user}:{password}" if password is not None else user
        return f"postgresql://{auth}@{self.host}:{self.port}/{dbname}"

    @property
    def pid(self) -> int | None:
        """The postmaster's PID (from ``postmaster.pid``)."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        return None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __repr__(self) -> str:
        return f"<PostgresServer {self.host}:{self.port} pid={self.pid}>"

    def _log_tail(self, n: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-n:].strip()
        return ""

    # -- lifecycle --------------------------------------------------------------------------------
    def init(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._chown(self.workdir)
        self.socket_dir.mkdir(exist_ok=True)
        self._chown(self.socket_dir)
        cmd = self._as_owner(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                self.admin_user,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]
        )
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        except OSError as exc:
            raise EmulatorUnavailable(f"cannot run {cmd[0]!r}: {exc}") from exc
        if done.returncode != 0:
            raise EmulatorUnavailable(f"initdb failed ({done.returncode}): {done.stderr.strip()[-2000:]}")

    def start(self) -> None:
        if self.running:
            return
        if not (self.data / "PG_VERSION").exists():
            self.init()
        cmd = self._as_owner(
            [
                str(self.bindir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.socket_dir),
                "-c",
                f"listen_addresses={self.host}",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=128MB",
            ]
        )
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise EmulatorUnavailable(f"cannot run {cmd[0]!r}: {exc}") from exc
        finally:
            log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code, self.process = self.process.returncode, None
                raise EmulatorUnavailable(f"postgres exited with code {code} at start; log:\n{self._log_tail()}")
            if self.responds():
                self._set_up_roles()
                return
            time.sleep(0.1)
        self.stop()
        raise EmulatorUnavailable(
            f"postgres did not accept connections on {self.host}:{self.port} within {self.start_timeout:.0f} s; "
            f"log:\n{self._log_tail()}"
        )

    def responds(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.admin_dsn(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def _set_up_roles(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_dsn(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [TEST_ROLE]).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL(verb + " ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                    sql.Identifier(TEST_ROLE), sql.Literal(TEST_PASSWORD)
                )
            )

    def stop(self) -> None:
        """Fast shutdown by the postmaster's PID (SIGINT), then SIGKILL if it lingers."""
        proc, self.process = self.process, None
        if proc is None:
            return
        pid = self.pid
        for sig, wait in ((signal.SIGINT, 30), (signal.SIGKILL, 10)):
            if proc.poll() is not None:
                break
            target = pid if pid is not None else proc.pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, sig)
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue

    def restart(self) -> None:
        self.stop()
        self.start()

    # -- databases --------------------------------------------------------------------------------
    def create_database(self, owner: str = TEST_ROLE) -> str:
        import psycopg
        from psycopg import sql

        name = "mr_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.admin_dsn(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0").format(
                    sql.Identifier(name), sql.Identifier(owner)
                )
            )
        return name

    def drop_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def execute(self, dbname: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement as the superuser in ``dbname``; return its rows (if any)."""
        import psycopg

        with psycopg.connect(self.admin_dsn(dbname), autocommit=True) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []


def _start(server: PostgresServer) -> PostgresServer:
    try:
        server.start()
    except EmulatorUnavailable as exc:
        unavailable(str(exc))
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    workdir = Path(tempfile.mkdtemp(prefix="modelreg-postgres-"))
    workdir.chmod(0o755)  # the postgres user must reach its cluster folder inside
    try:
        server = PostgresServer(workdir / "cluster")
    except EmulatorUnavailable as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        unavailable(str(exc))
        raise  # pragma: no cover - unavailable() skips or fails
    try:
        _start(server)
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    """The name of a fresh, empty database owned by the test role; dropped after the test."""
    if not postgres_server.running:  # a test stopped it and failed before restarting it
        _start(postgres_server)
    try:
        name = postgres_server.create_database()
    except Exception as exc:
        unavailable(f"could not create a database on {postgres_server!r}: {type(exc).__name__}: {exc}")
        raise  # pragma: no cover
    yield name
    with contextlib.suppress(Exception):
        postgres_server.drop_database(name)


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer, postgres_database: str) -> str:
    """``postgresql://modelreg_test:<password>@127.0.0.1:<port>/<fresh database>``."""
    return postgres_server.dsn(postgres_database)
