"""Governance: the policy, every gate and its message, and each path of the approval workflow.

Workflow tests run on every metadata store (``gov_registry``); tests of gate
evaluation and messages, which do not depend on the store, run on SQLite.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from modelreg import (
    AlreadyExistsError,
    InvalidInputError,
    InvalidTransitionError,
    NotFoundError,
    PolicyViolation,
    Registry,
    SchemaVersionError,
    Stage,
    StageRules,
    VersionNotFound,
)
from modelreg.errors import render
from modelreg.governance import Gate, Policy, TransitionRequest
from modelreg.governance.identity import git_actor, resolve_actor, set_actor_resolvers
from modelreg.governance.policy import MetricCondition
from tests.governance_support import model_file

PROD = Stage.PRODUCTION


def register(reg: Registry, tmp_path: Path, name: str = "churn", *, actor: str = "ana", **kw: Any) -> Any:
    kw.setdefault("capture", None)
    content = f"{name}-{len(reg.list_models())}-{kw.get('metrics')}-{kw.get('description')}-{id(kw)}".encode()
    return reg.register(name, model_file(tmp_path, content), actor=actor, **kw)


def actions(reg: Registry, name: str = "churn") -> list[str]:
    return [e.action for e in reg.history(name)]


# -- the policy record ------------------------------------------------------------------------------
class TestPolicyRecord:
    def test_default_policy_is_the_default_transition_table(self) -> None:
        rules = Policy().stage_rules()
        default = StageRules()
        assert dict(rules.transitions) == dict(default.transitions)
        assert rules.exclusive == default.exclusive and rules.displaced_to == default.displaced_to
        assert Policy().gates == {} and Policy().emergency_rollback and Policy().auto_complete

    def test_json_round_trip_and_stable_digest(self) -> None:
        p = Policy(
            groups={"risk": ["bo"]},
            gates={
                "production": Gate(
                    approvals=[{"count": 1, "group": "risk"}],
                    metrics=["metrics.auc>=0.9"],
                    lineage=["code_commit"],
                    tags=["team"],
                    description=True,
                )
            },
        )
        again = Policy.from_json(p.to_json())
        assert again == p
        assert again.digest() == p.digest() and p.digest().startswith("sha256:")
        assert p.gate("production").metrics == ["metrics.auc >= 0.9"]  # normalised
        assert p.gate("staging") == Gate()

    def test_shorthands(self) -> None:
        g = Gate(approvals=2, metrics="metrics.auc >= 0.9", lineage="code_commit", tags="team")
        assert [(r.count, r.group) for r in g.approvals] == [(2, None)]
        assert g.metrics == ["metrics.auc >= 0.9"] and g.lineage == ["code_commit"] and g.tags == ["team"]
        assert Gate(approvals=0).approvals == []
        assert Gate(approvals={"count": 1, "group": "risk"}).approvals[0].group == "risk"

    @pytest.mark.parametrize(
        "text, parsed",
        [
            ("metrics.auc >= 0.9", ("auc", ">=", 0.9, None, 0.0)),
            ("metrics.loss<0.3", ("loss", "<", 0.3, None, 0.0)),
            ("metrics.auc >= @production", ("auc", ">=", None, PROD, 0.0)),
            ("metrics.auc >= @Production - 0.005", ("auc", ">=", None, PROD, -0.005)),
            ("metrics.latency ms <= @staging + 2", ("latency ms", "<=", None, Stage.STAGING, 2.0)),
            ("metrics.f1 != 1e-3", ("f1", "!=", 0.001, None, 0.0)),
        ],
    )
    def test_metric_conditions(self, text: str, parsed: tuple) -> None:
        c = MetricCondition.parse(text)
        assert (c.key, c.op, c.value, c.stage, c.offset) == parsed
        assert MetricCondition.parse(str(c)) == c

    @pytest.mark.parametrize(
        "data, message",
        [
            (
                {"gates": {"production": {"metrics": ["auc >= 0.9"]}}},
                (
                    "invalid policy: gates.production.metrics: cannot parse metric gate 'auc >= 0.9'; write "
                    "'metrics.<key> <op> "
                    "<number>' or 'metrics.<key> <op> @<stage> [+|- <number>]'"
                ),
            ),
            (
                {"gates": {"production": {"metrics": ["metrics.auc >= @prod"]}}},
                "metric gate 'metrics.auc >= @prod' names unknown stage 'prod'; use one of experimental, staging, "
                "production, archived",
            ),
            (
                {"gates": {"production": {"metrics": ["metrics.auc >= high"]}}},
                "cannot parse the right-hand side of metric gate 'metrics.auc >= high'",
            ),
            (
                {"gates": {"production": {"lineage": ["git"]}}},
                (
                    "unknown lineage requirement(s) ['git']; use ['code_clean', 'code_commit', 'dataset', "
                    "'dataset_digest', "
                    "'environment', 'run_id']"
                ),
            ),
            (
                {"gates": {"production": {"approvals": [{"count": 1, "group": "risk"}]}}},
                (
                    "gate for production needs approvals from group 'risk', which the policy does not define "
                    "(groups: none "
                    "defined); add it under 'groups'"
                ),
            ),
            (
                {"gates": {"production": {"approvals": True}}},
                "approvals must be a count, a rule {'count': 2, 'group': 'risk'} or a list of rules",
            ),
            (
                {"gates": {"production": {"approvals": [{"count": 0}]}}},
                "approvals.0.count: Input should be greater than or equal to 1",
            ),
            (
                {"gates": {"live": {}}},
                "gates.live.[key]: Input should be 'experimental', 'staging', 'production' or 'archived'",
            ),
            ({"exclusive": ["production", "archived"]}, "displaced_to (archived) cannot itself be an exclusive stage"),
            ({"aproval": 2}, "aproval: Extra inputs are not permitted"),
            ({"gates": {"production": {"approval": 2}}}, "gates.production.approval: Extra inputs are not permitted"),
            ({"groups": {"risk": [""]}}, "group 'risk' has an empty member name"),
            ({"schema_version": 2}, "schema_version 2 is newer than this modelreg understands"),
        ],
    )
    def test_invalid_policies_are_rejected_with_the_reason(self, data: dict, message: str) -> None:
        with pytest.raises(InvalidInputError) as info:
            Policy.parse(data)
        assert message in str(info.value)
        assert str(info.value).startswith("invalid policy: ")

    def test_parse_rejects_other_types_and_bad_json(self) -> None:
        with pytest.raises(InvalidInputError, match="a policy must be a Policy, a mapping or JSON text, got int"):
            Policy.parse(3)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="invalid policy: Invalid JSON"):
            Policy.parse("{not json")

    def test_every_problem_is_listed(self) -> None:
        with pytest.raises(InvalidInputError) as info:
            Policy.parse({"gates": {"production": {"lineage": ["git"], "metrics": ["x"]}}, "extra": 1})
        text = str(info.value)
        assert "lineage" in text and "metrics" in text and "extra" in text

    def test_a_stored_policy_from_a_newer_modelreg_fails_closed(self) -> None:
        with pytest.raises(
            SchemaVersionError, match=r"stored policy cannot be read by this modelreg .*upgrade modelreg"
        ):
            Policy.load_stored({"gates": {"production": {"quorum": 3}}})


# -- gates, evaluated on direct transitions ------------------------------------------------------------------
class TestGates:
    def gate(self, reg: Registry, **gate: Any) -> None:
        reg.set_policy(Policy(gates={"production": Gate(**gate)}))

    def test_absolute_metric_threshold(self, sqlite_registry: Registry, tmp_path: Path) -> None:
        reg = sqlite_registry
        self.gate(reg, metrics=["metrics.auc >= 0.9"])
        low = register(reg, tmp_path, metrics={"auc": 0.85})
        high = register(reg, tmp_path, metrics={"auc": 0.9})
        with pytest.raises(PolicyViolation) as info:
            reg.transition(low.ref, "production")
        assert info.value.unmet == ["metrics.auc >= 0.9: churn/1 has auc = 0.85"]
        assert str(info.value) == (
            "cannot move churn/1 from experimental to production: 1 unmet gate of the registry policy:\n"
            "  - metrics.auc >= 0.9: churn/1 has auc = 0.85"
        )
        assert reg.transition(high.ref, "production").stage == PROD

    def test_a_violation_writes_nothing(self, sqlite_registry: Registry, tmp_path: Path) -> None:
        reg = sqlite_registry
        self.gate(reg, metrics=["metrics.auc >= 0.9"])
        mv = register(reg, tmp_path, metrics={"auc": 0.5})
        before = reg.history("churn")
        with pytest.raises(PolicyViolation):
            reg.transition(mv.ref, "production")
        assert reg.history("churn") == before
        assert reg.get_version(mv.ref).stage == Stage.EXPERIMENTAL

    def test_missing_metric(self, sqlite_registry: Registry, tmp_path: Path) -> None:
        reg = sqlite_registry
        self.gate(reg, metrics=["metrics.auc >= 0.9"])
        mv = register(reg, tmp_path)
        unmet = reg.check_transition(mv.ref, "production")
        assert unmet == [
            "metrics.auc >= 0.9: churn/1 has no metric 'auc'; log it with reg.log_metrics('churn/1', {'auc': ...})"
        ]
        assert [render(u, "cli") for u in unmet] == [
            "metrics.auc >= 0.9: churn/1 has no metric 'auc'; log it with `modelreg log-metrics churn/1 auc=NUMBER`"
        ]

    def test_logged_metrics_count(self, sqlite_registry: Registry, tmp_path: Path) -> None:
        reg = sqlite_registry
        self.gate(reg, metrics=["metrics.auc >= 0.9"])
        mv = register(reg, tmp_path, metrics={"auc": 0.8})
        reg.log_metrics(mv.ref, {"auc": 0.93})
        assert reg.check_transition(mv.ref, "production") == []

    def test_not_worse_than_production(self, sqlite_registry: Registry, tmp_path: Path) -> None:
        reg = sqlite_registry
        self.gate(reg, metrics=["metrics.auc >= @production"])
        first = register(reg, tmp_path, metrics={"auc": 0.9})
        assert reg.check_transition(first.ref, "production") == []  # nothing in production: no baseline
        reg.transition(first.ref, "production")
        worse = register(reg, tmp_path, metrics={"auc": 0.89})
        better = register(reg, tmp_path, metrics={"auc": 0.91})
        assert reg.check_transition(worse.ref, "production") == [
            "metrics.auc >= @production: churn/2 has auc = 0.89, production version churn/1 has 0.9"
        ]
        assert reg.check_transition(better.ref, "production") == []
        # the baseline's logged metrics count too
        reg.log_metrics(first.ref, {"auc": 0.95})
        assert reg.check_transition(better.ref, "production") == [
            "metrics.auc >= @production: churn/3 has auc = 0.91, production version churn/1 has 0.95"
        ]

    def test_tolerance_and_lower_is_better(self, sqlite_registry: Registry, tmp_path: Path) -> None:
        reg = sqlite_registry
        self.gate(reg, metrics=["metrics.auc >= @production - 0.01", "metrics.latency <= @production + 2"])
        base = register(reg, tmp_path, metrics={"auc": 0.9, "latency": 10})
        reg.transition(base.ref, "production")
        ok = register(reg, tmp_path, metrics={"auc": 0.895, "latency": 12})
        bad = register(reg, tmp_path, metrics={"auc": 0.88, "latency": 12.5})
        assert reg.check_transition(ok.ref, "production") == []
        assert reg.check_transition(bad.ref, "production") == [
            "metrics.auc >= @production - 0.01: churn/3 has auc = 0.88, production version churn/1 has 0.9 (bound "
            "0.89)",
            "metrics.latency <= @production + 2: churn/3 has latency = 12.5, production version churn/1 has 10 "
            "(bound 12)",
        ]

    def test_baseline_without_the_metric_passes(self, sqlite_registry: Registry, tmp_path: Path) -> None:
        reg = sqlite_registry
        base = register(reg, tmp_path)
        reg.transition(base.ref, "production")
        self.gate(reg, metrics=["metrics.auc >= @production"])
        mv = register(reg, tmp_path, metrics={"auc": 0.1})
        assert reg.check_transition(mv.ref, "production") == []

    def test_baseline_in_another_stage(self, sqlite_registry: Registry, tmp_path: Path) -> None:
        reg = sqlite_registry
        self.gate(reg, metrics=["metrics.auc > @staging"])
        staged = register(reg, tmp_path, metrics={"auc": 0.9})
        reg.transition(staged.ref, "staging")
        mv = register(reg, tmp_path, metrics={"auc": 0.9})
        assert reg.check_transition(mv.ref, "production") == [
            "metrics.auc > @staging: churn/2 has auc = 0.9, staging version churn/1 has 0.9"
        ]
        # the candidate itself is never its own baseline
        assert reg.check_transition(staged.ref, "production") == []

    @pytest.mark.parametrize(
        "field, lineage, message",
        [
            (
                "dataset",
                {},
                "lineage.dataset: churn/1 records no dataset; register it with lineage={'datasets': [{'uri': ...}]}",
            ),
            (
                "dataset_digest",
                {},
                (
                    "lineage.dataset_digest: churn/1 records no dataset; register it with "
                    "lineage={'datasets': [{'uri': ..., 'digest': 'sha256:...'}]}"
                ),
            ),
            (
                "dataset_digest",
                {"datasets": [{"uri": "s3://d/a", "digest": "sha256:ab"}, {"uri": "s3://d/b"}]},
                "lineage.dataset_digest: churn/1 records no digest for dataset(s) s3://d/b; record 'digest' for "
                "every dataset",
            ),
            (
                "code_commit",
                {},
                (
                    "lineage.code_commit: churn/1 records no git commit; register from a git work tree "
                    "(capture='auto') or pass lineage.code.commit"
                ),
            ),
            (
                "code_clean",
                {"code": {"commit": "abc", "dirty": True}},
                "lineage.code_clean: churn/1 was registered from a dirty work tree; commit your changes and register "
                "again",
            ),
            (
                "code_clean",
                {"code": {"commit": "abc"}},
                "lineage.code_clean: churn/1 was registered from a unknown work tree; commit your changes and "
                "register again",
            ),
            ("run_id", {}, "lineage.run_id: churn/1 records no run id; pass lineage={'run_id': ...}"),
            ("environment", {}, "lineage.environment: churn/1 records no environment; register with capture='auto'"),
        ],
    )
    def test_lineage_requirements(
        self, sqlite_registry: Registry, tmp_path: Path, field: str, lineage: dict, message: str
    ) -> None:
        reg = sqlite_registry
        self.gate(reg, lineage=[field])
        mv = register(reg, tmp_path, lineage=lineage)
        assert reg.check_transition(mv.ref, "production") == [message]

    def test_lineage_requirements_in_the_words_of_the_cli(self, sqlite_registry: Registry, tmp_path: Path) -> None:
        reg = sqlite_registry
        self.gate(reg, lineage=["dataset", "code_commit", "run_id", "environment"])
        mv = register(reg, tmp_path)
        assert [render(u, "cli") for u in reg.check_transition(mv.ref, "production")] == [
            "lineage.dataset: churn/1 records no dataset; register it with --dataset URI",
            "lineage.code_commit: churn/1 records no git commit; register from a git work tree (without --no-capture)",
            "lineage.run_id: churn/1 records no run id; pass --run-id ID",
            "lineage.environment: churn/1 records no environment; register without --no-capture",
        ]

    def test_lineage_requirements_met(self, sqlite_registry: Registry, tmp_path: Path) -> None:
        reg = sqlite_registry
        self.gate(reg, lineage=["dataset", "dataset_digest", "code_commit", "code_clean", "run_id", "environment"])
        mv = register(
            reg,
            tmp_path,
            capture="env",
            lineage={
                "datasets": [{"uri": "s3://d/a", "digest": "sha256:ab"}],
                "run_id": "r1",
                "code": {"commit": "abc", "dirty": False},
            },
        )
        assert reg.check_transition(mv.ref, "production") == []

    def test_required_tags_and_description(self, sqlite_registry: Registry, tmp_path: Path) -> None:
        reg = sqlite_registry
        self.gate(reg, tags=["team", "ticket"], description=True)
        mv = register(reg, tmp_path, tags={"team": "fraud", "ticket": ""})
        unmet = reg.check_transition(mv.ref, "production")
        assert unmet == [
            "tag 'ticket': churn/1 has no tag 'ticket'; add it with reg.set_tags('churn/1', {'ticket': ...})",
            "description: churn/1 has no description; set one with reg.set_description('churn/1', '...')",
        ]
        assert [render(u, "cli") for u in unmet] == [
            "tag 'ticket': churn/1 has no tag 'ticket'; add it with `modelreg tag churn/1 ticket=VALUE`",
            "description: churn/1 has no description; set one with `modelreg describe churn/1 TEXT`",
        ]
        reg.set_tags(mv.ref, {"ticket": "ML-12"})
        reg.set_description(mv.ref, "retrained on March data")
        assert reg.check_transition(mv.ref, "production") == []

    def test_direct_transition_cannot_satisfy_approvals(self, sqlite_registry: Registry, tmp_path: Path) -> None:
        reg = sqlite_registry
        reg.set_policy(
            Policy(
                groups={"risk": ["bo"]},
                gates={"production": Gate(approvals=[{"count": 2}, {"count": 1, "group": "risk"}])},
            )
        )
        mv = register(reg, tmp_path)
        unmet = reg.check_transition(mv.ref, "production")
        assert unmet == [
            (
                "approvals: production needs 2 approvals and 1 approval from group 'risk'; a direct transition carries "
                "none, so request it with reg.request_transition('churn/1', 'production') and have it approved"
            )
        ]
        assert [render(u, "cli") for u in unmet] == [  # the command line's form of the same advice
            (
                "approvals: production needs 2 approvals and 1 approval from group 'risk'; a direct transition carries "
                "none, so request it with `modelreg request churn/1 production` and have it approved"
            )
        ]

    def test_every_unmet_gate_in_one_message(self, sqlite_registry: Registry, tmp_path: Path) -> None:
        reg = sqlite_registry
        self.gate(
            reg,
            approvals=1,
            metrics=["metrics.auc >= 0.9", "metrics.f1 >= 0.5"],
            lineage=["run_id"],
            tags=["team"],
            description=True,
        )
        mv = register(reg, tmp_path, metrics={"auc": 0.1})
        with pytest.raises(PolicyViolation) as info:
            reg.transition(mv.ref, "production", actor="bo")
        unmet = info.value.unmet
        assert len(unmet) == 6
        assert [u.split(":")[0] for u in unmet] == [
            "approvals",
            "metrics.auc >= 0.9",
            "metrics.f1 >= 0.5",
            "lineage.run_id",
            "tag 'team'",
            "description",
        ]
        text = str(info.value)
        assert text.startswith(
            "cannot move churn/1 from experimental to production: 6 unmet gates of the registry policy:\n"
        )
        assert all(f"\n  - {u}" in text for u in unmet)

    def test_the_table_is_checked_before_gates(self, sqlite_registry: Registry, tmp_path: Path) -> None:
        reg = sqlite_registry
        self.gate(reg, metrics=["metrics.auc >= 0.9"])
        mv = register(reg, tmp_path, metrics={"auc": 0.95})
        reg.transition(mv.ref, "production")
        with pytest.raises(
            InvalidTransitionError,
            match="cannot move churn/1 from production to experimental; allowed from production: staging, archived",
        ):
            reg.transition(mv.ref, "experimental")
        assert reg.check_transition(mv.ref, "experimental") == [
            "transition: cannot move churn/1 from production to experimental; allowed from production: staging, "
            "archived"
        ]

    def test_gates_guard_only_their_stage(self, sqlite_registry: Registry, tmp_path: Path) -> None:
        reg = sqlite_registry
        self.gate(reg, approvals=2)
        mv = register(reg, tmp_path)
        assert reg.transition(mv.ref, "staging").stage == Stage.STAGING
        assert reg.archive(mv.ref).stage == Stage.ARCHIVED


# -- one transition table ---------------------------------------------------------------------------------------
class TestTransitionTable:
    def test_stored_table_is_enforced_and_exposed(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        reg.set_policy(
            {
                "transitions": {
                    "experimental": ["staging", "archived"],
                    "staging": ["production", "archived"],
                    "production": ["archived"],
                    "archived": [],
                }
            }
        )
        mv = register(reg, tmp_path)
        assert reg.rules.allowed(Stage.EXPERIMENTAL) == [Stage.STAGING, Stage.ARCHIVED]
        with pytest.raises(InvalidTransitionError, match="allowed from experimental: staging, archived"):
            reg.transition(mv.ref, "production")
        reg.transition(mv.ref, "staging")
        reg.transition(mv.ref, "production")
        reg.archive(mv.ref)
        with pytest.raises(InvalidTransitionError, match="allowed from archived: none"):
            reg.transition(mv.ref, "staging")

    def test_exclusive_stages(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        reg.set_policy(Policy(exclusive=["production", "staging"], displaced_to="experimental"))
        a, b = register(reg, tmp_path), register(reg, tmp_path)
        reg.transition(a.ref, "staging")
        reg.transition(b.ref, "staging")
        assert reg.get_version(a.ref).stage == Stage.EXPERIMENTAL
        assert reg.rules.exclusive == {Stage.PRODUCTION, Stage.STAGING}

    def test_local_rules_apply_until_a_policy_is_stored(self, tmp_path: Path) -> None:
        local = StageRules.from_table({"experimental": ["archived"], "archived": []})
        with Registry(tmp_path / "reg", actor="ana", rules=local) as reg:
            mv = register(reg, tmp_path)
            with pytest.raises(InvalidTransitionError, match="allowed from experimental: archived"):
                reg.transition(mv.ref, "production")
            assert reg.get_policy().transitions[Stage.EXPERIMENTAL] == [Stage.ARCHIVED]
            reg.set_policy(Policy())
            assert reg.transition(mv.ref, "production").stage == PROD
        # another client without local rules sees the stored policy
        with Registry(tmp_path / "reg", actor="bo") as other:
            assert other.get_policy() == Policy()

    def test_rules_setter_changes_the_local_default(self, sqlite_registry: Registry, tmp_path: Path) -> None:
        reg = sqlite_registry
        reg.rules = StageRules.from_table({"experimental": ["staging"]})
        assert reg.rules.allowed(Stage.EXPERIMENTAL) == [Stage.STAGING]

    def test_unreadable_stored_policy_fails_closed(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        mv = register(reg, tmp_path)
        reg.set_policy(Policy())
        from modelreg.models import EventDraft

        def newer(state: Any) -> Any:
            ext = {**state.extensions, "policy": {**state.extensions["policy"], "quorum": 3}}
            return state.model_copy(update={"extensions": ext}), [EventDraft(action="set_policy", actor="future")]

        reg.metadata.update("_registry", newer)
        with pytest.raises(SchemaVersionError, match="upgrade modelreg"):
            reg.transition(mv.ref, "production")
        assert reg.get_version(mv.ref).stage == Stage.EXPERIMENTAL


# -- storing the policy ---------------------------------------------------------------------------------------------
class TestPolicyStorage:
    def test_set_policy_is_audited(self, gov_registry: Registry) -> None:
        reg = gov_registry
        assert reg.policy_history() == []
        p = Policy(gates={"production": Gate(approvals=1)})
        reg.set_policy(p, comment="four eyes", actor="lead")
        reg.set_policy(p, actor="lead")  # unchanged: no event
        (ev,) = reg.policy_history()
        assert (ev.model, ev.action, ev.actor, ev.comment) == ("_registry", "set_policy", "lead", "four eyes")
        assert ev.after == {"digest": p.digest(), "policy": p.to_dict()}
        assert ev.before == {"digest": Policy().digest(), "stored": False}
        assert reg.get_policy() == p
        # hidden from the user-facing listings, visible in the internal feed
        assert "_registry" not in [m.name for m in reg.list_models()]
        assert all(e.model != "_registry" for e in reg.history())
        assert [e.action for e in reg.events(include_internal=True).events] == ["create_model", "set_policy"]
        assert reg.verify_audit("_registry")[0] == []

    def test_invalid_policy_writes_nothing(self, gov_registry: Registry) -> None:
        reg = gov_registry
        with pytest.raises(InvalidInputError, match="invalid policy"):
            reg.set_policy({"gates": {"production": {"metrics": ["nonsense"]}}})
        assert reg.policy_history() == []

    def test_admins(self, gov_registry: Registry) -> None:
        reg = gov_registry
        with pytest.raises(
            PolicyViolation,
            match=r"the new policy's admins \(lead\) do not include ana, who would be "
            "locked out of changing it again; add yourself to 'admins' or leave it empty",
        ):
            reg.set_policy(Policy(admins=["lead"]))
        reg.set_policy(Policy(admins=["Lead"]), actor="lead")
        with pytest.raises(
            PolicyViolation, match=r"only the policy's admins \(Lead\) may change the policy; ana is not one of them"
        ):
            reg.set_policy(Policy())
        with pytest.raises(
            PolicyViolation, match=r"only the policy's admins \(Lead\) may change webhooks; ana is not one of them"
        ):
            reg.add_webhook("http://127.0.0.1:9/hook", secret_env="S")
        reg.set_policy(Policy(), actor="LEAD")  # actor names compare case-insensitively
        assert reg.get_policy() == Policy()

    def test_every_client_enforces_the_stored_policy(self, tmp_path: Path) -> None:
        for uri in (str(tmp_path / "sq"), "file://" + str(tmp_path / "js")):
            with Registry(uri, actor="ana") as a, Registry(uri, actor="bo") as b:
                a.set_policy(Policy(gates={"production": Gate(approvals=1)}))
                mv = register(b, tmp_path)
                with pytest.raises(PolicyViolation, match="approvals: production needs 1 approval"):
                    b.transition(mv.ref, "production")


# -- the request workflow, on every metadata store ---------------------------------------------------------------------
def two_approvals(reg: Registry, **gate: Any) -> None:
    reg.set_policy(Policy(groups={"risk": ["cy", "dee"]}, gates={"production": Gate(approvals=2, **gate)}, admins=[]))


class TestWorkflow:
    def test_request_approve_promote(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        old = register(reg, tmp_path, metrics={"auc": 0.8})
        reg.transition(old.ref, "production")
        two_approvals(reg)
        mv = register(reg, tmp_path, metrics={"auc": 0.9})
        req = reg.request_transition(mv.ref, "production", "beats v1", actor="bo")
        assert isinstance(req, TransitionRequest)
        assert (req.model, req.version, req.from_stage, req.to_stage, req.requester, req.status, req.comment) == (
            "churn",
            2,
            Stage.EXPERIMENTAL,
            PROD,
            "bo",
            "pending",
            "beats v1",
        )
        assert req.id.startswith("churn:") and len(req.id) == len("churn:") + 8
        assert req.unmet == ["approvals: needs 2 approvals, has 0"]
        first = reg.approve(req.id, actor="cy", comment="looks good")
        assert first.status == "pending" and first.approvers == ["cy"]
        assert first.unmet == ["approvals: needs 2 approvals, has 1 (cy)"]
        assert reg.get_version(mv.ref).stage == Stage.EXPERIMENTAL
        done = reg.approve(req.id, actor="dee")
        assert done.status == "completed" and done.closed_by == "dee" and done.unmet == []
        assert reg.get_version(mv.ref).stage == PROD
        assert reg.get_version(old.ref).stage == Stage.ARCHIVED
        assert reg.get_request(req.id) == done
        events = reg.history("churn")[-5:]
        assert [(e.action, e.actor, e.version) for e in events] == [
            ("request_transition", "bo", 2),
            ("approve", "cy", 2),
            ("approve", "dee", 2),
            ("transition", "dee", 1),
            ("transition", "dee", 2),
        ]
        assert events[-1].after == {
            "stage": "production",
            "request": req.id,
            "requested_by": "bo",
            "approved_by": ["cy", "dee"],
        }
        assert events[-1].comment == "beats v1"
        assert events[0].after == {"request": req.id, "from": "experimental", "to": "production"}
        assert events[1].comment == "looks good" and events[1].after["approvals"] == 1
        assert reg.verify_audit("churn")[0] == []

    def test_no_gates_completes_at_once(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        mv = register(reg, tmp_path)
        req = reg.request_transition(mv.ref, "staging")
        assert req.status == "completed" and reg.get_version(mv.ref).stage == Stage.STAGING
        assert actions(reg)[-2:] == ["request_transition", "transition"]

    def test_group_approvals(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        reg.set_policy(
            Policy(
                groups={"risk": ["cy", "Dee@Example.com"]},
                gates={"production": Gate(approvals=[{"count": 2}, {"count": 1, "group": "risk"}])},
            )
        )
        mv = register(reg, tmp_path)
        req = reg.request_transition(mv.ref, "production", actor="bo")
        assert req.unmet == [
            "approvals: needs 2 approvals, has 0",
            "approvals: needs 1 approval from group 'risk', has 0; members: cy, Dee@Example.com",
        ]
        r1 = reg.approve(req.id, actor="eve")
        assert r1.unmet == [
            "approvals: needs 2 approvals, has 1 (eve)",
            "approvals: needs 1 approval from group 'risk', has 0; members: cy, Dee@Example.com",
        ]
        r2 = reg.approve(req.id, actor="dee@example.com")  # counts for both rules
        assert r2.status == "completed"

    def test_only_group_members_may_approve(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        reg.set_policy(
            Policy(
                groups={"risk": ["cy"], "legal": ["lu"]},
                gates={"production": Gate(approvals=[{"count": 1, "group": "risk"}, {"count": 1, "group": "legal"}])},
            )
        )
        mv = register(reg, tmp_path)
        req = reg.request_transition(mv.ref, "production", actor="bo")
        with pytest.raises(PolicyViolation) as info:
            reg.approve(req.id, actor="eve")
        assert str(info.value) == (
            f"eve cannot approve request {req.id} (churn/1 to production): eve is not in any of "
            "the groups 'risk', 'legal', whose approvals the move to production needs"
        )
        assert reg.approve(req.id, actor="lu").status == "pending"
        assert reg.approve(req.id, actor="cy").status == "completed"

    def test_separation_of_duties(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        reg.set_policy(
            Policy(
                groups={"risk": ["ana", "bo"]}, gates={"production": Gate(approvals=[{"count": 1, "group": "risk"}])}
            )
        )
        mv = register(reg, tmp_path, actor="ana")
        req = reg.request_transition(mv.ref, "production", actor="bo")
        with pytest.raises(PolicyViolation) as info:
            reg.approve(req.id, actor="ANA")
        assert str(info.value) == (
            f"ANA cannot approve request {req.id} (churn/1 to production): separation of duties: "
            "ANA registered this version and cannot approve its move to production"
        )
        assert info.value.unmet == [
            ("separation of duties: ANA registered this version and cannot approve its move to production")
        ]
        with pytest.raises(
            PolicyViolation, match="separation of duties: bo requested this transition and cannot approve it"
        ):
            reg.approve(req.id, actor="bo")
        assert reg.get_request(req.id).approvals == []
        assert actions(reg)[-1] == "request_transition"  # refusals write nothing

    def test_separation_of_duties_can_be_relaxed(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        reg.set_policy(
            Policy(gates={"production": Gate(approvals=1, approver_not_author=False, approver_not_requester=False)})
        )
        mv = register(reg, tmp_path, actor="ana")
        req = reg.request_transition(mv.ref, "production", actor="ana")
        assert reg.approve(req.id, actor="ana").status == "completed"

    def test_a_policy_change_is_applied_at_completion(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        reg.set_policy(Policy(gates={"production": Gate(approvals=1, approver_not_requester=False)}))
        mv = register(reg, tmp_path, actor="ana")
        req = reg.request_transition(mv.ref, "production", actor="bo")
        reg.set_policy(Policy(gates={"production": Gate(approvals=2)}))
        r = reg.approve(req.id, actor="cy")
        assert r.status == "pending" and r.unmet == ["approvals: needs 2 approvals, has 1 (cy)"]

    def test_approvals_that_no_longer_count(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        reg.set_policy(Policy(gates={"production": Gate(approvals=2, approver_not_requester=False)}))
        mv = register(reg, tmp_path, actor="ana")
        req = reg.request_transition(mv.ref, "production", actor="bo")
        reg.approve(req.id, actor="bo")  # allowed by the policy of the time
        reg.set_policy(Policy(gates={"production": Gate(approvals=2)}))
        r = reg.approve(req.id, actor="cy")
        assert r.status == "pending" and r.unmet == ["approvals: needs 2 approvals, has 1 (cy)"]

    def test_duplicate_approval(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        two_approvals(reg)
        req = reg.request_transition(register(reg, tmp_path).ref, "production", actor="bo")
        reg.approve(req.id, actor="cy")
        with pytest.raises(
            AlreadyExistsError, match=f"Cy already approved request {req.id}; it needs approvals from other people"
        ):
            reg.approve(req.id, actor="Cy")

    def test_closed_requests_cannot_be_acted_on(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        reg.set_policy(Policy(gates={"production": Gate(approvals=1)}))
        req = reg.request_transition(register(reg, tmp_path).ref, "production", actor="bo")
        done = reg.approve(req.id, actor="cy")
        when = done.closed_at.isoformat(timespec="seconds")
        for op, verb in (
            (reg.approve, "approved"),
            (reg.reject, "rejected"),
            (reg.cancel, "cancelled"),
            (reg.complete, "completed"),
        ):
            with pytest.raises(InvalidTransitionError) as info:
                op(req.id, actor="dee")
            assert str(info.value) == (
                f"request {req.id} (churn/1 to production) was already completed by cy at {when}; only pending "
                f"requests can be {verb}. Start a new one with `modelreg request churn/1 production`"
            )

    def test_reject(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        two_approvals(reg)
        mv = register(reg, tmp_path)
        req = reg.request_transition(mv.ref, "production", actor="bo")
        with pytest.raises(
            PolicyViolation,
            match=f"bo made request {req.id}; withdraw it with cancel "
            rf"\(modelreg cancel {req.id}\) instead of rejecting it",
        ):
            reg.reject(req.id, actor="bo")
        out = reg.reject(req.id, actor="cy", comment="auc too low on segment B")
        assert (out.status, out.closed_by, out.close_comment) == ("rejected", "cy", "auc too low on segment B")
        ev = reg.history("churn")[-1]
        assert (ev.action, ev.actor, ev.comment) == ("reject", "cy", "auc too low on segment B")
        assert ev.before == {"request": req.id, "status": "pending"} and ev.after["status"] == "rejected"
        assert reg.get_version(mv.ref).stage == Stage.EXPERIMENTAL
        # a new request may follow
        assert reg.request_transition(mv.ref, "production", actor="bo").status == "pending"

    def test_reject_needs_a_reviewer_of_the_group(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        reg.set_policy(
            Policy(
                groups={"risk": ["cy"]},
                admins=["ana"],
                gates={"production": Gate(approvals=[{"count": 1, "group": "risk"}])},
            )
        )
        req = reg.request_transition(register(reg, tmp_path).ref, "production", actor="bo")
        with pytest.raises(
            PolicyViolation,
            match=f"eve cannot reject request {req.id}: only reviewers in 'risk' "
            r"\(or a policy admin\) can",
        ):
            reg.reject(req.id, actor="eve")
        assert reg.reject(req.id, actor="ana").status == "rejected"  # an admin may

    def test_cancel(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        two_approvals(reg)
        mv = register(reg, tmp_path)
        req = reg.request_transition(mv.ref, "production", actor="bo")
        with pytest.raises(PolicyViolation) as info:
            reg.cancel(req.id, actor="cy")
        assert str(info.value) == (
            f"only the requester bo (or a policy admin) can cancel request {req.id}; "
            f"reviewers use reject (modelreg reject {req.id})"
        )
        out = reg.cancel(req.id, actor="bo", comment="wrong version")
        assert out.status == "cancelled" and reg.history("churn")[-1].action == "cancel_request"
        # a policy admin may cancel someone else's request
        reg.set_policy(Policy(admins=["ana"], gates={"production": Gate(approvals=2)}))
        req2 = reg.request_transition(mv.ref, "production", actor="bo")
        assert reg.cancel(req2.id, actor="ana").status == "cancelled"

    def test_manual_completion(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        reg.set_policy(Policy(auto_complete=False, gates={"production": Gate(approvals=1)}))
        mv = register(reg, tmp_path)
        req = reg.request_transition(mv.ref, "production", actor="bo")
        approved = reg.approve(req.id, actor="cy")
        assert approved.status == "pending" and approved.unmet == []
        assert reg.get_version(mv.ref).stage == Stage.EXPERIMENTAL
        done = reg.complete(req.id, actor="bo", comment="deploy window open")
        assert done.status == "completed" and reg.get_version(mv.ref).stage == PROD
        assert reg.history("churn")[-1].comment == "deploy window open"

    def test_complete_lists_unmet_gates_then_succeeds_once_fixed(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        reg.set_policy(Policy(gates={"production": Gate(approvals=1, metrics=["metrics.auc >= 0.9"], tags=["team"])}))
        mv = register(reg, tmp_path)
        req = reg.request_transition(mv.ref, "production", actor="bo")
        r = reg.approve(req.id, actor="cy")
        assert r.status == "pending" and [u.split(":")[0] for u in r.unmet] == ["metrics.auc >= 0.9", "tag 'team'"]
        with pytest.raises(PolicyViolation) as info:
            reg.complete(req.id)
        assert str(info.value).startswith(
            f"cannot complete request {req.id} (churn/1 to production): 2 unmet gates "
            "of the registry policy:\n  - metrics.auc >= 0.9: churn/1 has no metric 'auc'"
        )
        reg.log_metrics(mv.ref, {"auc": 0.95})
        reg.set_tags(mv.ref, {"team": "fraud"})
        assert reg.complete(req.id).status == "completed"
        assert reg.get_version(mv.ref).stage == PROD

    def test_request_errors(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        two_approvals(reg)
        mv = register(reg, tmp_path)
        req = reg.request_transition(mv.ref, "production", actor="bo")
        with pytest.raises(AlreadyExistsError) as info:
            reg.request_transition("churn@experimental", "production", actor="cy")
        assert str(info.value) == (
            f"request {req.id} by bo already asks to move churn/1 to production; approve it "
            f"(modelreg approve {req.id}) or cancel it first"
        )
        with pytest.raises(InvalidTransitionError, match="churn/1 is already in experimental; nothing to do"):
            reg.request_transition(mv.ref, "experimental")
        with pytest.raises(VersionNotFound):
            reg.request_transition("churn/9", "production")
        with pytest.raises(InvalidInputError, match="unknown stage 'live'"):
            reg.request_transition(mv.ref, "live")

    def test_unknown_and_invalid_ids(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        register(reg, tmp_path)
        with pytest.raises(NotFoundError) as info:
            reg.approve("churn:0000abcd", actor="cy")
        assert str(info.value) == (
            "model 'churn' has no transition request 'churn:0000abcd' (closed requests older "
            "than the last 200 are only in `modelreg history churn`); list pending ones with "
            "`modelreg requests`"
        )
        for bad in ("churn", "churn:XYZ", 42, "../x:00ab"):
            with pytest.raises(InvalidInputError):
                reg.get_request(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="invalid request id 'churn'; ids look like 'churn:1f2e3d4c'"):
            reg.approve("churn", actor="cy")
        with pytest.raises(NotFoundError, match="no model named 'fraud'"):
            reg.get_request("fraud:0000abcd")

    def test_list_requests(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        two_approvals(reg)
        a = register(reg, tmp_path, "churn")
        b = register(reg, tmp_path, "fraud")
        r1 = reg.request_transition(a.ref, "production", actor="bo")
        r2 = reg.request_transition(b.ref, "production", actor="bo")
        r3 = reg.request_transition(a.ref, "staging", actor="bo")  # no gate: completes
        reg.cancel(r2.id, actor="bo")
        assert [q.id for q in reg.list_requests()] == [r1.id]
        assert [q.id for q in reg.list_requests("all")] == [r1.id, r2.id, r3.id]
        assert [q.id for q in reg.list_requests(None, model="fraud")] == [r2.id]
        assert [q.id for q in reg.list_requests("completed")] == [r3.id]
        assert [q.id for q in reg.list_requests("cancelled")] == [r2.id]
        with pytest.raises(
            InvalidInputError,
            match="unknown request status 'open'; use one of pending, completed, "
            "rejected, cancelled, superseded or 'all'",
        ):
            reg.list_requests("open")

    def test_superseded_when_reached_another_way(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        two_approvals(reg)
        mv = register(reg, tmp_path)
        req = reg.request_transition(mv.ref, "production", actor="bo")
        reg.set_policy(Policy())
        reg.transition(mv.ref, "production", actor="lead")
        out = reg.get_request(req.id)
        assert (out.status, out.closed_by) == ("superseded", "lead")
        assert out.close_comment == "churn/1 reached production another way"
        assert actions(reg)[-2:] == ["transition", "close_request"]

    def test_purged_version(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        two_approvals(reg)
        mv = register(reg, tmp_path)
        req = reg.request_transition(mv.ref, "production", actor="bo")
        reg.purge(mv.ref)
        with pytest.raises(VersionNotFound, match=f"churn/1 no longer exists \\(purged\\); cancel request {req.id}"):
            reg.approve(req.id, actor="cy")
        assert reg.cancel(req.id, actor="bo").status == "cancelled"

    def test_version_moved_before_completion(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        reg.set_policy(
            Policy(
                transitions={
                    "experimental": ["staging", "production"],
                    "staging": ["archived"],
                    "production": ["archived"],
                    "archived": [],
                },
                gates={"production": Gate(approvals=1)},
            )
        )
        mv = register(reg, tmp_path)
        req = reg.request_transition(mv.ref, "production", actor="bo")
        reg.transition(mv.ref, "staging")
        r = reg.approve(req.id, actor="cy")  # approval recorded; the move itself is no longer allowed
        assert r.status == "pending"
        assert r.unmet == ["transition: cannot move churn/1 from staging to production; allowed from staging: archived"]
        with pytest.raises(InvalidTransitionError, match="allowed from staging: archived"):
            reg.complete(req.id)

    def test_closed_requests_are_pruned_from_the_state(
        self, gov_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from modelreg.governance import requests as requests_module

        monkeypatch.setattr(requests_module, "KEEP_CLOSED", 2)
        reg = gov_registry
        two_approvals(reg)
        mv = register(reg, tmp_path)
        ids = []
        for _ in range(4):
            req = reg.request_transition(mv.ref, "production", actor="bo")
            reg.cancel(req.id, actor="bo")
            ids.append(req.id)
        assert [q.id for q in reg.list_requests("all")] == ids[-2:]
        assert [e.after["request"] for e in reg.history("churn") if e.action == "cancel_request"] == ids


# -- rollback and the emergency bypass --------------------------------------------------------------------------------
class TestRollback:
    def prepare(self, reg: Registry, tmp_path: Path) -> tuple[Any, Any]:
        v1 = register(reg, tmp_path, metrics={"auc": 0.9})
        reg.transition(v1.ref, "production")
        v2 = register(reg, tmp_path, metrics={"auc": 0.95})
        reg.transition(v2.ref, "production")
        return v1, v2

    def test_plain_rollback_without_gates(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        _v1, v2 = self.prepare(reg, tmp_path)
        assert reg.rollback("churn").version == 1
        assert reg.get_version(v2.ref).stage == Stage.ARCHIVED
        assert reg.history("churn")[-1].after == {"stage": "production"}

    def test_emergency_rollback_bypasses_gates_with_a_comment(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        _v1, v2 = self.prepare(reg, tmp_path)
        reg.set_policy(Policy(gates={"production": Gate(approvals=2, metrics=["metrics.auc >= @production"])}))
        with pytest.raises(PolicyViolation) as info:
            reg.rollback("churn")
        assert str(info.value).startswith(
            "rolling churn@production back to version 1 is an emergency rollback that bypasses gates; say why with "
            "comment=..., it is recorded in the audit trail: 2 unmet gates of the registry policy:"
        )
        assert info.value.render("cli").startswith(
            "rolling churn@production back to version 1 is an emergency rollback that bypasses gates; say why with "
            "--comment TEXT, it is recorded in the audit trail: 2 unmet gates of the registry policy:"
        )
        assert reg.get_version(v2.ref).stage == PROD
        restored = reg.rollback("churn", comment="v2 crashes on empty input", actor="oncall")
        assert restored.version == 1 and reg.get_version(v2.ref).stage == Stage.ARCHIVED
        ev = reg.history("churn")[-1]
        assert (ev.action, ev.actor, ev.version, ev.comment) == ("rollback", "oncall", 1, "v2 crashes on empty input")
        assert ev.after["emergency"] is True and ev.after["stage"] == "production"
        assert [b.split(":")[0] for b in ev.after["bypassed"]] == ["approvals", "metrics.auc >= @production"]

    def test_rollback_subject_to_gates_when_bypass_is_off(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        self.prepare(reg, tmp_path)
        reg.set_policy(Policy(emergency_rollback=False, gates={"production": Gate(approvals=1)}))
        with pytest.raises(PolicyViolation) as info:
            reg.rollback("churn", comment="please")
        assert str(info.value).startswith(
            "cannot roll back churn@production to version 1 (this policy does not let rollbacks bypass gates; request "
            "the transition with reg.request_transition('churn/1', 'production')): 1 unmet gate"
        )
        assert info.value.render("cli").startswith(
            "cannot roll back churn@production to version 1 (this policy does not let rollbacks bypass gates; request "
            "the transition with `modelreg request churn/1 production`): 1 unmet gate"
        )
        req = reg.request_transition("churn/1", "production", actor="bo")
        assert reg.approve(req.id, actor="cy").status == "completed"

    def test_rollback_with_gates_met_needs_no_comment(self, gov_registry: Registry, tmp_path: Path) -> None:
        reg = gov_registry
        self.prepare(reg, tmp_path)
        reg.set_policy(Policy(emergency_rollback=False, gates={"production": Gate(metrics=["metrics.auc >= 0.5"])}))
        assert reg.rollback("churn").version == 1
        assert "emergency" not in reg.history("churn")[-1].after


# -- identity --------------------------------------------------------------------------------------------------------
class TestIdentity:
    @pytest.fixture(autouse=True)
    def _restore(self) -> Any:
        yield
        set_actor_resolvers(None)

    def test_explicit_then_registry_default_then_chain(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("MODELREG_ACTOR", "from-env")
        with Registry(tmp_path / "reg") as reg:
            mv = register(reg, tmp_path, actor="explicit")
            assert mv.created_by == "explicit"
            reg.transition(mv.ref, "staging")
            assert reg.history("churn")[-1].actor == "from-env"
        with Registry(tmp_path / "reg", actor="default") as reg:
            reg.transition("churn/1", "production")
            assert reg.history("churn")[-1].actor == "default"

    def test_git_email_then_os_user(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        import getpass

        from modelreg.governance import identity

        repo = tmp_path / "repo"
        repo.mkdir()
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        subprocess.run(["git", "-C", str(repo), "config", "user.email", "ana@example.com"], check=True)
        monkeypatch.delenv("MODELREG_ACTOR")
        monkeypatch.chdir(repo)
        identity._git_cache.clear()
        assert git_actor() == "ana@example.com"
        assert resolve_actor() == "ana@example.com"
        elsewhere = tmp_path / "plain"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global"))
        monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
        identity._git_cache.clear()
        assert git_actor() is None
        assert resolve_actor() == getpass.getuser()

    def test_custom_resolvers(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("MODELREG_ACTOR")
        set_actor_resolvers([lambda: None, lambda: "sso:ana"])
        assert resolve_actor() == "sso:ana"
        assert resolve_actor("bo") == "bo"
        set_actor_resolvers([lambda: None])
        assert resolve_actor() == "unknown"
        with pytest.raises(InvalidInputError, match="actor resolvers must be callables"):
            set_actor_resolvers(["ana"])  # type: ignore[list-item]


def test_policy_file_round_trip_through_json(tmp_path: Path, sqlite_registry: Registry) -> None:
    path = tmp_path / "policy.json"
    path.write_text(
        json.dumps(
            {"groups": {"risk": ["cy"]}, "gates": {"production": {"approvals": [{"count": 1, "group": "risk"}]}}}
        )
    )
    stored = sqlite_registry.set_policy(path.read_text())
    assert sqlite_registry.get_policy() == stored
    assert json.loads(stored.to_json())["gates"]["production"]["approvals"] == [{"count": 1, "group": "risk"}]


def test_records_missing_from_the_prefetch_are_fetched_and_the_update_rerun(
    gov_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A baseline that changed after the records were fetched aborts the attempt (nothing written) and retries."""
    from modelreg.governance.engine import Governance

    reg = gov_registry
    base = register(reg, tmp_path, metrics={"auc": 0.9})
    reg.transition(base.ref, "production")
    reg.set_policy(Policy(gates={"production": Gate(approvals=1, metrics=["metrics.auc >= @production"])}))
    mv = register(reg, tmp_path, metrics={"auc": 0.95})
    req = reg.request_transition(mv.ref, "production", actor="bo")
    attempts = []
    original = reg.metadata.update

    def counting_update(name: str, fn: Any) -> Any:
        attempts.append(name)
        return original(name, fn)

    monkeypatch.setattr(
        Governance, "_prefetch", lambda self, records, policy, target, version: records.fetch([version])
    )
    monkeypatch.setattr(reg.metadata, "update", counting_update)
    before = len(reg.history("churn"))
    done = reg.approve(req.id, actor="cy")
    assert done.status == "completed" and reg.get_version(mv.ref).stage == PROD
    assert attempts == ["churn", "churn"]  # the first attempt needed churn/1's record
    assert [e.action for e in reg.history("churn")[before:]] == ["approve", "transition", "transition"]


def test_actor_and_comment_by_position_still_work_with_a_deprecation_warning(
    sqlite_registry: Registry, tmp_path: Path
) -> None:
    reg = sqlite_registry
    reg.set_policy(Policy(gates={"production": Gate(approvals=1)}, admins=[]))
    mv = register(reg, tmp_path)
    req = reg.request_transition(mv.ref, "production", actor="bo")
    with pytest.raises(TypeError, match="actor= and comment= by keyword"):
        reg.cancel(req.id, "bo", actor="bo")
    with pytest.warns(DeprecationWarning, match=r"approve\(\) by position is deprecated.*actor=\.\.\., comment="):
        done = reg.approve(req.id, "cy", "looks good")
    assert done.status == "completed" and done.approvers == ["cy"]
    assert reg.history("churn")[-2].comment == "looks good"
