"""The adapter contract (:class:`ObjectIO`) and what every adapter shares."""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["READ_CONCURRENCY", "ObjectIO", "PreconditionFailed", "Read", "json_files", "sha", "strip_quotes"]

READ_CONCURRENCY = 32
"""Reads in flight at once in :meth:`ObjectIO.read_many` (remote stores)."""


class PreconditionFailed(Exception):
    """A compare-and-swap lost: the object changed (or vanished) since it was read."""


@dataclass(frozen=True)
class Read:
    data: bytes
    etag: str


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def strip_quotes(etag: Any) -> str:
    return str(etag).strip('"')


class ObjectIO:
    """Whole-object reads and conditional writes under one filesystem.

    Paths are the filesystem's own (protocol stripped). ``list_stamps`` returns
    a change stamp per file of a folder, or None per file when the backend
    cannot give one cheaply in a listing (then callers re-read the file).
    """

    conditional = True
    remote = False
    bogus_etag = "modelreg-probe-never-an-etag"
    """An etag no object has (used to check that compare-and-swap is enforced)."""

    def __init__(self, fs: Any) -> None:
        self.fs = fs
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()

    def count(self, kind: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[kind] += n

    @property
    def protocol(self) -> str:
        p = self.fs.protocol
        return p if isinstance(p, str) else p[0]

    # -- contract -------------------------------------------------------------------
    def read(self, path: str) -> Read:
        """Content and etag; FileNotFoundError if absent."""
        raise NotImplementedError

    def read_many(self, paths: Iterable[str]) -> dict[str, bytes]:
        """Contents of several objects (fetched concurrently where possible); absent ones are left out."""
        out = {}
        for p in paths:
            with contextlib.suppress(FileNotFoundError):
                out[p] = self.read(p).data
        return out

    def create(self, path: str, data: bytes) -> str:
        """Write ``data`` only if ``path`` does not exist; return the new etag or raise FileExistsError."""
        raise NotImplementedError

    def swap(self, path: str, data: bytes, etag: str) -> str:
        """Replace ``path`` only if its etag is still ``etag``; return the new etag or raise PreconditionFailed."""
        raise NotImplementedError

    def put(self, path: str, data: bytes) -> str:
        """Unconditional write (used for tombstones, whose content is the same for every writer)."""
        raise NotImplementedError

    def delete(self, path: str) -> None:
        """Remove ``path``; absent is fine."""
        raise NotImplementedError

    def list_stamps(self, folder: str) -> dict[str, str | None]:
        """File name -> change stamp (etag) of the files directly in ``folder``; {} if it does not exist."""
        raise NotImplementedError

    def stamp_of(self, read: Read) -> str | None:
        """The stamp ``list_stamps`` would show for this read (None if listings carry none)."""
        return read.etag if self.remote else None


def json_files(entries: list[dict[str, Any]]) -> dict[str, str | None]:
    """The ``*.json`` file names of an fsspec ``ls(detail=True)`` listing, without stamps."""
    out: dict[str, str | None] = {}
    for e in entries:
        if e.get("type") == "file":
            name = e["name"].rstrip("/").rsplit("/", 1)[-1]
            if name.endswith(".json"):
                out[name] = None
    return out
