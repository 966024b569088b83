"""Run linkage with a real MLflow tracking store (SQLite in tmp_path): register(run=...) takes the
run's params, latest metrics, user tags, code and datasets; link_back tags the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest

from modelreg import Registry
from modelreg.errors import InvalidInputError
from modelreg.trackers import available_trackers, find_tracker, plain_param
from modelreg.trackers.mlflow import MlflowTracker

from .mlflow_support import WARNING_FILTERS, Store, mlflow_store
from .test_examples import run_example

pytestmark = WARNING_FILTERS


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with mlflow_store(tmp_path_factory.mktemp("mlflow")) as s:
        yield s


@pytest.fixture
def reg(tmp_path: Path) -> Iterator[Registry]:
    with Registry(tmp_path / "registry", actor="tester") as r:
        yield r


def _model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.bin"
    path.write_bytes(b"weights" * 10)
    return path


def _dataset() -> Any:
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    return MetaDataset(source=HTTPDatasetSource("https://data.example.com/train.csv"), name="train", digest="d1g3st")


def test_register_with_an_active_run_takes_params_metrics_tags_code_and_data(
    store: Store, reg: Registry, tmp_path: Path
) -> None:
    tags = {
        "team": "fraud",
        "owner": "ana",
        "mlflow.user": "ana",
        "mlflow.source.git.commit": "0123456789abcdef0123456789abcdef01234567",
        "mlflow.source.git.repoURL": "https://bot:s3cret@github.com/acme/churn.git",
        "mlflow.source.git.branch": "main",
    }
    with mlflow.start_run(experiment_id=store.experiment_id, run_name="baseline", tags=tags) as run:
        mlflow.log_params({"n_estimators": 100, "learning_rate": 0.1, "optimizer": "adam", "code": "007"})
        mlflow.log_metric("auc", 0.80, step=0)
        mlflow.log_metric("auc", 0.91, step=1)
        mlflow.log_metric("loss", 0.3)
        mlflow.log_input(_dataset(), context="training")
        mv = reg.register(
            "churn", _model_file(tmp_path), run=run, tags={"owner": "bo"}, metrics={"loss": 0.25}, link_back=True
        )
    assert mv.params == {"n_estimators": 100, "learning_rate": 0.1, "optimizer": "adam", "code": "007"}
    assert mv.metrics == {"auc": 0.91, "loss": 0.25}  # the latest value; explicit arguments win
    assert mv.tags == {"team": "fraud", "owner": "bo"}  # MLflow's own mlflow.* tags are left out
    lineage = mv.lineage
    assert lineage.run_id == run.info.run_id
    assert lineage.run_url == f"runs:/{run.info.run_id}"
    assert lineage.code is not None
    assert lineage.code.commit == tags["mlflow.source.git.commit"]
    assert lineage.code.repo == "https://github.com/acme/churn.git"  # no credentials kept
    assert lineage.code.branch == "main"
    assert [(d.uri, d.name, d.digest, d.role) for d in lineage.datasets] == [
        ("https://data.example.com/train.csv", "train", "d1g3st", "training")
    ]
    assert lineage.extra["tracker"] == "mlflow"
    assert lineage.extra["tracking_uri"] == store.tracking_uri
    assert lineage.extra["experiment_id"] == store.experiment_id
    assert lineage.extra["experiment_name"] == "tests"
    assert lineage.extra["run_name"] == "baseline"
    # link_back: the run names the version
    assert store.client.get_run(run.info.run_id).data.tags["modelreg.ref"] == "churn/1"
    assert store.client.get_run(run.info.run_id).data.tags["modelreg.registry"] == str(reg.uri)
    # searchable like any version
    assert [v.ref for v in reg.search(f"lineage.run_id = '{run.info.run_id}'")] == ["churn/1"]


def test_a_run_id_an_explicit_lineage_and_save_model(store: Store, reg: Registry, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    with mlflow.start_run(
        experiment_id=store.experiment_id, tags={"mlflow.source.git.commit": "aaaa", "stage": "dev"}
    ) as run:
        mlflow.log_param("C", "1.5")
        mlflow.log_metric("acc", 0.7)
    run_id = run.info.run_id
    # after the run ended, by id (bare, or "mlflow:<id>"); an explicit lineage field wins
    mv = reg.register("a", _model_file(tmp_path), run=run_id, lineage={"code": {"commit": "bbbb"}, "extra": {"k": 1}})
    assert (mv.params, mv.metrics, mv.tags) == ({"C": 1.5}, {"acc": 0.7}, {"stage": "dev"})
    assert mv.lineage.code is not None and mv.lineage.code.commit == "bbbb"
    assert mv.lineage.extra["k"] == 1 and mv.lineage.extra["tracker"] == "mlflow"
    mv2 = reg.register("a", _model_file(tmp_path), run=f"mlflow:{run_id}", params={"C": 2})
    assert mv2.params == {"C": 2} and mv2.lineage.run_id == run_id
    # save_model forwards run and link_back to register
    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    mv3 = reg.save_model("clf", model, run=run_id, link_back=True)
    assert mv3.lineage.run_id == run_id and mv3.metrics == {"acc": 0.7}
    assert store.client.get_run(run_id).data.tags["modelreg.ref"] == "clf/1"


def test_unknown_runs_and_link_back_without_a_run_are_refused(reg: Registry, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no tracker adapter recognises"):
        reg.register("a", _model_file(tmp_path), run=object())
    with pytest.raises(InvalidInputError, match="pass run="):
        reg.register("a", _model_file(tmp_path), link_back=True)
    assert reg.list_models() == []


def test_trackers_come_from_the_entry_point_group() -> None:
    assert {"mlflow", "wandb"} <= set(available_trackers())
    assert isinstance(find_tracker("mlflow:0123"), MlflowTracker)
    assert isinstance(find_tracker("0123456789abcdef0123456789abcdef"), MlflowTracker)
    assert find_tracker("wandb:acme/churn/abc").name == "wandb"


@pytest.mark.parametrize(
    ("text", "value"),
    [("100", 100), ("0.1", 0.1), ("1e-05", 1e-05), ("-3", -3), ("007", "007"), ("1.50", "1.50"), ("True", "True")],
)
def test_mlflow_string_params_become_numbers_only_when_exact(text: str, value: Any) -> None:
    assert plain_param(text) == value and type(plain_param(text)) is type(value)


def test_mlflow_tracking_example_runs(tmp_path: Path) -> None:
    out = run_example("mlflow_tracking.py", tmp_path)
    assert "registered churn/1 from MLflow run" in out
    assert "params: " in out and "n_estimators" in out


def test_modelreg_does_not_import_trackers_until_a_run_is_passed(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys, modelreg\n"
        "from modelreg import Registry\n"
        "from modelreg.cli import build_parser\n"
        "open('m.bin', 'wb').write(b'x')\n"
        "with Registry('registry') as reg:\n"
        "    reg.register('a', 'm.bin')\n"
        "build_parser()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mlflow', 'wandb')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
