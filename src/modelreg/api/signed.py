"""Signed approvals made by the client: the approver signs the approval statement with a key that
never leaves their machine and sends the signature (a DSSE envelope) with
``POST /api/v1/requests/{id}/approve``; the server checks it against the keys the policy lists for
the approver (``member_keys``) before it records the approval.

The statement is :func:`modelreg.signing.approval_statement`'s, and the envelope
:func:`modelreg.signing.sign_statement`'s, as ``Registry.approve(sign=True)`` makes them:

- payload: the canonical JSON (keys sorted, no spaces, UTF-8) of ``{"actor", "digest", "ref",
  "request", "time", "to_stage", "type": "approval"}``: the token's actor, the version's artifact
  digest, its reference (``churn/3``), the request id, an ISO 8601 time with its UTC offset, the
  target stage;
- signed bytes: ``b"DSSEv1 41 application/vnd.modelreg.approval.v1+json " + str(len(payload)) + b" " + payload``
  (the DSSE pre-authentication encoding), ECDSA with SHA-256 (P-256 keys), SHA-384 (P-384) or
  SHA-512 (P-521), DER-encoded;
- envelope: ``{"payloadType": "application/vnd.modelreg.approval.v1+json", "payload": base64(payload),
  "signatures": [{"keyid": "sha256:<hex of sha256 of the PEM public key>", "sig": base64(signature)}],
  "public_key": "<PEM public key>"}``.

Imports nothing from the web stack; ``cryptography`` only to sign or verify.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import PolicyViolation, SignatureError
from ..models import utcnow

if TYPE_CHECKING:
    from ..governance.requests import TransitionRequest
    from ..registry import Registry
    from ..signing import SigningKey

__all__ = ["MAX_SKEW", "check_client_signature", "sign_approval"]

MAX_SKEW = timedelta(minutes=10)
"""How far the signed time may be from the server's clock (either way)."""


def sign_approval(
    key: SigningKey | str | bytes | os.PathLike[str],
    request: TransitionRequest,
    digest: str,
    actor: str,
    *,
    time: datetime | None = None,
) -> dict[str, Any]:
    """The envelope to send as ``signature`` when ``actor`` approves ``request`` (whose version's
    artifact digest is ``digest``), signed with ``key`` (a :class:`~modelreg.signing.SigningKey`, PEM
    text or the path of a PEM file), at ``time`` (default: now)."""
    from ..signing import SigningKey, approval_statement, sign_statement

    statement = approval_statement(request.id, request.ref, digest, request.to_stage.value, actor, time or utcnow())
    return sign_statement(SigningKey.load(key), statement)


def check_client_signature(
    registry: Registry, request_id: str, actor: str, envelope: Any, *, now: datetime | None = None
) -> str:
    """The key fingerprint of ``envelope`` when it is ``actor``'s valid signature of the approval of
    request ``request_id``, by a key the policy lists for ``actor`` in ``member_keys``; else
    PolicyViolation saying why (a 403)."""
    from ..signing import check_signed_statement

    req = registry.get_request(request_id)
    refused = f"{actor} cannot approve request {req.id} ({req.ref} to {req.to_stage.value}) with this signature"
    try:
        statement, fp = check_signed_statement(envelope)
    except SignatureError as exc:
        raise PolicyViolation(f"{refused}: {exc}", [str(exc)]) from None
    keys = registry.get_policy().keys_of(actor)
    if fp not in keys:
        why = f"signed with {fp[:19]}…, not a key listed for {actor} in member_keys"
        raise PolicyViolation(f"{refused}: {why}", [why])
    digest = registry.get_version(req.ref).digest
    expected = {
        "type": "approval",
        "request": req.id,
        "ref": req.ref,
        "digest": digest,
        "to_stage": req.to_stage.value,
        "actor": actor,
    }
    wrong = [k for k, v in expected.items() if statement.get(k) != v]
    if wrong:
        why = f"the signed statement does not match the approval ({', '.join(wrong)} differ)"
        raise PolicyViolation(f"{refused}: {why}", [why])
    try:
        signed_at = datetime.fromisoformat(str(statement.get("time")))
    except ValueError:
        signed_at = None
    if signed_at is None or signed_at.tzinfo is None:
        why = "the signed statement's time is not an ISO 8601 time with a UTC offset"
        raise PolicyViolation(f"{refused}: {why}", [why])
    skew = abs((now or utcnow()) - signed_at)
    if skew > MAX_SKEW:
        why = (
            f"the statement was signed at {signed_at.isoformat()}, {int(skew.total_seconds())} s from the "
            f"server's clock (at most {int(MAX_SKEW.total_seconds())} s): sign it again"
        )
        raise PolicyViolation(f"{refused}: {why}", [why])
    return fp
