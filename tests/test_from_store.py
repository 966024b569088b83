"""Records built from what a store wrote, without validating again (``models.from_store``).

A process that only reads a version (a server loading its production model, ``modelreg list``)
builds records without pydantic's validators, so it never pays for building them and for
pydantic's plugin discovery. The records must be indistinguishable from validated ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest

from modelreg import Registry
from modelreg.models import Artifact, Lineage, ModelVersion, RegisteredModel, Stage, from_store

FULL = {
    "artifact": {
        "kind": "directory",
        "name": "model",
        "digest": "sha256:" + "a" * 64,
        "size": 3,
        "files": [
            {"path": "a.txt", "digest": "sha256:" + "b" * 64, "size": 1},
            {"path": "b/c.txt", "digest": "sha256:" + "c" * 64, "size": 2},
        ],
        "format": "onnx",
        "symlink_target": None,
    },
    "params": {"lr": 0.1, "layers": [1, 2, {"x": None}], "name": "adam"},
    "metrics": {"auc": 0.9, "whole": 1},  # an integer stored by another writer becomes a float, as validated
    "lineage": {
        "run_id": "r1",
        "run_url": None,
        "code": {"commit": "abc", "repo": "git@x", "branch": "main", "dirty": False, "path": None},
        "datasets": [{"uri": "s3://d/train", "version": "3", "digest": None, "name": "train", "role": "train"}],
        "parents": ["base/1"],
        "environment": {"python": "3.11", "platform": "linux", "packages": {"numpy": "2"}},
        "extra": {"k": [1, 2]},
    },
    "created_by": "alice",
    "created_at": "2026-01-02T03:04:05.123456Z",
    "name": "churn",
    "version": 7,
    "stage": "production",
    "tags": {"team": "fraud"},
    "description": "d",
    "logged_metrics": {"auc": 0.95},
    "updated_at": "2026-01-03T00:00:00+00:00",
    "aliases": ["champion"],
}

MINIMAL = {
    "artifact": {"kind": "file", "name": "m", "digest": "sha256:" + "d" * 64, "size": 1, "files": []},
    "created_by": "bob",
    "created_at": "2026-01-02T03:04:05Z",
    "name": "m",
    "version": 1,
}

NEWER = {**MINIMAL, "signature": {"by": "ci"}, "artifact": {**MINIMAL["artifact"], "compression": "zstd"}}
"""Fields a newer modelreg may write: kept as extra fields, as validation keeps them."""


def same(built: ModelVersion, validated: ModelVersion) -> None:
    assert built == validated
    assert built.model_dump() == validated.model_dump()
    assert built.model_dump_json() == validated.model_dump_json()
    assert built.model_extra == validated.model_extra
    assert built.model_fields_set == validated.model_fields_set
    assert built.artifact.model_extra == validated.artifact.model_extra
    assert repr(built) == repr(validated)


@pytest.mark.parametrize("data", [FULL, MINIMAL, NEWER], ids=["full", "minimal", "newer-writer"])
def test_a_record_built_from_stored_data_equals_the_validated_one(data: dict) -> None:
    raw = json.dumps(data)
    built, validated = from_store(ModelVersion, json.loads(raw)), ModelVersion.model_validate_json(raw)
    same(built, validated)
    assert type(built.stage) is Stage and type(built.artifact) is Artifact and type(built.lineage) is Lineage
    assert all(type(v) is float for v in built.metrics.values())
    assert built.created_at.tzinfo is not None and built.created_at.utcoffset().total_seconds() == 0


def test_defaults_are_fresh_containers_per_record() -> None:
    a, b = from_store(ModelVersion, dict(MINIMAL)), from_store(ModelVersion, dict(MINIMAL))
    a.tags["x"] = "y"
    a.lineage.parents.append("p/1")
    assert b.tags == {} and b.lineage.parents == []


def test_data_that_lacks_a_required_field_is_refused() -> None:
    data = {k: v for k, v in MINIMAL.items() if k != "created_by"}
    with pytest.raises(ValueError, match="created_by"):
        from_store(ModelVersion, data)
    with pytest.raises(ValueError, match="time zone"):
        from_store(ModelVersion, {**MINIMAL, "created_at": "2026-01-02T03:04:05"})


def test_registered_model_records() -> None:
    data = {
        "name": "m",
        "created_at": "2026-01-02T03:04:05Z",
        "updated_at": datetime(2026, 1, 3, tzinfo=timezone.utc),
        "stages": {"production": [2]},
        "aliases": {"best": 2},
        "latest_version": 2,
        "version_count": 2,
    }
    assert from_store(RegisteredModel, data) == RegisteredModel.model_validate(data)


def test_what_a_read_only_process_reads_equals_what_a_validating_one_reads(tmp_path: Path) -> None:
    f = tmp_path / "m.bin"
    f.write_bytes(b"weights")
    reg = Registry(tmp_path / "reg")
    for i in range(3):
        reg.register(
            "churn",
            f,
            params={"i": i, "nested": {"a": [1, 2]}},
            metrics={"auc": 0.5 + i / 10},
            tags={"team": "fraud"},
            capture=None,
        )
    reg.transition("churn", 2, "production")
    reg.set_alias("churn", "best", 3)
    reg.log_metrics("churn/1", {"auc": 0.99})
    expected = {mv.ref: mv.model_dump(mode="json") for mv in reg.list_versions("churn")}
    model = reg.get_model("churn").model_dump(mode="json")
    reg.close()
    code = textwrap.dedent("""
        import json, sys
        from modelreg import Registry
        from modelreg.models import ModelVersion, RegisteredModel
        reg = Registry(sys.argv[1])
        versions = [reg.get_version("churn", v) for v in (1, 2, 3)]
        production, best = reg.get_version("churn@production"), reg.get_version("churn@best")
        model = reg.get_model("churn")
        built = [ModelVersion.__pydantic_complete__, RegisteredModel.__pydantic_complete__]
        out = {"versions": {mv.ref: mv.model_dump(mode="json") for mv in versions},  # (dumping builds them)
               "production": production.ref, "best": best.ref, "model": model.model_dump(mode="json"),
               "validators_built": built}
        print(json.dumps(out))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "reg")], capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["versions"] == expected
    assert (got["production"], got["best"]) == ("churn/2", "churn/3")
    assert got["model"] == model
    # reading alone built no validator
    assert got["validators_built"] == [False, False]


def test_a_process_that_keeps_reading_builds_the_validator_after_a_while(tmp_path: Path) -> None:
    """Built once, the validator is the faster way per record: a long-lived reader switches to it."""
    f = tmp_path / "m.bin"
    f.write_bytes(b"weights")
    with Registry(tmp_path / "reg") as reg:
        reg.register("churn", f, capture=None)
    code = textwrap.dedent("""
        import json, sys
        from modelreg import Registry
        from modelreg import models
        from modelreg.models import ModelVersion
        reg = Registry(sys.argv[1])
        first = [reg.get_version("churn/1") for _ in range(models._UNVALIDATED_READS)]
        before = ModelVersion.__pydantic_complete__
        later = reg.get_version("churn/1")
        print(json.dumps({"before": before, "after": ModelVersion.__pydantic_complete__,
                          "same": all(mv == later for mv in first)}))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "reg")], capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"before": False, "after": True, "same": True}
