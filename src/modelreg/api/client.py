"""A small Python client of the HTTP API: :class:`RemoteRegistry`.

>>> from modelreg.api.client import RemoteRegistry
>>> remote = RemoteRegistry("http://127.0.0.1:8422", token="mrt_...")
>>> remote.url
'http://127.0.0.1:8422/api/v1'

Its methods mirror :class:`modelreg.Registry`'s and return the same records; an error answer is
raised as the same exception class, with the server's message (``Unauthorized``, ``Forbidden``
and ``RateLimited`` come from :mod:`modelreg.api.errors`). It needs httpx (``httpx2`` or ``httpx``).
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from .. import errors as _errors
from ..errors import IntegrityError, InvalidInputError, MissingDependencyError, ModelregError, Remedy
from ..governance.events import EventsPage
from ..governance.requests import TransitionRequest
from ..models import AuditEvent, ModelVersion, RegisteredModel, VerifyReport
from . import errors as _api_errors
from .schemas import BlobReceipt, Identity

__all__ = ["RemoteRegistry"]

R = TypeVar("R", bound=BaseModel)
CHUNK = 1024 * 1024


def _httpx() -> Any:
    for name in ("httpx2", "httpx"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise MissingDependencyError("RemoteRegistry needs httpx; install it with: pip install httpx")


def _raise_for(response: Any) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
        name, message = str(body["error"]), str(body["message"])
        remedy = body.get("remedy")
    except (ValueError, KeyError, TypeError):
        raise ModelregError(f"HTTP {response.status_code} from {response.request.url}: {response.text[:200]}") from None
    cls = getattr(_errors, name, None) or getattr(_api_errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, ModelregError)):
        cls = ModelregError
    exc = cls.__new__(cls)
    ModelregError.__init__(exc, message)
    if remedy:
        exc.remedy = Remedy(remedy["python"], remedy["cli"])
    if isinstance(exc, _api_errors.RateLimited):
        exc.retry_after = float(response.headers.get("retry-after", "1"))
    if isinstance(exc, _errors.PolicyViolation):
        exc.unmet = []
    raise exc


class RemoteRegistry:
    """A registry served by ``modelreg serve``, at ``url`` (``http://host:8422``), with ``token``."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 60.0, client: Any = None) -> None:
        base = url.rstrip("/")
        self.url = base if base.endswith("/api/v1") else base + "/api/v1"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = client or _httpx().Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RemoteRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------------
    def _call(self, method: str, path: str, *, json: Any = None, params: Any = None) -> Any:
        response = self._client.request(method, path, json=json, params=params)
        _raise_for(response)
        return response.json()

    def _one(self, cls: type[R], method: str, path: str, **kw: Any) -> R:
        return cls.model_validate(self._call(method, path, **kw))

    def _many(self, cls: type[R], method: str, path: str, **kw: Any) -> list[R]:
        return [cls.model_validate(x) for x in self._call(method, path, **kw)]

    # -- reads ---------------------------------------------------------------------------------
    def list_models(self) -> list[RegisteredModel]:
        return self._many(RegisteredModel, "GET", "/models")

    def get_model(self, name: str) -> RegisteredModel:
        return self._one(RegisteredModel, "GET", f"/models/{name}")

    def list_versions(self, name: str, stage: str | None = None) -> list[ModelVersion]:
        return self._many(ModelVersion, "GET", f"/models/{name}/versions", params={"stage": stage} if stage else None)

    def get_version(self, ref: str) -> ModelVersion:
        """``churn``, ``churn/3``, ``churn@production`` or ``churn@champion``."""
        return self._one(ModelVersion, "GET", f"/versions/{ref}")

    def search(
        self, query: str | None = None, *, order_by: str | list[str] | None = None, limit: int | None = None
    ) -> list[ModelVersion]:
        params: dict[str, Any] = {}
        if query:
            params["q"] = query
        if order_by:
            params["order_by"] = order_by if isinstance(order_by, str) else ",".join(order_by)
        if limit is not None:
            params["limit"] = limit
        return self._many(ModelVersion, "GET", "/search", params=params)

    def history(self, name: str | None = None, version: int | None = None) -> list[AuditEvent]:
        params = {k: v for k, v in {"model": name, "version": version}.items() if v is not None}
        return self._many(AuditEvent, "GET", "/history", params=params)

    def events(
        self,
        since: str | None = None,
        *,
        limit: int | None = None,
        actions: Iterable[str] | None = None,
        models: Iterable[str] | None = None,
    ) -> EventsPage:
        params: dict[str, Any] = {"since": since, "limit": limit}
        if actions is not None:
            params["actions"] = ",".join(actions)
        if models is not None:
            params["models"] = ",".join(models)
        return self._one(EventsPage, "GET", "/events", params={k: v for k, v in params.items() if v is not None})

    def verify(self, name: str | None = None, *, blobs: bool = True) -> VerifyReport:
        params = {"blobs": str(blobs).lower(), **({"model": name} if name else {})}
        return self._one(VerifyReport, "GET", "/verify", params=params)

    def list_requests(self, status: str = "pending", *, model: str | None = None) -> list[TransitionRequest]:
        params = {"status": status, **({"model": model} if model else {})}
        return self._many(TransitionRequest, "GET", "/requests", params=params)

    # -- changes -------------------------------------------------------------------------------
    def transition(self, ref: str, stage: str, *, comment: str | None = None, strict: bool = False) -> ModelVersion:
        body = {"stage": stage, "comment": comment, "strict": strict}
        return self._one(ModelVersion, "POST", f"/versions/{ref}/transition", json=body)

    def rollback(self, name: str, stage: str = "production", *, comment: str | None = None) -> ModelVersion:
        return self._one(ModelVersion, "POST", f"/models/{name}/rollback", json={"stage": stage, "comment": comment})

    def set_alias(self, name: str, alias: str, version: int, *, comment: str | None = None) -> ModelVersion:
        body = {"version": version, "comment": comment}
        return self._one(ModelVersion, "PUT", f"/models/{name}/aliases/{alias}", json=body)

    def delete_alias(self, name: str, alias: str) -> ModelVersion:
        return self._one(ModelVersion, "DELETE", f"/models/{name}/aliases/{alias}")

    def set_tags(
        self, ref: str, tags: Mapping[str, str], *, remove: Iterable[str] = (), comment: str | None = None
    ) -> ModelVersion:
        body = {"set": dict(tags), "remove": list(remove), "comment": comment}
        return self._one(ModelVersion, "POST", f"/versions/{ref}/tags", json=body)

    def set_description(self, ref: str, description: str, *, comment: str | None = None) -> ModelVersion:
        body = {"description": description, "comment": comment}
        return self._one(ModelVersion, "PUT", f"/versions/{ref}/description", json=body)

    def log_metrics(
        self, ref: str, metrics: Mapping[str, float], *, step: int | None = None, comment: str | None = None
    ) -> ModelVersion:
        body = {"metrics": dict(metrics), "step": step, "comment": comment}
        return self._one(ModelVersion, "POST", f"/versions/{ref}/metrics", json=body)

    def request_transition(self, ref: str, stage: str, comment: str | None = None) -> TransitionRequest:
        body = {"stage": stage, "comment": comment}
        return self._one(TransitionRequest, "POST", f"/versions/{ref}/requests", json=body)

    def get_request(self, request_id: str) -> TransitionRequest:
        return self._one(TransitionRequest, "GET", f"/requests/{request_id}")

    def whoami(self) -> Identity:
        """The token's name, role and actor, as the server sees them."""
        return self._one(Identity, "GET", "/whoami")

    def approve(self, request_id: str, *, comment: str | None = None, key: Any = None) -> TransitionRequest:
        """Approve a pending request. With ``key`` (a :class:`~modelreg.signing.SigningKey`, PEM text or
        the path of a PEM private key file, which stays on this machine), the approval statement is
        signed here and sent with it; the server checks it against the keys its policy lists for this
        token's actor (``member_keys``)."""
        body: dict[str, Any] = {"comment": comment}
        if key is not None:
            from .signed import sign_approval

            req = self.get_request(request_id)
            digest = self.get_version(req.ref).digest
            body["signature"] = sign_approval(key, req, digest, self.whoami().actor)
        return self._one(TransitionRequest, "POST", f"/requests/{request_id}/approve", json=body)

    def reject(self, request_id: str, *, comment: str | None = None) -> TransitionRequest:
        return self._one(TransitionRequest, "POST", f"/requests/{request_id}/reject", json={"comment": comment})

    # -- artifacts -------------------------------------------------------------------------------
    def upload_blob(self, path: str | os.PathLike[str]) -> BlobReceipt:
        """Upload one file under its digest, unless the registry holds it already."""
        h = hashlib.sha256()
        size = 0
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
                size += len(chunk)
        digest = "sha256:" + h.hexdigest()
        if self._client.head(f"/blobs/{digest}").status_code == 200:
            return BlobReceipt(digest=digest, size=size, created=False)
        with open(path, "rb") as f:
            response = self._client.put(f"/blobs/{digest}", content=iter(lambda: f.read(CHUNK), b""))
        _raise_for(response)
        return BlobReceipt.model_validate(response.json())

    def register(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        lineage: Mapping[str, Any] | None = None,
        description: str | None = None,
        format: str | None = None,
    ) -> ModelVersion:
        """Upload a file or folder and register it as the next version of ``name``."""
        from ..transfer import collect_files

        src = Path(os.fspath(path)).expanduser()
        kind, files, _ = collect_files(src)
        specs = []
        for f in files:
            receipt = self.upload_blob(f.path)
            specs.append({"path": f.rel, "digest": receipt.digest, "size": receipt.size})
        body: dict[str, Any] = {
            "files": specs,
            "kind": kind,
            "params": dict(params or {}),
            "metrics": dict(metrics or {}),
        }
        body.update(tags=dict(tags or {}), lineage=dict(lineage or {}), description=description, format=format)
        if kind == "directory":
            body["artifact_name"] = src.name
        return self._one(ModelVersion, "POST", f"/models/{name}/versions", json=body)

    def download(
        self, ref: str, dest: str | os.PathLike[str] = ".", *, path: str | None = None, overwrite: bool = False
    ) -> Path:
        """Download one file of a version into the folder ``dest``, verified against its digest.
        An interrupted download (``<file>.part``) is resumed with a Range request."""
        mv = self.get_version(ref)
        entries = [e for e in mv.artifact.files if path is None or e.path == path]
        if len(entries) != 1:
            raise InvalidInputError(f"{mv.ref} has {len(mv.artifact.files)} files; pass path= one of them")
        entry = entries[0]
        target = Path(os.fspath(dest)).expanduser() / entry.path.rsplit("/", 1)[-1]
        if target.exists() and not overwrite:
            raise _errors.AlreadyExistsError(
                f"{str(target)!r} exists already", remedy=Remedy("pass overwrite=True", "")
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-", "If-Range": f'"{entry.digest}"'} if 0 < have < entry.size else {}
        query = {"path": entry.path}
        with self._client.stream("GET", f"/download/{mv.ref}", params=query, headers=headers) as response:
            if response.status_code >= 400:
                response.read()
                _raise_for(response)
            mode = "ab" if response.status_code == 206 else "wb"
            with open(part, mode) as out:
                for chunk in response.iter_bytes(CHUNK):
                    out.write(chunk)
        h = hashlib.sha256()
        with open(part, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        if "sha256:" + h.hexdigest() != entry.digest or part.stat().st_size != entry.size:
            part.unlink()
            raise IntegrityError(f"{mv.ref}: the download of {entry.path!r} does not match {entry.digest}; retry")
        os.replace(part, target)
        return target
