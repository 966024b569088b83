"""Approvals signed by the approver's own key over HTTP: the client signs the approval statement
(``RemoteRegistry.approve(key=...)``, :func:`modelreg.api.signed.sign_approval`) and the server checks
it against the keys the policy lists for the token's actor before it records the approval."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from modelreg.api.client import RemoteRegistry
from modelreg.api.signed import sign_approval
from modelreg.models import utcnow
from modelreg.signing import fingerprint
from tests.api.conftest import Api, register
from tests.test_signing import _make_key

APPROVER = "approver@example.com"


@pytest.fixture
def signed_gate(api: Api, tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path / "keys"
    folder.mkdir()
    keys = {name: _make_key(folder, name) for name in ("approver", "mallory")}
    api.registry.set_policy(
        {
            "member_keys": {APPROVER: [keys["approver"][1].read_text()]},
            "gates": {"production": {"approvals": [{"count": 1, "signed": True}]}},
        },
        actor="server-admin",
    )
    register(api.client("writer"), "churn", b"weights")
    return keys


def _request(api: Api) -> Any:
    r = api.client("writer").post("/versions/churn/1/requests", json={"stage": "production"})
    assert r.status_code == 201, r.text
    return api.registry.get_request(r.json()["id"])


def _approve(api: Api, rid: str, envelope: dict[str, Any]) -> Any:
    return api.client("approver").post(f"/requests/{rid}/approve", json={"signature": envelope})


def test_a_signature_by_the_approvers_listed_key_is_accepted(api: Api, signed_gate: dict[str, Any]) -> None:
    req = _request(api)
    with RemoteRegistry(api.url, token=api.tokens["approver"]) as remote:
        approved = remote.approve(req.id, comment="checked", key=signed_gate["approver"][0])
    assert [(a.actor, a.comment) for a in approved.approvals] == [(APPROVER, "checked")]
    # the signature is kept: the 'signed: true' gate counts it and the transition happened
    stored = api.registry.get_request(req.id)
    assert stored.approvals[0].signature is not None  # type: ignore[attr-defined]
    assert api.registry.get_version("churn/1").stage.value == "production"
    assert [e.action for e in api.registry.history("churn")][-2:] == ["approve", "transition"]
    assert api.registry.verify(blobs=False).ok


def test_forged_or_mismatched_signatures_are_refused_with_the_policys_reason(
    api: Api, signed_gate: dict[str, Any]
) -> None:
    req = _request(api)
    digest = api.registry.get_version("churn/1").digest
    mallory = sign_approval(signed_gate["mallory"][0], req, digest, APPROVER)
    r = _approve(api, req.id, mallory)
    assert r.status_code == 403 and r.json()["error"] == "PolicyViolation"
    fp = fingerprint(signed_gate["mallory"][1].read_text())
    assert f"signed with {fp[:19]}…, not a key listed for {APPROVER} in member_keys" in r.json()["message"]

    good = sign_approval(signed_gate["approver"][0], req, digest, APPROVER)
    statement = json.loads(base64.b64decode(good["payload"]))
    altered = {**good, "payload": base64.b64encode(json.dumps({**statement, "to_stage": "staging"}).encode()).decode()}
    r = _approve(api, req.id, altered)
    assert r.status_code == 403 and "does not verify (it was altered)" in r.json()["message"]

    for wrong, envelope in [
        ("actor", sign_approval(signed_gate["approver"][0], req, digest, "someone@example.com")),
        ("digest", sign_approval(signed_gate["approver"][0], req, "sha256:" + "0" * 64, APPROVER)),
        ("request", sign_approval(signed_gate["approver"][0], req.model_copy(update={"id": "churn:0000"}), digest,
                                  APPROVER)),
    ]:  # fmt: skip
        r = _approve(api, req.id, envelope)
        assert r.status_code == 403, r.text
        assert f"the signed statement does not match the approval ({wrong} differ)" in r.json()["message"]

    stale = sign_approval(signed_gate["approver"][0], req, digest, APPROVER, time=utcnow() - timedelta(hours=1))
    r = _approve(api, req.id, stale)
    assert r.status_code == 403 and "sign it again" in r.json()["message"]
    r = _approve(api, req.id, {**good, "signatures": []})
    assert r.status_code == 422
    # nothing was recorded by the refused attempts
    assert api.registry.get_request(req.id).approvals == []
    assert _approve(api, req.id, good).status_code == 200
