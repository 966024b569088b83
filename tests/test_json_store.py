"""JSONMetadataStore specifics: layout, format versioning, unknown fields, single-writer mode,
request counts and the adapters' conditional writes. The MetadataStore contract itself runs in
tests/test_conformance.py on every JSON backend (json-local, json-memory, json-s3, json-gcs, json-azure).

Helpers here (``Location``, ``forget``, ``view``) are shared by the other JSON store test modules.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import pytest

from modelreg import Registry
from modelreg.errors import BackendError, InvalidInputError, SchemaVersionError
from modelreg.models import EventDraft, ModelState
from modelreg.stores import _json_base
from modelreg.stores._conditional import PlainIO, PreconditionFailed, io_for
from modelreg.stores.json import JSONMetadataStore
from modelreg.testing import MetadataStoreConformance
from modelreg.testing.metadata import ev, make_draft, make_model

JSON_BACKENDS = ["local", "memory", "s3", "gcs", "azure"]
_FIXTURES = {"s3": "s3_bucket", "gcs": "gcs_bucket", "azure": "azure_container"}


@dataclass
class Location:
    """Where a test registry lives: ``url`` is the registry root (metadata under ``url/metadata``)."""

    backend: str
    url: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    def store(self, **kw: Any) -> JSONMetadataStore:
        return JSONMetadataStore(f"{self.url}/metadata", storage_options=self.storage_options, **kw)

    def registry(self, **kw: Any) -> Registry:
        return Registry(self.url, storage_options=self.storage_options, **kw)

    def child(self, name: str) -> Location:
        return Location(self.backend, f"{self.url}/{name}", self.storage_options)

    def format_1(self) -> Location:
        """Make this (empty) location a registry of JSON format 1, as modelreg 0.1 created them:
        dense state documents and versions numbered by creating versions/<n>.json, a protocol
        kept for registries that clients of format 1 may still write."""
        store = self.store()
        store.io.create(
            f"{store.root}/format.json",
            json.dumps(
                {
                    "format": "modelreg-json",
                    "version": 1,
                    "registry_id": uuid.uuid4().hex,
                    "created_at": "2026-01-01T00:00:00+00:00",
                    "pack_size": 64,
                }
            ).encode(),
        )
        return self


def make_location(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> Location:
    if backend == "local":
        return Location(backend, f"file://{tmp_path}/registry")
    if backend == "memory":
        return Location(backend, f"memory://registry-{uuid.uuid4().hex}")
    bucket = request.getfixturevalue(_FIXTURES[backend])
    return Location(backend, f"{bucket.url}/registry", dict(bucket.storage_options))


def forget() -> None:
    """Drop every in-process cache, as if the next store were opened by a new process."""
    _json_base.SHARED.reset()
    fsspec.AbstractFileSystem.clear_instance_cache()


def view(reg: Registry) -> dict[str, Any]:
    """What a user can see, without timestamps: models, versions (stage, aliases, tags, metrics), events."""
    out: dict[str, Any] = {}
    for m in reg.list_models():
        out[m.name] = {
            "versions": [
                (v.version, v.stage.value, sorted(v.aliases), v.tags, v.logged_metrics, v.digest)
                for v in reg.list_versions(m.name)
            ],
            "events": [(e.seq, e.action, e.version, e.after, e.comment) for e in reg.history(m.name)],
            "head": reg.metadata.audit_head(m.name)[0],
        }
    return out


@pytest.fixture(params=JSON_BACKENDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    forget()
    return make_location(request, tmp_path, request.param)


# -- layout and format -----------------------------------------------------------------------------


def test_layout_is_documented_one(tmp_path: Path) -> None:
    store = JSONMetadataStore(f"file://{tmp_path}/metadata", pack_size=2)
    store.create_model(make_model("fraud/churn"), ev("create_model"))
    for i in range(3):
        store.add_version(make_draft("fraud/churn", n=i), ev("register"))
    root = tmp_path / "metadata"
    fmt = json.loads((root / "format.json").read_text())
    assert fmt["format"] == "modelreg-json" and fmt["version"] == 2 and fmt["pack_size"] == 2
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.json"))
    assert files == [
        "format.json",
        "models/fraud~churn.json",
        "models/fraud~churn/events/1.json",
        "models/fraud~churn/events/2.json",
        "models/fraud~churn/events/3.json",
        "models/fraud~churn/events/4.json",
        "models/fraud~churn/packs/0.json",
    ]  # format 2: a version is committed in the state itself (no versions/<n>.json until a purge)
    state = json.loads((root / "models/fraud~churn.json").read_text())
    assert state["last_version"] == 3 and state["packed"] == 2 and sorted(state["tail"]) == ["3"]
    assert state["head"]["seq"] == 4
    # sparse (format 2): no entry for versions still as registered, no purged numbers yet
    assert state["sparse"] is True and state["versions"] == {} and state["purged"] == []
    pack = json.loads((root / "models/fraud~churn/packs/0.json").read_text())
    assert sorted(pack["records"]) == ["1", "2"]
    assert [v.version for v in store.list_versions("fraud/churn")] == [1, 2, 3]


def test_newer_format_major_version_asks_to_upgrade(tmp_path: Path) -> None:
    root = tmp_path / "metadata"
    root.mkdir()
    (root / "format.json").write_text(json.dumps({"format": "modelreg-json", "version": 3, "registry_id": "x"}))
    with pytest.raises(SchemaVersionError, match="upgrade modelreg"):
        JSONMetadataStore(f"file://{root}")


def test_foreign_format_file_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "metadata"
    root.mkdir()
    (root / "format.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(BackendError, match="not describe a modelreg JSON registry"):
        JSONMetadataStore(f"file://{root}")


def test_unknown_fields_written_by_a_newer_writer_survive(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/metadata"
    store = JSONMetadataStore(url)
    store.create_model(make_model("churn"), ev("create_model"))
    store.add_version(make_draft(n=1), ev("register"))
    root = tmp_path / "metadata"
    # a newer minor version adds fields to the format file, the state and a version's state
    fmt = json.loads((root / "format.json").read_text())
    (root / "format.json").write_text(json.dumps({**fmt, "minor": 7, "future": {"a": 1}}))
    state_path = root / "models/churn.json"
    state = json.loads(state_path.read_text())
    state["future_top"] = [1, 2]
    entry = store.get_state("churn").versions[1].model_dump(mode="json")  # sparse: no entry until changed
    state["versions"]["1"] = {**entry, "future_vs": "kept"}
    state_path.write_text(json.dumps(state))
    forget()
    older = JSONMetadataStore(url)
    older.update("churn", lambda s: (s.model_copy(update={"tags": {"k": "v"}}), [ev("update_model")]))
    older.add_version(make_draft(n=2), ev("register"))
    state = json.loads(state_path.read_text())
    assert state["future_top"] == [1, 2] and state["versions"]["1"]["future_vs"] == "kept"
    assert state["tags"] == {"k": "v"} and state["last_version"] == 2
    assert json.loads((root / "format.json").read_text())["future"] == {"a": 1}
    assert older.get_version("churn", 1).model_extra.get("future_vs") == "kept"


def test_names_are_checked_before_any_path_is_built(tmp_path: Path) -> None:
    store = JSONMetadataStore(f"file://{tmp_path}/metadata")
    for bad in ("../escape", "a/../../b", "/abs", "a/b/c", "", "a\\b"):
        with pytest.raises(InvalidInputError):
            store.create_model(make_model("ok").model_copy(update={"name": bad}), ev("create_model"))
    assert not (tmp_path / "escape.json").exists()


def test_reads_of_an_empty_location_do_not_write(tmp_path: Path) -> None:
    store = JSONMetadataStore(f"file://{tmp_path}/metadata")
    assert store.list_models() == [] and list(store.iter_all_versions()) == []
    assert not (tmp_path / "metadata").exists()


# -- filesystems without conditional writes ------------------------------------------------------------


def _dir_fs() -> Any:
    """A real fsspec filesystem the store has no conditional-write adapter for (DirFileSystem over memory)."""
    from fsspec.implementations.dirfs import DirFileSystem
    from fsspec.implementations.memory import MemoryFileSystem

    base = f"/plain-{uuid.uuid4().hex}"
    MemoryFileSystem().makedirs(base, exist_ok=True)
    return DirFileSystem(path=base, fs=MemoryFileSystem())


def test_filesystem_without_conditional_writes_refuses_writes() -> None:
    fs = _dir_fs()
    assert isinstance(io_for(fs), PlainIO)
    store = JSONMetadataStore("metadata", fs=fs)
    with pytest.raises(BackendError, match="single_writer=True"):
        store.create_model(make_model("churn"), ev("create_model"))
    assert store.list_models() == []
    writer = JSONMetadataStore("metadata", fs=fs, single_writer=True)
    writer.create_model(make_model("churn"), ev("create_model"))
    writer.add_version(make_draft(), ev("register"))
    # the refusing store still reads what the single writer wrote
    assert [v.ref for v in store.list_versions("churn")] == ["churn/1"]
    with pytest.raises(BackendError, match="no conditional writes"):
        store.add_version(make_draft(n=2), ev("register"))


class TestSingleWriterConformance(MetadataStoreConformance):
    """With ``single_writer=True`` a plain filesystem passes the whole contract (threads are serialised)."""

    @pytest.fixture
    def metadata_store(self) -> JSONMetadataStore:
        return JSONMetadataStore("metadata", fs=_dir_fs(), single_writer=True)


# -- requests per operation -------------------------------------------------------------------------


def _delta(store: JSONMetadataStore, fn: Any) -> int:
    before = store.requests
    fn()
    return store.requests - before


@pytest.mark.parametrize("backend", ["memory", "s3"])
def test_register_costs_at_most_six_requests(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> None:
    forget()
    loc = make_location(request, tmp_path, backend)
    store = loc.store()
    store.create_model(make_model("churn"), ev("create_model"))
    # the Registry reads the model before adding a version (to create it when missing)
    same_process = _delta(store, lambda: (store.get_model("churn"), store.add_version(make_draft(n=1), ev("register"))))
    assert same_process <= 6
    forget()
    other = loc.store()  # a process that did not write last: it also writes out the previous pending event
    other_process = _delta(
        other, lambda: (other.get_model("churn"), other.add_version(make_draft(n=2), ev("register")))
    )
    assert other_process <= 6
    # read the state, swap it (the commit, numbering the version), create the event; the other
    # process leaves the previous writer's pending event to that writer (format 2)
    assert (same_process, other_process) == (3, 3)


def test_requests_are_counted_per_kind(tmp_path: Path) -> None:
    store = JSONMetadataStore(f"file://{tmp_path}/metadata")
    store.create_model(make_model("churn"), ev("create_model"))
    # format.json, the one-time probe that the store enforces conditions (2), the state, event 1
    assert store.io.stats["put"] == 5
    store.get_model("churn")
    assert store.io.stats["get"] >= 1 and store.requests == sum(store.io.stats.values())


# -- the adapters' primitives on every backend ----------------------------------------------------------


def test_conditional_primitives(location: Location) -> None:
    store = location.store()
    io = store.io
    path = f"{store.root}/probe/doc.json"
    etag1 = io.create(path, b'{"n":1}')
    with pytest.raises(FileExistsError):
        io.create(path, b'{"n":2}')
    got = io.read(path)
    assert got.data == b'{"n":1}'
    etag2 = io.swap(path, b'{"n":3}', got.etag)
    assert etag2 != etag1
    with pytest.raises(PreconditionFailed):
        io.swap(path, b'{"n":4}', etag1)  # stale etag loses
    with pytest.raises(PreconditionFailed):
        io.swap(f"{store.root}/probe/missing.json", b"{}", etag1)
    assert io.read(path).data == b'{"n":3}'
    stamps = io.list_stamps(f"{store.root}/probe")
    assert list(stamps) == ["doc.json"]
    if io.remote:
        assert stamps["doc.json"] == io.stamp_of(io.read(path))
    assert io.read_many([path, f"{store.root}/probe/missing.json"]) == {path: b'{"n":3}'}
    io.delete(path)
    io.delete(path)
    with pytest.raises(FileNotFoundError):
        io.read(path)


def test_state_and_listing_agree_across_instances(location: Location) -> None:
    a = location.store()
    a.create_model(make_model("churn"), ev("create_model"))
    a.add_version(make_draft(n=1), ev("register"))
    b = location.store()
    assert [m.name for m in b.list_models()] == ["churn"]
    a.update("churn", lambda s: (s.model_copy(update={"description": "changed"}), [ev("update_model")]))
    # b's cached snapshot is stale; the listing's stamp (or the re-read) shows the change
    assert b.list_models()[0].description == "changed"
    assert [e.action for e in b.list_events("churn")] == ["create_model", "register", "update_model"]


def test_update_on_a_stale_cached_state_is_recomputed(location: Location) -> None:
    """fn raising on a stale snapshot is retried on fresh state; only a fresh refusal counts."""
    store = location.store()
    store.create_model(make_model("churn"), ev("create_model"))
    stale = store._fetch("churn")
    store.update("churn", lambda s: (s.model_copy(update={"tags": {"ready": "yes"}}), [ev("ready")]))
    _json_base.SHARED.states[(store.registry_id, "churn")] = stale
    seen: list[dict[str, str]] = []

    def needs_ready(state: ModelState):
        seen.append(dict(state.tags))
        if state.tags.get("ready") != "yes":
            raise RuntimeError("not ready")
        return state.model_copy(update={"description": "go"}), [ev("go")]

    store.update("churn", needs_ready)
    assert seen == [{}, {"ready": "yes"}]
    assert store.get_state("churn").description == "go"


def test_event_documents_are_written_after_commit(location: Location) -> None:
    store = location.store()
    store.create_model(make_model("churn"), ev("create_model"))
    store.add_version(make_draft(n=1), ev("register"))
    io = store.io
    for seq in (1, 2):
        doc = json.loads(io.read(store._event_path("churn", seq)).data)
        assert doc["seq"] == seq and doc["model"] == "churn"
    events = store.list_events("churn")
    assert [e.hash for e in events] == [json.loads(io.read(store._event_path("churn", s)).data)["hash"] for s in (1, 2)]


def test_packs_and_purge_tombstones(location: Location) -> None:
    store = location.store(pack_size=2)
    store.create_model(make_model("churn"), ev("create_model"))
    for i in range(5):
        store.add_version(make_draft(n=i, params={"i": i}), ev("register"))
    store.purge_version("churn", 2, ev("purge"))  # packed
    store.purge_version("churn", 5, ev("purge"))  # in the tail
    io = store.io
    pack0 = json.loads(io.read(store._pack_path("churn", 0)).data)
    assert sorted(pack0["records"]) == ["1"]
    for n in (2, 5):
        assert json.loads(io.read(store._version_path("churn", n)).data)["purged"] is True
    forget()
    fresh = location.store()
    assert [v.version for v in fresh.list_versions("churn")] == [1, 3, 4]
    assert [v.params["i"] for v in fresh.list_versions("churn")] == [0, 2, 3]
    assert fresh.add_version(make_draft(n=9), ev("register")).version == 6


def test_a_lost_response_is_not_applied_twice(location: Location) -> None:
    """The swap lands but the client sees a failure (as after an HTTP retry): the writer's token shows it won."""
    store = location.store()
    store.create_model(make_model("churn"), ev("create_model"))
    io = store.io
    real_swap = io.swap
    calls = {"n": 0}

    def swap_then_lose_response(path: str, data: bytes, etag: str) -> str:
        calls["n"] += 1
        real_swap(path, data, etag)
        if calls["n"] == 1:
            raise PreconditionFailed(path)
        return "unused"

    io.swap = swap_then_lose_response  # type: ignore[method-assign]

    def bump(state: ModelState):
        n = int(state.tags.get("n", "0")) + 1
        return state.model_copy(update={"tags": {"n": str(n)}}), [EventDraft(action="bump", actor="ana")]

    store.update("churn", bump)
    del io.swap
    assert calls["n"] == 1
    assert store.get_state("churn").tags == {"n": "1"}
    assert [e.action for e in store.list_events("churn")] == ["create_model", "bump"]


