"""What keeps a change's cost flat in the number of versions, shown for correctness (the costs
themselves are counted by the conformance suite and timed by benchmarks/bench_scale.py):
rollback reads the stage history from the head back, and the JSON store's state documents keep
only the versions whose state changed since registration (format 2)."""

from __future__ import annotations

import json
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelreg import Registry
from tests.helpers import FAST_BACKENDS, open_backend, write


@pytest.fixture(params=FAST_BACKENDS)
def reg(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    yield from open_backend(request, tmp_path)


def test_rollback_finds_a_holder_older_than_the_first_window(reg: Registry, tmp_path: Path) -> None:
    from modelreg.governance.engine import ROLLBACK_WINDOW

    reg.register("churn", write(tmp_path / "v1.bin", b"one"), capture=None)
    reg.transition("churn", 1, "production")
    for i in range(ROLLBACK_WINDOW + 10):  # more events than the first read covers
        reg.register("churn", write(tmp_path / f"x{i}.bin", f"x{i}".encode()), capture=None)
    reg.purge("churn/2")  # a purged version in between is skipped, as before
    top = reg.get_version("churn").version
    reg.transition("churn", top, "production")
    assert reg.get_version("churn/1").stage.value == "archived"
    back = reg.rollback("churn")
    assert back.version == 1 and reg.get_version("churn@production").version == 1
    assert reg.get_version(f"churn/{top}").stage.value == "archived"
    assert reg.verify().ok


def test_rollback_with_only_one_holder_ever_still_refuses(reg: Registry, tmp_path: Path) -> None:
    from modelreg import InvalidTransitionError
    from modelreg.governance.engine import ROLLBACK_WINDOW

    reg.register("churn", write(tmp_path / "v1.bin", b"one"), capture=None)
    reg.transition("churn", 1, "production")
    for i in range(ROLLBACK_WINDOW + 5):
        reg.set_tags("churn/1", {"n": str(i)})
    with pytest.raises(InvalidTransitionError, match="no earlier version that held production"):
        reg.rollback("churn")


def _state_doc(root: Path, name: str) -> dict:
    return json.loads((root / "meta" / "models" / f"{name}.json").read_text())


def test_json_state_documents_are_sparse(tmp_path: Path) -> None:
    with Registry(metadata=f"json+file://{tmp_path}/meta", artifacts=str(tmp_path / "blobs")) as reg:
        for i in range(40):
            reg.register(
                "churn",
                write(tmp_path / f"m{i}.bin", f"w{i}".encode()),
                tags={"team": "fraud"},
                description=f"run {i}",
                capture=None,
            )
        doc = _state_doc(tmp_path, "churn")
        assert doc["sparse"] is True and doc["versions"] == {} and doc["last_version"] == 40
        reg.set_tags("churn/3", {"reviewed": "yes"})
        reg.transition("churn", 5, "production")
        reg.purge("churn/7")
        doc = _state_doc(tmp_path, "churn")
        assert sorted(doc["versions"]) == ["3", "5"] and doc["purged"] == [7]
        # everything reads back as if every version had its entry
        state = reg.metadata.get_state("churn")
        assert sorted(state.versions) == [v for v in range(1, 41) if v != 7]
        assert state.versions[4].tags == {"team": "fraud"} and state.versions[4].description == "run 3"
        assert state.versions[3].tags == {"team": "fraud", "reviewed": "yes"}
        assert state.holders("production") == [5] and len(state.holders("experimental")) == 38
        model = reg.get_model("churn")
        assert model.version_count == 39 and model.stages["production"] == [5]
        assert len(model.stages["experimental"]) == 38
        assert [v.version for v in reg.search("tags.reviewed = 'yes'")] == [3]
        assert len(reg.search("tags.team = 'fraud' and stage = 'experimental'")) == 38
        assert reg.get_version("churn/4").description == "run 3"
        with pytest.raises(Exception, match="no version 7"):
            reg.get_version("churn/7")
        assert reg.register("churn", write(tmp_path / "n.bin", b"new"), capture=None).version == 41
        assert reg.verify().ok


def test_a_format_1_registry_keeps_dense_documents(tmp_path: Path) -> None:
    """Models added to a registry created by a format-1 release stay readable by that release."""
    fixture = Path(__file__).parent / "fixtures" / "legacy-0.1" / "json"
    root = tmp_path / "json"
    shutil.copytree(fixture, root)
    for path in root.rglob("*"):
        if path.is_file():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    assert json.loads((root / "metadata" / "format.json").read_text())["version"] == 1
    with Registry(metadata=f"json+file://{root / 'metadata'}", artifacts=str(root / "blobs")) as reg:
        reg.register("new-model", write(tmp_path / "m.bin", b"weights"), capture=None)
        doc = json.loads((root / "metadata" / "models" / "new-model.json").read_text())
        assert not doc.get("sparse") and sorted(doc["versions"]) == ["1"]
        assert json.loads((root / "metadata" / "format.json").read_text())["version"] == 1
        assert reg.verify().ok
