"""Transient failures (connection reset or refused, timeouts, HTTP 408/429/500/502/503/504,
throttling codes) and the one retry loop: capped, jittered exponential backoff."""

from __future__ import annotations

import contextlib
import errno
import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from ...errors import (
    ModelregError,
)
from .config import TransferConfig

T = TypeVar("T")
logger = logging.getLogger("modelreg.stores")

__all__ = [
    "error_code",
    "exception_chain",
    "http_status",
    "is_transient",
    "tune_azure_retries",
    "with_retries",
    "with_retries_async",
]


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


def exception_chain(exc: BaseException) -> Iterable[BaseException]:
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


def http_status(e: BaseException) -> int | None:
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


def error_code(e: BaseException) -> str | None:
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
    for e in exception_chain(exc):
        if isinstance(e, (ModelregError, FileNotFoundError, PermissionError, FileExistsError, IsADirectoryError)):
            return False
        if error_code(e) in _TRANSIENT_CODES:
            return True
        status = http_status(e)
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
