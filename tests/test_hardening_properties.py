"""Property: whatever names, params, tags and metrics a caller passes, ``register`` either raises a
ModelregError before writing anything, or stores a version that reads back equal to what was given,
on every metadata store."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from modelreg import ModelregError, Registry
from tests.helpers import snapshot

STORES = {
    "sqlite": lambda root: Registry(root / "reg"),
    "json": lambda root: Registry(metadata=f"json+file://{root}/meta", artifacts=str(root / "blobs")),
}

# text with the characters that broke names before: newlines, tabs, NUL, edge spaces, unicode
_tricky = st.sampled_from(["\n", "\r", "\t", "\x00", " ", "\u2028", "/", ".", "..", "-", "_", "é", "@", ":"])
_text = st.lists(st.one_of(st.characters(codec="utf-8"), _tricky), max_size=12).map("".join)
_names = st.one_of(st.from_regex(r"[A-Za-z][A-Za-z0-9._-]{0,10}(/[A-Za-z][A-Za-z0-9_]{0,5})?", fullmatch=True), _text)
_keys = st.one_of(st.from_regex(r"[A-Za-z_][A-Za-z0-9_.:-]{0,8}", fullmatch=True), _text)
_numbers = st.one_of(
    st.integers(),  # unbounded: beyond 64 bits too
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([2**63 - 1, -(2**63), 2**63, 10**400]),
)
_leaves = st.one_of(st.none(), st.booleans(), _numbers, _text)
_json = st.recursive(
    _leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=3)),
    max_leaves=12,
)


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"k": value}
    return value


_params = st.dictionaries(_keys, st.one_of(_json, st.integers(25, 40).map(_deep)), max_size=4)
_tags = st.dictionaries(_keys, st.one_of(_text, st.integers(), st.floats()), max_size=4)
_metrics = st.dictionaries(
    _keys, st.one_of(st.floats(allow_nan=True), st.integers(), st.sampled_from([10**400])), max_size=4
)


def _as_stored(value: Any) -> Any:
    """What a JSON round trip gives back: tuples as lists, the same numbers."""
    if isinstance(value, dict):
        return {k: _as_stored(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_stored(v) for v in value]
    return value


@pytest.mark.parametrize("store", sorted(STORES))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=_names, params=_params, tags=_tags, metrics=_metrics)
def test_register_stores_what_it_is_given_or_nothing(
    store: str, name: Any, params: dict, tags: dict, metrics: dict
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        artifact = root / "model.bin"
        artifact.write_bytes(b"weights")
        reg = STORES[store](root)
        try:
            before = snapshot(reg)
            try:
                mv = reg.register(name, artifact, params=params, tags=tags, metrics=metrics, capture=None)
            except ModelregError as exc:
                event(f"refused: {type(exc).__name__}")
                assert snapshot(reg) == before, "a refused registration wrote something"
                return
            event("stored")
            got = reg.get_version(mv.ref)
            assert got.name == name
            assert got.params == _as_stored(params)
            assert got.tags == {k: str(v) for k, v in tags.items()}
            assert got.metrics == {k: float(v) for k, v in metrics.items()}
            assert all(math.isfinite(v) for v in got.metrics.values())
            assert [v.ref for v in reg.list_versions(name)] == [mv.ref]
            assert reg.verify().ok
        finally:
            reg.close()
