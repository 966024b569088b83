"""Signed versions: OpenSSF model-signing bundles over a version's files.

A signature is what the ``model_signing`` package (PyPI ``model-signing``) writes for a model
signed with an elliptic-curve private key: an in-toto statement listing every file of the model
with its sha256, in a DSSE envelope, in a Sigstore bundle (``application/vnd.dev.sigstore.bundle.v0.3+json``),
with no transparency log and no network. The statement is built from the version's manifest
(:attr:`modelreg.Artifact.files` already holds each file's sha256): signing does not read the
files again. The stock verifier accepts a downloaded version with its bundle::

    model_signing.verifying.Config().use_elliptic_key_verifier(public_key="key.pub").verify(folder, "model.sig")

Storage: the bundle is a content-addressed blob in the artifact store; the version links to it
from its model's state (``ModelState.extensions["signatures"]``: the bundle digest, the key's
fingerprint and public key, who signed, when, in which role), and a ``sign`` audit event records
the signing. The private key never leaves the client: only its public half and fingerprint are
stored. A key's fingerprint is ``sha256:`` and the sha256 of its public key in PEM
(SubjectPublicKeyInfo) form, the ``hint`` model_signing writes in the bundle.

``cryptography`` is imported only to sign or verify, never by ``import modelreg``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from .errors import IntegrityError, InvalidInputError, MissingDependencyError, SignatureError
from .models import EventDraft, ModelState, ModelVersion, utcnow

if TYPE_CHECKING:
    from .registry import Registry

__all__ = [
    "ENV_KEY",
    "ENV_KEY_FILE",
    "ENV_TRUSTED",
    "SignatureInfo",
    "SigningKey",
    "bundle_statement",
    "fingerprint",
    "make_bundle",
    "statement_for",
    "verify_bundle",
]

ENV_KEY = "MODELREG_SIGNING_KEY"
"""Environment variable holding a PEM private key (the text itself)."""
ENV_KEY_FILE = "MODELREG_SIGNING_KEY_FILE"
"""Environment variable holding the path of a PEM private key file."""
ENV_KEY_PASSWORD = "MODELREG_SIGNING_KEY_PASSWORD"
"""Environment variable holding the password of an encrypted private key (optional)."""
ENV_TRUSTED = "MODELREG_TRUSTED_KEYS"
"""Environment variable listing trusted keys (fingerprints or public-key files), separated by commas."""

EXTENSION_KEY = "signatures"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
ROLES = ("author", "approver", "ci", "release")
MAX_BUNDLE_BYTES = 64_000_000
_CURVES = {"secp256r1": 256, "secp384r1": 384, "secp521r1": 521}
_HEX64 = re.compile(r"^(?:sha256:)?([0-9a-fA-F]{64})$")
_PEM_PUBLIC = re.compile(r"-----BEGIN PUBLIC KEY-----(.+?)-----END PUBLIC KEY-----", re.DOTALL)


def _need_cryptography() -> Any:
    try:
        import cryptography  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            'signing and verifying versions needs the signing extra: pip install "modelreg[signing]"'
        ) from None


# -- keys ----------------------------------------------------------------------------------------------
def canonical_public_pem(pem: str | bytes) -> str:
    """A PEM public key in the canonical form (64-column base64, final newline) whose sha256 is its
    fingerprint. Pure Python: the policy normalises trusted keys without importing cryptography."""
    text = pem.decode("ascii", "replace") if isinstance(pem, bytes) else pem
    m = _PEM_PUBLIC.search(text)
    if m is None:
        raise InvalidInputError("not a PEM public key (-----BEGIN PUBLIC KEY----- ... -----END PUBLIC KEY-----)")
    try:
        der = base64.b64decode("".join(m.group(1).split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError("the PEM public key's body is not valid base64") from None
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n"


def fingerprint(key: str | bytes) -> str:
    """``sha256:<hex>`` of a key given as a fingerprint (``sha256:<hex>`` or 64 hex digits) or a PEM
    public key. InvalidInputError for anything else."""
    if isinstance(key, bytes):
        key = key.decode("ascii", "replace")
    if not isinstance(key, str):
        raise InvalidInputError(f"a key must be a fingerprint or a PEM public key, got {type(key).__name__}")
    m = _HEX64.match(key.strip())
    if m:
        return "sha256:" + m.group(1).lower()
    if "-----BEGIN" in key:
        if "PRIVATE KEY" in key:
            raise InvalidInputError("that is a private key; give its public key or its fingerprint")
        return "sha256:" + hashlib.sha256(canonical_public_pem(key).encode("ascii")).hexdigest()
    raise InvalidInputError(f"{key[:40]!r} is neither a key fingerprint (sha256:<64 hex digits>) nor a PEM public key")


def trusted_fingerprints(keys: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Fingerprints of trusted keys given as fingerprints, PEM public keys or paths of PEM files."""
    out: list[str] = []
    for key in keys:
        if isinstance(key, os.PathLike) or (
            isinstance(key, str) and not _HEX64.match(key.strip()) and "-----BEGIN" not in key
        ):
            path = Path(os.fspath(key)).expanduser()
            if not path.is_file():
                raise InvalidInputError(
                    f"trusted key {os.fspath(key)!r} is neither a fingerprint, a PEM public key nor a file"
                )
            key = path.read_text(encoding="ascii", errors="replace")
        fp = fingerprint(key)
        if fp not in out:
            out.append(fp)
    return out


