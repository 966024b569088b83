"""The reference grammar and the search language: parsing, errors, and search results that
match the documented reference semantics (``modelreg.query.evaluate_in_python``) on every backend."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelreg import InvalidInputError, InvalidReferenceError, Registry, Stage
from modelreg.query import Clause, SearchWarning, evaluate_in_python, parse_order_by, parse_query
from modelreg.refs import Ref, parse_ref
from tests.helpers import FAST_BACKENDS, open_backend, write

# -- references -----------------------------------------------------------------------------------------

VALID_REFS = [
    ("churn", Ref("churn"), "churn"),
    ("churn/3", Ref("churn", version=3), "churn/3"),
    ("churn/007", Ref("churn", version=7), "churn/7"),
    ("churn@production", Ref("churn", stage=Stage.PRODUCTION), "churn@production"),
    ("churn@Staging", Ref("churn", stage=Stage.STAGING), "churn@staging"),
    ("churn@champion", Ref("churn", alias="champion"), "churn@champion"),
    ("models:/churn/3", Ref("churn", version=3), "churn/3"),
    ("models:/churn", Ref("churn"), "churn"),
    ("models:/churn@champion", Ref("churn", alias="champion"), "churn@champion"),
    ("team/churn", Ref("team/churn"), "team/churn"),
    ("team/churn/2", Ref("team/churn", version=2), "team/churn/2"),
    ("team/churn@archived", Ref("team/churn", stage=Stage.ARCHIVED), "team/churn@archived"),
    ("models:/team/churn/2", Ref("team/churn", version=2), "team/churn/2"),
    ("llm.ranker_2@v1-candidate", Ref("llm.ranker_2", alias="v1-candidate"), "llm.ranker_2@v1-candidate"),
]


@pytest.mark.parametrize(("text", "expected", "canonical"), VALID_REFS, ids=[r[0].strip() for r in VALID_REFS])
def test_parse_valid_references(text: str, expected: Ref, canonical: str) -> None:
    ref = parse_ref(text)
    assert ref == expected
    assert str(ref) == canonical
    assert parse_ref(str(ref)) == ref


INVALID_REFS = [
    ("", r"empty model reference ''; use name, name/3, name@stage or name@alias"),
    ("   ", r"empty model reference"),
    ("churn@", r"invalid model reference 'churn@': invalid alias ''"),
    ("churn/0", r"invalid model reference 'churn/0': version must be a positive integer, got 0"),
    ("  churn/3 ", r"model reference '  churn/3 ' has leading or trailing whitespace"),
    ("churn\n", r"model reference 'churn\\n' has leading or trailing whitespace \(a newline\?\)"),
    ("churn/\u0663", r"invalid model name 'churn/\u0663'"),
    ("churn/" + "9" * 25, r"version must be a positive integer of at most 64 bits"),
    ("churn/-1", r"invalid model reference 'churn/-1': invalid model name"),
    ("../x", r"invalid model reference '\.\./x': model name '\.\./x' looks like a path"),
    ("../x/1", r"invalid model reference '\.\./x/1'"),
    ("/abs/churn", r"looks like a path"),
    ("churn@../x", r"invalid model reference 'churn@\.\./x': invalid alias '\.\./x'"),
    ("churn@a@b", r"invalid alias 'a@b'"),
    ("a/b/c/1", r"invalid model name 'a/b/c'"),
    ("churn/3x", r"invalid model name 'churn/3x'"),
    ("@production", r"model name is empty"),
    ("models:/", r"model name is empty"),
    ("churn 3", r"invalid model name 'churn 3'"),
]


@pytest.mark.parametrize(("text", "message"), INVALID_REFS, ids=[r[0] or "empty" for r in INVALID_REFS])
def test_parse_invalid_references(text: str, message: str) -> None:
    with pytest.raises(InvalidReferenceError, match=message) as info:
        parse_ref(text)
    assert isinstance(info.value, InvalidInputError) and isinstance(info.value, ValueError)
    assert "References look like 'churn', 'churn/3', 'churn@production' or 'churn@champion'" in str(
        info.value
    ) or "use name, name/3, name@stage or name@alias" in str(info.value)


def test_reference_must_be_a_string() -> None:
    with pytest.raises(InvalidReferenceError, match=r"model reference must be a string such as 'churn/3', got int"):
        parse_ref(3)  # type: ignore[arg-type]


# -- query parsing ---------------------------------------------------------------------------------------


def test_parse_query_clauses() -> None:
    q = parse_query(
        "metrics.auc > 0.9 and tags.team = 'fraud' and stage in ('Staging', \"production\") "
        "and name like 'ch%' and params.early_stop == true and version != 3 and metrics.loss <= -1e-3"
    )
    assert q.clauses == (
        Clause("metrics.auc", ">", 0.9),
        Clause("tags.team", "=", "fraud"),
        Clause("stage", "in", ("staging", "production")),
        Clause("name", "like", "ch%"),
        Clause("params.early_stop", "=", True),
        Clause("version", "!=", 3),
        Clause("metrics.loss", "<=", -0.001),
    )
    assert parse_query(None).clauses == () and parse_query("").clauses == ()
    assert parse_query("tags.`model family` = 'gbm'").clauses == (Clause("tags.model family", "=", "gbm"),)
    assert parse_query(r"description = 'it\'s'").clauses == (Clause("description", "=", "it's"),)


BAD_QUERIES = [
    ("name = 'a' or name = 'b'", r"'or' is not supported; run two searches"),
    ("foo = 1", r"unknown search field 'foo'; use name, version, stage"),
    ("metrics. = 1", r"cannot parse search query|unknown search field"),
    ("tags.a..b = 1", r"cannot parse search query at '\.\.b = 1'"),
    (
        "metrics.auc >",
        r"expected a value \(a number, a 'quoted string', true or false\) in search query, got the end of the query",
    ),
    ("metrics.auc > 0.9 and", r"expected a field name in search query, got the end of the query"),
    ("metrics.auc > 0.9 metrics.f1 > 1", r"clauses must be joined with 'and', got 'metrics.f1'"),
    ("name like 3", r"'like' needs a quoted string pattern"),
    ("stage = 'prod'", r"unknown stage 'prod'; valid stages are"),
    ("stage in ('staging', 'nope')", r"unknown stage 'nope'"),
    ("version in 1", r"'in' needs a parenthesised list"),
    ("version in (1, 2", r"unclosed list after 'in'"),
    ("version in (1 2)", r"unclosed list after 'in'"),
    ("name = 'unterminated", r"cannot parse search query at"),
    ("name ~ 'x'", r"cannot parse search query at"),
    ("tags.x = 'a'' or 1=1'", r"clauses must be joined with 'and', got ' or 1=1'"),
    # typos get a suggestion: operators, word operators, fields
    ("metrics.auc => 0.9", r"unknown operator '=>' in search query; did you mean '>='\?"),
    ("metrics.auc =< 0.9", r"unknown operator '=<' in search query; did you mean '<='\?"),
    ("tags.team <> 'x'", r"unknown operator '<>' in search query; did you mean '!='\?"),
    (
        "metrics.auc >> 1",
        r"cannot parse search query at '>> 1': unknown operator '>>' in search query; did you mean '>'",
    ),
    ("metrics.auc gt 0.9", r"unknown operator 'gt' in search query; did you mean '>'\?"),
    ("tags.team lik 'fr%'", r"unknown operator 'lik' in search query; did you mean 'like'\?"),
    ("metric.auc > 0.9", r"unknown search field 'metric.auc'; use .*; did you mean 'metrics.auc'\?$"),
    ("stag = 'production'", r"unknown search field 'stag'; use .*; did you mean 'stage'\?$"),
]


@pytest.mark.parametrize(("query", "message"), BAD_QUERIES, ids=[q for q, _ in BAD_QUERIES])
def test_bad_queries(query: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as info:
        parse_query(query)
    assert "queries look like" in str(info.value) or "unknown" in str(info.value)


def test_parse_order_by() -> None:
    assert parse_order_by("metrics.auc desc, version") == [("metrics.auc", True), ("version", False)]
    assert parse_order_by(["name ASC", "tags.team DESC"]) == [("name", False), ("tags.team", True)]
    assert parse_order_by(None) == []
    with pytest.raises(
        InvalidInputError, match=r"invalid order_by 'metrics.auc sideways'; use e.g. 'metrics.auc desc, version asc'"
    ):
        parse_order_by("metrics.auc sideways")
    with pytest.raises(InvalidInputError, match="cannot order by alias"):
        parse_order_by("alias")
    with pytest.raises(InvalidInputError, match="unknown search field 'nope'"):
        parse_order_by("nope desc")


def test_order_by_takes_backquoted_keys_as_queries_do() -> None:
    assert parse_order_by("tags.`model family` desc, version") == [("tags.model family", True), ("version", False)]
    assert parse_order_by(["`tags.model family` DESC", "metrics.`my score`"]) == [
        ("tags.model family", True),
        ("metrics.my score", False),
    ]
    assert parse_query("tags.`model family` = 'gbm'").clauses[0].field == parse_order_by("tags.`model family`")[0][0]
    with pytest.raises(InvalidInputError, match=r"invalid order_by 'tags.`model family` sideways'"):
        parse_order_by("tags.`model family` sideways")
    with pytest.raises(InvalidInputError, match=r"unknown search field 'tags\.model family, x'"):
        parse_order_by("tags.`model family, x`")  # a comma inside backquotes is part of the (invalid) key


# -- search on a registry ----------------------------------------------------------------------------------


@pytest.fixture(params=FAST_BACKENDS)
def fast_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    yield from open_backend(request, tmp_path)


def populate(registry: Registry, tmp_path: Path) -> Registry:
    """churn/1..4 and team/fraud/1..2 with metrics, params, tags, lineage, stages, aliases."""
    specs = [
        (
            "churn",
            {"auc": 0.80, "f1": 0.5},
            {"lr": 0.1, "optimizer": "adam", "early_stop": True},
            {"team": "fraud", "model family": "gbm"},
            "ana",
            {"run_id": "r1", "code": {"commit": "abc"}},
        ),
        (
            "churn",
            {"auc": 0.92},
            {"lr": 0.05, "optimizer": "sgd", "early_stop": False},
            {"team": "fraud"},
            "bob",
            {"run_id": "r2", "code": {"commit": "def"}},
        ),
        (
            "churn",
            {"auc": 0.95, "f1": 0.7},
            {"lr": 0.01, "optimizer": "adam"},
            {"team": "risk"},
            "ana",
            {"run_id": "r3"},
        ),
        ("churn", {"auc": 0.91, "f1": 0.9}, {"lr": "auto"}, {"team": "Fraud-Ops"}, "carol", {}),
        ("team/fraud", {"auc": 0.97}, {"lr": 0.1}, {"team": "fraud"}, "ana", {"run_id": "r9"}),
        ("team/fraud", {"precision": 0.5}, {}, {}, "bob", {}),
    ]
    for i, (name, metrics, params, tags, actor, lineage) in enumerate(specs):
        f = write(tmp_path / "src" / str(i) / "model.bin", f"model {i}")
        registry.register(
            name, f, metrics=metrics, params=params, tags=tags, actor=actor, lineage=lineage, capture=None
        )
    registry.transition("churn", 2, "production")
    registry.transition("churn", 3, "staging")
    registry.transition("team/fraud", 1, "production")
    registry.set_alias("churn", "champion", 2)
    registry.set_alias("team/fraud", "champion", 1)
    registry.set_alias("churn", "challenger", 3)
    registry.log_metrics("churn/1", {"auc": 0.96})  # the logged value wins over the registered 0.80
    return registry


@pytest.fixture
def populated(registry: Registry, tmp_path: Path) -> Registry:
    return populate(registry, tmp_path)


@pytest.fixture
def fast_populated(fast_registry: Registry, tmp_path: Path) -> Registry:
    return populate(fast_registry, tmp_path)


def refs(found: list) -> list[str]:
    return [mv.ref for mv in found]


EXPECTED_SEARCHES: list[tuple[str | None, str | None, int | None, list[str]]] = [
    ("metrics.auc > 0.9 and tags.team = 'fraud'", "metrics.auc desc", 10, ["team/fraud/1", "churn/1", "churn/2"]),
    ("metrics.auc > 0.9 and tags.team = 'fraud'", "metrics.auc desc", 2, ["team/fraud/1", "churn/1"]),
    ("stage = 'production'", None, None, ["churn/2", "team/fraud/1"]),
    ("stage in ('staging', 'production') and name = 'churn'", "version", None, ["churn/2", "churn/3"]),
    ("stage = 'experimental'", None, None, ["churn/4", "churn/1", "team/fraud/2"]),  # default: name asc, version desc
    ("name like 'team/%'", None, None, ["team/fraud/2", "team/fraud/1"]),
    ("tags.team like 'FRAUD%'", "name, version", None, ["churn/1", "churn/2", "churn/4", "team/fraud/1"]),
    ("tags.`model family` = 'gbm'", None, None, ["churn/1"]),
    ("alias = 'champion'", None, None, ["churn/2", "team/fraud/1"]),
    ("alias in ('challenger', 'nope')", None, None, ["churn/3"]),
    ("params.lr = 0.1", None, None, ["churn/1", "team/fraud/1"]),
    ("params.lr < 0.06", "params.lr", None, ["churn/3", "churn/2"]),
    ("params.lr = 'auto'", None, None, ["churn/4"]),
    ("params.optimizer != 'adam'", None, None, ["churn/2"]),
    ("params.early_stop = true", None, None, ["churn/1"]),
    ("metrics.auc = '0.92'", None, None, []),  # a string never equals a number
    ("metrics.f1 >= 0.7", "metrics.f1 desc", None, ["churn/4", "churn/3"]),
    ("metrics.precision > 0", None, None, ["team/fraud/2"]),
    ("lineage.run_id in ('r1', 'r9')", None, None, ["churn/1", "team/fraud/1"]),
    ("lineage.code.commit = 'def'", None, None, ["churn/2"]),
    ("created_by = 'ana' and version >= 2", None, None, ["churn/3"]),
    ("version in (1, 4) and name = 'churn'", None, None, ["churn/4", "churn/1"]),
    (None, "metrics.f1 desc", 3, ["churn/4", "churn/3", "churn/1"]),  # versions without f1 sort last
    (None, "metrics.f1 asc, name", None, ["churn/1", "churn/3", "churn/4", "churn/2", "team/fraud/2", "team/fraud/1"]),
    (None, None, 0, []),
]


def test_search_expected_results(populated: Registry) -> None:
    for query, order_by, limit, expected in EXPECTED_SEARCHES:
        assert refs(populated.search(query, order_by=order_by, limit=limit)) == expected, (query, order_by, limit)
    # results are complete records
    (mv,) = populated.search("alias = 'challenger'")
    assert mv == populated.get_version("churn@challenger")
    assert mv.aliases == ["challenger"] and mv.stage == Stage.STAGING and mv.lineage.run_id == "r3"


def test_search_matches_the_reference_semantics(fast_populated: Registry) -> None:
    """Whatever the store's query engine, results equal modelreg.query.evaluate_in_python."""
    populated = fast_populated
    everything = list(populated.metadata.iter_all_versions())
    queries = [q for q, _, _, _ in EXPECTED_SEARCHES] + [
        "metrics.auc >= 0.92",
        "metrics.auc < 0.95 and metrics.auc > 0.8",
        "tags.team != 'fraud'",
        "params.lr > 0",
        "params.lr > 'a'",
        "name = 'churn' and stage != 'production'",
        "description = ''",
        "created_at > '2000-01-01'",
        "params.optimizer like '%D%'",
        "version > 1.5",
        "alias like 'ch%'",
        "tags.team in ('risk', 'fraud')",
        "lineage.code.commit like 'a%'",
    ]
    orders = [
        None,
        "metrics.auc desc",
        "metrics.auc",
        "params.lr desc",
        "tags.team, version desc",
        "stage, name desc",
        "created_by",
    ]
    for query in queries:
        for order_by in orders:
            for limit in (None, 2):
                expected = evaluate_in_python(everything, parse_query(query), parse_order_by(order_by), limit)
                got = populated.search(query, order_by=order_by, limit=limit)
                assert refs(got) == refs(expected), (query, order_by, limit)
                assert got == expected


