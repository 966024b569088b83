"""Many processes writing one embedded registry at once: unique, consecutive version numbers,
never two versions in production, and no lost updates."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from modelreg import Registry
from tests.helpers import assert_verified, start_helper, write

pytestmark = pytest.mark.slow

WORKERS = 4


def run_workers(task: str, root: Path, sync: Path, count: int, *args: str) -> list:
    """Start WORKERS processes, release them together once all are ready, return their JSON results."""
    sync.mkdir(parents=True, exist_ok=True)
    procs = [start_helper("workers.py", task, str(root), str(sync), str(w), str(count), *args) for w in range(WORKERS)]
    try:
        deadline = time.monotonic() + 120
        while not all((sync / f"ready-{w}").exists() for w in range(WORKERS)):
            failed = [p for p in procs if p.poll() not in (None, 0)]
            assert not failed, failed[0].communicate()
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.01)
        (sync / "go").touch()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
            results.append(json.loads(out))
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def replay_stages(reg: Registry, name: str) -> dict[int, str]:
    """Rebuild every version's stage from the audit log, checking each event against the replayed state,
    and that no point in the history has two production holders."""
    stages: dict[int, str] = {}
    for ev in reg.history(name):
        if ev.action == "register":
            stages[ev.version] = ev.after["stage"]
        elif ev.action in ("transition", "rollback"):
            assert ev.before == {"stage": stages[ev.version]}, f"event #{ev.seq} was based on a stale state"
            stages[ev.version] = ev.after["stage"]
            holders = [v for v, s in stages.items() if s == "production"]
            assert len(holders) <= 1, f"after event #{ev.seq} versions {holders} are all in production"
            if ev.after["stage"] == "production":
                assert holders == [ev.version]
    return stages


def test_parallel_registrations_get_unique_consecutive_numbers(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    per_worker = 50
    results = run_workers("register", root, tmp_path / "sync", per_worker)
    all_versions = sorted(v for versions in results for v in versions)
    assert all_versions == list(range(1, WORKERS * per_worker + 1))
    for versions in results:
        assert versions == sorted(versions)  # each worker sees its own numbers increase
    with Registry(root) as reg:
        mvs = reg.list_versions("churn")
        assert [m.version for m in mvs] == all_versions
        # every version records the content and author of the worker that got its number
        by_worker: dict[str, set[int]] = {}
        for mv in mvs:
            by_worker.setdefault(mv.created_by, set()).add(mv.version)
        assert by_worker == {f"worker-{w}": set(results[w]) for w in range(WORKERS)}
        events = reg.history("churn")
        assert [e.action for e in events] == ["create_model"] + ["register"] * (WORKERS * per_worker)
        assert sorted(e.version for e in events[1:]) == all_versions
        assert len({m.digest for m in mvs}) == WORKERS * per_worker
        assert reg.verify().ok and reg.verify().blobs_checked == WORKERS * per_worker


def test_concurrent_promotions_never_leave_two_in_production(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    with Registry(root) as reg:
        for i in range(6):
            reg.register("churn", write(tmp_path / "src" / f"{i}.bin", f"model {i}"), capture=None)
    per_worker = 30
    results = run_workers("promote", root, tmp_path / "sync", per_worker, *map(str, range(1, 7)))
    assert sum(r["done"] + r["refused"] for r in results) == WORKERS * per_worker
    assert sum(r["done"] for r in results) >= 1
    with Registry(root) as reg:
        production = reg.list_versions("churn", stage="production")
        assert len(production) == 1
        final = replay_stages(reg, "churn")
        assert final == {mv.version: mv.stage.value for mv in reg.list_versions("churn")}
        promotions = [e for e in reg.history("churn") if e.after == {"stage": "production"}]
        assert len(promotions) == sum(r["done"] for r in results)
        assert_verified(reg)


def test_concurrent_alias_and_metric_updates_are_not_lost(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    with Registry(root) as reg:
        for i in range(2):
            reg.register("churn", write(tmp_path / "src" / f"{i}.bin", f"model {i}"), capture=None)
    per_worker = 25
    assert run_workers("annotate", root, tmp_path / "sync", per_worker) == ["ok"] * WORKERS
    with Registry(root) as reg:
        aliases = reg.get_model("churn").aliases
        assert aliases == {f"w{w}-{i}": 1 + i % 2 for w in range(WORKERS) for i in range(per_worker)}
        logged = reg.get_version("churn/1").logged_metrics
        assert logged == {f"w{w}_m{i}": float(i) for w in range(WORKERS) for i in range(per_worker)}
        assert len(reg.metric_history("churn/1")) == WORKERS * per_worker
        actions = [e.action for e in reg.history("churn")]
        assert actions.count("set_alias") == actions.count("log_metrics") == WORKERS * per_worker
        assert_verified(reg)


def test_threads_sharing_one_registry(tmp_path: Path) -> None:
    """One Registry object used from several threads (a web app, a thread pool) serialises its writes."""
    reg = Registry(tmp_path / "reg")
    reg.register("churn", write(tmp_path / "base.bin", b"base"), capture=None)
    errors: list[BaseException] = []
    got: list[int] = []

    def work(t: int) -> None:
        try:
            for i in range(15):
                got.append(
                    reg.register("churn", write(tmp_path / f"t{t}" / f"{i}.bin", f"{t}-{i}"), capture=None).version
                )
                reg.set_tags("churn/1", {f"t{t}-{i}": "x"})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(got) == list(range(2, 62))
    assert len(reg.get_version("churn/1").tags) == 60
    assert_verified(reg)
    reg.close()


def test_a_writer_waits_for_a_long_transaction(tmp_path: Path) -> None:
    """A writer blocked by another process' open write transaction waits (busy timeout) instead of failing."""
    root = tmp_path / "reg"
    reg = Registry(root)
    reg.register("churn", write(tmp_path / "a.bin", b"a"), capture=None)
    script = (
        "import sqlite3, sys, time\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(1.0); c.execute('COMMIT')\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script, str(root / "modelreg.db")], stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        mv = reg.register("churn", write(tmp_path / "b.bin", b"b"), capture=None)
        assert mv.version == 2
        holder.wait(timeout=30)
    assert holder.returncode == 0
    reg.close()
