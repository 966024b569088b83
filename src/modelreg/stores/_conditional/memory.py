"""fsspec's memory filesystem: both conditions checked and applied under one process lock."""

from __future__ import annotations

import contextlib
import threading

from .base import ObjectIO, PreconditionFailed, Read, json_files, sha

__all__ = ["MemoryIO"]


_MEMORY_LOCK = threading.RLock()


class MemoryIO(ObjectIO):
    """fsspec's in-process memory filesystem (one lock for the whole process)."""

    def read(self, path: str) -> Read:
        self.count("get")
        with _MEMORY_LOCK:
            data = self.fs.cat_file(path)
        return Read(data, sha(data))

    def create(self, path: str, data: bytes) -> str:
        self.count("put")
        with _MEMORY_LOCK:
            if self.fs.exists(path):
                raise FileExistsError(path)
            self.fs.pipe_file(path, data)
        return sha(data)

    def swap(self, path: str, data: bytes, etag: str) -> str:
        self.count("put")
        with _MEMORY_LOCK:
            try:
                current = sha(self.fs.cat_file(path))
            except FileNotFoundError:
                raise PreconditionFailed(path) from None
            if current != etag:
                raise PreconditionFailed(path)
            self.fs.pipe_file(path, data)
        return sha(data)

    def put(self, path: str, data: bytes) -> str:
        self.count("put")
        with _MEMORY_LOCK:
            self.fs.pipe_file(path, data)
        return sha(data)

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
        return json_files(entries)
