"""``modelreg doctor``: a healthy registry passes, a broken one fails (exit 1) saying what to fix,
and the doctor itself changes nothing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelreg import Registry, cli
from modelreg.doctor import Check, diagnose
from modelreg.extras import install_command
from tests.helpers import write


def rows(out: str) -> str:
    """The report with runs of spaces collapsed (the columns are padded to the widest name)."""
    return "\n".join(" ".join(line.split()) for line in out.splitlines())


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = cli.main([*args, "doctor"])
    out, err = capsys.readouterr()
    return rc, out, err


def by_name(checks: list[Check]) -> dict[str, list[Check]]:
    out: dict[str, list[Check]] = {}
    for c in checks:
        out.setdefault(c.name, []).append(c)
    return out


@pytest.fixture
def healthy(tmp_path: Path) -> Path:
    root = tmp_path / "reg"
    with Registry(root) as reg:
        reg.register("churn", write(tmp_path / "m.bin", b"weights"), capture=None)
    os.chmod(root, 0o755)
    return root


def test_a_healthy_local_registry(healthy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = doctor(capsys, "--registry", str(healthy))
    assert (rc, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("modelreg ") and " on Python " in lines[0]
    assert lines[1] == f"registry: {healthy} (from --registry)"
    rows = [" ".join(line.split()) for line in lines]  # the columns without their padding
    for expected in (
        f"ok location {healthy} exists",
        f"ok writable {healthy} is writable",
        "ok permissions the folder, database and blob folders are this user's to write",
        "ok open opened: 1 model(s)",
        "ok extra ui installed",
    ):
        assert expected in rows, (expected, rows)
    assert any(row.startswith("ok disk ") and row.endswith(" free") for row in rows)
    assert "FAIL" not in out and "WARN" not in out
    assert lines[-1] == "no problems found"
    assert not list(healthy.glob(".modelreg-doctor-*"))  # the write probe cleaned up after itself

    rc, out, _ = doctor(capsys, "--registry", str(healthy), "--json")
    report = json.loads(out)
    assert rc == 0 and report["ok"] is True
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["location"] == statuses["writable"] == statuses["open"] == statuses["disk"] == "ok"
    assert {"extra s3", "extra gcs", "extra azure", "extra ui"} <= set(statuses)


def test_the_default_location_and_a_folder_not_created_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home" / "registry"
    monkeypatch.delenv("MODELREG_URI", raising=False)
    monkeypatch.setenv("MODELREG_HOME", str(home))
    rc, out, _ = doctor(capsys)
    assert rc == 0
    assert f"registry: {home} (from $MODELREG_HOME)" in out
    assert f"{home} does not exist yet; the first registration creates it" in out
    assert not home.exists() and not home.parent.exists()  # the doctor created nothing


def test_a_location_that_is_a_file_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = write(tmp_path / "not-a-folder", b"x")
    for location, detail in (
        (blocker, f"{blocker} is not a folder"),
        (blocker / "reg", f"{blocker / 'reg'} cannot be created: {blocker} is not a folder"),
    ):
        rc, out, _ = doctor(capsys, "--registry", str(location))
        assert rc == 1, out
        assert f"FAIL location {detail}" in rows(out)
        assert "fix: pick another folder with --registry PATH (or $MODELREG_HOME)" in out
        assert out.splitlines()[-1] == "1 problem(s) to fix"


@pytest.fixture
def read_only_registry(tmp_path: Path) -> Iterator[Path]:
    """A registry with one version on a read-only disk (a tmpfs remounted read-only: chmod does not
    stop root), or in folders without write permission for another user."""
    disk = tmp_path / "disk"
    disk.mkdir()
    as_root = os.geteuid() == 0
    if as_root:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True)
        assert mounted.returncode == 0, f"root must be able to mount a tmpfs: {mounted.stderr!r}"
    root = disk / "reg"
    with Registry(root) as reg:
        reg.register("churn", write(tmp_path / "m.bin", b"weights"), capture=None)
    try:
        if as_root:
            subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True, capture_output=True)
        else:
            for path in (root, root / "blobs", root / "blobs" / "tmp"):
                os.chmod(path, 0o555)
        yield root
    finally:
        if as_root:
            subprocess.run(["umount", str(disk)], capture_output=True)
            if disk.is_mount():
                subprocess.run(["umount", "-l", str(disk)], capture_output=True)
        else:
            for path in (root, root / "blobs", root / "blobs" / "tmp"):
                os.chmod(path, 0o755)


def test_a_read_only_registry_fails_and_says_what_to_do(
    read_only_registry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = read_only_registry
    rc, out, _ = doctor(capsys, "--registry", str(root))
    assert rc == 1, out
    writable = next(line for line in out.splitlines() if "writable" in line)
    assert writable.split()[0] == "FAIL" and f"{root} is not writable: " in writable
    assert "Read-only file system" in writable or "Permission denied" in writable
    assert f"fix: chmod -R u+w {root} (as its owner), remount the disk read-write" in out
    assert "problem(s) to fix" in out.splitlines()[-1]
    checks = by_name(diagnose(str(root)))
    assert checks["writable"][0].status == "fail"
    assert checks["location"][0].status == "ok"


def test_a_registry_others_may_write_is_a_warning(healthy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.chmod(healthy, 0o777)
    try:
        rc, out, _ = doctor(capsys, "--registry", str(healthy))
    finally:
        os.chmod(healthy, 0o755)
    assert rc == 0  # a warning is not a failure
    assert f"WARN permissions {healthy} is writable by every user (mode drwxrwxrwx)" in rows(out)
    assert f"fix: chmod go-w {healthy}, unless the registry is shared on purpose" in out
    assert out.splitlines()[-1] == "no problems found (1 warning(s))"


def test_a_bucket_whose_endpoint_is_out_of_reach(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    rc, out, _ = doctor(capsys, "--registry", "s3://ml-models/registry")
    assert rc == 1
    assert "ok credentials AWS credentials from AWS_ACCESS_KEY_ID" in rows(out)
    assert f"FAIL endpoint the S3 endpoint ($AWS_ENDPOINT_URL) http://127.0.0.1:{port} is not in reach" in rows(out)
    assert f"fix: start the server (or emulator) on 127.0.0.1:{port}" in out
    assert " open " not in out  # not opened: it would only wait for the retries


def test_a_bucket_without_its_extra(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in [m for m in sys.modules if m == "gcsfs" or m.startswith("gcsfs.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "gcsfs", None)
    rc, out, _ = doctor(capsys, "--registry", "gs://ml-models/registry")
    assert rc == 1
    assert "FAIL extra gcs gs:// needs the gcs extra, which is not installed" in rows(out)
    assert f"fix: {install_command('gcs')}" in out
    assert sum(" extra gcs " in line for line in out.splitlines()) == 1


def test_an_emulator_registry_that_answers(
    s3_bucket, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    opts = s3_bucket.storage_options
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_bucket.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", opts["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", opts["secret"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    rc, out, _ = doctor(capsys, "--registry", f"{s3_bucket.url}/registry")
    assert rc == 0, out
    assert f"ok endpoint the S3 endpoint ($AWS_ENDPOINT_URL) {s3_bucket.endpoint} answers" in rows(out)
    assert "ok open opened: 0 model(s)" in rows(out)
