"""The audit trail: every mutation writes its event (actor, UTC time, action, before/after, comment)
in the same transaction as the change; events are hash-chained per model and ``verify()`` names
an edited, deleted or truncated event."""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from modelreg import ModelNotFound, Registry
from modelreg.models import GENESIS_HASH, AuditEvent
from modelreg.stores.sqlite import SQLiteMetadataStore
from tests.helpers import (
    FAST_BACKENDS,
    assert_verified,
    metadata_snapshot,
    open_backend,
    write,
)


class Recorder:
    """Runs one mutation and returns the audit events it added, checking their common fields."""

    def __init__(self, reg: Registry, name: str) -> None:
        self.reg, self.name = reg, name

    def __call__(self, fn: Any, *args: Any, **kwargs: Any) -> list[AuditEvent]:
        try:
            before = len(self.reg.history(self.name))
        except ModelNotFound:
            before = 0
        t0 = datetime.now(timezone.utc)
        fn(*args, **kwargs)
        t1 = datetime.now(timezone.utc)
        new = self.reg.history(self.name)[before:]
        assert new, f"{fn.__name__} wrote no audit event"
        for ev in new:
            assert ev.model == self.name
            assert ev.time.utcoffset() == timedelta(0), "event times are UTC"
            assert t0 - timedelta(seconds=1) <= ev.time <= t1
        return new


def summary(events: list[AuditEvent]) -> list[tuple[Any, ...]]:
    return [(e.action, e.actor, e.version, e.before, e.after, e.comment) for e in events]


def test_every_mutation_writes_an_event(registry: Registry, tmp_path: Path) -> None:
    rec = Recorder(registry, "churn")
    f1 = write(tmp_path / "a" / "model.bin", b"one")
    f2 = write(tmp_path / "b" / "model.bin", b"two")

    assert summary(rec(registry.create_model, "churn", description="d", actor="ana")) == [
        ("create_model", "ana", None, None, {"owner": "ana"}, None)
    ]
    (ev,) = rec(registry.register, "churn", f1, actor="ana", capture=None)
    assert (ev.action, ev.actor, ev.version, ev.before) == ("register", "ana", 1, None)
    assert ev.after is not None and ev.after["stage"] == "experimental" and ev.after["size"] == 3
    # the event is stamped when the version commits, inside the store's atomic step
    assert registry.get_version("churn/1").created_at <= ev.time
    rec(registry.register, "churn", f2, actor="bob", capture=None)

    assert summary(rec(registry.set_tags, "churn/1", {"team": "fraud"}, actor="bob")) == [
        ("set_tags", "bob", 1, {"team": None}, {"team": "fraud"}, None)
    ]
    assert summary(rec(registry.set_description, "churn/1", "calibrated", actor="bob")) == [
        ("set_description", "bob", 1, {"description": ""}, {"description": "calibrated"}, None)
    ]
    assert summary(rec(registry.update_model, "churn", description="churn model", actor="cy")) == [
        ("update_model", "cy", None, {"description": "d"}, {"description": "churn model"}, None)
    ]
    assert summary(rec(registry.set_alias, "churn", "champion", 1, actor="ana", comment="best")) == [
        ("set_alias", "ana", 1, {"alias": "champion", "version": None}, {"alias": "champion", "version": 1}, "best")
    ]
    assert summary(rec(registry.delete_alias, "churn", "champion", actor="ana")) == [
        ("delete_alias", "ana", 1, {"alias": "champion", "version": 1}, None, None)
    ]
    assert summary(rec(registry.log_metrics, "churn/1", {"auc": 0.9}, step=3, actor="mon", comment="nightly")) == [
        ("log_metrics", "mon", 1, {"metrics": {"auc": None}}, {"metrics": {"auc": 0.9}, "step": 3}, "nightly")
    ]
    assert summary(rec(registry.transition, "churn", 1, "production", actor="ana", comment="go")) == [
        ("transition", "ana", 1, {"stage": "experimental"}, {"stage": "production"}, "go")
    ]
    assert summary(rec(registry.transition, "churn", 2, "production", actor="bob", comment="better")) == [
        ("transition", "bob", 1, {"stage": "production"}, {"stage": "archived"}, "replaced in production by version 2"),
        ("transition", "bob", 2, {"stage": "experimental"}, {"stage": "production"}, "better"),
    ]
    assert summary(rec(registry.rollback, "churn", actor="cy", comment="regression")) == [
        ("rollback", "cy", 2, {"stage": "production"}, {"stage": "archived"}, "regression"),
        ("rollback", "cy", 1, {"stage": "archived"}, {"stage": "production"}, "regression"),
    ]
    rec(registry.transition, "churn/2", "staging", actor="ana")
    assert summary(rec(registry.archive, "churn/2", actor="ana", comment="old")) == [
        ("transition", "ana", 2, {"stage": "staging"}, {"stage": "archived"}, "old")
    ]
    digest = registry.get_version("churn/2").digest
    assert summary(rec(registry.purge, "churn/2", actor="root", comment="gdpr")) == [
        ("purge", "root", 2, {"digest": digest, "stage": "archived", "aliases": []}, None, "gdpr")
    ]

    events = registry.history("churn")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert all(a.time <= b.time for a, b in itertools.pairwise(events))
    assert_verified(registry)


