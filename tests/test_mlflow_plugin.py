"""MLflow clients on a modelreg registry (modelreg.mlflow_plugin): MLflow's own client, fluent API
and pyfunc loader, installed as they are, read and write a modelreg registry through the plugin
entry points. Real MLflow (SQLite tracking store), real scikit-learn, moto for the bucket case;
no mocks."""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelreg import Registry, UnsafeModelError
from modelreg.governance import Gate, Policy
from tests.mlflow_support import WARNING_FILTERS, mlflow_store

pytestmark = [
    *WARNING_FILTERS,
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning"),
]

import mlflow  # noqa: E402  (a dev dependency, installed by the README's test command: never skipped)
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

from modelreg.mlflow_plugin import (  # noqa: E402
    SCHEMES,
    ModelregArtifactRepository,
    ModelregRegistryStore,
    registry_location,
)

rng = np.random.default_rng(3)
X = rng.normal(size=(60, 4))
Y = (X[:, 0] > 0).astype(int)


def _fit(c: float = 1.0) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c).fit(X, Y)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Any, MlflowClient, Path]]:
    """MLflow tracking in SQLite, MLflow's registry URI on a modelreg folder."""
    with mlflow_store(tmp_path / "mlflow") as store:
        reg_path = tmp_path / "registry"
        mlflow.set_registry_uri(f"modelreg://{reg_path}")
        client = MlflowClient(tracking_uri=store.tracking_uri, registry_uri=f"modelreg://{reg_path}")
        yield store, client, reg_path


def _log(store: Any, name: str | None, c: float = 1.0) -> tuple[str, Any]:
    """A run that trains and logs a model (registered as ``name`` when given)."""
    with mlflow.start_run(experiment_id=store.experiment_id) as run:
        mlflow.log_param("C", c)
        mlflow.log_metric("auc", 0.5 + c / 10)
        mlflow.set_tag("team", "risk")
        info = mlflow.sklearn.log_model(_fit(c), name="model", registered_model_name=name)
    return run.info.run_id, info


def _code(exc: pytest.ExceptionInfo[MlflowException]) -> str:
    return exc.value.error_code


# -- the plugin is complete -----------------------------------------------------------------------


def _abstract(cls: type) -> set[str]:
    return {n for n, v in inspect.getmembers(cls) if getattr(v, "__isabstractmethod__", False)}


def test_every_abstract_method_of_mlflows_store_is_implemented() -> None:
    from mlflow.store.model_registry.abstract_store import AbstractStore

    names = _abstract(AbstractStore)
    assert len(names) >= 21  # MLflow's base class does not enforce them: a missing one would return None
    missing = [n for n in sorted(names) if getattr(ModelregRegistryStore, n) is getattr(AbstractStore, n)]
    assert missing == []


def test_every_abstract_method_of_mlflows_artifact_repository_is_implemented() -> None:
    from mlflow.store.artifact.artifact_repo import ArtifactRepository

    names = _abstract(ArtifactRepository)
    assert {"list_artifacts", "_download_file", "log_artifact", "log_artifacts"} <= names
    missing = [n for n in sorted(names) if getattr(ModelregArtifactRepository, n) is getattr(ArtifactRepository, n)]
    assert missing == []


def test_mlflow_finds_the_plugin_for_every_scheme(tmp_path: Path) -> None:
    from importlib.metadata import entry_points

    for group in ("mlflow.model_registry_store", "mlflow.artifact_repository"):
        assert {e.name for e in entry_points(group=group)} >= set(SCHEMES)
    from mlflow.tracking._model_registry.utils import _get_store

    store = _get_store(f"modelreg://{tmp_path / 'reg'}")
    assert isinstance(store, ModelregRegistryStore)
    assert (tmp_path / "reg" / "modelreg.db").is_file()


