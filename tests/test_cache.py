"""The local download cache: content addressed, verified, sized, cleared, and usable offline."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from modelreg import BackendError, IntegrityError, Registry
from modelreg.cache import BlobCache, default_cache_dir
from modelreg.cli import main as cli_main
from modelreg.stores.artifacts import FsspecArtifactStore
from tests.emulators import Bucket

CLOUDS = {"s3": "s3_bucket", "gcs": "gcs_bucket", "azure": "azure_container"}


def _blob(tmp_path: Path, size: int = 100_000) -> tuple[Path, bytes, str]:
    data = os.urandom(size)
    path = tmp_path / f"src-{uuid.uuid4().hex[:6]}.bin"
    path.write_bytes(data)
    return path, data, "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def memory_store() -> FsspecArtifactStore:
    return FsspecArtifactStore(f"memory://cache-test-{uuid.uuid4().hex}")


def test_location_is_documented_default(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MODELREG_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("MODELREG_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "modelreg"


def test_fetch_stores_by_digest_read_only(memory_store, tmp_path: Path) -> None:
    path, data, digest = _blob(tmp_path)
    memory_store.put_file(digest, path)
    cache = BlobCache(tmp_path / "cache")
    got = cache.fetch(digest, len(data), memory_store)
    assert got == tmp_path / "cache" / "sha256" / digest[7:9] / digest[9:]
    assert got.read_bytes() == data
    assert not got.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert cache.lookup(digest, len(data)) == got
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


def test_corrupted_store_content_is_never_cached(memory_store, tmp_path: Path) -> None:
    _path, data, digest = _blob(tmp_path)
    memory_store.fs.pipe_file(memory_store._path(digest), b"not the content")
    cache = BlobCache(tmp_path / "cache")
    with pytest.raises(IntegrityError, match="corrupted"):
        cache.fetch(digest, len(data), memory_store)
    assert cache.info().blobs == 0
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


def test_a_damaged_cache_entry_is_detected_and_replaced(tmp_path: Path) -> None:
    path, data, _ = _blob(tmp_path)
    store = FsspecArtifactStore(f"memory://cache-reg-{uuid.uuid4().hex}")
    reg = Registry(metadata=f"sqlite:///{tmp_path}/reg.db", artifacts=store, cache=tmp_path / "cache")
    mv = reg.register("churn", path, capture=None)
    reg.download(mv.ref, tmp_path / "a")
    entry = reg.cache.lookup(mv.digest, mv.size)
    assert entry is not None
    os.chmod(entry, 0o644)
    entry.write_bytes(b"x" * mv.size)  # same size, other bytes: only the hash can tell
    assert reg.download(mv.ref, tmp_path / "b").read_bytes() == data
    assert reg.cache.lookup(mv.digest, mv.size).read_bytes() == data  # refetched from the store


def test_info_and_clear(memory_store, tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "cache")
    sizes = [1000, 2500, 10]
    for size in sizes:
        path, _data, digest = _blob(tmp_path, size)
        memory_store.put_file(digest, path)
        cache.fetch(digest, size, memory_store)
    info = cache.info()
    assert (info.blobs, info.bytes) == (3, sum(sizes))
    assert cache.clear(older_than=3600).blobs == 0  # all were used just now
    removed = cache.clear()
    assert (removed.blobs, removed.bytes) == (3, sum(sizes))
    assert cache.info().blobs == 0


def test_cache_is_automatic_for_remote_stores_only(tmp_path: Path) -> None:
    local = Registry(tmp_path / "local")
    assert local.cache is None  # local blobs are already on disk
    memory = Registry(metadata=f"sqlite:///{tmp_path}/m.db", artifacts=f"memory://m-{uuid.uuid4().hex}")
    assert memory.cache is None
    forced = Registry(tmp_path / "forced", cache=tmp_path / "c")
    assert forced.cache is not None and forced.cache.root == tmp_path / "c"


def test_cache_is_on_for_clouds(cloud_registry) -> None:
    reg, _ = cloud_registry
    assert reg.cache is not None and reg.cache.root == default_cache_dir()
    off = Registry(metadata=reg.metadata, artifacts=reg.artifacts, cache=False)
    assert off.cache is None


def test_same_content_is_fetched_once_across_versions_and_models(cloud_registry, tmp_path: Path, monkeypatch) -> None:
    reg, _ = cloud_registry
    path, data, _ = _blob(tmp_path, 300_000)
    v1 = reg.register("churn", path, capture=None)
    v2 = reg.register("other", path, capture=None)
    opened: list[str] = []
    real_get = reg.artifacts.get_file
    monkeypatch.setattr(reg.artifacts, "get_file", lambda d, dest, **kw: (opened.append(d), real_get(d, dest, **kw))[1])
    assert reg.download(v1.ref, tmp_path / "a").read_bytes() == data
    assert reg.download(v2.ref, tmp_path / "b").read_bytes() == data
    assert reg.download(v1.ref, tmp_path / "c").read_bytes() == data
    assert opened == [v1.digest]


@pytest.fixture(params=sorted(CLOUDS))
def cloud_registry(request: pytest.FixtureRequest, tmp_path: Path):
    bucket: Bucket = request.getfixturevalue(CLOUDS[request.param])
    options = {**bucket.storage_options, "retries": 1}
    if request.param == "s3":  # fail fast once the emulator is stopped
        options["config_kwargs"] = {"retries": {"max_attempts": 1, "mode": "standard"}}
    reg = Registry(metadata=f"sqlite:///{tmp_path}/reg.db", artifacts=f"{bucket.url}/blobs", storage_options=options)
    yield reg, bucket
    reg.close()


def test_a_fetched_version_downloads_with_the_bucket_unreachable(cloud_registry, tmp_path: Path) -> None:
    reg, bucket = cloud_registry
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    (folder / "config.json").write_text('{"a": 1}')
    mv = reg.register("churn", folder, capture=None)
    reg.download(mv.ref, tmp_path / "first")
    other, _, _ = _blob(tmp_path, 5000)
    never = reg.register("churn", other, capture=None)  # registered, never downloaded
    server = bucket.server
    server.stop()
    try:
        seen: list[tuple[str, int, int]] = []
        out = reg.download(mv.ref, tmp_path / "offline", progress=lambda *a: seen.append(a))
        assert (out / "weights.bin").read_bytes() == (folder / "weights.bin").read_bytes()
        assert (out / "config.json").read_text() == '{"a": 1}'
        assert seen[-1] == ("download", mv.size, mv.size)
        with pytest.raises(BackendError) as err:  # not cached: needs the bucket, and says so
            reg.download(never.ref, tmp_path / "never")
        assert "check" in str(err.value) and "unreachable" in str(err.value)
        assert not (tmp_path / "never" / other.name).exists()
    finally:
        server.start()
        bucket.create()


def test_cli_cache_info_and_clear(memory_store, tmp_path: Path, capsys) -> None:
    cache = BlobCache()  # $MODELREG_CACHE_DIR, set per test by conftest
    path, data, digest = _blob(tmp_path, 4096)
    memory_store.put_file(digest, path)
    cache.fetch(digest, len(data), memory_store)
    assert cli_main(["cache", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info == {"path": str(default_cache_dir()), "blobs": 1, "bytes": 4096}
    assert cli_main(["cache", "info"]) == 0
    text = capsys.readouterr().out
    assert str(default_cache_dir()) in text and "4.0 KiB" in text
    assert cli_main(["cache", "clear"]) == 0
    assert "removed 1 blob(s), freed 4.0 KiB" in capsys.readouterr().out
    assert cache.info().blobs == 0


def test_cli_cache_clear_older_than(tmp_path: Path) -> None:
    env = {**os.environ, "MODELREG_CACHE_DIR": str(tmp_path / "c")}
    out = subprocess.run(
        [sys.executable, "-m", "modelreg", "cache", "clear", "--older-than", "30d", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"path": str(tmp_path / "c"), "removed": 0, "bytes_freed": 0}
    bad = subprocess.run(
        [sys.executable, "-m", "modelreg", "cache", "clear", "--older-than", "soon"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 2 and "invalid duration" in bad.stderr
