"""GCS through gcsfs: multipart uploads with ``ifGenerationMatch=0`` (create) or ``=<generation>``
(compare-and-swap); fake-gcs-server honours preconditions on multipart uploads only."""

from __future__ import annotations

import contextlib
from typing import Any

from ._async import _AsyncIO
from .base import PreconditionFailed, Read

__all__ = ["GCSIO"]


class GCSIO(_AsyncIO):
    """Google Cloud Storage through gcsfs's HTTP session (generation preconditions)."""

    bogus_etag = "1"  # generations are numbers; no live object has generation 1

    async def _aread(self, path: str) -> Read:
        self.count("get")
        headers, data = await self.fs._call("GET", self.fs.url(path))
        generation = headers.get("x-goog-generation")
        if generation is None:  # pragma: no cover - every GCS implementation sends it
            info = await self.fs._info(path, refresh=True)
            generation = info.get("generation")
        return Read(data, str(generation))

    async def _upload(self, path: str, data: bytes, generation: str | None) -> str:
        import json as _json
        from urllib.parse import quote

        bucket, key = self._split(path)
        url = f"{self.fs._location}/upload/storage/v1/b/{quote(bucket)}/o"
        metadata = _json.dumps({"name": key, "contentType": "application/json"})
        body = (
            (
                "--==0==\nContent-Type: application/json; charset=UTF-8\n\n"
                + metadata
                + "\n--==0==\nContent-Type: application/json\n\n"
            ).encode()
            + data
            + b"\n--==0==--"
        )
        kw = {} if generation is None else {"ifGenerationMatch": str(generation)}
        self.count("put")
        j = await self.fs._call(
            "POST",
            url,
            uploadType="multipart",
            headers={"Content-Type": 'multipart/related; boundary="==0=="'},
            data=body,
            json_out=True,
            **kw,
        )
        return str(j.get("generation"))

    def create(self, path: str, data: bytes) -> str:
        return self._run(lambda: self._upload(path, data, "0"))  # 412 -> FileExistsError (gcsfs)

    def swap(self, path: str, data: bytes, etag: str) -> str:
        async def go() -> str:
            try:
                return await self._upload(path, data, etag)
            except (FileExistsError, FileNotFoundError):
                raise PreconditionFailed(path) from None

        return self._run(go)

    def put(self, path: str, data: bytes) -> str:
        return self._run(lambda: self._upload(path, data, None))

    def delete(self, path: str) -> None:
        async def go() -> None:
            self.count("delete")
            with contextlib.suppress(FileNotFoundError):
                await self.fs._rm_file(path)

        self._run(go)

    def list_stamps(self, folder: str) -> dict[str, str | None]:
        bucket, key = self._split(folder.rstrip("/"))
        prefix = f"{key}/" if key else ""

        async def go() -> dict[str, str | None]:
            out: dict[str, str | None] = {}
            token = None
            while True:
                self.count("list")
                kw: dict[str, Any] = {"prefix": prefix, "delimiter": "/", "maxResults": 1000}
                if token:
                    kw["pageToken"] = token
                page = await self.fs._call("GET", "b/{}/o", bucket, json_out=True, **kw)
                for item in page.get("items", []):
                    name = item["name"][len(prefix) :]
                    if name.endswith(".json") and "/" not in name:
                        out[name] = str(item.get("generation"))
                token = page.get("nextPageToken")
                if not token:
                    return out

        return self._run(go)
