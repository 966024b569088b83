"""Events: in-process subscribers (``reg.on``) and the durable feed (``reg.events``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from modelreg import AuditEvent, InvalidInputError, PolicyViolation, Registry
from modelreg.governance import Gate, Policy
from modelreg.governance.events import decode_cursor, encode_cursor
from tests.governance_support import model_file, run_python


def reg_version(reg: Registry, tmp_path: Path, name: str = "churn", **kw: Any) -> Any:
    return reg.register(name, model_file(tmp_path, f"{name}{kw}".encode()), capture=None, **kw)


class TestSubscribers:
    def test_topics(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        seen: dict[str, list[AuditEvent]] = {}
        for topic in (
            "register",
            "transition",
            "rollback",
            "alias",
            "request",
            "approve",
            "reject",
            "cancel",
            "policy",
            "*",
            "set_tags",
        ):
            reg.on(topic, lambda ev, t=topic: seen.setdefault(t, []).append(ev))
        v1 = reg_version(reg, tmp_path, metrics={"auc": 0.9})
        reg.transition(v1.ref, "production")
        v2 = reg_version(reg, tmp_path, metrics={"auc": 0.95}, description="v2")
        reg.transition(v2.ref, "production")
        reg.rollback("churn")
        reg.set_alias("churn", "champion", 1)
        reg.delete_alias("churn", "champion")
        reg.set_tags(v1.ref, {"team": "fraud"})
        reg.set_policy(Policy(gates={"staging": Gate(approvals=1)}))
        r1 = reg.request_transition(v2.ref, "staging", actor="bo")
        reg.reject(r1.id, actor="cy")
        r2 = reg.request_transition(v2.ref, "staging", actor="bo")
        reg.cancel(r2.id, actor="bo")
        r3 = reg.request_transition(v2.ref, "staging", actor="bo")
        reg.approve(r3.id, actor="cy")

        def acts(topic: str) -> list[tuple[str, int | None]]:
            return [(e.action, e.version) for e in seen.get(topic, [])]

        assert acts("register") == [("register", 1), ("register", 2)]
        assert acts("transition") == [("transition", 1), ("transition", 1), ("transition", 2), ("transition", 2)]
        assert acts("rollback") == [("rollback", 2), ("rollback", 1)]
        assert acts("alias") == [("set_alias", 1), ("delete_alias", 1)]
        assert acts("set_tags") == [("set_tags", 1)]
        assert [e.action for e in seen["request"]] == ["request_transition"] * 3
        assert acts("approve") == [("approve", 2)] and acts("reject") == [("reject", 2)]
        assert acts("cancel") == [("cancel_request", 2)]
        assert [(e.model, e.action) for e in seen["policy"]] == [("_registry", "set_policy")]
        # listeners get the sealed events, exactly as the audit chain holds them
        chain = reg.history("churn")
        assert [e for e in seen["*"] if e.model == "churn"] == chain
        assert all(e.hash and e.seq >= 1 for e in seen["*"])

    def test_unsubscribe(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        got: list[AuditEvent] = []
        undo = reg.on("register", got.append)
        reg_version(reg, tmp_path)
        undo()
        reg_version(reg, tmp_path, metrics={"a": 1})
        assert len(got) == 1
        reg.on("*", got.append)
        assert reg.off("*", got.append) is True
        assert reg.off("*", got.append) is False

    def test_a_failing_listener_never_fails_the_operation(
        self, gov_registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        reg = gov_registry
        after: list[str] = []

        def boom(ev: AuditEvent) -> None:
            raise RuntimeError("listener bug")

        reg.on("register", boom)
        reg.on("register", lambda ev: after.append(ev.action))
        with caplog.at_level(logging.ERROR, logger="modelreg.events"):
            mv = reg_version(reg, tmp_path)
        assert mv.version == 1 and after == ["register"]
        assert "listener bug" in caplog.text and "failed on churn#2 (register)" in caplog.text

    def test_refusals_emit_nothing(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        reg.set_policy(Policy(gates={"production": Gate(approvals=1)}))
        mv = reg_version(reg, tmp_path)
        got: list[AuditEvent] = []
        reg.on("*", got.append)
        with pytest.raises(PolicyViolation):
            reg.transition(mv.ref, "production")
        assert got == []

    def test_bad_subscriptions(self, gov_registry: Registry) -> None:
        with pytest.raises(InvalidInputError, match="unknown event 'promote'; use '\\*' or one of: alias, approve"):
            gov_registry.on("promote", print)
        with pytest.raises(InvalidInputError, match="listener for 'register' must be callable, got str"):
            gov_registry.on("register", "print")  # type: ignore[arg-type]


class TestFeed:
    def test_follow_promotions(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        a = reg_version(reg, tmp_path, "churn")
        b = reg_version(reg, tmp_path, "fraud")
        page = reg.events()
        assert [(e.model, e.action) for e in page] == [
            ("churn", "create_model"),
            ("churn", "register"),
            ("fraud", "create_model"),
            ("fraud", "register"),
        ]
        assert not page.has_more and len(page) == 4
        cursor = page.cursor
        assert reg.events(since=cursor).events == []
        reg.transition(a.ref, "production")
        reg.set_tags(b.ref, {"x": "y"})
        reg.transition(b.ref, "staging")
        promos = reg.events(since=cursor, actions=["transition", "rollback"])
        assert [(e.model, e.version, e.after["stage"]) for e in promos] == [
            ("churn", 1, "production"),
            ("fraud", 1, "staging"),
        ]
        # the cursor moved past the filtered-out set_tags too
        assert reg.events(since=promos.cursor).events == []
        # the same cursor again gives the same events (at-least-once)
        assert reg.events(since=cursor, actions=["transition"]).events == promos.events

    def test_limit_pages_through_everything(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        for name in ("a", "b", "c"):
            mv = reg_version(reg, tmp_path, name)
            reg.transition(mv.ref, "staging")
        everything = reg.events().events
        assert len(everything) == 9
        got, cursor, pages = [], None, 0
        while True:
            page = reg.events(since=cursor, limit=2)
            got += page.events
            cursor, pages = page.cursor, pages + 1
            if not page.has_more:
                break
        assert pages == 5
        assert sorted((e.model, e.seq) for e in got) == sorted((e.model, e.seq) for e in everything)
        assert len(got) == len(everything)
        for name in ("a", "b", "c"):  # each model's events in sequence order
            seqs = [e.seq for e in got if e.model == name]
            assert seqs == sorted(seqs)

    def test_now_and_models_and_internal(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        reg_version(reg, tmp_path, "churn")
        now = reg.events(since="now")
        assert now.events == [] and decode_cursor(now.cursor) == {"churn": 2}
        reg_version(reg, tmp_path, "fraud")
        reg_version(reg, tmp_path, "churn", metrics={"a": 1})
        assert [(e.model, e.seq) for e in reg.events(since=now.cursor)] == [("fraud", 1), ("fraud", 2), ("churn", 3)]
        assert [(e.model, e.seq) for e in reg.events(since=now.cursor, models=["fraud"])] == [
            ("fraud", 1),
            ("fraud", 2),
        ]
        reg.set_policy(Policy())
        assert all(e.model != "_registry" for e in reg.events())
        assert [e.action for e in reg.events(include_internal=True, actions=["policy"])] == ["set_policy"]

    def test_new_models_after_the_cursor(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        reg_version(reg, tmp_path, "churn")
        cursor = reg.events().cursor
        reg_version(reg, tmp_path, "brand-new")
        assert [(e.model, e.action) for e in reg.events(since=cursor)] == [
            ("brand-new", "create_model"),
            ("brand-new", "register"),
        ]

    @pytest.mark.parametrize(
        "bad", ["nonsense", "mr1.!!!", encode_cursor({"a": 1})[:-3] + "xyz", "mr1." + "eJyrVkpUslJQKsnPT1GqBQAaDQPb"]
    )
    def test_invalid_cursors(self, gov_registry: Registry, bad: str) -> None:
        with pytest.raises(InvalidInputError, match="invalid events cursor"):
            gov_registry.events(since=bad)

    def test_invalid_arguments(self, gov_registry: Registry) -> None:
        with pytest.raises(InvalidInputError, match="limit must be a positive integer, got 0"):
            gov_registry.events(limit=0)
        with pytest.raises(InvalidInputError, match="unknown event 'deploy'"):
            gov_registry.events(actions=["deploy"])

    def test_cursor_round_trip(self) -> None:
        heads = {"churn": 12, "fraud/ranker": 3}
        assert decode_cursor(encode_cursor(heads)) == heads
        assert decode_cursor(None) == {} and decode_cursor("") == {}


def test_feed_sees_other_processes(tmp_path: Path) -> None:
    """A deployer process follows promotions made by other processes, restarting from a saved cursor."""
    for uri in (str(tmp_path / "sq"), "file://" + str(tmp_path / "js")):
        with Registry(uri, actor="deployer") as deployer:
            cursor = deployer.events(since="now").cursor
            code = """
                import sys
                from modelreg import Registry
                reg = Registry(sys.argv[1], actor="ci")
                path = sys.argv[2]
                for i in range(3):
                    mv = reg.register("churn", path, metrics={"auc": 0.8 + i / 100}, capture=None)
                    reg.transition(mv.ref, "production", comment=f"release {i}")
                reg.close()
            """
            proc = run_python(code, uri, str(model_file(tmp_path)))
            assert proc.returncode == 0, proc.stderr
            page = deployer.events(since=cursor, actions=["transition"])
            promoted = [(e.version, e.after["stage"]) for e in page if e.after["stage"] == "production"]
            assert promoted == [(1, "production"), (2, "production"), (3, "production")]
            assert all(e.actor == "ci" for e in page)
        with Registry(uri) as again:  # a restarted deployer with the saved cursor sees nothing new
            assert again.events(since=page.cursor).events == []
