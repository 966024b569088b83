"""Races: approvers acting at once, an approval racing registrations or another promotion.

Multi-process tests open the same registry from several interpreters (SQLite,
and the JSON store on a shared folder), start them together behind a file
barrier, and then check invariants that hold whatever the interleaving.
Threaded variants run on every metadata store.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from modelreg import InvalidTransitionError, Registry, Stage
from modelreg.governance import Gate, Policy
from tests.governance_support import SHARED_BACKENDS, model_file, start_python

WORKER = """
import json, sys, time
from pathlib import Path
from modelreg import Registry

uri, ready, go, op, *rest = sys.argv[1:]
reg = Registry(uri)
Path(ready).touch()
deadline = time.monotonic() + 120
while not Path(go).exists():
    if time.monotonic() > deadline:
        raise SystemExit("barrier timed out")
    time.sleep(0.002)
results = []
try:
    if op == "approve":
        request_id, actor = rest
        try:
            r = reg.approve(request_id, actor)
            results.append({"ok": True, "status": r.status, "approvals": r.approvers})
        except Exception as exc:
            results.append({"ok": False, "error": type(exc).__name__, "message": str(exc)})
    elif op == "register":
        path, count, actor = rest
        for i in range(int(count)):
            mv = reg.register("churn", path, metrics={"auc": 0.5}, actor=actor, capture=None)
            results.append({"ok": True, "version": mv.version})
finally:
    reg.close()
