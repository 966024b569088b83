"""Storage failures on a real file system: a small tmpfs that fills up or is remounted read-only,
a database locked past its timeout, a database whose folder is missing.

Each failure is a :class:`~modelreg.errors.BackendError` subclass that names the path and says
what to do; nothing half-written is left behind, and the registry works again once the cause is
gone. The CLI exits with the code documented for each kind.

Mounting a tmpfs needs root (CI runs the tests as root). Where it is impossible the tmpfs tests
are skipped, except under ``CI``, where they fail: they must never silently not run there.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from modelreg import (
    AccessDeniedError,
    BackendBusyError,
    BackendError,
    InvalidInputError,
    ModelNotFound,
    OutOfSpaceError,
    Registry,
    StorageNotFoundError,
    UnreachableError,
    cli,
)
from modelreg.stores.sqlite import SQLiteMetadataStore

IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


# -- a small disk ------------------------------------------------------------------------------------


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for the test (and unmounted after it)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    why = None
    if not sys.platform.startswith("linux") or shutil.which("mount") is None:
        why = "mounting a tmpfs needs Linux and mount(8)"
    else:
        proc = _run("mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mnt))
        if proc.returncode != 0:
            why = f"cannot mount a tmpfs here (needs root): {proc.stderr.strip() or proc.returncode}"
    if why is not None:
        if IN_CI:
            pytest.fail(f"{why}; CI must run the disk-full tests (run them as root)", pytrace=False)
        pytest.skip(why)
    try:
        yield mnt
    finally:
        if _run("umount", str(mnt)).returncode != 0:  # something still open: detach it anyway
            _run("umount", "-l", str(mnt))


def fill(disk: Path) -> Path:
    """Write a file that takes every free block of ``disk``; delete it to free the space again."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (1 << 16, 4096, 1):
            block = b"\0" * chunk
            try:
                while True:
                    os.write(fd, block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    assert os.statvfs(disk).f_bavail == 0
    return filler


def remount(disk: Path, mode: str) -> None:
    proc = _run("mount", "-o", f"remount,{mode}", str(disk))
    assert proc.returncode == 0, f"remount,{mode} failed: {proc.stderr}"


def model_file(folder: Path, content: bytes, name: str = "model.bin") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content)
    return path


def register_until_full(reg: Registry, path: Path, limit: int = 300) -> tuple[int, OutOfSpaceError]:
    """Register ``path`` as the first version of model-0, model-1, ... until the disk is full."""
    for i in range(limit):
        try:
            reg.register(f"model-{i}", path, metrics={"auc": 0.5 + i / 1000}, capture=None)
        except OutOfSpaceError as exc:
            return i, exc
    pytest.fail(f"{limit} registrations on a full disk all succeeded")


def assert_consistent(reg: Registry) -> None:
    """No model without versions (a failed first registration leaves no model), a clean verify."""
    empty = [m.name for m in reg.list_models() if m.version_count == 0]
    assert empty == [], f"models left with no version: {empty}"
    report = reg.verify()
    assert report.ok, report


def assert_works_again(reg: Registry, failed: str, src: Path, tmp_path: Path) -> None:
    mv = reg.register(failed, src, metrics={"auc": 0.99}, capture=None)
    assert mv.version == 1  # the failed registration took no version number
    new = reg.register("after", model_file(tmp_path / "after", os.urandom(50_000)), metrics={"auc": 0.98}, capture=None)
    assert [v.ref for v in reg.search("metrics.auc > 0.97", order_by="metrics.auc desc")] == [mv.ref, new.ref]
    reg.transition(new.name, new.version, "staging")
    reg.gc(grace=timedelta(0))
    assert reg.download(new.ref, tmp_path / "out-again").read_bytes() == (tmp_path / "after" / "model.bin").read_bytes()
    assert_consistent(reg)


# -- disk full -------------------------------------------------------------------------------------------


