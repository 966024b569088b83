"""Registry-level behaviour on every registry backend (tests/backends.py), the clouds included:
register, dedup, verified download, gc, a corrupted or missing blob, progress."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from modelreg import IntegrityError, Registry
from modelreg.stores.artifacts import FsspecArtifactStore


def _store(reg: Registry) -> FsspecArtifactStore:
    assert isinstance(reg.artifacts, FsspecArtifactStore), "these tests damage blobs through the fsspec filesystem"
    return reg.artifacts


def _overwrite_blob(reg: Registry, digest: str, data: bytes) -> None:
    """Replace a stored blob's bytes behind the registry's back (a corrupted object)."""
    store = _store(reg)
    path = store._path(digest)
    store.fs.rm_file(path)  # local blobs are read-only files; removing then writing works everywhere
    store.fs.pipe_file(path, data)
    store.fs.invalidate_cache()


def test_register_and_download_a_file(registry: Registry, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 11)
    src = tmp_path / "model.bin"
    src.write_bytes(data)
    mv = registry.register("churn", src, metrics={"auc": 0.91}, capture=None)
    assert mv.version == 1 and mv.size == len(data)
    assert registry.artifacts.exists(mv.digest)
    out = registry.download("churn/1", tmp_path / "out")
    assert out == tmp_path / "out" / "model.bin"
    assert out.read_bytes() == data
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".modelreg-")]


def test_register_and_download_a_folder(registry: Registry, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "weights").mkdir(parents=True)
    files = {"config.json": b'{"layers": 3}', "weights/a.bin": os.urandom(200_000), "weights/empty.bin": b""}
    for rel, data in files.items():
        (folder / rel).write_bytes(data)
    mv = registry.register("vision/resnet", folder, capture=None)
    assert mv.artifact.kind == "directory" and len(mv.artifact.files) == 3
    out = registry.download(mv.ref, tmp_path / "dl")
    for rel, data in files.items():
        assert (out / rel).read_bytes() == data


def test_identical_content_is_stored_once(registry: Registry, tmp_path: Path) -> None:
    data = os.urandom(500_000)
    (tmp_path / "a.bin").write_bytes(data)
    (tmp_path / "b.bin").write_bytes(data)
    v1 = registry.register("churn", tmp_path / "a.bin", capture=None)
    v2 = registry.register("churn", tmp_path / "b.bin", capture=None)
    v3 = registry.register("other", tmp_path / "a.bin", capture=None)
    assert v1.digest == v2.digest == v3.digest
    blobs = [b for b in registry.artifacts.iter_blobs() if b.digest == v1.digest]
    assert len(blobs) == 1 and blobs[0].size == len(data)


def test_dedup_uploads_nothing_the_second_time(registry: Registry, tmp_path: Path, monkeypatch) -> None:
    src = tmp_path / "m.bin"
    src.write_bytes(os.urandom(300_000))
    registry.register("churn", src, capture=None)
    from modelreg.stores import _cloud, artifacts

    calls: list[str] = []
    real_upload, real_copy = _cloud.upload_file, artifacts._copy_fd

    def spy_upload(fs, backend, source, final, *a, **kw):
        calls.append(final)
        return real_upload(fs, backend, source, final, *a, **kw)

    def spy_copy(*a, **kw):
        calls.append("local copy")
        return real_copy(*a, **kw)

    monkeypatch.setattr(_cloud, "upload_file", spy_upload)
    monkeypatch.setattr(artifacts, "_copy_fd", spy_copy)
    seen: list[tuple[str, int, int]] = []
    mv = registry.register("churn", src, capture=None, progress=lambda *a: seen.append(a))
    assert mv.version == 2
    assert calls == []  # the store saw the blob (right size) and uploaded nothing
    other = tmp_path / "n.bin"
    other.write_bytes(os.urandom(1000))
    registry.register("churn", other, capture=None)
    assert len(calls) == 1  # new content does go through the spied upload path
    assert ("upload", mv.size, mv.size) in seen


def test_download_verifies_and_a_corrupted_blob_is_reported(registry: Registry, tmp_path: Path) -> None:
    data = os.urandom(400_000)
    src = tmp_path / "model.bin"
    src.write_bytes(data)
    mv = registry.register("churn", src, capture=None)
    _overwrite_blob(registry, mv.digest, b"tampered" + data[8:])
    with pytest.raises(IntegrityError, match=r"churn/1.*model\.bin.*corrupted"):
        registry.download("churn/1", tmp_path / "out")
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == []
    report = registry.verify()
    assert not report.ok
    assert any(p.kind == "blob" and p.version == 1 and "corrupted" in p.detail for p in report.problems)
    cache = getattr(registry, "cache", None)
    if cache is not None:
        assert cache.info().blobs == 0  # corrupted content never enters the cache


def test_a_truncated_blob_is_reported(registry: Registry, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    src = tmp_path / "model.bin"
    src.write_bytes(data)
    mv = registry.register("churn", src, capture=None)
    _overwrite_blob(registry, mv.digest, data[:1000])
    with pytest.raises(IntegrityError, match="corrupted"):
        registry.download("churn/1", tmp_path / "out")


def test_a_missing_blob_is_reported(registry: Registry, tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(os.urandom(1000))
    mv = registry.register("churn", src, capture=None)
    registry.artifacts.delete(mv.digest)
    with pytest.raises(IntegrityError, match="missing"):
        registry.download("churn/1", tmp_path / "out")
    report = registry.verify()
    assert any(p.kind == "blob" and "missing" in p.detail for p in report.problems)


def test_gc_removes_only_unreferenced_blobs(registry: Registry, tmp_path: Path) -> None:
    (tmp_path / "keep.bin").write_bytes(b"keep" * 1000)
    (tmp_path / "drop.bin").write_bytes(b"drop" * 1000)
    keep = registry.register("churn", tmp_path / "keep.bin", capture=None)
    drop = registry.register("churn", tmp_path / "drop.bin", capture=None)
    registry.purge("churn/2")
    recent = registry.gc()  # default grace period protects fresh blobs
    assert drop.digest not in recent.removed
    dry = registry.gc(grace=timedelta(0), dry_run=True)
    assert dry.removed == [drop.digest] and registry.artifacts.exists(drop.digest)
    report = registry.gc(grace=timedelta(0))
    assert report.removed == [drop.digest] and report.bytes_freed == drop.size
    assert not registry.artifacts.exists(drop.digest)
    assert registry.artifacts.exists(keep.digest)
    assert registry.download("churn/1", tmp_path / "out").read_bytes() == b"keep" * 1000


def test_progress_is_reported_for_upload_and_download(registry: Registry, tmp_path: Path) -> None:
    data = os.urandom(5 * 1024 * 1024 + 3)
    src = tmp_path / "model.bin"
    src.write_bytes(data)
    seen: list[tuple[str, int, int]] = []
    mv = registry.register("churn", src, capture=None, progress=lambda *a: seen.append(a))
    for phase in ("hash", "upload"):
        events = [e for e in seen if e[0] == phase]
        assert events and events[-1] == (phase, len(data), len(data))
        dones = [e[1] for e in events]
        assert dones == sorted(dones)
    seen.clear()
    registry.download(mv.ref, tmp_path / "out", progress=lambda *a: seen.append(a))
    downloads = [e for e in seen if e[0] == "download"]
    assert downloads and downloads[-1] == ("download", len(data), len(data))
    assert [e[1] for e in downloads] == sorted(e[1] for e in downloads)
