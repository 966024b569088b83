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


# -- signed direct transitions -----------------------------------------------------------------------------
def test_a_signed_transition_keeps_its_statement_with_the_event(setup, tmp_path: Path) -> None:
    reg, keys = setup
    mv = reg.transition("churn/1", "staging", actor="carla@example.com", sign=True, key=keys["carla"][0])
    assert mv.stage.value == "staging"
    ev = reg.history("churn")[-1]
    assert (ev.action, ev.version, ev.actor) == ("transition", 1, "carla@example.com")
    assert ev.after["stage"] == "staging" and ev.before == {"stage": "experimental"}
    from modelreg.signing import check_signed_statement

    statement, fp = check_signed_statement(ev.after["signature"])
    assert fp == fingerprint(keys["carla"][1].read_text())
    assert statement["type"] == "transition" and statement["request"] is None
    assert (statement["ref"], statement["digest"]) == ("churn/1", mv.digest)
    assert (statement["from_stage"], statement["to_stage"], statement["actor"]) == (
        "experimental",
        "staging",
        "carla@example.com",
    )
    assert statement["time"].startswith(ev.time.date().isoformat())
    assert reg.verify().ok
    # the registry's own key by default; an unsigned transition carries no signature
    signed = Registry(tmp_path / "reg", signing_key=keys["dev"][0])
    signed.transition("churn/1", "experimental", actor="dev@example.com", sign=True)
    assert signed.history("churn")[-1].after["signature"]["signatures"][0]["keyid"] == fingerprint(
        keys["dev"][1].read_text()
    )
    reg.transition("churn/1", "staging", actor="ana")
    assert "signature" not in reg.history("churn")[-1].after
    with pytest.raises(InvalidInputError, match=r"transition\(sign=True\) needs a signing key"):
        reg.transition("churn/1", "experimental", actor="ana", sign=True)
    assert reg.get_version("churn/1").stage.value == "staging"  # refused before anything changed


def test_verify_reports_a_signed_transition_event_that_was_altered(setup, tmp_path: Path) -> None:
    reg, keys = setup
    reg.transition("churn/1", "staging", actor="carla@example.com", sign=True, key=keys["carla"][0])
    assert reg.verify().ok
    with sqlite3.connect(tmp_path / "reg" / "modelreg.db") as conn:
        seq, after = conn.execute(
            "SELECT seq, after FROM events WHERE model='churn' AND action='transition'"
        ).fetchone()
        data = json.loads(after)
        data["stage"] = "production"  # the event now says the version went to production
        conn.execute("UPDATE events SET after=? WHERE model='churn' AND seq=?", (json.dumps(data), seq))
    kinds = {(p.kind, p.detail.split(": ", 1)[1]) for p in reg.verify().problems}
    assert ("signed_event", "the signed statement does not match the event (to_stage)") in kinds
    assert any(kind == "audit_edited" for kind, _ in kinds)
    with sqlite3.connect(tmp_path / "reg" / "modelreg.db") as conn:
        data["stage"] = "staging"
        data["signature"]["payload"] = data["signature"]["payload"][:-4] + "AAA="  # a forged statement
        conn.execute("UPDATE events SET after=? WHERE model='churn' AND seq=?", (json.dumps(data), seq))
    details = [p.detail for p in reg.verify().problems if p.kind == "signed_event"]
    assert len(details) == 1 and ("does not verify" in details[0] or "malformed" in details[0])


def test_cli_transition_sign(setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reg, keys = setup
    root = str(tmp_path / "reg")
    args = ["--registry", root, "--actor", "dev@example.com", "transition", "churn/1", "staging"]
    assert cli_main([*args, "--key", str(keys["dev"][0])]) == 0
    assert "churn/1: experimental -> staging" in capsys.readouterr().out
    ev = reg.history("churn")[-1]
    assert ev.after["signature"]["signatures"][0]["keyid"] == fingerprint(keys["dev"][1].read_text())
    assert cli_main(["--registry", root, "transition", "churn/1", "experimental", "--sign"]) == 2
    assert "needs a signing key" in capsys.readouterr().err
    assert reg.verify().ok


def test_a_signature_made_elsewhere_is_checked_and_counts(setup) -> None:
    """approve(signature=...): the approver signed the statement on their own machine."""
    from modelreg import PolicyViolation
    from modelreg.api.signed import sign_approval

    reg, keys = setup
    digest = reg.get_version("churn/1").digest
    old = reg.request_transition("churn/1", "production", actor="ana")
    replayed = sign_approval(keys["carla"][0], old, digest, "carla@example.com")
    reg.cancel(old.id, actor="ana")
    req = reg.request_transition("churn/1", "production", actor="ana")
    with pytest.raises(PolicyViolation, match="the signed statement names another request"):
        reg.approve(req.id, actor="carla@example.com", signature=replayed)  # same fields, an old request
    as_dev = sign_approval(keys["carla"][0], req, digest, "dev@example.com")
    with pytest.raises(PolicyViolation, match=r"\(actor differ\)"):
        reg.approve(req.id, actor="carla@example.com", signature=as_dev)
    with pytest.raises(InvalidInputError, match="not both"):
        reg.approve(
            req.id,
            actor="carla@example.com",
            key=keys["carla"][0],
            signature=sign_approval(keys["carla"][0], req, digest, "carla@example.com"),
        )
    assert reg.get_request(req.id).approvals == []  # nothing recorded by the refusals
    for who, name in (("carla@example.com", "carla"), ("dev@example.com", "dev")):
        done = reg.approve(req.id, actor=who, signature=sign_approval(keys[name][0], req, digest, who))
    assert done.status == "completed" and reg.get_version("churn/1").stage.value == "production"
    assert all(a.signature is not None for a in done.approvals)
    assert reg.verify(blobs=False).ok