@pytest.mark.parametrize(
    ("uri", "location"),
    [
        ("modelreg:///srv/models", "/srv/models"),
        ("modelreg://localhost/srv/models", "/srv/models"),
        ("modelreg:models", "models"),
        ("modelreg:./team/models", "./team/models"),
        ("modelreg+s3://bucket/registry", "s3://bucket/registry"),
        ("modelreg+sqlite:///models", "sqlite:///models"),
        ("MODELREG+GS://bucket/r", "gs://bucket/r"),
        ("modelreg+postgresql://me@db/reg?artifacts=s3://b/blobs", "postgresql://me@db/reg?artifacts=s3://b/blobs"),
    ],
)
def test_registry_uris(uri: str, location: str) -> None:
    assert registry_location(uri) == location


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("modelreg://host/srv/models", "names a host ('host')"),
        ("modelreg:", "names no registry folder"),
        ("mlflow:///x", "not a modelreg registry URI"),
        ("modelreg+ftp://x/y", "not a modelreg registry URI"),
    ],
)
def test_bad_registry_uris_are_clear(uri: str, message: str) -> None:
    with pytest.raises(MlflowException, match=message.replace("(", r"\(").replace(")", r"\)")) as exc:
        registry_location(uri)
    assert _code(exc) == "INVALID_PARAMETER_VALUE"


# -- MLflow's workflow, end to end -----------------------------------------------------------------


def test_log_model_registers_and_every_models_uri_loads(env: Any) -> None:
    store, client, reg_path = env
    run_id, info = _log(store, "churn model")
    mv = client.get_model_version("churn model", "1")
    assert (mv.name, mv.version, mv.status, mv.current_stage) == ("churn model", "1", "READY", "None")
    assert mv.run_id == run_id  # MLflow 3 passes run_id=None and a models:/m-... source: resolved from the logged model
    assert mv.model_id == info.model_id and mv.source == f"models:/{info.model_id}"

    client.set_registered_model_alias("churn model", "champion", "1")
    client.transition_model_version_stage("churn model", "1", "Production")
    expected = _fit(1.0).predict(X[:5])
    for uri in ("champion", "Production", "latest", "1"):
        sep = "@" if uri == "champion" else "/"
        loaded = mlflow.pyfunc.load_model(f"models:/churn model{sep}{uri}")
        assert list(loaded.predict(X[:5])) == list(expected), uri

    # in modelreg: an encoded name, the run's data, MLflow's folder stored verified, the audit trail
    reg = Registry(reg_path)
    v = reg.get_version("x--churn_20model@production")
    assert v.version == 1 and v.aliases == ["champion"]
    assert v.params == {"C": 1.0} and v.metrics == {"auc": 0.6} and v.tags["team"] == "risk"
    assert v.lineage.run_id == run_id and v.lineage.extra["model_id"] == info.model_id
    assert v.artifact.format == "mlflow" and "MLmodel" in {f.path for f in v.artifact.files}
    assert [e.action for e in reg.history("x--churn_20model")][:3] == ["create_model", "register", "set_alias"]
    assert reg.verify().ok
    # MLflow 3 writes scikit-learn in skops: modelreg's own loader reads the folder as it is
    assert list(reg.load_model(v.ref).predict(X[:5])) == list(expected)


def test_a_pickled_mlflow_model_keeps_modelregs_safety_rule(env: Any) -> None:
    store, _, reg_path = env
    with mlflow.start_run(experiment_id=store.experiment_id):
        mlflow.sklearn.log_model(
            _fit(), name="model", registered_model_name="pickled", serialization_format="cloudpickle"
        )
    reg = Registry(reg_path)
    with pytest.raises(UnsafeModelError):
        reg.load_model("pickled/1")
    assert list(reg.load_model("pickled/1", allow_unsafe=True).predict(X[:5])) == list(_fit().predict(X[:5]))
    # MLflow's own loader (and its pickle behaviour) applies to models:/ URIs, as documented
    assert list(mlflow.pyfunc.load_model("models:/pickled/1").predict(X[:5])) == list(_fit().predict(X[:5]))


def test_register_model_from_a_run_uri_and_a_plain_folder(env: Any, tmp_path: Path) -> None:
    store, client, reg_path = env
    run_id, _ = _log(store, None, c=2.0)
    mv = mlflow.register_model(f"runs:/{run_id}/model", "fraud")
    assert (mv.name, mv.version, mv.run_id) == ("fraud", "1", run_id)
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"\x00" * 1000)
    mv2 = client.create_model_version("fraud", str(folder), description="hand-made", tags={"kind": "raw"})
    assert (mv2.version, mv2.description, mv2.tags, mv2.run_id) == ("2", "hand-made", {"kind": "raw"}, None)
    reg = Registry(reg_path)
    assert reg.get_version("fraud/1").params == {"C": 2.0}
    assert reg.get_version("fraud/2").artifact.files[0].path == "weights.bin"
    assert reg.get_version("fraud/2").artifact.format is None


