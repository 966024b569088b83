"""``modelreg serve --workers N`` (uvicorn worker processes on one socket, each opening the registry
through ``modelreg.api.server:app_from_env``) on each kind of metadata store, and the options for
serving behind a reverse proxy (``--root-path``, ``--proxy-headers``)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from modelreg import Registry
from modelreg.api.core import Settings
from modelreg.api.server import app_from_env, settings_from_env, settings_to_env
from modelreg.api.tokens import create_token
from tests.emulators import S3_KEY, S3_REGION, S3_SECRET

CLIENTS = 4
EACH = 25


class Served:
    """``python -m modelreg --registry <location> serve --port 0 <options>`` in a subprocess."""

    def __init__(self, location: str, *options: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelreg", "--registry", location, "serve", "--port", "0", *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        assert self.proc.stdout is not None
        self.line = self.proc.stdout.readline()
        if not self.line.startswith("modelreg serve: "):
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            raise AssertionError(f"the server did not start: {self.line}{err}")
        self.url = self.line.rsplit(" at ", 1)[1].strip()  # http://127.0.0.1:<port>/api/v1
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert self.proc.poll() is None, self.proc.communicate(timeout=10)[1]
            assert time.monotonic() < deadline, "the server did not answer in 60 s"
            time.sleep(0.1)

    def children(self) -> list[int]:
        """The server's child processes (its workers)."""
        text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return [int(pid) for pid in text.split()]

    def close(self) -> str:
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung shutdown
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
        return err


@pytest.fixture(params=["sqlite", "json-folder", "json-s3", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A registry location the server's workers (other processes) can open from the string alone."""
    if request.param == "sqlite":
        yield str(tmp_path / "registry")
    elif request.param == "json-folder":
        yield (tmp_path / "registry").as_uri()
    elif request.param == "json-s3":
        bucket = request.getfixturevalue("s3_bucket")
        # the workers reach the emulator through the standard AWS variables, as a deployment would
        monkeypatch.setenv("AWS_ENDPOINT_URL", bucket.endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
        monkeypatch.setenv("AWS_DEFAULT_REGION", S3_REGION)
        yield f"{bucket.url}/registry"
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        yield f"{dsn}?artifacts={tmp_path / 'blobs'}"


def test_two_workers_four_clients_number_every_version_once(location: str) -> None:
    with Registry(location, actor="admin") as reg:
        token = create_token(reg, "ci", "writer", actor="ci@example.com")[1]
    served = Served(location, "--workers", "2", "--rate-limit", "0")
    try:
        assert "(2 workers)" in served.line
        assert len(served.children()) >= 2
        numbers: list[int] = []
        holders: list[int] = []
        errors: list[str] = []
        lock = threading.Lock()
        start = threading.Barrier(CLIENTS)

        def client(n: int) -> None:
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=served.url, headers=headers, timeout=60) as c:
                start.wait()
                last = 0
                for i in range(EACH):
                    data = f"client {n} model {i}".encode()
                    digest = "sha256:" + hashlib.sha256(data).hexdigest()
                    r = c.put(f"/blobs/{digest}", content=data, headers={"Content-Type": "application/octet-stream"})
                    if r.status_code != 200:
                        errors.append(f"upload {r.status_code} {r.text}")
                        return
                    body = {"files": [{"path": "model.bin", "digest": digest, "size": len(data)}]}
                    r = c.post("/models/churn/versions", json=body)
                    if r.status_code != 201:
                        errors.append(f"register {r.status_code} {r.text}")
                        return
                    last = r.json()["version"]
                    with lock:
                        numbers.append(last)
                r = c.post(f"/versions/churn/{last}/transition", json={"stage": "production"})
                if r.status_code != 200:
                    errors.append(f"promote {r.status_code} {r.text}")
                    return
                with lock:
                    holders.append(last)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert errors == []
        assert sorted(numbers) == list(range(1, CLIENTS * EACH + 1))
        assert len(holders) == CLIENTS
        with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
            production = c.get("/models/churn/versions", params={"stage": "production"})
            assert production.status_code == 200, production.text
            assert len(production.json()) == 1 and production.json()[0]["version"] in holders
    finally:
        err = served.close()
    assert "Traceback" not in err, err
    with Registry(location) as reg:
        assert [v.version for v in reg.list_versions("churn", stage="production")] == [production.json()[0]["version"]]
        report = reg.verify()
        assert report.ok, report.problems


def test_the_settings_reach_each_worker_through_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(read_only=True, rate=5, burst=None, allowed_hosts=("127.0.0.1:1",), max_body=10)
    assert settings_from_env(settings_to_env(settings)) == settings
    assert settings_from_env("") == Settings()
    with pytest.raises(Exception, match="unknown settings: colour"):
        settings_from_env('{"colour": "red"}')
    monkeypatch.setenv("MODELREG_API_REGISTRY", str(tmp_path / "r"))
    monkeypatch.setenv("MODELREG_API_SETTINGS", settings_to_env(settings))
    app = app_from_env()
    assert app.state.api.settings == settings
    assert app.state.api.registry.uri == str(tmp_path / "r")


def test_behind_a_reverse_proxy_root_path_and_forwarded_headers(tmp_path: Path) -> None:
    where = str(tmp_path / "r")
    options = ("--no-auth", "--rate-limit", "0.01", "--burst", "1", "--proxy-headers", "--root-path", "/registry/")
    served = Served(where, *options)
    try:
        assert "behind a proxy at /registry/api/v1" in served.line
        # the proxy strips /registry and forwards /api/v1/...: the app sees root_path /registry
        doc = httpx.get(served.url + "/openapi.json", timeout=10)
        assert doc.status_code == 200 and doc.json()["servers"] == [{"url": "/registry"}]
        assert "/api/v1/models" in doc.json()["paths"]
        # a request whose prefix the proxy did not strip is not an endpoint
        base = served.url.removesuffix("/api/v1")
        assert httpx.get(base + "/registry/api/v1/models", timeout=10).status_code == 404
        # --proxy-headers: X-Forwarded-For from the (loopback) proxy names the client, and the
        # rate limit (1 request, without auth: per client address) counts each client apart
        for client in ("203.0.113.1", "203.0.113.2"):
            r = httpx.get(served.url + "/models", headers={"X-Forwarded-For": client}, timeout=10)
            assert r.status_code == 200, r.text
        again = httpx.get(served.url + "/models", headers={"X-Forwarded-For": "203.0.113.1"}, timeout=10)
        assert again.status_code == 429
    finally:
        served.close()
    # without --proxy-headers the header is ignored: every request comes from 127.0.0.1
    served = Served(where, "--no-auth", "--rate-limit", "0.01", "--burst", "1")
    try:
        assert httpx.get(served.url + "/openapi.json", timeout=10).json()["servers"] == [{"url": "/"}]
        first = httpx.get(served.url + "/models", headers={"X-Forwarded-For": "203.0.113.1"}, timeout=10)
        second = httpx.get(served.url + "/models", headers={"X-Forwarded-For": "203.0.113.2"}, timeout=10)
        assert (first.status_code, second.status_code) == (200, 429)
    finally:
        served.close()


def test_serve_refuses_a_root_path_that_is_not_a_path(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "modelreg", "--registry", str(tmp_path / "r"), "serve", "--no-auth", "--port", "0",
         "--root-path", "registry"],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "must be a URL path that starts with '/'" in proc.stderr
