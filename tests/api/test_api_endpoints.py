"""Every endpoint of the HTTP API over real HTTP: answers equal the Python library's records."""

from __future__ import annotations

from typing import Any

from modelreg.governance.policy import Policy
from modelreg.models import ModelVersion
from tests.api.conftest import Api, register, upload


def _same(record: Any, data: Any) -> None:
    assert data == record.model_dump(mode="json")


def test_health_whoami_and_no_token_endpoints(api: Api) -> None:
    anon = api.client()
    assert anon.get("/health").json()["status"] == "ok"
    assert anon.get("/openapi.json").json()["openapi"] == "3.1.0"
    page = anon.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script" not in page.text and "http://" not in page.text and "https://" not in page.text
    me = api.client("writer").get("/whoami").json()
    assert me == {"token": "writer", "role": "writer", "actor": "writer@example.com", "read_only": False}


def test_models_and_versions(api: Api) -> None:
    w = api.client("writer")
    mv1 = register(w, "fraud/churn", b"v1", metrics={"auc": 0.8}, tags={"team": "fraud"}, params={"depth": 3})
    register(w, "fraud/churn", b"v2", metrics={"auc": 0.9})
    register(w, "other", b"o1")
    reg = api.registry
    assert mv1["version"] == 1 and mv1["created_by"] == "writer@example.com"
    r = api.client("reader")
    _same(reg.get_version("fraud/churn/1"), r.get("/versions/fraud/churn/1").json())
    _same(reg.get_version("fraud/churn"), r.get("/versions/fraud/churn").json())
    assert r.get("/versions/fraud/churn").json()["version"] == 2
    assert [m["name"] for m in r.get("/models").json()] == ["fraud/churn", "other"]
    _same(reg.get_model("fraud/churn"), r.get("/models/fraud/churn").json())
    versions = r.get("/models/fraud/churn/versions").json()
    assert [v["version"] for v in versions] == [1, 2]
    assert versions == [v.model_dump(mode="json") for v in reg.list_versions("fraud/churn")]
    assert r.get("/models/fraud/churn/versions", params={"stage": "production"}).json() == []
    # stage and alias references
    assert w.post("/versions/fraud/churn/1/transition", json={"stage": "production"}).status_code == 200
    assert r.get("/versions/fraud/churn@production").json()["version"] == 1
    assert w.put("/models/fraud/churn/aliases/champion", json={"version": 2}).json()["aliases"] == ["champion"]
    got = r.get("/versions/fraud/churn@champion").json()
    _same(reg.get_version("fraud/churn@champion"), got)
    assert got["version"] == 2
    assert r.get("/models/fraud/churn/versions", params={"stage": "production"}).json()[0]["version"] == 1


def test_search(api: Api) -> None:
    w = api.client("writer")
    for i in range(5):
        register(w, "churn", f"v{i}".encode(), metrics={"auc": 0.5 + i / 10}, tags={"team": "a" if i % 2 else "b"})
    r = api.client("reader")
    found = r.get("/search", params={"q": "metrics.auc > 0.65", "order_by": "metrics.auc desc", "limit": 2}).json()
    expected = api.registry.search("metrics.auc > 0.65", order_by="metrics.auc desc", limit=2)
    assert [v["version"] for v in found] == [v.version for v in expected] == [5, 4]
    assert found == [v.model_dump(mode="json") for v in expected]
    assert len(r.get("/search", params={"q": "tags.team = 'a'"}).json()) == 2
    assert len(r.get("/search").json()) == 5
    bad = r.get("/search", params={"q": "metrics.auc >>> 1"})
    assert bad.status_code == 422 and bad.json()["error"] == "InvalidInputError"


def test_changes_are_audited_as_the_tokens_actor(api: Api) -> None:
    w = api.client("writer")
    register(w, "churn", b"v1")
    register(w, "churn", b"v2")
    mv = w.post("/versions/churn/1/tags", json={"set": {"team": "fraud", "x": "1"}, "remove": []}).json()
    assert mv["tags"] == {"team": "fraud", "x": "1"}
    assert w.post("/versions/churn/1/tags", json={"remove": ["x"]}).json()["tags"] == {"team": "fraud"}
    mv = w.put("/versions/churn/1/description", json={"description": "first", "comment": "why"}).json()
    assert mv["description"] == "first"
    mv = w.post("/versions/churn/1/metrics", json={"metrics": {"auc": 0.91}, "step": 3}).json()
    assert mv["logged_metrics"] == {"auc": 0.91}
    assert w.post("/versions/churn/1/transition", json={"stage": "production"}).json()["stage"] == "production"
    assert w.post("/versions/churn/2/transition", json={"stage": "production"}).json()["stage"] == "production"
    back = w.post("/models/churn/rollback", json={"stage": "production", "comment": "bad v2"}).json()
    assert back["version"] == 1 and back["stage"] == "production"
    assert w.put("/models/churn/aliases/champion", json={"version": 1}).status_code == 200
    deleted = w.delete("/models/churn/aliases/champion")
    assert deleted.status_code == 200 and deleted.json()["version"] == 1
    assert api.registry.get_version("churn/1").aliases == []
    events = api.registry.history("churn")
    assert {e.actor for e in events} == {"writer@example.com"}
    actions = [e.action for e in events]
    for action in ("register", "set_tags", "set_description", "log_metrics", "transition", "rollback", "set_alias"):
        assert action in actions
    assert actions[-1] == "delete_alias"
    # history over HTTP is the same list
    r = api.client("reader")
    assert r.get("/history", params={"model": "churn"}).json() == [e.model_dump(mode="json") for e in events]
    v1 = r.get("/history", params={"model": "churn", "version": 1}).json()
    assert v1 and {e["version"] for e in v1} == {1}
    assert len(r.get("/history").json()) == len(api.registry.history())


