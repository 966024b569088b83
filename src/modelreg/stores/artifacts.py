"""``FsspecArtifactStore``: content-addressed blobs on any fsspec filesystem.

Layout under the store's root::

    sha256/<first 2 hex>/<remaining 62 hex>   one blob per distinct content
    tmp/<random>.part                         uploads in flight (local disk only)

On local disk a blob is written to ``tmp/`` and published with ``os.link``
(never a half-written blob under its final name). Object stores publish an
upload atomically when it completes (S3 multipart completion, Azure block list
commit, GCS resumable upload finalisation).

On S3, GCS and Azure Blob the transfer is tuned per backend (part size, parts in
flight, retries with backoff: see :class:`modelreg.stores._cloud.TransferConfig`
and ``docs/backends/``), and SDK errors are translated into
:class:`~modelreg.errors.ModelregError` subclasses with credentials masked.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any, BinaryIO, TypeVar

from ..errors import BlobNotFound, ModelregError
from ..hashing import CHUNK, ProgressFn, check_digest
from . import _cloud
from ._cloud import TransferConfig
from .base import ArtifactStore, BlobInfo

__all__ = ["FsspecArtifactStore", "TransferConfig"]

T = TypeVar("T")

OPEN_BLOCK_SIZE = 8 * 1024 * 1024
"""Bytes per ranged read of :meth:`FsspecArtifactStore.open` on object stores."""

_TRANSFER_KEYS = ("chunk_size", "concurrency", "retries", "backoff", "backoff_max")


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


def _copy_fd(src: Any, dst: Any, total: int, progress: ProgressFn | None) -> int:
    """Copy the open file ``src`` to ``dst`` from their current positions, in 8 MiB steps (for the
    progress callback). Uses ``os.copy_file_range`` (the kernel copies, no user-space buffer: what
    ``cp`` does) and falls back to a read/write loop where it is not supported."""
    done = 0
    if hasattr(os, "copy_file_range"):
        try:
            while True:
                n = os.copy_file_range(src.fileno(), dst.fileno(), CHUNK)
                if not n:
                    return done
                done += n
                if progress is not None:
                    progress("upload", done, total)
        except OSError as exc:
            if done or exc.errno not in _NO_COPY_FILE_RANGE:
                raise
    view = memoryview(bytearray(min(CHUNK, max(total + 1, 64 * 1024))))
    while True:
        n = src.readinto(view)
        if not n:
            return done
        _write_all(dst, view[:n])
        done += n
        if progress is not None:
            progress("upload", done, total)


_NO_COPY_FILE_RANGE = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM, errno.EBADF, errno.ETXTBSY}
"""Errors with which ``copy_file_range`` refuses a pair of files before copying anything."""


def _write_all(f: Any, data: memoryview) -> None:
    """``write`` on an unbuffered file may write less than asked: loop until all is written."""
    while len(data):
        n = f.write(data)
        data = data[n:]


class FsspecArtifactStore(ArtifactStore):
    """Blobs on any fsspec URL: ``file://``, plain paths, ``memory://``, ``s3://``, ``gs://``, ``az://``.

    ``storage_options`` are passed to the fsspec filesystem (credentials,
    endpoints); they are never written to the registry and are masked in errors.

    Transfer knobs (defaults per backend in ``modelreg.stores._cloud.DEFAULTS``):

    - ``chunk_size``: bytes per upload part / Azure block / GCS chunk, and per
      ranged read when downloading;
    - ``concurrency``: parts uploaded at once (S3 and Azure);
    - ``retries``: attempts per request or part on transient errors;
      ``backoff``, ``backoff_max``: first and largest wait between attempts, in seconds;
    - or ``transfer=TransferConfig(...)`` with all of them.
    """

    def __init__(
        self,
        url: str,
        *,
        fs: Any = None,
        transfer: TransferConfig | None = None,
        chunk_size: int | None = None,
        concurrency: int | None = None,
        retries: int | None = None,
        backoff: float | None = None,
        backoff_max: float | None = None,
        **storage_options: Any,
    ) -> None:
        from ..uri import filesystem_for

        self._secrets = _cloud.secrets_in(storage_options)
        self.url = _cloud.mask(url, self._secrets)
        try:
            if fs is None:
                fs, root = filesystem_for(url, storage_options)
            else:
                root = fs._strip_protocol(url)
        except ModelregError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. bad storage options
            scheme = url.split("://", 1)[0] if "://" in url else "file"
            raise _cloud.translate(exc, backend=_cloud.backend_name(scheme), location=self.url, action="open",
                                   obj="the store", secrets=self._secrets) from None
        self.fs = fs
        self.root = root.rstrip("/")
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self.protocol = protocol
        self.backend = _cloud.backend_name(protocol)
        self._local = self.backend == "local"
        self.remote = not self._local and protocol != "memory"
        """True for stores over a network (downloads then go through the local cache)."""
        overrides = {"chunk_size": chunk_size, "concurrency": concurrency, "retries": retries,
                     "backoff": backoff, "backoff_max": backoff_max}
        base = transfer if transfer is not None else _cloud.config_for(self.backend)
        given = {k: v for k, v in overrides.items() if v is not None}
        self.transfer = TransferConfig(**{**{k: getattr(base, k) for k in _TRANSFER_KEYS}, **given})
        if self.backend == "azure":
            _cloud.tune_azure_retries(fs, self.transfer)

    def __repr__(self) -> str:
        return f"FsspecArtifactStore({self.url!r})"

    # -- paths and errors ---------------------------------------------------------------------
    def _path(self, digest: str) -> str:
        hexpart = check_digest(digest)[len("sha256:"):]
        return f"{self.root}/sha256/{hexpart[:2]}/{hexpart[2:]}"

    def _fail(self, action: str, obj: str, exc: BaseException) -> ModelregError:
        return _cloud.translate(exc, backend=self.backend, location=self.url, action=action, obj=obj,
                                secrets=self._secrets,
                                attempts=self.transfer.retries if action == "upload" or self.backend == "other" else None)

    def _raise(self, action: str, obj: str, exc: BaseException) -> None:
        """Raise the translated error; keep the SDK exception as the cause unless its text holds a credential."""
        err = self._fail(action, obj, exc)
        if err is exc:
            raise err
        text = f"{exc!r} {exc}"
        leaks = any(s in text for s in self._secrets) if self._secrets else False
        raise err from (None if leaks else exc)

    def _call(self, action: str, obj: str, fn: Callable[[], T]) -> T:
        """``fn()``, SDK errors translated. On S3, GCS and Azure the SDK retries a single
        request itself (botocore's retry config, gcsfs, azure-core tuned to ``transfer``);
        on other filesystems modelreg retries transient errors with backoff."""
        try:
            if self.backend != "other":
                return fn()
            return _cloud.with_retries(fn, self.transfer, f"{action} {obj} in {self.url}")
        except ModelregError:
            raise
        except Exception as exc:  # noqa: BLE001 - translated at the boundary
            self._raise(action, obj, exc)
            raise  # unreachable

    def _call_raw(self, fn: Callable[[], T], what: str) -> T:
        """``fn()`` with modelreg's retries where the SDK has none; exceptions are not translated."""
        if self.backend != "other":
            return fn()
        return _cloud.with_retries(fn, self.transfer, f"{what} in {self.url}")

    # -- contract ------------------------------------------------------------------------------
    def exists(self, digest: str) -> bool:
        path = self._path(digest)
        if self._local:
            return os.path.isfile(path)
        return bool(self._call("check", f"blob {digest}", lambda: self.fs.exists(path)))

    def _stored_size(self, digest: str) -> int | None:
        """Size of the stored blob, None if absent. A blob of the wrong size (a damaged
        object) is treated as absent by ``put_file``, so registering the content repairs it."""
        path = self._path(digest)

        def info() -> int | None:
            try:
                return int(self.fs.info(path).get("size") or 0)
            except FileNotFoundError:
                return None

        return self._call("check", f"blob {digest}", info)

    def touch(self, digest: str) -> None:
        """Refresh the blob's modification time, so that ``gc`` (which spares blobs younger than
        its grace period) cannot delete a blob a registration in flight has just found and reused.
        Best effort: a metadata update on Azure, a server-side copy onto itself on GCS and on S3
        (up to 5 GB there)."""
        path = self._path(digest)
        if self._local:
            with contextlib.suppress(OSError):
                os.utime(path)
            return
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        try:
            if self.backend == "s3":
                bucket, key, _ = self.fs.split_path(path)
                if int(self.fs.info(path).get("size") or 0) < 5 * 1024**3:
                    self.fs.call_s3("copy_object", Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key},
                                    MetadataDirective="REPLACE", Metadata={"modelreg-touched": stamp})
            elif self.backend == "gcs":
                self.fs.cp_file(path, path)  # a server-side rewrite: a new generation, a new time
            elif self.backend == "azure":
                self.fs.setxattrs(path, modelreg_touched=stamp)
            else:
                return
            self.fs.invalidate_cache(path)
        except Exception as exc:  # noqa: BLE001 - best effort, gc's grace period still applies
            _cloud.logger.debug("could not refresh the time of blob %s: %s", digest, type(exc).__name__)

    def put_file(self, digest: str, path: str | os.PathLike[str], *, progress: ProgressFn | None = None) -> None:
        final = self._path(digest)
        source = os.fspath(path)
        if self._local:
            try:
                self._put_local(final, source, progress)
            except OSError as exc:
                self._raise("upload", f"blob {digest}", exc)
            return
        size = os.path.getsize(source)
        if self._stored_size(digest) == size:  # dedup: identical content is stored once
            self.touch(digest)
            if progress is not None:
                progress("upload", size, size)
            return
        try:
            if self.backend == "other":
                self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            _cloud.upload_file(self.fs, self.backend, source, final, self.transfer, progress)
        except ModelregError:
            raise
        except Exception as exc:  # noqa: BLE001
            self._raise("upload", f"blob {digest}", exc)

    def _put_local(self, final: str, source: str, progress: ProgressFn | None) -> None:
        total = os.path.getsize(source)
        try:
            damaged = os.stat(final).st_size != total
        except FileNotFoundError:
            damaged = None
        if damaged is False:  # dedup: identical content is stored once
            os.utime(final)
            if progress is not None:
                progress("upload", total, total)
            return
        tmpdir = os.path.join(self.root, "tmp")
        tmp = os.path.join(tmpdir, f"{uuid.uuid4().hex}.part")
        try:
            with open(source, "rb", buffering=0) as src:
                try:
                    dst = open(tmp, "wb", buffering=0)  # noqa: SIM115
                except FileNotFoundError:  # first upload: create the folders once
                    os.makedirs(tmpdir, exist_ok=True)
                    dst = open(tmp, "wb", buffering=0)  # noqa: SIM115
                with dst:
                    _copy_fd(src, dst, total, progress)
            if progress is not None and total == 0:
                progress("upload", 0, 0)
            os.chmod(tmp, 0o444)
            if damaged:  # a truncated or padded blob: registering the content again repairs it
                os.replace(tmp, final)
                return
            try:
                os.link(tmp, final)
            except FileExistsError:
                pass  # another writer published the same content first
            except FileNotFoundError:  # the blob's prefix folder is new
                os.makedirs(os.path.dirname(final), exist_ok=True)
                try:
                    os.link(tmp, final)
                except FileExistsError:
                    pass
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def put_bytes(self, digest: str, data: bytes) -> None:
        final = self._path(digest)
        if self._local:
            try:
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
            except OSError as exc:
                self._raise("upload", f"blob {digest}", exc)
            return
        if self.exists(digest):
            return

        def pipe() -> None:
            if self.backend == "other":
                self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            self.fs.pipe_file(final, data)

        self._call("upload", f"blob {digest}", pipe)

    def open(self, digest: str) -> BinaryIO:
        path = self._path(digest)
        obj = f"blob {digest}"
        if self._local:
            try:
                return open(path, "rb")  # noqa: SIM115
            except FileNotFoundError:
                raise self._missing(digest) from None
            except OSError as exc:
                self._raise("read", obj, exc)

        def opener() -> Any:
            if self.backend in ("s3", "gcs", "azure"):
                # one ranged GET per read() call, no read-ahead copies: memory stays at the caller's buffer
                return self.fs.open(path, "rb", block_size=OPEN_BLOCK_SIZE, cache_type="none")
            return self.fs.open(path, "rb")

        try:
            f = _cloud.with_retries(opener, self.transfer, f"open {obj} in {self.url}") if self.backend == "other" \
                else opener()
        except FileNotFoundError:
            raise self._missing(digest) from None
        except ModelregError:
            raise
        except Exception as exc:  # noqa: BLE001
            self._raise("read", obj, exc)
        return _ResumingReader(f, opener, self, obj)  # type: ignore[return-value]

    def get_file(self, digest: str, dest: str | os.PathLike[str], *, progress: ProgressFn | None = None) -> None:
        """Download a blob to a local file, streaming to disk (unverified; callers hash it)."""
        if self._local or self.backend == "other":
            super().get_file(digest, dest, progress=progress)
            return
        path = self._path(digest)
        try:
            size = self.size(digest)
            _cloud.download_file(self.fs, self.backend, path, os.fspath(dest), size, self.transfer, progress)
        except FileNotFoundError:
            raise self._missing(digest) from None
        except ModelregError:
            raise
        except Exception as exc:  # noqa: BLE001
            self._raise("read", f"blob {digest}", exc)

    def _missing(self, digest: str) -> BlobNotFound:
        return BlobNotFound(
            f"blob {digest} is missing from the {self.protocol} artifact store {self.url!r}; "
            "run `modelreg verify` to list affected versions"
        )

    def size(self, digest: str) -> int:
        path = self._path(digest)
        try:
            if self._local:
                return os.path.getsize(path)
            return int(self._call_raw(lambda: self.fs.size(path), f"stat blob {digest}"))
        except FileNotFoundError:
            raise self._missing(digest) from None
        except ModelregError:
            raise
        except Exception as exc:  # noqa: BLE001
            self._raise("stat", f"blob {digest}", exc)
            raise  # unreachable

    def delete(self, digest: str) -> None:
        path = self._path(digest)
        if self._local:
            try:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            except OSError as exc:
                self._raise("delete", f"blob {digest}", exc)
            return

        def rm() -> None:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(path)

        self._call("delete", f"blob {digest}", rm)

    def iter_blobs(self) -> Iterator[BlobInfo]:
        base = f"{self.root}/sha256"
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

        def listing() -> dict[str, Any]:
            with contextlib.suppress(Exception):
                self.fs.invalidate_cache(base)
            try:
                return dict(self.fs.find(base, detail=True))
            except FileNotFoundError:
                return {}

        found = self._call("list", "blobs", listing)
        for path, info in sorted(found.items()):
            parts = path.rstrip("/").split("/")
            if len(parts) < 2:
                continue
            hexpart = parts[-2] + parts[-1]
            if len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
                continue
            yield BlobInfo(f"sha256:{hexpart}", int(info.get("size") or 0), _modified(info))

    def cleanup_partial(self, older_than: datetime) -> list[str]:
        if self.backend == "s3":
            return self._abort_stale_multipart(older_than)
        if not self._local:
            return []  # Azure and GCS discard uncommitted blocks / resumable sessions themselves
        tmpdir = os.path.join(self.root, "tmp")
        removed = []
        if os.path.isdir(tmpdir):
            for entry in os.scandir(tmpdir):
                if datetime.fromtimestamp(entry.stat().st_mtime, timezone.utc) < older_than:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed.append(entry.name)
        return removed

    def _abort_stale_multipart(self, older_than: datetime) -> list[str]:
        """Abort S3 multipart uploads under this store that were started before ``older_than``
        (an interrupted upload's parts are otherwise kept, and billed, until aborted)."""
        bucket, key, _ = self.fs.split_path(self.root)
        prefix = f"{key}/sha256/" if key else "sha256/"
        out = self._call("list", "multipart uploads", lambda: self.fs.call_s3(
            "list_multipart_uploads", Bucket=bucket, Prefix=prefix))
        removed = []
        for upload in out.get("Uploads", []):
            started = _as_datetime(upload.get("Initiated"))
            if started is not None and started < older_than:
                self._call("abort", f"multipart upload of {upload['Key']}", lambda u=upload: self.fs.call_s3(
                    "abort_multipart_upload", Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"]))
                removed.append(upload["Key"])
        return removed


class _Failing:
    """Stands in for a stream that could not be reopened: reading raises the same error again."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def read(self, size: int = -1) -> bytes:
        raise self.exc

    def close(self) -> None:
        pass


class _ResumingReader(io.RawIOBase):
    """A blob opened for reading from an object store.

    A transient failure mid-read (connection reset, 5xx, throttling) reopens the
    object at the current offset after a backoff, up to ``retries`` times; other
    SDK errors become ModelregErrors.
    """

    def __init__(self, f: Any, opener: Callable[[], Any], store: FsspecArtifactStore, obj: str) -> None:
        super().__init__()
        self._f = f
        self._opener = opener
        self._store = store
        self._obj = obj
        self._pos = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        config = self._store.transfer
        attempt = 1
        while True:
            try:
                data = self._f.read(size) if size is not None and size >= 0 else self._f.read()
                self._pos += len(data)
                return data
            except ModelregError:
                raise
            except Exception as exc:  # noqa: BLE001
                if attempt >= config.retries or not _cloud.is_transient(exc):
                    self._store._raise("read", self._obj, exc)
                _cloud.logger.warning("reading %s failed at byte %d (%s), retry %d/%d", self._obj, self._pos,
                                      type(exc).__name__, attempt, config.retries - 1)
                import time

                time.sleep(config.delay(attempt))
                attempt += 1
                with contextlib.suppress(Exception):
                    self._f.close()
                try:
                    self._f = self._opener()
                    self._f.seek(self._pos)
                except Exception as exc2:  # noqa: BLE001 - the next read attempt decides
                    if not _cloud.is_transient(exc2):
                        self._store._raise("read", self._obj, exc2)
                    self._f = _Failing(exc2)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._f.close()
        super().close()