def test_sqlite_registry_on_a_full_disk(small_disk: Path, tmp_path: Path) -> None:
    root = small_disk / "reg"
    src = model_file(tmp_path / "src", os.urandom(20_000))
    reg = Registry(root)
    try:
        first = reg.register("churn", src, capture=None)
        filler = fill(small_disk)
        # the same content every time: the blob is stored once, so the metadata is what fills up
        failed_at, err = register_until_full(reg, src)
        assert isinstance(err, BackendError)
        text = str(err)
        assert str(root / "modelreg.db") in text and "free space" in text, text
        assert isinstance(err.__cause__, sqlite3.Error)

        # a new version of an existing model fails the same way, and changes nothing
        with pytest.raises(OutOfSpaceError, match="free space"):
            reg.register("churn", src, capture=None)
        assert [v.version for v in reg.list_versions("churn")] == [first.version]
        with pytest.raises(ModelNotFound):
            reg.get_version(f"model-{failed_at}")
        assert_consistent(reg)  # reads work on a full disk
        assert reg.gc(grace=timedelta(0)).removed == []  # and so does gc, which only deletes

        # the CLI says "out of space" with its own exit code
        rc = cli.main(["--registry", str(root), "register", "churn", str(src), "--no-capture"])
        assert rc == cli.EXIT_OUT_OF_SPACE == 6

        filler.unlink()
        assert_works_again(reg, f"model-{failed_at}", src, tmp_path)
        assert [v.version for v in reg.list_versions("churn")] == [1]
    finally:
        reg.close()
    with Registry(root) as again:  # what was committed is on disk
        assert_consistent(again)
        assert len(again.list_models()) == failed_at + 3  # churn, model-0..model-N, after


def test_json_registry_on_a_full_disk(small_disk: Path, tmp_path: Path) -> None:
    src = model_file(tmp_path / "src", os.urandom(20_000))
    url = f"json+file://{small_disk}/m"
    reg = Registry(metadata=url, artifacts=f"{small_disk}/b")
    try:
        reg.register("churn", src, capture=None)
        filler = fill(small_disk)
        failed_at, err = register_until_full(reg, src)
        text = str(err)
        assert f"{small_disk}/m" in text and "free space" in text, text
        with pytest.raises(OutOfSpaceError):
            reg.register("churn", src, capture=None)
        assert [v.version for v in reg.list_versions("churn")] == [1]
        assert_consistent(reg)

        filler.unlink()
        assert_works_again(reg, f"model-{failed_at}", src, tmp_path)
    finally:
        reg.close()


def test_blobs_filling_the_disk(small_disk: Path, tmp_path: Path) -> None:
    blobs = small_disk / "blobs"
    reg = Registry(metadata=f"sqlite:///{tmp_path}/reg.db", artifacts=str(blobs))
    try:
        kept = reg.register("churn", model_file(tmp_path / "a", os.urandom(200_000)), capture=None)
        big = model_file(tmp_path / "b", os.urandom(300_000))
        filler = fill(small_disk)
        with pytest.raises(OutOfSpaceError) as err:
            reg.register("churn", big, capture=None)
        text = str(err.value)
        assert str(blobs) in text and "free space" in text and "sha256:" in text, text
        assert isinstance(err.value.__cause__, OSError) and err.value.__cause__.errno == errno.ENOSPC
        with pytest.raises(OutOfSpaceError):
            reg.register("fresh", big, capture=None)
        # no partial blob, no temporary file, no version, no empty model
        assert [b.digest for b in reg.artifacts.iter_blobs()] == [kept.digest]
        assert not (blobs / "tmp").exists() or list((blobs / "tmp").iterdir()) == []
        assert [v.version for v in reg.list_versions("churn")] == [1]
        assert [m.name for m in reg.list_models()] == ["churn"]
        assert_consistent(reg)

        filler.unlink()
        mv = reg.register("churn", big, capture=None)
        assert mv.version == 2
        assert reg.download(mv.ref, tmp_path / "out").read_bytes() == big.read_bytes()
        assert_works_again(reg, "fresh", big, tmp_path)
    finally:
        reg.close()


# -- read-only ---------------------------------------------------------------------------------------


