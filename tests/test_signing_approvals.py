"""Signed approvals: ``approve(sign=True)``, a gate that counts only approvals signed by the keys the
policy lists for their approvers, and ``verify()`` on a stored signed event that was altered."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from modelreg import InvalidInputError, Registry
from modelreg.cli import main as cli_main
from modelreg.signing import fingerprint
from tests.test_signing import _make_key


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Registry, dict[str, tuple[Path, Path]]]:
    folder = tmp_path / "keys"
    folder.mkdir()
    keys = {name: _make_key(folder, name) for name in ("carla", "dev", "mallory")}
    reg = Registry(tmp_path / "reg")
    src = tmp_path / "m.bin"
    src.write_bytes(b"model")
    reg.register("churn", src, capture=None, actor="ana")
    reg.set_policy(
        {
            "groups": {"risk": ["carla@example.com", "dev@example.com"]},
            "member_keys": {
                "carla@example.com": [keys["carla"][1].read_text()],
                "dev@example.com": [fingerprint(keys["dev"][1].read_text())],
            },
            "gates": {"production": {"approvals": [{"count": 2, "group": "risk", "signed": True}]}},
        },
        actor="admin",
    )
    return reg, keys


def test_only_approvals_signed_by_the_approvers_listed_keys_count(setup) -> None:
    reg, keys = setup
    req = reg.request_transition("churn/1", "production", actor="ana")
    assert "needs 2 signed approvals from group 'risk', has 0" in req.unmet[0]
    req = reg.approve(req.id, actor="carla@example.com")  # not signed: does not count
    assert "has 0" in req.unmet[0]
    req = reg.approve(req.id, actor="dev@example.com", sign=True, key=keys["mallory"][0])  # not dev's key
    assert "has 0" in req.unmet[0] and req.status == "pending"
    approval = req.approvals[-1]
    assert approval.signature["signatures"][0]["keyid"] == fingerprint(keys["mallory"][1].read_text())
    ev = reg.history("churn")[-1]
    assert ev.action == "approve" and ev.after["signature"] == approval.signature

    reg.cancel(req.id, actor="ana")
    req2 = reg.request_transition("churn/1", "production", actor="ana")
    req2 = reg.approve(req2.id, actor="carla@example.com", sign=True, key=keys["carla"][0])
    assert "has 1 (carla@example.com)" in req2.unmet[0]
    done = reg.approve(req2.id, actor="dev@example.com", sign=True, key=keys["dev"][0])
    assert done.status == "completed"
    assert reg.get_version("churn/1").stage.value == "production"
    assert reg.verify().ok


def test_verify_reports_a_signed_approval_event_that_was_altered(setup, tmp_path: Path) -> None:
    reg, keys = setup
    req = reg.request_transition("churn/1", "production", actor="ana")
    reg.approve(req.id, actor="carla@example.com", sign=True, key=keys["carla"][0])
    assert reg.verify().ok
    with sqlite3.connect(tmp_path / "reg" / "modelreg.db") as conn:
        seq, after = conn.execute("SELECT seq, after FROM events WHERE model='churn' AND action='approve'").fetchone()
        data = json.loads(after)
        data["to"] = "staging"  # the event now says the approval was for staging
        conn.execute("UPDATE events SET after=? WHERE model='churn' AND seq=?", (json.dumps(data), seq))
    kinds = {(p.kind, p.detail.split(": ", 1)[1]) for p in reg.verify().problems}
    assert ("signed_event", "the signed statement does not match the event (to_stage)") in kinds
    assert any(kind == "audit_edited" for kind, _ in kinds)  # the hash chain notices too


def test_signing_an_approval_needs_a_key_and_member_keys_are_checked(setup, tmp_path: Path) -> None:
    reg, _keys = setup
    req = reg.request_transition("churn/1", "production", actor="ana")
    with pytest.raises(InvalidInputError, match="needs a signing key"):
        reg.approve(req.id, actor="carla@example.com", sign=True)
    with pytest.raises(InvalidInputError, match="member_keys"):
        reg.set_policy({"member_keys": {"carla@example.com": ["nope"]}}, actor="admin")


def test_cli_approve_sign(setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reg, keys = setup
    req = reg.request_transition("churn/1", "production", actor="ana")
    root = str(tmp_path / "reg")
    for who in ("carla", "dev"):
        rc = cli_main(
            ["--registry", root, "--actor", f"{who}@example.com", "approve", req.id, "--key", str(keys[who][0])]
        )
        assert rc == 0
    assert "is now in production" in capsys.readouterr().out
    assert all("signature" in a.model_extra for a in reg.get_request(req.id).approvals)
