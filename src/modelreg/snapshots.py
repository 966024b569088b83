"""Read-only local snapshots of versions, for ``Registry.fetch`` and ``Registry.load_model``.

A snapshot is a version's file or folder, laid out as it was registered, under the local cache
(``$MODELREG_CACHE_DIR``, default ``~/.cache/modelreg``)::

    snapshots/<artifact digest>/<artifact name>          the file or folder (read-only)
    snapshots/<artifact digest>/.<artifact name>.json    what it holds: each file's size and stamp
    refs/<registry key>/<model>/<version>.json           the version's record, for offline use

Files are hard links to the verified blobs of the download cache (:class:`~modelreg.cache.BlobCache`),
so a snapshot costs no extra space where the cache lives on the same disk (a copy otherwise).
Every blob is verified (sha256 and size) when the snapshot is built; a later ``fetch`` checks
that each file is still the one it built (size, modification time, inode) and rebuilds the
snapshot if not, so an edited or deleted file is never served. ``verify=True`` re-hashes.

The ``refs`` records let a version that was fetched once be fetched again by number or digest
while the registry's storage is unreachable (a serving process that restarts during an outage).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import uuid
from collections.abc import Callable
from pathlib import Path

from .cache import BlobCache
from .errors import IntegrityError
from .hashing import sha256_stream
from .models import ModelVersion
from .validation import check_relpath

__all__ = ["SnapshotCache"]

_READ_ONLY_FILE = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
_READ_ONLY_DIR = _READ_ONLY_FILE | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH

BlobSource = Callable[[str, int, str], "tuple[Path, bool]"]
"""``(digest, size, where) -> (path, verified)``: a blob in the download cache, and whether it was
verified just now (fetched and hashed); a blob that was already cached is re-hashed when placed."""


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _make_writable(root: Path) -> None:
    """Undo the read-only modes of a snapshot so that it can be removed."""
    if root.is_symlink() or not root.exists():
        return
    if root.is_dir():
        for folder, dirs, _files in os.walk(root):
            os.chmod(folder, stat.S_IRWXU)
            for d in dirs:
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(folder, d), stat.S_IRWXU)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        _make_writable(path)
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class SnapshotCache:
    """Snapshots and offline records under a :class:`BlobCache`'s folder (see the module docs)."""

    def __init__(self, blobs: BlobCache) -> None:
        self.blobs = blobs
        self.root = blobs.root / "snapshots"
        self.refs = blobs.root / "refs"

    def __repr__(self) -> str:
        return f"SnapshotCache({str(self.root)!r})"

    # -- layout ---------------------------------------------------------------------------
    def _folder(self, digest: str) -> Path:
        return self.root / self.blobs.path_for(digest).parent.name / self.blobs.path_for(digest).name

    def path_for(self, mv: ModelVersion) -> Path:
        return self._folder(mv.artifact.digest) / check_relpath(mv.artifact.name)

    def _marker(self, target: Path) -> Path:
        return target.parent / f".{target.name}.json"

    # -- lookup ---------------------------------------------------------------------------
    def lookup(self, mv: ModelVersion, *, verify: bool = False) -> Path | None:
        """The snapshot of ``mv`` if it is complete and unchanged (with ``verify``, re-hashed)."""
        target = self.path_for(mv)
        try:
            recorded = json.loads(self._marker(target).read_text())
        except (OSError, ValueError):
            return None
        stamps = recorded.get("files") if isinstance(recorded, dict) else None
        if not isinstance(stamps, dict) or len(stamps) != len(mv.artifact.files):
            return None
        for entry in mv.artifact.files:
            path = target / entry.path if mv.artifact.kind == "directory" else target
            try:
                if _stamp(path) != stamps.get(entry.path) or path.stat().st_size != entry.size:
                    return None
            except OSError:
                return None
            if verify:
                with open(path, "rb", buffering=0) as f:
                    got, n = sha256_stream(f, total=entry.size)
                if got != entry.digest or n != entry.size:
                    return None
        return target

    # -- build ----------------------------------------------------------------------------
    def build(self, mv: ModelVersion, blob: BlobSource) -> Path:
        """Lay out ``mv``'s snapshot from verified blobs (``blob`` fetches one into the download
        cache); replaces a damaged or incomplete snapshot. Safe with other processes building the
        same snapshot: each builds in its own staging folder and the first to finish wins."""
        target = self.path_for(mv)
        folder = target.parent
        folder.mkdir(parents=True, exist_ok=True)
        marker = self._marker(target)
        replaced = _read(marker)  # the marker of the snapshot this call replaces, if any
        staging = folder / f".tmp-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            built = staging / target.name
            stamps: dict[str, list[int]] = {}
            for entry in mv.artifact.files:
                rel = check_relpath(entry.path)
                out = built / rel if mv.artifact.kind == "directory" else built
                out.parent.mkdir(parents=True, exist_ok=True)
                where = f"{mv.ref}: file {entry.path!r}"
                source, verified = blob(entry.digest, entry.size, where)
                if not self._place(source, out, entry.digest, entry.size, verified=verified):
                    # the cached copy was damaged since it was fetched (it was evicted): fetch again
                    source, verified = blob(entry.digest, entry.size, where)
                    if not self._place(source, out, entry.digest, entry.size, verified=verified):
                        raise IntegrityError(f"{where}: the copy fetched into the local cache does not verify")
                stamps[entry.path] = _stamp(out)
            if mv.artifact.kind == "directory":
                built.mkdir(exist_ok=True)  # an empty folder has no files to create it
                for sub, _dirs, _files in os.walk(built, topdown=False):
                    os.chmod(sub, _READ_ONLY_DIR)
            now = _read(marker)
            if now is not None and now != replaced and self.lookup(mv) is not None:
                return target  # another process finished first: keep its snapshot
            _remove(target)
            with contextlib.suppress(FileNotFoundError):
                marker.unlink()
            os.rename(built, target)
            tmp = staging / "marker.json"
            tmp.write_text(json.dumps({"ref": mv.ref, "digest": mv.artifact.digest, "files": stamps}))
            os.replace(tmp, marker)
        finally:
            _remove(staging)
        return target

    def _place(self, source: Path, out: Path, digest: str, size: int, *, verified: bool) -> bool:
        """Put the cached blob at ``out``: a hard link (a copy where links are impossible), after
        re-hashing a blob that was not ``verified`` just now (it could have been changed since:
        a snapshot's files are links to it). False, with the cache entry evicted, if it is damaged."""
        got, n = digest, size
        if not verified:
            with open(source, "rb", buffering=0) as f:
                got, n = sha256_stream(f, total=size)
        if got != digest or n != size:
            self.blobs.evict(digest)
            return False
        try:
            os.link(source, out)
        except OSError:  # another file system, or links not allowed: a copy
            shutil.copyfile(source, out)
            os.chmod(out, _READ_ONLY_FILE)
        return True

    # -- offline records ----------------------------------------------------------------------
    @staticmethod
    def registry_key(metadata_url: str) -> str:
        return hashlib.sha256(metadata_url.encode()).hexdigest()[:24]

    def _ref_path(self, key: str, name: str, version: int) -> Path:
        return self.refs / key / name.replace("/", "~") / f"{int(version)}.json"

    def remember(self, key: str, mv: ModelVersion) -> None:
        """Keep ``mv``'s record so that it can be fetched by number with the storage unreachable."""
        path = self._ref_path(key, mv.name, mv.version)
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{uuid.uuid4().hex}.tmp")
            tmp.write_text(mv.model_dump_json())
            os.replace(tmp, path)

    def recall_digest(self, key: str, digest: str) -> ModelVersion | None:
        """The record of a version whose snapshot of the artifact ``digest`` is on disk, or None."""
        with contextlib.suppress(OSError):
            for marker in sorted(self._folder(digest).glob(".*.json")):
                with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
                    name, _, version = str(json.loads(marker.read_text())["ref"]).rpartition("/")
                    mv = self.recall(key, name, int(version))
                    if mv is not None and mv.artifact.digest == digest:
                        return mv
        return None

    def recall(self, key: str, name: str, version: int) -> ModelVersion | None:
        """The record :meth:`remember` kept, or None."""
        try:
            return ModelVersion.model_validate_json(self._ref_path(key, name, version).read_bytes())
        except (OSError, ValueError):
            return None
