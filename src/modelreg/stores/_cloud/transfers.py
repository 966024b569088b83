"""Uploads and downloads: S3 multipart and Azure block uploads send each part straight from a
window of the local file; GCS uploads are resumable and sequential; other filesystems use
fsspec's ``put_file``/``get_file``."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

from ...hashing import ProgressFn
from .config import TransferConfig, part_size
from .retry import error_code, is_transient, with_retries, with_retries_async
from .slices import FileSlice

logger = logging.getLogger("modelreg.stores")

__all__ = ["download_file", "upload_file"]


class _Progress:
    def __init__(self, progress: ProgressFn | None, total: int, phase: str = "upload") -> None:
        self.progress = progress
        self.total = total
        self.phase = phase
        self.done = 0

    def add(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.phase, min(self.done, self.total), self.total)

    def finish(self) -> None:
        if self.progress is not None and self.done < self.total:
            self.done = self.total
            self.progress(self.phase, self.total, self.total)
        elif self.progress is not None and self.total == 0:
            self.progress(self.phase, 0, 0)


def _run(fs: Any, coro: Any) -> Any:
    from fsspec.asyn import sync

    return sync(fs.loop, lambda: coro)


def upload_file(
    fs: Any, backend: str, local: str, remote: str, config: TransferConfig, progress: ProgressFn | None = None
) -> None:
    """Upload ``local`` to ``remote`` with bounded memory, retrying each part on transient errors.

    The object appears under ``remote`` only when complete (S3 multipart
    completion, Azure block-list commit, GCS resumable finalisation).
    """
    size = os.path.getsize(local)
    tracker = _Progress(progress, size)
    if backend == "s3" and _is_async(fs):
        _run(fs, _s3_upload(fs, local, remote, size, config, tracker))
    elif backend == "azure" and _is_async(fs) and hasattr(fs, "service_client"):
        _run(fs, _azure_upload(fs, local, remote, size, config, tracker))
    elif backend == "gcs" and _is_async(fs) and hasattr(fs, "session"):
        _run(fs, _gcs_upload(fs, local, remote, size, config, tracker))
    else:

        def put_generic() -> None:
            tracker.done = 0
            fs.put_file(local, remote, callback=_Callback(tracker))

        with_retries(put_generic, config, f"upload of {remote}")
    tracker.finish()


def download_file(
    fs: Any,
    backend: str,
    remote: str,
    local: str,
    size: int,
    config: TransferConfig,
    progress: ProgressFn | None = None,
) -> None:
    """Download ``remote`` to the local file ``local`` with bounded memory (unverified: hash it after).

    S3 and GCS stream one GET to disk in small reads (a failed read resumes at its
    offset on S3); Azure downloads ``config.concurrency`` ranges at once. A
    transient failure restarts the download, up to ``config.retries`` attempts.
    """
    tracker = _Progress(progress, size, "download")

    def get() -> None:
        tracker.done = 0
        cb = _Callback(tracker)
        if backend == "s3":
            fs.get_file(remote, local, callback=cb, max_concurrency=1)
        elif backend == "gcs":
            fs.get_file(remote, local, callback=cb, concurrency=1)
        elif backend == "azure":
            fs.get_file(remote, local, callback=cb, max_concurrency=config.concurrency)
        else:
            fs.get_file(remote, local, callback=cb)

    with_retries(get, config, f"download of {remote}")
    tracker.finish()


def _is_async(fs: Any) -> bool:
    return bool(getattr(fs, "async_impl", False)) and getattr(fs, "loop", None) is not None


class _Callback:
    """fsspec callback adapter reporting to a :class:`_Progress`."""

    def __init__(self, tracker: _Progress) -> None:
        self.tracker = tracker
        self.value = 0
        self.size: int | None = None

    def set_size(self, size: int | None) -> None:
        self.size = size

    def absolute_update(self, value: int) -> None:
        self.relative_update(value - self.value)

    def relative_update(self, inc: int = 1) -> None:
        self.value += inc
        if inc > 0:
            self.tracker.add(inc)

    def call(self, *args: Any, **kwargs: Any) -> None:
        pass

    def branched(self, *args: Any, **kwargs: Any) -> None:
        return None

    def branch_coro(self, fn: Any) -> Any:
        return fn

    def close(self) -> None:
        pass

    def __enter__(self) -> _Callback:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


async def _bounded(jobs: list[Callable[[], Any]], concurrency: int) -> list[Any]:
    """Run the job coroutines with at most ``concurrency`` in flight; results in order.

    The first failure cancels the rest and is raised.
    """
    import asyncio

    results: list[Any] = [None] * len(jobs)
    queue = iter(enumerate(jobs))

    async def worker() -> None:
        for i, job in queue:
            results[i] = await job()

    workers = [asyncio.ensure_future(worker()) for _ in range(min(concurrency, max(len(jobs), 1)))]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise
    return results


async def _s3_upload(fs: Any, local: str, remote: str, size: int, config: TransferConfig, tracker: _Progress) -> None:
    bucket, key, _ = fs.split_path(remote)
    chunk = part_size(size, config, "s3")

    if size <= chunk:

        async def put_once() -> None:
            with FileSlice(local, 0, size) as body:
                await fs._call_s3("put_object", Bucket=bucket, Key=key, Body=body, ContentLength=size)

        await with_retries_async(put_once, config, f"upload of s3://{remote}")
        tracker.add(size)
        fs.invalidate_cache(remote)
        return

    # CRC32 part checksums, as boto3's upload_file sends: S3 checks every part, and the
    # object gets a composite checksum (without it some servers hash the whole object again)
    mpu = await with_retries_async(
        lambda: fs._call_s3("create_multipart_upload", Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32"),
        config,
        f"upload of s3://{remote}",
    )
    upload_id = mpu["UploadId"]

    def job(number: int, offset: int, length: int) -> Callable[[], Any]:
        async def send() -> dict[str, Any]:
            with FileSlice(local, offset, length) as body:
                out = await fs._call_s3(
                    "upload_part",
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=body,
                    ContentLength=length,
                    ChecksumAlgorithm="CRC32",
                )
            part = {"PartNumber": number, "ETag": out["ETag"]}
            if out.get("ChecksumCRC32"):
                part["ChecksumCRC32"] = out["ChecksumCRC32"]
            return part

        async def run() -> dict[str, Any]:
            part = await with_retries_async(send, config, f"part {number} of s3://{remote}")
            tracker.add(length)
            return part

        return run

    jobs = [job(i + 1, off, min(chunk, size - off)) for i, off in enumerate(range(0, size, chunk))]
    try:
        parts = await _bounded(jobs, config.concurrency)
        await with_retries_async(
            lambda: fs._call_s3(
                "complete_multipart_upload",
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            ),
            config,
            f"completing s3://{remote}",
        )
    except BaseException:
        try:
            await fs._call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception as exc:
            logger.debug("could not abort multipart upload of s3://%s: %s", remote, type(exc).__name__)
        raise
    fs.invalidate_cache(remote)


async def _azure_upload(
    fs: Any, local: str, remote: str, size: int, config: TransferConfig, tracker: _Progress
) -> None:
    container, path, _ = fs.split_path(remote)
    chunk = part_size(size, config, "azure")
    prefix = os.urandom(8).hex()
    async with fs.service_client.get_blob_client(container, path) as bc:
        if size == 0:
            await with_retries_async(
                lambda: bc.upload_blob(b"", overwrite=True, metadata={"is_directory": "false"}, retry_total=0),
                config,
                f"upload of az://{remote}",
            )
            fs.invalidate_cache(remote)
            return

        def job(number: int, offset: int, length: int) -> Callable[[], Any]:
            # ids are unique per upload (the SDK base64-encodes them), so concurrent
            # uploads of the same blob never mix their uncommitted blocks
            block_id = f"{prefix}-{number:06d}"

            async def send() -> None:
                with FileSlice(local, offset, length) as body:
                    # retry_total=0: this part is retried by with_retries_async, with our backoff
                    await bc.stage_block(block_id, body, length=length, retry_total=0)

            async def run() -> str:
                await with_retries_async(send, config, f"block {number} of az://{remote}")
                tracker.add(length)
                return block_id

            return run

        from azure.storage.blob import BlobBlock

        for round_ in (1, 2):
            jobs = [job(i, off, min(chunk, size - off)) for i, off in enumerate(range(0, size, chunk))]
            ids = await _bounded(jobs, config.concurrency)
            try:
                await with_retries_async(
                    # ignore: mypy cannot infer the type of a lambda parameter with a default
                    lambda ids=ids: bc.commit_block_list(  # type: ignore[misc]
                        [BlobBlock(block_id=i) for i in ids], metadata={"is_directory": "false"}, retry_total=0
                    ),
                    config,
                    f"committing az://{remote}",
                )
                break
            except Exception as exc:
                # a commit of the same blob by another writer discards our uncommitted blocks
                if error_code(exc) != "InvalidBlockList":
                    raise
                try:
                    props = await bc.get_blob_properties()
                except Exception:
                    props = None
                if props is not None and props.size == size:
                    break  # the other writer published the same content
                if round_ == 2:
                    raise
                tracker.done = 0
                prefix = os.urandom(8).hex()
    fs.invalidate_cache(remote)


async def _gcs_upload(fs: Any, local: str, remote: str, size: int, config: TransferConfig, tracker: _Progress) -> None:
    """A resumable upload: chunks are sent in order, each streamed from the file.

    A failed chunk is sent again from its start (the session keeps what it has;
    a 308 reply's ``Range`` says where to continue). The object exists only once
    the last chunk lands, and its size is checked then.
    """
    import asyncio
    import json

    from gcsfs.core import initiate_upload
    from gcsfs.retry import validate_response

    bucket, key, _ = fs.split_path(remote)
    chunk = part_size(size, config, "gcs")
    location = await with_retries_async(
        lambda: initiate_upload(fs, bucket, key, "application/octet-stream"), config, f"upload of gs://{remote}"
    )

    async def put(offset: int, length: int) -> tuple[int, str | None, bytes]:
        if length:
            last = offset + length >= size
            content_range = f"bytes {offset}-{offset + length - 1}/{size if last else '*'}"
        else:
            content_range = f"bytes */{size}"
        headers = fs._get_headers(
            {"Content-Range": content_range, "Content-Length": str(length), "Content-Type": "application/octet-stream"}
        )
        await fs._set_session()
        with FileSlice(local, offset, length) as body:
            async with fs.session.request(
                "PUT", location, headers=headers, data=body if length else b"", timeout=fs.requests_timeout
            ) as r:
                contents = await r.read()
                if r.status == 308:  # chunk persisted, upload incomplete
                    return r.status, r.headers.get("Range"), b""
                validate_response(r.status, contents, remote)
                return r.status, None, contents

    pos = 0
    attempt = 1
    while True:
        length = min(chunk, size - pos)
        try:
            status, rng, contents = await put(pos, length)
        except Exception as exc:
            if attempt >= config.retries or not is_transient(exc):
                raise
            delay = config.delay(attempt)
            logger.warning(
                "chunk at %d of gs://%s failed (%s), retry %d/%d in %.1f s",
                pos,
                remote,
                type(exc).__name__,
                attempt,
                config.retries - 1,
                delay,
            )
            await asyncio.sleep(delay)
            attempt += 1
            continue
        attempt = 1
        if status != 308:
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                stored = int(json.loads(contents or b"{}").get("size", size))
                if stored != size:
                    raise OSError(f"gs://{remote} was finalised with {stored} bytes instead of {size}")
            tracker.add(size - tracker.done)
            break
        new_pos = int(rng.rsplit("-", 1)[1]) + 1 if rng else 0
        tracker.add(max(0, new_pos - pos))
        pos = new_pos
    fs.invalidate_cache(remote)