def test_registered_model_methods(env: Any) -> None:
    _, client, reg_path = env
    rm = client.create_registered_model("churn", tags={"team": "risk"}, description="scores churn")
    assert (rm.name, rm.description, rm.tags, rm.latest_versions) == ("churn", "scores churn", {"team": "risk"}, [])
    with pytest.raises(MlflowException, match="model 'churn' exists already") as exc:
        client.create_registered_model("churn")
    assert _code(exc) == "RESOURCE_ALREADY_EXISTS"
    assert client.update_registered_model("churn", description="v2").description == "v2"
    client.set_registered_model_tag("churn", "tier", "gold")
    client.delete_registered_model_tag("churn", "team")
    got = client.get_registered_model("churn")
    assert got.tags == {"tier": "gold"} and got.description == "v2"
    assert got.creation_timestamp <= got.last_updated_timestamp
    with pytest.raises(MlflowException) as exc:
        client.get_registered_model("nope")
    assert _code(exc) == "RESOURCE_DOES_NOT_EXIST"
    # modelreg keeps a model's audit chain: no rename, no delete, and nothing changes
    with pytest.raises(MlflowException, match="does not rename models") as exc:
        client.rename_registered_model("churn", "churn2")
    assert _code(exc) == "INVALID_STATE"
    with pytest.raises(MlflowException, match=r"does not delete models.*delete_model_version") as exc:
        client.delete_registered_model("churn")
    assert _code(exc) == "INVALID_STATE"
    assert [m.name for m in Registry(reg_path).list_models()] == ["churn"]
    with pytest.raises(MlflowException, match="tag keys modelreg does not allow") as exc:
        client.set_registered_model_tag("churn", "bad key\n", "x")
    assert _code(exc) == "INVALID_PARAMETER_VALUE"


def test_search_with_mlflows_filters_order_and_pages(env: Any, tmp_path: Path) -> None:
    _, client, _ = env
    folder = tmp_path / "m.txt"
    for name in ("churn", "churn-eu", "fraud"):
        client.create_registered_model(name, tags={"team": "risk" if name != "fraud" else "ops"})
        for i in range(3):
            folder.write_text(f"{name} {i}")
            client.create_model_version(name, str(folder), tags={"i": str(i)})
    names = [m.name for m in client.search_registered_models(filter_string="name LIKE 'churn%'")]
    assert names == ["churn", "churn-eu"]
    assert [m.name for m in client.search_registered_models("tags.team = 'ops'")] == ["fraud"]
    assert [m.name for m in client.search_registered_models(order_by=["name DESC"])] == ["fraud", "churn-eu", "churn"]
    page = client.search_registered_models(max_results=2)
    assert len(page) == 2 and page.token
    assert [m.name for m in client.search_registered_models(max_results=2, page_token=page.token)] == ["fraud"]

    versions = client.search_model_versions("name='churn'", order_by=["version_number DESC"])
    assert [(v.name, v.version) for v in versions] == [("churn", "3"), ("churn", "2"), ("churn", "1")]
    found = sorted((v.name, v.version) for v in client.search_model_versions("tags.i = '1'"))
    assert found == [("churn", "2"), ("churn-eu", "2"), ("fraud", "2")]
    assert client.search_model_versions("name='nope'") == []
    with pytest.raises(MlflowException, match="max_results") as exc:
        client.search_model_versions("name='churn'", max_results=0)
    assert _code(exc) == "INVALID_PARAMETER_VALUE"


