"""Transient failures are retried with backoff; a registration either succeeds or fails cleanly.

Three ways to break things: a fault-injecting wrapper filesystem (exact control
over which call fails and how), a TCP proxy in front of each emulator that
answers 503/429 or resets connections mid-body (the real SDKs' error paths),
and the emulator process stopped in the middle of an upload.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fsspec.implementations.memory import MemoryFileSystem

from modelreg import (
    AccessDeniedError,
    BackendBusyError,
    BackendError,
    ModelNotFound,
    Registry,
    StorageNotFoundError,
    UnreachableError,
)
from modelreg.stores._cloud import MiB, TransferConfig
from modelreg.stores.artifacts import FsspecArtifactStore
from tests.emulators import Bucket, Fault, FaultProxy, unique_name, via_proxy

# -- a fault-injecting filesystem ------------------------------------------------------------------


class FlakyFileSystem(MemoryFileSystem):
    """An in-memory filesystem whose calls fail on demand.

    ``fail(method, *errors)`` makes the next calls of ``method`` raise those errors
    in turn; ``partial=True`` on put_file first writes half of the data to the
    destination (a non-atomic store dying mid-upload).
    """

    protocol = "flaky"
    cachable = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failures: dict[str, list[BaseException]] = {}
        self.calls: dict[str, int] = {}
        self.partial = False

    def fail(self, method: str, *errors: BaseException) -> None:
        self.failures.setdefault(method, []).extend(errors)

    def _maybe_fail(self, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1
        queue = self.failures.get(method)
        if queue:
            raise queue.pop(0)

    def put_file(self, lpath: str, rpath: str, callback: Any = None, **kwargs: Any) -> None:
        if self.failures.get("put_file") and self.partial:
            with open(lpath, "rb") as f:
                data = f.read()
            super().pipe_file(rpath, data[: len(data) // 2])
        self._maybe_fail("put_file")
        super().put_file(lpath, rpath, callback=callback, **kwargs)

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        self._maybe_fail("info")
        return super().info(path, **kwargs)

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if "r" in mode:
            self._maybe_fail("open")
            f = super()._open(path, mode, **kwargs)
            return _FlakyReader(f, self)
        return super()._open(path, mode, **kwargs)


class _FlakyReader:
    def __init__(self, f: Any, fs: FlakyFileSystem) -> None:
        self.f = f
        self.fs = fs

    def read(self, size: int = -1) -> bytes:
        self.fs._maybe_fail("read")
        return self.f.read(size)

    def seek(self, pos: int, whence: int = 0) -> int:
        return self.f.seek(pos, whence)

    def close(self) -> None:
        self.f.close()


def throttled() -> Exception:
    import botocore.exceptions

    err = botocore.exceptions.ClientError(
        {
            "Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
            "ResponseMetadata": {"HTTPStatusCode": 503},
        },
        "PutObject",
    )
    wrapped = OSError(errno.EIO, "Please reduce your request rate.")  # what s3fs raises, the ClientError as cause
    wrapped.__cause__ = err
    return wrapped


def server_error() -> Exception:
    import botocore.exceptions

    return botocore.exceptions.ClientError(
        {
            "Error": {"Code": "InternalError", "Message": "We encountered an internal error."},
            "ResponseMetadata": {"HTTPStatusCode": 500},
        },
        "UploadPart",
    )


def connection_reset() -> Exception:
    return ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")


@pytest.fixture
def flaky(tmp_path: Path) -> tuple[Registry, FlakyFileSystem]:
    import uuid

    fs = FlakyFileSystem()
    store = FsspecArtifactStore(f"flaky://blobs-{uuid.uuid4().hex}", fs=fs, retries=4, backoff=0.01, backoff_max=0.05)
    reg = Registry(metadata=f"sqlite:///{tmp_path}/reg.db", artifacts=store)
    yield reg, fs
    reg.close()


def _model(tmp_path: Path, size: int = 300_000) -> tuple[Path, bytes]:
    data = os.urandom(size)
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    return path, data


@pytest.mark.parametrize(
    "make_error", [connection_reset, throttled, server_error], ids=["connection-reset", "throttled-503", "internal-500"]
)
def test_transient_upload_errors_are_retried(
    flaky, tmp_path: Path, caplog, make_error: Callable[[], Exception]
) -> None:
    reg, fs = flaky
    path, data = _model(tmp_path)
    fs.partial = True  # each failed attempt leaves half an object behind, as a dying non-atomic upload would
    fs.fail("put_file", make_error(), make_error())
    with caplog.at_level(logging.WARNING, logger="modelreg"):
        mv = reg.register("churn", path, capture=None)
    assert fs.calls["put_file"] == 3
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 2 and "retry 1/3" in retries[0] and "retry 2/3" in retries[1]
    assert reg.download(mv.ref, tmp_path / "out").read_bytes() == data


def test_transient_metadata_errors_are_retried(flaky, tmp_path: Path) -> None:
    reg, fs = flaky
    path, data = _model(tmp_path)
    fs.fail("info", connection_reset())
    mv = reg.register("churn", path, capture=None)
    fs.fail("open", server_error())
    assert reg.download(mv.ref, tmp_path / "out").read_bytes() == data


def test_a_read_that_fails_midway_resumes_at_the_same_offset(flaky, tmp_path: Path) -> None:
    reg, fs = flaky
    path, data = _model(tmp_path, 20 * MiB + 5)  # three 8 MiB reads
    mv = reg.register("churn", path, capture=None)
    fs.calls.clear()
    fs.failures["read"] = []
    original = fs._maybe_fail

    def fail_second_read(method: str) -> None:
        original(method)
        if method == "read" and fs.calls["read"] == 2:
            raise connection_reset()

    fs._maybe_fail = fail_second_read  # type: ignore[method-assign]
    assert reg.download(mv.ref, tmp_path / "out").read_bytes() == data
    assert fs.calls["open"] == 2  # reopened once, at the offset reached


def test_when_retries_run_out_nothing_is_registered(flaky, tmp_path: Path) -> None:
    reg, fs = flaky
    path, _ = _model(tmp_path)
    fs.partial = True
    fs.fail("put_file", *[connection_reset() for _ in range(4)])
    with pytest.raises(BackendError) as err:
        reg.register("churn", path, capture=None)
    text = str(err.value)
    assert "after 4 attempts" in text and "unreachable or failing" in text and "sha256:" in text
    assert fs.calls["put_file"] == 4
    assert reg.list_models() == []  # no model, no half version
    with pytest.raises(ModelNotFound):
        reg.get_version("churn")
    assert reg.list_models() == [] and reg.search() == []


def test_permanent_errors_are_not_retried(flaky, tmp_path: Path) -> None:
    reg, fs = flaky
    path, _ = _model(tmp_path)
    fs.fail("put_file", PermissionError(errno.EACCES, "Access Denied"))
    with pytest.raises(BackendError, match="access denied") as err:
        reg.register("churn", path, capture=None)
    assert fs.calls["put_file"] == 1
    assert "check the credentials" in str(err.value)
    assert reg.list_models() == []


def test_backoff_is_exponential_capped_and_jittered() -> None:
    config = TransferConfig(backoff=0.5, backoff_max=4)
    for attempt, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (9, 4.0)]:
        delays = [config.delay(attempt) for _ in range(50)]
        assert all(base / 2 <= d <= base for d in delays)
        assert len(set(delays)) > 1


# -- faults from the network, in front of the real emulators -------------------------------------------

UPLOAD_REQUEST = {  # how each backend sends one upload part
    "s3": ("PUT", "partNumber="),
    "gcs": ("PUT", "upload_id="),
    "azure": ("PUT", "comp=block"),
}
BUSY = {  # each service's "slow down / try again" reply
    "s3": Fault(
        status=503,
        body=b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
        headers={"Content-Type": "application/xml"},
    ),
    "gcs": Fault(
        status=429,
        body=b'{"error": {"code": 429, "message": "rateLimitExceeded"}}',
        headers={"Content-Type": "application/json"},
    ),
    "azure": Fault(
        status=503,
        body=b"<Error><Code>ServerBusy</Code><Message>The server is busy.</Message></Error>",
        headers={"Content-Type": "application/xml", "x-ms-error-code": "ServerBusy"},
    ),
}


@pytest.fixture(params=["s3", "gcs", "azure"])
def proxied(request: pytest.FixtureRequest, fault_proxy) -> tuple[str, Bucket, FaultProxy, dict[str, Any]]:
    """(backend, bucket, proxy, storage options through the proxy) for each cloud."""
    backend = request.param
    if backend == "gcs":  # resumable sessions must point at the proxy too
        bucket, proxy = request.getfixturevalue("gcs_bucket_behind_proxy")
        options = dict(bucket.storage_options)
    else:
        bucket = request.getfixturevalue("s3_bucket" if backend == "s3" else "azure_container")
        proxy = fault_proxy(bucket.server.port)
        options = via_proxy(bucket, proxy)
    if backend == "s3":  # leave the retrying to modelreg: botocore gives up at once
        options["config_kwargs"] = {"retries": {"max_attempts": 1, "mode": "standard"}}
    return backend, bucket, proxy, options


def _register_through(proxied_: tuple, tmp_path: Path, fault: Fault) -> tuple[Any, bytes, Fault]:
    backend, bucket, proxy, options = proxied_
    method, marker = UPLOAD_REQUEST[backend]
    fault.method, fault.path_contains = method, marker
    proxy.add(fault)
    path, data = _model(tmp_path, 11 * MiB)
    with Registry(
        metadata=f"sqlite:///{tmp_path}/reg.db",
        artifacts=f"{bucket.url}/blobs",
        storage_options={**options, "chunk_size": 5 * MiB, "retries": 4, "backoff": 0.05},
    ) as reg:
        mv = reg.register("churn", path, capture=None)
        out = reg.download(mv.ref, tmp_path / "out", overwrite=True)
        assert out.read_bytes() == data
    return mv, data, fault


def test_busy_replies_are_retried(proxied, tmp_path: Path) -> None:
    backend = proxied[0]
    template = BUSY[backend]
    fault = Fault(
        action="status", status=template.status, body=template.body, headers=dict(template.headers), skip=1, times=2
    )
    _, _, fault = _register_through(proxied, tmp_path, fault)
    assert fault.hits == 2


def test_a_connection_reset_mid_part_is_retried(proxied, tmp_path: Path) -> None:
    fault = Fault(action="reset", after_bytes=1 * MiB, skip=1, times=1)
    _, _, fault = _register_through(proxied, tmp_path, fault)
    assert fault.hits == 1


def test_an_internal_error_on_the_first_part_is_retried(proxied, tmp_path: Path) -> None:
    backend = proxied[0]
    body = (
        b'{"error": {"code": 500, "message": "Backend Error"}}'
        if backend == "gcs"
        else b"<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>"
    )
    fault = Fault(action="status", status=500, body=body, times=1)
    _, _, fault = _register_through(proxied, tmp_path, fault)
    assert fault.hits == 1


def test_a_failed_upload_leaves_no_object_and_no_version(proxied, tmp_path: Path) -> None:
    backend, bucket, proxy, options = proxied
    method, marker = UPLOAD_REQUEST[backend]
    proxy.add(Fault(action="reset", method=method, path_contains=marker, after_bytes=MiB, skip=1, times=1000))
    path, data = _model(tmp_path, 11 * MiB)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with Registry(
        metadata=f"sqlite:///{tmp_path}/reg.db",
        artifacts=f"{bucket.url}/blobs",
        storage_options={**options, "chunk_size": 5 * MiB, "retries": 2, "backoff": 0.05},
    ) as reg:
        with pytest.raises(BackendError, match="after 2 attempts"):
            reg.register("churn", path, capture=None)
        assert reg.list_models() == []
        assert not reg.artifacts.exists(digest)
        assert [b.digest for b in reg.artifacts.iter_blobs()] == []
    if backend == "s3":  # the multipart upload was aborted, its parts freed
        fs = bucket.fs()
        assert fs.call_s3("list_multipart_uploads", Bucket=bucket.name).get("Uploads", []) == []


# -- the emulator stopped in the middle of an upload ----------------------------------------------------

CLOUDS = {"s3": "s3_bucket", "gcs": "gcs_bucket", "azure": "azure_container"}


@pytest.mark.parametrize("backend", sorted(CLOUDS))
def test_emulator_stopped_mid_upload(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    bucket: Bucket = request.getfixturevalue(CLOUDS[backend])
    options: dict[str, Any] = {
        **bucket.storage_options,
        "chunk_size": 5 * MiB,
        "concurrency": 2,
        "retries": 2,
        "backoff": 0.05,
    }
    if backend == "s3":
        options["config_kwargs"] = {"retries": {"max_attempts": 1, "mode": "standard"}}
    path, data = _model(tmp_path, 16 * MiB)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    server = bucket.server
    stopped: list[int] = []

    def stop_after_first_part(phase: str, done: int, total: int) -> None:
        if phase == "upload" and 0 < done < total and not stopped:
            stopped.append(done)
            server.stop()

    reg = Registry(metadata=f"sqlite:///{tmp_path}/reg.db", artifacts=f"{bucket.url}/blobs", storage_options=options)
    try:
        with pytest.raises(BackendError) as err:
            reg.register("churn", path, capture=None, progress=stop_after_first_part)
        assert stopped, "the upload finished before the emulator could be stopped"
        assert isinstance(err.value, UnreachableError), err.value
        text = str(err.value)
        assert {"s3": "s3", "gcs": "gcs", "azure": "azure"}[backend] in text
        assert digest in text and "check" in text
        # nothing half-registered: no model, no version
        assert reg.list_models() == []
        assert not server.running
    finally:
        server.start()
        bucket.create()
    mv = reg.register("churn", path, capture=None)
    assert mv.version == 1
    assert reg.download(mv.ref, tmp_path / "out").read_bytes() == data
    reg.close()


# -- the kind of failure is the error's class ---------------------------------------------------------

DENIED = {  # each service's answer to a request with wrong credentials
    "s3": Fault(
        status=403,
        body=b"<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided "
        b"does not exist in our records.</Message></Error>",
        headers={"Content-Type": "application/xml"},
    ),
    "gcs": Fault(
        status=403,
        body=b'{"error": {"code": 403, "message": "caller does not have storage.objects.create '
        b'access to the Google Cloud Storage object."}}',  # (a 401 gcsfs retries for 30 s)
        headers={"Content-Type": "application/json"},
    ),
    "azure": Fault(
        status=403,
        body=b"<Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate "
        b"the request.</Message></Error>",
        headers={"Content-Type": "application/xml", "x-ms-error-code": "AuthenticationFailed"},
    ),
}
REFUSED_METHOD = {"s3": "PUT", "gcs": None, "azure": "PUT"}  # (the proxy would send a body after a HEAD reply)


@pytest.mark.parametrize("backend", sorted(CLOUDS))
def test_a_missing_bucket_is_storage_not_found(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    bucket: Bucket = request.getfixturevalue(CLOUDS[backend])
    missing = unique_name("absent")
    scheme = bucket.url.split("://")[0]
    path, _ = _model(tmp_path, 1000)
    with Registry(
        metadata=f"sqlite:///{tmp_path}/reg.db",
        artifacts=f"{scheme}://{missing}/blobs",
        storage_options={**bucket.storage_options, "retries": 1},
    ) as reg:
        with pytest.raises(StorageNotFoundError) as err:
            reg.register("churn", path, capture=None)
        assert missing in str(err.value) and "does not exist" in str(err.value)
        assert reg.list_models() == []


def test_wrong_credentials_are_access_denied(proxied, tmp_path: Path) -> None:
    """Every request is refused as the service refuses wrong credentials (Azurite checks the key for
    real: see test_cloud_artifacts); nothing is retried or registered."""
    backend, bucket, proxy, options = proxied
    template = DENIED[backend]
    proxy.add(
        Fault(
            action="status",
            method=REFUSED_METHOD[backend],
            status=template.status,
            body=template.body,
            headers=dict(template.headers),
            times=1000,
        )
    )
    path, _ = _model(tmp_path, 1000)
    with Registry(
        metadata=f"sqlite:///{tmp_path}/reg.db",
        artifacts=f"{bucket.url}/blobs",
        storage_options={**options, "retries": 3, "backoff": 0.05},
    ) as reg:
        with pytest.raises(AccessDeniedError, match="access denied") as err:
            reg.register("churn", path, capture=None)
        assert "check" in str(err.value)
        assert reg.list_models() == []


def test_throttling_that_never_stops_is_busy(azure_container: Bucket, fault_proxy, tmp_path: Path) -> None:
    """On Azure; s3fs and gcsfs retry throttling themselves for many seconds first (the classification
    of their errors is checked in test_each_kind_of_sdk_error_has_its_class)."""
    bucket, backend = azure_container, "azure"
    proxy = fault_proxy(bucket.server.port)
    options = via_proxy(bucket, proxy)
    template = BUSY[backend]
    proxy.add(
        Fault(
            action="status",
            method="PUT",
            status=template.status,
            body=template.body,
            headers=dict(template.headers),
            times=1000,
        )
    )
    path, _ = _model(tmp_path, 1000)
    with Registry(
        metadata=f"sqlite:///{tmp_path}/reg.db",
        artifacts=f"{bucket.url}/blobs",
        storage_options={**options, "retries": 2, "backoff": 0.01, "backoff_max": 0.02},
    ) as reg:
        with pytest.raises(BackendBusyError, match="busy") as err:
            reg.register("churn", path, capture=None)
        assert isinstance(err.value, UnreachableError) and "after 2 attempts" in str(err.value)
        assert reg.list_models() == []


def test_each_kind_of_sdk_error_has_its_class() -> None:
    """What the SDKs raise, translated (the errors the emulators cannot produce quickly, or at all)."""
    import botocore.exceptions
    from gcsfs.retry import HttpError

    from modelreg import BlobNotFound, OutOfSpaceError
    from modelreg.stores import _cloud

    def kind(exc: BaseException, backend: str = "s3", action: str = "upload") -> type:
        return type(_cloud.translate(exc, backend=backend, location="x://b/blobs", action=action, obj="blob sha256:1"))

    def client_error(code: str, status: int) -> Exception:
        return botocore.exceptions.ClientError(
            {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject"
        )

    assert kind(throttled()) is BackendBusyError  # s3fs's OSError around a SlowDown
    assert kind(HttpError({"code": 429, "message": "rateLimitExceeded"}), "gcs") is BackendBusyError
    assert kind(server_error()) is UnreachableError
    assert kind(connection_reset()) is UnreachableError
    assert kind(botocore.exceptions.EndpointConnectionError(endpoint_url="http://x")) is UnreachableError
    assert kind(client_error("NoSuchBucket", 404)) is StorageNotFoundError
    assert kind(FileNotFoundError("b/o?name=x"), "gcs") is StorageNotFoundError  # gcsfs: upload into no bucket
    assert kind(FileNotFoundError("b/o"), "gcs", "read") is BlobNotFound
    assert kind(client_error("InvalidAccessKeyId", 403)) is AccessDeniedError
    assert (
        kind(OSError("Forbidden: b/o\ncaller does not have storage.objects.create access"), "gcs") is AccessDeniedError
    )
    assert kind(OSError(errno.EROFS, "Read-only file system"), "local") is AccessDeniedError
    assert kind(OSError(errno.ENOSPC, "No space left on device"), "local") is OutOfSpaceError
    assert kind(OSError(errno.EDQUOT, "Disk quota exceeded"), "local") is OutOfSpaceError
    assert kind(client_error("XMinioStorageFull", 507)) is OutOfSpaceError
    assert kind(NotADirectoryError(errno.ENOTDIR, "Not a directory"), "local") is StorageNotFoundError
    assert kind(ValueError("something else")) is BackendError
