"""``FsspecArtifactStore``: content-addressed blobs on any fsspec filesystem.

Layout under the store's root::

    sha256/<first 2 hex>/<remaining 62 hex>   one blob per distinct content
    tmp/<random>.part                         uploads in flight (local disk only)

On local disk a blob is written to ``tmp/`` and published with ``os.link``
(never a half-written blob under its final name). Object stores publish an
upload atomically when it completes (S3 multipart completion, Azure block list
commit, GCS resumable upload finalisation).

Deduplication and repair: ``put_file`` of content that is stored already uploads
nothing, unless the stored blob fails verification, in which case it is replaced:

- local disk (and ``memory://``): the stored blob is always re-hashed (about 1 GB/s)
  and atomically replaced (``tmp/`` + ``os.replace``) if it differs; ``put_file_hashed``
  on local disk, which has just written and hashed a copy in ``tmp/``, compares the
  stored blob with that copy instead (at memory speed);
- object stores: re-hashing would mean downloading it, so the blob is replaced when
  its size differs, when its digest was flagged with :meth:`FsspecArtifactStore.mark_suspect`
  (by ``Registry.verify()`` or a failed download, persisted per store in the local
  cache folder: :class:`modelreg.cache.SuspectDigests`), or when the MD5 the service
  reports for free (GCS ``md5Hash``; Azure ``Content-MD5`` where set) differs from
  the local file's. An S3 ETag is not used: under SSE-KMS it is not an MD5.

On S3, GCS and Azure Blob the transfer is tuned per backend (part size, parts in
flight, retries with backoff: see :class:`modelreg.stores._cloud.TransferConfig`
and ``docs/backends/``), and SDK errors are translated into
:class:`~modelreg.errors.ModelregError` subclasses with credentials masked.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import io
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from ..errors import BlobNotFound, ModelregError
from ..hashing import CHUNK, ProgressFn, check_digest, sha256_file, sha256_stream
from .base import ArtifactStore, BlobInfo, PartialUpload, StoredBlob

if TYPE_CHECKING:
    from . import _cloud
    from ._cloud import TransferConfig
else:

    class _Deferred:
        """``modelreg.stores._cloud``, imported on first use. A store on local disk works with plain
        ``os`` calls and needs none of it (nor fsspec) unless something fails or is tuned."""

        __slots__ = ()

        def __getattr__(self, name: str) -> Any:
            from . import _cloud

            return getattr(_cloud, name)

    _cloud = _Deferred()


_LOOKUP_REUSE = 5.0
"""Seconds during which put_file trusts what exists() found instead of looking again."""


def __getattr__(name: str) -> Any:
    if name == "TransferConfig":  # re-exported from _cloud, which is imported on first use
        from ._cloud import TransferConfig

        return TransferConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def _local_root(url: Any) -> str | None:
    """The root that fsspec's ``LocalFileSystem`` gives a plain path (made absolute, as
    :func:`modelreg.stores._fs.filesystem_for` does) or a ``file:///`` URL, computed without importing
    fsspec; None where fsspec must decide (other schemes, chained ``::`` URLs, Windows), or where
    the URL would be masked (a ``Key=value`` connection-string look-alike)."""
    if not isinstance(url, str) or os.sep != "/" or "=" in url:
        return None
    from ._fs import scheme_of

    scheme = scheme_of(url)
    if scheme is None:
        path = os.path.abspath(os.path.expanduser(url))
    elif url.startswith("file:///"):
        path = url[len("file://") :]
    else:
        return None
    if "::" in path or "://" in path:
        return None
    return path.rstrip("/") or "/"


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


_NO_COPY_FILE_RANGE = {
    errno.EXDEV,
    errno.ENOSYS,
    errno.EINVAL,
    errno.EOPNOTSUPP,
    errno.EPERM,
    errno.EBADF,
    errno.ETXTBSY,
}
"""Errors with which ``copy_file_range`` refuses a pair of files before copying anything."""


def _write_all(f: Any, data: memoryview) -> None:
    """``write`` on an unbuffered file may write less than asked: loop until all is written."""
    while len(data):
        n = f.write(data)
        data = data[n:]


def _fill(f: Any, view: memoryview) -> int:
    """Read into ``view`` until it is full or the file ends; return the bytes read."""
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def _same_content(a: str, b: str, size: int) -> bool:
    """Whether two local files hold the same bytes (compared chunk by chunk at memory speed,
    several times faster than hashing one of them)."""
    with open(a, "rb", buffering=0) as fa, open(b, "rb", buffering=0) as fb:
        length = min(CHUNK, max(size + 1, 64 * 1024))
        buf_a, buf_b = bytearray(length), bytearray(length)
        view_a, view_b = memoryview(buf_a), memoryview(buf_b)
        while True:
            na, nb = _fill(fa, view_a), _fill(fb, view_b)
            if na != nb:
                return False
            if na == length:
                if buf_a != buf_b:  # bytearrays compare with memcmp
                    return False
                continue
            return buf_a[:na] == buf_b[:nb]


def _link_blob(tmp: str, final: str) -> bool:
    """Publish the finished ``tmp`` as ``final`` with a hard link (never a half-written blob under
    its name); False if another writer published the same content first."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        return False
    except FileNotFoundError:  # the blob's prefix folder is new
        os.makedirs(os.path.dirname(final), exist_ok=True)
        try:
            os.link(tmp, final)
        except FileExistsError:
            return False
    return True


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
        local_root = _local_root(url) if fs is None and not storage_options else None
        if local_root is not None:
            # a folder on local disk: os calls only; fsspec's LocalFileSystem is made if .fs is used
            self._secrets: list[str] = []
            self.url = url
            root, protocol = local_root, "file"
        else:
            from ._fs import filesystem_for

            self._secrets = _cloud.secrets_in(storage_options)
            self.url = _cloud.mask(url, self._secrets)
            try:
                if fs is None:
                    fs, root = filesystem_for(url, storage_options)
                else:
                    root = fs._strip_protocol(url)
            except ModelregError:
                raise
            except Exception as exc:
                scheme = url.split("://", 1)[0] if "://" in url else "file"
                raise _cloud.translate(
                    exc,
                    backend=_cloud.backend_name(scheme),
                    location=self.url,
                    action="open",
                    obj="the store",
                    secrets=self._secrets,
                ) from None
            protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self._fs = fs
        self.root = root.rstrip("/")
        self.protocol = protocol
        self.backend = "local" if local_root is not None else _cloud.backend_name(protocol)
        self._local = self.backend == "local"
        self.remote = not self._local and protocol != "memory"
        """True for stores over a network (downloads then go through the local cache)."""
        self._rehash_on_put = not self.remote
        """Re-hash a stored blob whenever put_file would reuse it (cheap: local disk, memory)."""
        from ..cache import SuspectDigests

        self._flagged = SuspectDigests(f"{protocol}://{self.root}")
        """Digests flagged by mark_suspect, persisted for other processes (stores that re-hash need none)."""
        self._looked_up: dict[str, tuple[float, dict[str, Any] | None]] = {}
        """What exists() found, by digest, for the put_file that follows it (see _stored_info)."""
        overrides = {
            "chunk_size": chunk_size,
            "concurrency": concurrency,
            "retries": retries,
            "backoff": backoff,
            "backoff_max": backoff_max,
        }
        given = {k: v for k, v in overrides.items() if v is not None}
        if transfer is None and not given and self._local:
            self._transfer = None  # the backend's defaults, made on first use (see the property)
        else:
            base = transfer if transfer is not None else _cloud.config_for(self.backend)
            self.transfer = _cloud.TransferConfig(**{**{k: getattr(base, k) for k in _TRANSFER_KEYS}, **given})
        if self.backend == "azure":
            _cloud.tune_azure_retries(fs, self.transfer)

    _fs: Any = None
    _transfer: TransferConfig | None = None

    @property
    def fs(self) -> Any:
        """The fsspec filesystem. A local store works with ``os`` calls; its ``LocalFileSystem``
        is only made (importing fsspec) when this is read."""
        if self._fs is None:
            import fsspec

            self._fs = fsspec.filesystem("file")
        return self._fs

    @fs.setter
    def fs(self, value: Any) -> None:
        self._fs = value

    @property
    def transfer(self) -> TransferConfig:
        """Part size, parts in flight and retries (``modelreg.stores._cloud.TransferConfig``)."""
        if self._transfer is None:
            self._transfer = _cloud.config_for(self.backend)
        return self._transfer

    @transfer.setter
    def transfer(self, value: TransferConfig) -> None:
        self._transfer = value

    def __repr__(self) -> str:
        return f"FsspecArtifactStore({self.url!r})"

    # -- paths and errors ---------------------------------------------------------------------
    def _path(self, digest: str) -> str:
        hexpart = check_digest(digest)[len("sha256:") :]
        return f"{self.root}/sha256/{hexpart[:2]}/{hexpart[2:]}"

    def _fail(self, action: str, obj: str, exc: BaseException) -> ModelregError:
        return _cloud.translate(
            exc,
            backend=self.backend,
            location=self.url,
            action=action,
            obj=obj,
            secrets=self._secrets,
            attempts=self.transfer.retries if action == "upload" or self.backend == "other" else None,
        )

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
        except Exception as exc:
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
        if self.backend == "other":
            return bool(self._call("check", f"blob {digest}", lambda: self.fs.exists(path)))
        info = self._lookup(digest)
        # a registration asks whether the blob exists, then put_file looks at it: one request for both
        if len(self._looked_up) > 256:  # asked without a put_file after it: forget
            self._looked_up.clear()
        self._looked_up[digest] = (time.monotonic(), info)
        return info is not None

    def _stored_info(self, digest: str) -> dict[str, Any] | None:
        """The object's metadata (size, checksums the service keeps), None if absent; what
        :meth:`exists` found a moment ago, if it just looked (for put_file only: it is used once)."""
        seen = self._looked_up.pop(digest, None)
        if seen is not None and time.monotonic() - seen[0] < _LOOKUP_REUSE:
            return seen[1]
        return self._lookup(digest)

    def _lookup(self, digest: str) -> dict[str, Any] | None:
        path = self._path(digest)

        def info() -> dict[str, Any] | None:
            if self.backend == "s3":
                # a HEAD alone: fs.info follows a missing key with a listing (to find a "directory")
                bucket, key, _ = self.fs.split_path(path)
                try:
                    out = self.fs.call_s3("head_object", Bucket=bucket, Key=key)
                except FileNotFoundError:
                    return None
                return {
                    "name": path,
                    "type": "file",
                    "size": out["ContentLength"],
                    "ETag": out.get("ETag", ""),
                    "LastModified": out.get("LastModified"),
                    "ContentType": out.get("ContentType"),
                }
            try:
                return dict(self.fs.info(path))
            except FileNotFoundError:
                return None

        return self._call("check", f"blob {digest}", info)

    # -- repair of damaged blobs -------------------------------------------------------------------
    def mark_suspect(self, digest: str, suspect: bool = True) -> None:
        """Flag (or un-flag) ``digest`` as failing verification: the next :meth:`put_file` of that
        content replaces the stored blob. On object stores the flag is also persisted in the local
        cache folder (:class:`modelreg.cache.SuspectDigests`), so that a registration in another
        process, after ``modelreg verify`` for instance, repairs it too. Local and ``memory://``
        stores re-hash on every put and keep the flag in memory only."""
        super().mark_suspect(digest, suspect)
        if self._rehash_on_put:
            return
        if suspect:
            self._flagged.add(digest)
        else:
            self._flagged.discard(digest)

    def is_suspect(self, digest: str) -> bool:
        return super().is_suspect(digest) or (not self._rehash_on_put and digest in self._flagged)

    def _stored_intact(self, digest: str, source: str, info: dict[str, Any]) -> bool:
        """Whether put_file may reuse the stored object of the right size (see the module docstring)."""
        if self.is_suspect(digest):
            return False  # flagged as damaged: upload again (no download first; uploads are usually free)
        if self._rehash_on_put:
            with self.open(digest) as f:
                return sha256_stream(f, total=int(info.get("size") or 0))[0] == digest
        stored = _stored_md5(self.backend, info)
        return stored is None or stored == _md5_file(source)

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
                    self.fs.call_s3(
                        "copy_object",
                        Bucket=bucket,
                        Key=key,
                        CopySource={"Bucket": bucket, "Key": key},
                        MetadataDirective="REPLACE",
                        Metadata={"modelreg-touched": stamp},
                    )
            elif self.backend == "gcs":
                self.fs.cp_file(path, path)  # a server-side rewrite: a new generation, a new time
            elif self.backend == "azure":
                self.fs.setxattrs(path, modelreg_touched=stamp)
            else:
                return
            self.fs.invalidate_cache(path)
        except Exception as exc:
            _cloud.logger.debug("could not refresh the time of blob %s: %s", digest, type(exc).__name__)

    def put_file(self, digest: str, path: str | os.PathLike[str], *, progress: ProgressFn | None = None) -> None:
        final = self._path(digest)
        source = os.fspath(path)
        if self._local:
            try:
                self._put_local(digest, final, source, progress)
            except OSError as exc:
                self._raise("upload", f"blob {digest}", exc)
            self.mark_suspect(digest, False)
            return
        size = os.path.getsize(source)
        info = self._stored_info(digest)
        # dedup: identical content is stored once; a damaged stored blob (wrong size, flagged, or
        # a checksum that differs) is replaced by this upload, atomically (see the module docstring)
        if info is not None and int(info.get("size") or 0) == size and self._stored_intact(digest, source, info):
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
        except Exception as exc:
            self._raise("upload", f"blob {digest}", exc)
        if info is not None:
            _cloud.logger.info("replaced the damaged blob %s in %s", digest, self.url)
        self.mark_suspect(digest, False)

    def _put_local(self, digest: str, final: str, source: str, progress: ProgressFn | None) -> None:
        total = os.path.getsize(source)
        try:
            damaged = os.stat(final).st_size != total
        except FileNotFoundError:
            damaged = None
        if damaged is False:
            # dedup: identical content is stored once. Re-hash the stored copy (a read at about
            # 1 GB/s), so a blob damaged in place, even with its size intact, is replaced below.
            damaged = sha256_file(final)[0] != digest
        if damaged is False:
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
            if damaged:  # a damaged blob: registering the content again repairs it, atomically
                os.replace(tmp, final)
                _cloud.logger.info("replaced the damaged blob %s in %s", digest, self.url)
                return
            _link_blob(tmp, final)  # False: another writer published the same content first
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    # ignore: the base class declares a plain class attribute (False); here it is computed, read-only
    @property
    def hashes_on_put(self) -> bool:  # type: ignore[override]
        """True on local disk, where :meth:`put_file_hashed` reads a file once, hashing what it writes."""
        return self._local

    def put_file_hashed(self, path: str | os.PathLike[str], *, progress: ProgressFn | None = None) -> StoredBlob:
        """Store a local file under the digest of its content; return that digest, its size and
        whether this call created the blob (see :meth:`ArtifactStore.put_file_hashed`).

        On local disk, in one pass: each chunk of the file is read once, hashed in a second thread
        while it is written to ``tmp/`` (:func:`modelreg.hashing.sha256_copy`), and the copy is
        published under the digest of the bytes written. If that digest is stored already, the
        stored blob is compared with the copy: identical, it is kept (its time refreshed) and the
        copy discarded; different (damaged), it is replaced by the copy, atomically. Progress is
        reported as ``upload``. Other stores hash the file, then :meth:`put_file` it.
        """
        if not self._local:
            return super().put_file_hashed(path, progress=progress)
        import stat

        from ..errors import InvalidInputError

        source = os.fspath(path)
        flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(source, flags)  # O_NONBLOCK: a FIFO is refused below, not waited on
        except OSError as exc:
            raise InvalidInputError(f"cannot read {source!r}: {exc.strerror}") from None
        with open(fd, "rb", buffering=0) as src:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise InvalidInputError(f"{source!r} is not a regular file; only regular files can be stored")
            try:
                stored = self._put_local_hashed(src, st.st_size, progress)
            except OSError as exc:
                self._raise("upload", f"the content of {source!r} as a blob", exc)
                raise  # unreachable
        self.mark_suspect(stored.digest, False)
        return stored

    def _put_local_hashed(self, src: Any, total: int, progress: ProgressFn | None) -> StoredBlob:
        from ..hashing import sha256_copy
        from .base import StoredBlob

        tmpdir = os.path.join(self.root, "tmp")
        tmp = os.path.join(tmpdir, f"{uuid.uuid4().hex}.part")
        try:
            try:
                dst = open(tmp, "w+b", buffering=0)  # noqa: SIM115
            except FileNotFoundError:  # first upload: create the folders once
                os.makedirs(tmpdir, exist_ok=True)
                dst = open(tmp, "w+b", buffering=0)  # noqa: SIM115
            with dst:  # readable: big files are copied by the kernel and read back for the hash
                digest, size = sha256_copy(src, dst, total=total, progress=progress, phase="upload")
            if progress is not None and size == 0:
                progress("upload", 0, 0)
            final = self._path(digest)
            try:
                stored_size: int | None = os.stat(final).st_size
                intact = stored_size == size and _same_content(final, tmp, size)
            except FileNotFoundError:  # not stored (or deleted meanwhile)
                stored_size, intact = None, False
            if intact:  # dedup: identical content is stored once
                os.utime(final)  # gc's grace period protects it from now on
                return StoredBlob(digest, size, created=False)
            os.chmod(tmp, 0o444)
            if stored_size is not None:  # a damaged blob: registering the content again repairs it, atomically
                os.replace(tmp, final)
                _cloud.logger.info("replaced the damaged blob %s in %s", digest, self.url)
                return StoredBlob(digest, size, created=False)
            return StoredBlob(digest, size, created=_link_blob(tmp, final))
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
        exists = self.exists(digest)
        self._looked_up.pop(digest, None)  # the lookup is for a put_file that follows; none does here
        if exists:
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
                return open(path, "rb")
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
            f = (
                _cloud.with_retries(opener, self.transfer, f"open {obj} in {self.url}")
                if self.backend == "other"
                else opener()
            )
        except FileNotFoundError:
            raise self._missing(digest) from None
        except ModelregError:
            raise
        except Exception as exc:
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
        except Exception as exc:
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
        except Exception as exc:
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
            self.mark_suspect(digest, False)
            return
        self._looked_up.pop(digest, None)

        def rm() -> None:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(path)

        self._call("delete", f"blob {digest}", rm)
        self.mark_suspect(digest, False)  # gone: the next put uploads anyway

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

    def cleanup_partial(self, older_than: datetime) -> list[PartialUpload]:
        """Remove what interrupted uploads left, if older than ``older_than``; return each with its size.

        - local disk: files in ``tmp/`` (named ``tmp/<name>``, size from ``stat``);
        - S3: multipart uploads started earlier are aborted (named by their key; size is the sum of
          their uploaded parts, one ``ListParts`` listing per upload, 0 if that listing fails);
        - GCS and Azure: nothing to do (uncommitted blocks and resumable sessions expire on
          their own), ``memory://`` and other filesystems: nothing.

        A failure (a ``tmp/`` file that cannot be removed, an abort refused) is raised, translated
        into a ModelregError, after the other leftovers were tried; the exception's
        ``removed_partials`` lists those removed all the same. ``Registry.gc`` reports it.
        """
        if self.backend == "s3":
            return self._abort_stale_multipart(older_than)
        if not self._local:
            return []  # Azure and GCS discard uncommitted blocks / resumable sessions themselves
        tmpdir = os.path.join(self.root, "tmp")
        removed: list[PartialUpload] = []
        failed: list[tuple[str, BaseException]] = []
        try:
            entries = list(os.scandir(tmpdir))
        except FileNotFoundError:
            return removed
        except OSError as exc:
            self._raise("list", "partial uploads in tmp/", exc)
            raise  # unreachable
        for entry in entries:
            try:
                st = entry.stat()
                if datetime.fromtimestamp(st.st_mtime, timezone.utc) >= older_than:
                    continue
                os.unlink(entry.path)
            except FileNotFoundError:
                continue  # finished (linked and unlinked) or removed meanwhile
            except OSError as exc:
                failed.append((entry.name, exc))
                continue
            removed.append(PartialUpload(f"tmp/{entry.name}", st.st_size))
        if failed:
            self._partial_failure("delete", "the partial upload", removed, failed)
        return removed

    def _partial_failure(
        self, action: str, what: str, removed: list[PartialUpload], failed: list[tuple[str, BaseException]]
    ) -> None:
        """Raise the (translated) error of the first leftover that could not be removed; the
        exception's ``removed_partials`` holds those that were."""
        name, exc = failed[0]
        more = f" and {len(failed) - 1} other(s)" if len(failed) > 1 else ""
        try:
            self._raise(action, f"{what} {name}{more}", exc)
        except Exception as err:
            err.removed_partials = removed  # type: ignore[attr-defined]
            raise

    def _abort_stale_multipart(self, older_than: datetime) -> list[PartialUpload]:
        """Abort S3 multipart uploads under this store that were started before ``older_than``
        (an interrupted upload's parts are otherwise kept, and billed, until aborted)."""
        bucket, key, _ = self.fs.split_path(self.root)
        prefix = f"{key}/sha256/" if key else "sha256/"

        def listing() -> list[dict[str, Any]]:
            uploads: list[dict[str, Any]] = []
            kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
            while True:
                out = self.fs.call_s3("list_multipart_uploads", **kwargs)
                uploads.extend(out.get("Uploads", []))
                if not out.get("IsTruncated"):
                    return uploads
                kwargs.update(KeyMarker=out.get("NextKeyMarker"), UploadIdMarker=out.get("NextUploadIdMarker"))

        removed: list[PartialUpload] = []
        failed: list[tuple[str, BaseException]] = []
        for upload in self._call("list", "multipart uploads", listing):
            started = _as_datetime(upload.get("Initiated"))
            if started is None or started >= older_than:
                continue
            size = self._multipart_size(bucket, upload)
            try:
                self.fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            except Exception as exc:
                failed.append((upload["Key"], exc))
                continue
            removed.append(PartialUpload(upload["Key"], size))
        if failed:
            self._partial_failure("abort", "the multipart upload of", removed, failed)
        return removed

    def _multipart_size(self, bucket: str, upload: dict[str, Any]) -> int:
        """Bytes uploaded so far by an S3 multipart upload (0 if the parts cannot be listed)."""
        total, marker = 0, 0
        try:
            while True:
                out = self.fs.call_s3(
                    "list_parts", Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"], PartNumberMarker=marker
                )
                total += sum(int(p.get("Size") or 0) for p in out.get("Parts", []))
                if not out.get("IsTruncated"):
                    return total
                marker = int(out.get("NextPartNumberMarker") or 0)
        except Exception as exc:
            _cloud.logger.debug("could not list the parts of %s: %s", upload.get("Key"), type(exc).__name__)
            return 0


