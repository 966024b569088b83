"""Object-store plumbing for :class:`~modelreg.stores.artifacts.FsspecArtifactStore`.

- :class:`TransferConfig`: part size, parts in flight and the retry policy,
  with explicit defaults per backend (:data:`DEFAULTS`).
- Bounded-memory uploads: S3 multipart and Azure block uploads send each part
  straight from a window of the local file (:class:`FileSlice`), so memory does
  not grow with the part size or the number of parts in flight. GCS uploads are
  resumable and sequential (one part in memory). Other filesystems use fsspec's
  ``put_file``.
- :func:`with_retries`: retry transient failures (connection reset or refused,
  timeouts, HTTP 408/429/500/502/503/504, throttling codes) with capped,
  jittered exponential backoff.
- :func:`translate`: turn an SDK exception into a :class:`~modelreg.errors.ModelregError`
  that names the backend, the object and what to check, with any credential
  from ``storage_options`` masked.

Nothing here imports a cloud SDK, or asyncio, at module import time: the async upload paths
import asyncio when they run (fsspec's async filesystems have loaded it by then).
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import math
import os
import random
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from ..errors import (
    AccessDeniedError,
    BackendBusyError,
    BackendError,
    BlobNotFound,
    InvalidInputError,
    ModelregError,
    OutOfSpaceError,
    StorageNotFoundError,
    UnreachableError,
)
from ..hashing import ProgressFn

logger = logging.getLogger("modelreg.stores")

MiB = 1024 * 1024
T = TypeVar("T")

__all__ = [
    "DEFAULTS",
    "FileSlice",
    "TransferConfig",
    "backend_name",
    "config_for",
    "is_transient",
    "secrets_in",
    "translate",
    "upload_file",
    "with_retries",
]


# -- configuration --------------------------------------------------------------------


@dataclass(frozen=True)
class TransferConfig:
    """How blobs move to and from one backend.

    ``chunk_size``: bytes per upload part (S3 part, Azure block, GCS resumable
    chunk). ``concurrency``: parts in flight at once (S3 and Azure; GCS resumable
    uploads are sequential by protocol), and ranges downloaded at once on Azure.
    ``retries``: attempts per request or part before giving up (1 = no retry);
    ``backoff``/``backoff_max``: first and largest delay in seconds between them.

    Memory does not grow with either: every part is streamed from the local file
    (:class:`FileSlice`) rather than held in memory, and downloads stream to disk
    in small reads. ``chunk_size`` trades request count against the bytes sent
    again when a part fails.
    """

    chunk_size: int = 16 * MiB
    concurrency: int = 4
    retries: int = 5
    backoff: float = 0.5
    backoff_max: float = 20.0

    def __post_init__(self) -> None:
        for name in ("chunk_size", "concurrency", "retries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
        if self.chunk_size < 256 * 1024:
            raise InvalidInputError(f"chunk_size must be at least 256 KiB, got {self.chunk_size}")
        for name in ("backoff", "backoff_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise InvalidInputError(f"{name} must be a non-negative number of seconds, got {value!r}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based): exponential, capped, jittered."""
        base: float = min(self.backoff * (2 ** (attempt - 1)), self.backoff_max)
        return base * (0.5 + random.random() / 2)


# Measured against the emulators (see benchmarks/README.md): these keep a 1 GiB
# upload well under 200 MB of RSS while matching the SDKs' own upload calls.
DEFAULTS: dict[str, TransferConfig] = {
    "s3": TransferConfig(chunk_size=8 * MiB, concurrency=8),
    "gcs": TransferConfig(chunk_size=100 * MiB, concurrency=1),
    "azure": TransferConfig(chunk_size=16 * MiB, concurrency=4),
    "local": TransferConfig(chunk_size=8 * MiB, concurrency=1),
    "other": TransferConfig(chunk_size=8 * MiB, concurrency=1),
}

_BACKENDS = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "file": "local",
    "local": "local",
}

_LIMITS = {  # (minimum part size except the last, maximum number of parts)
    "s3": (5 * MiB, 10_000),
    "azure": (1, 50_000),
}


