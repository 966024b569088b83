"""Tokens, roles, revocation, read-only mode, request limits, the rate limit and startup refusals."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from modelreg import Registry
from modelreg.api.auth import RateLimiter
from modelreg.api.core import Settings
from modelreg.api.errors import RateLimited
from modelreg.api.server import check_startup
from modelreg.api.tokens import create_token, hash_token, list_tokens, revoke_token
from modelreg.errors import AlreadyExistsError, InvalidInputError, NotFoundError, PolicyViolation
from tests.api.conftest import Api, register, upload

# one call per endpoint that changes something, each with a valid body: (role needed, method, path, body)
WRITES: list[tuple[str, str, str, object]] = [
    ("writer", "POST", "/versions/churn/1/transition", {"stage": "staging"}),
    ("writer", "POST", "/models/churn/rollback", {"stage": "production"}),
    ("writer", "PUT", "/models/churn/aliases/champion", {"version": 1}),
    ("writer", "DELETE", "/models/churn/aliases/keep", None),
    ("writer", "POST", "/versions/churn/1/tags", {"set": {"a": "b"}}),
    ("writer", "PUT", "/versions/churn/1/description", {"description": "changed"}),
    ("writer", "POST", "/versions/churn/1/metrics", {"metrics": {"auc": 1.0}}),
    ("writer", "POST", "/versions/churn/1/requests", {"stage": "staging"}),
    ("writer", "POST", "/models/churn/versions", {"files": [{"path": "m.bin", "digest": "DIGEST", "size": 2}]}),
    ("writer", "PUT", "/blobs/DIGEST", b"v9"),
    ("approver", "POST", "/requests/RID/approve", {}),
    ("approver", "POST", "/requests/RID/reject", {}),
    ("admin", "POST", "/tokens", {"name": "new", "role": "reader"}),
    ("admin", "DELETE", "/tokens/writer2", None),
    ("admin", "GET", "/tokens", None),
]


def _state(api: Api) -> tuple[object, ...]:
    reg = api.registry
    return (
        [v.model_dump() for v in reg.list_versions("churn")],
        [e.hash for e in reg.history("churn")],
        [t.name for t in list_tokens(reg)],
        [q.status for q in reg.list_requests("all")],
    )


def _send(api: Api, role: str, method: str, path: str, body: object, rid: str, digest: str) -> int:
    client = api.client(role)
    path = path.replace("RID", rid).replace("DIGEST", digest)
    if isinstance(body, bytes):
        return client.request(method, path, content=body).status_code
    if isinstance(body, dict) and "files" in body:
        body = {"files": [{**body["files"][0], "digest": digest}]}
    return client.request(method, path, json=body).status_code


def test_every_role_boundary_refuses_and_changes_nothing(api: Api) -> None:
    w = api.client("writer")
    register(w, "churn", b"v1")
    w.put("/models/churn/aliases/keep", json={"version": 1})
    rid = api.registry.request_transition("churn/1", "staging", actor="someone").id
    import hashlib

    digest = "sha256:" + hashlib.sha256(b"v9").hexdigest()
    ranks = ["reader", "writer", "approver", "admin"]
    for needed, method, path, body in WRITES:
        for role in ranks[: ranks.index(needed)]:
            before = _state(api)
            status = _send(api, role, method, path, body, rid, digest)
            assert status == 403, (role, method, path, status)
            assert _state(api) == before, (role, method, path)
            assert not api.registry.artifacts.exists(digest)


def test_missing_bad_and_revoked_tokens_are_401(api: Api) -> None:
    register(api.client("writer"), "churn", b"v1")
    r = api.client().get("/models")
    assert r.status_code == 401 and r.json()["error"] == "Unauthorized"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert api.client(token="mrt_not-a-token").get("/models").status_code == 401
    basic = api.client().get("/models", headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401 and "Bearer" in basic.json()["message"]
    reader = api.client("reader")
    assert reader.get("/models").status_code == 200
    revoked = api.client("admin").delete("/tokens/reader")
    assert revoked.status_code == 200 and revoked.json()["name"] == "reader"
    assert "sha256" not in revoked.json()
    assert reader.get("/models").status_code == 401  # at once on this server


def test_revocation_by_another_process_applies_within_the_ttl(make_api: Callable[..., Api]) -> None:
    api = make_api(token_ttl=0.2)
    reader = api.client("reader")
    assert reader.get("/models").status_code == 200
    revoke_token(api.registry, "reader", by="tester")
    time.sleep(0.3)
    assert reader.get("/models").status_code == 401


def test_tokens_over_the_api(api: Api) -> None:
    admin = api.client("admin")
    made = admin.post("/tokens", json={"name": "ci-deploy", "role": "writer", "actor": "ci@example.com"})
    assert made.status_code == 201
    secret = made.json()["token"]
    assert made.json()["info"]["actor"] == "ci@example.com" and secret.startswith("mrt_")
    assert api.client(token=secret).get("/whoami").json()["token"] == "ci-deploy"
    names = [t["name"] for t in admin.get("/tokens").json()]
    assert "ci-deploy" in names and all("sha256" not in t for t in admin.get("/tokens").json())
    again = admin.post("/tokens", json={"name": "ci-deploy", "role": "reader"})
    assert again.status_code == 409 and again.json()["error"] == "AlreadyExistsError"
    assert admin.delete("/tokens/nope").status_code == 404
    assert admin.post("/tokens", json={"name": "x", "role": "god"}).status_code == 422
    events = [e for e in api.registry.events(include_internal=True).events if e.model == "_registry"]
    made_events = [e for e in events if e.action == "create_token" and e.after and e.after["token"] == "ci-deploy"]
    assert made_events and made_events[0].actor == "admin@example.com"
    assert secret not in str([e.model_dump() for e in events])


def test_tokens_are_stored_hashed(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "r", actor="ana")
    info, secret = create_token(reg, "ci", "reader")
    assert info.actor == "ci" and info.created_by == "ana" and secret.startswith(info.hint)
    raw = reg.metadata.get_state("_registry").extensions["api_tokens"]
    assert raw["ci"]["sha256"] == hash_token(secret) and secret not in str(raw)
    with pytest.raises(AlreadyExistsError):
        create_token(reg, "ci", "writer")
    with pytest.raises(InvalidInputError):
        create_token(reg, "bad name!", "reader")
    with pytest.raises(InvalidInputError):
        create_token(reg, "x", "superuser")
    with pytest.raises(NotFoundError):
        revoke_token(reg, "nope")
    # the policy's admins alone manage tokens
    reg.set_policy({"admins": ["ana"]}, actor="ana")
    with pytest.raises(PolicyViolation):
        create_token(reg, "other", "reader", by="bob")
    with pytest.raises(PolicyViolation):
        revoke_token(reg, "ci", by="bob")
    assert revoke_token(reg, "ci", by="ana").name == "ci"
    assert list_tokens(reg) == []
    reg.close()


def test_read_only_server_refuses_every_change(make_api: Callable[..., Api]) -> None:
    api = make_api(read_only=True)
    register_attempt = api.client("admin").put("/blobs/sha256:" + "0" * 64, content=b"x")
    assert register_attempt.status_code == 403 and "read-only" in register_attempt.json()["message"]
    assert api.client("admin").get("/whoami").json()["read_only"] is True
    assert api.client("reader").get("/models").status_code == 200


def test_json_body_limits_and_content_type(make_api: Callable[..., Api]) -> None:
    api = make_api(max_body=1024, max_upload=4096)
    w = api.client("writer")
    register(w, "churn", b"v1")
    big = w.put("/versions/churn/1/description", json={"description": "x" * 2000})
    assert big.status_code == 413 and big.json()["error"] == "PayloadTooLarge"
    form = w.put("/versions/churn/1/description", content=b'{"description": "x"}')
    assert form.status_code == 422 and "application/json" in form.json()["message"]
    bad_json = w.put("/versions/churn/1/description", content=b"{", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 422
    unknown_field = w.put("/versions/churn/1/description", json={"description": "x", "oops": 1})
    assert unknown_field.status_code == 422 and "oops" in unknown_field.json()["message"]
    assert w.put("/blobs/sha256:" + "0" * 64, content=b"y" * 5000).status_code == 413

    def chunks() -> object:
        for _ in range(10):
            yield b"z" * 1000

    streamed = w.put("/blobs/sha256:" + "0" * 64, content=chunks())  # no Content-Length: counted as it comes
    assert streamed.status_code == 413
    assert api.registry.get_version("churn/1").description == ""


def test_rate_limit_answers_429_with_retry_after(make_api: Callable[..., Api]) -> None:
    api = make_api(rate=1, burst=3)
    r = api.client("reader")
    statuses = [r.get("/models").status_code for _ in range(5)]
    assert statuses[:3] == [200, 200, 200] and statuses[-1] == 429
    limited = r.get("/models")
    assert limited.json()["error"] == "RateLimited" and int(limited.headers["retry-after"]) >= 1
    assert api.client("writer").get("/models").status_code == 200  # each token has its own bucket


def test_token_bucket_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(2, 2, clock=lambda: now[0])
    limiter.take("a")
    limiter.take("a")
    with pytest.raises(RateLimited) as err:
        limiter.take("a")
    assert err.value.retry_after == 1
    now[0] = 0.5
    limiter.take("a")
    RateLimiter(0).take("a")  # no limit


def test_no_auth_on_loopback_acts_as_the_server_actor(make_api: Callable[..., Api]) -> None:
    api = make_api(tokens=False, no_auth=True, actor="local-dev", allowed_hosts=None)
    anon = api.client()
    assert anon.get("/whoami").json() == {"token": None, "role": "admin", "actor": "local-dev", "read_only": False}
    register(anon, "churn", b"v1")
    assert api.registry.get_version("churn/1").created_by == "local-dev"


def test_no_auth_refuses_foreign_host_headers(make_api: Callable[..., Api]) -> None:
    api = make_api(tokens=False, no_auth=True, allowed_hosts=("127.0.0.1", "localhost"))
    ok = api.client().get("/whoami", headers={"Host": "localhost"})
    assert ok.status_code == 200
    rebound = api.client().get("/whoami", headers={"Host": "evil.example"})
    assert rebound.status_code == 403 and rebound.json()["error"] == "Forbidden"


def test_startup_refusals(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "r", actor="ana")
    with pytest.raises(InvalidInputError, match="no API tokens"):
        check_startup(reg, "127.0.0.1", Settings())
    with pytest.raises(InvalidInputError, match="refused beyond this machine"):
        check_startup(reg, "0.0.0.0", Settings(no_auth=True))
    check_startup(reg, "127.0.0.1", Settings(no_auth=True))
    create_token(reg, "ci", "reader")
    check_startup(reg, "0.0.0.0", Settings())
    reg.close()


def test_upload_digest_must_match(api: Api) -> None:
    w = api.client("writer")
    wrong = w.put("/blobs/sha256:" + "1" * 64, content=b"content")
    assert wrong.status_code == 422 and "hashes to" in wrong.json()["message"]
    assert not api.registry.artifacts.exists("sha256:" + "1" * 64)
    assert w.put("/blobs/md5:abc", content=b"x").status_code == 422
    assert upload(w, b"content").startswith("sha256:")
