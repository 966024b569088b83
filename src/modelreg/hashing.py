"""Streaming sha256 over files and streams with a fixed 8 MiB buffer."""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable
from typing import BinaryIO

CHUNK = 8 * 1024 * 1024

ProgressFn = Callable[[str, int, int], None]
"""``progress(phase, bytes_done, bytes_total)``; phases are ``hash``, ``upload`` and ``download``."""


def sha256_stream(stream: BinaryIO, *, total: int = 0, progress: ProgressFn | None = None, phase: str = "hash") -> tuple[str, int]:
    """Hash a binary stream; return (``sha256:<hex>``, bytes read).

    ``total`` (the expected size, if known) also sizes the buffer: a small file does not get
    an 8 MiB one (the stream is still read to its end, whatever its real size).
    """
    h = hashlib.sha256()
    buf = bytearray(min(CHUNK, max(total + 1, 64 * 1024)) if total > 0 else CHUNK)
    view = memoryview(buf)
    done = 0
    readinto = getattr(stream, "readinto", None)
    while True:
        if readinto is not None:
            n = readinto(view)
            if not n:
                break
            h.update(view[:n])
        else:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            n = len(chunk)
            h.update(chunk)
        done += n
        if progress is not None:
            progress(phase, done, total)
    return "sha256:" + h.hexdigest(), done


_NO_COPY_FILE_RANGE = frozenset({errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM, errno.EBADF,
                                 errno.ETXTBSY})
"""Errors with which ``copy_file_range`` refuses a pair of files before copying anything."""


def _raw_fds(src: BinaryIO, dst: BinaryIO) -> tuple[int, int] | None:
    """The file descriptors of two real files whose positions hold no buffered data (and a
    readable ``dst``), else None."""
    if not (hasattr(os, "copy_file_range") and hasattr(os, "preadv")):
        return None
    try:
        if not dst.readable():  # each copied step is read back from dst for the hash
            return None
        fds = src.fileno(), dst.fileno()
        if any(f.tell() != os.lseek(fd, 0, os.SEEK_CUR) for f, fd in zip((src, dst), fds)):
            return None
    except (AttributeError, OSError, ValueError):  # not a real file (io.UnsupportedOperation is both)
        return None
    return fds


def sha256_copy(src: BinaryIO, dst: BinaryIO, *, total: int = 0, progress: ProgressFn | None = None,
                phase: str = "download") -> tuple[str, int]:
    """Copy ``src`` to ``dst`` from their current positions; return (``sha256:<hex>``, bytes) of what
    was written.

    Between two real files (``dst`` opened ``"w+b"``, unbuffered) the kernel copies each 8 MiB step
    (``os.copy_file_range``, as ``cp`` does) and the step is read back from ``dst`` for the hash, so
    the digest covers the bytes at the destination. Otherwise each chunk is read into one buffer,
    hashed and written.
    """
    h = hashlib.sha256()
    view = memoryview(bytearray(min(CHUNK, max(total + 1, 64 * 1024)) if total > 0 else CHUNK))
    done = 0
    fds = _raw_fds(src, dst)
    if fds is not None:
        sfd, dfd = fds
        try:
            while True:
                n = os.copy_file_range(sfd, dfd, CHUNK)
                if not n:
                    return "sha256:" + h.hexdigest(), done
                left, offset = n, done
                while left:
                    got = os.preadv(dfd, [view[:min(left, len(view))]], offset)
                    if not got:
                        raise OSError(errno.EIO, "the copy could not be read back")
                    h.update(view[:got])
                    left -= got
                    offset += got
                done += n
                if progress is not None:
                    progress(phase, done, total)
        except OSError as exc:
            if done or exc.errno not in _NO_COPY_FILE_RANGE:
                raise
    readinto = getattr(src, "readinto", None)
    while True:
        if readinto is not None:
            n = readinto(view)
            if not n:
                break
            chunk = view[:n]
        else:
            chunk = src.read(CHUNK)
            if not chunk:
                break
            n = len(chunk)
        h.update(chunk)
        out = memoryview(chunk)
        while len(out):  # an unbuffered write may write less than asked
            out = out[dst.write(out) or 0:]
        done += n
        if progress is not None:
            progress(phase, done, total)
    return "sha256:" + h.hexdigest(), done


def sha256_file(path: str | os.PathLike[str], *, progress: ProgressFn | None = None) -> tuple[str, int]:
    """Hash a local file; return (``sha256:<hex>``, size)."""
    total = os.path.getsize(path)
    with open(path, "rb", buffering=0) as f:
        return sha256_stream(f, total=total, progress=progress)


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    """Validate ``sha256:<64 hex>``; it becomes an object path, so nothing else may pass."""
    from .errors import InvalidInputError

    algo, _, hexpart = digest.partition(":") if isinstance(digest, str) else ("", "", "")
    if algo != "sha256" or len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise InvalidInputError(f"invalid digest {digest!r}; expected 'sha256:' and 64 lowercase hex digits")
    return digest
