"""Retention rules of the stored policy: an exact plan over 500 versions, applying it (audited,
atomic, re-checked), concurrent runs, and a version promoted between the plan and the change."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path

import pytest

import modelreg.retention as retention
from modelreg import InvalidInputError, Registry, Stage
from modelreg.cli import main as cli_main
from modelreg.models import utcnow


def _register(reg: Registry, tmp_path: Path, name: str, n: int) -> dict[int, int]:
    """``n`` versions of ``name``, each with its own content; returns their sizes by version."""
    sizes = {}
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    for i in range(1, n + 1):
        f = src / f"{name}-{i}.bin"
        f.write_bytes(f"{name} version {i} ".encode() * i)
        sizes[reg.register(name, f, capture=None, actor="trainer").version] = f.stat().st_size
    return sizes


RULES = [
    {"models": ["b"], "keep_experimental": 50},
    {"models": ["*"], "keep_experimental": 100, "purge_archived_after_days": 30, "keep_used_within_days": 60},
]


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[int, int]]]:
    """500 versions: a (300) and b (200), across stages, with an alias, a keep tag, a pending request
    and a recent use; built once, copied by each test that changes it."""
    tmp = tmp_path_factory.mktemp("big")
    mp = pytest.MonkeyPatch()
    mp.setenv("MODELREG_CACHE_DIR", str(tmp / "cache"))
    mp.setenv("MODELREG_ACTOR", "tester")
    reg = Registry(tmp / "reg")
    sizes = {"a": _register(reg, tmp, "a", 300), "b": _register(reg, tmp, "b", 200)}
    reg.transition("a/10", "production")
    reg.transition("a/11", "staging")
    for v in range(12, 21):
        reg.archive(f"a/{v}")
    reg.archive("b/1")
    reg.set_alias("a", "champion", 5)
    reg.set_tags("a/6", {"keep": "true"})
    reg.fetch("a/8", record_use=True, purpose="shadow traffic")
    reg.set_policy({"gates": {"staging": {"approvals": 1}}, "retention": RULES})
    reg.request_transition("a/7", "staging")  # stays pending: it needs an approval
    reg.close()
    mp.undo()
    return tmp / "reg", sizes


def _copy(big: tuple[Path, dict[str, dict[int, int]]], tmp_path: Path) -> Registry:
    import shutil

    shutil.copytree(big[0], tmp_path / "reg")
    return Registry(tmp_path / "reg")


def _expected(sizes: dict[str, dict[int, int]]) -> tuple[set[tuple[str, str]], dict[str, str], int]:
    archive_a = [v for v in [*range(1, 10), *range(21, 201)] if v not in (5, 6, 7, 8)]
    archive_b = list(range(2, 151))
    purge_a = list(range(12, 20))
    actions = (
        {("archive", f"a/{v}") for v in archive_a}
        | {("archive", f"b/{v}") for v in archive_b}
        | {("purge", f"a/{v}") for v in purge_a}
    )
    protected = {
        "a/5": "alias champion",
        "a/6": "tag keep=true",
        "a/7": "pending request",
        "a/8": "used ",
        "a/20": "one of the newest 1 in archived",
    }
    return actions, protected, sum(sizes["a"][v] for v in purge_a)


def test_the_plan_of_500_versions_is_exact_and_changes_nothing(big, tmp_path: Path) -> None:
    reg = Registry(big[0])
    before = {mv.ref: mv.stage for mv in reg.metadata.iter_all_versions()}
    head = reg.metadata.audit_head("a")
    plan = reg.apply_retention(now=utcnow() + timedelta(days=31), actor="retention-bot")
    actions, protected, freed = _expected(big[1])
    assert plan.dry_run is True and plan.actor == "retention-bot"
    assert {(a.action, a.ref) for a in plan.actions} == actions
    assert len(plan.archives) == 185 + 149 and len(plan.purges) == 8
    assert {k.ref for k in plan.protected} == set(protected)
    for kept in plan.protected:
        assert kept.reason.startswith(protected[kept.ref]), kept
    assert plan.bytes_freed == freed
    by_ref = {a.ref: a for a in plan.actions}
    assert by_ref["a/1"].reason == "older than the newest 100 experimental versions"
    assert by_ref["b/2"].reason == "older than the newest 50 experimental versions"
    assert by_ref["a/12"].reason.startswith("archived since ") and by_ref["a/12"].reason.endswith("(> 30 days)")
    assert by_ref["a/12"].size == big[1]["a"][12]
    # nothing changed
    assert {mv.ref: mv.stage for mv in reg.metadata.iter_all_versions()} == before
    assert reg.metadata.audit_head("a") == head
    # without the 31 days, nothing is old enough to purge
    assert not reg.apply_retention().purges
    reg.close()


def test_applying_the_plan_archives_and_purges_with_audited_events(big, tmp_path: Path) -> None:
    reg = _copy(big, tmp_path)
    now = utcnow() + timedelta(days=31)
    plan = reg.apply_retention(dry_run=False, actor="retention-bot", now=now)
    actions, protected, _ = _expected(big[1])
    assert plan.dry_run is False
    assert {(a.action, a.ref) for a in plan.done} == actions and not plan.skipped
    stages = {mv.ref: mv.stage for mv in reg.metadata.iter_all_versions()}
    assert all(stages[ref] == Stage.ARCHIVED for action, ref in actions if action == "archive")
    assert not any(ref in stages for action, ref in actions if action == "purge")
    assert stages["a/10"] == Stage.PRODUCTION and stages["a/11"] == Stage.STAGING
    for ref in protected:
        assert ref in stages
    events = reg.history("a")
    purges = [e for e in events if e.action == "purge"]
    assert sorted(e.version for e in purges) == list(range(12, 20))
    assert all(e.actor == "retention-bot" and e.comment.startswith("retention: archived since") for e in purges)
    archived = [e for e in events if e.action == "transition" and e.actor == "retention-bot"]
    assert len(archived) == 185 and all(e.after == {"stage": "archived"} for e in archived)
    assert archived[0].comment == "retention: older than the newest 100 experimental versions"
    assert reg.verify(blobs=False).ok
    # a second run right after finds nothing more to do
    again = reg.apply_retention(dry_run=False, actor="retention-bot")
    assert again.actions == [] and {k.ref for k in again.protected} == {"a/5", "a/6", "a/7", "a/8"}
    reg.close()


def test_two_runs_at_once_never_double_archive_or_purge(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "reg")
    _register(reg, tmp_path, "m", 40)
    for v in range(1, 21):
        reg.archive(f"m/{v}")
    # m/20 is kept by its tag, not only as the newest archived version: a run that plans after the
    # other archived 21..35 would otherwise (rightly) purge it, and the expected plan would race
    reg.set_tags("m/20", {"keep": "true"})
    reg.set_policy({"retention": [{"keep_experimental": 5, "purge_archived_after_days": 0}]})
    # one clock for both runs: the versions they archive are not old enough to purge as well
    now = utcnow()
    expected = reg.apply_retention(now=now)
    assert len(expected.archives) == 15 and len(expected.purges) == 19
    barrier = threading.Barrier(2)
    results = []

    def run(actor: str) -> None:
        own = Registry(tmp_path / "reg")
        barrier.wait()
        results.append(own.apply_retention(dry_run=False, actor=actor, now=now))
        own.close()

    threads = [threading.Thread(target=run, args=(f"cron-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert len(results) == 2
    done = [(a.action, a.ref) for r in results for a in r.done]
    assert sorted(done) == sorted((a.action, a.ref) for a in expected.actions)  # each exactly once
    skipped = [a for r in results for a in r.skipped]
    assert len(done) + len(skipped) == sum(len(r.actions) for r in results)
    events = reg.history("m")
    assert sorted(e.version for e in events if e.action == "purge") == list(range(1, 20))
    moved = [e.version for e in events if e.action == "transition" and e.actor.startswith("cron-")]
    assert sorted(moved) == list(range(21, 36))
    assert reg.verify(blobs=False).ok


def test_a_version_promoted_between_plan_and_change_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = Registry(tmp_path / "reg")
    _register(reg, tmp_path, "m", 12)
    for v in range(1, 5):
        reg.archive(f"m/{v}")
    reg.set_policy({"retention": [{"keep_experimental": 2, "purge_archived_after_days": 0}]})
    planned = reg.apply_retention()
    assert {a.ref for a in planned.purges} == {"m/1", "m/2", "m/3"}
    assert {a.ref for a in planned.archives} == {f"m/{v}" for v in range(5, 11)}
    real = retention.plan_retention

    def plan_then_someone_else_acts(*args, **kwargs):
        plan = real(*args, **kwargs)
        other = Registry(tmp_path / "reg")
        other.transition("m/2", "staging", actor="ana")  # back from archived
        other.transition("m/6", "production", actor="ana")  # promoted
        other.set_tags("m/7", {"keep": "true"}, actor="ana")
        other.set_alias("m", "shadow", 8, actor="ana")
        other.transition("m/3", "experimental", actor="ana")  # archived -> experimental -> archived again
        other.archive("m/3", actor="ana")
        other.close()
        return plan

    monkeypatch.setattr(retention, "plan_retention", plan_then_someone_else_acts)
    result = reg.apply_retention(dry_run=False, actor="retention-bot")
    status = {a.ref: (a.status, a.detail) for a in result.actions}
    assert status["m/1"] == ("done", None)
    assert status["m/2"] == ("skipped", "now in staging")
    assert status["m/3"] == ("skipped", "changed since the plan")
    assert status["m/6"] == ("skipped", "now in production")
    assert status["m/7"] == ("skipped", "changed since the plan")
    assert status["m/8"][0] == "skipped"
    assert {ref for ref, (s, _) in status.items() if s == "done"} == {"m/1", "m/5", "m/9", "m/10"}
    stages = {mv.version: mv.stage for mv in reg.list_versions("m")}
    assert stages[2] == Stage.STAGING and stages[3] == Stage.ARCHIVED and stages[6] == Stage.PRODUCTION
    assert stages[7] == stages[8] == Stage.EXPERIMENTAL
    assert 1 not in stages


def test_a_recent_use_protects_and_rules_are_validated(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "reg")
    _register(reg, tmp_path, "m", 6)
    reg.fetch("m/1", record_use=True)
    reg.set_policy({"retention": [{"models": "m", "keep_experimental": 1, "keep_newest": 0}]})
    plan = reg.apply_retention()
    assert {a.ref for a in plan.archives} == {"m/2", "m/3", "m/4", "m/5"}
    assert [(k.ref, k.reason.split(",")[0][:4]) for k in plan.protected] == [("m/1", "used")]
    later = reg.apply_retention(now=utcnow() + timedelta(days=31))
    assert {a.ref for a in later.archives} == {f"m/{v}" for v in range(1, 6)}
    with pytest.raises(InvalidInputError, match="a retention rule needs keep_experimental"):
        reg.set_policy({"retention": [{"models": ["m"]}]})
    with pytest.raises(InvalidInputError, match="keep_newest"):
        reg.set_policy({"retention": [{"keep_experimental": 1, "keep_newest": -1}]})
    reg.set_policy({"retention": [{"models": ["other-*"], "keep_experimental": 0}]})
    assert reg.apply_retention().actions == []


def test_cli_retention_prints_the_plan_and_applies_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "reg"
    reg = Registry(root)
    _register(reg, tmp_path, "m", 5)
    args = ["--registry", str(root)]
    assert cli_main([*args, "retention"]) == 0
    assert "no retention rules" in capsys.readouterr().out
    reg.set_policy({"retention": [{"keep_experimental": 2}]})
    assert cli_main([*args, "retention", "-v"]) == 0
    captured = capsys.readouterr()
    assert "archive  m/1" in captured.out and "m/3" in captured.out and "m/4" not in captured.out.split("would")[0]
    assert "would archive 3, would purge 0 version(s)" in captured.out
    assert "retention --apply" in captured.err
    assert cli_main([*args, "--json", "--actor", "bot", "retention", "--apply"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["dry_run"] is False and [a["status"] for a in data["actions"]] == ["done"] * 3
    assert {mv.version for mv in reg.list_versions("m", stage="archived")} == {1, 2, 3}
    assert [e.actor for e in reg.history("m") if e.action == "transition"] == ["bot"] * 3


def test_usage_logs_are_trimmed_by_age(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modelreg.models import UsageRecord

    reg = Registry(tmp_path / "reg")
    _register(reg, tmp_path, "m", 3)
    _register(reg, tmp_path, "other", 1)
    now = utcnow()

    def use(name: str, version: int, days_ago: float) -> UsageRecord:
        mv = reg.get_version(f"{name}/{version}")
        return UsageRecord(
            name=name, version=version, digest=mv.digest, action="fetch", actor="svc", host="h", pid=1,
            time=now - timedelta(days=days_ago),
        )  # fmt: skip

    for record in [use("m", 1, 100), use("m", 2, 50), use("m", 1, 10), use("other", 1, 100)]:
        reg.metadata.record_usage(record)
    with pytest.raises(InvalidInputError, match="shorter than keep_used_within_days"):
        reg.set_policy({"retention": [{"trim_usage_after_days": 7}]})  # would drop the protecting uses
    reg.set_policy({"retention": [{"models": ["m"], "trim_usage_after_days": 40}]})  # a rule may only trim
    assert reg.get_policy().to_dict()["retention"][0]["trim_usage_after_days"] == 40
    # a rule without it is stored as before (same digest, readable by older clients)
    from modelreg.governance.policy import Policy

    assert "trim_usage_after_days" not in json.dumps(Policy.model_validate({"retention": RULES}).to_dict())
    plan = reg.apply_retention(now=now)
    assert plan.actions == [] and len(plan.usage_trims) == 1
    (trim,) = plan.usage_trims
    assert (trim.name, trim.records, trim.status) == ("m", 2, "planned")
    assert trim.reason.endswith("(> 40 days)") and trim.before == now - timedelta(days=40)
    assert len(reg.metadata.list_usage("m")) == 3  # a plan changes nothing
    args = ["--registry", str(tmp_path / "reg")]
    assert cli_main([*args, "retention"]) == 0
    out = capsys.readouterr()
    assert "would trim the usage log of m: 2 record(s) used before" in out.out and "retention --apply" in out.err
    done = reg.apply_retention(dry_run=False, now=now)
    assert [(t.name, t.records, t.status) for t in done.usage_trims] == [("m", 2, "done")]
    assert [u.time for u in reg.metadata.list_usage("m")] == [now - timedelta(days=10)]
    assert len(reg.metadata.list_usage("other")) == 1  # no rule applies to it
    assert reg.apply_retention(dry_run=False, now=now).usage_trims == []  # nothing left to trim
    assert reg.verify(blobs=False).ok
    # the CLI reports an applied trim; a store that cannot trim is reported, not fatal
    reg.metadata.record_usage(use("m", 3, 60))
    assert cli_main([*args, "--json", "retention", "--apply"]) == 0
    assert json.loads(capsys.readouterr().out)["usage_trims"][0]["status"] == "done"
    reg.metadata.record_usage(use("m", 3, 60))

    def cannot(name: str, before: object) -> int:
        raise NotImplementedError("this store cannot trim its usage log")

    reg.metadata.trim_usage = cannot  # type: ignore[method-assign]
    skipped = reg.apply_retention(dry_run=False, now=now).usage_trims
    assert [(t.status, t.detail) for t in skipped] == [("skipped", "this store cannot trim its usage log")]