class SigningKey:
    """An EC private key (P-256, P-384 or P-521) held in memory; never stored anywhere.

    >>> from cryptography.hazmat.primitives import serialization
    >>> from cryptography.hazmat.primitives.asymmetric import ec
    >>> pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
    ...     serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ... )
    >>> key = SigningKey.load(pem, name="ci")   # or the path of a PEM file: SigningKey.load("~/.keys/ci.pem")
    >>> key.name, key.fingerprint.startswith("sha256:")
    ('ci', True)
    """

    def __init__(self, private_key: Any, name: str | None = None) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        if not isinstance(private_key, ec.EllipticCurvePrivateKey):
            raise InvalidInputError("the signing key must be an elliptic-curve private key (P-256, P-384 or P-521)")
        if private_key.curve.name not in _CURVES:
            raise InvalidInputError(
                f"unsupported curve {private_key.curve.name}; use P-256, P-384 or P-521 "
                "(openssl ecparam -name prime256v1 -genkey -noout -out key.pem)"
            )
        self._key = private_key
        pem = private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_pem: str = pem.decode("ascii")
        self.fingerprint: str = "sha256:" + hashlib.sha256(pem).hexdigest()
        self.name: str = name or self.fingerprint[:19]

    def __repr__(self) -> str:
        return f"SigningKey(name={self.name!r}, fingerprint={self.fingerprint!r})"

    @classmethod
    def load(
        cls,
        source: SigningKey | str | bytes | os.PathLike[str],
        *,
        name: str | None = None,
        password: str | None = None,
    ) -> SigningKey:
        """A key from PEM text (str or bytes) or the path of a PEM file."""
        if isinstance(source, SigningKey):
            return source
        _need_cryptography()
        from cryptography.hazmat.primitives import serialization

        if isinstance(source, bytes) or (isinstance(source, str) and "-----BEGIN" in source):
            data = source if isinstance(source, bytes) else source.encode("ascii")
            where = "the signing key"
        else:
            path = Path(os.fspath(source)).expanduser()
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise InvalidInputError(f"cannot read the signing key {str(path)!r}: {exc.strerror or exc}") from None
            where = repr(str(path))
            name = name or path.stem
        if password is None:
            password = os.environ.get(ENV_KEY_PASSWORD) or None
        try:
            key = serialization.load_pem_private_key(data, password.encode() if password else None)
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(f"{where} is not a usable PEM private key: {exc}") from None
        return cls(key, name)

    def sign(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives.asymmetric import ec

        return bytes(self._key.sign(data, ec.ECDSA(_hash_for(_CURVES[self._key.curve.name]))))


def key_from_environment() -> SigningKey | None:
    """The key named by ``$MODELREG_SIGNING_KEY`` (PEM text) or ``$MODELREG_SIGNING_KEY_FILE`` (a path)."""
    text = os.environ.get(ENV_KEY)
    if text:
        if "-----BEGIN" not in text and Path(text).expanduser().is_file():
            return SigningKey.load(text)  # a path in the PEM variable: accepted too
        return SigningKey.load(text, name="$" + ENV_KEY)
    path = os.environ.get(ENV_KEY_FILE)
    if path:
        return SigningKey.load(path)
    return None


def _hash_for(bits: int) -> Any:
    from cryptography.hazmat.primitives import hashes

    return {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[bits]


# -- statements and bundles -----------------------------------------------------------------------------
def _hex(digest: str) -> str:
    return digest.split(":", 1)[1] if digest.startswith("sha256:") else digest


def statement_for(mv: ModelVersion) -> dict[str, Any]:
    """The in-toto statement model_signing would write for the version's files, from its manifest:
    a single-file artifact is the resource ``"."`` (as model_signing names a model that is one file)."""
    art = mv.artifact
    if art.kind == "file":
        resources = [{"name": ".", "algorithm": "sha256", "digest": _hex(art.files[0].digest)}]
    else:
        ordered = sorted(art.files, key=lambda f: f.path.split("/"))  # model_signing sorts by path parts
        resources = [{"name": f.path, "algorithm": "sha256", "digest": _hex(f.digest)} for f in ordered]
    root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": art.name, "digest": {"sha256": root}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": False},
            "resources": resources,
        },
    }


