"""Streaming sha256 over files and streams with a fixed 8 MiB buffer."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import BinaryIO

CHUNK = 8 * 1024 * 1024

ProgressFn = Callable[[str, int, int], None]
"""``progress(phase, bytes_done, bytes_total)``; phases are ``hash``, ``upload`` and ``download``."""


def sha256_stream(stream: BinaryIO, *, total: int = 0, progress: ProgressFn | None = None, phase: str = "hash") -> tuple[str, int]:
    """Hash a binary stream; return (``sha256:<hex>``, bytes read)."""
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    done = 0
    readinto = getattr(stream, "readinto", None)
    while True:
        if readinto is not None:
            n = readinto(view)
            if not n:
                break
            h.update(view[:n])
        else:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            n = len(chunk)
            h.update(chunk)
        done += n
        if progress is not None:
            progress(phase, done, total)
    return "sha256:" + h.hexdigest(), done


def sha256_file(path: str | os.PathLike[str], *, progress: ProgressFn | None = None) -> tuple[str, int]:
    """Hash a local file; return (``sha256:<hex>``, size)."""
    total = os.path.getsize(path)
    with open(path, "rb", buffering=0) as f:
        return sha256_stream(f, total=total, progress=progress)


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    """Validate ``sha256:<64 hex>``; it becomes an object path, so nothing else may pass."""
    from .errors import InvalidInputError

    algo, _, hexpart = digest.partition(":") if isinstance(digest, str) else ("", "", "")
    if algo != "sha256" or len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise InvalidInputError(f"invalid digest {digest!r}; expected 'sha256:' and 64 lowercase hex digits")
    return digest