def backend_name(protocol: str) -> str:
    """``s3``, ``gcs``, ``azure``, ``local`` or ``other`` for an fsspec protocol."""
    return _BACKENDS.get(protocol, "other")


def config_for(backend: str, **overrides: Any) -> TransferConfig:
    """The default :class:`TransferConfig` of ``backend`` with the given fields replaced."""
    base = DEFAULTS.get(backend, DEFAULTS["other"])
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(base, **given) if given else base


def part_size(size: int, config: TransferConfig, backend: str) -> int:
    """The part size for a file of ``size`` bytes, within the backend's limits."""
    minimum, max_parts = _LIMITS.get(backend, (1, 10_000))
    chunk = max(config.chunk_size, minimum)
    if size > chunk * max_parts:
        chunk = math.ceil(size / max_parts)
    if backend == "gcs":  # resumable chunks are multiples of 256 KiB
        chunk = math.ceil(chunk / (256 * 1024)) * 256 * 1024
    return chunk


# -- streaming parts from a file --------------------------------------------------------------


class FileSlice(io.RawIOBase):
    """A read-only, seekable window ``[offset, offset + length)`` of a local file.

    Passed as a request body, the HTTP client streams it from disk in small
    reads, so a part never sits in memory whole. It deliberately has no
    ``fileno()``: clients would otherwise size the body from the whole file.
    """

    def __init__(self, path: str, offset: int, length: int) -> None:
        super().__init__()
        self._path = path
        self._offset = offset
        self._length = length
        self._pos = 0
        self._file: io.BufferedReader | None = None

    def _f(self) -> io.BufferedReader:
        if self._file is None:
            self._file = open(self._path, "rb")  # noqa: SIM115 - closed in close()
        return self._file

    def __len__(self) -> int:
        return self._length

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            new = pos
        elif whence == io.SEEK_CUR:
            new = self._pos + pos
        elif whence == io.SEEK_END:
            new = self._length + pos
        else:
            raise ValueError(f"invalid whence {whence}")
        self._pos = max(0, min(new, self._length))
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self._length - self._pos)
        if n <= 0:
            return 0
        f = self._f()
        f.seek(self._offset + self._pos)
        got = f.readinto(view[:n])
        self._pos += got
        return got

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._length - self._pos
        size = min(size, self._length - self._pos)
        if size <= 0:
            return b""
        buf = bytearray(size)
        n = self.readinto(buf)
        del buf[n:]
        return bytes(buf)

    def readall(self) -> bytes:
        return self.read(-1)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()


# -- transient errors and retries -------------------------------------------------------------

_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "ServerBusy",
    "OperationTimedOut",
    "RequestLimitExceeded",
    "TooManyRequests",
    "TooManyRequestsException",
    "InternalServerError",
}
_TRANSIENT_ERRNOS = {
    errno.ECONNRESET,
    errno.ECONNREFUSED,
    errno.ECONNABORTED,
    errno.EPIPE,
    errno.ETIMEDOUT,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ENETDOWN,
}
_TRANSIENT_NAMES = {
    # botocore
    "EndpointConnectionError",
    "ConnectionClosedError",
    "ReadTimeoutError",
    "ConnectTimeoutError",
    "ResponseStreamingError",
    "IncompleteReadError",
    "HTTPClientError",
    "ProxyConnectionError",
    # aiohttp
    "ServerDisconnectedError",
    "ClientConnectionError",
    "ClientConnectorError",
    "ClientOSError",
    "ClientPayloadError",
    "ServerTimeoutError",
    "ConnectionTimeoutError",
    "SocketTimeoutError",
    # azure-core
    "ServiceRequestError",
    "ServiceResponseError",
    "ServiceRequestTimeoutError",
    "ServiceResponseTimeoutError",
    # fsspec, urllib3, requests
    "FSTimeoutError",
    "ProtocolError",
    "ChunkedEncodingError",
}


