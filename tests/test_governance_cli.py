"""The governance commands of the ``modelreg`` CLI, run in-process through ``main`` and as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelreg import Registry, cli
from modelreg.governance.cli import COMMANDS

POLICY = {
    "groups": {"risk": ["carla"]},
    "gates": {"production": {"approvals": [{"count": 1, "group": "risk"}], "metrics": ["metrics.auc >= @production"]}},
}


class CLI:
    def __init__(self, registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.registry, self.capsys = registry, capsys

    def __call__(self, *args: str, actor: str = "ana") -> tuple[int, str, str]:
        self.capsys.readouterr()
        rc = cli.main(["--registry", str(self.registry), "--actor", actor, *args])
        out, err = self.capsys.readouterr()
        return rc, out, err

    def ok(self, *args: str, actor: str = "ana") -> str:
        rc, out, err = self(*args, actor=actor)
        assert rc == 0, f"modelreg {' '.join(args)} exited {rc}: {err}"
        return out


@pytest.fixture
def run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> CLI:
    return CLI(tmp_path / "reg", capsys)


@pytest.fixture
def with_policy(run: CLI, tmp_path: Path) -> CLI:
    for i, auc in enumerate((0.8, 0.9)):
        path = tmp_path / f"m{i}.bin"
        path.write_bytes(f"model {i}".encode())
        run.ok("register", "churn", str(path), "--metric", f"auc={auc}", "--no-capture")
    run.ok("transition", "churn/1", "production")
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(POLICY))
    assert "stored; every client now enforces it" in run.ok("policy", "set", str(policy), "-m", "v1")
    return run


def test_commands_are_listed_and_lazy() -> None:
    names = {name for name, _, _ in cli.EXTENSIONS if name in dict(COMMANDS)}
    assert names == {name for name, _ in COMMANDS}
    assert all(target == "modelreg.governance.cli:add_commands" for name, _, target in cli.EXTENSIONS if name in names)
    proc = subprocess.run([sys.executable, "-m", "modelreg", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for name in names:
        assert f"    {name} " in proc.stdout or f"    {name}\n" in proc.stdout, name


def test_request_approve_flow(with_policy: CLI) -> None:
    run = with_policy
    rc, out, err = run("transition", "churn/2", "production")
    assert rc == 1 and "approvals: production needs 1 approval from group 'risk'" in err
    rc, out, _ = run("policy", "check", "churn/2", "production")
    assert rc == 1 and out.startswith("churn/2 -> production: blocked by 1 gate(s):")
    out = run.ok("request", "churn/2", "production", "-m", "better auc")
    assert "churn/2 experimental -> production, pending" in out
    assert "- approvals: needs 1 approval from group 'risk', has 0; members: carla" in out
    req_id = out.split()[1].rstrip(":")
    listing = run.ok("requests")
    assert req_id in listing and "WAITING FOR" in listing
    rc, _, err = run("approve", req_id, actor="bob")
    assert rc == 1 and "bob is not in group 'risk'" in err
    out = run.ok("approve", req_id, "-m", "reviewed", actor="carla")
    assert "completed" in out and "approved by: carla" in out and "churn/2 is now in production" in out
    assert "no pending transition requests" in run("requests")[2]
    data = json.loads(run.ok("requests", "--status", "all", "--json"))
    assert [(r["id"], r["status"], r["approvals"][0]["actor"]) for r in data] == [(req_id, "completed", "carla")]
    rc, _, err = run("approve", req_id, actor="carla")
    assert rc == 1 and "was already completed by carla" in err
    with Registry(run.registry) as reg:
        assert reg.get_version("churn@production").version == 2


def test_reject_cancel_complete(with_policy: CLI) -> None:
    run = with_policy
    req = json.loads(run.ok("request", "churn/2", "production", "--json"))
    out = run.ok("reject", req["id"], "-m", "not now", actor="carla")
    assert "rejected" in out
    req = json.loads(run.ok("request", "churn/2", "production", "--json"))
    rc, _, err = run("cancel", req["id"], actor="carla")
    assert rc == 1 and "only the requester ana (or a policy admin) can cancel" in err
    assert "cancelled" in run.ok("cancel", req["id"])
    req = json.loads(run.ok("request", "churn/2", "production", "--json"))
    rc, _, err = run("complete", req["id"])
    assert rc == 1 and "cannot complete request" in err and "approvals: needs 1 approval" in err
    assert run.ok("requests", "--status", "rejected").count("churn/2") == 1
    rc, _, err = run("approve", "nonsense")
    assert rc == 2 and "invalid request id 'nonsense'" in err


def test_policy_show_history_and_invalid(with_policy: CLI, tmp_path: Path) -> None:
    run = with_policy
    out = run.ok("policy", "show")
    assert "(stored in the registry)" in out and "group risk: carla" in out
    assert "approvals: 1 approval from group 'risk'" in out and "metric: metrics.auc >= @production" in out
    assert json.loads(run.ok("policy", "show", "--json"))["groups"] == {"risk": ["carla"]}
    hist = run.ok("policy", "history")
    assert "v1" in hist and "ana" in hist
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"gates": {"production": {"metrics": ["auc > 1"]}}}))
    rc, _, err = run("policy", "set", str(bad))
    assert rc == 2 and "invalid policy: gates.production.metrics: cannot parse metric gate 'auc > 1'" in err
    rc, _, err = run("policy", "set", str(tmp_path / "missing.json"))
    assert rc == 2 and "does not exist" in err
    rc, _, err = run("policy", "check", "churn/2")
    assert rc == 2 and "usage: modelreg policy check REF STAGE" in err


def test_policy_show_lists_retention_member_keys_and_signature_gates(run: CLI, tmp_path: Path) -> None:
    fp_a, fp_b = "sha256:" + "ab" * 32, "sha256:" + "cd" * 32
    assert "retention: none" in run.ok("policy", "show")
    policy = tmp_path / "trust.json"
    policy.write_text(
        json.dumps(
            {
                "member_keys": {"carla@example.com": [fp_a], "dev@example.com": ["EF" * 32]},
                "gates": {"production": {"signatures": {"keys": [fp_a, fp_b], "min": 2}}},
                "retention": [
                    {"models": ["fraud-*"], "keep_experimental": 5, "keep_newest": 2, "keep_tag": "pin"},
                    {"keep_experimental": 100, "purge_archived_after_days": 30, "keep_used_within_days": 0},
                ],
            }
        )
    )
    run.ok("policy", "set", str(policy))
    out = run.ok("policy", "show")
    assert f"member keys carla@example.com: {fp_a}" in out
    assert f"member keys dev@example.com: sha256:{'ef' * 32}" in out
    assert "gate production:\n  signatures: 2 valid signatures by trusted key(s)" in out
    assert "retention fraud-*: keep the newest 5 experimental\n" in out
    assert "  keeps: the newest 2 of each stage, versions used within 30 days, tag pin=true" in out
    assert "retention *: keep the newest 100 experimental; purge archived after 30 days\n" in out
    assert "  keeps: the newest 1 of each stage, tag keep=true, aliased" in out
    assert "retention: none" not in out
    data = json.loads(run.ok("policy", "show", "--json"))
    assert data["member_keys"]["carla@example.com"] == [fp_a] and len(data["retention"]) == 2


def test_policy_set_from_stdin(run: CLI, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps({"auto_complete": False})))
    run.ok("policy", "set", "-")
    assert "requests complete automatically: no" in run.ok("policy", "show")


def test_events_with_a_cursor_file(with_policy: CLI, tmp_path: Path) -> None:
    run = with_policy
    cursor = tmp_path / "cursor"
    rc, out, err = run("events", "--cursor-file", str(cursor), "--action", "transition")
    rows = [line.split() for line in out.splitlines()[1:]]
    assert rc == 0 and [(r[0], r[1], r[5], r[6]) for r in rows] == [("churn", "4", "transition", "1")]
    assert cursor.read_text().startswith("mr1.") and "cursor: mr1." in err
    rc, out, err = run("events", "--cursor-file", str(cursor))
    assert rc == 0 and out == "" and "no new events" in err
    req = json.loads(run.ok("request", "churn/2", "production", "--json"))
    run.ok("approve", req["id"], actor="carla")
    data = json.loads(run.ok("events", "--cursor-file", str(cursor), "--action", "transition", "--json"))
    assert [(e["version"], e["after"]["stage"]) for e in data["events"]] == [(1, "archived"), (2, "production")]
    assert data["cursor"] == cursor.read_text().strip() and data["has_more"] is False
    internal = json.loads(run.ok("events", "--internal", "--action", "policy", "--json"))
    assert [e["action"] for e in internal["events"]] == ["set_policy"]


def test_webhook_commands(run: CLI) -> None:
    rc, _, err = run("webhook", "add", "http://127.0.0.1:9/hook")
    assert rc == 2 and "needs --secret-env VAR" in err
    out = run.ok("webhook", "add", "http://127.0.0.1:9/hook", "--secret-env", "HOOK_SECRET", "--event", "transition")
    hook_id = out.split()[1].rstrip(":")
    assert hook_id.startswith("wh-") and "signed with $HOOK_SECRET" in out
    listing = run.ok("webhook", "list")
    assert hook_id in listing and "$HOOK_SECRET" in listing
    assert "no deliveries recorded" in run("webhook", "deliveries")[2]
    assert f"removed webhook {hook_id}" in run.ok("webhook", "remove", hook_id)
    rc, _, err = run("webhook", "remove", hook_id)
    assert rc == 1 and f"no webhook {hook_id!r}" in err


def test_cli_in_a_subprocess_with_env_actor(tmp_path: Path) -> None:
    model = tmp_path / "m.bin"
    model.write_bytes(b"m")
    reg = str(tmp_path / "reg")
    env = {**os.environ, "MODELREG_ACTOR": "ana"}

    def modelreg(*args: str, actor: str | None = None) -> subprocess.CompletedProcess[str]:
        e = {**env, "MODELREG_ACTOR": actor} if actor else env
        return subprocess.run(
            [sys.executable, "-m", "modelreg", "--registry", reg, *args],
            capture_output=True,
            text=True,
            env=e,
            timeout=120,
        )

    assert modelreg("register", "churn", str(model), "--no-capture").returncode == 0
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps({"gates": {"staging": {"approvals": 1}}}))
    assert modelreg("policy", "set", str(policy)).returncode == 0
    req = json.loads(modelreg("request", "churn/1", "staging", "--json").stdout)
    proc = modelreg("approve", req["id"])
    assert proc.returncode == 1 and "separation of duties: ana registered this version" in proc.stderr
    proc = modelreg("approve", req["id"], actor="bob")
    assert proc.returncode == 0 and "churn/1 is now in staging" in proc.stdout
