"""Atomic, crash-safe register (DESIGN section 4): a registering process killed with SIGKILL at any
point leaves no half version; the registry verifies clean, the same register then succeeds with the
next number, and ``gc`` reclaims the orphaned blobs and partial uploads."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from modelreg import Registry
from modelreg.hashing import CHUNK
from tests.helpers import (
    assert_verified,
    blob_files,
    blob_path,
    metadata_snapshot,
    run_helper,
    temp_files,
    write,
)

pytestmark = pytest.mark.slow

SIZE = 2 * CHUNK + 12345  # three 8 MiB chunks: the kill lands after the first


@pytest.fixture(scope="module")
def payload() -> bytes:
    return os.urandom(SIZE)


def crash(root: Path, name: str, path: Path, point: str) -> str:
    proc = run_helper("crash_register.py", str(root), name, str(path), point, timeout=120)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


def sqlite_ok(root: Path) -> None:
    conn = sqlite3.connect(root / "modelreg.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()


@pytest.mark.parametrize("point", ["hash", "upload", "before_commit", "in_transaction"])
def test_killed_register_leaves_no_half_version(tmp_path: Path, payload: bytes, point: str) -> None:
    root = tmp_path / "reg"
    reg = Registry(root)
    reg.register("churn", write(tmp_path / "base.bin", b"version one"), capture=None)
    before = metadata_snapshot(reg)
    blobs_before = blob_files(root)
    big = write(tmp_path / "model.bin", payload)
    digest = "sha256:" + hashlib.sha256(payload).hexdigest()

    out = crash(root, "churn", big, point)

    # nothing became visible: same models, versions and audit events; the chain verifies
    assert metadata_snapshot(reg) == before
    assert [v.version for v in reg.list_versions("churn")] == [1]
    assert_verified(reg)
    sqlite_ok(root)
    with Registry(root) as fresh:  # a new process' view (fresh connection) agrees
        assert metadata_snapshot(fresh) == before

    # what is left on disk depends on how far the registration got
    orphan = blob_path(root, digest)
    if point == "hash":
        assert out.startswith(f"killed during hash at {CHUNK} of {SIZE} bytes")
        assert blob_files(root) == blobs_before and temp_files(root) == []
    elif point == "upload":
        assert out.startswith(f"killed during upload at {CHUNK} of {SIZE} bytes")
        assert blob_files(root) == blobs_before
        (partial,) = temp_files(root)
        assert partial.stat().st_size == CHUNK < SIZE  # a partial copy, never under a blob name
    else:
        assert blob_files(root) == sorted([*blobs_before, orphan])  # complete, but referenced by nothing
        assert orphan.read_bytes() == payload and temp_files(root) == []

    # gc with no grace period reclaims orphans and partial uploads, and keeps referenced blobs
    report = reg.gc(grace=timedelta(0))
    assert report.removed == ([digest] if point in ("before_commit", "in_transaction") else [])
    assert report.kept_referenced == 1
    assert blob_files(root) == blobs_before and temp_files(root) == []

    # the same register now succeeds, with the next number
    mv = reg.register("churn", big, capture=None)
    assert mv.version == 2 and mv.digest == digest
    assert [e.seq for e in reg.history("churn")] == [1, 2, 3]
    assert reg.download("churn/2", tmp_path / "out").read_bytes() == payload
    assert_verified(reg)
    reg.close()


def test_gc_grace_period_protects_an_orphan_of_an_interrupted_upload(tmp_path: Path, payload: bytes) -> None:
    """A registration in flight has stored its blobs but not committed: gc with a grace period keeps them."""
    root = tmp_path / "reg"
    reg = Registry(root)
    big = write(tmp_path / "model.bin", payload)
    crash(root, "churn", big, "before_commit")
    dry = reg.gc(grace=timedelta(0), dry_run=True)
    assert dry.removed == ["sha256:" + hashlib.sha256(payload).hexdigest()]
    report = reg.gc()  # default grace: one hour
    assert report.removed == [] and report.kept_recent == 1
    assert len(blob_files(root)) == 1
    reg.close()


def test_killed_first_register_of_a_new_model(tmp_path: Path, payload: bytes) -> None:
    root = tmp_path / "reg"
    Registry(root).close()
    big = write(tmp_path / "model.bin", payload)
    crash(root, "fraud/churn", big, "in_transaction")
    with Registry(root) as reg:
        # the model may exist (it is created first) but it has no version
        assert all(m.version_count == 0 for m in reg.list_models())
        assert "register" not in [e.action for e in reg.history()]
        assert_verified(reg)
        assert reg.register("fraud/churn", big, capture=None).version == 1
        assert_verified(reg)


def test_a_kill_right_after_the_commit_keeps_the_version(tmp_path: Path, payload: bytes) -> None:
    """The metadata commit is the point of no return: once it is done the version is complete."""
    root = tmp_path / "reg"
    big = write(tmp_path / "model.bin", payload)
    Registry(root).close()
    crash(root, "churn", big, "after_commit")
    with Registry(root) as reg:
        mv = reg.get_version("churn")
        assert mv.version == 1 and mv.size == SIZE
        assert reg.download("churn/1", tmp_path / "out").read_bytes() == payload
        assert_verified(reg)
        assert reg.gc(grace=timedelta(0)).removed == []
        assert reg.register("churn", big, capture=None).version == 2
