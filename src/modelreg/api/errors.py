"""Errors of the HTTP API: one table from error class to HTTP status, and the errors only the API raises.

Every error response is an :class:`ApiError` record, ``{"error": "VersionNotFound", "message": "...",
"remedy": {...} | null}``: the class name and message the Python library raises for the same call.
Imports nothing from the web stack.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ..errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidInputError,
    InvalidTransitionError,
    ModelregError,
    NotFoundError,
    OutOfSpaceError,
    PolicyViolation,
    UnreachableError,
)

__all__ = [
    "STATUS",
    "ApiError",
    "Forbidden",
    "MethodNotAllowed",
    "PayloadTooLarge",
    "RangeNotSatisfiable",
    "RateLimited",
    "RemedyText",
    "Unauthorized",
    "error_body",
    "status_of",
]


class Unauthorized(ModelregError):
    """The request carries no bearer token, or one the registry does not know (revoked?)."""


class Forbidden(ModelregError):
    """The token's role does not allow this request, or the server is read-only."""


class RateLimited(ModelregError):
    """The token sent more requests than its rate limit allows; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLarge(InvalidInputError):
    """The request body is larger than the server accepts."""


class RangeNotSatisfiable(InvalidInputError):
    """A ``Range`` header asks for bytes outside the file."""

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


class MethodNotAllowed(ModelregError):
    """The path exists but does not take this HTTP method."""


STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (Unauthorized, 401),
    (Forbidden, 403),
    (RateLimited, 429),
    (PayloadTooLarge, 413),
    (RangeNotSatisfiable, 416),
    (MethodNotAllowed, 405),
    (NotFoundError, 404),
    (AlreadyExistsError, 409),
    (ConflictError, 409),
    (InvalidTransitionError, 409),
    (InvalidInputError, 422),
    (PolicyViolation, 403),
    (OutOfSpaceError, 507),
    (UnreachableError, 503),
)
"""Error class -> HTTP status, first match wins (subclasses before their bases). Anything else is 500,
among them the backend's own refusals (AccessDeniedError, StorageNotFoundError: the server's
configuration, not the caller's request) and IntegrityError."""


def status_of(exc: BaseException) -> int:
    """The HTTP status of an error raised while answering a request."""
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


class RemedyText(BaseModel):
    """What to do about an error, for a Python caller and at the command line."""

    model_config = ConfigDict(frozen=True)

    python: str
    cli: str


class ApiError(BaseModel):
    """The body of every error response."""

    model_config = ConfigDict(frozen=True)

    error: str = Field(description="the error class name, as raised by the Python library (e.g. VersionNotFound)")
    message: str = Field(description="the message, as str(exc) in Python")
    remedy: RemedyText | None = Field(default=None, description="what to do next, when the error says")


def error_body(exc: BaseException) -> ApiError:
    """The :class:`ApiError` of an exception (a non-modelreg one is an InternalError with no detail)."""
    if not isinstance(exc, ModelregError):
        return ApiError(error="InternalError", message="internal server error; see the server's log")
    remedy = RemedyText(python=exc.remedy.python, cli=exc.remedy.cli) if exc.remedy is not None else None
    return ApiError(error=type(exc).__name__, message=str(exc), remedy=remedy)
