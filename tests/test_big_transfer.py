"""Big artifacts on a local store: one read per byte, hashed in a second thread while it is copied.

``register`` stores a big file with ``ArtifactStore.put_file_hashed`` (read once, each chunk hashed
while it is written to ``tmp/``, published under the digest of the bytes written) and ``download``
copies and hashes each blob in the same pass (:func:`modelreg.hashing.sha256_copy`). Most tests
shrink the chunk size and the thresholds (fixture ``small_chunks``) so that files of a few MiB take
the same paths as files of many GiB; one test runs with the shipped constants. No timings here:
``benchmarks/bench_core.py --only big`` measures them.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import random
import signal
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from modelreg import (
    ArtifactChangedError,
    IntegrityError,
    InvalidInputError,
    OutOfSpaceError,
    Registry,
    hashing,
    transfer,
)
from modelreg.cache import BlobCache
from modelreg.hashing import sha256_copy
from tests.helpers import (
    blob_files,
    blob_path,
    make_writable,
    run_helper,
    temp_files,
    write,
)

MIB = 1024 * 1024
SMALL_CHUNK = MIB
SIZE = 5 * MIB + 12345  # five chunks and a bit: not a multiple of the chunk size


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """1 MiB chunks; the hashing thread from 2 MiB on; one-pass registration from 2 MiB on."""
    monkeypatch.setattr(hashing, "COPY_CHUNK", SMALL_CHUNK)
    monkeypatch.setattr(hashing, "PARALLEL_MIN", 2 * MIB)
    monkeypatch.setattr(transfer, "SINGLE_PASS_MIN", 2 * MIB)


@pytest.fixture
def reg(tmp_path: Path) -> Any:
    registry = Registry(tmp_path / "reg")
    yield registry
    registry.close()


@pytest.fixture
def payload() -> bytes:
    return random.Random(7).randbytes(SIZE)


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts the one-pass stores and the threaded copies; fails on any separate hash pass or read-back."""
    from modelreg.stores.artifacts import FsspecArtifactStore

    seen = {"put_file_hashed": 0, "parallel": 0, "kernel": 0, "put_file": 0}
    real_hashed, real_threaded, real_kernel, real_put = (
        FsspecArtifactStore.put_file_hashed,
        hashing._copy_threaded,
        hashing._kernel_step,
        FsspecArtifactStore.put_file,
    )

    def put_file_hashed(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen["put_file_hashed"] += 1
        return real_hashed(self, *args, **kwargs)

    def parallel(*args: Any, **kwargs: Any) -> Any:
        seen["parallel"] += 1
        return real_threaded(*args, **kwargs)

    def kernel_step(*args: Any) -> Any:  # between local files the kernel copies
        seen["kernel"] += 1
        return real_kernel(*args)

    def put_file(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen["put_file"] += 1
        return real_put(self, *args, **kwargs)

    real_stream, real_matches = transfer.sha256_stream, transfer._blob_matches

    def small(size: int) -> None:
        assert size < transfer.SINGLE_PASS_MIN, "a big file was hashed or read back in a separate pass"

    def sha256_stream(stream: Any, **kwargs: Any) -> Any:
        small(kwargs.get("total", 0))
        return real_stream(stream, **kwargs)

    def blob_matches(artifacts: Any, entry: Any) -> Any:
        small(entry.size)
        return real_matches(artifacts, entry)

    monkeypatch.setattr(FsspecArtifactStore, "put_file_hashed", put_file_hashed)
    monkeypatch.setattr(FsspecArtifactStore, "put_file", put_file)
    monkeypatch.setattr(hashing, "_copy_threaded", parallel)
    monkeypatch.setattr(hashing, "_kernel_step", kernel_step)
    monkeypatch.setattr(transfer, "sha256_stream", sha256_stream)
    monkeypatch.setattr(transfer, "_blob_matches", blob_matches)
    return seen


def stored_blobs(root: Path) -> dict[str, bytes]:
    """digest -> content of every blob file of the registry at ``root``."""
    return {"sha256:" + p.parent.name + p.name: p.read_bytes() for p in blob_files(root)}


def assert_no_wrong_blob(root: Path) -> None:
    """Every blob file holds content that hashes to its name, and no upload is left in ``tmp/``."""
    for digest, data in stored_blobs(root).items():
        assert digest_of(data) == digest
    assert temp_files(root) == []


def bytes_read() -> int | None:
    """Bytes this process has read with read system calls (Linux), None where unknown."""
    try:
        with open("/proc/self/io") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))
    except (OSError, StopIteration):
        return None


