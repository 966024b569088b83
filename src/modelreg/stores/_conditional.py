"""Conditional object writes on fsspec filesystems: create-if-absent and compare-and-swap.

The JSON metadata store needs two primitives that fsspec does not offer
uniformly, so this module implements them once per backend:

==============  ======================================  ==============================================
backend         create-if-absent                         compare-and-swap (CAS)
==============  ======================================  ==============================================
local disk      temp file + ``os.link`` (only complete   lock file (``flock``) + re-read + ``os.replace``;
                content is ever visible)                  the etag is the sha256 of the content
memory          check + store under a process lock        compare + store under a process lock
S3 (s3fs)       ``PutObject`` with ``If-None-Match: *``   ``PutObject`` with ``If-Match: <etag>``
GCS (gcsfs)     multipart upload, ``ifGenerationMatch=0`` multipart upload, ``ifGenerationMatch=<gen>``
Azure (adlfs)   ``upload_blob(overwrite=False)``          ``upload_blob(etag=..., IfNotModified)``
==============  ======================================  ==============================================

Reads return the content together with its etag (S3 ETag, GCS generation,
Azure ETag) from the same response, so a CAS never pairs new content with an
old etag. Every adapter counts the object-store requests it makes in
``stats`` (a :class:`collections.Counter`), which the benchmarks print.

Pitfalls handled here (measured, see the design notes): s3fs's public
``pipe_file(mode="create")`` is fine but its ``"xb"`` open of an empty file
overwrites, and gcsfs silently drops unknown keyword arguments, so both are
driven through explicit client calls; fake-gcs-server honours preconditions
on multipart uploads only, which is what is used.

A filesystem not listed gets :class:`PlainIO`, whose ``conditional`` is
False: the store refuses to write through it unless the user opts into
single-writer mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

__all__ = ["ObjectIO", "PreconditionFailed", "Read", "io_for"]

READ_CONCURRENCY = 32


class PreconditionFailed(Exception):
    """A compare-and-swap lost: the object changed (or vanished) since it was read."""


@dataclass(frozen=True)
class Read:
    data: bytes
    etag: str


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _strip_quotes(etag: Any) -> str:
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


# -- local disk ------------------------------------------------------------------------------


class _FileLock:
    """An exclusive OS lock on a lock file, released by the OS if the process dies."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> _FileLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                import fcntl
            except ImportError:  # pragma: no cover - Windows
                import msvcrt
                import time

                while True:
                    try:
                        # typeshed declares these on Windows only (unused-ignore: when checked there)
                        msvcrt.locking(self.fd, msvcrt.LK_LOCK, 1)  # type: ignore[attr-defined,unused-ignore]
                        break
                    except OSError:
                        time.sleep(0.01)
            else:
                fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        # closing the descriptor releases the lock (flock and msvcrt alike)
        os.close(self.fd)


class LocalIO(ObjectIO):
    """Local disk (and network file systems with working ``flock`` and atomic rename)."""

    def _tmp(self, path: str) -> str:
        folder, name = os.path.split(path)
        return os.path.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")

    def _write_tmp(self, path: str, data: bytes) -> str:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = self._tmp(path)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return tmp

    def read(self, path: str) -> Read:
        self.count("get")
        with open(path, "rb") as f:
            data = f.read()
        return Read(data, _sha(data))

    def create(self, path: str, data: bytes) -> str:
        self.count("put")
        tmp = self._write_tmp(path, data)
        try:
            os.link(tmp, path)  # atomic, fails if the name exists; readers never see partial content
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return _sha(data)

    def swap(self, path: str, data: bytes, etag: str) -> str:
        self.count("put")
        tmp = self._write_tmp(path, data)
        try:
            with _FileLock(path + ".lock"):
                try:
                    with open(path, "rb") as f:
                        current = _sha(f.read())
                except FileNotFoundError:
                    raise PreconditionFailed(path) from None
                if current != etag:
                    raise PreconditionFailed(path)
                os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return _sha(data)

    def put(self, path: str, data: bytes) -> str:
        self.count("put")
        tmp = self._write_tmp(path, data)
        try:
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return _sha(data)

    def delete(self, path: str) -> None:
        self.count("delete")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def list_stamps(self, folder: str) -> dict[str, str | None]:
        self.count("list")
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return {}
        return {
            e.name: None
            for e in entries
            if e.name.endswith(".json") and not e.name.startswith(".") and e.is_file(follow_symlinks=False)
        }