def test_version_methods_stages_aliases_and_delete(env: Any, tmp_path: Path) -> None:
    _, client, reg_path = env
    client.create_registered_model("churn")
    f = tmp_path / "w.txt"
    for i in range(4):
        f.write_text(str(i))
        client.create_model_version("churn", str(f))
    assert client.update_model_version("churn", "1", description="first").description == "first"
    client.set_model_version_tag("churn", "1", "reviewed", "yes")
    client.set_model_version_tag("churn", "1", "gone", "x")
    client.delete_model_version_tag("churn", "1", "gone")
    assert client.get_model_version("churn", "1").tags == {"reviewed": "yes"}

    # stages: production is exclusive; archive_existing_versions archives the other staging versions
    client.transition_model_version_stage("churn", "1", "Staging")
    client.transition_model_version_stage("churn", "2", "staging", archive_existing_versions=True)
    assert client.get_model_version("churn", "1").current_stage == "Archived"
    client.transition_model_version_stage("churn", "3", "Production")
    client.transition_model_version_stage("churn", "4", "Production")
    assert client.get_model_version("churn", "3").current_stage == "Archived"
    latest = {v.current_stage: v.version for v in client.get_latest_versions("churn")}
    assert latest == {"Staging": "2", "Production": "4", "Archived": "3"}
    assert [v.version for v in client.get_latest_versions("churn", stages=["Production"])] == ["4"]
    with pytest.raises(MlflowException, match="unknown stage 'Prod'") as exc:
        client.transition_model_version_stage("churn", "1", "Prod")
    assert _code(exc) == "INVALID_PARAMETER_VALUE"

    # aliases: a stage name is renamed in modelreg and reads back as MLflow wrote it
    client.set_registered_model_alias("churn", "production", "2")
    client.set_registered_model_alias("churn", "champion", "4")
    assert client.get_model_version_by_alias("churn", "production").version == "2"
    assert client.get_registered_model("churn").aliases == {"production": "2", "champion": "4"}
    assert Registry(reg_path).get_model("churn").aliases == {"mlflow-production": 2, "champion": 4}
    client.delete_registered_model_alias("churn", "production")
    with pytest.raises(MlflowException) as exc:
        client.get_model_version_by_alias("churn", "production")
    assert _code(exc) == "RESOURCE_DOES_NOT_EXIST"

    uri = client.get_model_version_download_uri("churn", "2")
    assert uri == f"modelreg://{reg_path}#churn/2"

    # delete = purge: the number stays taken, the production holder is refused
    client.delete_model_version("churn", "1")
    with pytest.raises(MlflowException) as exc:
        client.get_model_version("churn", "1")
    assert _code(exc) == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException, match=r"modelreg: .*production") as exc:
        client.delete_model_version("churn", "4")
    reg = Registry(reg_path)
    assert [v.version for v in reg.list_versions("churn")] == [2, 3, 4]
    f.write_text("new")
    assert client.create_model_version("churn", str(f)).version == "5"
    assert reg.verify().ok

    copied = client.copy_model_version(f"models:/churn/{2}", "churn-eu")
    assert (copied.name, copied.version) == ("churn-eu", "1")
    eu = reg.get_version("churn-eu/1")
    assert eu.digest == reg.get_version("churn/2").digest and eu.lineage.parents == ["churn/2"]


def test_a_governance_refusal_reaches_mlflows_client(env: Any, tmp_path: Path) -> None:
    store, client, reg_path = env
    _log(store, "churn")
    reg = Registry(reg_path)
    reg.set_policy(
        Policy(groups={"risk": ["carla"]}, gates={"production": Gate(approvals=[{"count": 1, "group": "risk"}])})
    )
    before = reg.history("churn")
    with pytest.raises(
        MlflowException, match=r"(?s)modelreg: cannot move churn/1 .*needs 1 approval from group 'risk'"
    ) as exc:
        client.transition_model_version_stage("churn", "1", "Production")
    assert _code(exc) == "PERMISSION_DENIED"
    assert client.get_model_version("churn", "1").current_stage == "None"
    assert reg.history("churn") == before and reg.verify().ok


def test_artifact_repository_lists_downloads_and_refuses_writes(env: Any, tmp_path: Path) -> None:
    from mlflow.artifacts import download_artifacts
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    store, client, _ = env
    _log(store, "churn")
    uri = client.get_model_version_download_uri("churn", "1")
    repo = get_artifact_repository(uri)
    assert isinstance(repo, ModelregArtifactRepository)
    top = {f.path: f.is_dir for f in repo.list_artifacts()}
    assert top["MLmodel"] is False and "model.skops" in top
    assert repo.list_artifacts("MLmodel") == []
    out = tmp_path / "out"
    out.mkdir()
    one = download_artifacts("models:/churn/1/MLmodel", dst_path=str(out))
    assert Path(one).read_text().startswith("artifact_path") or "flavors" in Path(one).read_text()
    whole = Path(repo.download_artifacts("", str(out)))
    (whole / "extra.txt").write_text("writable copy")  # not the read-only snapshot
    with pytest.raises(MlflowException, match="leaves the version") as exc:
        repo.download_artifacts("../../etc", str(out))
    assert _code(exc) == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException, match="never change") as exc:
        repo.log_artifact(str(whole / "extra.txt"))
    with pytest.raises(MlflowException, match="never change"):
        repo.log_artifacts(str(whole))


