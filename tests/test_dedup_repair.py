"""Deduplication that repairs: registering content again replaces a stored blob that fails
verification, also one damaged in place with its size intact; and gc's count of the leftovers
of interrupted uploads it removed."""

from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from modelreg import GcReport, IntegrityError, Registry, cli
from modelreg.cache import SuspectDigests, default_cache_dir
from modelreg.stores import _cloud
from modelreg.stores.artifacts import FsspecArtifactStore
from tests.emulators import Bucket


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def damage_in_place(store: FsspecArtifactStore, digest: str, bad: bytes) -> None:
    """Overwrite the stored blob with other bytes (of the same size, for the tests below)."""
    path = store._path(digest)
    if store._local:
        os.chmod(path, 0o644)
        with open(path, "r+b") as f:
            f.write(bad)
        os.chmod(path, 0o444)
    else:
        store.fs.pipe_file(path, bad)
        store.fs.invalidate_cache()


def stored(store: FsspecArtifactStore, digest: str) -> bytes:
    with store.open(digest) as f:
        return f.read()


def flipped(data: bytes) -> bytes:
    return data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]


# -- every backend: download fails, verify reports, registering again repairs ---------------------------


def test_registering_again_repairs_a_blob_damaged_in_place(registry: Registry, tmp_path: Path) -> None:
    data = os.urandom(60_000)
    src = write(tmp_path / "src" / "model.bin", data)
    v1 = registry.register("churn", src, capture=None)
    store = registry.artifacts
    assert isinstance(store, FsspecArtifactStore)
    bad = flipped(data)
    damage_in_place(store, v1.digest, bad)
    assert store.size(v1.digest) == len(data) and stored(store, v1.digest) == bad

    with pytest.raises(IntegrityError, match=r"^churn/1: file 'model\.bin' is corrupted in the artifact store") as err:
        registry.download("churn/1", tmp_path / "out1")
    message = str(err.value)
    assert f"expected {v1.digest} ({len(data)} bytes), read sha256:{hashlib.sha256(bad).hexdigest()}" in message
    assert "run `modelreg verify` and re-register the version from a good copy" in message
    assert not (tmp_path / "out1" / "model.bin").exists()

    report = registry.verify()
    assert not report.ok
    assert [(p.kind, p.model, p.version) for p in report.problems] == [("blob", "churn", 1)]
    assert f"blob {v1.digest} is corrupted" in report.problems[0].detail

    v2 = registry.register("churn", src, capture=None)  # the advice in the message: a new version
    assert (v2.version, v2.digest) == (2, v1.digest)
    assert stored(store, v1.digest) == data  # the shared blob is repaired
    assert not store.is_suspect(v1.digest)
    for version in (1, 2):
        out = registry.download(f"churn/{version}", tmp_path / f"good{version}")
        assert out.read_bytes() == data
    assert registry.verify().ok
    assert [b.digest for b in store.iter_blobs()] == [v1.digest]


# -- remote stores: the flag survives the process -------------------------------------------------------

CLOUDS = {"s3": "s3_bucket", "gcs": "gcs_bucket", "azure": "azure_container"}


def _open(bucket: Bucket, tmp_path: Path) -> Registry:
    """A new Registry (new store objects, empty in-memory state) on the same bucket and cache folder."""
    return Registry(
        metadata=f"sqlite:///{tmp_path}/reg.db", artifacts=f"{bucket.url}/blobs", storage_options=bucket.storage_options
    )