def _pae(payload: bytes, payload_type: str = PAYLOAD_TYPE) -> bytes:
    """DSSE pre-authentication encoding (what is signed)."""
    return b"DSSEv1 %d %s %d " % (len(payload_type), payload_type.encode(), len(payload)) + payload


# -- signed approvals ------------------------------------------------------------------------------------
APPROVAL_PAYLOAD_TYPE = "application/vnd.modelreg.approval.v1+json"


def approval_statement(
    request: str | None, ref: str, digest: str, stage: str, actor: str, time: datetime
) -> dict[str, Any]:
    """What an approver signs: the request (None for a direct transition), the version and its artifact
    digest, the target stage, who and when."""
    return {
        "type": "approval",
        "request": request,
        "ref": ref,
        "digest": digest,
        "to_stage": stage,
        "actor": actor,
        "time": time.isoformat(),
    }


def transition_statement(
    ref: str, digest: str, from_stage: str, to_stage: str, actor: str, time: datetime
) -> dict[str, Any]:
    """What a direct promotion (``transition(..., sign=True)``) signs: the version and its artifact
    digest, the stages it moves from and to, who and when. Stored with the transition's audit event."""
    return {
        "type": "transition",
        "request": None,
        "ref": ref,
        "digest": digest,
        "from_stage": from_stage,
        "to_stage": to_stage,
        "actor": actor,
        "time": time.isoformat(),
    }


def sign_statement(key: SigningKey, statement: Mapping[str, Any]) -> dict[str, Any]:
    """A DSSE envelope signing ``statement`` (canonical JSON) with ``key``, with the public key and its
    fingerprint to check it: stored with the audit event it backs."""
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    sig = key.sign(_pae(payload, APPROVAL_PAYLOAD_TYPE))
    return {
        "payloadType": APPROVAL_PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [{"keyid": key.fingerprint, "sig": base64.b64encode(sig).decode("ascii")}],
        "public_key": key.public_pem,
    }


def check_signed_statement(envelope: Any) -> tuple[dict[str, Any], str]:
    """(statement, key fingerprint) of a signed approval whose signature verifies; SignatureError otherwise."""
    _need_cryptography()
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        pem = str(envelope["public_key"])
        fp = fingerprint(pem)
        (entry,) = envelope["signatures"]
        if entry.get("keyid") != fp:
            raise SignatureError(f"the approval names key {entry.get('keyid')} but carries {fp} (wrong key)")
        payload = base64.b64decode(envelope["payload"])
        sig = base64.b64decode(entry["sig"])
        if envelope.get("payloadType") != APPROVAL_PAYLOAD_TYPE:
            raise SignatureError(f"not a signed approval ({envelope.get('payloadType')!r})")
        public = serialization.load_pem_public_key(pem.encode("ascii"))
        if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name not in _CURVES:
            raise SignatureError(f"key {fp} is not a P-256, P-384 or P-521 public key")
        public.verify(sig, _pae(payload, APPROVAL_PAYLOAD_TYPE), ec.ECDSA(_hash_for(_CURVES[public.curve.name])))
        statement = json.loads(payload)
    except SignatureError:
        raise
    except InvalidSignature:
        raise SignatureError("the approval's signature does not verify (it was altered)") from None
    except (ValueError, KeyError, TypeError, AttributeError, InvalidInputError) as exc:
        raise SignatureError(f"the signed approval is malformed ({exc})") from None
    if not isinstance(statement, dict):
        raise SignatureError("the signed approval holds no statement")
    return statement, fp


