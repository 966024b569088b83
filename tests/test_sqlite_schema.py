"""The SQLite store's schema 2: the search index of tags and current metrics, kept by triggers,
and the migration that builds it for a database written with schema 1."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from modelreg import Registry
from modelreg.query import SearchWarning, evaluate_in_python, parse_order_by, parse_query
from modelreg.stores.sqlite import SCHEMA_VERSION, SQLiteMetadataStore

QUERIES = [
    "tags.team = 'fraud'",
    "tags.team != 'fraud'",
    "tags.team in ('fraud', 'risk')",
    "tags.team like 'FR%'",
    "tags.team > 'g'",
    "tags.n = 3",
    "tags.n = '3'",
    "metrics.auc > 0.9",
    "metrics.auc <= 0.8",
    "metrics.auc = 'x'",
    "metrics.auc in (0.95, 0.7)",
    "metrics.f1 >= 0.5 and tags.team = 'fraud'",
    "metrics.missing > 0",
    "tags.missing = 'x'",
    "metrics.auc > 0.5 and stage = 'production'",
]


def _populate(reg: Registry, tmp_path: Path) -> None:
    art = tmp_path / "model.bin"
    teams = ["fraud", "risk", "growth", "Fraud"]
    for i in range(24):
        art.write_bytes(f"weights {i}".encode())
        tags = {"team": teams[i % 4]} if i % 5 else {}
        if i % 3 == 0:
            tags["n"] = "3"
        metrics = {"auc": round(0.6 + i / 60, 4)} if i % 4 else {"f1": 0.5 + i / 100}
        reg.register(f"m{i % 3}", art, capture=None, actor="ana", tags=tags, metrics=metrics)
    reg.log_metrics("m0/1", {"auc": 0.99}, actor="monitor")  # a logged value wins over the registered one
    reg.log_metrics("m1/2", {"auc": 0.1, "f1": 0.9}, actor="monitor")
    reg.set_tags("m2/3", {"team": "risk"}, actor="ana")
    reg.set_tags("m2/6", {}, remove=["team"], actor="ana")
    reg.transition("m0", 4, "production", actor="ana")
    reg.purge("m1/5", actor="ana")


def _search(reg: Registry, text: str, order_by: str | None = None) -> list:
    """``reg.search``; a query on the key no version has (``missing``) also warns, as documented."""
    if "missing" not in text:
        return reg.search(text, order_by=order_by)
    with pytest.warns(SearchWarning, match=r"no version has the (metric|tag) key 'missing'"):
        return reg.search(text, order_by=order_by)


def _check_against_reference(reg: Registry) -> None:
    everything = list(reg.metadata.iter_all_versions())
    assert everything
    for text in QUERIES:
        query = parse_query(text)
        for order in (None, "metrics.auc desc"):
            expected = evaluate_in_python(everything, query, parse_order_by(order), None)
            got = _search(reg, text, order_by=order)
            assert [v.ref for v in got] == [v.ref for v in expected], text
            assert got == expected


def _index_rows(db: Path) -> set[tuple]:
    with sqlite3.connect(db) as conn:
        return set(conn.execute("SELECT name, version, field, key, value FROM version_index"))


def test_the_index_follows_every_change(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "reg")
    _populate(reg, tmp_path)
    _check_against_reference(reg)
    # what the triggers keep is exactly what a rebuild from the versions table gives
    db = tmp_path / "reg" / "modelreg.db"
    kept = _index_rows(db)
    reg.close()
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM version_index")
        conn.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
        for obj in (
            "TRIGGER version_index_insert",
            "TRIGGER version_index_update",
            "TRIGGER version_index_delete",
            "INDEX versions_name_stage",
            "TABLE version_index",
        ):
            conn.execute(f"DROP {obj}")
    SQLiteMetadataStore(db).close()  # migrates 1 -> 2, rebuilding the index
    assert _index_rows(db) == kept
    assert ("m0", 1, "metrics", "auc", 0.99) in kept
    assert not any(r[:2] == ("m1", 5) for r in kept), "a purged version left index rows"


def test_a_schema_1_database_is_migrated_and_searches_the_same(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "reg")
    _populate(reg, tmp_path)
    before = {q: [v.ref for v in _search(reg, q)] for q in QUERIES}
    reg.close()
    db = tmp_path / "reg" / "modelreg.db"
    with sqlite3.connect(db) as conn:  # turn it back into what modelreg with schema 1 wrote
        for obj in (
            "TRIGGER version_index_insert",
            "TRIGGER version_index_update",
            "TRIGGER version_index_delete",
            "INDEX versions_name_stage",
            "TABLE version_index",
        ):
            conn.execute(f"DROP {obj}")
        conn.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    reg = Registry(tmp_path / "reg")
    assert reg.metadata.schema_version == SCHEMA_VERSION == 2
    assert {q: [v.ref for v in _search(reg, q)] for q in QUERIES} == before
    _check_against_reference(reg)
    # and it keeps following changes after the migration
    reg.log_metrics("m2/3", {"auc": 0.999}, actor="monitor")
    assert [v.ref for v in reg.search("metrics.auc > 0.995")] == ["m2/3"]
    _check_against_reference(reg)


@pytest.mark.parametrize("ref", ["m0", "m0@production", "m0@champion", "m1", "m2"])
def test_unnumbered_references_resolve_like_the_state_says(tmp_path: Path, ref: str) -> None:
    reg = Registry(tmp_path / "reg")
    _populate(reg, tmp_path)
    reg.set_alias("m0", "champion", 7, actor="ana")
    reg.purge("m2/8", actor="ana")  # the latest version of m2 is gone: m2 resolves to 7
    name, _, at = ref.partition("@")
    state = reg.metadata.get_state(name)
    if at == "production":
        expected = state.holders("production")[-1]
    elif at:
        expected = state.aliases[at]
    else:
        expected = max(state.versions)
    assert reg.get_version(ref).version == expected
