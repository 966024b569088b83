"""S3 through s3fs's aiobotocore client: ``PutObject`` with ``If-None-Match: *`` (create) or
``If-Match: <etag>`` (compare-and-swap)."""

from __future__ import annotations

import asyncio
from typing import Any

from ._async import _AsyncIO
from .base import PreconditionFailed, Read, strip_quotes

__all__ = ["S3IO"]


class S3IO(_AsyncIO):
    """S3 through s3fs's aiobotocore client (conditional PutObject)."""

    bogus_etag = '"00000000000000000000000000000000"'

    async def _client(self, bucket: str) -> Any:
        await self.fs.set_session()
        return await self.fs.get_s3(bucket)

    def _kw(self, method: str, **kwargs: Any) -> dict[str, Any]:
        # include the filesystem's request-wide options (SSE, requester pays, ...)
        extra = dict(getattr(self.fs, "s3_additional_kwargs", {}) or {})
        extra.update(getattr(self.fs, "req_kw", {}) or {})
        extra.update(kwargs)
        return extra

    @staticmethod
    def _code(exc: BaseException) -> tuple[str, int, str]:
        resp = getattr(exc, "response", None) or {}
        err = resp.get("Error", {})
        status = int(resp.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return str(err.get("Code", "")), status, str(err.get("Condition", ""))

    async def _aread(self, path: str) -> Read:
        from botocore.exceptions import ClientError

        bucket, key = self._split(path)
        s3 = await self._client(bucket)
        self.count("get")
        try:
            resp = await s3.get_object(**self._kw("get_object", Bucket=bucket, Key=key))
        except ClientError as exc:
            code, status, _ = self._code(exc)
            if code in ("NoSuchKey", "404") or status == 404:
                raise FileNotFoundError(path) from None
            raise
        try:
            data = await resp["Body"].read()
        finally:
            resp["Body"].close()
        return Read(data, resp["ETag"])

    async def _aput(self, path: str, data: bytes, **cond: Any) -> str:
        from botocore.exceptions import ClientError

        bucket, key = self._split(path)
        s3 = await self._client(bucket)
        delay = 0.05
        for _ in range(20):
            self.count("put")
            try:
                resp = await s3.put_object(
                    **self._kw("put_object", Bucket=bucket, Key=key, Body=data, ContentType="application/json", **cond)
                )
                return str(resp["ETag"])
            except ClientError as exc:
                code, status, condition = self._code(exc)
                if code == "PreconditionFailed" or status == 412:
                    if "IfNoneMatch" in cond or condition == "If-None-Match":
                        raise FileExistsError(path) from None
                    raise PreconditionFailed(path) from None
                if code in ("NoSuchKey",) and "IfMatch" in cond:
                    raise PreconditionFailed(path) from None
                if code == "ConditionalRequestConflict" or status == 409:
                    # another conditional write to this key is in flight: AWS asks to retry
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                raise
        raise PreconditionFailed(path)

    def create(self, path: str, data: bytes) -> str:
        return self._run(lambda: self._aput(path, data, IfNoneMatch="*"))

    def swap(self, path: str, data: bytes, etag: str) -> str:
        return self._run(lambda: self._aput(path, data, IfMatch=etag))

    def put(self, path: str, data: bytes) -> str:
        return self._run(lambda: self._aput(path, data))

    def delete(self, path: str) -> None:
        bucket, key = self._split(path)

        async def go() -> None:
            s3 = await self._client(bucket)
            self.count("delete")
            await s3.delete_object(**self._kw("delete_object", Bucket=bucket, Key=key))

        self._run(go)

    def list_stamps(self, folder: str) -> dict[str, str | None]:
        bucket, key = self._split(folder.rstrip("/"))
        prefix = f"{key}/" if key else ""

        async def go() -> dict[str, str | None]:
            s3 = await self._client(bucket)
            out: dict[str, str | None] = {}
            token = None
            while True:
                kw: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
                if token:
                    kw["ContinuationToken"] = token
                self.count("list")
                resp = await s3.list_objects_v2(**self._kw("list_objects_v2", **kw))
                for obj in resp.get("Contents", []):
                    name = obj["Key"][len(prefix) :]
                    if name.endswith(".json"):
                        out[name] = strip_quotes(obj["ETag"])
                if not resp.get("IsTruncated"):
                    return out
                token = resp.get("NextContinuationToken")

        return self._run(go)

    def stamp_of(self, read: Read) -> str | None:
        return strip_quotes(read.etag)
