"""A local, content-addressed cache of downloaded blobs.

``Registry.download`` keeps every blob it fetches from a remote artifact store
(S3, GCS, Azure Blob, ...) here, so downloading a version again (even another
version or model with the same content) reads no bytes from the bucket, and
works with the bucket unreachable.

- Location: ``$MODELREG_CACHE_DIR`` if set, else ``~/.cache/modelreg``; or
  ``Registry(..., cache="/path")``. ``Registry(..., cache=False)`` turns it off.
- Layout: ``sha256/<first 2 hex>/<remaining 62 hex>``, read-only files named by
  their content digest; ``tmp/`` holds downloads in flight. Safe to share between
  processes and registries: an entry is published (atomic rename) only after its
  sha256 and size were checked, and is re-hashed every time it is copied out.
- Size and cleanup: ``modelreg cache info`` shows the location, the number of
  blobs and their total size; ``modelreg cache clear`` empties it. Entries are
  never evicted automatically.

The same folder (``$MODELREG_CACHE_DIR``, whatever the Registry's ``cache=``) also
holds ``suspect/``: per artifact store, the digests whose stored blob failed
verification (see :class:`SuspectDigests`), so that registering the content again
in another process replaces the damaged blob. ``modelreg cache clear`` keeps them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import IntegrityError
from .hashing import ProgressFn, check_digest, sha256_copy, sha256_stream

__all__ = ["BlobCache", "CacheInfo", "SuspectDigests", "default_cache_dir"]

CACHE_ENV = "MODELREG_CACHE_DIR"


def _warn(message: str, *args: Any) -> None:
    import logging  # on first use: a registry that never warns does not import logging

    logging.getLogger("modelreg.cache").warning(message, *args)


def default_cache_dir() -> Path:
    """``$MODELREG_CACHE_DIR`` if set, else ``~/.cache/modelreg``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "modelreg"


@dataclass(frozen=True)
class CacheInfo:
    path: str
    blobs: int
    bytes: int