@pytest.fixture(params=FAST_BACKENDS)
def fast_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    yield from open_backend(request, tmp_path)


def test_no_op_changes_write_no_event(fast_registry: Registry, tmp_path: Path) -> None:
    registry = fast_registry
    registry.register("churn", write(tmp_path / "m.bin", b"m"), tags={"a": "1"}, description="d", capture=None)
    registry.set_alias("churn", "champion", 1)
    before = metadata_snapshot(registry)
    registry.set_tags("churn/1", {"a": "1"})
    registry.set_description("churn/1", "d")
    registry.set_alias("churn", "champion", 1)
    registry.update_model("churn")
    assert metadata_snapshot(registry) == before


def test_events_form_a_hash_chain_per_model(registry: Registry, tmp_path: Path) -> None:
    for name in ("churn", "team/fraud"):
        for i in range(3):
            registry.register(name, write(tmp_path / name / f"{i}.bin", f"{name}{i}"), capture=None)
        registry.transition(name, 2, "production")
        registry.set_alias(name, "champion", 2)
    for name in ("churn", "team/fraud"):
        events = registry.history(name)
        assert [e.seq for e in events] == list(range(1, 7))
        assert events[0].prev_hash == GENESIS_HASH
        for prev, ev in itertools.pairwise(events):
            assert ev.prev_hash == prev.hash
        assert all(ev.expected_hash() == ev.hash for ev in events)
        assert registry.metadata.audit_head(name) == (events[-1].seq, events[-1].hash)
    everything = registry.history()
    assert len(everything) == 12 and {e.model for e in everything} == {"churn", "team/fraud"}
    report = registry.verify()
    assert report.ok and report.events_checked == 12


# -- tampering with the SQLite database directly -------------------------------------------------------


@pytest.fixture
def tampered(tmp_path: Path) -> Iterator[tuple[Registry, sqlite3.Connection]]:
    """An embedded registry with churn (7 events) and fraud (2 events), plus a raw connection to its database."""
    reg = Registry(tmp_path / "reg")
    for i in range(3):
        reg.register("churn", write(tmp_path / "src" / f"{i}.bin", f"churn {i}"), actor="ana", capture=None)
    reg.transition("churn", 1, "production", actor="ana", comment="first")
    reg.transition("churn", 2, "production", actor="bob", comment="second")  # two events: #6 and #7
    reg.register("fraud", write(tmp_path / "src" / "f.bin", b"fraud"), capture=None)
    assert_verified(reg)
    conn = sqlite3.connect(tmp_path / "reg" / "modelreg.db", isolation_level=None)
    yield reg, conn
    conn.close()
    reg.close()


def problems(reg: Registry) -> list[tuple[str, str | None, str]]:
    report = reg.verify()
    assert report.ok is (not report.problems)
    return [(p.kind, p.model, p.detail) for p in report.problems]


def test_verify_names_an_edited_event(tampered: tuple[Registry, sqlite3.Connection]) -> None:
    reg, conn = tampered
    conn.execute("UPDATE events SET actor='mallory' WHERE model='churn' AND seq=3")
    (found,) = problems(reg)
    assert found[:2] == ("audit_edited", "churn")
    assert found[2].startswith("event #3 of 'churn' (register by mallory at ")
    assert found[2].endswith("was edited: its content no longer matches its hash")
    assert reg.verify("fraud").ok  # other models are unaffected


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("after", json.dumps({"stage": "staging"})),
        ("before", json.dumps({"stage": "archived"})),
        ("comment", "nothing to see"),
        ("time", "2020-01-01T00:00:00+00:00"),
        ("version", 3),
        ("action", "set_tags"),
    ],
)
def test_verify_detects_an_edit_of_any_field(
    tampered: tuple[Registry, sqlite3.Connection], column: str, value: Any
) -> None:
    reg, conn = tampered
    conn.execute(f"UPDATE events SET {column}=? WHERE model='churn' AND seq=5", (value,))
    (found,) = problems(reg)
    assert found[0] == "audit_edited" and found[2].startswith("event #5 of 'churn' (")


def test_verify_detects_an_edit_whose_hash_was_recomputed(tampered: tuple[Registry, sqlite3.Connection]) -> None:
    reg, conn = tampered
    (ev,) = [e for e in reg.history("churn") if e.seq == 4]
    forged = ev.model_copy(update={"actor": "mallory"})
    conn.execute("UPDATE events SET actor='mallory', hash=? WHERE model='churn' AND seq=4", (forged.expected_hash(),))
    (found,) = problems(reg)
    assert found[:2] == ("audit_link", "churn")
    assert found[2].startswith("event #5 of 'churn' (transition by ana at ") and found[2].endswith(
        "does not link to the event before it"
    )


