"""No input can poison a registry: every refusal is an InvalidInputError raised before any write,
a failed first registration leaves no empty model, a purge is atomic with its exclusive-stage
guard, and audit times never run backwards. Each case ends by showing the registry fully usable.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from modelreg import (
    InvalidInputError,
    InvalidTransitionError,
    ModelregError,
    NotFoundError,
    Registry,
    VersionNotFound,
)
from modelreg.validation import MAX_DEPTH, MAX_INT, MIN_INT
from tests.helpers import FAST_BACKENDS, open_backend, snapshot, write


@pytest.fixture(params=FAST_BACKENDS)
def reg(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    """A registry on each metadata store (SQLite, JSON on local disk and in memory), no emulator."""
    yield from open_backend(request, tmp_path)


def nested(depth: int, leaf: Any = 1) -> Any:
    """A value ``depth`` levels deep: nested(1) == {"k": 1}, alternating dicts and lists."""
    value = leaf
    for i in range(depth):
        value = {"k": value} if i % 2 == 0 else [value]
    return value


def assert_usable(reg: Registry, tmp_path: Path) -> None:
    """verify, search, list_versions and gc all work, and a new registration succeeds."""
    report = reg.verify()
    assert report.ok, [p.detail for p in report.problems]
    for model in reg.list_models():
        assert model.version_count >= 1, f"{model.name} was left without versions"
        reg.list_versions(model.name)
    reg.search("")
    reg.gc(grace=timedelta(0), dry_run=True)
    mv = reg.register("healthy", write(tmp_path / "healthy" / "m.bin", b"fine"), capture=None)
    assert reg.get_version(mv.ref).digest == mv.digest


# -- depth, numbers and sizes --------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [MAX_DEPTH, 199, 254, 255, 100_000])
def test_deeply_nested_params_are_refused_before_any_write(reg: Registry, tmp_path: Path, depth: int) -> None:
    f = write(tmp_path / "m.bin", b"weights")
    before = snapshot(reg)
    with pytest.raises(InvalidInputError, match=rf"is nested more than {MAX_DEPTH} levels deep; flatten it") as info:
        reg.register("victim", f, params={"p": nested(depth)}, capture=None)
    assert "param p" in str(info.value)
    assert snapshot(reg) == before
    assert_usable(reg, tmp_path)


@pytest.mark.parametrize("field", ["params", "lineage"])
def test_data_just_under_the_depth_limit_round_trips(reg: Registry, tmp_path: Path, field: str) -> None:
    f = write(tmp_path / "m.bin", b"weights")
    if field == "params":
        value = nested(MAX_DEPTH - 1, 2**63 - 1)  # the param's own level counts as one
        mv = reg.register("deep", f, params={"p": value}, capture=None)
        assert reg.get_version(mv.ref).params == {"p": value}
    else:
        value = nested(MAX_DEPTH - 2, -(2**63))  # lineage and lineage.extra count as two
        mv = reg.register("deep", f, lineage={"extra": {"x": value}}, capture=None)
        assert reg.get_version(mv.ref).lineage.extra == {"x": value}
    assert reg.search("name = 'deep'")[0].version == mv.version
    assert_usable(reg, tmp_path)


def test_deep_lineage_is_refused_not_half_written(reg: Registry, tmp_path: Path) -> None:
    f = write(tmp_path / "m.bin", b"weights")
    before = snapshot(reg)
    for depth in (MAX_DEPTH, 200, 100_000):
        with pytest.raises(InvalidInputError, match=rf"lineage\.extra.* is nested more than {MAX_DEPTH} levels"):
            reg.register("victim", f, lineage={"extra": {"x": nested(depth)}}, capture=None)
    assert snapshot(reg) == before
    assert_usable(reg, tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"params": {"p": 10**5000}}, r"param p is an integer of 16610 bits; integers must fit in 64 bits"),
        ({"params": {"p": MAX_INT + 1}}, r"param p is an integer of 64 bits; integers must fit in 64 bits"),
        ({"params": {"p": [MIN_INT - 1]}}, r"param p\[0\] is an integer of 64 bits"),
        ({"metrics": {"auc": 10**400}}, r"metric 'auc' is an integer of 1329 bits, too large for a float"),
        ({"lineage": {"extra": {"n": 10**30}}}, r"lineage\.extra\.n is an integer of 100 bits"),
        ({"tags": {"build": 10**5000}}, r"tag 'build' is an integer beyond 64 bits; pass it as a string"),
        ({"params": {"p": "\ud800"}}, r"param p contains a lone surrogate"),
        ({"description": "bad \udfff text"}, r"description contains a lone surrogate"),
        ({"lineage": {"run_id": "r" * 5001}}, r"lineage\.run_id 'r+'\.\.\. is 5001 characters long; the cap is 5000"),
        ({"lineage": {"run_id": "run-1\n"}}, r"lineage\.run_id 'run-1\\n' contains a control character"),
        (
            {"lineage": {"datasets": [{"uri": " s3://d"}]}},
            r"lineage\.datasets\[0\]\.uri ' s3://d' has leading or trailing whitespace",
        ),
        ({"lineage": {"extra": {"blob": "x" * 1_000_001}}}, r"lineage is \d+ bytes as JSON; the cap is 1000000"),
        ({"actor": "ana\n"}, r"actor 'ana\\n' contains a control character"),
        ({"actor": " ana"}, r"actor ' ana' has leading or trailing whitespace"),
        ({"actor": "a" * 201}, r"actor must be a non-empty string of at most 200 characters"),
        ({"format": "onnx\n"}, r"format 'onnx\\n' contains a control character"),
    ],
)
def test_numbers_text_and_sizes_every_store_can_hold(reg: Registry, tmp_path: Path, kwargs: dict, message: str) -> None:
    f = write(tmp_path / "m.bin", b"weights")
    before = snapshot(reg)
    with pytest.raises(InvalidInputError, match=message):
        reg.register("victim", f, capture=None, **kwargs)
    assert snapshot(reg) == before
    assert_usable(reg, tmp_path)


def test_64_bit_edges_round_trip(reg: Registry, tmp_path: Path) -> None:
    f = write(tmp_path / "m.bin", b"weights")
    params = {"max": MAX_INT, "min": MIN_INT, "big_float": 1.7976931348623157e308, "tiny": 5e-324}
    mv = reg.register("edges", f, params=params, metrics={"auc": 10**300}, tags={"build": MAX_INT}, capture=None)
    got = reg.get_version(mv.ref)
    assert got.params == params
    assert got.metrics == {"auc": float(10**300)}
    assert got.tags == {"build": str(MAX_INT)}
    assert [v.ref for v in reg.search(f"params.max = {MAX_INT}")] == [mv.ref]


# -- names, keys, aliases with control characters or edge whitespace ---------------------------------
@pytest.mark.parametrize("name", ["churn\n", "churn\r\n", "churn ", " churn", "churn\t", "ch\x00urn", "churn\u2028"])
def test_a_name_with_a_trailing_newline_or_control_character_is_refused(
    reg: Registry, tmp_path: Path, name: str
) -> None:
    f = write(tmp_path / "m.bin", b"weights")
    reg.register("churn", f, capture=None)
    before = snapshot(reg)
    with pytest.raises(InvalidInputError, match="invalid model name"):
        reg.register(name, f, capture=None)
    with pytest.raises(InvalidInputError):
        reg.transition(name, 1, "production")
    with pytest.raises(InvalidInputError):
        reg.get_version(f"{name}")
    assert snapshot(reg) == before
    assert [m.name for m in reg.list_models()] == ["churn"]
    assert reg.get_version("churn/1").stage.value == "experimental"
    assert_usable(reg, tmp_path)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.set_tags("churn/1", {"team\n": "fraud"}), r"invalid tag key 'team\\n'"),
        (lambda r: r.set_tags("churn/1", {"team ": "fraud"}), r"invalid tag key 'team '"),
        (lambda r: r.log_metrics("churn/1", {"auc\n": 0.9}), r"invalid metric key 'auc\\n'"),
        (lambda r: r.log_metrics("churn/1", {"auc": 10**400}), r"too large for a float"),
        (lambda r: r.log_metrics("churn/1", {"auc": 0.9}, step=2**64), r"step must be an integer of at most 64 bits"),
        (lambda r: r.set_alias("churn", "champion\n", 1), r"invalid alias 'champion\\n'"),
        (lambda r: r.transition("churn", 2**70, "staging"), r"version must be a positive integer of at most 64 bits"),
        (lambda r: r.get_version("churn", "9" * 30), r"version must be a positive integer"),
        (lambda r: r.set_description("churn/1", "x\udc00"), r"description contains a lone surrogate"),
        (lambda r: r.transition("churn/1", "staging", actor="bob\n"), r"actor 'bob\\n' contains a control character"),
    ],
)
def test_mutations_refuse_the_same_inputs(reg: Registry, tmp_path: Path, call: Any, message: str) -> None:
    reg.register("churn", write(tmp_path / "m.bin", b"weights"), capture=None)
    before = snapshot(reg)
    with pytest.raises(InvalidInputError, match=message):
        call(reg)
    assert snapshot(reg) == before
    assert_usable(reg, tmp_path)


# -- a first registration is all-or-nothing ------------------------------------------------------------
def _fail_the_version_commit(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the metadata commit of a version fail the way a full disk does, after the model row or
    document would have been prepared."""
    from modelreg.errors import BackendError

    store = reg.metadata
    if hasattr(store, "_append_events"):  # SQLite: fail inside the transaction, after the model insert
        real = store._append_events

        def append(conn: Any, name: str, drafts: list) -> None:
            real(conn, name, drafts)
            if any(d.action == "register" for d in drafts):
                raise BackendError("database or disk is full (simulated)")

        monkeypatch.setattr(store, "_append_events", append)
    else:  # JSON: the create-if-absent of the state document fails
        real_create = store.io.create

        def create(path: str, data: bytes) -> Any:
            if path.endswith(".json") and "/models/" in path and "/versions/" not in path:
                raise BackendError("no space left on device (simulated)")
            return real_create(path, data)

        monkeypatch.setattr(store.io, "create", create)


