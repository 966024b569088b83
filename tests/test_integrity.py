"""Downloads re-hash every byte: a corrupted, truncated or missing blob raises IntegrityError
naming the file and leaves nothing at the destination; ``verify()`` reports each damaged file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from modelreg import AlreadyExistsError, IntegrityError, Registry
from tests.helpers import (
    assert_verified,
    blob_path,
    make_folder,
    make_writable,
    tree,
    write,
)


def flip_byte(path: Path, offset: int = 0) -> None:
    make_writable(path)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    make_writable(path)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)


def remove(path: Path) -> None:
    path.unlink()


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "corrupted": (
        flip_byte,
        r"is corrupted in the artifact store: expected sha256:[0-9a-f]{64} \((\d+) bytes\), read sha256:[0-9a-f]{64} "
        r"\(\1 bytes\)",
    ),
    "truncated": (
        truncate,
        r"is corrupted in the artifact store: expected sha256:[0-9a-f]{64} \(\d+ bytes\), read sha256:[0-9a-f]{64} "
        r"\(\d+ bytes\)",
    ),
    "missing": (remove, r"is missing from the artifact store"),
}


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    registry = Registry(tmp_path / "reg")
    yield registry
    registry.close()


def root_of(reg: Registry) -> Path:
    return Path(reg.uri)


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_download_of_a_damaged_file_fails_and_leaves_nothing(reg: Registry, tmp_path: Path, kind: str) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    mv = reg.register("churn", write(tmp_path / "src" / "model.onnx", data), capture=None)
    damage, message = DAMAGE[kind]
    damage(blob_path(root_of(reg), mv.digest))
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(IntegrityError, match=rf"^churn/1: file 'model\.onnx' {message}") as info:
        reg.download("churn/1", dest)
    assert "run `modelreg verify`" in str(info.value)
    assert list(dest.iterdir()) == []  # no partial file, no staging folder


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_download_of_a_folder_with_one_damaged_file(reg: Registry, tmp_path: Path, kind: str) -> None:
    files = {"a_first.bin": os.urandom(100_000), "sub/z_last.bin": os.urandom(200_000), "sub/zz.txt": b"after"}
    mv = reg.register("ranker", make_folder(tmp_path / "src" / "saved_model", files), capture=None)
    damaged = next(f for f in mv.artifact.files if f.path == "sub/z_last.bin")
    damage, message = DAMAGE[kind]
    damage(blob_path(root_of(reg), damaged.digest))
    dest = tmp_path / "out" / "models"
    with pytest.raises(IntegrityError, match=rf"^ranker/1: file 'sub/z_last\.bin' {message}"):
        reg.download("ranker/1", dest)
    # a_first.bin was fetched and verified before the failure: it is gone too, and so are the
    # destination folders the download created
    assert not (tmp_path / "out").exists()


def test_a_failed_download_with_overwrite_keeps_the_existing_copy(reg: Registry, tmp_path: Path) -> None:
    reg.register("churn", write(tmp_path / "src" / "model.bin", b"version one"), capture=None)
    mv2 = reg.register("churn", write(tmp_path / "src" / "model.bin", b"version two"), capture=None)
    dest = tmp_path / "out"
    reg.download("churn/1", dest)
    flip_byte(blob_path(root_of(reg), mv2.digest))
    with pytest.raises(IntegrityError, match=r"churn/2: file 'model\.bin' is corrupted"):
        reg.download("churn/2", dest, overwrite=True)
    assert tree(dest) == {"model.bin": b"version one"}


def test_download_refuses_an_existing_target_unless_overwrite(reg: Registry, tmp_path: Path) -> None:
    reg.register("churn", write(tmp_path / "src" / "model.bin", b"new weights"), capture=None)
    folder = reg.register("ranker", make_folder(tmp_path / "src" / "saved", {"a": b"1", "b/c": b"2"}), capture=None)
    dest = tmp_path / "out"
    write(dest / "model.bin", b"my local edits")
    make_folder(dest / "saved", {"stale.txt": b"old"})
    with pytest.raises(
        AlreadyExistsError, match=r"'.*model\.bin' exists already; pass overwrite=True or pick another folder$"
    ) as info:
        reg.download("churn/1", dest)
    assert info.value.remedy is not None and info.value.remedy.cli == "pass --overwrite or pick another folder"
    assert info.value.render("cli").endswith("' exists already; pass --overwrite or pick another folder")
    with pytest.raises(AlreadyExistsError, match="saved' exists already"):
        reg.download(folder.ref, dest)
    assert tree(dest) == {"model.bin": b"my local edits", "saved/stale.txt": b"old"}
    assert reg.download("churn/1", dest, overwrite=True) == dest / "model.bin"
    assert reg.download(folder.ref, dest, overwrite=True) == dest / "saved"
    assert tree(dest) == {"model.bin": b"new weights", "saved/a": b"1", "saved/b/c": b"2"}


def test_download_round_trip_and_progress(reg: Registry, tmp_path: Path) -> None:
    data = os.urandom(9 * 1024 * 1024)  # more than one 8 MiB chunk
    mv = reg.register("churn", write(tmp_path / "src" / "model.bin", data), capture=None)
    seen: list[tuple[str, int, int]] = []
    out = reg.download("churn", tmp_path / "out", progress=lambda *a: seen.append(a))
    assert out.read_bytes() == data
    assert seen[-1] == ("download", mv.size, mv.size)
    assert all(phase == "download" for phase, _, _ in seen)
    assert [done for _, done, _ in seen] == sorted(done for _, done, _ in seen)


def test_verify_names_every_damaged_file(reg: Registry, tmp_path: Path) -> None:
    root = root_of(reg)
    good = reg.register("churn", write(tmp_path / "src" / "good.bin", b"fine"), capture=None)
    damaged = {}
    for kind in ("corrupted", "truncated", "missing"):
        damaged[kind] = reg.register(
            "churn", write(tmp_path / "src" / f"{kind}.bin", f"{kind} weights" * 100), capture=None
        )
    folder = reg.register(
        "ranker", make_folder(tmp_path / "src" / "dir", {"ok.txt": b"ok", "w/broken.bin": b"weights"}), capture=None
    )
    shared = reg.register("fraud", tmp_path / "src" / "corrupted.bin", capture=None)  # same blob as churn/2
    assert_verified(reg)

    flip_byte(blob_path(root, damaged["corrupted"].digest), 5)
    truncate(blob_path(root, damaged["truncated"].digest))
    remove(blob_path(root, damaged["missing"].digest))
    broken = next(f for f in folder.artifact.files if f.path == "w/broken.bin")
    flip_byte(blob_path(root, broken.digest))

    report = reg.verify()
    assert not report.ok and report.models_checked == 3
    found = {(p.kind, p.model, p.version): p.detail for p in report.problems}
    assert set(found) == {
        ("blob", "churn", 2),
        ("blob", "churn", 3),
        ("blob", "churn", 4),
        ("blob", "ranker", 1),
        ("blob", "fraud", 1),
    }
    assert found[("blob", "churn", 2)].startswith("churn/2: file 'corrupted.bin': blob sha256:")
    assert "is corrupted (now sha256:" in found[("blob", "churn", 2)]
    full = len("truncated weights" * 100)
    assert f", {full // 2} bytes; expected {full} bytes)" in found[("blob", "churn", 3)]
    assert found[("blob", "churn", 4)] == f"churn/4: file 'missing.bin': blob {damaged['missing'].digest} is missing"
    assert found[("blob", "ranker", 1)].startswith("ranker/1: file 'w/broken.bin':")
    assert found[("blob", "fraud", 1)].startswith("fraud/1: file 'corrupted.bin':")
    assert shared.digest == damaged["corrupted"].digest
    assert reg.verify("churn").models_checked == 1 and len(reg.verify("churn").problems) == 3
    # the undamaged versions still download
    assert reg.download(good.ref, tmp_path / "out").read_bytes() == b"fine"
    # metadata-only verification skips the blobs
    assert reg.verify(blobs=False).ok


def test_verify_counts_what_it_checked(reg: Registry, tmp_path: Path) -> None:
    reg.register("churn", write(tmp_path / "a.bin", b"a" * 10), capture=None)
    reg.register("churn", write(tmp_path / "a.bin", b"a" * 10), capture=None)  # same blob
    reg.register("churn", write(tmp_path / "b.bin", b"b" * 5), capture=None)
    report = reg.verify()
    assert report.ok and report.problems == []
    assert (report.models_checked, report.blobs_checked, report.bytes_checked, report.events_checked) == (1, 2, 15, 4)


def test_damage_is_detected_on_every_backend(registry: Registry, tmp_path: Path) -> None:
    """Damage made through the store API (stores do not re-hash on upload): every backend's
    download and verify catch it."""
    data = {name: os.urandom(50_000) for name in ("corrupted", "truncated", "missing")}
    mvs = {
        name: registry.register(name, write(tmp_path / "src" / name / "model.bin", d), capture=None)
        for name, d in data.items()
    }
    store = registry.artifacts
    for name, replacement in (
        ("corrupted", bytes([data["corrupted"][0] ^ 1]) + data["corrupted"][1:]),
        ("truncated", data["truncated"][:1000]),
        ("missing", None),
    ):
        store.delete(mvs[name].digest)
        if replacement is not None:
            store.put_bytes(mvs[name].digest, replacement)
    dest = tmp_path / "out"
    dest.mkdir()
    for name, message in (
        ("corrupted", "is corrupted in the artifact store"),
        ("truncated", r"\(50000 bytes\), read sha256:[0-9a-f]{64} \(1000 bytes\)"),
        ("missing", "is missing from the artifact store"),
    ):
        with pytest.raises(IntegrityError, match=rf"^{name}/1: file 'model\.bin' .*{message}"):
            registry.download(f"{name}/1", dest)
        assert list(dest.iterdir()) == []
    report = registry.verify()
    assert sorted((p.kind, p.model, p.version) for p in report.problems) == [
        ("blob", "corrupted", 1),
        ("blob", "missing", 1),
        ("blob", "truncated", 1),
    ]