# -- memory -------------------------------------------------------------------------------------

_MEMORY_LOCK = threading.RLock()


class MemoryIO(ObjectIO):
    """fsspec's in-process memory filesystem (one lock for the whole process)."""

    def read(self, path: str) -> Read:
        self.count("get")
        with _MEMORY_LOCK:
            data = self.fs.cat_file(path)
        return Read(data, _sha(data))

    def create(self, path: str, data: bytes) -> str:
        self.count("put")
        with _MEMORY_LOCK:
            if self.fs.exists(path):
                raise FileExistsError(path)
            self.fs.pipe_file(path, data)
        return _sha(data)

    def swap(self, path: str, data: bytes, etag: str) -> str:
        self.count("put")
        with _MEMORY_LOCK:
            try:
                current = _sha(self.fs.cat_file(path))
            except FileNotFoundError:
                raise PreconditionFailed(path) from None
            if current != etag:
                raise PreconditionFailed(path)
            self.fs.pipe_file(path, data)
        return _sha(data)

    def put(self, path: str, data: bytes) -> str:
        self.count("put")
        with _MEMORY_LOCK:
            self.fs.pipe_file(path, data)
        return _sha(data)

    def delete(self, path: str) -> None:
        self.count("delete")
        with _MEMORY_LOCK, contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(path)

    def list_stamps(self, folder: str) -> dict[str, str | None]:
        self.count("list")
        with _MEMORY_LOCK:
            try:
                entries = self.fs.ls(folder, detail=True)
            except FileNotFoundError:
                return {}
        return _json_files(entries)


# -- async object stores -------------------------------------------------------------------


_T = TypeVar("_T")