def test_search_orders_by_a_key_with_spaces(fast_populated: Registry) -> None:
    found = fast_populated.search("tags.`model family` = 'gbm'", order_by="tags.`model family` desc, version")
    assert refs(found) == ["churn/1"]
    everything = fast_populated.search(None, order_by="tags.`model family` desc, name, version")
    assert refs(everything)[0] == "churn/1"  # the one version with the key first, the others (nulls) after
    assert everything == evaluate_in_python(
        fast_populated.search(), parse_query(None), parse_order_by("tags.`model family` desc, name, version"), None
    )


def test_a_key_that_no_version_has_warns_with_the_closest_keys(fast_populated: Registry) -> None:
    with pytest.warns(SearchWarning) as caught:
        assert fast_populated.search("tags.tema = 'fraud' and metrics.acu > 0.5") == []
    assert [str(w.message) for w in caught] == [
        "no version has the tag key 'tema', so tags.tema matches nothing; did you mean 'tags.team'?",
        "no version has the metric key 'acu', so metrics.acu matches nothing; did you mean 'metrics.auc'?",
    ]
    with pytest.warns(
        SearchWarning, match=r"no version has the param key 'zzz'.*the param keys are: early_stop, lr, optimizer$"
    ):
        assert fast_populated.search("params.zzz = 1") == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # keys that exist: no warning, also without a match
        assert fast_populated.search("tags.team = 'nobody' and metrics.auc > 0") == []
        assert refs(fast_populated.search("tags.team = 'risk'")) == ["churn/3"]


def test_search_rejects_bad_input_without_side_effects(fast_populated: Registry) -> None:
    populated = fast_populated
    n_events = len(populated.history())
    with pytest.raises(InvalidInputError, match="'or' is not supported"):
        populated.search("name = 'churn' or name = 'x'")
    with pytest.raises(InvalidInputError, match="unknown search field 'tags'"):
        populated.search("tags = 'x'")
    with pytest.raises(InvalidInputError, match=r"limit must be a non-negative integer, got 2\.5"):
        populated.search(None, limit=2.5)  # type: ignore[arg-type]
    assert len(populated.history()) == n_events
