"""Import a real MLflow registry (SQLite tracking store and local artifacts in tmp_path): numbers with
MLflow's gaps, times, users, stages, aliases, tags, descriptions, run linkage and verified artifacts;
idempotent, and resumable after an interrupted download."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import mlflow
import pytest

from modelreg import Registry
from modelreg.cli import main as cli_main
from modelreg.trackers import mlflow_import
from modelreg.trackers.mlflow_import import map_alias, to_mlflow_name, to_modelreg_name

from .mlflow_support import WARNING_FILTERS, Store, mlflow_store, transition

pytestmark = WARNING_FILTERS


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with mlflow_store(tmp_path_factory.mktemp("mlflow")) as s:
        yield s


def _version(store: Store, name: str, *, folder: bool, user: str, content: str, **run_tags: str) -> Any:
    """A run that logs an artifact (one file, or a folder of two files) and a version made from it."""
    work = store.artifacts.parent / "work" / f"{name}-{content}"
    work.mkdir(parents=True)
    tags = {"mlflow.user": user, "mlflow.source.git.commit": "c0ffee" + content, **run_tags}
    with mlflow.start_run(experiment_id=store.experiment_id, tags=tags) as run:
        mlflow.log_param("seed", content)
        mlflow.log_metric("auc", 0.5)
        mlflow.log_metric("auc", 0.9)
        if folder:
            (work / "weights.bin").write_bytes(content.encode() * 100)
            (work / "sub").mkdir()
            (work / "sub" / "config.json").write_text(json.dumps({"content": content}))
            mlflow.log_artifacts(str(work), artifact_path="model")
            source = f"runs:/{run.info.run_id}/model"
        else:
            (work / "model.txt").write_text(content)
            mlflow.log_artifact(str(work / "model.txt"), artifact_path="file")
            source = f"runs:/{run.info.run_id}/file/model.txt"
    return store.client.create_model_version(name, source, run_id=run.info.run_id, tags={"built": content})


def _build(store: Store, prefix: str) -> dict[str, str]:
    """Two models: churn (versions 1, 2, [3 deleted], 4; stages, aliases, tags, descriptions) and a
    model whose name modelreg does not allow."""
    c = store.client
    churn, odd = f"{prefix}-churn", f"{prefix} fraud #1"
    c.create_registered_model(churn, tags={"team": "retention"}, description="predicts churn")
    _version(store, churn, folder=False, user="ana", content="one")
    _version(store, churn, folder=True, user="bo", content="two")
    _version(store, churn, folder=False, user="ana", content="three")
    _version(store, churn, folder=True, user="cy", content="four")
    c.delete_model_version(churn, "3")
    c.update_model_version(churn, "4", description="the good one")
    c.set_model_version_tag(churn, "4", "validated", "yes")
    transition(c, churn, 1, "Archived")
    transition(c, churn, 2, "Staging")
    transition(c, churn, 4, "Production")
    c.set_registered_model_alias(churn, "champion", "4")
    c.set_registered_model_alias(churn, "Production", "2")  # a modelreg stage name
    c.set_registered_model_alias(churn, "1st", "1")  # starts with a digit
    c.create_registered_model(odd)
    _version(store, odd, folder=False, user="dee", content="odd")
    return {"churn": churn, "odd": odd}


def _ms(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp / 1000, tz=timezone.utc)


def test_import_reproduces_numbers_times_users_stages_aliases_and_artifacts(store: Store, tmp_path: Path) -> None:
    names = _build(store, "full")
    churn = names["churn"]
    with Registry(tmp_path / "registry", actor="importer") as reg:
        report = reg.import_mlflow(tracking_uri=store.tracking_uri, models=[churn, names["odd"]])
        assert report.ok, report
        assert report.versions_imported == 4
        by_name = {m.mlflow_name: m for m in report.models}
        assert by_name[churn].imported == [1, 2, 4]
        assert by_name[churn].deleted_in_mlflow == [3]

        # numbers, with MLflow's gap; times and users
        versions = {mv.version: mv for mv in reg.list_versions(churn)}
        assert sorted(versions) == [1, 2, 4]
        for number, mv in versions.items():
            source = store.client.get_model_version(churn, str(number))
            assert mv.created_at == _ms(source.creation_timestamp)
            assert mv.created_by == {1: "ana", 2: "bo", 4: "cy"}[number]
        register_events = [e for e in reg.history(churn) if e.action == "register"]
        assert [e.version for e in register_events] == [1, 2, 3, 4]
        assert register_events[0].time == versions[1].created_at
        assert register_events[0].after is not None
        assert register_events[0].after["imported_from"]["model"] == churn
        assert register_events[0].after["imported_from"]["version"] == 1
        assert [e.version for e in reg.history(churn) if e.action == "purge"] == [3]
        assert reg.get_model(churn).created_at == _ms(store.client.get_registered_model(churn).creation_timestamp)

        # stages, aliases (renamed where modelreg's rules say so), tags, descriptions
        assert [versions[v].stage.value for v in (1, 2, 4)] == ["archived", "staging", "production"]
        assert reg.get_version(f"{churn}@production").version == 4
        assert reg.get_version(f"{churn}@champion").version == 4
        assert reg.get_version(f"{churn}@mlflow-Production").version == 2
        assert reg.get_version(f"{churn}@a-1st").version == 1
        renamed = {(r.kind, r.mlflow): r.modelreg for r in report.renamed}
        assert renamed[("alias", "Production")] == "mlflow-Production"
        assert renamed[("alias", "1st")] == "a-1st"
        model = reg.get_model(churn)
        assert (model.description, model.tags) == ("predicts churn", {"team": "retention"})
        four = reg.get_version(f"{churn}/4")
        assert four.description == "the good one"
        assert four.tags == {"built": "four", "validated": "yes"}

        # run linkage
        assert four.params == {"seed": "four"} and four.metrics == {"auc": 0.9}
        assert four.lineage.run_id == store.client.get_model_version(churn, "4").run_id
        assert four.lineage.code is not None and four.lineage.code.commit == "c0ffeefour"
        assert four.lineage.extra["mlflow_model"] == churn and four.lineage.extra["mlflow_version"] == 4

        # artifacts: a file and folders, byte for byte, verified
        assert versions[1].artifact.kind == "file"
        assert reg.fetch(f"{churn}/1").read_text() == "one"
        folder = reg.fetch(f"{churn}/4")
        assert (folder / "weights.bin").read_bytes() == b"four" * 100
        assert json.loads((folder / "sub" / "config.json").read_text()) == {"content": "four"}
        assert reg.verify().ok

        # a name MLflow allows and modelreg does not: a reversible mapping, reported
        odd = to_modelreg_name(names["odd"])
        assert odd is not None and renamed[("model", names["odd"])] == odd
        assert to_mlflow_name(odd) == names["odd"]
        assert reg.get_version(f"{odd}/1").created_by == "dee"

        # idempotent: a second run imports nothing and writes no event
        heads = {m.name: reg.metadata.audit_head(m.name) for m in reg.list_models()}
        again = reg.import_mlflow(tracking_uri=store.tracking_uri, models=[churn, names["odd"]])
        assert again.ok and again.versions_imported == 0 and again.versions_already_there == 4
        assert {m.name: reg.metadata.audit_head(m.name) for m in reg.list_models()} == heads

        # a new MLflow version and a new alias arrive: the next run takes just those
        _version(store, churn, folder=False, user="ana", content="five")
        store.client.set_registered_model_alias(churn, "challenger", "5")
        more = reg.import_mlflow(tracking_uri=store.tracking_uri, models=[churn])
        assert more.ok and [m.imported for m in more.models] == [[5]]
        assert reg.get_version(f"{churn}@challenger").version == 5


def test_an_interrupted_import_resumes(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = _build(store, "resume")
    churn = names["churn"]
    real = mlflow_import.download_version

    def failing(client: Any, name: str, version: str, *args: Any) -> Path:
        if str(version) == "2":
            raise OSError("connection reset while downloading")
        return real(client, name, version, *args)

    monkeypatch.setattr(mlflow_import, "download_version", failing)
    with Registry(tmp_path / "registry", actor="importer") as reg:
        first = reg.import_mlflow(tracking_uri=store.tracking_uri, models=[churn])
        assert not first.ok
        assert [m.imported for m in first.models] == [[1]]
        assert [(s.version, "connection reset" in s.reason) for s in first.skipped] == [(2, True)]
        assert [v.version for v in reg.list_versions(churn)] == [1]

        # a placeholder left live by a crash between its registration and its purge is purged on resume
        monkeypatch.setattr(mlflow_import, "download_version", real)

        def crash(self: Any, name: str, number: int, digest: str) -> None:
            raise KeyboardInterrupt

        purge = mlflow_import._Importer._purge
        monkeypatch.setattr(mlflow_import._Importer, "_purge", crash)
        with pytest.raises(KeyboardInterrupt):
            reg.import_mlflow(tracking_uri=store.tracking_uri, models=[churn])
        monkeypatch.setattr(mlflow_import._Importer, "_purge", purge)

        second = reg.import_mlflow(tracking_uri=store.tracking_uri, models=[churn])
        assert second.ok, second
        assert [m.already_there for m in second.models] == [[1, 2]]
        assert [m.imported for m in second.models] == [[4]]
        assert [v.version for v in reg.list_versions(churn)] == [1, 2, 4]
        assert reg.get_version(f"{churn}@production").version == 4
        assert reg.verify().ok


def test_cli_import(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = _build(store, "cli")
    registry = str(tmp_path / "registry")
    args = ["--registry", registry, "import", "mlflow", "--tracking-uri", store.tracking_uri, "--models"]
    assert cli_main([*args, names["churn"], "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True and data["versions_imported"] == 3
    assert [m["imported"] for m in data["models"]] == [[1, 2, 4]]
    assert cli_main([*args, names["churn"]]) == 0
    out = capsys.readouterr().out
    assert "imported 0 versions (3 already there)" in out and "verified: ok" in out


@pytest.mark.parametrize(
    "name", ["churn", "team/churn", "my model", "a/b/c", "1st", "x--trick", "ünïcode", "_private", "end-"]
)
def test_model_names_map_reversibly(name: str) -> None:
    mapped = to_modelreg_name(name)
    assert mapped is not None
    assert to_mlflow_name(mapped) == name
    if name in ("churn", "team/churn"):
        assert mapped == name
    else:
        assert mapped.startswith("x--")


def test_alias_mapping() -> None:
    assert map_alias("champion") == ("champion", None)
    assert map_alias("staging")[0] == "mlflow-staging"
    assert map_alias("blue green")[0] == "blue-green"