def approval_problem(envelope: Any, *, ref: str, digest: str, stage: str, actor: str) -> str | None:
    """Why a signed approval does not back an approval of ``ref`` (``digest``) into ``stage`` by ``actor``."""
    try:
        statement, _fp = check_signed_statement(envelope)
    except SignatureError as exc:
        return str(exc)
    expected = {"ref": ref, "digest": digest, "to_stage": stage, "actor": actor}
    wrong = [k for k, v in expected.items() if statement.get(k) != v]
    if wrong:
        return f"the signed statement does not match the approval ({', '.join(wrong)} differ)"
    return None


def make_bundle(mv: ModelVersion, key: SigningKey) -> bytes:
    """A Sigstore bundle (JSON bytes) signing the version's files with ``key``."""
    payload = json.dumps(statement_for(mv), indent=2).encode()
    sig = key.sign(_pae(payload))
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": _hex(key.fingerprint)}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(sig).decode("ascii"), "keyid": ""}],
        },
    }
    return json.dumps(bundle, separators=(",", ":")).encode()


def bundle_statement(data: bytes) -> tuple[dict[str, Any], bytes, bytes, str | None]:
    """(statement, signed payload, signature, key hint) of a bundle, unverified; SignatureError if malformed."""
    try:
        bundle = json.loads(data)
        if bundle.get("mediaType") != BUNDLE_MEDIA_TYPE:
            raise SignatureError(f"not a model-signing bundle (media type {bundle.get('mediaType')!r})")
        env = bundle["dsseEnvelope"]
        if env.get("payloadType") != PAYLOAD_TYPE:
            raise SignatureError(f"the bundle's payload is {env.get('payloadType')!r}, not an in-toto statement")
        payload = base64.b64decode(env["payload"])
        sig = base64.b64decode(env["signatures"][0]["sig"])
        hint = ((bundle.get("verificationMaterial") or {}).get("publicKey") or {}).get("hint")
        statement = json.loads(payload)
    except SignatureError:
        raise
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise SignatureError(f"the signature bundle is malformed ({type(exc).__name__}: {exc})") from None
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise SignatureError("the signed payload is not an in-toto v1 statement")
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise SignatureError(f"the statement's predicate is {statement.get('predicateType')!r}, not {PREDICATE_TYPE}")
    return statement, payload, sig, hint


def verify_bundle(data: bytes, public_pem: str) -> dict[str, Any]:
    """The statement of a bundle whose signature ``public_pem`` verifies; SignatureError otherwise."""
    _need_cryptography()
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    statement, payload, sig, hint = bundle_statement(data)
    fp = fingerprint(public_pem)
    if hint and "sha256:" + str(hint).lower() != fp:
        raise SignatureError(f"the bundle was made with key sha256:{hint}, not with {fp} (wrong key)")
    try:
        public = serialization.load_pem_public_key(public_pem.encode("ascii"))
    except ValueError as exc:
        raise SignatureError(f"the stored public key {fp} cannot be read: {exc}") from None
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name not in _CURVES:
        raise SignatureError(f"key {fp} is not a P-256, P-384 or P-521 public key")
    try:
        public.verify(sig, _pae(payload), ec.ECDSA(_hash_for(_CURVES[public.curve.name])))
    except InvalidSignature:
        raise SignatureError(
            f"the signature does not verify with key {fp} (wrong key, or the bundle was altered)"
        ) from None
    return statement