# -- sha256_copy -------------------------------------------------------------------------------------


class Trickle(io.RawIOBase):
    """A stream that returns fewer bytes than asked, at random (as a socket or a pipe may)."""

    def __init__(self, data: bytes) -> None:
        self.inner, self.rng = io.BytesIO(data), random.Random(3)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        return self.inner.readinto(view[: self.rng.randint(1, len(view))])


class ReadOnly:
    """A stream with ``read`` only: no ``readinto``."""

    def __init__(self, data: bytes) -> None:
        self.inner = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self.inner.read(n)


class ShortWrites(io.RawIOBase):
    """A destination that takes at most 100 KiB per ``write``, as an unbuffered file may."""

    def __init__(self) -> None:
        self.out = io.BytesIO()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return self.out.write(bytes(memoryview(data)[: 100 * 1024]))


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("size", [0, 1, SMALL_CHUNK - 1, SMALL_CHUNK, 2 * MIB + 1, 3 * SMALL_CHUNK, SIZE])
@pytest.mark.parametrize("mode", ["w+b", "wb"])  # readable: the kernel copies, else through buffers
def test_sha256_copy_between_files(tmp_path: Path, size: int, mode: str) -> None:
    data = os.urandom(size)
    (tmp_path / "src").write_bytes(data)
    seen: list[tuple[str, int, int]] = []
    with open(tmp_path / "src", "rb", buffering=0) as src, open(tmp_path / "dst", mode, buffering=0) as dst:
        got = sha256_copy(src, dst, total=size, progress=lambda *call: seen.append(call))
    assert got == (digest_of(data), size)
    assert (tmp_path / "dst").read_bytes() == data
    done = [d for _, d, _ in seen]
    assert done == sorted(done) and all(phase == "download" and total == size for phase, _, total in seen)
    if size:
        assert done[-1] == size
    if size > 2 * MIB:  # the threaded path: one progress call per chunk
        assert len(seen) == -(-size // SMALL_CHUNK)


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("source", [Trickle, ReadOnly, io.BytesIO])
def test_sha256_copy_of_streams_with_short_reads_and_writes(source: Callable[[bytes], Any]) -> None:
    data = os.urandom(SIZE)
    dst = ShortWrites()
    assert sha256_copy(source(data), dst, total=SIZE) == (digest_of(data), SIZE)
    assert dst.out.getvalue() == data


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("kind", ["streams", "files"])
def test_sha256_copy_stops_its_thread_when_the_copy_fails(tmp_path: Path, kind: str) -> None:
    data = write(tmp_path / "src", os.urandom(SIZE)).read_bytes()

    def progress(phase: str, done: int, total: int) -> None:
        if done >= 2 * SMALL_CHUNK:
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        if kind == "streams":
            sha256_copy(io.BytesIO(data), io.BytesIO(), total=SIZE, progress=progress)
        else:
            with open(tmp_path / "src", "rb", buffering=0) as src, open(tmp_path / "dst", "w+b", buffering=0) as dst:
                sha256_copy(src, dst, total=SIZE, progress=progress)
    assert not any(t.name == "modelreg-sha256" for t in threading.enumerate())


@pytest.mark.usefixtures("small_chunks")
def test_sha256_copy_falls_back_when_the_kernel_refuses_the_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", refuse)
    data = write(tmp_path / "src", os.urandom(SIZE)).read_bytes()
    with open(tmp_path / "src", "rb", buffering=0) as src, open(tmp_path / "dst", "w+b", buffering=0) as dst:
        assert sha256_copy(src, dst, total=SIZE) == (digest_of(data), SIZE)
    assert (tmp_path / "dst").read_bytes() == data


@pytest.mark.usefixtures("small_chunks")
def test_sha256_copy_reports_a_failed_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.preadv
    calls: list[int] = []

    def preadv(fd: int, buffers: Any, offset: int) -> int:
        calls.append(offset)
        if len(calls) == 2:
            raise OSError(errno.EIO, "Input/output error")
        return real(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", preadv)
    write(tmp_path / "src", os.urandom(SIZE))
    with (
        pytest.raises(OSError, match="Input/output error"),
        open(tmp_path / "src", "rb", buffering=0) as src,
        open(tmp_path / "dst", "w+b", buffering=0) as dst,
    ):
        sha256_copy(src, dst, total=SIZE)
    assert not any(t.name == "modelreg-sha256" for t in threading.enumerate())


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("kind", ["streams", "files"])
def test_sha256_copy_reports_a_failure_of_the_hashing_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    real = hashlib.sha256

    class Failing:
        def __init__(self) -> None:
            self.h, self.calls = real(), 0

        def update(self, data: Any) -> None:
            self.calls += 1
            if self.calls == 3:
                raise MemoryError("no memory for the hash")
            self.h.update(data)

        def hexdigest(self) -> str:
            return self.h.hexdigest()

    data = write(tmp_path / "src", os.urandom(SIZE)).read_bytes()
    monkeypatch.setattr(hashing.hashlib, "sha256", Failing)
    with pytest.raises(MemoryError, match="no memory for the hash"):
        if kind == "streams":
            sha256_copy(io.BytesIO(data), io.BytesIO(), total=SIZE)
        else:
            with open(tmp_path / "src", "rb", buffering=0) as src, open(tmp_path / "dst", "w+b", buffering=0) as dst:
                sha256_copy(src, dst, total=SIZE)
    assert not any(t.name == "modelreg-sha256" for t in threading.enumerate())


# -- register: one pass --------------------------------------------------------------------------------


@pytest.mark.usefixtures("small_chunks")
def test_register_reads_a_big_file_once_and_stores_what_it_hashed(
    reg: Registry, tmp_path: Path, payload: bytes, passes: dict[str, int]
) -> None:
    path = write(tmp_path / "src" / "model.bin", payload)
    seen: list[tuple[str, int, int]] = []
    hashing_thread: list[bool] = []

    def progress(*call: Any) -> None:
        seen.append(call)
        hashing_thread.append(any(t.name == "modelreg-sha256" for t in threading.enumerate()))

    before = bytes_read()
    mv = reg.register("churn", path, capture=None, progress=progress)
    after = bytes_read()
    assert (mv.digest, mv.size) == (digest_of(payload), SIZE)
    assert all(hashing_thread)  # called from the calling thread while the other one hashes
    assert not any(t.name == "modelreg-sha256" for t in threading.enumerate())
    assert passes == {"put_file_hashed": 1, "parallel": 1, "kernel": 1, "put_file": 0}
    assert {phase for phase, _, _ in seen} == {"upload"} and seen[-1] == ("upload", SIZE, SIZE)
    if before is not None and after is not None:
        # the file is read once (by the kernel's copy) and the copy once, from the page cache, for the
        # hash; the old way read the file twice (hash, then copy) and the blob once more (read-back)
        assert after - before < 2.5 * SIZE
    root = tmp_path / "reg"
    assert stored_blobs(root) == {mv.digest: payload}
    assert_no_wrong_blob(root)
    assert oct(blob_path(root, mv.digest).stat().st_mode & 0o777) == "0o444"
    out = reg.download(mv.ref, tmp_path / "out")
    assert out.read_bytes() == payload
    assert passes["parallel"] == passes["kernel"] == 2  # the download too


def test_register_and_download_with_the_shipped_constants(
    reg: Registry, tmp_path: Path, passes: dict[str, int]
) -> None:
    data = os.urandom(transfer.SINGLE_PASS_MIN + 12345)
    assert len(data) > hashing.PARALLEL_MIN
    path = write(tmp_path / "big.bin", data)
    mv = reg.register("churn", path, capture=None)
    assert mv.digest == digest_of(data)
    assert passes == {"put_file_hashed": 1, "parallel": 1, "kernel": 1, "put_file": 0}
    assert reg.download(mv.ref, tmp_path / "out").read_bytes() == data
    assert passes["parallel"] == passes["kernel"] == 2
    assert_no_wrong_blob(tmp_path / "reg")


def test_small_files_are_still_hashed_first_and_read_back(
    reg: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below SINGLE_PASS_MIN: hash, upload, read-back (the phases and checks tests/test_artifact_inputs.py
    and tests/test_crash.py rely on)."""
    from modelreg.stores.artifacts import FsspecArtifactStore

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a small file was stored in one pass")

    monkeypatch.setattr(FsspecArtifactStore, "put_file_hashed", refuse)
    seen: list[str] = []
    mv = reg.register(
        "churn",
        write(tmp_path / "small.bin", b"w" * 5000),
        capture=None,
        progress=lambda phase, done, total: seen.append(phase),
    )
    assert mv.digest == digest_of(b"w" * 5000)
    assert seen[0] == "hash" and seen[-1] == "upload"


@pytest.mark.usefixtures("small_chunks")
def test_register_an_empty_file_in_one_pass(reg: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, "SINGLE_PASS_MIN", 0)
    seen: list[tuple[str, int, int]] = []
    mv = reg.register(
        "churn", write(tmp_path / "empty.bin", b""), capture=None, progress=lambda *call: seen.append(call)
    )
    assert (mv.digest, mv.size) == (digest_of(b""), 0)
    assert seen == [("upload", 0, 0)]
    assert stored_blobs(tmp_path / "reg") == {mv.digest: b""}
    assert reg.download(mv.ref, tmp_path / "out").read_bytes() == b""
    assert_no_wrong_blob(tmp_path / "reg")


@pytest.mark.usefixtures("small_chunks")
def test_put_file_hashed_on_local_disk(tmp_path: Path, payload: bytes) -> None:
    from modelreg.stores.artifacts import FsspecArtifactStore

    store = FsspecArtifactStore(str(tmp_path / "blobs"))
    assert store.hashes_on_put
    path = write(tmp_path / "m.bin", payload)
    first = store.put_file_hashed(path)
    assert (first.digest, first.size, first.created) == (digest_of(payload), SIZE, True)
    blob = tmp_path / "blobs" / "sha256" / first.digest[7:9] / first.digest[9:]
    inode = blob.stat().st_ino
    again = store.put_file_hashed(path)  # the same content: the stored blob is compared, kept, not replaced
    assert (again.digest, again.created) == (first.digest, False)
    assert blob.stat().st_ino == inode and blob.read_bytes() == payload
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []
    empty = store.put_file_hashed(write(tmp_path / "empty.bin", b""))
    assert (empty.digest, empty.size, empty.created) == (digest_of(b""), 0, True)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InvalidInputError, match="not a regular file"):  # refused, never waited on
        store.put_file_hashed(fifo)


@pytest.mark.usefixtures("small_chunks")
def test_a_damaged_stored_blob_is_repaired_by_the_one_pass(reg: Registry, tmp_path: Path, payload: bytes) -> None:
    root = tmp_path / "reg"
    path = write(tmp_path / "m.bin", payload)
    mv = reg.register("churn", path, capture=None)
    blob = blob_path(root, mv.digest)
    make_writable(blob)
    with open(blob, "r+b") as f:  # damaged in place, size intact, in the last chunk
        f.seek(SIZE - 10)
        f.write(b"X" * 10)
    assert not reg.verify().ok
    again = reg.register("churn", path, capture=None)
    assert again.digest == mv.digest and blob.read_bytes() == payload
    assert reg.verify().ok
    assert_no_wrong_blob(root)


# -- register: a file that changes during the pass -------------------------------------------------------


def _append(path: Path) -> None:
    with path.open("ab") as f:
        f.write(b"more")


def _rewrite_same_size(path: Path) -> None:
    with path.open("r+b") as f:
        f.seek(0)
        f.write(b"\0" * (3 * SMALL_CHUNK))  # the chunks still to be read change, the size does not


def _truncate(path: Path) -> None:
    os.truncate(path, SMALL_CHUNK + 5)


def _rename_over(path: Path) -> None:
    other = write(path.with_name("new.tmp"), os.urandom(SIZE))
    os.replace(other, path)


CHANGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "append": (_append, r"bytes were read where \d+ were expected"),
    "rewrite in place, same size": (_rewrite_same_size, "its size, time or inode differ after uploading"),
    "truncate": (_truncate, r"bytes were read where \d+ were expected"),
    "delete": (Path.unlink, "it was deleted while it was read"),
    "rename over": (_rename_over, "it was replaced by a new file while it was read"),
}


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_file_changing_during_the_pass_is_refused_and_leaves_no_blob(
    reg: Registry, tmp_path: Path, payload: bytes, passes: dict[str, int], change: str
) -> None:
    root = tmp_path / "reg"
    reg.register("churn", write(tmp_path / "v1.bin", b"version one"), capture=None)
    before = stored_blobs(root)
    path = write(tmp_path / "src" / "model.bin", payload)
    os.utime(path, (1_000_000_000, 1_000_000_000))  # an old time: any write now changes it
    mutate, message = CHANGES[change]
    fired: list[int] = []

    def progress(phase: str, done: int, total: int) -> None:
        if phase == "upload" and 0 < done < total and not fired:
            fired.append(done)
            mutate(path)

    with pytest.raises(ArtifactChangedError, match=message) as exc:
        reg.register("churn", path, capture=None, progress=progress)
    assert fired and passes["put_file_hashed"] == 1
    assert str(exc.value).startswith(f"{str(path)!r} changed while it was being registered (")
    assert stored_blobs(root) == before  # the blob this call stored is gone (whatever its digest)
    assert_no_wrong_blob(root)
    assert [v.version for v in reg.list_versions("churn")] == [1]
    assert reg.verify().ok


@pytest.mark.usefixtures("small_chunks")
def test_a_changing_file_never_deletes_a_blob_stored_before(reg: Registry, tmp_path: Path, payload: bytes) -> None:
    first = reg.register("churn", write(tmp_path / "a" / "model.bin", payload), capture=None)
    path = write(tmp_path / "b" / "model.bin", payload)

    def progress(phase: str, done: int, total: int) -> None:
        if phase == "upload" and done == total:
            _append(path)  # after the whole file was read: the content is the shared one

    with pytest.raises(ArtifactChangedError):
        reg.register("fraud", path, capture=None, progress=progress)
    assert stored_blobs(tmp_path / "reg") == {first.digest: payload}
    assert reg.download(first.ref, tmp_path / "out").read_bytes() == payload


@pytest.mark.usefixtures("small_chunks")
def test_a_folder_with_a_big_file_that_changes_commits_nothing(reg: Registry, tmp_path: Path, payload: bytes) -> None:
    folder = tmp_path / "saved"
    write(folder / "config.json", b"{}")
    write(folder / "weights.bin", payload)

    def progress(phase: str, done: int, total: int) -> None:
        if phase == "upload" and done == 2 * SMALL_CHUNK:
            _append(folder / "weights.bin")

    with pytest.raises(ArtifactChangedError):
        reg.register("churn", folder, capture=None, progress=progress)
    assert reg.list_models() == [] and stored_blobs(tmp_path / "reg") == {}
    mv = reg.register("churn", folder, capture=None)  # stable now: the small file hashed first, the big one in one pass
    assert {f.path: f.size for f in mv.artifact.files} == {"config.json": 2, "weights.bin": SIZE + 4}
    out = reg.download(mv.ref, tmp_path / "out")
    assert (out / "weights.bin").read_bytes() == payload + b"more"
    assert_no_wrong_blob(tmp_path / "reg")


# -- register: failures mid-copy ------------------------------------------------------------------------


@pytest.mark.usefixtures("small_chunks")
def test_an_exception_mid_copy_leaves_no_partial_blob(reg: Registry, tmp_path: Path, payload: bytes) -> None:
    path = write(tmp_path / "model.bin", payload)

    def progress(phase: str, done: int, total: int) -> None:
        if phase == "upload" and done >= 2 * SMALL_CHUNK:
            raise KeyboardInterrupt  # what Ctrl-C raises in the calling thread

    with pytest.raises(KeyboardInterrupt):
        reg.register("churn", path, capture=None, progress=progress)
    assert stored_blobs(tmp_path / "reg") == {} and temp_files(tmp_path / "reg") == []
    assert not any(t.name == "modelreg-sha256" for t in threading.enumerate())
    assert reg.list_models() == []
    assert reg.register("churn", path, capture=None).digest == digest_of(payload)


@pytest.mark.usefixtures("small_chunks")
def test_a_full_disk_mid_copy_leaves_no_partial_blob(
    reg: Registry, tmp_path: Path, payload: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.copy_file_range
    calls: list[int] = []

    def copy_file_range(src: int, dst: int, count: int, *args: Any) -> int:
        calls.append(count)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst, count, *args)

    monkeypatch.setattr(os, "copy_file_range", copy_file_range)
    with pytest.raises(OutOfSpaceError, match="no space left"):
        reg.register("churn", write(tmp_path / "model.bin", payload), capture=None)
    assert stored_blobs(tmp_path / "reg") == {} and temp_files(tmp_path / "reg") == []
    assert reg.list_models() == []


@pytest.mark.slow
def test_a_killed_one_pass_register_leaves_no_blob(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    Registry(root).close()
    data = os.urandom(transfer.SINGLE_PASS_MIN + 12345)  # the shipped constants: one pass, in threads
    path = write(tmp_path / "model.bin", data)
    proc = run_helper("crash_register.py", str(root), "churn", str(path), "upload", timeout=120)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout.startswith(f"killed during upload at {hashing.COPY_CHUNK} of {len(data)} bytes")
    assert blob_files(root) == []  # at most a partial copy in tmp/, never under a blob name
    assert len(temp_files(root)) <= 1
    with Registry(root) as reg:
        reg.gc(grace=timedelta(0))
        assert temp_files(root) == []
        mv = reg.register("churn", path, capture=None)
        assert mv.digest == digest_of(data)
        assert reg.download(mv.ref, tmp_path / "out").read_bytes() == data


# -- download: copy and hash at once, verify before publishing -------------------------------------------


def _damage(root: Path, digest: str, at: int) -> None:
    blob = blob_path(root, digest)
    make_writable(blob)
    with open(blob, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.usefixtures("small_chunks")
def test_download_of_a_damaged_blob_leaves_nothing(
    reg: Registry, tmp_path: Path, payload: bytes, passes: dict[str, int]
) -> None:
    mv = reg.register("churn", write(tmp_path / "model.bin", payload), capture=None)
    _damage(tmp_path / "reg", mv.digest, SIZE - 1)  # in the last chunk: most of the copy is written first
    dest = tmp_path / "downloads" / "here"
    with pytest.raises(IntegrityError, match=r"churn/1: file 'model\.bin' is corrupted"):
        reg.download(mv.ref, dest)
    assert passes["parallel"] == passes["kernel"] == 2
    assert not (tmp_path / "downloads").exists()  # the folders it made are gone too
    assert reg.artifacts.is_suspect(mv.digest)
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(IntegrityError):
        reg.download(mv.ref, existing)
    assert list(existing.iterdir()) == []  # no staging folder, no partial file


@pytest.mark.usefixtures("small_chunks")
def test_download_through_the_cache_copies_while_it_verifies(
    tmp_path: Path, payload: bytes, passes: dict[str, int]
) -> None:
    cache = BlobCache(tmp_path / "cache")
    with Registry(tmp_path / "reg", cache=cache) as reg:
        mv = reg.register("churn", write(tmp_path / "model.bin", payload), capture=None)
        assert passes == {"put_file_hashed": 1, "parallel": 1, "kernel": 1, "put_file": 0}
        assert reg.download(mv.ref, tmp_path / "one").read_bytes() == payload  # a miss: fetched, then copied
        assert (
            passes["parallel"] == passes["kernel"] == 2
        )  # the pass that verified the fetched copy also wrote the output
        assert cache.path_for(mv.digest).read_bytes() == payload
        assert reg.download(mv.ref, tmp_path / "two").read_bytes() == payload  # a hit: copied out, re-hashed
        assert passes["parallel"] == passes["kernel"] == 3

        entry = cache.path_for(mv.digest)  # a damaged cache entry is evicted and fetched again
        os.chmod(entry, 0o644)
        with open(entry, "r+b") as f:
            f.seek(3 * SMALL_CHUNK)
            f.write(b"!")
        assert reg.download(mv.ref, tmp_path / "three").read_bytes() == payload
        assert cache.path_for(mv.digest).read_bytes() == payload


@pytest.mark.usefixtures("small_chunks")
def test_download_through_the_cache_of_a_damaged_blob_leaves_nothing(tmp_path: Path, payload: bytes) -> None:
    cache = BlobCache(tmp_path / "cache")
    with Registry(tmp_path / "reg", cache=cache) as reg:
        mv = reg.register("churn", write(tmp_path / "model.bin", payload), capture=None)
        _damage(tmp_path / "reg", mv.digest, 2 * SMALL_CHUNK + 7)
        with pytest.raises(IntegrityError, match="corrupted"):
            reg.download(mv.ref, tmp_path / "out")
        assert not (tmp_path / "out").exists()
        assert not cache.path_for(mv.digest).exists()
        assert list((tmp_path / "cache" / "tmp").iterdir()) == []


@pytest.mark.usefixtures("small_chunks")
def test_cache_fetch_with_a_copy_removes_the_copy_on_mismatch(tmp_path: Path, payload: bytes) -> None:
    from modelreg.stores.artifacts import FsspecArtifactStore

    store = FsspecArtifactStore(str(tmp_path / "blobs"))
    digest = digest_of(payload)
    store.put_bytes(digest, payload[:-1] + b"?")  # stored under the right name, with the wrong content
    cache = BlobCache(tmp_path / "cache")
    out = tmp_path / "out.bin"
    with pytest.raises(IntegrityError):
        cache.fetch(digest, SIZE, store, copy_to=out)
    assert not out.exists() and not cache.path_for(digest).exists()
    store.delete(digest)
    store.put_file(digest, write(tmp_path / "good.bin", payload))
    assert cache.fetch(digest, SIZE, store, copy_to=out) == cache.path_for(digest)
    assert out.read_bytes() == payload == cache.path_for(digest).read_bytes()
