"""Request bodies and the API's own response records (the registry's records come from
:mod:`modelreg.models` and :mod:`modelreg.governance`). Imports nothing from the web stack.

Bodies refuse unknown fields (a typo is an error, not ignored); their values are checked again
by the Registry, exactly as for a Python caller.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .tokens import Role, TokenInfo

__all__ = [
    "AliasBody",
    "ApprovalSignature",
    "ApproveBody",
    "BlobReceipt",
    "CommentBody",
    "DescriptionBody",
    "FileSpec",
    "Health",
    "Identity",
    "MetricsBody",
    "RegisterBody",
    "RequestBody",
    "RollbackBody",
    "TagsBody",
    "TokenBody",
    "TokenCreated",
    "TransitionBody",
]


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


StageName = Literal["experimental", "staging", "production", "archived"]


class TransitionBody(_Body):
    """Move a version to ``stage`` (``strict``: refuse a version already there)."""

    stage: StageName
    comment: str | None = None
    strict: bool = False


class RollbackBody(_Body):
    """Bring back the previous holder of ``stage``."""

    stage: StageName = "production"
    comment: str | None = None


class AliasBody(_Body):
    """Point the alias at ``version``."""

    version: int = Field(ge=1)
    comment: str | None = None


class TagsBody(_Body):
    """Add or change tags (``set``) and delete keys (``remove``)."""

    set: dict[str, str] = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)
    comment: str | None = None


class DescriptionBody(_Body):
    description: str
    comment: str | None = None


class MetricsBody(_Body):
    """Metrics measured after registration; the registered ones never change."""

    metrics: dict[str, float]
    step: int | None = None
    comment: str | None = None


class CommentBody(_Body):
    """An optional comment, recorded in the audit chain."""

    comment: str | None = None


class EnvelopeSignature(_Body):
    """One signature of a DSSE envelope."""

    keyid: str = Field(description="the key's fingerprint: sha256:<hex of the sha256 of its PEM public key>")
    sig: str = Field(description="the ECDSA signature (DER) of the DSSE pre-authentication encoding, base64")


class ApprovalSignature(_Body):
    """An approval statement signed by the approver's own key (a DSSE envelope); see docs/api-http.md,
    "Signed approvals"."""

    payloadType: str = Field(description="application/vnd.modelreg.approval.v1+json")
    payload: str = Field(description="the statement as canonical JSON, base64")
    signatures: list[EnvelopeSignature] = Field(min_length=1, max_length=1)
    public_key: str = Field(description="the signing key's public key, PEM")


class ApproveBody(_Body):
    """Approve, with an optional comment and, for a gate that counts only signed approvals, the
    approver's signature of the approval statement."""

    comment: str | None = None
    signature: ApprovalSignature | None = None


class RequestBody(_Body):
    """Ask for the version to move to ``stage``."""

    stage: StageName
    comment: str | None = None


class FileSpec(_Body):
    """One file of the artifact: its path in the artifact and the blob already uploaded."""

    path: str
    digest: str = Field(description="sha256:<64 hex digits> of a blob uploaded with PUT /api/v1/blobs/{digest}")
    size: int = Field(ge=0)


class RegisterBody(_Body):
    """A new version from blobs already uploaded (PUT /api/v1/blobs/{digest}).

    One file makes a file artifact named after its path, unless ``kind`` is ``directory``; several
    files make a folder artifact named ``artifact_name`` (default: the model name's last part)."""

    files: list[FileSpec] = Field(min_length=1)
    kind: Literal["file", "directory"] | None = None
    artifact_name: str | None = None
    format: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    lineage: dict[str, Any] = Field(default_factory=dict)
    description: str | None = None


class TokenBody(_Body):
    """A token to create."""

    name: str
    role: Role
    actor: str | None = None
    comment: str | None = None


class TokenCreated(BaseModel):
    """A token just created: ``token`` is the secret, shown this once."""

    model_config = ConfigDict(frozen=True)

    token: str
    info: TokenInfo


class BlobReceipt(BaseModel):
    """A blob stored (or found stored) under its verified digest."""

    model_config = ConfigDict(frozen=True)

    digest: str
    size: int
    created: bool = Field(description="false when the registry held this content already")


class Identity(BaseModel):
    """Who the server takes the caller for."""

    model_config = ConfigDict(frozen=True)

    token: str | None = Field(description="the token's name; null when the server runs with --no-auth")
    role: Role
    actor: str
    read_only: bool


class Health(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: Literal["ok"] = "ok"
    version: str