def test_a_failed_first_registration_leaves_no_empty_model(
    reg: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = write(tmp_path / "m.bin", b"weights")
    with monkeypatch.context() as m:
        _fail_the_version_commit(reg, m)
        with pytest.raises(ModelregError, match="simulated"):
            reg.register("churn", f, capture=None)
    assert reg.list_models() == []
    with pytest.raises(NotFoundError):
        reg.get_model("churn")
    assert reg.history() == []
    assert_usable(reg, tmp_path)
    mv = reg.register("churn", f, capture=None)
    actions = [(e.seq, e.action, e.version) for e in reg.history("churn")]
    # nothing of the failed one was committed: SQLite rolled its transaction back whole, and the
    # JSON store (format 2) numbers a version only in the state write that failed
    assert mv.version == 1
    assert actions == [(1, "create_model", None), (2, "register", 1)]
    assert_usable(reg, tmp_path)


# -- purge is atomic with its guard --------------------------------------------------------------------
def test_purge_sees_a_promotion_made_after_it_read_the_version(
    reg: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg.register("churn", write(tmp_path / "a.bin", b"one"), capture=None)
    real_get = reg.metadata.get_version
    promoted: list[bool] = []

    def get_then_promote(name: str, version: int) -> Any:
        mv = real_get(name, version)  # purge reads an experimental version...
        if not promoted:
            promoted.append(True)
            reg.transition("churn", 1, "production", actor="bob")  # ...and another writer promotes it
        return mv

    monkeypatch.setattr(reg.metadata, "get_version", get_then_promote)
    with pytest.raises(InvalidTransitionError, match=r"churn/1 is in production; transition it to archived"):
        reg.purge("churn/1")
    monkeypatch.undo()
    assert reg.get_version("churn@production").version == 1
    assert [e.action for e in reg.history("churn")] == ["create_model", "register", "transition"]
    assert_usable(reg, tmp_path)


@pytest.mark.slow
def test_purge_races_promotion_on_one_folder(tmp_path: Path) -> None:
    """Two clients of one SQLite folder: one promotes each new version, the other purges it.
    Whatever the interleaving, a version in production is never purged."""
    root = tmp_path / "reg"
    a, b = Registry(root), Registry(root)
    try:
        for i in range(30):
            mv = a.register("churn", write(tmp_path / f"m{i}.bin", f"w{i}".encode()), capture=None)
            outcome: dict[str, Any] = {}

            def promote(ref: str = mv.ref, outcome: dict[str, Any] = outcome) -> None:
                try:
                    a.transition(ref, "production")
                    outcome["promoted"] = True
                except VersionNotFound:
                    outcome["promoted"] = False

            def purge(ref: str = mv.ref, outcome: dict[str, Any] = outcome) -> None:
                try:
                    b.purge(ref)
                    outcome["purged"] = True
                except InvalidTransitionError:
                    outcome["purged"] = False

            threads = [threading.Thread(target=promote), threading.Thread(target=purge)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert outcome["promoted"] != outcome["purged"], outcome
            holders = [v.version for v in a.list_versions("churn", stage="production")]
            assert (mv.version in holders) == outcome["promoted"]
            if outcome["promoted"]:  # make the next version purgeable: archive this one
                a.archive(mv.ref)
        for ev in a.history("churn"):
            if ev.action == "purge":
                assert ev.before is not None and ev.before["stage"] != "production"
        assert a.verify().ok
    finally:
        a.close()
        b.close()


# -- audit times ---------------------------------------------------------------------------------------
def test_audit_times_never_run_backwards_across_clients(
    reg: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client whose clock is an hour behind still appends events at or after the head's time."""
    from modelreg import models

    reg.register("churn", write(tmp_path / "a.bin", b"one"), capture=None)
    real = models.utcnow
    monkeypatch.setattr(models, "utcnow", lambda: real() - timedelta(hours=1))
    reg.register("churn", write(tmp_path / "b.bin", b"two"), capture=None)
    reg.set_tags("churn/1", {"team": "fraud"})
    reg.log_metrics("churn/1", {"auc": 0.9})
    reg.transition("churn/2", "staging")
    monkeypatch.undo()
    times = [e.time for e in reg.history("churn")]
    assert times == sorted(times)
    assert_usable(reg, tmp_path)