print(json.dumps(results))
"""


class Race:
    """Start workers, release them together, collect their JSON results."""

    def __init__(self, tmp_path: Path, uri: str) -> None:
        self.dir = tmp_path / f"race-{time.monotonic_ns()}"
        self.dir.mkdir()
        self.uri = uri
        self.go = self.dir / "go"
        self.procs: list[Any] = []

    def add(self, op: str, *args: str) -> None:
        ready = self.dir / f"ready-{len(self.procs)}"
        self.procs.append((ready, start_python(WORKER, self.uri, str(ready), str(self.go), op, *args)))

    def run(self) -> list[list[dict[str, Any]]]:
        deadline = time.monotonic() + 120
        while not all(r.exists() for r, _ in self.procs):
            dead = [p for _, p in self.procs if p.poll() is not None]
            if dead:
                raise AssertionError(f"a worker died before the barrier: {dead[0].communicate()[1]}")
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.01)
        self.go.touch()
        out = []
        for _, proc in self.procs:
            stdout, stderr = proc.communicate(timeout=300)
            assert proc.returncode == 0, stderr
            out.append(json.loads(stdout.strip().splitlines()[-1]))
        return out


@pytest.fixture(params=sorted(SHARED_BACKENDS))
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    uri = SHARED_BACKENDS[request.param](tmp_path)
    reg = Registry(uri, actor="ana")
    yield uri, reg
    reg.close()


def setup_request(reg: Registry, tmp_path: Path, approvals: int) -> tuple[Any, Any]:
    base = reg.register("churn", model_file(tmp_path, b"v1"), metrics={"auc": 0.8}, capture=None)
    reg.transition(base.ref, "production")
    reg.set_policy(Policy(gates={"production": Gate(approvals=approvals, metrics=["metrics.auc >= @production"])}))
    mv = reg.register("churn", model_file(tmp_path, b"v2"), metrics={"auc": 0.9}, capture=None)
    return mv, reg.request_transition(mv.ref, "production", actor="bo")


def check_consistent(reg: Registry, name: str = "churn") -> None:
    problems, _ = reg.verify_audit(name)
    assert problems == []
    state = reg.metadata.get_state(name)
    assert len(state.holders(Stage.PRODUCTION)) <= 1


def transitions_into(reg: Registry, version: int, stage: str = "production") -> list[Any]:
    return [
        e
        for e in reg.history("churn")
        if e.action == "transition" and e.version == version and (e.after or {}).get("stage") == stage
    ]


@pytest.mark.slow
def test_two_approvers_at_once_processes(shared: Any, tmp_path: Path) -> None:
    uri, reg = shared
    mv, req = setup_request(reg, tmp_path, approvals=2)
    race = Race(tmp_path, uri)
    race.add("approve", req.id, "cy")
    race.add("approve", req.id, "dee")
    results = [r[0] for r in race.run()]
    assert all(r["ok"] for r in results), results
    assert sorted(r["status"] for r in results) == ["completed", "pending"]
    final = reg.get_request(req.id)
    assert final.status == "completed" and sorted(final.approvers) == ["cy", "dee"]
    assert len(transitions_into(reg, mv.version)) == 1
    assert reg.get_version("churn@production").version == mv.version
    check_consistent(reg)


@pytest.mark.slow
def test_more_approvers_than_needed_processes(shared: Any, tmp_path: Path) -> None:
    uri, reg = shared
    mv, req = setup_request(reg, tmp_path, approvals=3)
    race = Race(tmp_path, uri)
    for who in ("c1", "c2", "c3", "c4", "c5"):
        race.add("approve", req.id, who)
    results = [r[0] for r in race.run()]
    ok = [r for r in results if r["ok"]]
    failed = [r for r in results if not r["ok"]]
    assert len(ok) == 3 and [r["status"] for r in ok].count("completed") == 1
    assert len(failed) == 2 and {r["error"] for r in failed} == {"InvalidTransitionError"}
    assert all("was already completed" in r["message"] for r in failed)
    final = reg.get_request(req.id)
    assert final.status == "completed" and len(final.approvals) == 3
    assert len([e for e in reg.history("churn") if e.action == "approve"]) == 3
    assert len(transitions_into(reg, mv.version)) == 1
    check_consistent(reg)


@pytest.mark.slow
def test_approval_racing_registrations_processes(shared: Any, tmp_path: Path) -> None:
    uri, reg = shared
    mv, req = setup_request(reg, tmp_path, approvals=1)
    race = Race(tmp_path, uri)
    race.add("register", str(model_file(tmp_path, b"r1")), "5", "trainer-1")
    race.add("approve", req.id, "cy")
    race.add("register", str(model_file(tmp_path, b"r2")), "5", "trainer-2")
    out = race.run()
    assert out[1][0]["ok"] and out[1][0]["status"] == "completed"
    new_versions = sorted(r["version"] for r in out[0] + out[2])
    assert new_versions == list(range(3, 13))
    assert [v.version for v in reg.list_versions("churn")] == list(range(1, 13))
    assert reg.get_version("churn@production").version == mv.version
    assert reg.get_version("churn/1").stage == Stage.ARCHIVED
    assert all(v.stage == Stage.EXPERIMENTAL for v in reg.list_versions("churn")[2:])
    assert reg.get_request(req.id).status == "completed"
    check_consistent(reg)


@pytest.mark.slow
def test_approval_racing_another_promotion_processes(shared: Any, tmp_path: Path) -> None:
    uri, reg = shared
    base = reg.register("churn", model_file(tmp_path, b"v1"), metrics={"auc": 0.8}, capture=None)
    reg.transition(base.ref, "production")
    reg.set_policy(Policy(gates={"production": Gate(approvals=1, metrics=["metrics.auc >= @production"])}))
    v2 = reg.register("churn", model_file(tmp_path, b"v2"), metrics={"auc": 0.85}, capture=None)
    v3 = reg.register("churn", model_file(tmp_path, b"v3"), metrics={"auc": 0.9}, capture=None)
    r2 = reg.request_transition(v2.ref, "production", actor="bo")
    r3 = reg.request_transition(v3.ref, "production", actor="bo")
    race = Race(tmp_path, uri)
    race.add("approve", r2.id, "cy")
    race.add("approve", r3.id, "dee")
    race.run()
    # v3 beats every other version, so it ends in production whatever the order
    assert reg.get_version("churn@production").version == 3
    final2 = reg.get_request(r2.id)
    if final2.status == "completed":
        # v2 went first, then v3 replaced it
        assert reg.get_version(v2.ref).stage == Stage.ARCHIVED
        seqs = [e.seq for e in transitions_into(reg, 2)] + [e.seq for e in transitions_into(reg, 3)]
        assert seqs == sorted(seqs)
    else:
        # v3 went first; v2 was then measured against v3, atomically
        assert final2.status == "pending"
        assert final2.unmet == [
            "metrics.auc >= @production: churn/2 has auc = 0.85, production version churn/3 has 0.9"
        ]
        assert reg.get_version(v2.ref).stage == Stage.EXPERIMENTAL
    assert reg.get_request(r3.id).status == "completed"
    check_consistent(reg)


def _threads(targets: list[Any]) -> list[Any]:
    results: list[Any] = [None] * len(targets)
    barrier = threading.Barrier(len(targets))

    def run(i: int, fn: Any) -> None:
        barrier.wait()
        try:
            results[i] = fn()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return results


def test_approvers_at_once_threads(gov_registry: Registry, tmp_path: Path) -> None:
    reg = gov_registry
    mv, req = setup_request(reg, tmp_path, approvals=2)
    results = _threads([lambda w=w: reg.approve(req.id, actor=w) for w in ("c1", "c2", "c3")])
    ok = [r for r in results if not isinstance(r, Exception)]
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(ok) == 2 and len(errors) == 1 and isinstance(errors[0], InvalidTransitionError)
    assert reg.get_request(req.id).status == "completed"
    assert len(transitions_into(reg, mv.version)) == 1
    check_consistent(reg)


def test_approval_racing_registration_threads(gov_registry: Registry, tmp_path: Path) -> None:
    reg = gov_registry
    mv, req = setup_request(reg, tmp_path, approvals=1)
    path = model_file(tmp_path, b"new")
    results = _threads(
        [
            lambda: [reg.register("churn", path, capture=None, actor="trainer").version for _ in range(3)],
            lambda: reg.approve(req.id, actor="cy"),
        ]
    )
    assert not any(isinstance(r, Exception) for r in results), results
    assert sorted(results[0]) == [3, 4, 5]
    assert results[1].status == "completed"
    assert reg.get_version("churn@production").version == mv.version
    check_consistent(reg)
