"""Transfer settings: part size, parts in flight and the retry policy, with explicit defaults per
backend (:data:`DEFAULTS`)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Any

from ...errors import (
    InvalidInputError,
)

MiB = 1024 * 1024

__all__ = ["DEFAULTS", "MiB", "TransferConfig", "backend_name", "config_for", "part_size"]


@dataclass(frozen=True)
class TransferConfig:
    """How blobs move to and from one backend.

    ``chunk_size``: bytes per upload part (S3 part, Azure block, GCS resumable
    chunk). ``concurrency``: parts in flight at once (S3 and Azure; GCS resumable
    uploads are sequential by protocol), and ranges downloaded at once on Azure.
    ``retries``: attempts per request or part before giving up (1 = no retry);
    ``backoff``/``backoff_max``: first and largest delay in seconds between them.

    Memory does not grow with either: every part is streamed from the local file
    (:class:`FileSlice`) rather than held in memory, and downloads stream to disk
    in small reads. ``chunk_size`` trades request count against the bytes sent
    again when a part fails.
    """

    chunk_size: int = 16 * MiB
    concurrency: int = 4
    retries: int = 5
    backoff: float = 0.5
    backoff_max: float = 20.0

    def __post_init__(self) -> None:
        for name in ("chunk_size", "concurrency", "retries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
        if self.chunk_size < 256 * 1024:
            raise InvalidInputError(f"chunk_size must be at least 256 KiB, got {self.chunk_size}")
        for name in ("backoff", "backoff_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise InvalidInputError(f"{name} must be a non-negative number of seconds, got {value!r}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based): exponential, capped, jittered."""
        base: float = min(self.backoff * (2 ** (attempt - 1)), self.backoff_max)
        return base * (0.5 + random.random() / 2)


# Measured against the emulators (see benchmarks/README.md): these keep a 1 GiB
# upload well under 200 MB of RSS while matching the SDKs' own upload calls.
DEFAULTS: dict[str, TransferConfig] = {
    "s3": TransferConfig(chunk_size=8 * MiB, concurrency=8),
    "gcs": TransferConfig(chunk_size=100 * MiB, concurrency=1),
    "azure": TransferConfig(chunk_size=16 * MiB, concurrency=4),
    "local": TransferConfig(chunk_size=8 * MiB, concurrency=1),
    "other": TransferConfig(chunk_size=8 * MiB, concurrency=1),
}

_BACKENDS = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "file": "local",
    "local": "local",
}

_LIMITS = {  # (minimum part size except the last, maximum number of parts)
    "s3": (5 * MiB, 10_000),
    "azure": (1, 50_000),
}


def backend_name(protocol: str) -> str:
    """``s3``, ``gcs``, ``azure``, ``local`` or ``other`` for an fsspec protocol."""
    return _BACKENDS.get(protocol, "other")


def config_for(backend: str, **overrides: Any) -> TransferConfig:
    """The default :class:`TransferConfig` of ``backend`` with the given fields replaced."""
    base = DEFAULTS.get(backend, DEFAULTS["other"])
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(base, **given) if given else base


def part_size(size: int, config: TransferConfig, backend: str) -> int:
    """The part size for a file of ``size`` bytes, within the backend's limits."""
    minimum, max_parts = _LIMITS.get(backend, (1, 10_000))
    chunk = max(config.chunk_size, minimum)
    if size > chunk * max_parts:
        chunk = math.ceil(size / max_parts)
    if backend == "gcs":  # resumable chunks are multiples of 256 KiB
        chunk = math.ceil(chunk / (256 * 1024)) * 256 * 1024
    return chunk
