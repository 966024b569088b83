"""Exceptions raised by modelreg.

Every error derives from :class:`ModelregError`, and every message says what
to do next::

    ModelregError
    ├── InvalidInputError (also ValueError)
    │   ├── InvalidReferenceError
    │   └── ArtifactChangedError
    ├── NotFoundError (also LookupError)
    │   ├── ModelNotFound
    │   ├── VersionNotFound
    │   └── BlobNotFound
    ├── AlreadyExistsError
    ├── InvalidTransitionError
    ├── PolicyViolation
    ├── ConflictError
    ├── IntegrityError
    ├── BackendError
    │   ├── AccessDeniedError
    │   ├── StorageNotFoundError
    │   ├── UnreachableError
    │   │   └── BackendBusyError
    │   └── OutOfSpaceError
    ├── SchemaVersionError
    └── MissingDependencyError (also ImportError)
"""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "AlreadyExistsError",
    "ArtifactChangedError",
    "BackendBusyError",
    "BackendError",
    "BlobNotFound",
    "ConflictError",
    "IntegrityError",
    "InvalidInputError",
    "InvalidReferenceError",
    "InvalidTransitionError",
    "MissingDependencyError",
    "ModelNotFound",
    "ModelregError",
    "NotFoundError",
    "OutOfSpaceError",
    "PolicyViolation",
    "SchemaVersionError",
    "StorageNotFoundError",
    "UnreachableError",
    "VersionNotFound",
]


class ModelregError(Exception):
    """Base class of every error raised by modelreg."""


class InvalidInputError(ModelregError, ValueError):
    """An argument was rejected before anything was written."""


class InvalidReferenceError(InvalidInputError):
    """A model reference such as ``churn/3`` or ``churn@production`` could not be parsed."""


class ArtifactChangedError(InvalidInputError):
    """A file of the artifact changed while it was being registered; nothing was committed."""


class NotFoundError(ModelregError, LookupError):
    """The model, version, alias, stage holder or blob does not exist."""


class ModelNotFound(NotFoundError):
    """No model has this name."""


class VersionNotFound(NotFoundError):
    """The model exists but has no such version (or no version in that stage/alias)."""


class BlobNotFound(NotFoundError):
    """An artifact blob recorded in the metadata is missing from the artifact store."""


class AlreadyExistsError(ModelregError):
    """Something that must be unique exists already."""


class InvalidTransitionError(ModelregError):
    """The stage transition is not in the transition table."""


class PolicyViolation(ModelregError):
    """The registry's governance policy refuses the action; ``unmet`` lists every unmet gate."""

    def __init__(self, message: str, unmet: list[str] | None = None) -> None:
        super().__init__(message)
        self.unmet: list[str] = list(unmet or [])


class ConflictError(ModelregError):
    """A concurrent writer changed the same state; retry the operation."""


class IntegrityError(ModelregError):
    """Stored content does not match its recorded digest, or the audit chain is broken."""


class BackendError(ModelregError):
    """A storage backend failed; the message names the backend and the object."""


class AccessDeniedError(BackendError):
    """The backend refused access: bad or missing credentials, no permission, or a read-only file system."""


class StorageNotFoundError(BackendError):
    """The storage location itself is missing: no such bucket, container or folder."""


class UnreachableError(BackendError):
    """The backend could not be reached or kept failing: network down, connection refused, timeout, 5xx; retry later."""


class BackendBusyError(UnreachableError):
    """The backend stayed busy past its timeout (a locked SQLite database, throttling); retry later."""


class OutOfSpaceError(BackendError):
    """The disk or the storage quota is full; free space, then retry."""


class SchemaVersionError(ModelregError):
    """The registry was written by a newer modelreg; upgrade to read or write it."""


class MissingDependencyError(ModelregError, ImportError):
    """An optional dependency is needed for this storage scheme."""
