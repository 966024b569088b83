"""SDK exceptions turned into :class:`~modelreg.errors.ModelregError` subclasses that name the
backend, the object and what to check, with every credential from ``storage_options`` masked."""

from __future__ import annotations

import errno
import re
from collections.abc import Iterable
from typing import Any

from ...errors import (
    AccessDeniedError,
    BackendBusyError,
    BackendError,
    BlobNotFound,
    ModelregError,
    OutOfSpaceError,
    StorageNotFoundError,
    UnreachableError,
)
from .retry import error_code, exception_chain, http_status, is_transient

__all__ = ["classify", "mask", "secrets_in", "translate"]


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
    for e in exception_chain(exc):
        code = error_code(e)
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
    for e in exception_chain(exc):
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
        status = http_status(e)
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
