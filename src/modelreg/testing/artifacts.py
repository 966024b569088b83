"""The ``ArtifactStore`` contract as tests. Provide an ``artifact_store`` fixture."""

from __future__ import annotations

import hashlib
import io
import os
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pytest

from ..errors import BlobNotFound, InvalidInputError
from ..stores.base import ArtifactStore, PartialUpload

if TYPE_CHECKING:
    from pathlib import Path


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ArtifactStoreConformance:
    """Behaviour every ArtifactStore must show. Needs an `artifact_store` fixture: a fresh, empty store."""

    def _put(self, store: ArtifactStore, data: bytes, tmp_path: Path) -> str:
        digest = _digest(data)
        path = tmp_path / f"src-{digest[7:15]}.bin"
        path.write_bytes(data)
        store.put_file(digest, path)
        return digest

    def test_put_then_read_back(self, artifact_store: ArtifactStore, tmp_path: Path) -> None:
        data = os.urandom(100_000)
        digest = self._put(artifact_store, data, tmp_path)
        assert artifact_store.exists(digest)
        assert artifact_store.size(digest) == len(data)
        with artifact_store.open(digest) as f:
            assert f.read() == data

    def test_missing_blob(self, artifact_store: ArtifactStore) -> None:
        digest = _digest(b"never stored")
        assert not artifact_store.exists(digest)
        with pytest.raises(BlobNotFound, match="missing"):
            artifact_store.open(digest)
        with pytest.raises(BlobNotFound):
            artifact_store.size(digest)

    def test_put_bytes(self, artifact_store: ArtifactStore) -> None:
        data = b'{"manifest": true}'
        digest = _digest(data)
        artifact_store.put_bytes(digest, data)
        with artifact_store.open(digest) as f:
            assert f.read() == data

    def test_put_is_idempotent(self, artifact_store: ArtifactStore, tmp_path: Path) -> None:
        data = b"same content" * 1000
        d1 = self._put(artifact_store, data, tmp_path)
        d2 = self._put(artifact_store, data, tmp_path)
        assert d1 == d2
        assert [b.digest for b in artifact_store.iter_blobs()].count(d1) == 1

    def test_empty_blob(self, artifact_store: ArtifactStore, tmp_path: Path) -> None:
        digest = self._put(artifact_store, b"", tmp_path)
        assert artifact_store.exists(digest)
        assert artifact_store.size(digest) == 0
        with artifact_store.open(digest) as f:
            assert f.read() == b""

    def test_get_file_streams_to_disk(self, artifact_store: ArtifactStore, tmp_path: Path) -> None:
        data = os.urandom(3 * 1024 * 1024 + 17)
        digest = self._put(artifact_store, data, tmp_path)
        seen: list[tuple[str, int, int]] = []
        out = tmp_path / "out.bin"
        artifact_store.get_file(digest, out, progress=lambda phase, done, total: seen.append((phase, done, total)))
        assert out.read_bytes() == data
        assert seen and seen[-1] == ("download", len(data), len(data))

    def test_put_reports_progress(self, artifact_store: ArtifactStore, tmp_path: Path) -> None:
        data = os.urandom(2 * 1024 * 1024)
        digest = _digest(data)
        path = tmp_path / "p.bin"
        path.write_bytes(data)
        seen: list[tuple[str, int, int]] = []
        artifact_store.put_file(digest, path, progress=lambda phase, done, total: seen.append((phase, done, total)))
        assert seen and seen[-1] == ("upload", len(data), len(data))

    # -- put_file_hashed: store a file and tell its digest ------------------------------------------
    def test_put_file_hashed_returns_the_digest_of_what_it_stored(
        self, artifact_store: ArtifactStore, tmp_path: Path
    ) -> None:
        data = os.urandom(3 * 1024 * 1024 + 17)  # not a multiple of any power-of-two chunk
        path = tmp_path / "h.bin"
        path.write_bytes(data)
        seen: list[tuple[str, int, int]] = []
        stored = artifact_store.put_file_hashed(path, progress=lambda *call: seen.append(call))
        assert (stored.digest, stored.size, stored.created) == (_digest(data), len(data), True)
        assert seen and seen[-1] == ("upload", len(data), len(data))
        with artifact_store.open(stored.digest) as f:
            assert f.read() == data
        again = artifact_store.put_file_hashed(path)  # deduplicated: the same blob, not created
        assert (again.digest, again.size, again.created) == (stored.digest, len(data), False)
        assert [b.digest for b in artifact_store.iter_blobs()].count(stored.digest) == 1
        assert not list(artifact_store.cleanup_partial(datetime.now(timezone.utc) + timedelta(minutes=1)))

    def test_put_file_hashed_of_an_empty_file(self, artifact_store: ArtifactStore, tmp_path: Path) -> None:
        path = tmp_path / "empty.bin"
        path.write_bytes(b"")
        stored = artifact_store.put_file_hashed(path)
        assert (stored.digest, stored.size) == (_digest(b""), 0)
        assert artifact_store.size(stored.digest) == 0

    def test_put_file_hashed_repairs_a_flagged_damaged_blob(
        self, artifact_store: ArtifactStore, tmp_path: Path
    ) -> None:
        data = os.urandom(70_000)
        digest, _ = self._damage(artifact_store, data)
        artifact_store.mark_suspect(digest)
        path = tmp_path / "good.bin"
        path.write_bytes(data)
        stored = artifact_store.put_file_hashed(path)
        assert (stored.digest, stored.created) == (digest, False)  # it existed: replaced, not created
        with artifact_store.open(digest) as f:
            assert f.read() == data
        assert [b.digest for b in artifact_store.iter_blobs()].count(digest) == 1

    def test_iter_blobs_lists_sizes_and_times(self, artifact_store: ArtifactStore, tmp_path: Path) -> None:
        before = datetime.now(timezone.utc) - timedelta(minutes=5)
        a = self._put(artifact_store, b"a" * 10, tmp_path)
        b = self._put(artifact_store, b"b" * 20, tmp_path)
        blobs = {blob.digest: blob for blob in artifact_store.iter_blobs()}
        assert {a, b} <= set(blobs)
        assert blobs[a].size == 10 and blobs[b].size == 20
        for blob in (blobs[a], blobs[b]):
            assert blob.modified is not None and blob.modified > before

    def test_delete(self, artifact_store: ArtifactStore, tmp_path: Path) -> None:
        digest = self._put(artifact_store, b"to delete", tmp_path)
        artifact_store.delete(digest)
        assert not artifact_store.exists(digest)
        artifact_store.delete(digest)  # deleting twice is fine
        assert digest not in {b.digest for b in artifact_store.iter_blobs()}

    @pytest.mark.parametrize("bad", ["../../etc/passwd", "sha256:../x", "md5:abc", "sha256:" + "G" * 64, ""])
    def test_rejects_bad_digests(self, artifact_store: ArtifactStore, bad: str) -> None:
        with pytest.raises(InvalidInputError, match="invalid digest"):
            artifact_store.exists(bad)

    def test_open_is_streaming(self, artifact_store: ArtifactStore, tmp_path: Path) -> None:
        data = os.urandom(1024 * 1024)
        digest = self._put(artifact_store, data, tmp_path)
        buf = io.BytesIO()
        with artifact_store.open(digest) as f:
            while chunk := f.read(64 * 1024):
                buf.write(chunk)
        assert buf.getvalue() == data

    # -- repair: a stored blob that fails verification is replaced by put_file -----------------------
    def _damage(self, store: ArtifactStore, data: bytes) -> tuple[str, bytes]:
        """Store other bytes of the same size under the digest of ``data`` (stores do not hash
        on upload): a blob damaged in place. Return the digest and the bad bytes."""
        digest = _digest(data)
        bad = bytes([data[0] ^ 0xFF]) + data[1:]
        store.put_bytes(digest, bad)
        return digest, bad

    def test_put_file_replaces_a_flagged_damaged_blob(self, artifact_store: ArtifactStore, tmp_path: Path) -> None:
        data = os.urandom(50_000)
        digest, bad = self._damage(artifact_store, data)
        with artifact_store.open(digest) as f:
            assert f.read() == bad
        artifact_store.mark_suspect(digest)  # what Registry.verify() does when it finds the damage
        assert artifact_store.is_suspect(digest)
        assert self._put(artifact_store, data, tmp_path) == digest
        with artifact_store.open(digest) as f:
            assert f.read() == data
        assert artifact_store.size(digest) == len(data)
        assert [b.digest for b in artifact_store.iter_blobs()].count(digest) == 1

    def test_put_file_keeps_an_intact_flagged_blob_readable(
        self, artifact_store: ArtifactStore, tmp_path: Path
    ) -> None:
        data = b"intact" * 5000
        digest = self._put(artifact_store, data, tmp_path)
        artifact_store.mark_suspect(digest)  # a stale flag: at worst the content is uploaded again
        self._put(artifact_store, data, tmp_path)
        with artifact_store.open(digest) as f:
            assert f.read() == data
        assert [b.digest for b in artifact_store.iter_blobs()].count(digest) == 1

    def test_mark_suspect_flags(self, artifact_store: ArtifactStore) -> None:
        digest = _digest(b"never stored")
        assert not artifact_store.is_suspect(digest)
        artifact_store.mark_suspect(digest)  # a digest that is not stored: harmless
        artifact_store.mark_suspect(digest)  # twice: harmless
        assert artifact_store.is_suspect(digest)
        artifact_store.mark_suspect(digest, False)
        assert not artifact_store.is_suspect(digest)
        artifact_store.mark_suspect(digest, False)
        assert not artifact_store.exists(digest)
        with pytest.raises(InvalidInputError, match="invalid digest"):
            artifact_store.mark_suspect("sha256:../../etc/passwd")

    def test_touch_keeps_the_blob_and_refreshes_its_time(self, artifact_store: ArtifactStore, tmp_path: Path) -> None:
        data = b"touched" * 100
        digest = self._put(artifact_store, data, tmp_path)
        before = {b.digest: b.modified for b in artifact_store.iter_blobs()}[digest]
        artifact_store.touch(digest)
        after = [b for b in artifact_store.iter_blobs() if b.digest == digest]
        assert len(after) == 1 and after[0].size == len(data)
        if before is not None and after[0].modified is not None:  # stores that keep times
            assert after[0].modified >= before
        with artifact_store.open(digest) as f:
            assert f.read() == data
        missing = _digest(b"never stored")
        artifact_store.touch(missing)  # best effort: no error, and nothing is created
        assert not artifact_store.exists(missing)

    def test_cleanup_partial_spares_recent_uploads(self, artifact_store: ArtifactStore, tmp_path: Path) -> None:
        digest = self._put(artifact_store, b"fresh", tmp_path)
        # nothing is older than a moment in the past: nothing may be removed, whatever is in flight
        removed = artifact_store.cleanup_partial(datetime.now(timezone.utc) - timedelta(days=1))
        assert removed == []
        assert artifact_store.exists(digest)

    def test_cleanup_partial_reports_sizes(self, artifact_store: ArtifactStore, tmp_path: Path) -> None:
        self._put(artifact_store, b"complete", tmp_path)
        removed = artifact_store.cleanup_partial(datetime.now(timezone.utc) + timedelta(minutes=1))
        assert isinstance(removed, list)
        for partial in removed:
            assert isinstance(partial, PartialUpload) and partial.name and partial.size >= 0
        assert artifact_store.exists(_digest(b"complete"))  # finished blobs are never leftovers
