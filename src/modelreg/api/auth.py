"""Who is calling: bearer tokens looked up in the registry (cached briefly), and a token bucket per
caller. Imports nothing from the web stack."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import RateLimited, Unauthorized
from .schemas import Identity
from .tokens import TokenInfo, hash_token, stored_tokens

if TYPE_CHECKING:
    from ..registry import Registry

__all__ = ["RateLimiter", "TokenTable"]


class TokenTable:
    """The registry's tokens by hash, read again at most every ``ttl`` seconds (a token revoked by
    another process stops working within ``ttl``; :meth:`invalidate` makes this server re-read)."""

    def __init__(self, registry: Registry, ttl: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry, self.ttl, self.clock = registry, ttl, clock
        self._lock = threading.Lock()
        self._loaded: tuple[float, dict[str, TokenInfo]] | None = None

    def invalidate(self) -> None:
        with self._lock:
            self._loaded = None

    def fresh(self) -> bool:
        """Whether the table read last is still in use (answering needs no registry read)."""
        loaded = self._loaded
        return loaded is not None and self.clock() - loaded[0] < self.ttl

    def _table(self) -> dict[str, TokenInfo]:
        now = self.clock()
        with self._lock:
            if self._loaded is not None and now - self._loaded[0] < self.ttl:
                return self._loaded[1]
        records = stored_tokens(self.registry)
        table = {
            str(r["sha256"]): TokenInfo.model_validate({k: v for k, v in r.items() if k != "sha256"})
            for r in records.values()
            if "sha256" in r
        }
        with self._lock:
            self._loaded = (now, table)
        return table

    def count(self) -> int:
        return len(self._table())

    def identify(self, authorization: str | None, *, read_only: bool) -> Identity:
        """The identity of an ``Authorization: Bearer <token>`` header; Unauthorized otherwise."""
        if not authorization:
            raise Unauthorized(
                "this server needs an API token: send 'Authorization: Bearer <token>' "
                "(create one with `modelreg token create --name NAME --role reader`)"
            )
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        info = self._table().get(hash_token(token))
        if info is None:
            raise Unauthorized("unknown or revoked API token; list tokens with `modelreg token list`")
        return Identity(token=info.name, role=info.role, actor=info.actor, read_only=read_only)


class RateLimiter:
    """A token bucket per caller: ``rate`` requests a second on average, bursts of ``burst``.
    A rate of 0 (or less) means no limit."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else max(1.0, 2.0 * self.rate)
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, time)

    def take(self, caller: str) -> None:
        """Spend one request of ``caller``'s bucket; RateLimited (with ``retry_after``) when empty."""
        if self.rate <= 0:
            return
        now = self.clock()
        with self._lock:
            tokens, then = self._buckets.get(caller, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            if tokens < 1.0:
                self._buckets[caller] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
                raise RateLimited(
                    f"too many requests: the limit is {self.rate:g} a second (bursts of {self.burst:g}); "
                    f"retry in {wait:.2f} s",
                    retry_after=max(1, math.ceil(wait)),
                )
            self._buckets[caller] = (tokens - 1.0, now)