@pytest.mark.parametrize("cloud", sorted(CLOUDS))
def test_a_new_process_repairs_after_another_one_verified(
    cloud: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    bucket: Bucket = request.getfixturevalue(CLOUDS[cloud])
    data = os.urandom(40_000)
    src = write(tmp_path / "model.bin", data)
    with _open(bucket, tmp_path) as reg:
        digest = reg.register("churn", src, capture=None).digest
        damage_in_place(reg.artifacts, digest, flipped(data))  # type: ignore[arg-type]

    with _open(bucket, tmp_path) as reg:  # `modelreg verify`
        assert [p.version for p in reg.verify().problems] == [1]
    flags = SuspectDigests(f"{reg.artifacts.protocol}://{reg.artifacts.root}")  # type: ignore[attr-defined]
    assert list(flags) == [digest]
    assert flags.folder.parent == default_cache_dir() / "suspect"

    with _open(bucket, tmp_path) as reg:  # `modelreg register` in another process
        assert reg.artifacts.is_suspect(digest)  # known from the marker on disk only
        assert not reg.artifacts.__dict__.get("_suspect_digests")
        assert reg.register("churn", src, capture=None).version == 2
        assert stored(reg.artifacts, digest) == data  # type: ignore[arg-type]
        assert list(flags) == []  # repaired: the flag is gone
        assert reg.verify().ok
        assert reg.download("churn/1", tmp_path / "out").read_bytes() == data


def test_without_a_flag_s3_reuses_a_blob_damaged_in_place(s3_bucket: Bucket, tmp_path: Path) -> None:
    """The documented limit: on S3 nothing but a flag (or a size change) reveals damage without a download."""
    data = os.urandom(30_000)
    src = write(tmp_path / "model.bin", data)
    with _open(s3_bucket, tmp_path) as reg:
        digest = reg.register("churn", src, capture=None).digest
        damage_in_place(reg.artifacts, digest, flipped(data))  # type: ignore[arg-type]
    with _open(s3_bucket, tmp_path) as reg:
        reg.register("churn", src, capture=None)
        assert stored(reg.artifacts, digest) == flipped(data)  # type: ignore[arg-type]
        assert not reg.verify().ok  # flags it ...
        reg.register("churn", src, capture=None)  # ... so this repairs
        assert stored(reg.artifacts, digest) == data  # type: ignore[arg-type]
        assert reg.verify().ok


def test_a_failed_download_flags_the_blob_for_the_next_process(s3_bucket: Bucket, tmp_path: Path) -> None:
    data = os.urandom(30_000)
    src = write(tmp_path / "model.bin", data)
    with _open(s3_bucket, tmp_path) as reg:
        digest = reg.register("churn", src, capture=None).digest
        damage_in_place(reg.artifacts, digest, flipped(data))  # type: ignore[arg-type]
        with pytest.raises(IntegrityError, match="is corrupted in the artifact store"):
            reg.download("churn/1", tmp_path / "out")  # through the local cache (BlobCache.fetch)
    with _open(s3_bucket, tmp_path) as reg:
        reg.register("churn", src, capture=None)
        assert stored(reg.artifacts, digest) == data  # type: ignore[arg-type]
        assert reg.download("churn/1", tmp_path / "out").read_bytes() == data


@pytest.mark.parametrize("cloud", ["gcs", "azure"])
def test_a_differing_service_md5_is_caught_without_a_flag(
    cloud: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GCS keeps an MD5 of every object, Azure of single-request uploads: compared for free."""
    bucket: Bucket = request.getfixturevalue(CLOUDS[cloud])
    data = os.urandom(20_000)
    src = write(tmp_path / "model.bin", data)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    FsspecArtifactStore(f"{bucket.url}/blobs", **bucket.storage_options).put_file(digest, src)
    writer = FsspecArtifactStore(f"{bucket.url}/blobs", **bucket.storage_options)
    damage_in_place(writer, digest, flipped(data))
    store = FsspecArtifactStore(f"{bucket.url}/blobs", **bucket.storage_options)
    assert not store.is_suspect(digest)
    uploads: list[str] = []
    real = _cloud.upload_file
    monkeypatch.setattr(
        _cloud,
        "upload_file",
        lambda fs, backend, local, remote, *a, **k: (uploads.append(remote), real(fs, backend, local, remote, *a, **k))[
            1
        ],
    )
    store.put_file(digest, src)
    assert stored(store, digest) == data and len(uploads) == 1
    store.fs.invalidate_cache()
    store.put_file(digest, src)  # intact now: deduplicated, not uploaded again
    assert len(uploads) == 1


# -- local store: always re-hashed ----------------------------------------------------------------------


def test_local_store_repairs_without_any_verify(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "reg")
    data = os.urandom(80_000)
    src = write(tmp_path / "model.bin", data)
    v1 = reg.register("churn", src, capture=None)
    store = reg.artifacts
    assert isinstance(store, FsspecArtifactStore)
    blob = Path(store._path(v1.digest))
    inode = blob.stat().st_ino
    reg.register("churn", src, capture=None)  # intact: reused, not rewritten
    assert blob.stat().st_ino == inode

    damage_in_place(store, v1.digest, flipped(data))
    assert blob.stat().st_size == len(data)
    reg.register("churn", src, capture=None)  # no verify, no download before
    assert blob.read_bytes() == data
    assert blob.stat().st_ino != inode  # replaced atomically (tmp + os.replace), not patched in place
    assert oct(blob.stat().st_mode & 0o777) == oct(0o444)
    assert list((tmp_path / "reg" / "blobs" / "tmp").iterdir()) == []
    for version in (1, 2, 3):
        assert reg.download(f"churn/{version}", tmp_path / f"out{version}").read_bytes() == data
    assert reg.verify().ok
    reg.close()


# -- gc: leftovers of interrupted uploads -------------------------------------------------------------


def _partial(root: Path, name: str, size: int, age: timedelta) -> Path:
    path = write(root / "blobs" / "tmp" / name, os.urandom(size))
    stamp = time.time() - age.total_seconds()
    os.utime(path, (stamp, stamp))
    return path


def test_gc_counts_the_partials_it_removed(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    with Registry(root) as reg:
        reg.register("churn", write(tmp_path / "model.bin", b"kept"), capture=None)
        old = _partial(root, "old.part", 12_345, timedelta(hours=2))
        fresh = _partial(root, "fresh.part", 700, timedelta(0))

        dry = reg.gc(grace=timedelta(0), dry_run=True)
        assert (dry.partials_removed, dry.partial_bytes_freed, dry.partials_error) == (0, 0, None)
        assert old.exists() and fresh.exists()

        report = reg.gc(grace=timedelta(hours=1))
        assert (report.partials_removed, report.partial_bytes_freed, report.partials_error) == (1, 12_345, None)
        assert not old.exists() and fresh.exists()
        assert report.kept_referenced == 1

        report = reg.gc(grace=timedelta(0))
        assert (report.partials_removed, report.partial_bytes_freed) == (1, 700)
        assert not fresh.exists()
        assert reg.gc(grace=timedelta(0)).partials_removed == 0


def test_gc_report_reads_json_written_before_the_partial_counts() -> None:
    old = {"removed": [], "bytes_freed": 0, "kept_referenced": 1, "kept_recent": 0, "dry_run": False}
    report = GcReport.model_validate(old)
    assert (report.partials_removed, report.partial_bytes_freed, report.partials_error) == (0, 0, None)
    again = GcReport.model_validate_json(report.model_dump_json())
    assert again == report


def test_gc_reports_a_partial_it_could_not_remove(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "reg"
    with Registry(root) as reg:
        reg.register("churn", write(tmp_path / "model.bin", b"kept"), capture=None)
        removable = _partial(root, "a.part", 1000, timedelta(hours=2))
        stuck = root / "blobs" / "tmp" / "stuck.part"
        stuck.mkdir()  # unlink() refuses a folder, as root too
        stamp = time.time() - 7200
        os.utime(stuck, (stamp, stamp))
        with caplog.at_level("WARNING", logger="modelreg"):
            report = reg.gc(grace=timedelta(minutes=1))
        assert not removable.exists() and stuck.exists()
        assert (report.partials_removed, report.partial_bytes_freed) == (1, 1000)  # what was removed all the same
        assert report.partials_error and "stuck.part" in report.partials_error
        assert any("could not clean up interrupted uploads" in r.getMessage() for r in caplog.records)


def test_gc_counts_aborted_s3_multipart_uploads_with_their_parts(s3_bucket: Bucket, tmp_path: Path) -> None:
    fs = s3_bucket.fs()
    key = "blobs/sha256/ab/" + "cd" * 31
    upload = fs.call_s3("create_multipart_upload", Bucket=s3_bucket.name, Key=key)
    for number, size in ((1, 5 * 1024 * 1024), (2, 1234)):
        fs.call_s3(
            "upload_part",
            Bucket=s3_bucket.name,
            Key=key,
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=os.urandom(size),
        )
    with _open(s3_bucket, tmp_path) as reg:
        # (moto reports every upload as initiated in 2010: older than any grace period)
        report = reg.gc(grace=timedelta(0))
    assert (report.partials_removed, report.partial_bytes_freed, report.partials_error) == (
        1,
        5 * 1024 * 1024 + 1234,
        None,
    )
    assert fs.call_s3("list_multipart_uploads", Bucket=s3_bucket.name).get("Uploads", []) == []


def test_cli_gc_shows_the_partials(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "reg"
    with Registry(root) as reg:
        reg.register("churn", write(tmp_path / "model.bin", b"kept"), capture=None)
    _partial(root, "old.part", 2048, timedelta(hours=2))
    assert cli.main(["--registry", str(root), "gc", "--grace", "0s", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == ["would remove 0 unreferenced blob(s), 0 B; kept 1 in use and 0 newer than 0s"]
    assert cli.main(["--registry", str(root), "gc", "--grace", "0s"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "removed 0 unreferenced blob(s), 0 B; kept 1 in use and 0 newer than 0s",
        "removed 1 interrupted upload(s), 2.0 KiB",
    ]
    assert err == ""

    _partial(root, "again.part", 100, timedelta(hours=2))
    assert cli.main(["--registry", str(root), "gc", "--grace", "0s", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["partials_removed"], report["partial_bytes_freed"], report["partials_error"]) == (1, 100, None)

    (root / "blobs" / "tmp" / "stuck.part").mkdir()
    stamp = time.time() - 7200
    os.utime(root / "blobs" / "tmp" / "stuck.part", (stamp, stamp))
    assert cli.main(["--registry", str(root), "gc", "--grace", "0s"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[1] == "removed 0 interrupted upload(s), 0 B"
    assert err.startswith("warning: could not clean up interrupted uploads: ") and "stuck.part" in err
