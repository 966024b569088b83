"""Any other fsspec filesystem: plain writes, ``conditional`` False (the JSON store then refuses to
write unless it was opened with ``single_writer=True``)."""

from __future__ import annotations

import contextlib

from .base import ObjectIO, PreconditionFailed, Read, json_files, sha

__all__ = ["PlainIO"]


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
        return Read(data, sha(data))

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
        return sha(data)

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
        return json_files(entries)
