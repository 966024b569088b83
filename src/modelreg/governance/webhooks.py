"""Webhooks: signed HTTP POSTs of audit events, delivered in the background.

Webhooks are registry-wide settings (``reg.add_webhook(url, secret_env=...)``,
stored in the reserved ``_registry`` document and audited). Whichever client
commits a change delivers it: a background thread of that process POSTs the
sealed audit event as JSON to every webhook that wants it.

- **Never blocks or fails the operation.** The change is committed first;
  delivery happens afterwards on a worker thread, and every error is caught.
  ``reg.close()`` (and interpreter exit) waits a bounded time
  (:data:`EXIT_FLUSH_TIMEOUT`) for deliveries still in flight.
- **Signed.** ``X-Modelreg-Signature: sha256=<hex>`` is the HMAC-SHA256 of
  ``"<timestamp>." + body`` with the webhook's secret, and
  ``X-Modelreg-Timestamp`` is the Unix time of the attempt, so a receiver can
  reject replays (see :func:`verify_signature`).
- **Secrets are never stored in the registry.** A webhook records the *name*
  of an environment variable (``secret_env``); each process that delivers reads
  the secret from its own environment. A process without that variable records
  a failed delivery and sends nothing (an unsigned request would be rejected
  anyway).
- **Bounded retries.** Each attempt has a timeout; connection errors,
  timeouts, 408, 429 and 5xx are retried up to ``max_attempts`` with
  exponential backoff (``backoff``, doubled each time, at most 30 s); other
  statuses (4xx, and 3xx: redirects are not followed) give up at once.
- **Results are recorded**, in memory (``reg.webhook_deliveries(local=True)``)
  and durably as ``webhook_delivery`` events in the reserved ``_webhooks``
  document (``reg.webhook_deliveries()``), which every client can read.

Webhooks are best-effort notifications. A deployment tool that must not miss
a promotion reads the durable feed (``reg.events(since=cursor)``) and may use
webhooks only as a wake-up call.
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import json
import logging
import os
import queue
import re
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidInputError
from ..models import AuditEvent, EventDraft, utcnow
from .events import check_topic, matches, seal

__all__ = [
    "EXIT_FLUSH_TIMEOUT",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DeliveryResult",
    "Dispatcher",
    "WebhookConfig",
    "deliver",
    "sign",
    "verify_signature",
]

log = logging.getLogger("modelreg.webhooks")

SIGNATURE_HEADER = "X-Modelreg-Signature"
TIMESTAMP_HEADER = "X-Modelreg-Timestamp"
EVENT_HEADER = "X-Modelreg-Event"
DELIVERY_HEADER = "X-Modelreg-Delivery"
EXIT_FLUSH_TIMEOUT = 10.0
IDLE_EXIT = 30.0
"""Seconds an idle worker thread waits for work before it exits (a new one starts on demand)."""
MAX_BACKOFF = 30.0
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RETRY_STATUS = {408, 429}


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


class WebhookConfig(_Record):
    """A registered webhook. ``secret_env`` is the *name* of the environment variable holding the secret."""

    id: str
    url: str
    secret_env: str
    events: list[str] = Field(default_factory=lambda: ["*"])
    models: list[str] | None = None
    timeout: float = 5.0
    max_attempts: int = 4
    backoff: float = 0.5
    created_by: str | None = None
    created_at: datetime | None = None

    def wants(self, ev: AuditEvent) -> bool:
        if self.models is not None and ev.model not in self.models:
            return False
        return matches(self.events, ev.action)

    @classmethod
    def create(
        cls,
        url: str,
        *,
        secret_env: str,
        events: Iterable[str] | None,
        models: Iterable[str] | None,
        timeout: float,
        max_attempts: int,
        backoff: float,
        actor: str,
    ) -> WebhookConfig:
        from urllib.parse import urlsplit

        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInputError(f"webhook url must be an http:// or https:// URL with a host, got {url!r}")
        if not isinstance(secret_env, str) or not _ENV_RE.match(secret_env):
            raise InvalidInputError(
                f"secret_env must be the name of an environment variable (e.g. 'MODELREG_WEBHOOK_SECRET'), got "
                f"{secret_env!r}; the secret itself is never stored in the registry"
            )
        topics = [check_topic(e) for e in (["*"] if events is None else list(events))]
        if not topics:
            raise InvalidInputError("events must name at least one event, or '*' for all")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 120:
            raise InvalidInputError(f"timeout must be between 0 and 120 seconds, got {timeout!r}")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or not 1 <= max_attempts <= 20:
            raise InvalidInputError(f"max_attempts must be an integer from 1 to 20, got {max_attempts!r}")
        if isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or not 0 <= backoff <= MAX_BACKOFF:
            raise InvalidInputError(f"backoff must be between 0 and {MAX_BACKOFF} seconds, got {backoff!r}")
        return cls(
            id="wh-" + uuid.uuid4().hex[:8],
            url=url,
            secret_env=secret_env,
            events=topics,
            models=sorted(set(models)) if models is not None else None,
            timeout=float(timeout),
            max_attempts=max_attempts,
            backoff=float(backoff),
            created_by=actor,
            created_at=utcnow(),
        )


class DeliveryResult(_Record):
    """The outcome of delivering one event to one webhook (after all attempts)."""

    webhook: str
    url: str
    delivery: str
    model: str
    seq: int
    action: str
    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None
    time: datetime
    duration_ms: float


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The signature header value: ``sha256=`` + HMAC-SHA256 of ``timestamp + "." + body``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str | bytes,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """For receivers: True if ``signature`` signs ``body`` at ``timestamp`` and the timestamp is fresh.

    >>> ok = verify_signature(secret, request.body, request.headers["X-Modelreg-Timestamp"],
    ...                       request.headers["X-Modelreg-Signature"])
    >>> ok
    True
    """
    try:
        age = abs((time.time() if now is None else now) - float(timestamp))
    except (TypeError, ValueError):
        return False
    if age > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature or "")


def payload(ev: AuditEvent, hook: WebhookConfig, delivery: str, registry: str | None) -> bytes:
    data = {
        "id": f"{ev.model}#{ev.seq}",
        "delivery": delivery,
        "webhook": hook.id,
        "registry": registry,
        "event": ev.model_dump(mode="json"),
    }
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


_opener: Any = None


def _get_opener() -> Any:
    """A urllib opener that does not follow redirects (built on first use: urllib.request loads ssl)."""
    global _opener
    if _opener is None:
        import urllib.request

        class _NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        _opener = urllib.request.build_opener(_NoRedirect)
    return _opener


def deliver(
    hook: WebhookConfig,
    ev: AuditEvent,
    *,
    registry: str | None = None,
    environ: Any = None,
    stop: threading.Event | None = None,
    sleep: Callable[[float], Any] | None = None,
) -> DeliveryResult:
    """POST ``ev`` to ``hook`` with retries; never raises."""
    import urllib.error
    import urllib.request

    env = os.environ if environ is None else environ
    delivery = uuid.uuid4().hex
    started = time.monotonic()
    attempts, status, error, ok = 0, None, None, False
    secret = env.get(hook.secret_env)
    if not secret:
        error = (
            f"environment variable {hook.secret_env} (the webhook secret) is not set in this process; nothing was sent"
        )
    else:
        body = payload(ev, hook, delivery, registry)
        from .._version import __version__

        while attempts < hook.max_attempts:
            if attempts:
                delay = min(MAX_BACKOFF, hook.backoff * 2 ** (attempts - 1))
                if stop is not None:
                    if stop.wait(delay):
                        error = f"{error}; gave up early: the registry was closed"
                        break
                else:
                    (sleep or time.sleep)(delay)
            attempts += 1
            ts = str(int(time.time()))
            req = urllib.request.Request(
                hook.url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": f"modelreg/{__version__}",
                    SIGNATURE_HEADER: sign(secret, ts, body),
                    TIMESTAMP_HEADER: ts,
                    EVENT_HEADER: ev.action,
                    DELIVERY_HEADER: delivery,
                },
            )
            retry = False
            try:
                with _get_opener().open(req, timeout=hook.timeout) as resp:
                    resp.read(65536)
                    status = resp.status
                ok = 200 <= status < 300
                if not ok:
                    error = f"HTTP {status}"
            except urllib.error.HTTPError as exc:
                status = exc.code
                detail = ""
                try:
                    detail = exc.read(200).decode("utf-8", "replace").strip()
                except Exception:
                    pass
                error = f"HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else "")
                retry = exc.code >= 500 or exc.code in _RETRY_STATUS
                exc.close()
            except (urllib.error.URLError, OSError, ValueError) as exc:
                status = None
                reason = getattr(exc, "reason", exc)
                error = f"{type(reason).__name__}: {reason}" if not isinstance(reason, str) else reason
                retry = True
            if ok or not retry:
                break
        if not ok and attempts >= hook.max_attempts and attempts > 1:
            error = f"{error} (gave up after {attempts} attempts)"
    return DeliveryResult(
        webhook=hook.id,
        url=hook.url,
        delivery=delivery,
        model=ev.model,
        seq=ev.seq,
        action=ev.action,
        ok=ok,
        attempts=attempts,
        status=status,
        error=None if ok else error,
        time=utcnow(),
        duration_ms=round((time.monotonic() - started) * 1000, 1),
    )


_DISPATCHERS: weakref.WeakSet[Dispatcher] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:  # pragma: no cover - runs at interpreter exit
    for d in list(_DISPATCHERS):
        d.close(EXIT_FLUSH_TIMEOUT)


class Dispatcher:
    """A worker thread delivering webhooks for one registry, in commit order.

    ``submit`` never blocks; sealing the events (reading them back from the audit
    chain), delivering and recording happen on the worker.
    """

    def __init__(
        self,
        store: Any,
        record: Callable[[DeliveryResult], None],
        *,
        registry: str | None = None,
        environ: Any = None,
    ) -> None:
        self._store = store
        self._record = record
        self._registry = registry
        self._environ = environ
        self._queue: queue.Queue[tuple[list[WebhookConfig], str, list[EventDraft]] | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.results: deque[DeliveryResult] = deque(maxlen=1000)
        _DISPATCHERS.add(self)

    def submit(self, hooks: Sequence[WebhookConfig], model: str, drafts: Sequence[EventDraft]) -> None:
        if self._stop.is_set() or not hooks or not drafts:
            return
        with self._lock:  # enqueue under the lock, so an idle worker cannot exit past new work
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="modelreg-webhooks", daemon=True)
                self._thread.start()
            self._queue.put((list(hooks), model, list(drafts)))

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=IDLE_EXIT)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty() and self._thread is threading.current_thread():
                        self._thread = None
                        return
                continue
            try:
                if item is None:
                    return
                hooks, model, drafts = item
                self._handle(hooks, model, drafts)
            except Exception:
                log.exception("webhook delivery failed unexpectedly")
            finally:
                self._queue.task_done()

    def _handle(self, hooks: list[WebhookConfig], model: str, drafts: list[EventDraft]) -> None:
        events = seal(self._store, model, drafts)
        for ev in events:
            for hook in hooks:
                if not hook.wants(ev):
                    continue
                if self._stop.is_set():
                    return
                result = deliver(hook, ev, registry=self._registry, environ=self._environ, stop=self._stop)
                self.results.append(result)
                if not result.ok:
                    log.warning(
                        "webhook %s (%s) failed for %s#%d %s: %s",
                        hook.id,
                        hook.url,
                        ev.model,
                        ev.seq,
                        ev.action,
                        result.error,
                    )
                try:
                    self._record(result)
                except Exception:
                    log.exception("could not record the webhook delivery result %s", result.delivery)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted event is handled; False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        cond = self._queue.all_tasks_done
        with cond:
            while self._queue.unfinished_tasks:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                cond.wait(remaining)
        return True

    def close(self, timeout: float = EXIT_FLUSH_TIMEOUT) -> bool:
        """Deliver what is queued (waiting at most ``timeout``), then stop the worker."""
        done = self.flush(timeout)
        self._stop.set()
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=1.0 if done else 0.1)
        _DISPATCHERS.discard(self)
        return done
