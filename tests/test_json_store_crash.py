"""Crash safety of the JSON store: a writer killed between any two object writes.

For each operation we first count the object writes it makes, then for every
k we run it again on a fresh registry and kill the writer just before its k-th
write. Afterwards, in a "new process" (all caches dropped):

- the registry reads consistently: ``verify()`` is clean and what is visible is
  exactly the state before the operation or exactly the state after it (the
  state document's compare-and-swap is the single commit point);
- the next writer repairs: numbers stay consecutive, tombstones of an interrupted
  purge are written, and ``verify()`` is clean; events left pending in the state
  read back from it and are written out as documents once ``PENDING_EVENTS``
  newer ones exist (``test_events_a_dead_writer_left_pending_are_written_out``).

The in-process kill raises a BaseException subclass (nothing in the store
catches it) and runs on every backend; ``test_killed_process_*`` kill real
child processes with ``os._exit`` on local disk, including inside the lock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelreg import Registry
from modelreg.stores.json import PENDING_EVENTS
from tests.test_json_store import Location, forget, make_location, view


class SimulatedCrash(BaseException):
    """The process died here."""


WRITES = ("create", "swap", "put", "delete")


def count_writes(reg: Registry) -> dict[str, int]:
    io = reg.metadata.io
    seen = {"n": 0}
    for meth in WRITES:
        real = getattr(io, meth)

        def wrapper(*a: Any, _real: Any = real, **kw: Any) -> Any:
            seen["n"] += 1
            return _real(*a, **kw)

        setattr(io, meth, wrapper)
    return seen


def crash_before_write(reg: Registry, k: int) -> dict[str, int]:
    io = reg.metadata.io
    seen = {"n": 0}
    for meth in WRITES:
        real = getattr(io, meth)

        def wrapper(*a: Any, _real: Any = real, **kw: Any) -> Any:
            seen["n"] += 1
            if seen["n"] == k:
                raise SimulatedCrash(f"killed before write {k}")
            return _real(*a, **kw)

        setattr(io, meth, wrapper)
    return seen


def artifact(tmp_path: Path, tag: str) -> Path:
    path = tmp_path / f"{tag}.bin"
    path.write_bytes(f"model-{tag}".encode() * 10)
    return path


# -- scenarios: setup(reg, tmp) then op(reg, tmp) ----------------------------------------------------------


def _setup_versions(n: int) -> Callable[[Registry, Path], None]:
    def setup(reg: Registry, tmp: Path) -> None:
        for i in range(n):
            reg.register("m", artifact(tmp, f"v{i + 1}"), capture=None)

    return setup


def _setup_promoted(reg: Registry, tmp: Path) -> None:
    _setup_versions(2)(reg, tmp)
    reg.transition("m", 1, "production")


def _setup_aliased(reg: Registry, tmp: Path) -> None:
    _setup_versions(3)(reg, tmp)
    reg.set_alias("m", "champion", 1)


SCENARIOS: dict[str, tuple[Callable[[Registry, Path], None], Callable[[Registry, Path], Any]]] = {
    "create_model": (lambda reg, tmp: None, lambda reg, tmp: reg.create_model("m", description="new")),
    "register": (_setup_versions(2), lambda reg, tmp: reg.register("m", artifact(tmp, "new"), capture=None)),
    "register_filling_a_pack": (
        _setup_versions(1),
        lambda reg, tmp: reg.register("m", artifact(tmp, "new"), capture=None),
    ),
    "transition_displacing": (_setup_promoted, lambda reg, tmp: reg.transition("m", 2, "production")),
    "set_alias": (_setup_versions(2), lambda reg, tmp: reg.set_alias("m", "champion", 2)),
    "purge_packed": (_setup_aliased, lambda reg, tmp: reg.purge("m/1")),
    "purge_tail": (_setup_versions(3), lambda reg, tmp: reg.purge("m/3")),
}


def _fresh(loc: Location) -> Registry:
    forget()
    return loc.registry(pack_size=2)


def _event_documents_complete(reg: Registry, name: str) -> None:
    """The whole chain 1..head reads back; every event is its own document, except the newest
    ones the state document still carries as pending (format 2 leaves a writer's events to that
    writer for ``PENDING_EVENTS`` events: readers take them from the state)."""
    store = reg.metadata
    head, _ = store.audit_head(name)
    assert [e.seq for e in store.list_events(name)] == list(range(1, head + 1))
    pending = {int(e["seq"]) for e in store._fetch(name).doc["pending"]["events"]}
    assert all(head - seq < PENDING_EVENTS for seq in pending), (head, sorted(pending))
    for seq in range(1, head + 1):
        if seq in pending:
            continue
        doc = json.loads(store.io.read(store._event_path(name, seq)).data)
        assert doc["seq"] == seq


def _follow_up(reg: Registry, tmp: Path) -> None:
    """The next writer: a registration (which also flushes whatever the dead writer left pending)."""
    reg.register("m", artifact(tmp, "next"), capture=None)


# every scenario on local disk and memory; the protocol is the same everywhere, so the cloud
# backends (whose adapters differ) run the three that touch every kind of write
CLOUD_SCENARIOS = ("register_filling_a_pack", "transition_displacing", "purge_packed")
CASES = [(b, s) for b in ("local", "memory") for s in sorted(SCENARIOS)] + [
    (b, s) for b in ("s3", "gcs", "azure") for s in CLOUD_SCENARIOS
]


@pytest.mark.slow
@pytest.mark.parametrize("backend,scenario", CASES)
def test_writer_killed_between_any_two_writes(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str, scenario: str
) -> None:
    setup, op = SCENARIOS[scenario]
    base = make_location(request, tmp_path, backend)

    # reference run: how many writes, and what the registry looks like before and after
    ref = base.child("reference")
    reg = _fresh(ref)
    setup(reg, tmp_path)
    reg = _fresh(ref)
    before = view(reg)
    seen = count_writes(reg)
    op(reg, tmp_path)
    n_writes = seen["n"]
    after = view(_fresh(ref))
    assert n_writes >= 2 and before != after

    for k in range(1, n_writes + 1):
        loc = base.child(f"crash-{k}")
        reg = _fresh(loc)
        setup(reg, tmp_path)
        reg = _fresh(loc)
        crash_before_write(reg, k)
        with pytest.raises(SimulatedCrash):
            op(reg, tmp_path)

        survivor = _fresh(loc)
        report = survivor.verify()
        assert report.ok, (k, report.problems)
        seen_now = view(survivor)
        assert seen_now in (before, after), f"write {k}/{n_writes}: a partial change is visible"

        _follow_up(survivor, tmp_path)
        repaired = _fresh(loc)
        report = repaired.verify()
        assert report.ok, (k, report.problems)
        _event_documents_complete(repaired, "m")
        numbers = [v.version for v in repaired.list_versions("m")]
        state = repaired.metadata.get_state("m")
        assert state.last_version == max(numbers)
        if scenario.startswith("purge"):
            purged = 1 if scenario == "purge_packed" else 3
            committed = purged not in numbers
            # the purge either happened (number stays taken, record replaced by a tombstone) or not at all
            assert numbers == ([n for n in range(1, 5) if n != purged] if committed else [1, 2, 3, 4])
            if committed:
                store = repaired.metadata
                tomb = json.loads(store.io.read(store._version_path("m", purged)).data)
                assert tomb.get("purged") is True and "record" not in tomb
                for kk in range(state.last_version // store.pack_size):
                    with_records = json.loads(store.io.read(store._pack_path("m", kk)).data)["records"]
                    assert str(purged) not in with_records
        else:
            assert numbers == list(range(1, len(numbers) + 1)), "version numbers must stay consecutive"
        if scenario.startswith("register"):
            # format 2: the state's compare-and-swap numbers and commits the version at once, so a
            # registration killed before it leaves nothing and one killed after it is complete
            committed = seen_now == after
            assert len(numbers) == (len(before["m"]["versions"]) + (2 if committed else 1))


# -- real processes killed with os._exit, local disk ----------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from modelreg import Registry
    url, k, op, tmp = sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
    reg = Registry(url, pack_size=2)
    io = reg.metadata.io
    seen = {"n": 0}
    for meth in ("create", "swap", "put", "delete"):
        real = getattr(io, meth)
        def wrapper(*a, _real=real, **kw):
            seen["n"] += 1
            if seen["n"] == k:
                os._exit(137)
            return _real(*a, **kw)
        setattr(io, meth, wrapper)
    if k == 0:
        # die inside the compare-and-swap, holding the state document's lock
        import modelreg.stores._conditional.local as c
        c.os.replace = lambda *a, **kw: os._exit(137)
    path = tmp / "child.bin"
    path.write_bytes(b"child model " + str(k).encode())
    if op == "register":
        reg.register("m", path, capture=None)
    elif op == "transition":
        reg.transition("m", 2, "production")
    elif op == "purge":
        reg.purge("m/2")
    print("finished without dying")
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("op", ["register", "transition", "purge"])
def test_killed_process_leaves_a_readable_registry_on_local_disk(tmp_path: Path, op: str) -> None:
    for k in range(5):
        loc = Location("local", f"file://{tmp_path}/reg-{k}")
        reg = _fresh(loc)
        _setup_promoted(reg, tmp_path)
        before = view(_fresh(loc))
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, loc.url, str(k), op, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        if proc.returncode == 0:
            assert "finished without dying" in proc.stdout
            continue  # the operation makes fewer than k writes
        assert proc.returncode == 137, proc.stderr
        survivor = _fresh(loc)
        assert survivor.verify().ok
        state_now = view(survivor)
        # the follow-up write must not block on a lock left by the dead process
        _follow_up(survivor, tmp_path)
        repaired = _fresh(loc)
        assert repaired.verify().ok
        _event_documents_complete(repaired, "m")
        versions = repaired.list_versions("m")
        assert sum(v.stage.value == "production" for v in versions) == 1
        if op == "transition" and state_now != before:
            assert repaired.get_version("m@production").version == 2


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_events_a_dead_writer_left_pending_are_written_out(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    """A writer killed after its commit, before writing its event: the event is read from the state
    document meanwhile, and other writers write it out once it is PENDING_EVENTS events old."""
    loc = make_location(request, tmp_path, backend)
    reg = _fresh(loc)
    _setup_versions(1)(reg, tmp_path)
    reg = _fresh(loc)
    crash_before_write(reg, 2)  # write 1 is the commit, write 2 the event document
    with pytest.raises(SimulatedCrash):
        reg.register("m", artifact(tmp_path, "dead"), capture=None)
    other = _fresh(loc)
    head, _ = other.metadata.audit_head("m")
    dead = next(e for e in other.history("m") if e.version == 2)
    assert dead.action == "register" and dead.seq == head
    with pytest.raises(FileNotFoundError):
        other.metadata.io.read(other.metadata._event_path("m", dead.seq))
    for i in range(PENDING_EVENTS + 1):  # the commit after the one that makes it PENDING_EVENTS old
        other.register("m", artifact(tmp_path, f"later-{i}"), capture=None)
    state = other.metadata._fetch("m").doc
    assert dead.seq not in {int(e["seq"]) for e in state["pending"]["events"]}
    written = json.loads(other.metadata.io.read(other.metadata._event_path("m", dead.seq)).data)
    assert written["hash"] == dead.hash
    repaired = _fresh(loc)
    assert repaired.verify().ok
    _event_documents_complete(repaired, "m")
