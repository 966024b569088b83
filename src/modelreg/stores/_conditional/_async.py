"""Shared plumbing of the asyncio-based filesystems (s3fs, gcsfs, adlfs)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, cast

from .base import READ_CONCURRENCY, ObjectIO, Read

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
