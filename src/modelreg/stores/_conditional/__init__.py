"""Conditional object writes on fsspec filesystems: create-if-absent and compare-and-swap.

The JSON metadata store needs two primitives that fsspec does not offer
uniformly, so this package implements them once per backend, one module each:

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

from typing import Any

from .base import READ_CONCURRENCY, ObjectIO, PreconditionFailed, Read
from .local import LocalIO
from .memory import MemoryIO
from .plain import PlainIO

__all__ = ["READ_CONCURRENCY", "LocalIO", "MemoryIO", "ObjectIO", "PlainIO", "PreconditionFailed", "Read", "io_for"]


def io_for(fs: Any) -> ObjectIO:
    """The adapter for an fsspec filesystem instance (PlainIO when conditional writes are unknown)."""
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    cls_name = type(fs).__name__
    if protocols & {"file", "local"} and cls_name == "LocalFileSystem":
        return LocalIO(fs)
    if "memory" in protocols and cls_name == "MemoryFileSystem":
        return MemoryIO(fs)
    # the object stores' adapters import asyncio: loaded only for a filesystem of theirs
    if protocols & {"s3", "s3a"} and cls_name == "S3FileSystem":
        from .s3 import S3IO

        return S3IO(fs)
    if protocols & {"gs", "gcs"} and cls_name in ("GCSFileSystem", "ExtendedGcsFileSystem"):
        from .gcs import GCSIO

        return GCSIO(fs)
    if protocols & {"az", "abfs", "abfss"} and cls_name == "AzureBlobFileSystem":
        from .azure import AzureIO

        return AzureIO(fs)
    return PlainIO(fs)