# -- search equals the reference semantics --------------------------------------------------------------


def test_search_equals_reference_on_random_registries(tmp_path: Path) -> None:
    """Seeded random versions (mixed value types, logged metrics, aliases, stages) and random queries:
    the store's row-based search must return exactly what evaluate_in_python returns."""
    import random
    from datetime import timedelta

    from modelreg.models import Lineage, Stage, utcnow
    from modelreg.query import evaluate_in_python, parse_order_by, parse_query

    rnd = random.Random(1234)
    store = JSONMetadataStore(f"file://{tmp_path}/metadata", pack_size=4)
    values = [0, 1, 2.5, -3, 0.9, "a", "B", "adam", "", True, False, None, [1, 2], {"x": 1}]
    start = utcnow()
    for name in ("alpha", "beta/x", "gamma"):
        store.create_model(make_model(name), ev("create_model"))
        for i in range(rnd.randint(3, 12)):
            params = {k: rnd.choice(values) for k in ("lr", "opt", "depth") if rnd.random() < 0.8}
            params = {k: v for k, v in params.items() if v is not None}
            metrics = {k: rnd.choice([0.1, 0.5, 0.9, 1, 3.25]) for k in ("auc", "f1") if rnd.random() < 0.7}
            tags = {k: rnd.choice(["x", "y", "Zed", "10", "9"]) for k in ("team", "env") if rnd.random() < 0.7}
            lineage = Lineage(
                run_id=rnd.choice([None, "r1", "r2"]),
                code={"commit": rnd.choice(["abc", "def"]), "dirty": rnd.choice([True, False])},
            )
            draft = make_draft(
                name,
                n=i,
                params=params,
                metrics=metrics,
                tags=tags,
                lineage=lineage,
                description=rnd.choice(["", "first", "Second try"]),
                created_by=rnd.choice(["ana", "bo"]),
            )
            draft = draft.model_copy(update={"created_at": start - timedelta(minutes=rnd.randint(0, 5000))})
            store.add_version(draft, ev("register"))

        def shuffle(state: ModelState):
            new = state.model_copy(deep=True)
            for v in new.versions:
                stage = rnd.choice(list(Stage))
                logged = {"auc": rnd.choice([0.2, 0.95])} if rnd.random() < 0.3 else {}
                new.versions[v] = new.versions[v].model_copy(update={"stage": stage, "logged_metrics": logged})
            for alias in ("champion", "challenger"):
                if rnd.random() < 0.8:
                    new.aliases[alias] = rnd.choice(list(new.versions))
            return new, [ev("shuffle")]

        store.update(name, shuffle)

    clauses = [
        "metrics.auc > 0.5",
        "metrics.auc <= 0.5",
        "metrics.f1 = 1",
        "params.lr = 'a'",
        "params.lr >= 0",
        "params.opt like 'AD%'",
        "params.opt like '_'",
        "params.depth = true",
        "params.depth != false",
        "tags.team in ('x', 'Zed')",
        "tags.env > '9'",
        "tags.env < 10",
        "stage = 'production'",
        "stage in ('archived', 'staging')",
        "alias = 'champion'",
        "alias like 'ch%'",
        "alias != 'champion'",
        "name = 'beta/x'",
        "name like '%a%'",
        "version >= 3",
        "version in (1, 2, 5)",
        "created_by = 'bo'",
        "created_at > '2000-01-01'",
        "description like '%try'",
        "description = ''",
        "lineage.run_id = 'r1'",
        "lineage.code.commit != 'abc'",
        "lineage.code.dirty = true",
        "metrics.missing > 0",
    ]
    orders = [
        "",
        "metrics.auc desc",
        "params.lr",
        "params.lr desc, version",
        "tags.env, name desc",
        "created_at desc",
        "stage",
        "lineage.code.commit, metrics.f1 desc",
        "description desc",
    ]
    forget()
    fresh = JSONMetadataStore(f"file://{tmp_path}/metadata")
    everything = list(fresh.iter_all_versions())
    checked = 0
    for _ in range(300):
        text = " and ".join(rnd.sample(clauses, rnd.randint(0, 3)))
        q, o = parse_query(text), parse_order_by(rnd.choice(orders))
        limit = rnd.choice([None, None, 1, 5])
        expected = evaluate_in_python(everything, q, o, limit)
        got = fresh.search(q, o, limit)
        assert [v.ref for v in got] == [v.ref for v in expected], (text, o, limit)
        assert got == expected
        checked += bool(expected)
    assert checked > 100  # most queries match something: the comparison is not vacuous


