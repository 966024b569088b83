"""Webhooks against a real HTTP server on 127.0.0.1 (``http.server`` in a thread)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from modelreg import InvalidInputError, NotFoundError, Registry
from modelreg.governance import Gate, Policy, sign, verify_signature
from modelreg.governance.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER
from tests.governance_support import model_file, run_python

SECRET = "s3cr3t-for-tests"


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Endpoint:
    """Records every POST; ``statuses`` scripts the reply codes (the last one repeats)."""

    url: str
    hits: list[Hit] = field(default_factory=list)
    statuses: list[int] = field(default_factory=lambda: [200])
    hold: threading.Event | None = None
    arrived: threading.Event = field(default_factory=threading.Event)

    def json(self) -> list[dict[str, Any]]:
        return [json.loads(h.body) for h in self.hits]


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    ep = Endpoint(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                ep.hits.append(Hit(self.path, {k: v for k, v in self.headers.items()}, body))
                status = ep.statuses[min(len(ep.hits) - 1, len(ep.statuses) - 1)]
            ep.arrived.set()
            if ep.hold is not None:
                ep.hold.wait(30)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    ep.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield ep
    if ep.hold is not None:
        ep.hold.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MR_HOOK_SECRET", SECRET)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return f"http://127.0.0.1:{port}/hook"


def register(reg: Registry, tmp_path: Path, **kw: Any) -> Any:
    return reg.register("churn", model_file(tmp_path, repr(kw).encode()), capture=None, **kw)


def test_signed_delivery(gov_registry: Registry, endpoint: Endpoint, tmp_path: Path) -> None:
    reg = gov_registry
    hook = reg.add_webhook(endpoint.url, secret_env="MR_HOOK_SECRET", events=["transition"], backoff=0.01)
    mv = register(reg, tmp_path)
    reg.transition(mv.ref, "production", comment="ship it")
    assert reg.flush_webhooks(timeout=60)
    (hit,) = endpoint.hits  # the registration was not subscribed
    ts, sig = hit.headers[TIMESTAMP_HEADER], hit.headers[SIGNATURE_HEADER]
    assert sig == sign(SECRET, ts, hit.body)
    assert verify_signature(SECRET, hit.body, ts, sig)
    assert not verify_signature("wrong", hit.body, ts, sig)
    assert not verify_signature(SECRET, hit.body + b" ", ts, sig)
    assert not verify_signature(SECRET, hit.body, ts, sig, now=float(ts) + 3600)
    assert hit.headers["Content-Type"] == "application/json" and hit.headers["X-Modelreg-Event"] == "transition"
    payload = json.loads(hit.body)
    ev = reg.history("churn")[-1]
    assert payload["event"] == ev.model_dump(mode="json")
    assert payload["id"] == f"churn#{ev.seq}" and payload["webhook"] == hook.id
    assert payload["delivery"] == hit.headers["X-Modelreg-Delivery"]
    (result,) = reg.webhook_deliveries()
    assert (result.ok, result.attempts, result.status, result.error) == (True, 1, 200, None)
    assert (result.model, result.seq, result.action, result.webhook) == ("churn", ev.seq, "transition", hook.id)
    assert reg.webhook_deliveries(local=True) == [result]


def test_failing_endpoint_is_retried_then_given_up(gov_registry: Registry, endpoint: Endpoint, tmp_path: Path) -> None:
    reg = gov_registry
    endpoint.statuses = [500]
    reg.add_webhook(endpoint.url, secret_env="MR_HOOK_SECRET", events=["register"], max_attempts=3, backoff=0.01)
    mv = register(reg, tmp_path)  # the operation succeeds whatever the endpoint does
    assert mv.version == 1
    assert reg.flush_webhooks(timeout=60)
    assert len(endpoint.hits) == 3
    assert len({h.headers["X-Modelreg-Delivery"] for h in endpoint.hits}) == 1  # one delivery, three attempts
    (result,) = reg.webhook_deliveries()
    assert (result.ok, result.attempts, result.status) == (False, 3, 500)
    assert result.error == "HTTP 500 Internal Server Error: ok (gave up after 3 attempts)"
    # recorded durably, in the reserved _webhooks chain
    events = reg.metadata.list_events("_webhooks")
    assert [e.action for e in events] == ["create_model", "webhook_delivery"]
    assert reg.verify_audit("_webhooks")[0] == []


def test_recovering_endpoint(gov_registry: Registry, endpoint: Endpoint, tmp_path: Path) -> None:
    reg = gov_registry
    endpoint.statuses = [503, 429, 204]
    reg.add_webhook(endpoint.url, secret_env="MR_HOOK_SECRET", events=["register"], max_attempts=5, backoff=0.01)
    register(reg, tmp_path)
    assert reg.flush_webhooks(timeout=60)
    assert len(endpoint.hits) == 3
    (result,) = reg.webhook_deliveries()
    assert (result.ok, result.attempts, result.status) == (True, 3, 204)


def test_client_errors_are_not_retried(gov_registry: Registry, endpoint: Endpoint, tmp_path: Path) -> None:
    reg = gov_registry
    endpoint.statuses = [403]
    reg.add_webhook(endpoint.url, secret_env="MR_HOOK_SECRET", events=["register"], max_attempts=5, backoff=0.01)
    register(reg, tmp_path)
    assert reg.flush_webhooks(timeout=60)
    assert len(endpoint.hits) == 1
    (result,) = reg.webhook_deliveries()
    assert (result.ok, result.attempts, result.status) == (False, 1, 403)
    assert result.error == "HTTP 403 Forbidden: ok"


def test_unreachable_endpoint_never_fails_the_operation(gov_registry: Registry, tmp_path: Path) -> None:
    reg = gov_registry
    reg.add_webhook(closed_port_url(), secret_env="MR_HOOK_SECRET", max_attempts=2, backoff=0.01, timeout=2)
    mv = register(reg, tmp_path)
    assert reg.transition(mv.ref, "production").stage.value == "production"
    assert reg.flush_webhooks(timeout=60)
    results = reg.webhook_deliveries()
    # '*' covers the registry's own events too: the webhook's creation is delivered first
    assert [r.action for r in results] == ["add_webhook", "create_model", "register", "transition"]
    assert all(not r.ok and r.attempts == 2 and r.status is None for r in results)
    assert all("Connection refused" in (r.error or "") or "ConnectionRefusedError" in (r.error or "") for r in results)


def test_a_slow_endpoint_never_blocks_the_operation(gov_registry: Registry, endpoint: Endpoint, tmp_path: Path) -> None:
    reg = gov_registry
    endpoint.hold = threading.Event()  # the endpoint answers only when the test says so
    reg.add_webhook(endpoint.url, secret_env="MR_HOOK_SECRET", events=["register", "transition"], timeout=60)
    mv = register(reg, tmp_path)
    assert endpoint.arrived.wait(30)  # the POST for the registration is in flight...
    reg.transition(mv.ref, "staging")  # ...and the registry keeps working meanwhile
    assert reg.get_version(mv.ref).stage.value == "staging"
    assert reg.webhook_deliveries() == [] and not reg.flush_webhooks(timeout=0.05)
    endpoint.hold.set()
    assert reg.flush_webhooks(timeout=60)
    assert [r.action for r in reg.webhook_deliveries()] == ["register", "transition"]


def test_missing_secret_sends_nothing(
    gov_registry: Registry, endpoint: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = gov_registry
    reg.add_webhook(endpoint.url, secret_env="MR_OTHER_SECRET", events=["register"])
    register(reg, tmp_path)
    assert reg.flush_webhooks(timeout=60)
    assert endpoint.hits == []
    (result,) = reg.webhook_deliveries()
    assert not result.ok and result.attempts == 0
    assert result.error == (
        "environment variable MR_OTHER_SECRET (the webhook secret) is not set in this process; nothing was sent"
    )


def test_filters_by_topic_and_model(gov_registry: Registry, endpoint: Endpoint, tmp_path: Path) -> None:
    reg = gov_registry
    reg.add_webhook(
        endpoint.url, secret_env="MR_HOOK_SECRET", events=["request", "approve", "transition"], models=["churn"]
    )
    reg.set_policy(Policy(gates={"production": Gate(approvals=1)}))
    mv = register(reg, tmp_path)
    reg.register("fraud", model_file(tmp_path, b"f"), capture=None)
    reg.transition("fraud/1", "staging")
    req = reg.request_transition(mv.ref, "production", actor="bo")
    reg.approve(req.id, actor="cy")
    assert reg.flush_webhooks(timeout=60)
    assert [(p["event"]["model"], p["event"]["action"]) for p in endpoint.json()] == [
        ("churn", "request_transition"),
        ("churn", "approve"),
        ("churn", "transition"),
    ]


def test_webhook_management_is_audited_and_the_secret_never_stored(gov_registry: Registry) -> None:
    reg = gov_registry
    hook = reg.add_webhook(
        "https://deploy.example.com/hooks/modelreg",
        secret_env="MR_HOOK_SECRET",
        events=["transition", "rollback"],
        comment="deployer",
    )
    assert reg.list_webhooks() == [hook]
    assert (hook.secret_env, hook.events, hook.id[:3]) == ("MR_HOOK_SECRET", ["transition", "rollback"], "wh-")
    stored = reg.metadata.get_state("_registry").extensions
    assert SECRET not in json.dumps(stored)
    assert all(SECRET not in json.dumps(e.model_dump(mode="json")) for e in reg.metadata.list_events("_registry"))
    reg.remove_webhook(hook.id, comment="moved")
    assert reg.list_webhooks() == []
    assert [e.action for e in reg.events(include_internal=True, actions=["webhook"])] == [
        "add_webhook",
        "remove_webhook",
    ]
    with pytest.raises(NotFoundError, match="no webhook 'wh-nope'; list them with `modelreg webhook list`"):
        reg.remove_webhook("wh-nope")


def test_secret_never_written_to_disk(tmp_path: Path, endpoint: Endpoint) -> None:
    root = tmp_path / "reg"
    with Registry(root, actor="ana") as reg:
        reg.add_webhook(endpoint.url, secret_env="MR_HOOK_SECRET", backoff=0.01)
        register(reg, tmp_path)
        assert reg.flush_webhooks(timeout=60)
    assert endpoint.hits
    for path in root.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"url": "ftp://example.com/x"},
            "webhook url must be an http:// or https:// URL with a host, got 'ftp://example.com/x'",
        ),
        ({"url": "file:///etc/passwd"}, "webhook url must be an http:// or https:// URL"),
        ({"secret_env": "my secret"}, "secret_env must be the name of an environment variable"),
        ({"events": ["deploy"]}, "unknown event 'deploy'"),
        ({"events": []}, "events must name at least one event, or '\\*' for all"),
        ({"timeout": 0}, "timeout must be between 0 and 120 seconds, got 0"),
        ({"max_attempts": 0}, "max_attempts must be an integer from 1 to 20, got 0"),
        ({"backoff": 60}, "backoff must be between 0 and 30.0 seconds, got 60"),
    ],
)
def test_invalid_webhooks(gov_registry: Registry, kwargs: dict[str, Any], message: str) -> None:
    args = {"url": "http://127.0.0.1:9/hook", "secret_env": "MR_HOOK_SECRET", **kwargs}
    url = args.pop("url")
    with pytest.raises(InvalidInputError, match=message):
        gov_registry.add_webhook(url, **args)
    assert gov_registry.list_webhooks() == []


def test_other_clients_deliver_registry_wide_webhooks(tmp_path: Path, endpoint: Endpoint) -> None:
    """A webhook added by one client is delivered by another process's change, before that process exits."""
    for uri in (str(tmp_path / "sq"), "file://" + str(tmp_path / "js")):
        endpoint.hits.clear()
        with Registry(uri, actor="admin") as admin:
            admin.add_webhook(endpoint.url, secret_env="MR_HOOK_SECRET", events=["transition"], backoff=0.01)
        code = """
            import sys
            from modelreg import Registry
            reg = Registry(sys.argv[1], actor="ci")
            mv = reg.register("churn", sys.argv[2], capture=None)
            reg.transition(mv.ref, "production")
            # no flush, no close: the interpreter exit waits (boundedly) for the delivery
        """
        proc = run_python(code, uri, str(model_file(tmp_path)), env={"MR_HOOK_SECRET": SECRET})
        assert proc.returncode == 0, proc.stderr
        (hit,) = endpoint.hits
        assert verify_signature(SECRET, hit.body, hit.headers[TIMESTAMP_HEADER], hit.headers[SIGNATURE_HEADER])
        with Registry(uri) as reader:
            (result,) = reader.webhook_deliveries()
            assert result.ok and result.action == "transition"