class _AsyncIO(ObjectIO):
    """Shared plumbing for the asyncio-based fsspec filesystems (s3fs, gcsfs, adlfs)."""

    remote = True

    def _run(self, coro_fn: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        from fsspec.asyn import sync

        return cast(_T, sync(self.fs.loop, coro_fn, *args))

    async def _aread(self, path: str) -> Read:
        raise NotImplementedError

    def read(self, path: str) -> Read:
        return self._run(self._aread, path)

    def read_many(self, paths: Iterable[str]) -> dict[str, bytes]:
        paths = list(paths)
        if not paths:
            return {}

        async def all_() -> dict[str, bytes]:
            sem = asyncio.Semaphore(READ_CONCURRENCY)
            out: dict[str, bytes] = {}

            async def one(p: str) -> None:
                async with sem:
                    try:
                        out[p] = (await self._aread(p)).data
                    except FileNotFoundError:
                        pass

            await asyncio.gather(*(one(p) for p in paths))
            return out

        return self._run(all_)

    def _split(self, path: str) -> tuple[str, str]:
        bucket, _, key = path.partition("/")
        return bucket, key


class S3IO(_AsyncIO):
    """S3 through s3fs's aiobotocore client (conditional PutObject)."""

    bogus_etag = '"00000000000000000000000000000000"'

    async def _client(self, bucket: str) -> Any:
        await self.fs.set_session()
        return await self.fs.get_s3(bucket)

    def _kw(self, method: str, **kwargs: Any) -> dict[str, Any]:
        # include the filesystem's request-wide options (SSE, requester pays, ...)
        extra = dict(getattr(self.fs, "s3_additional_kwargs", {}) or {})
        extra.update(getattr(self.fs, "req_kw", {}) or {})
        extra.update(kwargs)
        return extra

    @staticmethod
    def _code(exc: BaseException) -> tuple[str, int, str]:
        resp = getattr(exc, "response", None) or {}
        err = resp.get("Error", {})
        status = int(resp.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return str(err.get("Code", "")), status, str(err.get("Condition", ""))

    async def _aread(self, path: str) -> Read:
        from botocore.exceptions import ClientError

        bucket, key = self._split(path)
        s3 = await self._client(bucket)
        self.count("get")
        try:
            resp = await s3.get_object(**self._kw("get_object", Bucket=bucket, Key=key))
        except ClientError as exc:
            code, status, _ = self._code(exc)
            if code in ("NoSuchKey", "404") or status == 404:
                raise FileNotFoundError(path) from None
            raise
        try:
            data = await resp["Body"].read()
        finally:
            resp["Body"].close()
        return Read(data, resp["ETag"])

    async def _aput(self, path: str, data: bytes, **cond: Any) -> str:
        from botocore.exceptions import ClientError

        bucket, key = self._split(path)
        s3 = await self._client(bucket)
        delay = 0.05
        for _ in range(20):
            self.count("put")
            try:
                resp = await s3.put_object(
                    **self._kw("put_object", Bucket=bucket, Key=key, Body=data, ContentType="application/json", **cond)
                )
                return str(resp["ETag"])
            except ClientError as exc:
                code, status, condition = self._code(exc)
                if code == "PreconditionFailed" or status == 412:
                    if "IfNoneMatch" in cond or condition == "If-None-Match":
                        raise FileExistsError(path) from None
                    raise PreconditionFailed(path) from None
                if code in ("NoSuchKey",) and "IfMatch" in cond:
                    raise PreconditionFailed(path) from None
                if code == "ConditionalRequestConflict" or status == 409:
                    # another conditional write to this key is in flight: AWS asks to retry
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                raise
        raise PreconditionFailed(path)

    def create(self, path: str, data: bytes) -> str:
        return self._run(lambda: self._aput(path, data, IfNoneMatch="*"))

    def swap(self, path: str, data: bytes, etag: str) -> str:
        return self._run(lambda: self._aput(path, data, IfMatch=etag))

    def put(self, path: str, data: bytes) -> str:
        return self._run(lambda: self._aput(path, data))

    def delete(self, path: str) -> None:
        bucket, key = self._split(path)

        async def go() -> None:
            s3 = await self._client(bucket)
            self.count("delete")
            await s3.delete_object(**self._kw("delete_object", Bucket=bucket, Key=key))

        self._run(go)

    def list_stamps(self, folder: str) -> dict[str, str | None]:
        bucket, key = self._split(folder.rstrip("/"))
        prefix = f"{key}/" if key else ""

        async def go() -> dict[str, str | None]:
            s3 = await self._client(bucket)
            out: dict[str, str | None] = {}
            token = None
            while True:
                kw: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
                if token:
                    kw["ContinuationToken"] = token
                self.count("list")
                resp = await s3.list_objects_v2(**self._kw("list_objects_v2", **kw))
                for obj in resp.get("Contents", []):
                    name = obj["Key"][len(prefix) :]
                    if name.endswith(".json"):
                        out[name] = _strip_quotes(obj["ETag"])
                if not resp.get("IsTruncated"):
                    return out
                token = resp.get("NextContinuationToken")

        return self._run(go)

    def stamp_of(self, read: Read) -> str | None:
        return _strip_quotes(read.etag)


class GCSIO(_AsyncIO):
    """Google Cloud Storage through gcsfs's HTTP session (generation preconditions)."""

    bogus_etag = "1"  # generations are numbers; no live object has generation 1

    async def _aread(self, path: str) -> Read:
        self.count("get")
        headers, data = await self.fs._call("GET", self.fs.url(path))
        generation = headers.get("x-goog-generation")
        if generation is None:  # pragma: no cover - every GCS implementation sends it
            info = await self.fs._info(path, refresh=True)
            generation = info.get("generation")
        return Read(data, str(generation))

    async def _upload(self, path: str, data: bytes, generation: str | None) -> str:
        import json as _json
        from urllib.parse import quote

        bucket, key = self._split(path)
        url = f"{self.fs._location}/upload/storage/v1/b/{quote(bucket)}/o"
        metadata = _json.dumps({"name": key, "contentType": "application/json"})
        body = (
            (
                "--==0==\nContent-Type: application/json; charset=UTF-8\n\n"
                + metadata
                + "\n--==0==\nContent-Type: application/json\n\n"
            ).encode()
            + data
            + b"\n--==0==--"
        )
        kw = {} if generation is None else {"ifGenerationMatch": str(generation)}
        self.count("put")
        j = await self.fs._call(
            "POST",
            url,
            uploadType="multipart",
            headers={"Content-Type": 'multipart/related; boundary="==0=="'},
            data=body,
            json_out=True,
            **kw,
        )
        return str(j.get("generation"))

    def create(self, path: str, data: bytes) -> str:
        return self._run(lambda: self._upload(path, data, "0"))  # 412 -> FileExistsError (gcsfs)

    def swap(self, path: str, data: bytes, etag: str) -> str:
        async def go() -> str:
            try:
                return await self._upload(path, data, etag)
            except (FileExistsError, FileNotFoundError):
                raise PreconditionFailed(path) from None

        return self._run(go)

    def put(self, path: str, data: bytes) -> str:
        return self._run(lambda: self._upload(path, data, None))

    def delete(self, path: str) -> None:
        async def go() -> None:
            self.count("delete")
            with contextlib.suppress(FileNotFoundError):
                await self.fs._rm_file(path)

        self._run(go)

    def list_stamps(self, folder: str) -> dict[str, str | None]:
        bucket, key = self._split(folder.rstrip("/"))
        prefix = f"{key}/" if key else ""

        async def go() -> dict[str, str | None]:
            out: dict[str, str | None] = {}
            token = None
            while True:
                self.count("list")
                kw: dict[str, Any] = {"prefix": prefix, "delimiter": "/", "maxResults": 1000}
                if token:
                    kw["pageToken"] = token
                page = await self.fs._call("GET", "b/{}/o", bucket, json_out=True, **kw)
                for item in page.get("items", []):
                    name = item["name"][len(prefix) :]
                    if name.endswith(".json") and "/" not in name:
                        out[name] = str(item.get("generation"))
                token = page.get("nextPageToken")
                if not token:
                    return out

        return self._run(go)


class AzureIO(_AsyncIO):
    """Azure Blob Storage through adlfs's service client (ETag match conditions)."""

    bogus_etag = '"0x0"'

    def _blob(self, path: str) -> Any:
        container, blob = self._split(path)
        return self.fs.service_client.get_blob_client(container=container, blob=blob)

    async def _aread(self, path: str) -> Read:
        from azure.core.exceptions import ResourceNotFoundError

        self.count("get")
        async with self._blob(path) as bc:
            try:
                stream = await bc.download_blob()
            except ResourceNotFoundError:
                raise FileNotFoundError(path) from None
            data = await stream.readall()
            return Read(data, str(stream.properties.etag))

    async def _upload(self, path: str, data: bytes, **kw: Any) -> str:
        from azure.core.exceptions import (
            ResourceExistsError,
            ResourceModifiedError,
            ResourceNotFoundError,
        )
        from azure.storage.blob import ContentSettings

        self.count("put")
        async with self._blob(path) as bc:
            try:
                result = await bc.upload_blob(
                    data,
                    content_settings=ContentSettings(content_type="application/json"),
                    metadata={"is_directory": "false"},
                    **kw,
                )
            except ResourceExistsError:
                if kw.get("overwrite") is False:
                    raise FileExistsError(path) from None
                raise PreconditionFailed(path) from None
            except (ResourceModifiedError, ResourceNotFoundError):
                raise PreconditionFailed(path) from None
            return str(result["etag"])

    def create(self, path: str, data: bytes) -> str:
        return self._run(lambda: self._upload(path, data, overwrite=False))

    def swap(self, path: str, data: bytes, etag: str) -> str:
        from azure.core import MatchConditions

        return self._run(
            lambda: self._upload(path, data, overwrite=True, etag=etag, match_condition=MatchConditions.IfNotModified)
        )

    def put(self, path: str, data: bytes) -> str:
        return self._run(lambda: self._upload(path, data, overwrite=True))

    def delete(self, path: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        async def go() -> None:
            self.count("delete")
            async with self._blob(path) as bc:
                with contextlib.suppress(ResourceNotFoundError):
                    await bc.delete_blob()

        self._run(go)

    def list_stamps(self, folder: str) -> dict[str, str | None]:
        container, key = self._split(folder.rstrip("/"))
        prefix = f"{key}/" if key else ""

        async def go() -> dict[str, str | None]:
            out: dict[str, str | None] = {}
            cc = self.fs.service_client.get_container_client(container)
            self.count("list")
            pages = cc.walk_blobs(name_starts_with=prefix, delimiter="/", results_per_page=5000).by_page()
            first = True
            async for page in pages:
                if not first:
                    self.count("list")
                first = False
                async for item in page:
                    name = item.name[len(prefix) :]
                    if name.endswith(".json") and "/" not in name and getattr(item, "etag", None):
                        out[name] = _strip_quotes(item.etag)
            return out

        return self._run(go)

    def stamp_of(self, read: Read) -> str | None:
        return _strip_quotes(read.etag)


# -- anything else ------------------------------------------------------------------------------


class PlainIO(ObjectIO):
    """Any other fsspec filesystem: no conditional writes, so only safe with a single writer.

    ``create`` and ``swap`` check and then write; two processes can interleave
    between the two. The store uses this only with ``single_writer=True`` and
    serialises its own threads with a lock.
    """

    conditional = False

    def read(self, path: str) -> Read:
        self.count("get")
        data = self.fs.cat_file(path)
        return Read(data, _sha(data))

    def create(self, path: str, data: bytes) -> str:
        self.count("head")
        if self.fs.exists(path):
            raise FileExistsError(path)
        return self.put(path, data)

    def swap(self, path: str, data: bytes, etag: str) -> str:
        try:
            current = self.read(path)
        except FileNotFoundError:
            raise PreconditionFailed(path) from None
        if current.etag != etag:
            raise PreconditionFailed(path)
        return self.put(path, data)

    def put(self, path: str, data: bytes) -> str:
        self.count("put")
        parent = path.rsplit("/", 1)[0]
        with contextlib.suppress(Exception):
            self.fs.makedirs(parent, exist_ok=True)
        self.fs.pipe_file(path, data)
        return _sha(data)

    def delete(self, path: str) -> None:
        self.count("delete")
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(path)

    def list_stamps(self, folder: str) -> dict[str, str | None]:
        self.count("list")
        try:
            entries = self.fs.ls(folder, detail=True, refresh=True)
        except TypeError:
            entries = self.fs.ls(folder, detail=True)
        except FileNotFoundError:
            return {}
        return _json_files(entries)


def _json_files(entries: list[dict[str, Any]]) -> dict[str, str | None]:
    """The ``*.json`` file names of an fsspec ``ls(detail=True)`` listing, without stamps."""
    out: dict[str, str | None] = {}
    for e in entries:
        if e.get("type") == "file":
            name = e["name"].rstrip("/").rsplit("/", 1)[-1]
            if name.endswith(".json"):
                out[name] = None
    return out


def io_for(fs: Any) -> ObjectIO:
    """The adapter for an fsspec filesystem instance (PlainIO when conditional writes are unknown)."""
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    cls_name = type(fs).__name__
    if protocols & {"file", "local"} and cls_name == "LocalFileSystem":
        return LocalIO(fs)
    if "memory" in protocols and cls_name == "MemoryFileSystem":
        return MemoryIO(fs)
    if protocols & {"s3", "s3a"} and cls_name == "S3FileSystem":
        return S3IO(fs)
    if protocols & {"gs", "gcs"} and cls_name in ("GCSFileSystem", "ExtendedGcsFileSystem"):
        return GCSIO(fs)
    if protocols & {"az", "abfs", "abfss"} and cls_name == "AzureBlobFileSystem":
        return AzureIO(fs)
    return PlainIO(fs)