def test_a_store_that_ignores_conditions_is_refused_at_creation(tmp_path: Path) -> None:
    """Some S3-compatible services accept If-None-Match / If-Match and ignore them: found by a probe."""
    from fsspec.implementations.memory import MemoryFileSystem

    from modelreg.stores._conditional import MemoryIO

    class IgnoresConditions(MemoryIO):
        def create(self, path: str, data: bytes) -> str:
            return self.put(path, data)

    fs = MemoryFileSystem()
    url = f"memory://ignoring-{uuid.uuid4().hex}/metadata"
    store = JSONMetadataStore(url)
    store.io = IgnoresConditions(fs)
    with pytest.raises(BackendError, match="ignores If-None-Match"):
        store.create_model(make_model("churn"), ev("create_model"))

    class IgnoresIfMatch(MemoryIO):
        def swap(self, path: str, data: bytes, etag: str) -> str:
            return self.put(path, data)

    store = JSONMetadataStore(f"memory://ignoring-{uuid.uuid4().hex}/metadata")
    store.io = IgnoresIfMatch(fs)
    with pytest.raises(BackendError, match="ignores If-Match"):
        store.create_model(make_model("churn"), ev("create_model"))


def test_search_leaves_the_garbage_collector_as_it_found_it(tmp_path: Path) -> None:
    """A search pauses the cyclic garbage collector while it decodes documents, and restores it."""
    import gc

    from modelreg.query import parse_query

    store = JSONMetadataStore(f"file://{tmp_path}/metadata")
    store.create_model(make_model("churn"), ev("create_model"))
    store.add_version(make_draft(n=1), ev("register"))
    query = parse_query("tags.team = 'fraud'")
    assert gc.isenabled()
    store.search(query, [], None)
    assert gc.isenabled()
    gc.disable()
    try:
        store.search(query, [], None)
        assert not gc.isenabled()  # the caller's choice is kept
    finally:
        gc.enable()
    with pytest.raises(AttributeError):  # a failure inside restores it too
        store.search(object(), [], None)
    assert gc.isenabled()
