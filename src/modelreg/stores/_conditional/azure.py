"""Azure Blob through adlfs: ``upload_blob(overwrite=False)`` (create) or with ``etag=...,
match_condition=IfNotModified`` (compare-and-swap)."""

from __future__ import annotations

import contextlib
from typing import Any

from ._async import _AsyncIO
from .base import PreconditionFailed, Read, strip_quotes

__all__ = ["AzureIO"]


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
                        out[name] = strip_quotes(item.etag)
            return out

        return self._run(go)

    def stamp_of(self, read: Read) -> str | None:
        return strip_quotes(read.etag)