def test_a_read_only_file_system_is_access_denied(small_disk: Path, tmp_path: Path, capsys) -> None:
    src = model_file(tmp_path / "src", os.urandom(20_000))
    other = model_file(tmp_path / "other", os.urandom(20_000))
    root = small_disk / "reg"
    with Registry(root) as reg:
        reg.register("churn", src, capture=None)
    with Registry(metadata=f"json+file://{small_disk}/m", artifacts=f"{small_disk}/b") as reg:
        reg.register("churn", src, capture=None)

    remount(small_disk, "ro")  # chmod would not stop root
    try:
        with pytest.raises(AccessDeniedError) as err:  # SQLite cannot create its -wal and -shm files
            Registry(root)
        text = str(err.value)
        assert str(root / "modelreg.db") in text and "read-only" in text, text
        capsys.readouterr()
        assert cli.main(["--registry", str(root), "list"]) == cli.EXIT_ACCESS_DENIED == 3
        assert "read-only" in capsys.readouterr().err

        with Registry(metadata=f"json+file://{small_disk}/m", artifacts=f"{small_disk}/b") as reg:
            assert [m.name for m in reg.list_models()] == ["churn"]  # reading works
            with pytest.raises(AccessDeniedError, match="read-only") as err:
                reg.register("churn", other, capture=None)  # the blob is refused first
            assert f"{small_disk}/b" in str(err.value)
            with pytest.raises(AccessDeniedError, match="read-only") as err:
                reg.transition("churn", 1, "staging")  # a metadata-only change
            assert f"{small_disk}/m" in str(err.value)
    finally:
        remount(small_disk, "rw")

    with Registry(root) as reg:
        assert reg.register("churn", other, capture=None).version == 2
        assert_consistent(reg)
    with Registry(metadata=f"json+file://{small_disk}/m", artifacts=f"{small_disk}/b") as reg:
        assert reg.register("churn", other, capture=None).version == 2
        assert reg.get_version("churn/1").stage == "experimental"
        assert_consistent(reg)


# -- opening, locking ---------------------------------------------------------------------------------


def test_a_database_whose_folder_is_missing_or_a_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "reg.db"
    with pytest.raises(StorageNotFoundError) as err:
        SQLiteMetadataStore(missing)
    text = str(err.value)
    assert str(missing) in text and "does not exist" in text and str(missing.parent) in text, text
    assert "unable to open database file" in text

    with pytest.raises(StorageNotFoundError, match="does not exist"):  # a plain .db path: no folder is created
        Registry(metadata=str(missing), artifacts=str(tmp_path / "blobs"))

    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    with pytest.raises(StorageNotFoundError, match="is a file, not a folder") as err:
        SQLiteMetadataStore(a_file / "reg.db")
    assert str(a_file / "reg.db") in str(err.value)

    with pytest.raises(BackendError, match="is a folder") as err:
        SQLiteMetadataStore(tmp_path)
    assert str(tmp_path) in str(err.value)

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BackendError, match="not a SQLite database") as err:
        SQLiteMetadataStore(garbage)
    assert str(garbage) in str(err.value)


def test_a_database_locked_past_its_timeout(tmp_path: Path, capsys) -> None:
    root = tmp_path / "reg"
    src = model_file(tmp_path / "src", b"model")
    reg = Registry(root, timeout=0.2)
    holder = sqlite3.connect(root / "modelreg.db", isolation_level=None)
    try:
        reg.register("churn", src, capture=None)
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(BackendBusyError) as err:
            reg.transition("churn", 1, "staging")
        assert isinstance(err.value, UnreachableError)
        text = str(err.value)
        assert str(root / "modelreg.db") in text and "stayed locked" in text and "0.2 s" in text, text
        with pytest.raises(BackendBusyError):
            reg.register("churn", src, capture=None)
        assert reg.get_version("churn/1").stage == "experimental"  # reads go on (WAL)
        holder.execute("ROLLBACK")
        reg.transition("churn", 1, "staging")
        assert reg.register("churn", src, capture=None).version == 2
        assert_consistent(reg)
    finally:
        holder.close()
        reg.close()


# -- exit codes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BackendError("x"), 1),
        (ModelNotFound("x"), 1),
        (InvalidInputError("x"), 2),
        (AccessDeniedError("x"), 3),
        (StorageNotFoundError("x"), 4),
        (UnreachableError("x"), 5),
        (BackendBusyError("x"), 5),
        (OutOfSpaceError("x"), 6),
        (OSError(errno.ENOSPC, "No space left on device"), 6),
        (PermissionError(errno.EACCES, "Permission denied"), 3),
        (OSError(errno.EROFS, "Read-only file system"), 3),
        (OSError(errno.EIO, "Input/output error"), 1),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_each_kind_of_error_has_its_exit_code(
    error: BaseException, code: int, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(self: Registry) -> None:
        raise error

    monkeypatch.setattr(Registry, "list_models", fail)
    capsys.readouterr()
    assert cli.main(["--registry", str(tmp_path / "reg"), "list"]) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
