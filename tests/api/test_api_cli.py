"""``modelreg token`` and ``modelreg serve`` from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from modelreg import Registry, cli
from modelreg.api.cli import parse_size


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_token_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = str(tmp_path / "r")
    rc, out, err = _run(capsys, "--registry", where, "--actor", "ana", "token", "create", "--name", "ci", "--role",
                        "writer", "--actor", "ci@example.com")  # fmt: skip
    assert rc == 0, err
    secret = out.strip()
    assert secret.startswith("mrt_") and len(out.splitlines()) == 1 and "not shown again" in err
    rc, out, _ = _run(capsys, "--registry", where, "token", "list")
    assert rc == 0 and "ci" in out and "writer" in out and "ci@example.com" in out and secret not in out
    rc, out, _ = _run(capsys, "--registry", where, "token", "list", "--json")
    listed = json.loads(out)
    assert listed[0]["name"] == "ci" and listed[0]["created_by"] == "ana" and "sha256" not in listed[0]
    rc, _, err = _run(capsys, "--registry", where, "token", "create", "--name", "ci", "--role", "reader")
    assert rc == 1 and "exists already" in err and "modelreg token revoke ci" in err
    rc, _, err = _run(capsys, "--registry", where, "token", "create", "--name", "x", "--role", "root")
    assert rc == 2 and "invalid choice" in err
    rc, out, _ = _run(capsys, "--registry", where, "token", "revoke", "ci")
    assert rc == 0 and "revoked" in out
    rc, _, err = _run(capsys, "--registry", where, "token", "revoke", "ci")
    assert rc == 1 and "no API token named 'ci'" in err
    with Registry(where) as reg:
        actions = [e.action for e in reg.events(include_internal=True).events]
        assert actions.count("create_token") == 1 and actions.count("revoke_token") == 1


def test_help_and_extension_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert {"serve", "token"} <= {name for name, _, _ in cli.EXTENSIONS}
    rc, out, _ = _run(capsys, "serve", "--help")
    assert rc == 0 and "--no-auth" in out and "--read-only" in out and "--registry" in out
    rc, out, _ = _run(capsys, "token", "create", "--help")
    assert rc == 0 and "--role" in out and "--actor" in out
    rc, out, _ = _run(capsys, "--help")
    assert "\n    serve " in out and "\n    token " in out


def test_serve_refuses_without_tokens_and_no_auth_beyond_loopback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = str(tmp_path / "r")
    rc, _, err = _run(capsys, "--registry", where, "serve", "--port", "0")
    assert rc == 2 and "no API tokens" in err and "modelreg token create" in err
    rc, _, err = _run(capsys, "--registry", where, "serve", "--no-auth", "--host", "0.0.0.0", "--port", "0")
    assert rc == 2 and "--no-auth" in err and "refused beyond this machine" in err


def test_parse_size() -> None:
    assert parse_size("1048576") == 1048576
    assert parse_size("1MiB") == parse_size("1m") == 1024 * 1024
    assert parse_size("16GiB") == 16 * 1024**3
    with pytest.raises(Exception, match="invalid size"):
        parse_size("lots")


def test_modelreg_serve_in_a_subprocess(tmp_path: Path) -> None:
    where = str(tmp_path / "r")
    env = {**os.environ, "MODELREG_ACTOR": "ana"}
    made = subprocess.run(
        [sys.executable, "-m", "modelreg", "--registry", where, "token", "create", "--name", "ci", "--role", "reader"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    token = made.stdout.strip()
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelreg", "--registry", where, "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("modelreg serve: ") and "/api/v1" in line, line + (
            proc.stderr.read() if proc.stderr else ""
        )
        url = line.rsplit(" at ", 1)[1].strip()
        deadline = time.monotonic() + 10
        while True:
            try:
                r = httpx.get(url + "/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=5)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert r.json() == {"token": "ci", "role": "reader", "actor": "ci", "read_only": False}
        assert httpx.get(url + "/models", timeout=5).status_code == 401
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
