"""Local disk: create-if-absent by ``os.link`` of a complete temporary file, compare-and-swap under
an OS lock file (``flock``) with a re-read and ``os.replace``; the etag is the content's sha256."""

from __future__ import annotations

import contextlib
import os
import uuid

from .base import ObjectIO, PreconditionFailed, Read, sha

__all__ = ["LocalIO"]


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
        return Read(data, sha(data))

    def create(self, path: str, data: bytes) -> str:
        self.count("put")
        tmp = self._write_tmp(path, data)
        try:
            os.link(tmp, path)  # atomic, fails if the name exists; readers never see partial content
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return sha(data)

    def swap(self, path: str, data: bytes, etag: str) -> str:
        self.count("put")
        tmp = self._write_tmp(path, data)
        try:
            with _FileLock(path + ".lock"):
                try:
                    with open(path, "rb") as f:
                        current = sha(f.read())
                except FileNotFoundError:
                    raise PreconditionFailed(path) from None
                if current != etag:
                    raise PreconditionFailed(path)
                os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return sha(data)

    def put(self, path: str, data: bytes) -> str:
        self.count("put")
        tmp = self._write_tmp(path, data)
        try:
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return sha(data)

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