def compare_statement(statement: Mapping[str, Any], mv: ModelVersion) -> list[str]:
    """How the version's files differ from the signed ones (empty: they match)."""
    try:
        resources = statement["predicate"]["resources"]
        signed = {str(r["name"]): str(r["digest"]).lower() for r in resources if r.get("algorithm") == "sha256"}
        subject = statement["subject"][0]["digest"]["sha256"]
        ser = statement["predicate"]["serialization"]
    except (KeyError, IndexError, TypeError):
        return ["the signed statement lists no files"]
    problems: list[str] = []
    if ser.get("method") != "files" or ser.get("hash_type") != "sha256":
        problems.append(f"the statement was made with {ser.get('method')}/{ser.get('hash_type')}, not files/sha256")
    root = hashlib.sha256(b"".join(bytes.fromhex(str(r["digest"])) for r in resources)).hexdigest()
    if root != subject:
        problems.append("the statement's subject digest does not match its files")
    art = mv.artifact
    if art.kind == "file":
        have = {".": _hex(art.files[0].digest)}
    else:
        have = {f.path: _hex(f.digest) for f in art.files}
    for path in sorted(set(have) - set(signed)):
        problems.append(f"file {path!r} is not covered by the signature (a file added after signing)")
    for path in sorted(set(signed) - set(have)):
        problems.append(f"signed file {path!r} is missing from the version")
    for path in sorted(set(have) & set(signed)):
        if have[path] != signed[path]:
            problems.append(
                f"file {path!r} is not the signed content (signed sha256:{signed[path][:12]}…, "
                f"the version has sha256:{have[path][:12]}…)"
            )
    return problems