def test_events_feed_with_cursor(api: Api) -> None:
    w = api.client("writer")
    r = api.client("reader")
    register(w, "churn", b"v1")
    page = r.get("/events").json()
    assert [e["action"] for e in page["events"]] == ["create_model", "register"]
    assert page["has_more"] is False
    cursor = page["cursor"]
    assert r.get("/events", params={"since": cursor}).json()["events"] == []
    w.post("/versions/churn/1/transition", json={"stage": "staging"})
    register(w, "churn", b"v2")
    newer = r.get("/events", params={"since": cursor, "actions": "transition"}).json()
    assert [e["action"] for e in newer["events"]] == ["transition"]
    limited = r.get("/events", params={"limit": 1}).json()
    assert len(limited["events"]) == 1 and limited["has_more"] is True
    now = r.get("/events", params={"since": "now"}).json()
    assert now["events"] == []
    internal = r.get("/events", params={"include_internal": "true", "models": "churn"}).json()
    assert "create_token" in [e["action"] for e in internal["events"]]
    bad = r.get("/events", params={"since": "nonsense"})
    assert bad.status_code == 422 and bad.json()["error"] == "InvalidInputError"
    assert bad.json()["remedy"]["cli"].startswith("pass --since")


def test_verify(api: Api) -> None:
    register(api.client("writer"), "churn", b"v1")
    r = api.client("reader")
    report = r.get("/verify").json()
    assert report["ok"] is True and report["blobs_checked"] == 1 and report["models_checked"] == 1
    assert r.get("/verify", params={"model": "churn", "blobs": "false"}).json()["blobs_checked"] == 0
    assert r.get("/verify", params={"model": "nope"}).status_code == 404


def test_governance_requests_approve_reject(api: Api) -> None:
    api.registry.set_policy(Policy.parse({"gates": {"production": {"approvals": 1}}}), actor="server-admin")
    w = api.client("writer")
    register(w, "churn", b"v1")
    register(w, "churn", b"v2")
    # a direct promotion is refused by the policy: 403 PolicyViolation, nothing changes
    refused = w.post("/versions/churn/1/transition", json={"stage": "production"})
    assert refused.status_code == 403 and refused.json()["error"] == "PolicyViolation"
    assert api.registry.get_version("churn/1").stage == "experimental"
    req = w.post("/versions/churn/1/requests", json={"stage": "production", "comment": "ship"})
    assert req.status_code == 201, req.text
    rid = req.json()["id"]
    assert req.json()["status"] == "pending" and req.json()["requester"] == "writer@example.com"
    r = api.client("reader")
    assert [q["id"] for q in r.get("/requests").json()] == [rid]
    assert r.get(f"/requests/{rid}").json()["id"] == rid
    # a writer may not approve; the approver does, and the transition completes
    assert w.post(f"/requests/{rid}/approve", json={}).status_code == 403
    done = api.client("approver").post(f"/requests/{rid}/approve", json={"comment": "ok"})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"
    assert api.registry.get_version("churn@production").version == 1
    # reject and cancel
    rid2 = w.post("/versions/churn/2/requests", json={"stage": "production"}).json()["id"]
    rejected = api.client("approver").post(f"/requests/{rid2}/reject", json={"comment": "no"}).json()
    assert rejected["status"] == "rejected" and rejected["closed_by"] == "approver@example.com"
    rid3 = w.post("/versions/churn/2/requests", json={"stage": "production"}).json()["id"]
    assert w.post(f"/requests/{rid3}/cancel", json={}).json()["status"] == "cancelled"
    statuses = {q["status"] for q in r.get("/requests", params={"status": "all", "model": "churn"}).json()}
    assert statuses == {"completed", "rejected", "cancelled"}
    assert r.get("/requests/churn:00000000").status_code == 404


def test_separation_of_duties_applies(api: Api) -> None:
    api.registry.set_policy(
        {"gates": {"production": {"approvals": 1, "approver_not_author": True}}}, actor="server-admin"
    )
    admin = api.client("admin")  # admin registers: the same actor may not approve it
    register(admin, "churn", b"v1")
    rid = admin.post("/versions/churn/1/requests", json={"stage": "production"}).json()["id"]
    own = admin.post(f"/requests/{rid}/approve", json={})
    assert own.status_code == 403 and own.json()["error"] == "PolicyViolation"
    ok = api.client("approver").post(f"/requests/{rid}/approve", json={})
    assert ok.status_code == 200 and ok.json()["status"] == "completed"


def test_complete_an_approved_request(api: Api) -> None:
    api.registry.set_policy({"gates": {"staging": {"approvals": 1}}, "auto_complete": False}, actor="server-admin")
    w = api.client("writer")
    register(w, "churn", b"v1")
    rid = w.post("/versions/churn/1/requests", json={"stage": "staging"}).json()["id"]
    approved = api.client("approver").post(f"/requests/{rid}/approve", json={}).json()
    assert approved["status"] == "pending"
    assert w.post(f"/requests/{rid}/complete", json={}).json()["status"] == "completed"
    assert api.registry.get_version("churn/1").stage == "staging"


def test_version_records_parse_as_python_records(api: Api) -> None:
    mv = register(api.client("writer"), "churn", b"v1", lineage={"run_id": "run-1", "parents": []})
    parsed = ModelVersion.model_validate(mv)
    assert parsed == api.registry.get_version("churn/1")
    assert parsed.lineage.run_id == "run-1"


def test_blob_head(api: Api) -> None:
    w = api.client("writer")
    digest = upload(w, b"some bytes")
    head = w.head(f"/blobs/{digest}")
    assert head.status_code == 200 and head.headers["content-length"] == "10"
    assert w.head("/blobs/sha256:" + "0" * 64).status_code == 404
