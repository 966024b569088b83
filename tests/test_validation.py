"""Input validation happens before any write: a rejected call leaves no model row, no version,
no audit event and no blob, and raises InvalidInputError (also a ValueError) saying what to do."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from modelreg import InvalidInputError, InvalidReferenceError, ModelregError, Registry
from modelreg.validation import MAX_NAME_LENGTH, check_name
from tests.helpers import (
    FAST_BACKENDS,
    blob_files,
    make_folder,
    open_backend,
    snapshot,
    temp_files,
    write,
)

NAN, INF = float("nan"), float("inf")


class Unserialisable:
    pass


@pytest.fixture(params=FAST_BACKENDS)
def fast_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    yield from open_backend(request, tmp_path)


# (id, register keyword overrides, expected message pattern)
REGISTER_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("traversal-name", {"name": "../x"}, r"model name '\.\./x' looks like a path; use letters, digits"),
    ("empty-name", {"name": ""}, r"model name is empty; use letters, digits, '\.', '_' and '-'"),
    ("absolute-name", {"name": "/abs/churn"}, r"model name '/abs/churn' looks like a path"),
    ("dotdot-in-namespace", {"name": "team/../churn"}, r"model name 'team/\.\./churn' looks like a path"),
    ("dotdot-inside-name", {"name": "a..b"}, r"model name 'a\.\.b' looks like a path"),
    ("backslash-name", {"name": "team\\churn"}, r"looks like a path"),
    (
        "too-long-name",
        {"name": "a" * (MAX_NAME_LENGTH + 1)},
        rf"is {MAX_NAME_LENGTH + 1} characters long; use .* at most {MAX_NAME_LENGTH} characters",
    ),
    ("two-namespaces", {"name": "a/b/c"}, r"invalid model name 'a/b/c'; use .* at most one '/' namespace separator"),
    ("version-as-name", {"name": "churn/3"}, r"invalid model name 'churn/3'"),
    ("trailing-dash", {"name": "churn-"}, r"invalid model name 'churn-'"),
    ("leading-digit", {"name": "3churn"}, r"invalid model name '3churn'"),
    ("space-in-name", {"name": "my model"}, r"invalid model name 'my model'"),
    ("name-not-str", {"name": 5}, r"model name must be a string, got int"),
    ("nan-metric", {"metrics": {"auc": NAN}}, r"metric 'auc' is nan; metrics must be finite numbers \(no NaN or inf\)"),
    ("inf-metric", {"metrics": {"auc": INF}}, r"metric 'auc' is inf; metrics must be finite numbers"),
    ("minus-inf-metric", {"metrics": {"loss": -INF}}, r"metric 'loss' is -inf; metrics must be finite numbers"),
    ("bool-metric", {"metrics": {"auc": True}}, r"metric 'auc' must be a number, got bool True"),
    ("str-metric", {"metrics": {"auc": "0.9"}}, r"metric 'auc' must be a number, got str '0\.9'"),
    ("none-metric", {"metrics": {"auc": None}}, r"metric 'auc' must be a number, got NoneType"),
    ("metrics-not-mapping", {"metrics": [0.9]}, r"metrics must be a mapping of str to number, got list"),
    ("bad-metric-key", {"metrics": {"../auc": 0.9}}, r"invalid metric key '\.\./auc'"),
    (
        "set-param",
        {"params": {"classes": {1, 2}}},
        r"param classes is a set, which is not JSON-serialisable; convert it to",
    ),
    (
        "object-param",
        {"params": {"model": Unserialisable()}},
        r"param model is a Unserialisable, which is not JSON-serialisable",
    ),
    (
        "nan-in-list-param",
        {"params": {"weights": [1.0, NAN]}},
        r"param weights\[1\] is nan; params must be finite JSON values",
    ),
    ("inf-nested-param", {"params": {"opt": {"clip": [INF]}}}, r"param opt\.clip\[0\] is inf"),
    (
        "non-str-key-param",
        {"params": {"opt": {1: "a"}}},
        r"param opt has a non-string key 1; JSON objects need string keys",
    ),
    ("bytes-param", {"params": {"blob": b"x"}}, r"param blob is a bytes, which is not JSON-serialisable"),
    ("params-not-mapping", {"params": [("lr", 0.1)]}, r"params must be a mapping, got list"),
    ("oversize-params", {"params": {"big": "x" * 1_000_001}}, r"params are \d+ bytes as JSON; the cap is 1000000"),
    ("too-many-tags", {"tags": {f"k{i}": "v" for i in range(101)}}, r"101 tags given; at most 100 are allowed"),
    (
        "oversize-tag",
        {"tags": {"notes": "x" * 5001}},
        r"tag 'notes' is 5001 characters long; tag values are capped at 5000",
    ),
    ("traversal-tag-key", {"tags": {"../k": "v"}}, r"invalid tag key '\.\./k'; use letters, digits"),
    ("long-tag-key", {"tags": {"k" * 251: "v"}}, r"is longer than 250 characters; shorten it"),
    ("empty-tag-key", {"tags": {"": "v"}}, r"tag keys must be non-empty strings"),
    ("dict-tag-value", {"tags": {"team": {"a": 1}}}, r"tag 'team' must have a string value, got dict"),
    ("bool-tag-value", {"tags": {"team": True}}, r"tag 'team' must have a string value, got bool"),
    (
        "unknown-lineage-field",
        {"lineage": {"commit": "abc"}},
        r"unknown lineage field\(s\) \['commit'\]; use .* and put anything else under 'extra'",
    ),
    (
        "lineage-parents-str",
        {"lineage": {"parents": "churn/2"}},
        r"lineage\.parents must be a list of references such as 'churn/2'",
    ),
    ("lineage-parent-traversal", {"lineage": {"parents": ["../x/1"]}}, r"invalid model reference '\.\./x/1'"),
    (
        "lineage-parent-not-str",
        {"lineage": {"parents": [3]}},
        r"model reference must be a string such as 'churn/3', got int",
    ),
    (
        "lineage-dataset-without-uri",
        {"lineage": {"datasets": [{"version": "3"}]}},
        r"invalid lineage: [\s\S]*datasets\.0\.uri[\s\S]*Field required",
    ),
    ("lineage-code-str", {"lineage": {"code": "abc123"}}, r"invalid lineage: [\s\S]*code"),
    ("lineage-run-id-int", {"lineage": {"run_id": 5}}, r"invalid lineage: [\s\S]*run_id"),
    ("lineage-nan-extra", {"lineage": {"extra": {"loss": NAN}}}, r"lineage\.extra\.loss is nan; use finite numbers"),
    ("lineage-inf-in-list", {"lineage": {"extra": {"xs": [1, INF]}}}, r"lineage\.extra\.xs\[1\] is inf"),
    ("lineage-not-mapping", {"lineage": ["run-1"]}, r"lineage must be a Lineage or a mapping, got list"),
    ("unknown-capture", {"capture": "everything"}, r"capture must be 'auto', 'code', 'env' or None, got 'everything'"),
    ("oversize-description", {"description": "x" * 20_001}, r"description is 20001 characters long; the cap is 20000"),
    ("description-not-str", {"description": 3}, r"description must be a string, got int"),
    ("blank-actor", {"actor": "  "}, r"actor must be a non-empty string of at most 200 characters"),
    ("long-format", {"format": "x" * 101}, r"format must be a short string such as 'onnx'"),
    ("missing-artifact", {"path": "does-not-exist.bin"}, r"artifact path '.*does-not-exist\.bin' does not exist"),
    ("empty-folder", {"path": "empty-dir"}, r"contains no files; nothing to register"),
    ("backslash-file-in-folder", {"path": "odd-dir"}, r"artifact file path 'weird\\\\name' must be relative"),
]


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    src = tmp_path / "inputs"
    write(src / "model.bin", b"weights")
    (src / "empty-dir").mkdir()
    make_folder(src / "odd-dir", {"ok.txt": b"ok", "weird\\name": b"x"})
    return src


def _register(reg: Registry, inputs: Path, overrides: dict[str, Any]) -> Any:
    kwargs: dict[str, Any] = {"capture": None, **overrides}
    name = kwargs.pop("name", "churn")
    path = inputs / kwargs.pop("path", "model.bin")
    return reg.register(name, path, **kwargs)


@pytest.mark.parametrize(("overrides", "message"), [c[1:] for c in REGISTER_CASES], ids=[c[0] for c in REGISTER_CASES])
def test_register_rejects_bad_input_before_any_write(
    tmp_path: Path, inputs: Path, overrides: dict, message: str
) -> None:
    root = tmp_path / "reg"
    reg = Registry(root)
    with pytest.raises(InvalidInputError, match=message) as info:
        _register(reg, inputs, overrides)
    assert isinstance(info.value, ValueError) and isinstance(info.value, ModelregError)
    assert reg.list_models() == [] and reg.history() == []
    assert blob_files(root) == [] and temp_files(root) == []
    reg.close()


def test_register_rejections_write_nothing_on_every_backend(registry: Registry, inputs: Path) -> None:
    for _case_id, overrides, message in REGISTER_CASES:
        with pytest.raises(InvalidInputError, match=message):
            _register(registry, inputs, overrides)
    # nothing deletes in between, so anything a rejected call wrote would still be here
    assert snapshot(registry) == {"models": [], "versions": [], "events": [], "blobs": []}


def test_rejected_register_of_an_existing_model_changes_nothing(fast_registry: Registry, inputs: Path) -> None:
    registry = fast_registry
    registry.register("churn", inputs / "model.bin", capture=None)
    before = snapshot(registry)
    write(inputs / "new.bin", b"new weights")
    for overrides in (
        {"metrics": {"auc": NAN}},
        {"params": {"s": {1}}},
        {"tags": {"k": "v" * 6000}},
        {"lineage": {"parents": ["churn@"]}},
    ):
        with pytest.raises(InvalidInputError):
            _register(registry, inputs, {**overrides, "path": "new.bin"})
    assert snapshot(registry) == before
    assert registry.register("churn", inputs / "new.bin", capture=None).version == 2


# -- other mutations ------------------------------------------------------------------------------------


def _mutation_cases(reg: Registry) -> list[tuple[str, Callable[[], Any], str, type[Exception]]]:
    many = {f"n{i}": "v" for i in range(41)}
    return [
        (
            "unknown-stage",
            lambda: reg.transition("churn", 1, "prod"),
            r"unknown stage 'prod'; valid stages are: experimental, staging, production, archived",
            InvalidInputError,
        ),
        (
            "stage-not-str",
            lambda: reg.transition("churn", 1, 3),
            r"unknown stage 3; valid stages are",
            InvalidInputError,
        ),
        (
            "long-comment",
            lambda: reg.transition("churn", 1, "staging", comment="c" * 5001),
            r"comment is 5001 characters long; the cap is 5000",
            InvalidInputError,
        ),
        (
            "bad-version",
            lambda: reg.transition("churn", 0, "staging"),
            r"version must be a positive integer, got 0",
            InvalidInputError,
        ),
        (
            "bool-version",
            lambda: reg.transition("churn", True, "staging"),
            r"version must be a positive integer, got True",
            InvalidInputError,
        ),
        (
            "stage-name-alias",
            lambda: reg.set_alias("churn", "production", 1),
            r"alias 'production' is a stage name; .* pick another alias",
            InvalidInputError,
        ),
        (
            "stage-name-alias-any-case",
            lambda: reg.set_alias("churn", "Staging", 1),
            r"alias 'Staging' is a stage name",
            InvalidInputError,
        ),
        (
            "traversal-alias",
            lambda: reg.set_alias("churn", "../x", 1),
            r"invalid alias '\.\./x'; use letters, digits",
            InvalidInputError,
        ),
        ("empty-alias", lambda: reg.set_alias("churn", "", 1), r"invalid alias ''", InvalidInputError),
        ("numeric-alias", lambda: reg.set_alias("churn", "3", 1), r"invalid alias '3'", InvalidInputError),
        ("namespaced-alias", lambda: reg.set_alias("churn", "a/b", 1), r"invalid alias 'a/b'", InvalidInputError),
        ("long-alias", lambda: reg.set_alias("churn", "a" * 129, 1), r"invalid alias", InvalidInputError),
        (
            "too-many-tags-after-merge",
            lambda: reg.set_tags("churn/1", many),
            r"101 tags given; at most 100 are allowed",
            InvalidInputError,
        ),
        (
            "oversize-tag",
            lambda: reg.set_tags("churn/1", {"k": "v" * 5001}),
            r"tag 'k' is 5001 characters long",
            InvalidInputError,
        ),
        (
            "long-description",
            lambda: reg.set_description("churn/1", "d" * 20_001),
            r"description is 20001 characters long",
            InvalidInputError,
        ),
        (
            "nan-logged-metric",
            lambda: reg.log_metrics("churn/1", {"auc": NAN}),
            r"metric 'auc' is nan; metrics must be finite",
            InvalidInputError,
        ),
        (
            "inf-logged-metric",
            lambda: reg.log_metrics("churn/1", {"auc": -INF}),
            r"metric 'auc' is -inf",
            InvalidInputError,
        ),
        (
            "bool-logged-metric",
            lambda: reg.log_metrics("churn/1", {"auc": False}),
            r"metric 'auc' must be a number, got bool False",
            InvalidInputError,
        ),
        (
            "no-logged-metric",
            lambda: reg.log_metrics("churn/1", {}),
            r"log_metrics needs at least one metric",
            InvalidInputError,
        ),
        (
            "bool-step",
            lambda: reg.log_metrics("churn/1", {"auc": 0.5}, step=True),
            r"step must be an integer of at most 64 bits, got True",
            InvalidInputError,
        ),
        (
            "model-tags",
            lambda: reg.update_model("churn", tags={"../k": "v"}),
            r"invalid tag key '\.\./k'",
            InvalidInputError,
        ),
        (
            "model-owner",
            lambda: reg.update_model("churn", owner=""),
            r"actor must be a non-empty string",
            InvalidInputError,
        ),
        (
            "create-bad-name",
            lambda: reg.create_model("../churn"),
            r"model name '\.\./churn' looks like a path",
            InvalidInputError,
        ),
        (
            "create-bad-tags",
            lambda: reg.create_model("other", tags={f"k{i}": "v" for i in range(101)}),
            r"101 tags given",
            InvalidInputError,
        ),
        (
            "bad-actor",
            lambda: reg.transition("churn", 1, "staging", actor="x" * 201),
            r"actor must be a non-empty string of at most 200 characters",
            InvalidInputError,
        ),
        (
            "ref-version-zero",
            lambda: reg.set_tags("churn/0", {"a": "b"}),
            r"invalid model reference 'churn/0': version must be a positive integer",
            InvalidReferenceError,
        ),
        (
            "ref-empty-selector",
            lambda: reg.log_metrics("churn@", {"a": 1.0}),
            r"invalid model reference 'churn@': invalid alias ''",
            InvalidReferenceError,
        ),
        (
            "ref-traversal",
            lambda: reg.transition("../churn/1", "staging"),
            r"invalid model reference '\.\./churn/1'",
            InvalidReferenceError,
        ),
        (
            "ref-empty",
            lambda: reg.set_description("", "d"),
            r"empty model reference ''; use name, name/3, name@stage or name@alias",
            InvalidReferenceError,
        ),
        (
            "ref-two-versions",
            lambda: reg.set_alias("churn/1", "champion", 1),
            r"give at most one of a version, a stage or an alias",
            InvalidInputError,
        ),
        (
            "purge-without-version",
            lambda: reg.purge("churn"),
            r"purge needs an explicit version, e.g. 'churn/3'",
            InvalidInputError,
        ),
        (
            "negative-limit",
            lambda: reg.search("version > 0", limit=-1),
            r"limit must be a non-negative integer, got -1",
            InvalidInputError,
        ),
        (
            "bad-query",
            lambda: reg.search("metrics.auc >> 1"),
            r"cannot parse search query|expected a value",
            InvalidInputError,
        ),
    ]


def test_mutations_reject_bad_input_and_change_nothing(registry: Registry, tmp_path: Path) -> None:
    registry.register("churn", write(tmp_path / "m.bin", b"weights"), capture=None)
    registry.set_tags("churn/1", {f"t{i}": "v" for i in range(60)})
    before = snapshot(registry)
    for case_id, call, message, error in _mutation_cases(registry):
        with pytest.raises(error, match=message) as info:
            call()
        assert isinstance(info.value, ValueError), case_id
    assert snapshot(registry) == before  # every write adds an audit event, so any would show here


@pytest.mark.parametrize("name", ["churn", "fraud/churn-v2", "llm.ranker_2", "A", "a" * MAX_NAME_LENGTH, "x1/y_2.z"])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


def test_a_valid_name_round_trips_through_the_registry(registry: Registry, tmp_path: Path) -> None:
    f = write(tmp_path / "m.bin", b"m")
    for name in ("fraud/churn-v2", "llm.ranker_2", "a" * MAX_NAME_LENGTH):
        mv = registry.register(name, f, capture=None)
        assert registry.get_version(f"{name}/1") == mv
        assert registry.get_version(f"models:/{name}") == mv
    assert [m.name for m in registry.list_models()] == sorted(["fraud/churn-v2", "llm.ranker_2", "a" * MAX_NAME_LENGTH])