def _chain(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend([e.__cause__, e.__context__])
        inner = getattr(e, "inner_exception", None) or getattr(e, "exc", None)
        if isinstance(inner, BaseException):
            todo.append(inner)


def _status(e: BaseException) -> int | None:
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        meta = response.get("ResponseMetadata") or {}
        status = meta.get("HTTPStatusCode")
        if isinstance(status, int):
            return status
    for attr in ("status_code", "status"):
        value = getattr(e, attr, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    code = getattr(e, "code", None)  # gcsfs.retry.HttpError
    if isinstance(code, int) and 100 <= code < 600:
        return code
    if response is not None:
        value = getattr(response, "status_code", None) or getattr(response, "status", None)
        if isinstance(value, int):
            return value
    return None


def _error_code(e: BaseException) -> str | None:
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        code = (response.get("Error") or {}).get("Code")
        if code:
            return str(code)
    code = getattr(e, "error_code", None)  # azure: a StorageErrorCode enum or a string
    if code:
        return str(getattr(code, "value", code))
    headers = getattr(response, "headers", None)
    if headers is not None:
        with contextlib.suppress(Exception):
            code = headers.get("x-ms-error-code")
            if code:
                return str(code)
    m = re.search(r"ErrorCode:(\w+)", str(e))
    return m.group(1) if m else None


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying: connection trouble, timeouts, 5xx, throttling."""
    for e in _chain(exc):
        if isinstance(e, (ModelregError, FileNotFoundError, PermissionError, FileExistsError, IsADirectoryError)):
            return False
        if _error_code(e) in _TRANSIENT_CODES:
            return True
        status = _status(e)
        if status is not None:
            return status in _TRANSIENT_STATUS
        if isinstance(e, (ConnectionError, TimeoutError)) or _is_asyncio_timeout(e):
            return True
        if isinstance(e, OSError) and e.errno in _TRANSIENT_ERRNOS:
            return True
        if type(e).__name__ in _TRANSIENT_NAMES:
            return True
        text = str(e)
        if any(s in text for s in ("SlowDown", "reduce your request rate", "Connection reset", "Server disconnected")):
            return True
    return False


def _is_asyncio_timeout(e: BaseException) -> bool:
    # asyncio.TimeoutError (a distinct class before Python 3.11); without asyncio loaded, nothing raised one
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and isinstance(e, asyncio.TimeoutError)


def with_retries(fn: Callable[[], T], config: TransferConfig, what: str) -> T:
    """Call ``fn``; on a transient failure wait (exponential backoff) and call again, up to ``config.retries`` times."""
    attempt = 1
    while True:
        try:
            return fn()
        except Exception as exc:
            if attempt >= config.retries or not is_transient(exc):
                raise
            delay = config.delay(attempt)
            logger.warning(
                "%s failed (%s), retry %d/%d in %.1f s", what, type(exc).__name__, attempt, config.retries - 1, delay
            )
            time.sleep(delay)
            attempt += 1


async def with_retries_async(fn: Callable[[], Awaitable[T]], config: TransferConfig, what: str) -> T:
    import asyncio

    attempt = 1
    while True:
        try:
            return await fn()
        except Exception as exc:
            if attempt >= config.retries or not is_transient(exc):
                raise
            delay = config.delay(attempt)
            logger.warning(
                "%s failed (%s), retry %d/%d in %.1f s", what, type(exc).__name__, attempt, config.retries - 1, delay
            )
            await asyncio.sleep(delay)
            attempt += 1


def tune_azure_retries(fs: Any, config: TransferConfig) -> None:
    """Make azure-core's per-request retries follow ``config`` (its default waits 15 s, 18 s, 24 s
    between attempts, so an unreachable account takes about a minute per call to report)."""
    client = getattr(fs, "service_client", None)
    policy = getattr(getattr(client, "_config", None), "retry_policy", None)
    if policy is None or not hasattr(policy, "initial_backoff"):
        return
    n = config.retries - 1
    policy.total_retries = policy.connect_retries = policy.read_retries = policy.status_retries = n
    policy.get_backoff_time = lambda settings: config.delay(max(int(settings.get("count", 1)), 1))


# -- secrets and error translation --------------------------------------------------------------

_SECRET_KEY = re.compile(r"secret|key|token|passw|credential|connection|sas|signature|auth|session", re.I)
_CONN_SECRET = re.compile(r"(AccountKey|SharedAccessSignature|SharedAccessKey)=([^;]+)", re.I)


def secrets_in(options: Any) -> list[str]:
    """Credential-like string values in (nested) ``storage_options``, longest first."""
    found: set[str] = set()

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v, key)
        elif isinstance(value, str):
            if (
                _SECRET_KEY.search(key)
                and len(value) >= 4
                and value not in ("anon", "google_default", "cache", "cloud")
            ):
                found.add(value)
            for m in _CONN_SECRET.finditer(value):
                found.add(m.group(2))
        elif value is not None and _SECRET_KEY.search(key) and not isinstance(value, (bool, int, float)):
            text = str(value)
            if len(text) >= 4:
                found.add(text)

    walk(options)
    return sorted(found, key=len, reverse=True)


def mask(text: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        if s and s in text:
            text = text.replace(s, "***")
    return _CONN_SECRET.sub(lambda m: f"{m.group(1)}=***", text)


_WHAT_TO_CHECK = {
    "s3": {
        "access": "check the AWS credentials (storage_options key/secret, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
        "AWS_PROFILE or the instance role) and that they allow s3:GetObject, s3:PutObject, s3:DeleteObject "
        "and s3:ListBucket on this bucket",
        "bucket": "check the bucket name in the URL, that the bucket exists and its region",
        "network": "check the endpoint (storage_options endpoint_url or AWS_ENDPOINT_URL), the network and the "
        "service status",
    },
    "gcs": {
        "access": "check the Google credentials (storage_options token, GOOGLE_APPLICATION_CREDENTIALS or "
        "`gcloud auth application-default login`) and that they grant storage.objects.get, create, list and delete "
        "on this bucket (e.g. the Storage Object User role)",
        "bucket": "check the bucket name in the URL and that the bucket exists",
        "network": "check the endpoint (storage_options endpoint_url or STORAGE_EMULATOR_HOST), the network and "
        "the service status",
    },
    "azure": {
        "access": "check the Azure credentials (storage_options connection_string, account_key, sas_token or "
        "credential; AZURE_STORAGE_CONNECTION_STRING; or DefaultAzureCredential with the Storage Blob "
        "Data Contributor role on this container)",
        "bucket": "check the container name in the URL, account_name, and that the container exists",
        "network": "check the account endpoint (connection_string BlobEndpoint or account_name), the network and "
        "the service status",
    },
    "local": {
        "access": "check that this user may write to the folder and that its file system is not mounted read-only",
        "bucket": "check that the folder exists and is a folder",
        "network": "check the folder's mount (a network file system may be unreachable)",
    },
}
_GENERIC = {
    "access": "check the credentials and permissions for this location",
    "bucket": "check that the location exists",
    "network": "check the location, the network and the service status",
}
_FREE_SPACE = "free space on that disk or raise the storage quota, then retry"

_NOT_FOUND_CODES = {"NoSuchKey", "BlobNotFound", "NotFound", "404"}
_NO_BUCKET_CODES = {"NoSuchBucket", "ContainerNotFound", "ResourceNotFound"}
_ACCESS_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AuthenticationFailed",
    "AuthorizationFailure",
    "AuthorizationPermissionMismatch",
    "InvalidToken",
    "ExpiredToken",
    "Forbidden",
    "AccountIsDisabled",
    "InsufficientAccountPermissions",
    "AllAccessDisabled",
}
_SPACE_CODES = {"XMinioStorageFull", "StorageFull", "InsufficientStorage"}
_BUSY_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "ServerBusy",
    "TooManyRequests",
    "TooManyRequestsException",
    "RequestLimitExceeded",
}
_SPACE_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_ACCESS_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS}


def classify(exc: BaseException) -> str:
    """What went wrong, from the SDK error codes, HTTP statuses and errnos in the exception chain.

    ``not_found`` (the object), ``no_bucket`` (the bucket, container or folder), ``access``
    (credentials, permissions, a read-only file system), ``space`` (disk full, quota),
    ``busy`` (throttled), ``network`` (other transient failures: unreachable, timeouts, 5xx),
    ``exists`` or ``other``.
    """
    for e in _chain(exc):
        code = _error_code(e)
        if (
            code in _NO_BUCKET_CODES
            or "bucket does not exist" in str(e).lower()
            or "container does not exist" in str(e).lower()
        ):
            return "no_bucket"
        if code in _ACCESS_CODES:
            return "access"
        if code in _SPACE_CODES:
            return "space"
        if code in _NOT_FOUND_CODES:
            return "not_found"
        if code in _BUSY_CODES:
            return "busy"
    for e in _chain(exc):
        if isinstance(e, FileExistsError):
            return "exists"
        if isinstance(e, OSError) and e.errno in _SPACE_ERRNOS:
            return "space"
        if isinstance(e, PermissionError) or (isinstance(e, OSError) and e.errno in _ACCESS_ERRNOS):
            return "access"
        if type(e) is OSError and str(e).startswith("Forbidden: "):  # gcsfs's HTTP 403
            return "access"
        if isinstance(e, NotADirectoryError):
            return "no_bucket"
        if isinstance(e, FileNotFoundError):
            return "not_found"
        status = _status(e)
        if status in (401, 403):
            return "access"
        if status == 404:
            return "not_found"
        if status == 507:
            return "space"
        if status == 429:
            return "busy"
        if type(e).__name__ in (
            "ClientAuthenticationError",
            "DefaultCredentialsError",
            "RefreshError",
            "NoCredentialsError",
            "PartialCredentialsError",
            "CredentialRetrievalError",
        ):
            return "access"
    if is_transient(exc):
        return "network"
    return "other"


def translate(
    exc: BaseException,
    *,
    backend: str,
    location: str,
    action: str,
    obj: str,
    secrets: Iterable[str] = (),
    attempts: int | None = None,
) -> ModelregError:
    """A :class:`ModelregError` for an exception raised by a storage SDK.

    ``location`` is the store URL, ``obj`` the object (e.g. the blob digest) and
    ``action`` the verb (``upload``, ``read``...). Credentials are masked. The class
    says what went wrong (:func:`classify`): :class:`~modelreg.errors.BlobNotFound`
    for a missing object that was to be read, :class:`~modelreg.errors.StorageNotFoundError`,
    :class:`~modelreg.errors.AccessDeniedError`, :class:`~modelreg.errors.OutOfSpaceError`,
    :class:`~modelreg.errors.BackendBusyError`, :class:`~modelreg.errors.UnreachableError`,
    else :class:`~modelreg.errors.BackendError`.
    """
    if isinstance(exc, ModelregError):
        return exc
    hints = _WHAT_TO_CHECK.get(backend, _GENERIC)
    kind = classify(exc)
    detail = mask(f"{type(exc).__name__}: {exc}", secrets)
    if len(detail) > 600:
        detail = detail[:600] + "..."
    where = f"{backend} artifact store {location!r}"
    if kind == "not_found" and action in ("read", "stat"):
        return BlobNotFound(f"blob {obj} is missing from the {where}; run `modelreg verify` to list affected versions")
    tries = f" after {attempts} attempts" if attempts and attempts > 1 else ""
    if kind == "not_found" and action in ("upload", "write", "create"):
        kind = "no_bucket"  # writing an object that is "not found": the bucket or folder it goes in is missing
    if kind == "no_bucket":
        missing = "folder" if backend == "local" else "bucket or container"
        return StorageNotFoundError(
            f"could not {action} {obj} in the {where}: the {missing} does not exist ({detail}); {hints['bucket']}"
        )
    if kind == "access":
        return AccessDeniedError(f"access denied trying to {action} {obj} in the {where} ({detail}); {hints['access']}")
    if kind == "space":
        return OutOfSpaceError(f"could not {action} {obj} in the {where}: no space left ({detail}); {_FREE_SPACE}")
    if kind == "busy":
        return BackendBusyError(
            f"could not {action} {obj} in the {where}{tries}: the service is busy (throttling "
            f"requests) and unreachable for now ({detail}); retry later; if it persists, "
            f"{hints['network']}"
        )
    if kind == "network":
        return UnreachableError(
            f"could not {action} {obj} in the {where}{tries}: the service is unreachable or failing "
            f"({detail}); {hints['network']}"
        )
    return BackendError(f"could not {action} {obj} in the {where} ({detail}); {hints['bucket']}, and {hints['access']}")


# -- uploads -----------------------------------------------------------------------------------------


class _Progress:
    def __init__(self, progress: ProgressFn | None, total: int, phase: str = "upload") -> None:
        self.progress = progress
        self.total = total
        self.phase = phase
        self.done = 0

    def add(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.phase, min(self.done, self.total), self.total)

    def finish(self) -> None:
        if self.progress is not None and self.done < self.total:
            self.done = self.total
            self.progress(self.phase, self.total, self.total)
        elif self.progress is not None and self.total == 0:
            self.progress(self.phase, 0, 0)


def _run(fs: Any, coro: Any) -> Any:
    from fsspec.asyn import sync

    return sync(fs.loop, lambda: coro)


def upload_file(
    fs: Any, backend: str, local: str, remote: str, config: TransferConfig, progress: ProgressFn | None = None
) -> None:
    """Upload ``local`` to ``remote`` with bounded memory, retrying each part on transient errors.

    The object appears under ``remote`` only when complete (S3 multipart
    completion, Azure block-list commit, GCS resumable finalisation).
    """
    size = os.path.getsize(local)
    tracker = _Progress(progress, size)
    if backend == "s3" and _is_async(fs):
        _run(fs, _s3_upload(fs, local, remote, size, config, tracker))
    elif backend == "azure" and _is_async(fs) and hasattr(fs, "service_client"):
        _run(fs, _azure_upload(fs, local, remote, size, config, tracker))
    elif backend == "gcs" and _is_async(fs) and hasattr(fs, "session"):
        _run(fs, _gcs_upload(fs, local, remote, size, config, tracker))
    else:

        def put_generic() -> None:
            tracker.done = 0
            fs.put_file(local, remote, callback=_Callback(tracker))

        with_retries(put_generic, config, f"upload of {remote}")
    tracker.finish()


def download_file(
    fs: Any,
    backend: str,
    remote: str,
    local: str,
    size: int,
    config: TransferConfig,
    progress: ProgressFn | None = None,
) -> None:
    """Download ``remote`` to the local file ``local`` with bounded memory (unverified: hash it after).

    S3 and GCS stream one GET to disk in small reads (a failed read resumes at its
    offset on S3); Azure downloads ``config.concurrency`` ranges at once. A
    transient failure restarts the download, up to ``config.retries`` attempts.
    """
    tracker = _Progress(progress, size, "download")

    def get() -> None:
        tracker.done = 0
        cb = _Callback(tracker)
        if backend == "s3":
            fs.get_file(remote, local, callback=cb, max_concurrency=1)
        elif backend == "gcs":
            fs.get_file(remote, local, callback=cb, concurrency=1)
        elif backend == "azure":
            fs.get_file(remote, local, callback=cb, max_concurrency=config.concurrency)
        else:
            fs.get_file(remote, local, callback=cb)

    with_retries(get, config, f"download of {remote}")
    tracker.finish()


def _is_async(fs: Any) -> bool:
    return bool(getattr(fs, "async_impl", False)) and getattr(fs, "loop", None) is not None


class _Callback:
    """fsspec callback adapter reporting to a :class:`_Progress`."""

    def __init__(self, tracker: _Progress) -> None:
        self.tracker = tracker
        self.value = 0
        self.size: int | None = None

    def set_size(self, size: int | None) -> None:
        self.size = size

    def absolute_update(self, value: int) -> None:
        self.relative_update(value - self.value)

    def relative_update(self, inc: int = 1) -> None:
        self.value += inc
        if inc > 0:
            self.tracker.add(inc)

    def call(self, *args: Any, **kwargs: Any) -> None:
        pass

    def branched(self, *args: Any, **kwargs: Any) -> None:
        return None

    def branch_coro(self, fn: Any) -> Any:
        return fn

    def close(self) -> None:
        pass

    def __enter__(self) -> _Callback:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


async def _bounded(jobs: list[Callable[[], Any]], concurrency: int) -> list[Any]:
    """Run the job coroutines with at most ``concurrency`` in flight; results in order.

    The first failure cancels the rest and is raised.
    """
    import asyncio

    results: list[Any] = [None] * len(jobs)
    queue = iter(enumerate(jobs))

    async def worker() -> None:
        for i, job in queue:
            results[i] = await job()

    workers = [asyncio.ensure_future(worker()) for _ in range(min(concurrency, max(len(jobs), 1)))]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise
    return results


async def _s3_upload(fs: Any, local: str, remote: str, size: int, config: TransferConfig, tracker: _Progress) -> None:
    bucket, key, _ = fs.split_path(remote)
    chunk = part_size(size, config, "s3")

    if size <= chunk:

        async def put_once() -> None:
            with FileSlice(local, 0, size) as body:
                await fs._call_s3("put_object", Bucket=bucket, Key=key, Body=body, ContentLength=size)

        await with_retries_async(put_once, config, f"upload of s3://{remote}")
        tracker.add(size)
        fs.invalidate_cache(remote)
        return

    # CRC32 part checksums, as boto3's upload_file sends: S3 checks every part, and the
    # object gets a composite checksum (without it some servers hash the whole object again)
    mpu = await with_retries_async(
        lambda: fs._call_s3("create_multipart_upload", Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32"),
        config,
        f"upload of s3://{remote}",
    )
    upload_id = mpu["UploadId"]

    def job(number: int, offset: int, length: int) -> Callable[[], Any]:
        async def send() -> dict[str, Any]:
            with FileSlice(local, offset, length) as body:
                out = await fs._call_s3(
                    "upload_part",
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=body,
                    ContentLength=length,
                    ChecksumAlgorithm="CRC32",
                )
            part = {"PartNumber": number, "ETag": out["ETag"]}
            if out.get("ChecksumCRC32"):
                part["ChecksumCRC32"] = out["ChecksumCRC32"]
            return part

        async def run() -> dict[str, Any]:
            part = await with_retries_async(send, config, f"part {number} of s3://{remote}")
            tracker.add(length)
            return part

        return run

    jobs = [job(i + 1, off, min(chunk, size - off)) for i, off in enumerate(range(0, size, chunk))]
    try:
        parts = await _bounded(jobs, config.concurrency)
        await with_retries_async(
            lambda: fs._call_s3(
                "complete_multipart_upload",
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            ),
            config,
            f"completing s3://{remote}",
        )
    except BaseException:
        try:
            await fs._call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception as exc:
            logger.debug("could not abort multipart upload of s3://%s: %s", remote, type(exc).__name__)
        raise
    fs.invalidate_cache(remote)


async def _azure_upload(
    fs: Any, local: str, remote: str, size: int, config: TransferConfig, tracker: _Progress
) -> None:
    container, path, _ = fs.split_path(remote)
    chunk = part_size(size, config, "azure")
    prefix = os.urandom(8).hex()
    async with fs.service_client.get_blob_client(container, path) as bc:
        if size == 0:
            await with_retries_async(
                lambda: bc.upload_blob(b"", overwrite=True, metadata={"is_directory": "false"}, retry_total=0),
                config,
                f"upload of az://{remote}",
            )
            fs.invalidate_cache(remote)
            return

        def job(number: int, offset: int, length: int) -> Callable[[], Any]:
            # ids are unique per upload (the SDK base64-encodes them), so concurrent
            # uploads of the same blob never mix their uncommitted blocks
            block_id = f"{prefix}-{number:06d}"

            async def send() -> None:
                with FileSlice(local, offset, length) as body:
                    # retry_total=0: this part is retried by with_retries_async, with our backoff
                    await bc.stage_block(block_id, body, length=length, retry_total=0)

            async def run() -> str:
                await with_retries_async(send, config, f"block {number} of az://{remote}")
                tracker.add(length)
                return block_id

            return run

        from azure.storage.blob import BlobBlock

        for round_ in (1, 2):
            jobs = [job(i, off, min(chunk, size - off)) for i, off in enumerate(range(0, size, chunk))]
            ids = await _bounded(jobs, config.concurrency)
            try:
                await with_retries_async(
                    # ignore: mypy cannot infer the type of a lambda parameter with a default
                    lambda ids=ids: bc.commit_block_list(  # type: ignore[misc]
                        [BlobBlock(block_id=i) for i in ids], metadata={"is_directory": "false"}, retry_total=0
                    ),
                    config,
                    f"committing az://{remote}",
                )
                break
            except Exception as exc:
                # a commit of the same blob by another writer discards our uncommitted blocks
                if _error_code(exc) != "InvalidBlockList":
                    raise
                try:
                    props = await bc.get_blob_properties()
                except Exception:
                    props = None
                if props is not None and props.size == size:
                    break  # the other writer published the same content
                if round_ == 2:
                    raise
                tracker.done = 0
                prefix = os.urandom(8).hex()
    fs.invalidate_cache(remote)


async def _gcs_upload(fs: Any, local: str, remote: str, size: int, config: TransferConfig, tracker: _Progress) -> None:
    """A resumable upload: chunks are sent in order, each streamed from the file.

    A failed chunk is sent again from its start (the session keeps what it has;
    a 308 reply's ``Range`` says where to continue). The object exists only once
    the last chunk lands, and its size is checked then.
    """
    import asyncio
    import json

    from gcsfs.core import initiate_upload
    from gcsfs.retry import validate_response

    bucket, key, _ = fs.split_path(remote)
    chunk = part_size(size, config, "gcs")
    location = await with_retries_async(
        lambda: initiate_upload(fs, bucket, key, "application/octet-stream"), config, f"upload of gs://{remote}"
    )

    async def put(offset: int, length: int) -> tuple[int, str | None, bytes]:
        if length:
            last = offset + length >= size
            content_range = f"bytes {offset}-{offset + length - 1}/{size if last else '*'}"
        else:
            content_range = f"bytes */{size}"
        headers = fs._get_headers(
            {"Content-Range": content_range, "Content-Length": str(length), "Content-Type": "application/octet-stream"}
        )
        await fs._set_session()
        with FileSlice(local, offset, length) as body:
            async with fs.session.request(
                "PUT", location, headers=headers, data=body if length else b"", timeout=fs.requests_timeout
            ) as r:
                contents = await r.read()
                if r.status == 308:  # chunk persisted, upload incomplete
                    return r.status, r.headers.get("Range"), b""
                validate_response(r.status, contents, remote)
                return r.status, None, contents

    pos = 0
    attempt = 1
    while True:
        length = min(chunk, size - pos)
        try:
            status, rng, contents = await put(pos, length)
        except Exception as exc:
            if attempt >= config.retries or not is_transient(exc):
                raise
            delay = config.delay(attempt)
            logger.warning(
                "chunk at %d of gs://%s failed (%s), retry %d/%d in %.1f s",
                pos,
                remote,
                type(exc).__name__,
                attempt,
                config.retries - 1,
                delay,
            )
            await asyncio.sleep(delay)
            attempt += 1
            continue
        attempt = 1
        if status != 308:
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                stored = int(json.loads(contents or b"{}").get("size", size))
                if stored != size:
                    raise OSError(f"gs://{remote} was finalised with {stored} bytes instead of {size}")
            tracker.add(size - tracker.done)
            break
        new_pos = int(rng.rsplit("-", 1)[1]) + 1 if rng else 0
        tracker.add(max(0, new_pos - pos))
        pos = new_pos
    fs.invalidate_cache(remote)
