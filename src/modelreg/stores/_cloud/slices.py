"""A window of a local file read as a stream: how multipart uploads send each part without holding
it in memory."""

from __future__ import annotations

import io
from typing import Any

__all__ = ["FileSlice"]


class FileSlice(io.RawIOBase):
    """A read-only, seekable window ``[offset, offset + length)`` of a local file.

    Passed as a request body, the HTTP client streams it from disk in small
    reads, so a part never sits in memory whole. It deliberately has no
    ``fileno()``: clients would otherwise size the body from the whole file.
    """

    def __init__(self, path: str, offset: int, length: int) -> None:
        super().__init__()
        self._path = path
        self._offset = offset
        self._length = length
        self._pos = 0
        self._file: io.BufferedReader | None = None

    def _f(self) -> io.BufferedReader:
        if self._file is None:
            self._file = open(self._path, "rb")  # noqa: SIM115 - closed in close()
        return self._file

    def __len__(self) -> int:
        return self._length

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            new = pos
        elif whence == io.SEEK_CUR:
            new = self._pos + pos
        elif whence == io.SEEK_END:
            new = self._length + pos
        else:
            raise ValueError(f"invalid whence {whence}")
        self._pos = max(0, min(new, self._length))
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self._length - self._pos)
        if n <= 0:
            return 0
        f = self._f()
        f.seek(self._offset + self._pos)
        got = f.readinto(view[:n])
        self._pos += got
        return got

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._length - self._pos
        size = min(size, self._length - self._pos)
        if size <= 0:
            return b""
        buf = bytearray(size)
        n = self.readinto(buf)
        del buf[n:]
        return bytes(buf)

    def readall(self) -> bytes:
        return self.read(-1)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()
