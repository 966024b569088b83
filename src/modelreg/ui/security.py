"""Safety pieces of the web UI: CSRF tokens, response headers, URL redaction.

CSRF: each browser gets a random token in a ``SameSite=Strict``, ``HttpOnly``
cookie, signed with a per-process secret (HMAC-SHA256). Every form that changes
something carries the same token in a hidden field; a POST is accepted only when
the field and the cookie carry the same correctly signed token, and, when the
browser sends an ``Origin`` header, only when it is this server's own origin.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from urllib.parse import urlsplit

__all__ = ["CSRF_COOKIE", "CSRF_FIELD", "SECURITY_HEADERS", "CsrfSigner", "redact_url"]

CSRF_COOKIE = "modelreg_csrf"
CSRF_FIELD = "csrf_token"

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


class CsrfSigner:
    """Issues and checks signed CSRF tokens (``<random>.<hmac>``)."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def _sign(self, nonce: str) -> str:
        return hmac.new(self._secret, nonce.encode(), hashlib.sha256).hexdigest()

    def new_token(self) -> str:
        nonce = secrets.token_urlsafe(24)
        return f"{nonce}.{self._sign(nonce)}"

    def valid(self, token: str | None) -> bool:
        if not token or token.count(".") != 1:
            return False
        nonce, sig = token.split(".")
        return hmac.compare_digest(sig, self._sign(nonce))

    def check(self, cookie: str | None, submitted: str | None) -> bool:
        """True when the submitted token equals the cookie's and is signed by this server."""
        if not cookie or not submitted:
            return False
        return hmac.compare_digest(cookie, submitted) and self.valid(cookie)


_USERINFO = re.compile(r"^[^@/]*@")
_SECRET_PARAM = re.compile(r"(?i)(key|secret|token|password|sig|signature|credential|sas)")


def redact_url(url: str | None) -> str:
    """A location safe to show: user info and credential-like query parameters removed.

    Everything else is kept exactly as written, slashes included: ``sqlite:////home/me/r.db``
    (an absolute path, whose ``//`` is an empty authority) stays ``sqlite:////home/me/r.db``.

    >>> redact_url("sqlite:////home/me/registry/modelreg.db")
    'sqlite:////home/me/registry/modelreg.db'
    >>> redact_url("s3://user:pw@bucket/reg?sig=abc&region=eu")
    's3://***@bucket/reg?sig=***&region=eu'
    """
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable location>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + _USERINFO.sub("", netloc)
    query = parts.query
    if query:
        kept = []
        for pair in query.split("&"):
            name = pair.split("=", 1)[0]
            kept.append(f"{name}=***" if _SECRET_PARAM.search(name) else pair)
        query = "&".join(kept)
    # rebuilt by hand: urlunsplit drops an empty authority ("sqlite:////a" -> "sqlite://a") and
    # lower-cases the scheme; here the original spelling of each part survives
    scheme = url[: len(parts.scheme)] if parts.scheme else ""
    rest = url[len(scheme) + 1 :] if scheme else url
    out = f"{scheme}:" if scheme else ""
    if netloc or rest.startswith("//"):
        out += "//" + netloc
    out += parts.path
    if query or "?" in url.split("#", 1)[0]:
        out += "?" + query
    if parts.fragment or "#" in url:
        out += "#" + parts.fragment
    return out
