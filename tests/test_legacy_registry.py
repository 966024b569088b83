"""A registry written by modelreg 0.1.0 (kept in tests/fixtures/legacy-0.1, made by
tests/fixtures/make_legacy_registry.py with that release) opens with this one: everything reads
back, the audit chains verify, and the next changes (which read versions on demand and stamp
event times in the store) extend the same chains."""

from __future__ import annotations

import json
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelreg import Registry

FIXTURE = Path(__file__).parent / "fixtures" / "legacy-0.1"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())


@pytest.fixture(params=["sqlite", "json"])
def legacy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    root = tmp_path / request.param
    shutil.copytree(FIXTURE / request.param, root)
    for path in root.rglob("*"):  # git does not keep the blobs' read-only mode; restore a writable copy
        if path.is_file():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    if request.param == "sqlite":
        reg = Registry(root)
    else:
        reg = Registry(metadata=f"json+file://{root / 'metadata'}", artifacts=str(root / "blobs"))
    yield reg
    reg.close()


def test_a_legacy_registry_reads_back_whole(legacy: Registry, tmp_path: Path) -> None:
    assert [m.name for m in legacy.list_models()] == EXPECTED["models"]
    churn = EXPECTED["churn"]
    assert [v.version for v in legacy.list_versions("churn")] == churn["versions"]
    assert legacy.get_version("churn@production").version == churn["production"]
    assert legacy.get_version("churn@champion").version == churn["champion"]
    assert legacy.get_version("churn/1").stage.value == "archived"
    assert legacy.get_version("churn/2").logged_metrics == {"live_auc": 0.86}
    assert legacy.get_version("churn/2").tags == {"team": "fraud", "reviewed": "yes"}
    assert len(legacy.history("churn")) == churn["events"]
    assert [h.action for h in legacy.history("churn")][-1] == "purge"
    assert sorted(v.ref for v in legacy.search("tags.team = 'fraud'")) == ["churn/1", "churn/2"]
    out = legacy.download("fraud/scorer", tmp_path / "out")
    assert (
        sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
        == EXPECTED["fraud/scorer"]["files"]
    )
    report = legacy.verify()
    assert report.ok, [p.detail for p in report.problems]


def test_a_legacy_registry_takes_new_changes(legacy: Registry, tmp_path: Path) -> None:
    before = legacy.history("churn")
    f = tmp_path / "v4.bin"
    f.write_bytes(b"weights four")
    mv = legacy.register("churn", f, actor="ana", capture=None)
    assert mv.version == EXPECTED["churn"]["next_version"]  # the purged 3 stays taken
    legacy.transition(mv.ref, "production", actor="ana")
    assert legacy.get_version("churn/2").stage.value == "archived"
    legacy.rollback("churn", actor="ana")  # back to 2, found in the legacy history
    assert legacy.get_version("churn@production").version == 2
    legacy.set_alias("churn", "champion", mv.version, actor="ana")
    legacy.purge("churn/1", actor="ana")
    after = legacy.history("churn")
    assert after[: len(before)] == before  # the old chain is kept as it was, and extended
    times = [e.time for e in after]
    assert times == sorted(times)
    report = legacy.verify()
    assert report.ok, [p.detail for p in report.problems]
