"""Upload, register and download over HTTP: verified, resumable, and safe under concurrent clients."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import httpx2 as httpx
import pytest

from modelreg.api.errors import RangeNotSatisfiable
from modelreg.api.routes_blobs import parse_range
from modelreg.errors import ModelNotFound
from tests.api.conftest import Api, register, upload


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_upload_register_download_with_range_resume(api: Api, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    w = api.client("writer")
    first = w.put(f"/blobs/{_sha(data)}", content=data)
    assert first.json() == {"digest": _sha(data), "size": len(data), "created": True}
    assert w.put(f"/blobs/{_sha(data)}", content=data).json()["created"] is False
    mv = w.post(
        "/models/churn/versions",
        json={"files": [{"path": "model.onnx", "digest": _sha(data), "size": len(data)}], "format": "onnx"},
    )
    assert mv.status_code == 201
    assert mv.json()["artifact"]["digest"] == _sha(data) and mv.json()["artifact"]["format"] == "onnx"
    # the Python library downloads it, verified
    out = api.registry.download("churn/1", tmp_path / "py")
    assert out.read_bytes() == data
    r = api.client("reader")
    full = r.get("/download/churn/1")
    assert full.status_code == 200 and full.content == data
    assert full.headers["x-modelreg-digest"] == _sha(data) and full.headers["accept-ranges"] == "bytes"
    assert full.headers["content-disposition"] == "attachment; filename*=UTF-8''model.onnx"
    # an interrupted download resumes with Range, and the whole verifies against the digest
    part = bytearray()
    with r.stream("GET", "/download/churn/1") as stream:
        for chunk in stream.iter_bytes(256 * 1024):
            part += chunk
            if len(part) >= 1024 * 1024:
                break
    rest = r.get("/download/churn/1", headers={"Range": f"bytes={len(part)}-", "If-Range": full.headers["etag"]})
    assert rest.status_code == 206
    assert rest.headers["content-range"] == f"bytes {len(part)}-{len(data) - 1}/{len(data)}"
    assert _sha(bytes(part) + rest.content) == rest.headers["x-modelreg-digest"] == _sha(data)
    middle = r.get("/download/churn/1", headers={"Range": "bytes=10-19"})
    assert middle.status_code == 206 and middle.content == data[10:20]
    tail = r.get("/download/churn/1", headers={"Range": "bytes=-5"})
    assert tail.content == data[-5:]
    stale = r.get("/download/churn/1", headers={"Range": "bytes=10-19", "If-Range": '"sha256:other"'})
    assert stale.status_code == 200 and len(stale.content) == len(data)
    past = r.get("/download/churn/1", headers={"Range": f"bytes={len(data)}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(data)}"


def test_folder_artifact_matches_a_local_registration(api: Api, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    files = {"z.txt": b"z", "a.txt": b"a", "sub/w.bin": b"w" * 100, "b.json": b"{}"}
    for rel, data in files.items():
        (folder / rel).write_bytes(data)
    local = api.registry.register("local", folder, capture=None)
    w = api.client("writer")
    specs = [{"path": rel, "digest": upload(w, data), "size": len(data)} for rel, data in files.items()]
    mv = w.post("/models/remote/versions", json={"files": specs, "artifact_name": "model", "tags": {"a": "b"}})
    assert mv.status_code == 201, mv.text
    art = mv.json()["artifact"]
    assert art["kind"] == "directory" and art["digest"] == local.artifact.digest
    assert [f["path"] for f in art["files"]] == [f.path for f in local.artifact.files]
    got = api.registry.download("remote/1", tmp_path / "out")
    assert {str(p.relative_to(got)) for p in got.rglob("*") if p.is_file()} == set(files)
    r = api.client("reader")
    assert r.get("/download/remote/1", params={"path": "sub/w.bin"}).content == b"w" * 100
    several = r.get("/download/remote/1")
    assert several.status_code == 422 and "pass ?path=" in several.json()["message"]
    assert r.get("/download/remote/1", params={"path": "nope"}).status_code == 404


def test_register_refuses_what_was_not_uploaded(api: Api) -> None:
    w = api.client("writer")
    missing = w.post("/models/churn/versions", json={"files": [{"path": "m", "digest": _sha(b"x"), "size": 1}]})
    assert missing.status_code == 404 and missing.json()["error"] == "BlobNotFound"
    assert "PUT /api/v1/blobs/" in missing.json()["message"]
    digest = upload(w, b"abc")
    wrong_size = w.post("/models/churn/versions", json={"files": [{"path": "m", "digest": digest, "size": 4}]})
    assert wrong_size.status_code == 422
    dup = [{"path": "m", "digest": digest, "size": 3}] * 2
    assert w.post("/models/churn/versions", json={"files": dup}).status_code == 422
    escape = w.post("/models/churn/versions", json={"files": [{"path": "../m", "digest": digest, "size": 3}]})
    assert escape.status_code == 422
    assert w.post("/models/churn/versions", json={"files": []}).status_code == 422
    with pytest.raises(ModelNotFound):  # nothing was created
        api.registry.get_model("churn")


@pytest.mark.parametrize("size", [100_000, 6 * 1024 * 1024], ids=["small", "streamed"])
def test_a_corrupted_blob_is_never_served_whole(api: Api, size: int) -> None:
    data = b"x" * size
    register(api.client("writer"), "churn", data)
    blob = Path(api.registry.artifacts._path(_sha(data)))  # type: ignore[attr-defined]
    blob.chmod(0o644)
    blob.write_bytes(b"x" * (size - 1) + b"y")
    reader = api.client("reader")
    if size <= 4 * 1024 * 1024:  # verified before the answer starts: an error answer
        r = reader.get("/download/churn/1")
        assert r.status_code == 500 and r.json()["error"] == "IntegrityError"
        assert "corrupted" in r.json()["message"]
    else:  # streamed: cut before the last chunk, so the body never looks whole
        got = bytearray()
        with pytest.raises(httpx.HTTPError), reader.stream("GET", "/download/churn/1") as stream:
            assert stream.status_code == 200
            for chunk in stream.iter_bytes():
                got += chunk
        assert len(got) < size
    assert api.server.app.state.api.registry.artifacts.is_suspect(_sha(data))  # flagged for repair


def test_parse_range() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-4", 10) == (0, 4)
    assert parse_range("bytes=5-", 10) == (5, 9)
    assert parse_range("bytes=-3", 10) == (7, 9)
    assert parse_range("bytes=2-100", 10) == (2, 9)
    assert parse_range("bytes=0-1,3-4", 10) is None
    assert parse_range("items=0-1", 10) is None
    assert parse_range("bytes=5-2", 10) is None
    assert parse_range("bytes=a-b", 10) is None
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=10-", 10)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=-0", 10)


def test_concurrent_clients_get_numbers_1_to_200(api: Api) -> None:
    failures: list[str] = []
    numbers: list[int] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        with httpx.Client(
            base_url=api.url + "/api/v1", headers={"Authorization": f"Bearer {api.tokens['writer']}"}, timeout=60
        ) as c:
            for i in range(50):
                data = f"client {k} model {i}".encode()
                digest = _sha(data)
                up = c.put(f"/blobs/{digest}", content=data)
                body = {"files": [{"path": "m.bin", "digest": digest, "size": len(data)}]}
                r = c.post("/models/churn/versions", json=body)
                with lock:
                    if up.status_code != 200 or r.status_code != 201:
                        failures.append(f"{up.status_code} {r.status_code} {r.text}")
                    else:
                        numbers.append(r.json()["version"])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert sorted(numbers) == list(range(1, 201))
    assert [v.version for v in api.registry.list_versions("churn")] == list(range(1, 201))
    assert api.registry.verify("churn", blobs=False).ok
