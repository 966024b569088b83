"""The ``MetadataStore`` contract as tests. Provide a ``metadata_store`` fixture (a fresh, empty store)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from typing import Any, Literal

import pytest

from ..errors import AlreadyExistsError, InvalidInputError, InvalidTransitionError, ModelNotFound, VersionNotFound
from ..models import (
    GENESIS_HASH,
    Artifact,
    ColumnSpec,
    Dataset,
    EventDraft,
    FileEntry,
    Lineage,
    ModelInfo,
    ModelState,
    RegisteredModel,
    Signature,
    Stage,
    UsageRecord,
    VersionDraft,
    VersionState,
    utcnow,
)
from ..query import evaluate_in_python, parse_order_by, parse_query
from ..stores.base import MetadataStore


def make_model(name: str = "churn", **kw: Any) -> RegisteredModel:
    now = utcnow()
    return RegisteredModel(name=name, created_at=now, updated_at=now, owner="ana", **kw)


def make_draft(name: str = "churn", n: int = 0, **kw: Any) -> VersionDraft:
    digest = "sha256:" + f"{n:064x}"
    artifact = Artifact(
        kind="file",
        name="model.bin",
        digest=digest,
        size=n + 1,
        files=[FileEntry(path="model.bin", digest=digest, size=n + 1)],
    )
    kw.setdefault("created_by", "ana")
    return VersionDraft(name=name, artifact=artifact, **kw)


def ev(action: str = "test", **kw: Any) -> EventDraft:
    kw.setdefault("actor", "ana")
    return EventDraft(action=action, **kw)


@contextmanager
def io_meter(store: MetadataStore) -> Iterator[list[int]]:
    """Count the work a store does inside the ``with`` block, in units that grow with what it
    reads and writes: SQLite virtual-machine steps (every row a statement visits costs some) for
    the SQLite store, objects read, listed and written for the JSON store, and for a store with an
    ``io_meter()`` context manager (PostgreSQL: rows its transactions scan, fetch and write) its
    count. ``box[0]`` holds the count once the block exits. A third-party store provides its own meter by overriding the
    ``metadata_io_meter`` fixture."""
    from ..stores.json import JSONMetadataStore
    from ..stores.sqlite import SQLiteMetadataStore

    box = [0]
    if isinstance(store, SQLiteMetadataStore):

        def tick() -> int:
            box[0] += 1
            return 0

        store._conn.set_progress_handler(tick, 10)
        try:
            yield box
        finally:
            store._conn.set_progress_handler(None, 0)
    elif isinstance(store, JSONMetadataStore):
        start = sum(store.io.stats.values())
        try:
            yield box
        finally:
            box[0] = sum(store.io.stats.values()) - start
    elif callable(getattr(store, "io_meter", None)):  # a store that meters itself (PostgreSQL: rows read and written)
        with store.io_meter() as box:  # type: ignore[attr-defined]
            yield box
    else:
        pytest.fail(
            f"no I/O meter for {type(store).__name__}: override the metadata_io_meter fixture "
            "with a context manager that counts the rows or objects the store reads and writes"
        )
        yield box  # pragma: no cover


class MetadataStoreConformance:
    """Behaviour every MetadataStore must show. Needs a `metadata_store` fixture: a fresh, empty store."""

    @pytest.fixture
    def metadata_io_meter(self) -> Callable[[MetadataStore], AbstractContextManager[list[int]]]:
        return io_meter

    @pytest.fixture
    def store(self, metadata_store: MetadataStore) -> MetadataStore:
        metadata_store.create_model(make_model("churn"), ev("create_model"))
        return metadata_store

    # -- models -------------------------------------------------------------------------
    def test_create_and_get_model(self, metadata_store: MetadataStore) -> None:
        created = metadata_store.create_model(make_model("churn", description="d", tags={"t": "1"}), ev("create_model"))
        assert created.name == "churn" and created.description == "d" and created.tags == {"t": "1"}
        got = metadata_store.get_model("churn")
        assert got.owner == "ana" and got.version_count == 0 and got.latest_version is None

    def test_create_model_twice(self, store: MetadataStore) -> None:
        with pytest.raises(AlreadyExistsError, match="churn"):
            store.create_model(make_model("churn"), ev("create_model"))

    def test_unknown_model(self, metadata_store: MetadataStore) -> None:
        with pytest.raises(ModelNotFound, match="nope"):
            metadata_store.get_model("nope")
        with pytest.raises(ModelNotFound):
            metadata_store.list_versions("nope")
        with pytest.raises(ModelNotFound):
            metadata_store.get_state("nope")
        with pytest.raises(ModelNotFound):
            metadata_store.add_version(make_draft("nope"), ev("register"))

    def test_list_models_sorted(self, metadata_store: MetadataStore) -> None:
        for name in ("b", "team/a", "a"):
            metadata_store.create_model(make_model(name), ev("create_model"))
        assert [m.name for m in metadata_store.list_models()] == ["a", "b", "team/a"]

    # -- versions ----------------------------------------------------------------------
    def test_versions_are_numbered_from_one(self, store: MetadataStore) -> None:
        got = [store.add_version(make_draft(n=i), ev("register")).version for i in range(3)]
        assert got == [1, 2, 3]
        assert [v.version for v in store.list_versions("churn")] == [1, 2, 3]
        model = store.get_model("churn")
        assert model.latest_version == 3 and model.version_count == 3
        assert model.stages == {"experimental": [1, 2, 3]}

    def test_version_numbers_are_per_model(self, store: MetadataStore) -> None:
        store.create_model(make_model("other"), ev("create_model"))
        store.add_version(make_draft(), ev("register"))
        assert store.add_version(make_draft("other"), ev("register")).version == 1

    def test_version_round_trip(self, store: MetadataStore) -> None:
        lineage = Lineage(
            run_id="r1", datasets=[Dataset(uri="s3://d/x.parquet", digest="sha256:ab")], parents=["churn/1"]
        )
        draft = make_draft(
            n=7,
            params={"lr": 0.1, "layers": [64, 32], "opt": {"name": "adam", "beta": 0.9}, "note": "ünïcode"},
            metrics={"auc": 0.91},
            tags={"team": "fraud"},
            lineage=lineage,
            description="first try",
        )
        mv = store.add_version(draft, ev("register"))
        got = store.get_version("churn", mv.version)
        assert got == mv
        assert got.params == draft.params and got.metrics == {"auc": 0.91} and got.tags == {"team": "fraud"}
        assert got.lineage.run_id == "r1" and got.lineage.datasets[0].uri == "s3://d/x.parquet"
        assert got.artifact == draft.artifact and got.description == "first try"
        assert got.stage == Stage.EXPERIMENTAL and got.aliases == []
        assert abs(got.created_at - draft.created_at) < timedelta(milliseconds=1)

    def test_unknown_fields_are_preserved(self, store: MetadataStore) -> None:
        draft = make_draft().model_copy(update={"future_field": {"x": 1}})
        mv = store.add_version(draft, ev("register"))
        assert (store.get_version("churn", mv.version).model_extra or {}).get("future_field") == {"x": 1}

    def test_missing_version(self, store: MetadataStore) -> None:
        store.add_version(make_draft(), ev("register"))
        with pytest.raises(VersionNotFound, match="2"):
            store.get_version("churn", 2)

    def test_purge_keeps_number_reserved(self, store: MetadataStore) -> None:
        for i in range(3):
            store.add_version(make_draft(n=i), ev("register"))
        store.update("churn", lambda s: (s.model_copy(update={"aliases": {"champion": 3}}), []))
        store.purge_version("churn", 3, ev("purge"))
        with pytest.raises(VersionNotFound):
            store.get_version("churn", 3)
        assert store.get_state("churn").aliases == {}
        assert store.add_version(make_draft(n=9), ev("register")).version == 4
        assert [v.version for v in store.list_versions("churn")] == [1, 2, 4]
        with pytest.raises(VersionNotFound):
            store.purge_version("churn", 3, ev("purge"))

    def test_resolve_latest_stage_and_alias(self, store: MetadataStore) -> None:
        assert store.resolve("churn") is None  # no versions yet
        for i in range(4):
            store.add_version(make_draft(n=i), ev("register"))

        def arrange(s: ModelState) -> tuple[ModelState, list[EventDraft]]:
            versions = dict(s.versions)
            versions[1] = versions[1].model_copy(update={"stage": Stage.PRODUCTION})
            versions[2] = versions[2].model_copy(update={"stage": Stage.STAGING})
            versions[3] = versions[3].model_copy(update={"stage": Stage.STAGING})
            return s.model_copy(update={"versions": versions, "aliases": {"champion": 2}}), [ev("arrange")]

        store.update("churn", arrange)
        assert store.resolve("churn") == 4
        assert store.resolve("churn", stage="production") == 1
        assert store.resolve("churn", stage="staging") == 3  # the highest holder
        assert store.resolve("churn", stage="archived") is None
        assert store.resolve("churn", alias="champion") == 2
        assert store.resolve("churn", alias="nobody") is None
        store.purge_version("churn", 4, ev("purge"))
        assert store.resolve("churn") == 3  # the latest live version
        with pytest.raises(ModelNotFound):
            store.resolve("nope")
        with pytest.raises(ModelNotFound):
            store.resolve("nope", stage="production")

    def test_add_version_records_event_with_version(self, store: MetadataStore) -> None:
        store.add_version(make_draft(), ev("register", after={"x": 1}))
        last = store.list_events("churn")[-1]
        assert last.action == "register" and last.version == 1 and last.after == {"x": 1}

    # -- state ----------------------------------------------------------------------------
    def test_update_changes_state_and_versions(self, store: MetadataStore) -> None:
        store.add_version(make_draft(n=1), ev("register"))
        store.add_version(make_draft(n=2), ev("register"))

        def promote(state: ModelState) -> tuple[ModelState, list[EventDraft]]:
            new = state.model_copy(deep=True)
            new.versions[2] = new.versions[2].model_copy(
                update={
                    "stage": Stage.PRODUCTION,
                    "tags": {"a": "b"},
                    "logged_metrics": {"live": 0.5},
                    "description": "x",
                }
            )
            new.aliases["champion"] = 2
            new = new.model_copy(update={"description": "model desc", "tags": {"k": "v"}})
            return new, [ev("transition", version=2, before={"stage": "experimental"}, after={"stage": "production"})]

        new = store.update("churn", promote)
        assert new.holders("production") == [2]
        state = store.get_state("churn")
        assert state.holders(Stage.PRODUCTION) == [2] and state.aliases == {"champion": 2}
        assert state.last_version == 2 and state.description == "model desc" and state.tags == {"k": "v"}
        mv = store.get_version("churn", 2)
        assert mv.stage == "production" and mv.aliases == ["champion"] and mv.tags == {"a": "b"}
        assert mv.logged_metrics == {"live": 0.5} and mv.description == "x"
        model = store.get_model("churn")
        assert model.stages["production"] == [2] and model.aliases == {"champion": 2}
        assert model.description == "model desc" and model.tags == {"k": "v"}

    def test_update_that_raises_writes_nothing(self, store: MetadataStore) -> None:
        store.add_version(make_draft(), ev("register"))
        events_before = store.list_events("churn")

        def boom(state: ModelState) -> tuple[ModelState, list[EventDraft]]:
            raise RuntimeError("policy says no")

        with pytest.raises(RuntimeError, match="policy says no"):
            store.update("churn", boom)
        assert store.list_events("churn") == events_before
        assert store.get_version("churn", 1).stage == Stage.EXPERIMENTAL

    def test_update_cannot_add_versions(self, store: MetadataStore) -> None:
        def sneaky(state: ModelState) -> tuple[ModelState, list[EventDraft]]:
            new = state.model_copy(deep=True)
            new.versions[5] = VersionState()
            return new, []

        store.add_version(make_draft(), ev("register"))
        with pytest.raises(ValueError):
            store.update("churn", sneaky)

    def test_update_unknown_model(self, metadata_store: MetadataStore) -> None:
        with pytest.raises(ModelNotFound):
            metadata_store.update("nope", lambda s: (s, []))

    def test_concurrent_updates_are_serialised(self, store: MetadataStore) -> None:
        store.add_version(make_draft(), ev("register"))

        def bump(state: ModelState) -> tuple[ModelState, list[EventDraft]]:
            new = state.model_copy(deep=True)
            n = int(new.tags.get("n", "0")) + 1
            return new.model_copy(update={"tags": {"n": str(n)}}), [ev("bump")]

        threads = [threading.Thread(target=lambda: [store.update("churn", bump) for _ in range(10)]) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.get_state("churn").tags == {"n": "40"}
        assert sum(e.action == "bump" for e in store.list_events("churn")) == 40

    def test_concurrent_add_version_gives_unique_numbers(self, store: MetadataStore) -> None:
        got: list[int] = []
        lock = threading.Lock()

        def work() -> None:
            for i in range(10):
                v = store.add_version(make_draft(n=i), ev("register")).version
                with lock:
                    got.append(v)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(got) == list(range(1, 41))

    # -- audit --------------------------------------------------------------------------------
    def test_events_form_a_hash_chain(self, store: MetadataStore) -> None:
        store.add_version(make_draft(), ev("register"))
        store.update("churn", lambda s: (s, [ev("a", version=1, comment="c"), ev("b", before={"x": [1, 2]})]))
        events = store.list_events("churn")
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert events[0].prev_hash == GENESIS_HASH
        for prev, cur in itertools.pairwise(events):
            assert cur.prev_hash == prev.hash
        for e in events:
            assert e.expected_hash() == e.hash
        assert store.audit_head("churn") == (events[-1].seq, events[-1].hash)
        assert [e.action for e in events] == ["create_model", "register", "a", "b"]
        assert events[2].comment == "c" and events[3].before == {"x": [1, 2]}

    def test_list_events_of_all_models(self, store: MetadataStore) -> None:
        store.create_model(make_model("other"), ev("create_model"))
        store.add_version(make_draft("other"), ev("register"))
        events = store.list_events()
        assert {e.model for e in events} == {"churn", "other"}
        times = [e.time for e in events]
        assert times == sorted(times)

    def test_list_events_after_and_by_action(self, store: MetadataStore) -> None:
        for i in range(3):
            store.add_version(make_draft(n=i), ev("register"))
        store.update("churn", lambda st: (st, [ev("transition", version=2)]))
        every = store.list_events("churn")
        assert [e.seq for e in store.list_events("churn", after=3)] == [4, 5]
        assert store.list_events("churn", after=5) == []
        assert store.list_events("churn", after=2) == every[2:]
        picked = store.list_events("churn", actions=("transition", "create_model"))
        assert [(e.seq, e.action) for e in picked] == [(1, "create_model"), (5, "transition")]
        assert [e.seq for e in store.list_events("churn", after=1, actions=["register"])] == [2, 3, 4]
        assert {e.action for e in store.list_events(None, actions={"transition"})} == {"transition"}
        with pytest.raises(ModelNotFound):
            store.list_events("nope", after=3)

    def test_audit_head_of_unknown_model(self, metadata_store: MetadataStore) -> None:
        with pytest.raises(ModelNotFound):
            metadata_store.audit_head("nope")

    # -- cost flat in the number of versions -------------------------------------------------------
    @pytest.mark.parametrize("change", ["set_alias", "move_stage", "set_tags", "log_metrics", "describe_model"])
    def test_a_change_costs_the_same_at_any_number_of_versions(
        self, metadata_store: MetadataStore, metadata_io_meter: Any, change: str
    ) -> None:
        """An update reads and writes what it touches (the model head, the versions it changes,
        the holders of a stage), never every version: its cost on a model of 150 versions is
        within 2x of its cost on a model of 3."""
        sizes = {"small": 3, "big": 150}
        for name, n in sizes.items():
            metadata_store.create_model(make_model(name), ev("create_model"))
            for i in range(n):
                metadata_store.add_version(make_draft(name, n=i), ev("register"))
        rounds = iter(range(1000))

        def fn(state: ModelState) -> tuple[ModelState, list[EventDraft]]:
            k = next(rounds)
            new = state.model_copy(deep=True)
            if change == "set_alias":
                new.aliases[f"a{k % 3}"] = 1 + k % 2
            elif change == "move_stage":
                target = Stage.PRODUCTION if k % 2 else Stage.STAGING
                for holder in new.holders(target):
                    new.versions[holder] = new.versions[holder].model_copy(update={"stage": Stage.ARCHIVED})
                new.versions[2] = new.versions[2].model_copy(update={"stage": target})
            elif change == "set_tags":
                new.versions[2] = new.versions[2].model_copy(update={"tags": {"k": str(k)}})
            elif change == "log_metrics":
                new.versions[1] = new.versions[1].model_copy(update={"logged_metrics": {"auc": k / 1000}})
            else:
                new = new.model_copy(update={"description": f"d{k}"})
            return new, [ev(change, version=2)]

        cost = {}
        for name in sizes:
            metadata_store.update(name, fn)  # warm: caches, first reads
            with metadata_io_meter(metadata_store) as box:
                metadata_store.update(name, fn)
            cost[name] = box[0]
        assert cost["big"] <= 2 * cost["small"] + 20, (
            f"{change} cost {cost['small']} units on 3 versions but {cost['big']} on 150: "
            "the update reads or writes every version"
        )
        assert metadata_store.audit_head("big")[0] == 1 + sizes["big"] + 2

    # -- atomic first registration, guarded purge, event times ------------------------------------
    def test_add_version_creates_the_model_in_the_same_step(self, metadata_store: MetadataStore) -> None:
        mv = metadata_store.add_version(
            make_draft("fresh"), ev("register"), create=(make_model("fresh"), ev("create_model"))
        )
        assert mv.version == 1
        assert metadata_store.get_model("fresh").version_count == 1
        events = metadata_store.list_events("fresh")
        assert [(e.seq, e.action, e.version) for e in events] == [(1, "create_model", None), (2, "register", 1)]
        assert events[0].time <= events[1].time
        assert metadata_store.audit_head("fresh") == (2, events[-1].hash)

    def test_add_version_ignores_create_for_an_existing_model(self, store: MetadataStore) -> None:
        mv = store.add_version(make_draft(), ev("register"), create=(make_model("churn"), ev("create_model")))
        assert mv.version == 1
        assert [e.action for e in store.list_events("churn")] == ["create_model", "register"]

    def test_add_version_without_create_needs_the_model(self, metadata_store: MetadataStore) -> None:
        with pytest.raises(ModelNotFound):
            metadata_store.add_version(make_draft("nope"), ev("register"))
        assert metadata_store.list_models() == []

    def test_purge_precondition_is_checked_inside_the_atomic_step(self, store: MetadataStore) -> None:
        store.add_version(make_draft(n=1), ev("register"))
        seen: list[ModelState] = []

        def refuse(state: ModelState) -> EventDraft:
            seen.append(state)
            raise InvalidTransitionError("churn/1 is in production")

        with pytest.raises(InvalidTransitionError, match="production"):
            store.purge_version("churn", 1, refuse)
        assert seen and 1 in seen[-1].versions
        assert store.get_version("churn", 1).version == 1
        assert [e.action for e in store.list_events("churn")] == ["create_model", "register"]

        def allow(state: ModelState) -> EventDraft:
            assert state.versions[1].stage == Stage.EXPERIMENTAL
            return ev("purge", version=1, before={"stage": "experimental"})

        store.purge_version("churn", 1, allow)
        with pytest.raises(VersionNotFound):
            store.get_version("churn", 1)
        last = store.list_events("churn")[-1]
        assert (last.action, last.version, last.before) == ("purge", 1, {"stage": "experimental"})

    def test_event_times_never_run_backwards(self, store: MetadataStore, monkeypatch: pytest.MonkeyPatch) -> None:
        from .. import models

        first = store.list_events("churn")[-1].time
        real = models.utcnow
        monkeypatch.setattr(models, "utcnow", lambda: real() - timedelta(hours=1))  # a clock that went back
        store.add_version(make_draft(n=1), ev("register"))
        store.update("churn", lambda st: (st.model_copy(update={"description": "d"}), [ev("update_model")]))
        times = [e.time for e in store.list_events("churn")]
        assert times == sorted(times) and times[1] >= first

    def test_an_explicit_time_before_the_head_is_refused(self, store: MetadataStore) -> None:
        head = store.list_events("churn")[-1].time
        early = ev("register", time=head - timedelta(seconds=5))
        with pytest.raises(InvalidInputError, match="earlier than the model's previous event"):
            store.update("churn", lambda st: (st.model_copy(update={"description": "d"}), [early]))
        assert [e.action for e in store.list_events("churn")] == ["create_model"]
        assert store.get_model("churn").description == ""
        later = ev("update_model", time=head + timedelta(seconds=5))
        store.update("churn", lambda st: (st.model_copy(update={"description": "d"}), [later]))
        assert store.list_events("churn")[-1].time == later.time  # a replayed time is kept as given

    # -- search ------------------------------------------------------------------------------
    @pytest.fixture
    def populated(self, store: MetadataStore) -> MetadataStore:
        store.create_model(make_model("fraud/scorer"), ev("create_model"))
        rows = [
            ("churn", {"auc": 0.91}, {"lr": 0.1, "opt": "adam"}, {"team": "fraud"}, "ana"),
            ("churn", {"auc": 0.95}, {"lr": 0.01, "opt": "sgd"}, {"team": "fraud"}, "bob"),
            ("churn", {"auc": 0.80, "f1": 0.7}, {"lr": "auto"}, {"team": "growth"}, "ana"),
            ("fraud/scorer", {"auc": 0.99}, {"lr": 0.2}, {}, "cy"),
        ]
        for i, (name, metrics, params, tags, who) in enumerate(rows):
            info = None
            if i < 2:  # two saved model objects (``model.*`` fields), the others plain files
                info = ModelInfo(
                    flavor=["sklearn", "onnx"][i],
                    format=["skops", "onnx"][i],
                    path="model",
                    libraries={"scikit-learn": f"1.{5 + i}.0"},
                    unsafe=False,
                )
            store.add_version(
                make_draft(
                    name,
                    n=i,
                    metrics=metrics,
                    params=params,
                    tags=tags,
                    created_by=who,
                    lineage=Lineage(run_id=f"run-{i}"),
                    model=info,
                ),
                ev("register"),
            )

        def promote(state: ModelState) -> tuple[ModelState, list[EventDraft]]:
            new = state.model_copy(deep=True)
            new.versions[2] = new.versions[2].model_copy(
                update={"stage": Stage.PRODUCTION, "logged_metrics": {"auc": 0.5}}
            )
            new.aliases["champion"] = 1
            return new, []

        store.update("churn", promote)
        return store

    @pytest.mark.parametrize(
        "query,order",
        [
            ("", ""),
            ("metrics.auc > 0.9", "metrics.auc desc"),
            ("metrics.auc > 0.9 and tags.team = 'fraud'", ""),
            ("params.lr = 'auto'", ""),
            ("params.lr < 0.15", "params.lr"),
            ("params.opt like 'AD%'", ""),
            ("stage = 'production'", ""),
            ("stage in ('production', 'experimental') and created_by != 'ana'", "version desc"),
            ("alias = 'champion'", ""),
            ("name = 'fraud/scorer'", ""),
            ("metrics.f1 >= 0.7", ""),
            ("metrics.missing > 0", ""),
            ("version >= 2", "name desc, version"),
            ("lineage.run_id = 'run-3'", ""),
            ("tags.team != 'fraud'", ""),
            ("model.flavor = 'sklearn'", ""),
            ("model.flavor in ('sklearn', 'onnx')", "model.flavor desc"),
            ("model.libraries.scikit-learn like '1.6%'", ""),
            ("model.unsafe = false", ""),
        ],
    )
    def test_search_matches_reference_semantics(self, populated: MetadataStore, query: str, order: str) -> None:
        q, o = parse_query(query), parse_order_by(order)
        expected = evaluate_in_python(populated.iter_all_versions(), q, o, None)
        got = populated.search(q, o, None)
        assert [v.ref for v in got] == [v.ref for v in expected]
        assert populated.search(q, o, 1) == expected[:1]

    def test_search_uses_latest_logged_metric(self, populated: MetadataStore) -> None:
        got = populated.search(parse_query("metrics.auc < 0.6"), [], None)
        assert [v.ref for v in got] == ["churn/2"]

    def test_model_info_round_trips(self, store: MetadataStore) -> None:
        sig = Signature(kind="columns", inputs=[ColumnSpec(name="age", dtype="int64")])
        info = ModelInfo(flavor="sklearn", format="skops", path="model.skops", signature=sig, options={"k": [1]})
        mv = store.add_version(make_draft(model=info), ev("register"))
        assert mv.model == info
        assert store.get_version("churn", mv.version).model == info
        assert store.list_versions("churn")[-1].model == info
        plain = store.add_version(make_draft(n=1), ev("register"))
        assert plain.model is None and store.get_version("churn", plain.version).model is None

    # -- usage log -------------------------------------------------------------------------------
    @staticmethod
    def _use(version: int, second: int, action: Literal["fetch", "load"] = "load", name: str = "churn") -> UsageRecord:
        return UsageRecord(
            name=name,
            version=version,
            digest="sha256:" + f"{version:064x}",
            action=action,
            actor="svc",
            host="h1",
            pid=42,
            purpose="scoring",
            time=utcnow().replace(microsecond=0) + timedelta(seconds=second),
        )

    def test_usage_log_appends_and_lists_oldest_first(self, store: MetadataStore) -> None:
        assert store.list_usage("churn") == []
        seq_before = store.audit_head("churn")
        records = [self._use(1, 0, "fetch"), self._use(2, 1), self._use(1, 2), self._use(1, 3)]
        for r in records:
            store.record_usage(r)
        assert store.list_usage("churn") == records
        assert store.list_usage("churn", 1) == [records[0], records[2], records[3]]
        assert store.list_usage("churn", 2) == [records[1]]
        assert store.list_usage("churn", 1, limit=2) == records[2:]
        assert store.list_usage("churn", limit=0) == []
        assert store.list_usage("churn", 7) == []
        # kept apart from the audit chain and the state
        assert store.audit_head("churn") == seq_before
        assert [e.action for e in store.list_events("churn")] == ["create_model"]

    def test_usage_log_is_per_model(self, store: MetadataStore) -> None:
        store.create_model(make_model("fraud/scorer"), ev("create_model"))
        store.record_usage(self._use(1, 0, name="fraud/scorer"))
        store.record_usage(self._use(1, 1))
        assert [r.name for r in store.list_usage("fraud/scorer")] == ["fraud/scorer"]
        assert [r.name for r in store.list_usage("churn")] == ["churn"]

    def test_usage_log_trimmed_by_age(self, store: MetadataStore) -> None:
        store.create_model(make_model("fraud/scorer"), ev("create_model"))
        records = [self._use(1, 0, "fetch"), self._use(2, 1), self._use(1, 2), self._use(1, 3)]
        for r in records:
            store.record_usage(r)
        other = self._use(1, 0, name="fraud/scorer")
        store.record_usage(other)
        head = store.audit_head("churn")
        # strictly older than ``before``: the record at exactly that time stays
        assert store.trim_usage("churn", records[2].time) == 2
        assert store.list_usage("churn") == records[2:]
        assert store.list_usage("churn", 2) == []
        assert store.trim_usage("churn", records[2].time) == 0  # nothing more to trim
        assert store.list_usage("fraud/scorer") == [other]  # per model
        assert store.audit_head("churn") == head  # the audit chain is untouched
        assert store.trim_usage("nobody", records[3].time + timedelta(days=1)) == 0
        store.record_usage(self._use(3, 4))  # appending still works after a trim
        assert [r.version for r in store.list_usage("churn")] == [1, 1, 3]

    def test_concurrent_usage_records_are_all_kept(self, store: MetadataStore) -> None:
        def work(k: int) -> None:
            for i in range(5):
                store.record_usage(self._use(1 + k, i))

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(store.list_usage("churn")) == 20
        assert len(store.list_usage("churn", 3)) == 5

    # -- extensions and reserved documents ------------------------------------------------------
    def test_extensions_are_persisted_with_the_state(self, store: MetadataStore) -> None:
        payload = {"requests": {"r1": {"status": "pending", "approvals": ["bo"]}}, "n": 1.5}

        def put(state: ModelState) -> tuple[ModelState, list[EventDraft]]:
            return state.model_copy(update={"extensions": payload}), [ev("request")]

        store.update("churn", put)
        assert store.get_state("churn").extensions == payload
        assert "extensions" not in (store.get_model("churn").model_extra or {})

    def test_reserved_documents_are_hidden(self, store: MetadataStore) -> None:
        store.create_model(make_model("_registry"), ev("create_model"))
        store.update(
            "_registry", lambda s: (s.model_copy(update={"extensions": {"policy": {"v": 1}}}), [ev("set_policy")])
        )
        assert store.get_state("_registry").extensions == {"policy": {"v": 1}}
        assert [e.action for e in store.list_events("_registry")] == ["create_model", "set_policy"]
        assert "_registry" not in [m.name for m in store.list_models()]
        assert all(e.model != "_registry" for e in store.list_events())
        store.add_version(make_draft(), ev("register"))
        assert [v.ref for v in store.iter_all_versions()] == ["churn/1"]
        assert [v.ref for v in store.search(parse_query(""), [], None)] == ["churn/1"]
