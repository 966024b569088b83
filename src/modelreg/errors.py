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
    │   └── SignatureError
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

from dataclasses import dataclass
from typing import Literal

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
    "SignatureError",
    "StorageNotFoundError",
    "UnreachableError",
    "UnsafeModelError",
    "VersionNotFound",
]


Audience = Literal["python", "cli"]
"""Who reads a message: code calling the library (``"python"``) or a person at the ``modelreg``
command (``"cli"``)."""


@dataclass(frozen=True)
class Remedy:
    """What to do about an error, written for where the user is: ``python`` in the words of the
    library (``pass overwrite=True``), ``cli`` in those of the command line (``pass --overwrite``).

    >>> r = Remedy("pass overwrite=True", "pass --overwrite")
    >>> str(InvalidInputError("'out/model.pkl' exists already", remedy=r))
    "'out/model.pkl' exists already; pass overwrite=True"
    >>> InvalidInputError("'out/model.pkl' exists already", remedy=r).render("cli")
    "'out/model.pkl' exists already; pass --overwrite"
    """

    python: str
    cli: str

    def render(self, audience: Audience = "python") -> str:
        return self.cli if audience == "cli" else self.python

    def __str__(self) -> str:
        return self.python


class Message(str):
    """A message whose value is its Python form and that knows its command-line form (``cli``):
    made of strings, other messages and :class:`Remedy` objects, for a message with a remedy in
    the middle or several of them (``remedies``).

    >>> m = Message("set one with ", Remedy("reg.set_description('churn/3', '...')", "modelreg describe churn/3 '...'"))
    >>> str(m)
    "set one with reg.set_description('churn/3', '...')"
    >>> m.cli
    "set one with modelreg describe churn/3 '...'"
    """

    cli: str
    remedies: tuple[Remedy, ...]

    def __new__(cls, *parts: str | Remedy) -> Message:
        python = "".join(p.python if isinstance(p, Remedy) else str.__str__(p) for p in parts)
        self = super().__new__(cls, python)
        self.cli = "".join(p.cli if isinstance(p, Remedy) else getattr(p, "cli", p) for p in parts)
        found: list[Remedy] = []
        for p in parts:
            found.extend([p] if isinstance(p, Remedy) else getattr(p, "remedies", ()))
        self.remedies = tuple(found)
        return self

    def render(self, audience: Audience = "python") -> str:
        return self.cli if audience == "cli" else str.__str__(self)


def render(text: object, audience: Audience = "python") -> str:
    """``text`` for ``audience``: a :class:`Message` or an error in its command-line form for
    ``"cli"``, anything else as ``str(text)``."""
    if isinstance(text, (Message, ModelregError)):
        return text.render(audience)
    return str(text)


class ModelregError(Exception):
    """Base class of every error raised by modelreg.

    ``remedy`` (a :class:`Remedy`, or None) says what to do next in two forms: ``str(exc)`` ends
    with the Python form, ``exc.render("cli")`` (what the ``modelreg`` command prints) with the
    command-line form. A message may also be a :class:`Message` holding remedies in the middle.
    """

    remedy: Remedy | None = None

    def __init__(self, *args: object, remedy: Remedy | None = None) -> None:
        if remedy is not None and args and isinstance(args[0], str):
            args = (Message(args[0], "; ", remedy), *args[1:])
        super().__init__(*args)
        if remedy is None and args and isinstance(args[0], Message) and args[0].remedies:
            remedy = args[0].remedies[0]
        self.remedy = remedy

    def render(self, audience: Audience = "python") -> str:
        """The message for ``audience``: ``"python"`` as ``str(exc)``, ``"cli"`` with every remedy
        written as commands and options."""
        if audience == "cli" and len(self.args) == 1 and isinstance(self.args[0], Message):
            return self.args[0].cli
        return str(self)


class InvalidInputError(ModelregError, ValueError):
    """An argument was rejected before anything was written."""


class InvalidReferenceError(InvalidInputError):
    """A model reference such as ``churn/3`` or ``churn@production`` could not be parsed."""


class ArtifactChangedError(InvalidInputError):
    """A file of the artifact changed while it was being registered; nothing was committed."""


class UnsafeModelError(ModelregError):
    """Loading this model would run code from the artifact (a pickle); pass ``allow_unsafe=True``
    only for a model from a source you trust."""


class NotFoundError(ModelregError, LookupError):
    """The model, version, alias, stage holder or blob does not exist."""


class ModelNotFound(NotFoundError):
    """No model has this name."""


class VersionNotFound(NotFoundError):
    """The model exists but has no such version (or no version in that stage/alias)."""


def no_such_model(name: str) -> ModelNotFound:
    """The ModelNotFound every metadata store raises for an unknown model name: one message for all."""
    return ModelNotFound(f"no model named {name!r}; list models with `modelreg list`")


def no_such_version(name: str, version: int) -> VersionNotFound:
    """The VersionNotFound every metadata store raises for a version number the model does not have."""
    return VersionNotFound(f"model {name!r} has no version {version}; list them with `modelreg versions {name}`")


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


class SignatureError(IntegrityError):
    """A version does not match its signature (a file changed or added after signing, a wrong key),
    or has no valid signature from a trusted key where one is required."""


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
    """An optional dependency is needed for this storage scheme (or feature).

    A ``pip install "modelreg[EXTRA]"`` line in the message is rewritten for how modelreg is
    installed (:func:`modelreg.extras.install_command`): from a checkout, ``pip install -e``
    of that folder."""

    def __init__(self, *args: object, remedy: Remedy | None = None) -> None:
        if args and isinstance(args[0], str) and 'pip install "modelreg[' in args[0]:
            from .extras import localize_install_hints

            args = (localize_install_hints(args[0]), *args[1:])
        super().__init__(*args, remedy=remedy)