class BlobCache:
    """Blobs by digest in a local folder (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(os.fspath(root)).expanduser() if root is not None else default_cache_dir()

    def __repr__(self) -> str:
        return f"BlobCache({str(self.root)!r})"

    def path_for(self, digest: str) -> Path:
        hexpart = check_digest(digest)[len("sha256:") :]
        return self.root / "sha256" / hexpart[:2] / hexpart[2:]

    def lookup(self, digest: str, size: int) -> Path | None:
        """The cached file for ``digest`` if present with the expected size."""
        path = self.path_for(digest)
        try:
            if path.stat().st_size == size:
                return path
        except OSError:
            return None
        self.evict(digest)  # truncated or replaced: not trustworthy
        return None

    def fetch(
        self,
        digest: str,
        size: int,
        store: Any,
        progress: ProgressFn | None = None,
        *,
        where: str = "",
        copy_to: str | os.PathLike[str] | None = None,
    ) -> Path:
        """Download ``digest`` from ``store`` into the cache, verifying sha256 and size; return its path.

        With ``copy_to``, the pass that hashes the downloaded file also copies it there (the copy
        and the hash at once, on two threads: :func:`~modelreg.hashing.sha256_copy`).

        Raises IntegrityError (nothing is cached, nothing is left at ``copy_to``) if the store
        returns other content.
        """
        final = self.path_for(digest)
        tmpdir = self.root / "tmp"
        tmpdir.mkdir(parents=True, exist_ok=True)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = tmpdir / f"{uuid.uuid4().hex}.part"
        try:
            # the store streams to disk its own best way (ranged, concurrent, resumable); then hash it
            store.get_file(digest, tmp, progress=progress)
            with open(tmp, "rb", buffering=0) as f:
                if copy_to is None:
                    got, n = sha256_stream(f, total=size)
                else:
                    try:
                        with open(copy_to, "w+b", buffering=0) as out:
                            got, n = sha256_copy(f, out, total=size)
                    except BaseException:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(copy_to)
                        raise
            if got != digest or n != size:
                if copy_to is not None:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(copy_to)
                mark = getattr(store, "mark_suspect", None)
                if mark is not None:  # the next registration of this content replaces the stored blob
                    mark(digest)
                raise IntegrityError(
                    f"{where or 'blob'} is corrupted in the artifact store {getattr(store, 'url', '')!r}: expected "
                    f"{digest} ({size} bytes), read {got} ({n} bytes). Nothing was written; run `modelreg verify` "
                    "and re-register the version from a good copy"
                )
            os.chmod(tmp, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            os.replace(tmp, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return final

    def copy_out(
        self, digest: str, size: int, dest: str | os.PathLike[str], progress: ProgressFn | None = None
    ) -> bool:
        """Copy the cached blob to ``dest`` while re-hashing it (at once, on two threads:
        :func:`~modelreg.hashing.sha256_copy`); False (the entry evicted, ``dest`` removed) if it is
        damaged."""
        path = self.lookup(digest, size)
        if path is None:
            return False
        try:
            with open(path, "rb", buffering=0) as src, open(dest, "w+b", buffering=0) as out:
                got, n = sha256_copy(src, out, total=size, progress=progress, phase="download")
        except FileNotFoundError:  # cleared meanwhile
            return False
        if got != digest or n != size:
            self.evict(digest)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dest)
            return False
        with contextlib.suppress(OSError):
            os.utime(path)  # records last use
        return True

    def evict(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path_for(digest))

    def _entries(self) -> list[Path]:
        base = self.root / "sha256"
        if not base.is_dir():
            return []
        return [p for d in sorted(base.iterdir()) if d.is_dir() for p in sorted(d.iterdir()) if p.is_file()]

    def info(self) -> CacheInfo:
        """Location, number of cached blobs and their total size in bytes."""
        entries = self._entries()
        total = 0
        for p in entries:
            with contextlib.suppress(OSError):
                total += p.stat().st_size
        return CacheInfo(path=str(self.root), blobs=len(entries), bytes=total)

    def clear(self, *, older_than: float | None = None) -> CacheInfo:
        """Delete cached blobs (only those unused for ``older_than`` seconds, if given); return what was removed."""
        cutoff = time.time() - older_than if older_than is not None else None
        removed = freed = 0
        for p in self._entries():
            try:
                st = p.stat()
                if cutoff is not None and st.st_mtime > cutoff:
                    continue
                p.unlink()
            except FileNotFoundError:
                continue
            removed += 1
            freed += st.st_size
        tmpdir = self.root / "tmp"
        if tmpdir.is_dir() and cutoff is None:
            shutil.rmtree(tmpdir, ignore_errors=True)
        return CacheInfo(path=str(self.root), blobs=removed, bytes=freed)


class SuspectDigests:
    """The digests flagged as damaged in one artifact store, persisted on local disk.

    One empty marker file per digest, ``<cache dir>/suspect/<store key>/<hex>``, where the
    store key is a hash of ``store_id`` (the store's protocol and root; two same-named buckets
    on different endpoints share a list, which costs at most a redundant upload). Marker
    files need no locking: processes add and remove them independently. The folder is
    ``$MODELREG_CACHE_DIR`` (else ``~/.cache/modelreg``), read when used, or ``root``.

    Best effort: failing to write or remove a marker is logged, never raised.
    """

    def __init__(self, store_id: str, root: str | os.PathLike[str] | None = None) -> None:
        self.key = hashlib.sha256(store_id.encode()).hexdigest()[:32]
        self._root = Path(os.fspath(root)).expanduser() if root is not None else None

    @property
    def folder(self) -> Path:
        return (self._root or default_cache_dir()) / "suspect" / self.key

    def _marker(self, digest: str) -> Path:
        return self.folder / check_digest(digest)[len("sha256:") :]

    def add(self, digest: str) -> None:
        marker = self._marker(digest)
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        except OSError as exc:
            _warn("could not record %s as damaged under %s: %s", digest, marker.parent, exc)

    def discard(self, digest: str) -> None:
        marker = self._marker(digest)
        try:
            marker.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            _warn("could not clear the damaged flag of %s under %s: %s", digest, marker.parent, exc)

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, str) and self._marker(digest).is_file()

    def __iter__(self) -> Iterator[str]:
        with contextlib.suppress(OSError):
            for entry in sorted(os.listdir(self.folder)):
                if len(entry) == 64:
                    yield f"sha256:{entry}"


def resolve_cache(cache: Any, artifacts: Any) -> BlobCache | None:
    """The Registry's ``cache=`` argument: None (automatic: on for remote artifact stores), True, False,
    a folder, or a :class:`BlobCache`."""
    if cache is None:
        return BlobCache() if getattr(artifacts, "remote", False) else None
    if cache is False:
        return None
    if cache is True:
        return BlobCache()
    if isinstance(cache, BlobCache):
        return cache
    if isinstance(cache, (str, os.PathLike)):
        return BlobCache(cache)
    from .errors import InvalidInputError

    raise InvalidInputError(f"cache must be True, False, a folder or a BlobCache, got {type(cache).__name__}")
