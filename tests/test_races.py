"""Many writers at once on a JSON registry, and deterministic conflicts on S3 and GCS.

Race tests: 8 processes x 25 mixed operations (register, transition,
set_alias, set_tags, log_metrics) through the Registry, on local disk and on
Azurite. Afterwards:

- every version number is unique and they are consecutive (1..N, N = registrations);
- replaying the audit log, at most one version holds production after every
  event, and exactly one at the end;
- the final state equals a serial replay of the audit log (stages, aliases,
  tags, logged metrics), and no acknowledged change is missing (each worker
  writes unique tag and metric keys);
- ``verify()`` is clean.

moto checks S3 preconditions but not atomically under true races, so S3 and
GCS get deterministic conflict tests instead: a writer holding a stale
ETag/generation loses, re-reads and wins on fresh state; two creators of the
same version number: one wins, the other takes the next number. Registries of JSON
format 1 (which clients of format 1 may share) keep their own numbering protocol, tested
here too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from modelreg import Registry
from modelreg.models import ModelState
from modelreg.stores import _json_base
from modelreg.stores._conditional import PreconditionFailed
from modelreg.testing.metadata import ev, make_draft, make_model
from tests.test_json_store import Location, forget, make_location

PROCESSES = 8
OPERATIONS = 25

WORKER = textwrap.dedent(
    """
    import json, random, sys, time
    from pathlib import Path
    from modelreg import Registry, StageRules
    from modelreg.errors import InvalidTransitionError
    url, options, worker, n_ops, out, tmp = sys.argv[1:7]
    worker, n_ops = int(worker), int(n_ops)
    # production can only be left by being replaced (the displaced holder is archived), so after the
    # first promotion exactly one version must hold it at every commit
    rules = StageRules.from_table({
        "experimental": ["staging", "production", "archived"], "staging": ["production", "experimental", "archived"],
        "production": [], "archived": ["experimental", "staging", "production"],
    })
    reg = Registry(url, storage_options=json.loads(options), actor=f"worker-{worker}", rules=rules)
    rnd = random.Random(worker)
    done = {"registered": [], "tags": [], "metrics": [], "transitions": 0, "aliases": 0, "refused": 0}
    go = Path(tmp) / "go"
    while not go.exists():  # start together
        time.sleep(0.01)
    for i in range(n_ops):
        kinds = ["register", "transition", "transition", "set_alias", "set_tags", "log_metrics"]
        op = "register" if i < 2 else rnd.choice(kinds)
        if op == "register":
            f = Path(tmp) / f"w{worker}-{i}.bin"
            f.write_bytes(f"worker {worker} op {i}".encode())
            done["registered"].append(reg.register("race", f, capture=None).version)
            continue
        latest = reg.get_model("race").latest_version
        v = rnd.randint(1, latest)
        try:
            if op == "transition":
                reg.transition("race", v, rnd.choice(["staging", "production", "production", "archived"]))
                done["transitions"] += 1
            elif op == "set_alias":
                reg.set_alias("race", rnd.choice(["champion", "challenger"]), v)
                done["aliases"] += 1
            elif op == "set_tags":
                key = f"w{worker}-{i}"
                reg.set_tags(f"race/{v}", {key: "1"})
                done["tags"].append([v, key])
            else:
                key = f"m_w{worker}_{i}"
                reg.log_metrics(f"race/{v}", {key: float(i)})
                done["metrics"].append([v, key])
        except InvalidTransitionError:
            done["refused"] += 1
    done["conflicts"] = dict(reg.metadata.conflicts)
    Path(out).write_text(json.dumps(done))
    """
)


def replay(events: list[Any]) -> dict[str, Any]:
    """Serial replay of one model's audit log: stages, aliases, tags, logged metrics.

    Checks the production invariant after every commit (the events of one commit share
    their time and actor): at most one holder, and exactly one once a version was promoted.
    """
    stages: dict[int, str] = {}
    aliases: dict[str, int] = {}
    tags: dict[int, dict[str, str]] = {}
    metrics: dict[int, dict[str, float]] = {}
    max_production = 0

    def check_commit(last: Any) -> None:
        nonlocal max_production
        holders = sum(s == "production" for s in stages.values())
        assert holders <= 1, f"after event #{last.seq} {holders} versions hold production"
        assert holders >= max_production, f"after event #{last.seq} no version holds production any more"
        max_production = max(max_production, holders)

    for i, e in enumerate(events):
        if e.action == "register":
            stages[e.version] = "experimental"
            tags[e.version], metrics[e.version] = {}, {}
        elif e.action in ("transition", "rollback"):
            assert stages[e.version] == e.before["stage"], f"event #{e.seq} starts from a stage the version was not in"
            stages[e.version] = e.after["stage"]
        elif e.action == "set_alias":
            aliases[e.after["alias"]] = e.after["version"]
        elif e.action == "set_tags":
            for k, val in e.after.items():
                if val is None:
                    tags[e.version].pop(k, None)
                else:
                    tags[e.version][k] = val
        elif e.action == "log_metrics":
            metrics[e.version].update(e.after["metrics"])
        nxt = events[i + 1] if i + 1 < len(events) else None
        if nxt is None or (nxt.time, nxt.actor) != (e.time, e.actor):
            check_commit(e)
    return {"stages": stages, "aliases": aliases, "tags": tags, "metrics": metrics, "ever": max_production}


def run_race(loc: Location, tmp_path: Path) -> None:
    reg = loc.registry()
    reg.create_model("race")
    procs = []
    outs = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for w in range(PROCESSES):
        out = tmp_path / f"worker-{w}.json"
        outs.append(out)
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    WORKER,
                    loc.url,
                    json.dumps(loc.storage_options),
                    str(w),
                    str(OPERATIONS),
                    str(out),
                    str(tmp_path),
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    (tmp_path / "go").write_text("go")
    for p in procs:
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err
    results = [json.loads(o.read_text()) for o in outs]

    forget()
    reg = loc.registry()
    registered = [v for r in results for v in r["registered"]]
    assert len(registered) == len(set(registered)), "a version number was handed out twice"
    versions = reg.list_versions("race")
    assert [v.version for v in versions] == list(range(1, len(registered) + 1))
    assert sorted(registered) == [v.version for v in versions]

    events = reg.history("race")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    expected = replay(events)
    state = reg.metadata.get_state("race")
    assert {v: str(s.stage) for v, s in state.versions.items()} == expected["stages"]
    assert state.aliases == expected["aliases"]
    assert {v: s.tags for v, s in state.versions.items()} == expected["tags"]
    assert {v: s.logged_metrics for v, s in state.versions.items()} == expected["metrics"]
    assert len(state.holders("production")) == expected["ever"] == 1

    # nothing acknowledged was lost
    for r in results:
        for v, key in r["tags"]:
            assert state.versions[v].tags.get(key) == "1", f"tag {key} on version {v} was lost"
        for v, key in r["metrics"]:
            assert key in state.versions[v].logged_metrics, f"metric {key} on version {v} was lost"
    assert sum(e.action == "register" for e in events) == len(registered)
    assert sum(e.action == "set_tags" for e in events) == sum(len(r["tags"]) for r in results)
    assert sum(e.action == "log_metrics" for e in events) == sum(len(r["metrics"]) for r in results)
    report = reg.verify()
    assert report.ok, report.problems
    assert report.events_checked == len(events)
    # the writers really collided: swaps were lost and retried (format 1: version numbers were also
    # taken from under them; format 2 numbers a version in the state's swap itself)
    lost = sum(r["conflicts"].get("state", 0) for r in results)
    taken = sum(r["conflicts"].get("version", 0) for r in results)
    assert lost > 0, (lost, taken)
    assert (taken > 0) if reg.metadata._format["version"] == 1 else (taken == 0), (lost, taken)
    print(
        f"{loc.backend}: {len(events)} events, {len(registered)} versions, {lost} lost swaps retried, "
        f"{taken} version numbers taken by another writer"
    )


@pytest.mark.slow
@pytest.mark.parametrize("backend,fmt", [("local", 2), ("azure", 2), ("local", 1)])
def test_many_processes_race_on_one_model(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str, fmt: int
) -> None:
    forget()
    loc = make_location(request, tmp_path, backend)
    run_race(loc.format_1() if fmt == 1 else loc, tmp_path)


# -- deterministic conflicts (S3 and GCS, and the same on every backend) -------------------------------------


@pytest.fixture(params=["s3", "gcs", "local", "memory", "azure"])
def loc(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    forget()
    return make_location(request, tmp_path, request.param)


def _count_swaps(store: Any) -> dict[str, int]:
    io = store.io
    real = io.swap
    counts = {"ok": 0, "lost": 0}

    def swap(path: str, data: bytes, etag: str) -> str:
        try:
            out = real(path, data, etag)
        except PreconditionFailed:
            counts["lost"] += 1
            raise
        counts["ok"] += 1
        return out

    io.swap = swap
    return counts


def test_stale_etag_loses_then_wins_on_fresh_state(loc: Location) -> None:
    writer_a = loc.store()
    writer_a.create_model(make_model("churn"), ev("create_model"))
    writer_a.add_version(make_draft(n=1), ev("register"))
    stale = writer_a._fetch("churn")  # A read the state (and its ETag / generation) ...
    writer_b = loc.store()
    writer_b.update("churn", lambda s: (s.model_copy(update={"tags": {"b": "1"}}), [ev("b")]))  # ... B changed it
    _json_base.SHARED.states[(writer_a.registry_id, "churn")] = stale  # A still holds the old ETag
    swaps = _count_swaps(writer_a)
    calls: list[dict[str, str]] = []

    def add_a(state: ModelState):
        calls.append(dict(state.tags))
        return state.model_copy(update={"tags": {**state.tags, "a": "1"}}), [ev("a")]

    writer_a.update("churn", add_a)
    assert swaps == {"ok": 1, "lost": 1}  # the stale swap was refused by the object store
    assert calls == [{}, {"b": "1"}]  # fn re-ran on the fresh state
    assert writer_b.get_state("churn").tags == {"a": "1", "b": "1"}  # no lost update
    assert [e.action for e in writer_b.list_events("churn")] == ["create_model", "register", "b", "a"]


def test_two_registrations_on_the_same_state_take_consecutive_numbers(loc: Location) -> None:
    """Format 2: the state's compare-and-swap numbers the version; the writer holding a stale state
    loses the swap, re-reads and takes the next number."""
    a = loc.store()
    a.create_model(make_model("churn"), ev("create_model"))
    stale = a._fetch("churn")  # both writers believe last_version == 0
    b = loc.store()
    first = b.add_version(make_draft(n=1), ev("register"))
    _json_base.SHARED.states[(a.registry_id, "churn")] = stale
    swaps = _count_swaps(a)
    second = a.add_version(make_draft(n=2), ev("register"))
    assert (first.version, second.version) == (1, 2)
    assert swaps == {"ok": 1, "lost": 1}
    versions = b.list_versions("churn")
    assert [(v.version, v.artifact.digest) for v in versions] == [(1, first.digest), (2, second.digest)]
    assert [(e.action, e.version) for e in b.list_events("churn")] == [
        ("create_model", None),
        ("register", 1),
        ("register", 2),
    ]


@pytest.fixture(params=["s3", "gcs", "local", "memory", "azure"])
def loc1(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    """A registry of format 1 (see ``Location.format_1``)."""
    forget()
    return make_location(request, tmp_path, request.param).format_1()


def test_two_creators_of_the_same_version_number(loc1: Location) -> None:
    loc = loc1
    a = loc.store()
    a.create_model(make_model("churn"), ev("create_model"))
    stale = a._fetch("churn")  # both writers believe last_version == 0
    b = loc.store()
    first = b.add_version(make_draft(n=1), ev("register"))
    _json_base.SHARED.states[(a.registry_id, "churn")] = stale
    created = []
    real_create = a.io.create

    def create(path: str, data: bytes) -> str:
        try:
            out = real_create(path, data)
        except FileExistsError:
            created.append((path.rsplit("/", 2)[-2:], "exists"))
            raise
        created.append((path.rsplit("/", 2)[-2:], "created"))
        return out

    a.io.create = create
    second = a.add_version(make_draft(n=2), ev("register"))
    assert (first.version, second.version) == (1, 2)
    assert created[:2] == [(["versions", "1.json"], "exists"), (["versions", "2.json"], "created")]
    versions = b.list_versions("churn")
    assert [(v.version, v.artifact.digest) for v in versions] == [(1, first.digest), (2, second.digest)]
    assert [(e.action, e.version) for e in b.list_events("churn")] == [
        ("create_model", None),
        ("register", 1),
        ("register", 2),
    ]


def test_uncommitted_version_document_is_committed_by_the_next_writer(loc1: Location) -> None:
    """Format 1: a writer that created versions/<n>.json and died: the next registration commits n, then itself."""
    loc = loc1
    store = loc.store()
    store.create_model(make_model("churn"), ev("create_model"))
    orphan = make_draft(n=1, created_by="gone")
    store.io.create(
        store._version_path("churn", 1),
        store._version_doc("churn", 1, orphan.model_dump(mode="json"), ev("register", actor="gone"), "dead-writer"),
    )
    forget()
    reader = loc.store()
    assert reader.list_versions("churn") == []  # not committed: invisible
    nxt = loc.store().add_version(make_draft(n=2), ev("register"))
    assert nxt.version == 2
    versions = reader.list_versions("churn")
    assert [(v.version, v.created_by) for v in versions] == [(1, "gone"), (2, "ana")]
    assert [(e.action, e.actor, e.version) for e in reader.list_events("churn")][1:] == [
        ("register", "gone", 1),
        ("register", "ana", 2),
    ]


def test_competing_registrations_in_threads_stay_consecutive(loc: Location) -> None:
    import threading

    store = loc.store()
    store.create_model(make_model("churn"), ev("create_model"))
    others = [loc.store() for _ in range(3)]
    got: list[int] = []
    lock = threading.Lock()

    def work(s: Any, base: int) -> None:
        for i in range(5):
            v = s.add_version(make_draft(n=base + i), ev("register")).version
            with lock:
                got.append(v)

    threads = [threading.Thread(target=work, args=(s, 10 * i)) for i, s in enumerate(others)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 16))
    assert [v.version for v in store.list_versions("churn")] == list(range(1, 16))
    reg = Registry(metadata=store, artifacts=f"memory://unused-{id(store)}")
    problems, n = reg.verify_audit("churn")
    assert problems == [] and n == 16
