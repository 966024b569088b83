"""``FsspecArtifactStore``: content-addressed blobs on any fsspec filesystem.

Layout under the store's root::

    sha256/<first 2 hex>/<remaining 62 hex>   one blob per distinct content
    tmp/<random>.part                         uploads in flight (local disk only)

On local disk a blob is written to ``tmp/`` and published with ``os.link``
(never a half-written blob under its final name). Object stores publish an
upload atomically when it completes.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any, BinaryIO

from ..errors import BackendError, BlobNotFound
from ..hashing import CHUNK, ProgressFn, check_digest
from .base import ArtifactStore, BlobInfo

__all__ = ["FsspecArtifactStore"]


def _as_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None


def _modified(info: dict[str, Any]) -> datetime | None:
    for key in ("mtime", "LastModified", "last_modified", "updated", "created", "time"):
        if key in info:
            got = _as_datetime(info[key])
            if got is not None:
                return got
    return None


class FsspecArtifactStore(ArtifactStore):
    """Blobs on any fsspec URL: ``file://``, plain paths, ``memory://``, ``s3://``, ``gs://``, ``az://``.

    ``storage_options`` are passed to the fsspec filesystem (credentials,
    endpoints); they are never written to the registry or shown in errors.
    """

    def __init__(self, url: str, *, fs: Any = None, **storage_options: Any) -> None:
        from ..uri import filesystem_for

        if fs is None:
            fs, root = filesystem_for(url, storage_options)
        else:
            root = fs._strip_protocol(url)
        self.fs = fs
        self.root = root.rstrip("/")
        self.url = url
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self.protocol = protocol
        self._local = protocol in ("file", "local")

    def __repr__(self) -> str:
        return f"FsspecArtifactStore({self.url!r})"

    # -- paths ---------------------------------------------------------------
    def _path(self, digest: str) -> str:
        hexpart = check_digest(digest)[len("sha256:"):]
        return f"{self.root}/sha256/{hexpart[:2]}/{hexpart[2:]}"

    def _fail(self, action: str, digest: str, exc: BaseException) -> BackendError:
        return BackendError(
            f"{self.protocol} artifact store at {self.url!r} could not {action} blob {digest}: "
            f"{type(exc).__name__}: {exc}. Check that the location exists and is writable, and your credentials"
        )

    # -- contract ---------------------------------------------------------------
    def exists(self, digest: str) -> bool:
        path = self._path(digest)
        try:
            if self._local:
                return os.path.isfile(path)
            return bool(self.fs.exists(path))
        except Exception as exc:  # noqa: BLE001 - translated at the boundary
            raise self._fail("check", digest, exc) from exc

    def touch(self, digest: str) -> None:
        if self._local:
            with contextlib.suppress(OSError):
                os.utime(self._path(digest))

    def put_file(self, digest: str, path: str | os.PathLike[str], *, progress: ProgressFn | None = None) -> None:
        final = self._path(digest)
        try:
            if self._local:
                self._put_local(final, os.fspath(path), progress)
            else:
                if self.exists(digest):
                    return
                total = os.path.getsize(path)
                self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
                self.fs.put_file(os.fspath(path), final)
                if progress is not None:
                    progress("upload", total, total)
        except BackendError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._fail("upload", digest, exc) from exc

    def _put_local(self, final: str, source: str, progress: ProgressFn | None) -> None:
        if os.path.isfile(final):
            os.utime(final)
            return
        tmpdir = os.path.join(self.root, "tmp")
        os.makedirs(tmpdir, exist_ok=True)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        tmp = os.path.join(tmpdir, f"{uuid.uuid4().hex}.part")
        total = os.path.getsize(source)
        try:
            done = 0
            with open(source, "rb", buffering=0) as src, open(tmp, "wb", buffering=0) as dst:
                buf = bytearray(CHUNK)
                view = memoryview(buf)
                while True:
                    n = src.readinto(view)
                    if not n:
                        break
                    dst.write(view[:n])
                    done += n
                    if progress is not None:
                        progress("upload", done, total)
            os.chmod(tmp, 0o444)
            try:
                os.link(tmp, final)
            except FileExistsError:
                pass  # another writer published the same content first
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def put_bytes(self, digest: str, data: bytes) -> None:
        final = self._path(digest)
        try:
            if self._local:
                if os.path.isfile(final):
                    return
                tmpdir = os.path.join(self.root, "tmp")
                os.makedirs(tmpdir, exist_ok=True)
                os.makedirs(os.path.dirname(final), exist_ok=True)
                tmp = os.path.join(tmpdir, f"{uuid.uuid4().hex}.part")
                with open(tmp, "wb") as f:
                    f.write(data)
                try:
                    os.link(tmp, final)
                except FileExistsError:
                    pass
                finally:
                    os.unlink(tmp)
            elif not self.fs.exists(final):
                self.fs.pipe_file(final, data)
        except Exception as exc:  # noqa: BLE001
            raise self._fail("upload", digest, exc) from exc

    def open(self, digest: str) -> BinaryIO:
        path = self._path(digest)
        try:
            if self._local:
                return open(path, "rb")  # noqa: SIM115
            return self.fs.open(path, "rb")
        except FileNotFoundError:
            raise BlobNotFound(
                f"blob {digest} is missing from the {self.protocol} artifact store {self.url!r}; "
                "run `modelreg verify` to list affected versions"
            ) from None
        except Exception as exc:  # noqa: BLE001
            raise self._fail("read", digest, exc) from exc

    def size(self, digest: str) -> int:
        path = self._path(digest)
        try:
            if self._local:
                return os.path.getsize(path)
            return int(self.fs.size(path))
        except FileNotFoundError:
            raise BlobNotFound(
                f"blob {digest} is missing from the {self.protocol} artifact store {self.url!r}; "
                "run `modelreg verify` to list affected versions"
            ) from None
        except Exception as exc:  # noqa: BLE001
            raise self._fail("stat", digest, exc) from exc

    def delete(self, digest: str) -> None:
        path = self._path(digest)
        try:
            if self._local:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            else:
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm_file(path)
        except Exception as exc:  # noqa: BLE001
            raise self._fail("delete", digest, exc) from exc

    def iter_blobs(self) -> Iterator[BlobInfo]:
        base = f"{self.root}/sha256"
        try:
            if self._local:
                if not os.path.isdir(base):
                    return
                for prefix in sorted(os.listdir(base)):
                    pdir = os.path.join(base, prefix)
                    for rest in sorted(os.listdir(pdir)):
                        st = os.stat(os.path.join(pdir, rest))
                        yield BlobInfo(
                            f"sha256:{prefix}{rest}", st.st_size, datetime.fromtimestamp(st.st_mtime, timezone.utc)
                        )
                return
            if not self.fs.exists(base):
                return
            found = self.fs.find(base, detail=True)
        except Exception as exc:  # noqa: BLE001
            raise BackendError(f"{self.protocol} artifact store at {self.url!r} could not list blobs: {exc}") from exc
        for path, info in sorted(found.items()):
            parts = path.rstrip("/").split("/")
            if len(parts) < 2:
                continue
            hexpart = parts[-2] + parts[-1]
            if len(hexpart) != 64:
                continue
            yield BlobInfo(f"sha256:{hexpart}", int(info.get("size") or 0), _modified(info))

    def cleanup_partial(self, older_than: datetime) -> list[str]:
        if not self._local:
            return []
        tmpdir = os.path.join(self.root, "tmp")
        removed = []
        if os.path.isdir(tmpdir):
            for entry in os.scandir(tmpdir):
                if datetime.fromtimestamp(entry.stat().st_mtime, timezone.utc) < older_than:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed.append(entry.name)
        return removed
