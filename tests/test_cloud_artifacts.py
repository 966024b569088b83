"""FsspecArtifactStore on S3 (moto), GCS (fake-gcs-server) and Azure Blob (Azurite):
multipart transfers, transfer knobs, dedup, error translation, existing cloud configuration."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from modelreg import BackendError, BlobNotFound, InvalidInputError, Registry
from modelreg.stores import _cloud
from modelreg.stores._cloud import DEFAULTS, FileSlice, MiB, TransferConfig, part_size
from modelreg.stores.artifacts import FsspecArtifactStore
from tests.emulators import AZURITE_ACCOUNT, AZURITE_KEY, Bucket, unique_name

CLOUDS = {"s3": "s3_bucket", "gcs": "gcs_bucket", "azure": "azure_container"}


@pytest.fixture(params=sorted(CLOUDS))
def cloud(request: pytest.FixtureRequest) -> Bucket:
    return request.getfixturevalue(CLOUDS[request.param])


def _file(tmp_path: Path, size: int, name: str = "src.bin") -> tuple[Path, bytes, str]:
    data = os.urandom(size)
    path = tmp_path / name
    path.write_bytes(data)
    return path, data, "sha256:" + hashlib.sha256(data).hexdigest()


# -- transfers --------------------------------------------------------------------------------


def test_multipart_upload_in_parts(cloud: Bucket, tmp_path: Path) -> None:
    """13 MiB in 5 MiB parts, 3 in flight: the object reads back byte for byte, progress climbs to the total."""
    path, data, digest = _file(tmp_path, 13 * MiB + 17)
    store = FsspecArtifactStore(f"{cloud.url}/blobs", chunk_size=5 * MiB, concurrency=3, **cloud.storage_options)
    seen: list[tuple[str, int, int]] = []
    store.put_file(digest, path, progress=lambda *a: seen.append(a))
    assert seen[-1] == ("upload", len(data), len(data))
    assert len(seen) >= 3 and all(e[0] == "upload" and e[2] == len(data) for e in seen)
    assert [e[1] for e in seen] == sorted(e[1] for e in seen)
    assert store.size(digest) == len(data)
    with store.open(digest) as f:
        assert hashlib.sha256(f.read()).hexdigest() == digest[7:]
    assert [b.digest for b in store.iter_blobs()] == [digest]


def test_get_file_streams_to_disk_with_progress(cloud: Bucket, tmp_path: Path, monkeypatch) -> None:
    path, data, digest = _file(tmp_path, 3 * MiB + 5)
    store = FsspecArtifactStore(f"{cloud.url}/blobs", chunk_size=MiB, **cloud.storage_options)
    store.put_file(digest, path)
    used: list[str] = []
    real = _cloud.download_file
    monkeypatch.setattr(
        _cloud, "download_file", lambda fs, backend, *a, **k: (used.append(backend), real(fs, backend, *a, **k))[1]
    )
    out = tmp_path / "out.bin"
    seen: list[tuple[str, int, int]] = []
    store.get_file(digest, out, progress=lambda *a: seen.append(a))
    assert out.read_bytes() == data
    assert used == [store.backend]  # the backend's streaming download, not a read loop over open()
    assert seen[-1] == ("download", len(data), len(data))
    assert [e[1] for e in seen] == sorted(e[1] for e in seen)
    with pytest.raises(BlobNotFound):
        store.get_file("sha256:" + "0" * 64, tmp_path / "missing.bin")


def test_put_skips_a_blob_already_stored(cloud: Bucket, tmp_path: Path, monkeypatch) -> None:
    path, data, digest = _file(tmp_path, 2 * MiB)
    uploads: list[str] = []
    real = _cloud.upload_file
    monkeypatch.setattr(
        _cloud,
        "upload_file",
        lambda fs, backend, local, remote, *a, **k: (uploads.append(remote), real(fs, backend, local, remote, *a, **k))[
            1
        ],
    )
    store = FsspecArtifactStore(f"{cloud.url}/blobs", **cloud.storage_options)
    store.put_file(digest, path)
    store.put_file(digest, path)
    other = FsspecArtifactStore(f"{cloud.url}/blobs", **cloud.storage_options)  # e.g. another machine
    seen: list[tuple[str, int, int]] = []
    other.put_file(digest, path, progress=lambda *a: seen.append(a))
    assert len(uploads) == 1
    assert seen == [("upload", len(data), len(data))]


def test_put_replaces_a_damaged_object(cloud: Bucket, tmp_path: Path) -> None:
    path, data, digest = _file(tmp_path, 100_000)
    store = FsspecArtifactStore(f"{cloud.url}/blobs", **cloud.storage_options)
    store.fs.pipe_file(store._path(digest), b"truncated")
    store.put_file(digest, path)
    with store.open(digest) as f:
        assert f.read() == data


def test_an_upload_of_the_same_blob_from_two_threads(cloud: Bucket, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path, data, digest = _file(tmp_path, 6 * MiB)
    stores = [FsspecArtifactStore(f"{cloud.url}/blobs", chunk_size=5 * MiB, **cloud.storage_options) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda s: s.put_file(digest, path), stores))
    with stores[0].open(digest) as f:
        assert f.read() == data


def test_transfer_knobs_are_explicit_per_backend(cloud: Bucket) -> None:
    store = FsspecArtifactStore(f"{cloud.url}/blobs", **cloud.storage_options)
    assert store.transfer == DEFAULTS[store.backend]
    tuned = FsspecArtifactStore(
        f"{cloud.url}/blobs",
        chunk_size=32 * MiB,
        concurrency=2,
        retries=7,
        backoff=0.1,
        backoff_max=3,
        **cloud.storage_options,
    )
    assert tuned.transfer == TransferConfig(chunk_size=32 * MiB, concurrency=2, retries=7, backoff=0.1, backoff_max=3)
    via_registry = Registry(
        metadata="sqlite:///" + str(Path(os.environ["MODELREG_HOME"]) / "r.db"),
        artifacts=f"{cloud.url}/blobs",
        storage_options={**cloud.storage_options, "chunk_size": 8 * MiB, "concurrency": 6},
    )
    assert via_registry.artifacts.transfer.chunk_size == 8 * MiB
    assert via_registry.artifacts.transfer.concurrency == 6
    via_registry.close()


@pytest.mark.parametrize(
    "bad",
    [
        {"chunk_size": 1000},
        {"concurrency": 0},
        {"retries": 0},
        {"backoff": -1},
        {"chunk_size": "8MiB"},
        {"concurrency": True},
    ],
)
def test_invalid_transfer_knobs_are_rejected(bad: dict) -> None:
    with pytest.raises(InvalidInputError, match=next(iter(bad))):
        FsspecArtifactStore("memory://blobs", **bad)


def test_part_sizes_stay_within_service_limits() -> None:
    config = TransferConfig(chunk_size=MiB)
    assert part_size(100 * MiB, config, "s3") == 5 * MiB  # S3 parts are at least 5 MiB
    huge = 200 * 1024**3
    assert part_size(huge, config, "s3") * 10_000 >= huge  # at most 10,000 parts
    assert part_size(huge, config, "azure") * 50_000 >= huge  # at most 50,000 blocks
    assert part_size(10 * MiB, TransferConfig(chunk_size=300 * 1024), "gcs") % (256 * 1024) == 0


def test_file_slice_streams_a_window_of_a_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(256)) * 4)
    with FileSlice(str(path), 10, 100) as s:
        assert len(s) == 100 and s.seek(0, os.SEEK_END) == 100 and s.tell() == 100
        s.seek(0)
        assert s.read(5) == bytes(range(10, 15))
        assert s.read() == (bytes(range(256)) * 4)[15:110]
        assert s.read() == b""
        s.seek(0)
        buf = bytearray(300)
        assert s.readinto(buf) == 100
        with pytest.raises(OSError):
            s.fileno()  # no fileno: HTTP clients must not size the body from the whole file


# -- errors --------------------------------------------------------------------------------------------


def test_a_missing_bucket_is_named_with_what_to_check(cloud: Bucket, tmp_path: Path) -> None:
    path, _, digest = _file(tmp_path, 1000)
    missing = unique_name("absent")
    scheme = cloud.url.split("://")[0]
    store = FsspecArtifactStore(f"{scheme}://{missing}/blobs", retries=1, **cloud.storage_options)
    with pytest.raises(BackendError) as err:
        store.put_file(digest, path)
    text = str(err.value)
    assert missing in text and digest in text
    assert {"s3": "s3", "gs": "gcs", "az": "azure"}[scheme] in text
    assert "check" in text and ("bucket" in text or "container" in text)
    with pytest.raises((BlobNotFound, BackendError)):
        store.open(digest)


def test_a_missing_blob_raises_blob_not_found(cloud: Bucket) -> None:
    store = FsspecArtifactStore(f"{cloud.url}/blobs", **cloud.storage_options)
    digest = "sha256:" + "ab" * 32
    assert not store.exists(digest)
    with pytest.raises(BlobNotFound, match="verify"):
        store.open(digest)
    with pytest.raises(BlobNotFound):
        store.size(digest)
    store.delete(digest)  # absent is fine


def test_wrong_azure_key_is_access_denied_and_the_key_is_not_shown(azure_container: Bucket, tmp_path: Path) -> None:
    path, _, digest = _file(tmp_path, 1000)
    wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=" * 2
    conn = azure_container.storage_options["connection_string"].replace(AZURITE_KEY, wrong)
    store = FsspecArtifactStore(
        f"{azure_container.url}/blobs", account_name=AZURITE_ACCOUNT, connection_string=conn, retries=1
    )
    with pytest.raises(BackendError) as err:
        store.put_file(digest, path)
    text = str(err.value)
    assert "access denied" in text and "azure" in text and "connection_string" in text
    assert wrong not in text and wrong not in repr(err.value)


def test_translate_classifies_sdk_errors() -> None:
    import botocore.exceptions

    def client_error(code: str, status: int) -> Exception:
        return botocore.exceptions.ClientError(
            {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject"
        )

    def msg(exc: Exception, action: str = "upload") -> str:
        return str(_cloud.translate(exc, backend="s3", location="s3://b/x", action=action, obj="blob sha256:1"))

    assert "access denied" in msg(client_error("AccessDenied", 403)) and "s3:PutObject" in msg(
        client_error("AccessDenied", 403)
    )
    assert "does not exist" in msg(client_error("NoSuchBucket", 404))
    assert "unreachable" in msg(client_error("SlowDown", 503))
    assert isinstance(
        _cloud.translate(
            client_error("NoSuchKey", 404), backend="s3", location="s3://b/x", action="read", obj="blob sha256:1"
        ),
        BlobNotFound,
    )
    assert _cloud.is_transient(client_error("SlowDown", 503))
    assert _cloud.is_transient(client_error("InternalError", 500))
    assert _cloud.is_transient(ConnectionResetError(104, "Connection reset by peer"))
    assert _cloud.is_transient(botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"))
    assert not _cloud.is_transient(client_error("AccessDenied", 403))
    assert not _cloud.is_transient(FileNotFoundError("x"))
    wrapped = OSError("wrapped")
    wrapped.__cause__ = client_error("Throttling", 400)
    assert _cloud.is_transient(wrapped)


# -- configuration a cloud user already has -----------------------------------------------------------


def test_aws_endpoint_url_and_credentials_from_the_environment(s3_bucket: Bucket, tmp_path: Path, monkeypatch) -> None:
    for var in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_bucket.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    path, data, _ = _file(tmp_path, 300_000)
    with Registry(metadata=f"sqlite:///{tmp_path}/reg.db", artifacts=f"{s3_bucket.url}/blobs") as reg:
        mv = reg.register("churn", path, capture=None)
        assert reg.download(mv.ref, tmp_path / "out").read_bytes() == data
    # the object is really in the moto bucket
    assert s3_bucket.fs().exists(f"{s3_bucket.name}/blobs/sha256/{mv.digest[7:9]}/{mv.digest[9:]}")


def test_an_aws_profile_with_its_endpoint(s3_bucket: Bucket, tmp_path: Path, monkeypatch) -> None:
    for var in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "config").write_text(
        f"[profile modelreg-test]\nregion = us-east-1\nendpoint_url = {s3_bucket.endpoint}\n"
    )
    (tmp_path / "credentials").write_text(
        "[modelreg-test]\naws_access_key_id = profile-key\naws_secret_access_key = profile-secret\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_PROFILE", "modelreg-test")
    path, data, _ = _file(tmp_path, 1000)
    with Registry(metadata=f"sqlite:///{tmp_path}/reg.db", artifacts=f"{s3_bucket.url}/blobs") as reg:
        mv = reg.register("churn", path, capture=None)
        assert reg.download(mv.ref, tmp_path / "out").read_bytes() == data


def test_storage_emulator_host_for_gcs(gcs_bucket: Bucket, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_bucket.endpoint)
    path, data, _ = _file(tmp_path, 1000)
    options = {"token": "anon", "project": "modelreg-test"}  # no endpoint_url: taken from the environment
    with Registry(
        metadata=f"sqlite:///{tmp_path}/reg.db", artifacts=f"{gcs_bucket.url}/blobs", storage_options=options
    ) as reg:
        mv = reg.register("churn", path, capture=None)
        assert reg.download(mv.ref, tmp_path / "out").read_bytes() == data


def test_azure_connection_string_from_the_environment(azure_container: Bucket, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure_container.storage_options["connection_string"])
    path, data, _ = _file(tmp_path, 1000)
    with Registry(metadata=f"sqlite:///{tmp_path}/reg.db", artifacts=f"{azure_container.url}/blobs") as reg:
        mv = reg.register("churn", path, capture=None)
        assert reg.download(mv.ref, tmp_path / "out").read_bytes() == data


def test_gc_aborts_stale_s3_multipart_uploads(s3_bucket: Bucket, tmp_path: Path) -> None:
    """An interrupted process cannot abort its multipart upload; gc does, after the grace period."""
    from datetime import timedelta

    fs = s3_bucket.fs()
    key = "blobs/sha256/ab/" + "cd" * 31
    fs.call_s3("create_multipart_upload", Bucket=s3_bucket.name, Key=key)
    fs.call_s3("create_multipart_upload", Bucket=s3_bucket.name, Key="elsewhere/not-ours")
    with Registry(
        metadata=f"sqlite:///{tmp_path}/reg.db",
        artifacts=f"{s3_bucket.url}/blobs",
        storage_options=s3_bucket.storage_options,
    ) as reg:
        # (moto reports every upload as initiated in 2010, so the grace period itself is not observable here)
        reg.gc(grace=timedelta(0))
    left = [u["Key"] for u in fs.call_s3("list_multipart_uploads", Bucket=s3_bucket.name).get("Uploads", [])]
    assert left == ["elsewhere/not-ours"]


def test_touch_refreshes_the_modification_time(cloud: Bucket, tmp_path: Path) -> None:
    """Registering content that is already stored refreshes the blob's time, so gc's grace period protects it."""
    import time

    path, data, digest = _file(tmp_path, 10_000)
    store = FsspecArtifactStore(f"{cloud.url}/blobs", **cloud.storage_options)
    store.put_file(digest, path)
    before = next(b.modified for b in store.iter_blobs() if b.digest == digest)
    time.sleep(1.1)  # object stores keep times to the second
    store.touch(digest)
    after = next(b.modified for b in store.iter_blobs() if b.digest == digest)
    assert before is not None and after is not None and after > before
    with store.open(digest) as f:
        assert f.read() == data


def test_a_registration_on_s3_costs_six_requests_or_fewer(s3_bucket: Bucket, tmp_path: Path) -> None:
    """Counted at the HTTP layer (botocore's before-send): a new blob is looked up once (a HEAD,
    no listing) and uploaded once; the metadata is swapped once and its event written once."""
    reg = Registry(s3_bucket.url, storage_options=s3_bucket.storage_options)
    first, _, _ = _file(tmp_path, 4096, "first.bin")
    reg.register("churn", first, capture=None)
    sent: list[tuple[str, str]] = []
    for fs in {id(reg.metadata.fs): reg.metadata.fs, id(reg.artifacts.fs): reg.artifacts.fs}.values():
        fs.s3.meta.events.register("before-send.s3", lambda request, **_: sent.append((request.method, request.url)))
    path, data, digest = _file(tmp_path, 4096)
    mv = reg.register("churn", path, capture=None)
    blobs = [(m, u) for m, u in sent if "/blobs/" in u]
    metadata = [(m, u) for m, u in sent if "/blobs/" not in u]
    assert [m for m, _ in blobs] == ["HEAD", "PUT"], blobs
    assert [m for m, _ in metadata] == ["PUT", "PUT"], metadata  # the state's compare-and-swap, the event
    assert len(sent) <= 6
    assert mv.version == 2 and reg.get_version("churn/2").digest == digest
    with reg.artifacts.open(digest) as f:
        assert f.read() == data