def test_close_bounds_the_wait(gov_registry: Registry, endpoint: Endpoint, tmp_path: Path) -> None:
    reg = gov_registry
    endpoint.hold = threading.Event()
    reg.add_webhook(endpoint.url, secret_env="MR_HOOK_SECRET", events=["register"], timeout=60)
    register(reg, tmp_path)
    assert endpoint.arrived.wait(30)
    started = time.monotonic()
    reg._gov.close(timeout=0.2)  # gives up waiting; the operation already succeeded
    assert time.monotonic() - started < 30
    endpoint.hold.set()


def test_idle_worker_exits_and_restarts(
    gov_registry: Registry, endpoint: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelreg.governance import webhooks

    monkeypatch.setattr(webhooks, "IDLE_EXIT", 0.05)
    reg = gov_registry
    reg.add_webhook(endpoint.url, secret_env="MR_HOOK_SECRET", events=["register"])
    register(reg, tmp_path)
    assert reg.flush_webhooks(timeout=60)
    dispatcher = reg._gov.dispatcher()
    deadline = time.monotonic() + 30
    while dispatcher._thread is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dispatcher._thread is None, "an idle worker thread should exit"
    register(reg, tmp_path, metrics={"auc": 0.5})
    assert reg.flush_webhooks(timeout=60)
    assert [json.loads(h.body)["event"]["version"] for h in endpoint.hits] == [1, 2]
