"""Artifacts over HTTP: upload a blob under its digest, register a version from uploaded blobs,
and download a version's files (verified, resumable with ``Range``).

An upload is streamed to a temporary file while it is hashed, refused beyond the size limit,
compared with the digest in the path, and only then handed to the artifact store: nothing that
does not match its digest is ever stored. A download streams the stored blob and hashes it on
the way; a blob found corrupted is flagged (``ArtifactStore.mark_suspect``) and the connection is
cut before the last byte, so the client sees a short body, never a wrong file that looks whole.
Every download carries the digest (``X-Modelreg-Digest``, ``Repr-Digest``, ``ETag``) for the
client to check, which is how a resumed (``Range``) download is verified.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import tempfile
import urllib.parse
from collections.abc import AsyncIterator
from typing import BinaryIO

from starlette.responses import Response, StreamingResponse

from ..errors import BlobNotFound, IntegrityError, InvalidInputError, ModelregError, NotFoundError
from ..hashing import check_digest
from ..models import Artifact, FileEntry, ModelVersion
from ..registry import Registry
from ..transfer import manifest_digest
from ..validation import (
    check_label,
    check_name,
    check_relpath,
)
from .core import Call, Endpoint, Param
from .errors import PayloadTooLarge, RangeNotSatisfiable
from .routes_read import NAME, REF
from .schemas import BlobReceipt, RegisterBody

__all__ = ["ENDPOINTS", "parse_range", "register_uploaded"]

log = logging.getLogger("modelreg.api")

CHUNK = 1024 * 1024
SMALL = 4 * CHUNK
"""Files up to this size are read and verified whole before the answer starts."""
DIGEST = Param(
    "digest",
    "path",
    "sha256:<64 lowercase hex digits>",
    {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
    required=True,
)


def _store_upload(reg: Registry, digest: str, path: str) -> bool:
    created = not reg.artifacts.exists(digest)
    reg.artifacts.put_file(digest, path)
    return created


async def put_blob(call: Call) -> BlobReceipt:
    digest = check_digest(call.path("digest"))
    limit = call.state.settings.max_upload
    declared = call.request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the upload is {int(declared)} bytes; this server accepts blobs of at most {limit}")
    fd, tmp = tempfile.mkstemp(prefix="modelreg-upload-", suffix=".part", dir=call.state.settings.tmp_dir)
    try:
        h = hashlib.sha256()
        n = 0
        with os.fdopen(fd, "wb") as f:
            async for chunk in call.request.stream():
                n += len(chunk)
                if n > limit:
                    raise PayloadTooLarge(f"the upload is over {limit} bytes, the largest blob this server accepts")
                h.update(chunk)
                f.write(chunk)
        got = "sha256:" + h.hexdigest()
        if got != digest:
            raise InvalidInputError(
                f"the uploaded content ({n} bytes) hashes to {got}, not {digest}; nothing was stored. "
                "Upload the file again (was it cut short?)"
            )
        created = await call.run(_store_upload, call.registry, digest, tmp)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return BlobReceipt(digest=digest, size=n, created=created)


async def head_blob(call: Call) -> Response:
    digest = check_digest(call.path("digest"))
    try:
        size = await call.run(call.registry.artifacts.size, digest)
    except BlobNotFound:
        return Response(status_code=404)
    return Response(status_code=200, headers={"Content-Length": str(size), "X-Modelreg-Digest": digest})


def _manifest_key(path: str) -> list[tuple[int, str]]:
    """The order of a folder's manifest (as ``Registry.register`` walks a folder): a folder's
    files by name, then its subfolders by name."""
    *dirs, leaf = path.split("/")
    return [(1, d) for d in dirs] + [(0, leaf)]


def register_uploaded(reg: Registry, name: str, body: RegisterBody, actor: str) -> ModelVersion:
    """Register the next version of ``name`` from blobs already in the artifact store
    (:meth:`Registry.register_artifact`), with the file list given instead of read."""
    check_name(name)
    if body.format is not None:
        check_label(body.format, "format", 100)
    entries: list[FileEntry] = []
    seen: set[str] = set()
    for f in body.files:
        check_relpath(f.path)
        check_digest(f.digest)
        if f.path in seen:
            raise InvalidInputError(f"file {f.path!r} is listed twice")
        seen.add(f.path)
        entries.append(FileEntry(path=f.path, digest=f.digest, size=f.size))
    kind = body.kind or ("file" if len(entries) == 1 else "directory")
    if kind == "file":
        if len(entries) != 1 or "/" in entries[0].path:
            raise InvalidInputError("a file artifact has exactly one file, whose path is a plain file name")
        artifact_name = entries[0].path
        digest = entries[0].digest
    else:
        entries.sort(key=lambda e: _manifest_key(e.path))
        artifact_name = body.artifact_name or name.rsplit("/", 1)[-1]
        digest = manifest_digest(entries)
    if "/" in check_relpath(artifact_name):
        raise InvalidInputError(f"artifact_name {artifact_name!r} must be a plain name, without '/'")
    artifact = Artifact(
        kind=kind,
        name=artifact_name,
        digest=digest,
        size=sum(e.size for e in entries),
        files=entries,
        format=body.format,
    )
    try:
        return reg.register_artifact(
            name,
            artifact,
            params=body.params,
            metrics=body.metrics,
            tags=body.tags,
            lineage=body.lineage,
            description=body.description,
            actor=actor,
        )
    except BlobNotFound as exc:
        missing = next((e for e in entries if e.digest in str(exc)), None)
        if missing is None:
            raise
        raise BlobNotFound(
            f"blob {missing.digest} (file {missing.path!r}) is not in the registry; upload it first with "
            f"PUT /api/v1/blobs/{missing.digest}"
        ) from None


async def register(call: Call) -> ModelVersion:
    body = await call.body(RegisterBody)
    return await call.run(register_uploaded, call.registry, call.path("name"), body, call.actor)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (first, last) byte of a single ``bytes=`` range, or None to send the whole file (no
    header, several ranges, or one that cannot be parsed: RFC 9110 says to ignore those).
    RangeNotSatisfiable for a range that starts past the end."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, sep, last = header[len("bytes=") :].strip().partition("-")
    if not sep or not (first.isdigit() or last.isdigit()) or (first and not first.isdigit()):
        return None
    if last and not last.isdigit():
        return None
    if not first:  # the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise RangeNotSatisfiable(f"range {header!r} selects no byte of the {size}-byte file", size)
        return max(0, size - n), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable(f"range {header!r} starts past the end of the {size}-byte file", size)
    return start, min(end, size - 1)


def _open_blob(reg: Registry, mv: ModelVersion, entry: FileEntry, start: int) -> BinaryIO:
    try:
        f = reg.artifacts.open(entry.digest)
    except BlobNotFound as exc:
        raise IntegrityError(f"{mv.ref}: file {entry.path!r} is missing from the artifact store ({exc})") from None
    if start:
        try:
            f.seek(start)
        except (OSError, ValueError):  # a stream that cannot seek: read up to the start
            left = start
            while left:
                skipped = f.read(min(CHUNK, left))
                if not skipped:
                    break
                left -= len(skipped)
    return f


def _corrupted(call: Call, mv: ModelVersion, entry: FileEntry) -> IntegrityError:
    with contextlib.suppress(ModelregError, OSError):
        call.registry.artifacts.mark_suspect(entry.digest)  # registering this content again replaces it
    log.error("%s: file %r is corrupted in the artifact store; not served", mv.ref, entry.path)
    return IntegrityError(
        f"{mv.ref}: file {entry.path!r} is corrupted in the artifact store (it does not match {entry.digest}); "
        "run `modelreg verify` and re-register the version from a good copy"
    )


def _read_verified(call: Call, mv: ModelVersion, entry: FileEntry) -> bytes:
    """A small file, whole, checked against its digest before anything is sent."""
    with _open_blob(call.registry, mv, entry, 0) as f:
        data = f.read(entry.size + 1)
    if len(data) != entry.size or "sha256:" + hashlib.sha256(data).hexdigest() != entry.digest:
        raise _corrupted(call, mv, entry)
    return data


async def _stream(
    call: Call, mv: ModelVersion, entry: FileEntry, start: int, length: int, verify: bool
) -> AsyncIterator[bytes]:
    """The bytes of a big file. Verifying, the last chunk is held back until the whole file has
    hashed to its digest: a corrupted blob ends the response short of its Content-Length."""
    f = await call.run(_open_blob, call.registry, mv, entry, start)
    h = hashlib.sha256()
    left = length
    held = b""
    try:
        while left > 0:
            chunk = await call.run(f.read, min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            if verify:
                h.update(chunk)
            if held:
                yield held
            held = chunk
        if verify and (left or "sha256:" + h.hexdigest() != entry.digest):
            raise _corrupted(call, mv, entry)
        if held:
            yield held
    finally:
        f.close()  # not in a thread: this also runs when a client that went away has the generator closed


async def download(call: Call) -> Response:
    mv = await call.run(call.registry.get_version, call.path("ref"))
    wanted = call.query("path")
    files = mv.artifact.files
    if wanted is None or wanted == "":
        if len(files) != 1:
            shown = ", ".join(repr(f.path) for f in files[:10])
            raise InvalidInputError(f"{mv.ref} has {len(files)} files; pass ?path= one of {shown}")
        entry = files[0]
    else:
        found = [f for f in files if f.path == wanted]
        if not found:
            raise NotFoundError(f"{mv.ref} has no file {wanted!r}; its files: {', '.join(f.path for f in files[:10])}")
        entry = found[0]
    size = entry.size
    etag = f'"{entry.digest}"'
    raw = bytes.fromhex(entry.digest.partition(":")[2])
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "X-Modelreg-Digest": entry.digest,
        "Repr-Digest": f"sha-256=:{base64.b64encode(raw).decode()}:",
        "Content-Disposition": "attachment; filename*=UTF-8''"
        + urllib.parse.quote(entry.path.rsplit("/", 1)[-1], safe=""),
    }
    if_range = call.request.headers.get("if-range")
    span = parse_range(call.request.headers.get("range"), size) if if_range in (None, etag) else None
    if size <= SMALL:  # read whole and verified before the status line: a damaged blob is a 500 answer
        data = await call.run(_read_verified, call, mv, entry)
        if span is None:
            return Response(data, headers=headers, media_type="application/octet-stream")
        headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{size}"
        return Response(data[span[0] : span[1] + 1], 206, headers=headers, media_type="application/octet-stream")
    if span is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(
            _stream(call, mv, entry, 0, size, verify=True), headers=headers, media_type="application/octet-stream"
        )
    start, end = span
    headers["Content-Length"] = str(end - start + 1)
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(
        _stream(call, mv, entry, start, end - start + 1, verify=False),
        status_code=206,
        headers=headers,
        media_type="application/octet-stream",
    )


ENDPOINTS: list[Endpoint] = [
    Endpoint(
        "PUT",
        "/blobs/{digest}",
        put_blob,
        "Upload a file's content under its sha256 digest (verified, size-limited)",
        role="writer",
        body="binary",
        response=BlobReceipt,
        params=(DIGEST,),
    ),
    Endpoint(
        "HEAD",
        "/blobs/{digest}",
        head_blob,
        "Whether the registry holds a blob (200) or not (404): skip uploading what it has",
        response=None,
        params=(DIGEST,),
    ),
    Endpoint(
        "POST",
        "/models/{name}/versions",
        register,
        "Register a version from blobs already uploaded",
        role="writer",
        body=RegisterBody,
        response=ModelVersion,
        params=(NAME,),
        route="/models/{name:path}/versions",
        status=201,
    ),
    Endpoint(
        "GET",
        "/download/{ref}",
        download,
        "Download one file of a version (Range supported; the digest is in X-Modelreg-Digest)",
        response="binary",
        params=(
            REF,
            Param("path", "query", "the file's path in the artifact (needed when it has several files)"),
            Param("Range", "header", "bytes=START-END, to resume a download"),
        ),
        route="/download/{ref:path}",
        extra_statuses=(206, 416),
    ),
]
