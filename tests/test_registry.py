"""Public API behaviours of ``Registry``, run on every registry backend (the ``registry`` fixture)
and, where real files matter, on the embedded default folder."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pydantic
import pytest

from modelreg import (
    AlreadyExistsError,
    InvalidInputError,
    InvalidTransitionError,
    ModelNotFound,
    ModelregError,
    NotFoundError,
    Registry,
    Stage,
    VersionNotFound,
)
from tests.helpers import (
    FAST_BACKENDS,
    assert_verified,
    blob_files,
    make_folder,
    metadata_snapshot,
    open_backend,
    temp_files,
    tree,
    write,
)


@pytest.fixture(params=FAST_BACKENDS)
def fast_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    yield from open_backend(request, tmp_path)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    return write(tmp_path / "src" / "model.onnx", b"onnx-bytes-v1")


def register_n(reg: Registry, tmp_path: Path, n: int, name: str = "churn", **kw) -> list:
    out = []
    for i in range(n):
        f = write(tmp_path / "src" / f"{name.replace('/', '_')}-{i}" / "model.bin", f"{name} content {i}")
        out.append(reg.register(name, f, capture=None, **kw))
    return out


# -- register --------------------------------------------------------------------------------------


def test_register_file_records_everything(registry: Registry, model_file: Path) -> None:
    before = datetime.now(timezone.utc)
    mv = registry.register(
        "churn",
        model_file,
        params={"lr": 0.1, "layers": [64, 32], "opt": {"name": "adam"}},
        metrics={"auc": 0.91, "n": 3},
        tags={"team": "fraud"},
        description="first cut",
        actor="ana",
        lineage={"run_id": "run-1", "datasets": [{"uri": "s3://data/train.parquet", "version": "7"}]},
        capture=None,
        format="onnx",
    )
    assert (mv.name, mv.version, mv.stage) == ("churn", 1, Stage.EXPERIMENTAL)
    assert mv.digest == sha(b"onnx-bytes-v1") and mv.size == len(b"onnx-bytes-v1")
    assert mv.artifact.kind == "file" and mv.artifact.name == "model.onnx" and mv.artifact.format == "onnx"
    assert [(f.path, f.digest, f.size) for f in mv.artifact.files] == [("model.onnx", mv.digest, mv.size)]
    assert mv.params == {"lr": 0.1, "layers": [64, 32], "opt": {"name": "adam"}}
    assert mv.metrics == {"auc": 0.91, "n": 3.0} and isinstance(mv.metrics["n"], float)
    assert mv.tags == {"team": "fraud"} and mv.description == "first cut"
    assert mv.created_by == "ana" and mv.created_at.tzinfo is not None
    assert before <= mv.created_at <= datetime.now(timezone.utc)
    assert mv.lineage.run_id == "run-1" and mv.lineage.datasets[0].uri == "s3://data/train.parquet"
    assert registry.get_version("churn/1") == mv
    assert registry.get_model("churn").owner == "ana"
    # without actor=, the actor comes from $MODELREG_ACTOR (conftest sets "tester")
    assert registry.register("churn", model_file, capture=None).created_by == "tester"
    assert_verified(registry)


def test_register_folder_has_manifest_and_per_file_digests(registry: Registry, tmp_path: Path) -> None:
    files = {"saved_model.pb": b"graph", "variables/data-0": b"weights" * 100, "variables/index": b"idx"}
    folder = make_folder(tmp_path / "src" / "saved", files)
    mv = registry.register("ranker", folder, capture=None)
    assert mv.artifact.kind == "directory" and mv.artifact.name == "saved"
    assert {f.path: (f.digest, f.size) for f in mv.artifact.files} == {
        rel: (sha(data), len(data)) for rel, data in files.items()
    }
    assert mv.size == sum(len(d) for d in files.values())
    assert mv.digest not in {f.digest for f in mv.artifact.files}  # the manifest digest, not a file's
    out = registry.download("ranker/1", tmp_path / "out")
    assert out == tmp_path / "out" / "saved" and tree(out) == files


def test_identical_content_is_stored_once_across_versions_and_models(registry: Registry, tmp_path: Path) -> None:
    shared = b"the same weights"
    a = write(tmp_path / "a" / "model.bin", shared)
    b = write(tmp_path / "b" / "other-name.bin", shared)
    folder = make_folder(tmp_path / "dir", {"w.bin": shared, "config.json": b"{}"})
    mvs = [
        registry.register("churn", a, capture=None),
        registry.register("churn", b, capture=None),
        registry.register("team/fraud", a, capture=None),
        registry.register("team/fraud", folder, capture=None),
    ]
    assert [m.ref for m in mvs] == ["churn/1", "churn/2", "team/fraud/1", "team/fraud/2"]
    assert mvs[0].digest == mvs[1].digest == mvs[2].digest == sha(shared)
    blobs = sorted(b.digest for b in registry.artifacts.iter_blobs())
    assert blobs == sorted({sha(shared), sha(b"{}")})


def test_dedup_counts_blob_files_on_disk(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    reg = Registry(root)
    f = write(tmp_path / "m.bin", os.urandom(4096))
    for name in ("churn", "churn", "fraud", "team/churn"):
        reg.register(name, f, capture=None)
    make_folder(tmp_path / "dir", {"m.bin": f.read_bytes(), "extra.txt": b"x"})
    reg.register("fraud", tmp_path / "dir", capture=None)
    files = blob_files(root)
    assert len(files) == 2
    assert {p.read_bytes() for p in files} == {f.read_bytes(), b"x"}
    assert all(p.stat().st_mode & 0o222 == 0 for p in files)  # published read-only
    assert temp_files(root) == []
    reg.close()


# -- version numbers ---------------------------------------------------------------------------------


def test_versions_are_numbered_per_model_and_never_reused(registry: Registry, tmp_path: Path) -> None:
    assert [m.version for m in register_n(registry, tmp_path, 3)] == [1, 2, 3]
    assert [m.version for m in register_n(registry, tmp_path, 2, name="team/churn")] == [1, 2]
    model = registry.get_model("churn")
    assert model.latest_version == 3 and model.version_count == 3
    assert [m.name for m in registry.list_models()] == ["churn", "team/churn"]
    # numbers are never reused, even when the newest versions are purged
    registry.purge("churn/3", comment="bad data")
    registry.purge("churn/2")
    assert [v.version for v in registry.list_versions("churn")] == [1]
    assert registry.get_version("churn").version == 1
    mv = registry.register("churn", write(tmp_path / "new.bin", b"new"), capture=None)
    assert mv.version == 4
    with pytest.raises(VersionNotFound, match="model 'churn' has no version 3"):
        registry.get_version("churn/3")
    assert_verified(registry)


def test_records_are_immutable(registry: Registry, tmp_path: Path) -> None:
    mv = register_n(registry, tmp_path, 1, tags={"a": "1"})[0]
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        mv.version = 2  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        mv.artifact.digest = "sha256:" + "0" * 64  # type: ignore[misc]
    mv.params["injected"] = 1  # a caller mutating its copy does not reach the registry
    registry.set_tags("churn/1", {"b": "2"})
    registry.set_description("churn/1", "changed")
    registry.transition("churn/1", "staging")
    registry.log_metrics("churn/1", {"auc": 0.5})
    register_n(registry, tmp_path / "more", 1)
    now = registry.get_version("churn/1")
    for field in ("name", "version", "artifact", "metrics", "lineage", "created_by", "created_at"):
        assert getattr(now, field) == getattr(mv, field), field
    assert now.params == {} and now.tags == {"a": "1", "b": "2"} and now.description == "changed"
    assert now.stage == "staging" and now.logged_metrics == {"auc": 0.5}


# -- references ----------------------------------------------------------------------------------------


def test_get_version_in_every_reference_form(registry: Registry, tmp_path: Path) -> None:
    register_n(registry, tmp_path, 4)
    register_n(registry, tmp_path / "t", 2, name="team/churn")
    registry.transition("churn", 3, "production")
    registry.transition("churn", 2, "staging")
    registry.set_alias("churn", "champion", 3)
    registry.set_alias("team/churn", "shadow", 1)
    v3 = registry.get_version("churn", 3)
    assert v3.version == 3
    assert registry.get_version("churn").version == 4  # latest
    assert registry.get_version("churn/3") == v3
    assert registry.get_version("churn", "3") == v3
    assert registry.get_version("churn@production") == v3
    assert registry.get_version("churn", stage="production") == v3
    assert registry.get_version("churn", stage=Stage.PRODUCTION) == v3
    assert registry.get_version("churn@PRODUCTION") == v3
    assert registry.get_version("churn@champion") == v3
    assert registry.get_version("churn", alias="champion") == v3
    assert registry.get_version("models:/churn/3") == v3
    assert registry.get_version("models:/churn@champion") == v3
    assert registry.get_version("churn@staging").version == 2
    assert registry.get_version("team/churn/2").ref == "team/churn/2"
    assert registry.get_version("team/churn").version == 2
    assert registry.get_version("team/churn@shadow").ref == "team/churn/1"
    assert registry.get_version("models:/team/churn/1").ref == "team/churn/1"
    assert v3.aliases == ["champion"]


def test_get_version_errors_say_what_to_do(fast_registry: Registry, tmp_path: Path) -> None:
    registry = fast_registry
    register_n(registry, tmp_path, 1)
    with pytest.raises(ModelNotFound, match=r"no model named 'nope'; list models with `modelreg list`"):
        registry.get_version("nope")
    with pytest.raises(VersionNotFound, match=r"has no version 9; list them with `modelreg versions churn`"):
        registry.get_version("churn/9")
    with pytest.raises(VersionNotFound, match=r"no version of 'churn' is in production; promote one with"):
        registry.get_version("churn@production")
    with pytest.raises(VersionNotFound, match=r"has no alias 'champion' \(aliases: none\)"):
        registry.get_version("churn@champion")
    with pytest.raises(InvalidInputError, match="give at most one of a version, a stage or an alias"):
        registry.get_version("churn/1", 1)
    with pytest.raises(InvalidInputError, match="give at most one of a version, a stage or an alias"):
        registry.get_version("churn", 1, stage="production")
    assert issubclass(ModelNotFound, NotFoundError) and issubclass(NotFoundError, LookupError)
    registry.create_model("empty")
    with pytest.raises(VersionNotFound, match="model 'empty' has no versions; register one first"):
        registry.get_version("empty")


# -- stages ---------------------------------------------------------------------------------------------

# the documented transition table (modelreg.stages)
TABLE = {
    "experimental": {"staging", "production", "archived"},
    "staging": {"production", "experimental", "archived"},
    "production": {"staging", "archived"},
    "archived": {"experimental", "staging", "production"},
}
ORDER = ["experimental", "staging", "production", "archived"]
PAIRS = [(s, t) for s in ORDER for t in ORDER]


def test_stage_transition_table(fast_registry: Registry, tmp_path: Path) -> None:
    """Every (source, target) pair: allowed moves succeed and are audited, the others are refused
    with the allowed targets named, and change nothing (no stage change, no event)."""
    registry = fast_registry
    model_file = write(tmp_path / "m.bin", b"same content for every model")
    for source, target in PAIRS:
        name = f"m-{source}-{target}"
        registry.register(name, model_file, capture=None)
        if source != "experimental":
            registry.transition(name, 1, source, actor="ana")
        if target in TABLE[source]:
            assert registry.transition(name, 1, target, comment="why", actor="bob").stage == target
        elif source == target:
            with pytest.raises(InvalidTransitionError, match=rf"{name}/1 is already in {target}; nothing to do"):
                registry.transition(name, 1, target, strict=True)
            unchanged = metadata_snapshot(registry)  # without strict: returned as it is, nothing written
            assert registry.transition(name, 1, target, comment="again", actor="bob").stage == target
            assert metadata_snapshot(registry) == unchanged
        else:
            allowed = ", ".join(s for s in ORDER if s in TABLE[source])
            with pytest.raises(
                InvalidTransitionError,
                match=rf"cannot move {name}/1 from {source} to {target}; allowed from {source}: {allowed}$",
            ):
                registry.transition(name, 1, target)
    stages = {m.name: next(iter(m.stages)) for m in registry.list_models()}
    assert stages == {f"m-{s}-{t}": (t if t in TABLE[s] else s) for s, t in PAIRS}
    events: dict[str, list] = {}
    for ev in registry.history():
        events.setdefault(ev.model, []).append(ev)
    for source, target in PAIRS:
        moves = [
            (e.actor, e.before, e.after, e.comment) for e in events[f"m-{source}-{target}"] if e.action == "transition"
        ]
        expected = [] if source == "experimental" else [("ana", {"stage": "experimental"}, {"stage": source}, None)]
        if target in TABLE[source]:
            expected.append(("bob", {"stage": source}, {"stage": target}, "why"))
        assert moves == expected, (source, target)
    assert_verified(registry)


def test_transition_reference_forms_and_unknown_stage(fast_registry: Registry, tmp_path: Path) -> None:
    registry = fast_registry
    register_n(registry, tmp_path, 2)
    assert registry.transition("churn/1", "staging").stage == "staging"
    assert registry.transition("churn", "2", Stage.STAGING).stage == "staging"
    assert registry.transition("churn@staging", "production").version == 2  # the newest staging holder
    before = metadata_snapshot(registry)
    with pytest.raises(
        InvalidInputError, match="unknown stage 'prod'; valid stages are: experimental, staging, production, archived"
    ):
        registry.transition("churn", 1, "prod")
    with pytest.raises(InvalidInputError, match="transition needs a target stage"):
        registry.transition("churn", 1)
    assert metadata_snapshot(registry) == before


def test_production_is_exclusive_and_the_previous_holder_is_archived(registry: Registry, tmp_path: Path) -> None:
    register_n(registry, tmp_path, 3)
    registry.transition("churn", 1, "production", actor="ana")
    registry.transition("churn", 2, "staging")
    mv = registry.transition("churn", 2, "production", comment="beats v1", actor="bob")
    assert mv.stage == Stage.PRODUCTION
    stages = {v.version: v.stage for v in registry.list_versions("churn")}
    assert stages == {1: "archived", 2: "production", 3: "experimental"}
    assert registry.get_model("churn").stages == {"archived": [1], "production": [2], "experimental": [3]}
    displaced, promoted = registry.history("churn")[-2:]
    assert (displaced.action, displaced.version, displaced.actor) == ("transition", 1, "bob")
    assert displaced.before == {"stage": "production"} and displaced.after == {"stage": "archived"}
    assert displaced.comment == "replaced in production by version 2"
    assert promoted.version == 2 and promoted.comment == "beats v1" and promoted.after == {"stage": "production"}
    assert displaced.time == promoted.time
    assert [v.version for v in registry.list_versions("churn", stage="production")] == [2]
    assert [v.version for v in registry.list_versions("churn", stage=Stage.ARCHIVED)] == [1]
    # staging is not exclusive; name@staging is the newest holder
    registry.transition("churn", 3, "staging")
    registry.transition("churn", 1, "staging")
    assert [v.version for v in registry.list_versions("churn", stage="staging")] == [1, 3]
    assert registry.get_version("churn@staging").version == 3
    assert registry.get_version("churn@production").version == 2


def test_rollback_restores_the_previous_holder(registry: Registry, tmp_path: Path) -> None:
    register_n(registry, tmp_path, 3)
    for v in (1, 2, 3):
        registry.transition("churn", v, "production")
    back = registry.rollback("churn", stage="production", actor="ana", comment="v3 is broken")
    assert back.version == 2 and back.stage == "production"
    assert {v.version: v.stage.value for v in registry.list_versions("churn")} == {
        1: "archived",
        2: "production",
        3: "archived",
    }
    out, into = registry.history("churn")[-2:]
    assert (out.action, out.version, out.before, out.after) == (
        "rollback",
        3,
        {"stage": "production"},
        {"stage": "archived"},
    )
    assert (into.action, into.version, into.before, into.after) == (
        "rollback",
        2,
        {"stage": "archived"},
        {"stage": "production"},
    )
    assert into.actor == "ana" and into.comment == "v3 is broken"
    # a purged former holder is skipped: with 2 gone, the holder before it returns
    registry.transition("churn", 3, "production")
    registry.purge("churn/2")
    assert registry.rollback("churn").version == 1
    assert registry.get_version("churn@production").version == 1
    assert_verified(registry)


def test_rollback_with_nothing_to_roll_back(fast_registry: Registry, tmp_path: Path) -> None:
    registry = fast_registry
    register_n(registry, tmp_path, 2)
    before = metadata_snapshot(registry)
    with pytest.raises(
        InvalidTransitionError, match="no version of 'churn' is in production; there is nothing to roll back"
    ):
        registry.rollback("churn")
    assert metadata_snapshot(registry) == before
    registry.transition("churn", 1, "production")
    before = metadata_snapshot(registry)
    with pytest.raises(
        InvalidTransitionError,
        match="has no earlier version that held production and still exists; nothing to roll back to",
    ):
        registry.rollback("churn", "production")
    assert metadata_snapshot(registry) == before
    with pytest.raises(ModelNotFound, match="no model named 'nope'"):
        registry.rollback("nope")
    assert_verified(registry)


def test_stage_is_a_str_enum() -> None:
    assert Stage.PRODUCTION == "production" and Stage.PRODUCTION == "production"
    assert Stage("staging") is Stage.STAGING
    assert str(Stage.ARCHIVED) == "archived" and f"{Stage.ARCHIVED}" == "archived"
    assert isinstance(Stage.EXPERIMENTAL, str)
    assert {Stage.PRODUCTION: 1}["production"] == 1
    assert [s.value for s in Stage] == ORDER


# -- aliases, tags, description ----------------------------------------------------------------------


def test_aliases(registry: Registry, tmp_path: Path) -> None:
    register_n(registry, tmp_path, 3)
    assert registry.set_alias("churn", "champion", 2, actor="ana", comment="best auc").aliases == ["champion"]
    registry.set_alias("churn", "challenger", "3")
    assert registry.get_version("churn@champion").version == 2
    assert registry.get_model("churn").aliases == {"challenger": 3, "champion": 2}
    moved = registry.set_alias("churn", "champion", 3, actor="bob")
    assert moved.aliases == ["challenger", "champion"] and registry.get_version("churn/2").aliases == []
    ev = registry.history("churn")[-1]
    assert (ev.action, ev.actor, ev.version) == ("set_alias", "bob", 3)
    assert ev.before == {"alias": "champion", "version": 2} and ev.after == {"alias": "champion", "version": 3}
    n_events = len(registry.history("churn"))
    registry.set_alias("churn", "champion", 3)  # no change, no event
    assert len(registry.history("churn")) == n_events
    registry.delete_alias("churn", "challenger", actor="ana")
    assert registry.get_version("churn/3").aliases == ["champion"]
    assert registry.history("churn")[-1].action == "delete_alias"
    with pytest.raises(NotFoundError, match="model 'churn' has no alias 'challenger'"):
        registry.delete_alias("churn", "challenger")
    with pytest.raises(VersionNotFound, match="model 'churn' has no version 7"):
        registry.set_alias("churn", "champion", 7)
    assert registry.get_version("churn@champion").version == 3
    # purging a version removes its aliases
    registry.purge("churn/3")
    assert registry.get_model("churn").aliases == {}
    with pytest.raises(VersionNotFound, match="no alias 'champion'"):
        registry.get_version("churn@champion")
    assert_verified(registry)


def test_tags_and_descriptions(registry: Registry, tmp_path: Path) -> None:
    register_n(registry, tmp_path, 1, tags={"team": "fraud", "tmp": "x"})
    mv = registry.set_tags("churn/1", {"owner": "ana", "team": "risk"}, remove=["tmp"], actor="bob")
    assert mv.tags == {"owner": "ana", "team": "risk"}
    ev = registry.history("churn")[-1]
    assert ev.action == "set_tags" and ev.actor == "bob"
    assert ev.before == {"owner": None, "team": "fraud", "tmp": "x"}
    assert ev.after == {"owner": "ana", "team": "risk", "tmp": None}
    assert registry.set_description("churn/1", "calibrated").description == "calibrated"
    ev = registry.history("churn")[-1]
    assert (ev.action, ev.before, ev.after) == ("set_description", {"description": ""}, {"description": "calibrated"})
    n = len(registry.history("churn"))
    registry.set_tags("churn/1", {"team": "risk"})
    registry.set_description("churn/1", "calibrated")
    assert len(registry.history("churn")) == n  # unchanged values write no event
    model = registry.update_model(
        "churn", description="churn model", tags={"domain": "retail"}, owner="ana", actor="bob"
    )
    assert (model.description, model.tags, model.owner) == ("churn model", {"domain": "retail"}, "ana")
    assert registry.history("churn")[-1].action == "update_model"
    model = registry.update_model("churn", tags={"tier": "gold"}, remove_tags=["domain", "absent"])
    assert model.tags == {"tier": "gold"}
    ev = registry.history("churn")[-1]
    assert (ev.before, ev.after) == ({"tags": {"domain": "retail"}}, {"tags": {"tier": "gold"}})
    with pytest.raises(InvalidInputError, match="remove_tags takes a list of tag keys, not one string"):
        registry.update_model("churn", remove_tags="tier")
    assert registry.get_model("churn").tags == {"tier": "gold"}


# -- metrics ----------------------------------------------------------------------------------------------


def test_log_metrics_and_metric_history(registry: Registry, tmp_path: Path) -> None:
    register_n(registry, tmp_path, 2, metrics={"auc": 0.91})
    registry.log_metrics("churn/1", {"auc_live": 0.87}, step=1, actor="monitor", comment="week 1")
    mv = registry.log_metrics("churn/1", {"auc_live": 0.85, "auc": 0.88}, step=2, actor="monitor")
    assert mv.metrics == {"auc": 0.91}  # registered values never change
    assert mv.logged_metrics == {"auc_live": 0.85, "auc": 0.88}
    assert mv.current_metrics == {"auc": 0.88, "auc_live": 0.85}
    live = registry.metric_history("churn/1", "auc_live")
    assert [(p.value, p.step, p.source, p.actor) for p in live] == [
        (0.87, 1, "log", "monitor"),
        (0.85, 2, "log", "monitor"),
    ]
    assert live[0].time <= live[1].time
    auc = registry.metric_history("churn/1", "auc")
    assert [(p.value, p.source) for p in auc] == [(0.91, "register"), (0.88, "log")]
    assert len(registry.metric_history("churn/1")) == 4
    assert registry.metric_history("churn/2", "auc_live") == []
    ev = registry.history("churn", 1)[-1]
    assert ev.action == "log_metrics" and ev.before == {"metrics": {"auc_live": 0.87, "auc": None}}
    assert ev.after == {"metrics": {"auc_live": 0.85, "auc": 0.88}, "step": 2}
    assert registry.history("churn", 1)[-2].comment == "week 1"
    assert [v.ref for v in registry.search("metrics.auc < 0.9")] == ["churn/1"]


# -- compare and history ----------------------------------------------------------------------------------


def test_compare(fast_registry: Registry, tmp_path: Path) -> None:
    registry = fast_registry
    a = make_folder(tmp_path / "a" / "model", {"w.bin": b"1", "cfg.json": b"{}", "old.txt": b"o"})
    b = make_folder(tmp_path / "b" / "model", {"w.bin": b"2", "cfg.json": b"{}", "new.txt": b"n"})
    registry.register(
        "churn",
        a,
        params={"lr": 0.1, "opt": {"name": "adam"}},
        metrics={"auc": 0.8},
        tags={"t": "1"},
        lineage={"run_id": "r1"},
        capture=None,
    )
    registry.register(
        "churn",
        b,
        params={"lr": 0.2, "opt": {"name": "adam"}, "seed": 1},
        metrics={"auc": 0.9},
        tags={"t": "1"},
        lineage={"run_id": "r2"},
        capture=None,
    )
    c = registry.compare("churn/1", "churn/2")
    assert (c.a, c.b) == ("churn/1", "churn/2")
    assert c.params == {"lr": {"a": 0.1, "b": 0.2}, "seed": {"a": None, "b": 1}}
    assert c.metrics == {"auc": {"a": 0.8, "b": 0.9}}
    assert c.tags == {}
    assert c.lineage == {"run_id": {"a": "r1", "b": "r2"}}
    assert (c.files_added, c.files_removed, c.files_changed) == (["new.txt"], ["old.txt"], ["w.bin"])
    assert c.same_artifact is False
    registry.register("churn", a, capture=None)
    assert registry.compare("churn/1", "churn").same_artifact is True


def test_history(registry: Registry, tmp_path: Path) -> None:
    register_n(registry, tmp_path, 2)
    register_n(registry, tmp_path / "o", 1, name="other")
    registry.transition("churn", 2, "staging", actor="ana", comment="ready")
    events = registry.history("churn")
    assert [(e.seq, e.action, e.version) for e in events] == [
        (1, "create_model", None),
        (2, "register", 1),
        (3, "register", 2),
        (4, "transition", 2),
    ]
    assert all(a.time <= b.time for a, b in itertools.pairwise(events))
    assert [e.action for e in registry.history("churn", 2)] == ["register", "transition"]
    assert registry.history("churn/2") == registry.history("churn", 2)
    assert {e.model for e in registry.history()} == {"churn", "other"} and len(registry.history()) == 6


# -- archive, purge, gc ------------------------------------------------------------------------------------


def test_archive_versus_purge(registry: Registry, tmp_path: Path) -> None:
    mvs = register_n(registry, tmp_path, 3)
    archived = registry.archive("churn/1", comment="superseded", actor="ana")
    assert archived.stage == "archived"
    out = registry.download("churn/1", tmp_path / "out")  # an archived version stays downloadable
    assert out.read_bytes() == b"churn content 0"
    assert registry.transition("churn/1", "staging").stage == "staging"  # and can come back

    registry.transition("churn", 2, "production")
    before = metadata_snapshot(registry)
    with pytest.raises(
        InvalidTransitionError,
        match=r"churn/2 is in production; transition it to archived \(or roll back\) before purging",
    ):
        registry.purge("churn/2")
    with pytest.raises(InvalidInputError, match=r"purge needs an explicit version, e.g. 'churn/3'"):
        registry.purge("churn@production")
    assert metadata_snapshot(registry) == before

    registry.purge("churn/3", actor="ana", comment="leaked data")
    with pytest.raises(VersionNotFound):
        registry.get_version("churn/3")
    with pytest.raises(VersionNotFound):
        registry.purge("churn/3")
    ev = registry.history("churn")[-1]
    assert (ev.action, ev.version, ev.actor, ev.comment, ev.after) == ("purge", 3, "ana", "leaked data", None)
    assert ev.before == {"digest": mvs[2].digest, "stage": "experimental", "aliases": []}
    assert [v.version for v in registry.list_versions("churn")] == [1, 2]
    # the blob stays until gc frees it
    assert mvs[2].digest in {b.digest for b in registry.artifacts.iter_blobs()}
    assert_verified(registry)


def test_gc_respects_the_grace_period(registry: Registry, tmp_path: Path) -> None:
    mvs = register_n(registry, tmp_path, 3)
    registry.purge("churn/2")
    blobs = {b.digest for b in registry.artifacts.iter_blobs()}
    report = registry.gc()  # default grace: one hour
    assert report.removed == [] and report.kept_recent == 1 and report.kept_referenced == 2
    dry = registry.gc(grace=timedelta(0), dry_run=True)
    assert dry.dry_run and dry.removed == [mvs[1].digest] and dry.bytes_freed == mvs[1].size
    assert {b.digest for b in registry.artifacts.iter_blobs()} == blobs
    done = registry.gc(grace=timedelta(0))
    assert done.removed == [mvs[1].digest] and done.kept_referenced == 2
    assert {b.digest for b in registry.artifacts.iter_blobs()} == {mvs[0].digest, mvs[2].digest}
    assert registry.gc(grace=timedelta(0)).removed == []
    assert_verified(registry)
    with pytest.raises(InvalidInputError, match="grace must not be negative"):
        registry.gc(grace=timedelta(seconds=-1))


def test_gc_keeps_a_blob_still_used_by_another_version(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    reg = Registry(root)
    shared = write(tmp_path / "m.bin", b"shared")
    reg.register("churn", shared, capture=None)
    reg.register("fraud", shared, capture=None)
    reg.register("churn", write(tmp_path / "n.bin", b"only churn/2"), capture=None)
    reg.purge("churn/1")
    reg.purge("churn/2")
    assert len(blob_files(root)) == 2
    report = reg.gc(grace=timedelta(0))
    assert report.removed == [f"sha256:{hashlib.sha256(b'only churn/2').hexdigest()}"]
    assert [p.read_bytes() for p in blob_files(root)] == [b"shared"]
    assert reg.download("fraud/1", tmp_path / "out").read_bytes() == b"shared"
    assert_verified(reg)
    reg.close()


# -- opening a registry ----------------------------------------------------------------------------------


def test_default_location_honours_modelreg_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home-registry"
    monkeypatch.setenv("MODELREG_HOME", str(home))
    with Registry() as reg:
        reg.register("churn", write(tmp_path / "m.bin", b"m"), capture=None)
    assert (home / "modelreg.db").is_file() and len(blob_files(home)) == 1
    with Registry(home) as again:
        assert again.get_version("churn").version == 1


def test_default_location_without_modelreg_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELREG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    with Registry() as reg:
        reg.register("churn", write(tmp_path / "m.bin", b"m"), capture=None)
    assert (tmp_path / "user" / ".modelreg" / "registry" / "modelreg.db").is_file()


def test_modelreg_uri_wins_over_modelreg_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELREG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MODELREG_URI", str(tmp_path / "shared"))
    with Registry() as reg:
        reg.register("churn", write(tmp_path / "m.bin", b"m"), capture=None)
    assert (tmp_path / "shared" / "modelreg.db").is_file()
    assert not (tmp_path / "home").exists()


def test_explicit_store_urls(tmp_path: Path) -> None:
    with Registry(
        metadata=f"sqlite:///{tmp_path / 'meta' / 'reg.db'}", artifacts=f"file://{tmp_path / 'blobs'}"
    ) as reg:
        mv = reg.register("churn", write(tmp_path / "m.bin", b"m"), capture=None)
        assert reg.download(mv.ref, tmp_path / "out").read_bytes() == b"m"
    assert (tmp_path / "meta" / "reg.db").is_file()
    assert len([p for p in (tmp_path / "blobs" / "sha256").rglob("*") if p.is_file()]) == 1
    with pytest.raises(InvalidInputError, match="pass both metadata= and artifacts="):
        Registry(metadata=f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(InvalidInputError, match="looks like a database file; pass a folder"):
        Registry(tmp_path / "reg.db")


def test_every_error_is_a_modelreg_error(fast_registry: Registry, tmp_path: Path) -> None:
    registry = fast_registry
    register_n(registry, tmp_path, 1)
    failures = [
        lambda: registry.get_version("nope"),
        lambda: registry.transition("churn", 1, "experimental", strict=True),
        lambda: registry.register("../x", tmp_path),
        lambda: registry.create_model("churn"),
        lambda: registry.download("churn/1", tmp_path / "src" / "churn-0"),
    ]
    for fail in failures:
        with pytest.raises(ModelregError):
            fail()
    with pytest.raises(AlreadyExistsError, match="model 'churn' exists already"):
        registry.create_model("churn")


def test_every_audited_change_takes_a_comment(fast_registry: Registry, tmp_path: Path) -> None:
    reg = fast_registry
    f = tmp_path / "m.bin"
    f.write_bytes(b"weights")
    reg.create_model("churn", comment="the churn model")
    mv = reg.register("churn", f, capture=None)
    reg.set_tags(mv.ref, {"team": "fraud"}, comment="owned by fraud")
    reg.set_description(mv.ref, "baseline", comment="first cut")
    reg.update_model("churn", description="churn prediction", comment="renamed")
    reg.set_alias("churn", "champion", 1, comment="best so far")
    was = reg.delete_alias("churn", "champion", comment="retired")
    assert was.ref == "churn/1"  # the version the alias pointed at, as set_alias returns one
    comments = {e.action: e.comment for e in reg.history("churn")}
    assert comments == {
        "create_model": "the churn model",
        "register": None,
        "set_tags": "owned by fraud",
        "set_description": "first cut",
        "update_model": "renamed",
        "set_alias": "best so far",
        "delete_alias": "retired",
    }
    with pytest.raises(InvalidInputError, match="comment"):
        reg.set_tags(mv.ref, {"a": "b"}, comment="x" * 100_000)
    assert reg.get_version(mv.ref).tags == {"team": "fraud"}  # refused before anything was written
    # an unknown alias is the same error whether it is read or deleted
    with pytest.raises(VersionNotFound, match=r"no alias 'champion' \(aliases: none\)"):
        reg.delete_alias("churn", "champion")
    with pytest.raises(VersionNotFound, match=r"no alias 'champion' \(aliases: none\)"):
        reg.get_version("churn@champion")


def test_register_artifact_commits_blobs_already_stored(tmp_path: Path) -> None:
    from modelreg import Artifact, BlobNotFound, FileEntry, InvalidInputError

    reg = Registry(tmp_path / "reg", actor="ci")
    src = tmp_path / "weights.bin"
    src.write_bytes(b"weights" * 100)
    stored = reg.artifacts.put_file_hashed(src)
    entry = FileEntry(path="weights.bin", digest=stored.digest, size=stored.size)
    art = Artifact(kind="file", name="weights.bin", digest=stored.digest, size=stored.size, files=[entry])
    missing = FileEntry(path="weights.bin", digest="sha256:" + "1" * 64, size=3)
    with pytest.raises(BlobNotFound, match="is not in the registry's artifact store; store it first"):
        reg.register_artifact("churn", art.model_copy(update={"files": [missing], "digest": missing.digest}))
    wrong = entry.model_copy(update={"size": 5})
    with pytest.raises(InvalidInputError, match="holds 700 bytes, not 5"):
        reg.register_artifact("churn", art.model_copy(update={"files": [wrong]}))
    assert reg.list_models() == []  # nothing was committed
    mv = reg.register_artifact("churn", art, metrics={"auc": 0.9}, lineage={"run_id": "r1"})
    assert (mv.ref, mv.digest, mv.created_by, mv.metrics, mv.lineage.run_id) == (
        "churn/1",
        stored.digest,
        "ci",
        {"auc": 0.9},
        "r1",
    )
    assert [e.action for e in reg.history("churn")] == ["create_model", "register"]
    assert reg.download("churn/1", tmp_path / "out").read_bytes() == b"weights" * 100
    assert reg.verify().ok