def test_verify_detects_a_rewritten_tail(tampered: tuple[Registry, sqlite3.Connection]) -> None:
    """Rewriting every event after an edit keeps the links intact, but not the head stored with the model."""
    reg, conn = tampered
    events = reg.history("churn")
    prev = events[4].prev_hash
    for ev in events[4:]:
        forged = ev.model_copy(update={"prev_hash": prev, "comment": "rewritten"})
        digest = forged.expected_hash()
        conn.execute(
            "UPDATE events SET comment='rewritten', prev_hash=?, hash=? WHERE model='churn' AND seq=?",
            (prev, digest, ev.seq),
        )
        prev = digest
    (found,) = problems(reg)
    assert found[:2] == ("audit_tail", "churn")
    assert "events at the end were deleted or replaced" in found[2]


def test_verify_names_a_deleted_middle_event(tampered: tuple[Registry, sqlite3.Connection]) -> None:
    reg, conn = tampered
    conn.execute("DELETE FROM events WHERE model='churn' AND seq=3")
    found = problems(reg)
    kinds = [k for k, _, _ in found]
    assert kinds == ["audit_gap", "audit_link"]
    assert found[0][2] == "event #3 of 'churn' is missing (deleted?)"
    assert found[1][2].startswith("event #4 of 'churn' (register by ana at ")
    assert reg.verify("fraud").ok


def test_verify_names_several_deleted_events(tampered: tuple[Registry, sqlite3.Connection]) -> None:
    reg, conn = tampered
    conn.execute("DELETE FROM events WHERE model='churn' AND seq IN (2, 3, 4)")
    found = problems(reg)
    assert found[0] == ("audit_gap", "churn", "events #2..#4 of 'churn' are missing (deleted?)")


def test_verify_detects_a_deleted_last_event(tampered: tuple[Registry, sqlite3.Connection]) -> None:
    reg, conn = tampered
    conn.execute("DELETE FROM events WHERE model='churn' AND seq=7")
    (found,) = problems(reg)
    assert found == (
        "audit_tail",
        "churn",
        (
            "the audit chain of 'churn' ends at event #6 but the model records #7; "
            "events at the end were deleted or replaced"
        ),
    )


def test_verify_detects_a_deleted_first_event(tampered: tuple[Registry, sqlite3.Connection]) -> None:
    reg, conn = tampered
    conn.execute("DELETE FROM events WHERE model='fraud' AND seq=1")
    found = problems(reg)
    assert [k for k, _, _ in found] == ["audit_gap", "audit_link"]
    assert {m for _, m, _ in found} == {"fraud"}
    assert found[0][2] == "event #1 of 'fraud' is missing (deleted?)"


def test_a_clean_chain_verifies_after_reopening(tampered: tuple[Registry, sqlite3.Connection], tmp_path: Path) -> None:
    reg, _ = tampered
    reg.close()
    with Registry(tmp_path / "reg") as again:
        report = again.verify()
        assert report.ok and report.events_checked == 9 and report.models_checked == 2


# -- the change and its event commit together ---------------------------------------------------------------


def test_a_failing_event_write_rolls_back_the_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = Registry(tmp_path / "reg")
    reg.register("churn", write(tmp_path / "a.bin", b"a"), capture=None)
    before = metadata_snapshot(reg)
    original = SQLiteMetadataStore._append_events

    def broken(self: SQLiteMetadataStore, conn: sqlite3.Connection, name: str, drafts: list) -> None:
        original(self, conn, name, drafts)  # rows are written, then the transaction fails
        raise OSError("disk full")

    monkeypatch.setattr(SQLiteMetadataStore, "_append_events", broken)
    with pytest.raises(OSError, match="disk full"):
        reg.register("churn", write(tmp_path / "b.bin", b"b"), capture=None)
    with pytest.raises(OSError, match="disk full"):
        reg.transition("churn", 1, "production")
    with pytest.raises(OSError, match="disk full"):
        reg.set_alias("churn", "champion", 1)
    monkeypatch.undo()
    assert metadata_snapshot(reg) == before
    assert reg.register("churn", write(tmp_path / "b.bin", b"b"), capture=None).version == 2
    assert_verified(reg)
    reg.close()


def test_verify_audit_names_its_results_and_still_unpacks(tmp_path: Path) -> None:
    from modelreg import AuditCheck

    reg = Registry(tmp_path / "reg")
    src = tmp_path / "m.bin"
    src.write_bytes(b"m")
    reg.register("churn", src, capture=None)
    check = reg.verify_audit("churn")
    assert isinstance(check, AuditCheck) and check.ok and check.events == 2 and check.problems == []
    problems, count = check  # the (problems, count) form of earlier releases
    assert (problems, count) == ([], 2)