# -- stored links ----------------------------------------------------------------------------------------
class SignatureInfo(BaseModel):
    """One signature of a version, as stored, and the result of checking it.

    ``valid`` is True when the bundle verifies with the key and covers exactly the version's files
    (None: not checked); ``problem`` says why not. ``trusted`` is True when the key is one of the
    trusted keys asked about (None: no trusted keys were given)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    ref: str
    key: str
    key_name: str | None = None
    actor: str
    time: datetime
    role: str | None = None
    bundle: str
    size: int
    valid: bool | None = None
    trusted: bool | None = None
    problem: str | None = None

    def __repr__(self) -> str:
        state = {None: "unchecked", True: "valid", False: "INVALID"}[self.valid]
        return f"SignatureInfo({self.ref!r}, key={self.key[:19]!r}, by {self.actor!r}, {state})"

    __str__ = __repr__


def _section(state: ModelState) -> dict[str, Any]:
    raw = state.extensions.get(EXTENSION_KEY)
    return raw if isinstance(raw, dict) else {}


def links_of(state: ModelState, version: int) -> list[dict[str, Any]]:
    """The stored signature links of one version (each with its key's public PEM under ``public_key``)."""
    section = _section(state)
    keys = section.get("keys") or {}
    out = []
    for link in (section.get("versions") or {}).get(str(version)) or []:
        if isinstance(link, dict):
            out.append({**link, "public_key": keys.get(link.get("key"))})
    return out


def bundle_digests(state: ModelState, live: Iterable[int]) -> set[str]:
    """Bundle blobs that live versions link to (kept by gc)."""
    versions = _section(state).get("versions") or {}
    return {
        str(link["bundle"])
        for v in live
        for link in versions.get(str(v)) or []
        if isinstance(link, dict) and link.get("bundle")
    }


def _info(mv: ModelVersion, link: Mapping[str, Any]) -> SignatureInfo:
    from .models import _parse_time

    return SignatureInfo(
        ref=mv.ref,
        key=str(link.get("key")),
        key_name=link.get("key_name"),
        actor=str(link.get("actor")),
        time=_parse_time(link.get("time")),
        role=link.get("role"),
        bundle=str(link.get("bundle")),
        size=int(link.get("size") or 0),
    )


def read_bundle(reg: Registry, digest: str, size: int) -> bytes:
    """A bundle's bytes from the artifact store (through the local cache when there is one), checked."""
    from .errors import BlobNotFound

    try:
        if reg.cache is not None and size:
            path = reg.cache.lookup(digest, size) or reg.cache.fetch(
                digest, size, reg.artifacts, None, where=f"signature bundle {digest}"
            )
            data = Path(path).read_bytes()
        else:
            with reg.artifacts.open(digest) as f:
                data = f.read(MAX_BUNDLE_BYTES + 1)
    except BlobNotFound:
        raise SignatureError(f"signature bundle {digest} is missing from the artifact store") from None
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise SignatureError(f"signature bundle {digest} is corrupted in the artifact store")
    return data


def check_link(
    reg: Registry, mv: ModelVersion, link: Mapping[str, Any], cache: dict[Any, Any] | None = None
) -> str | None:
    """Why a stored signature of ``mv`` is not valid (None: it is). Results are cached in ``cache`` by
    (bundle, key, artifact digest): all three are immutable."""
    cache_key = (link.get("bundle"), link.get("key"), mv.artifact.digest)
    if cache is not None and cache_key in cache:
        return cache[cache_key]  # type: ignore[no-any-return]
    problem: str | None
    try:
        pem = link.get("public_key")
        if not pem:
            raise SignatureError(f"the public key {link.get('key')} of this signature is not stored")
        if fingerprint(pem) != link.get("key"):
            raise SignatureError(f"the stored public key does not have the fingerprint {link.get('key')} (wrong key)")
        data = read_bundle(reg, str(link.get("bundle")), int(link.get("size") or 0))
        statement = verify_bundle(data, pem)
        diffs = compare_statement(statement, mv)
        problem = "; ".join(diffs) if diffs else None
    except (IntegrityError, InvalidInputError) as exc:  # SignatureError, or a damaged cached copy
        problem = str(exc)
    if cache is not None:
        cache[cache_key] = problem
    return problem


# -- registry operations --------------------------------------------------------------------------------------
def sign_version(
    reg: Registry,
    ref: str,
    *,
    key: SigningKey | str | os.PathLike[str] | None = None,
    actor: str | None = None,
    role: str | None = None,
    comment: str | None = None,
) -> SignatureInfo:
    """Sign a version with ``key`` (else the registry's signing key); see :meth:`Registry.sign`."""
    from .validation import MAX_COMMENT_LENGTH, check_label, check_text

    signer = SigningKey.load(key) if key is not None else reg.signing_key
    if signer is None:
        raise InvalidInputError(
            "no signing key: pass key=..., Registry(signing_key=...), or set $MODELREG_SIGNING_KEY_FILE "
            "(a PEM file made with `openssl ecparam -name prime256v1 -genkey -noout -out key.pem`)"
        )
    if role is not None:
        check_label(role, "role", 40)
    who = reg.who(actor)
    note = check_text(comment, "comment", MAX_COMMENT_LENGTH) or None
    mv = reg.get_version(ref)
    data = make_bundle(mv, signer)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    reg.artifacts.put_bytes(digest, data)
    now = utcnow()
    link = {
        "bundle": digest,
        "size": len(data),
        "key": signer.fingerprint,
        "key_name": signer.name,
        "actor": who,
        "time": now.isoformat(),
        "role": role,
    }

    def fn(state: ModelState) -> tuple[ModelState, list[EventDraft]]:
        from .errors import VersionNotFound

        if mv.version not in state.versions:
            raise VersionNotFound(f"{mv.ref} was purged while it was being signed")
        draft = state.model_copy(deep=True)
        section = json.loads(json.dumps(_section(draft)))
        keys = section.setdefault("keys", {})
        keys[signer.fingerprint] = signer.public_pem
        versions = section.setdefault("versions", {})
        # links of purged versions go (their numbers are never reused); one link per key and version
        for v in [v for v in versions if v != str(mv.version) and int(v) not in draft.versions]:
            del versions[v]
        mine = [x for x in versions.get(str(mv.version)) or [] if x.get("key") != signer.fingerprint]
        versions[str(mv.version)] = [*mine, link]
        used = {x.get("key") for links in versions.values() for x in links}
        section["keys"] = {k: v for k, v in keys.items() if k in used}
        draft.extensions[EXTENSION_KEY] = section
        after = {"bundle": digest, "key": signer.fingerprint, "key_name": signer.name, "digest": mv.digest}
        if role is not None:
            after["role"] = role
        return draft, [EventDraft(action="sign", actor=who, version=mv.version, after=after, comment=note)]

    reg.governance.update(mv.name, fn)
    return _info(mv, link).model_copy(update={"valid": True})


def version_signatures(
    reg: Registry,
    mv: ModelVersion,
    *,
    verify: bool = True,
    trusted: list[str] | None = None,
    state: ModelState | None = None,
) -> list[SignatureInfo]:
    """The stored signatures of ``mv``, each checked when ``verify``; ``trusted`` are fingerprints."""
    state = state if state is not None else reg.metadata.get_state_view(mv.name)
    out = []
    for link in links_of(state, mv.version):
        info = _info(mv, link)
        update: dict[str, Any] = {}
        if verify:
            problem = check_link(reg, mv, link)
            update = {"valid": problem is None, "problem": problem}
        if trusted is not None:
            update["trusted"] = info.key in trusted
        out.append(info.model_copy(update=update) if update else info)
    return out


def check_version(
    reg: Registry, mv: ModelVersion, *, require: bool = False, trusted: Any = None
) -> list[SignatureInfo]:
    """Check a version's signatures before it is served: SignatureError if one of them does not
    verify (a file changed or added after signing, a wrong key), or, with ``require``, if none is
    valid and made by a trusted key. Without signatures and without ``require``: nothing to do (and
    cryptography is not imported)."""
    state = reg.metadata.get_state_view(mv.name)
    if not links_of(state, mv.version) and not require:
        return []
    fps = reg._trusted_fingerprints(trusted) if require else None
    infos = version_signatures(reg, mv, trusted=fps, state=state)
    bad = [i for i in infos if not i.valid]
    if bad:
        lines = "; ".join(f"signature by {i.actor} with key {i.key[:19]}…: {i.problem}" for i in bad)
        raise SignatureError(
            f"{mv.ref} does not match its signature(s): {lines}. Nothing was served; "
            "run `modelreg verify` and re-register the version from a good copy"
        )
    if require and not any(i.valid and i.trusted for i in infos):
        have = ", ".join(f"{i.key[:19]}… ({i.actor})" for i in infos) or "none"
        raise SignatureError(
            f"{mv.ref} has no valid signature from a trusted key (trusted: "
            f"{', '.join(f[:19] + '…' for f in fps or []) or 'none'}; signatures: {have}); "
            f"sign it with `modelreg sign {mv.ref}` using a trusted key"
        )
    return infos


def verify_problems(reg: Registry, mv: ModelVersion, state: ModelState, cache: dict[Any, Any]) -> list[str]:
    """What :meth:`Registry.verify` reports about a version's signatures."""
    out = []
    for link in links_of(state, mv.version):
        problem = check_link(reg, mv, link, cache)
        if problem is not None:
            out.append(f"{mv.ref}: signature by {link.get('actor')} with key {str(link.get('key'))[:19]}…: {problem}")
    return out


def signed_event_problems(
    events: Iterable[Any], digests: Mapping[int, str] | None = None
) -> list[tuple[int | None, str]]:
    """(version, detail) for each stored signed event (an approval, or a transition signed with
    ``transition(..., sign=True)``) whose signature does not verify or does not match the event
    (actor, request, version, source and target stage; with ``digests``, the version's artifact)."""
    out: list[tuple[int | None, str]] = []
    for ev in events:
        envelope = (ev.after or {}).get("signature")
        if not envelope:
            continue
        label = f"event #{ev.seq} of {ev.model!r} ({ev.action} by {ev.actor})"
        try:
            statement, _fp = check_signed_statement(envelope)
        except SignatureError as exc:
            out.append((ev.version, f"{label}: {exc}"))
            continue
        expected = {
            "actor": ev.actor,
            "request": (ev.after or {}).get("request"),
            "ref": f"{ev.model}/{ev.version}",
            "to_stage": (ev.after or {}).get("to"),
        }
        if ev.action != "approve":  # a signed transition: the stages of the event itself
            expected.update(
                type="transition",
                to_stage=(ev.after or {}).get("stage"),
                from_stage=(ev.before or {}).get("stage"),
            )
        if digests is not None and ev.version in digests:
            expected["digest"] = digests[ev.version]
        wrong = [k for k, v in expected.items() if statement.get(k) != v]
        if wrong:
            out.append((ev.version, f"{label}: the signed statement does not match the event ({', '.join(wrong)})"))
    return out