def test_a_damaged_blob_is_an_mlflow_error_not_a_wrong_model(env: Any, tmp_path: Path) -> None:
    store, _, reg_path = env
    _log(store, "churn")
    reg = Registry(reg_path)
    mv = reg.get_version("churn/1")
    pkl = next(f for f in mv.artifact.files if f.path == "model.skops")
    blob = reg_path / "blobs" / "sha256" / pkl.digest[7:9] / pkl.digest[9:]
    blob.chmod(0o644)
    blob.write_bytes(b"not a model" + bytes(pkl.size - 11))
    with pytest.raises(MlflowException, match=r"modelreg: .*(digest|hash|damaged|corrupt)") as exc:
        mlflow.pyfunc.load_model("models:/churn/1")
    assert _code(exc) == "DATA_LOSS"


def test_a_bucket_registry_through_mlflow(s3_bucket: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    options = s3_bucket.storage_options
    monkeypatch.setenv("AWS_ENDPOINT_URL", options["endpoint_url"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", options["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", options["secret"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    uri = f"modelreg+{s3_bucket.url}/registry"
    with mlflow_store(tmp_path / "mlflow") as store:
        mlflow.set_registry_uri(uri)
        _log(store, "churn")
        client = MlflowClient(registry_uri=uri)
        client.set_registered_model_alias("churn", "champion", "1")
        loaded = mlflow.pyfunc.load_model("models:/churn@champion")
        assert list(loaded.predict(X[:3])) == list(_fit().predict(X[:3]))
    with Registry(f"{s3_bucket.url}/registry") as reg:
        assert reg.get_version("churn@champion").version == 1 and reg.verify().ok


def test_a_postgresql_registry_through_mlflow(postgres_dsn: str, tmp_path: Path) -> None:
    uri = f"modelreg+{postgres_dsn}?artifacts={tmp_path / 'blobs'}"
    with mlflow_store(tmp_path / "mlflow") as store:
        mlflow.set_registry_uri(uri)
        _log(store, "churn")
        _log(store, "churn", c=2.0)
        client = MlflowClient(registry_uri=uri)
        client.transition_model_version_stage("churn", "2", "Production")
        assert [v.version for v in client.get_latest_versions("churn", ["Production"])] == ["2"]
        loaded = mlflow.pyfunc.load_model("models:/churn/Production")
        assert list(loaded.predict(X[:3])) == list(_fit(2.0).predict(X[:3]))
    with Registry(f"{postgres_dsn}?artifacts={tmp_path / 'blobs'}") as reg:
        assert reg.get_version("churn@production").params == {"C": 2.0} and reg.verify().ok


def test_modelreg_save_model_folders_load_through_models_uris(env: Any) -> None:
    _, _, reg_path = env
    reg = Registry(reg_path)
    model = _fit(0.5)
    reg.save_model("scorer", model, flavor="sklearn")
    loaded = mlflow.pyfunc.load_model("models:/scorer/latest")
    assert list(loaded.predict(X[:4])) == list(model.predict(X[:4]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert MlflowClient().get_latest_versions("scorer")[0].version == "1"


def test_the_mlflow_client_example(tmp_path: Path) -> None:
    from tests.test_examples import run_example

    out = run_example("mlflow_client.py", tmp_path)
    assert re.search(r"MLflow registered churn version 1; models:/churn@champion predicts \[[01] [01] [01]\]", out)
    assert re.search(r"modelreg: churn/1 params=\{'C': 0.5\} metrics=\{'accuracy': 0\.\d+\} run=[0-9a-f]{32}", out)
    assert "  audit: register by " in out and "  audit: transition by " in out and out.endswith("verify: ok\n")