def _stored_md5(backend: str, info: dict[str, Any]) -> str | None:
    """The hex MD5 of an object's content where the service records it for free: GCS ``md5Hash``
    (every non-composite object), Azure ``Content-MD5`` (set on single-request uploads, and by
    tools that send it). None otherwise, including S3, whose ETag is no MD5 under SSE-KMS or
    for multipart uploads."""
    md5: Any = None
    if backend == "gcs":
        with contextlib.suppress(ValueError, TypeError):
            md5 = base64.b64decode(info.get("md5Hash") or "", validate=True)
    elif backend == "azure":
        settings = info.get("content_settings")
        md5 = settings.get("content_md5") if isinstance(settings, dict) else getattr(settings, "content_md5", None)
    return bytes(md5).hex() if isinstance(md5, (bytes, bytearray)) and len(md5) == 16 else None


def _md5_file(path: str) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb", buffering=0) as f:
        view = memoryview(bytearray(min(CHUNK, os.fstat(f.fileno()).st_size + 1)))
        while n := f.readinto(view):
            h.update(view[:n])
    return h.hexdigest()


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
                data: bytes = self._f.read(size) if size is not None and size >= 0 else self._f.read()
                self._pos += len(data)
                return data
            except ModelregError:
                raise
            except Exception as exc:
                if attempt >= config.retries or not _cloud.is_transient(exc):
                    self._store._raise("read", self._obj, exc)
                _cloud.logger.warning(
                    "reading %s failed at byte %d (%s), retry %d/%d",
                    self._obj,
                    self._pos,
                    type(exc).__name__,
                    attempt,
                    config.retries - 1,
                )
                import time

                time.sleep(config.delay(attempt))
                attempt += 1
                with contextlib.suppress(Exception):
                    self._f.close()
                try:
                    self._f = self._opener()
                    self._f.seek(self._pos)
                except Exception as exc2:
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
