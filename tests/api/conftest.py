"""A real HTTP API server on a free loopback port (uvicorn in a thread), a registry with one token
of each role, and httpx clients for them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from modelreg import Registry
from modelreg.api.core import Settings
from modelreg.api.tokens import create_token

ROLES = ("reader", "writer", "approver", "admin")


class LiveServer:
    """``create_app(registry, settings)`` served by uvicorn on 127.0.0.1:<free port>."""

    def __init__(self, registry: Registry, settings: Settings) -> None:
        import uvicorn

        from modelreg.api.app import create_app
        from modelreg.ui.server import bind

        self.app = create_app(registry, settings)
        self.sock = bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        from modelreg.api.server import http_protocol

        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off", http=http_protocol())
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the API server did not start"
            time.sleep(0.01)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@dataclass
class Api:
    """The server, its registry (a second Registry object on the same folder, as another process
    would open it), the secret of each role's token and a client factory."""

    server: LiveServer
    registry: Registry
    tokens: dict[str, str]
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, role: str | None = None, *, token: str | None = None) -> httpx.Client:
        secret = token if token is not None else (self.tokens[role] if role else None)
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        c = httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=30)
        self.clients.append(c)
        return c


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[Callable[..., Api]]:
    made: list[tuple[Api, Registry]] = []

    def make(*, tokens: bool = True, **settings: Any) -> Api:
        where = tmp_path / f"registry{len(made)}"
        served = Registry(where, actor="server-admin")
        secrets: dict[str, str] = {}
        if tokens:
            for role in ROLES:
                secrets[role] = create_token(served, role, role, actor=f"{role}@example.com")[1]
            secrets["writer2"] = create_token(served, "writer2", "writer", actor="writer2@example.com")[1]
        settings.setdefault("rate", 0)
        api = Api(LiveServer(served, Settings(**settings)), Registry(where, actor="tester"), secrets)
        made.append((api, served))
        return api

    yield make
    for api, served in made:
        for c in api.clients:
            c.close()
        api.server.close()
        api.registry.close()
        served.close()


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()


def upload(client: httpx.Client, data: bytes) -> str:
    """PUT ``data`` as a blob; return its digest."""
    import hashlib

    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = client.put(f"/blobs/{digest}", content=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    return digest


def register(client: httpx.Client, name: str, data: bytes, path: str = "model.bin", **extra: Any) -> dict[str, Any]:
    """Upload ``data`` and register it as the next version of ``name``; return the version record."""
    digest = upload(client, data)
    body = {"files": [{"path": path, "digest": digest, "size": len(data)}], **extra}
    r = client.post(f"/models/{name}/versions", json=body)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out
