"""A real MLflow tracking store and model registry for the tracker tests: SQLite in a temporary
folder, artifacts in a local folder, MLflow's global tracking URI pointed at it for the module."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

WARNING_FILTERS = [
    # MLflow's SQL store uses a SQLAlchemy 2.1 loader option it deprecates
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
    # MLflow's model stages (transition_model_version_stage) are deprecated in MLflow 3, still supported
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


@dataclass
class Store:
    tracking_uri: str
    artifacts: Path
    experiment_id: str
    client: Any


@contextmanager
def mlflow_store(folder: Path) -> Iterator[Store]:
    import mlflow
    from mlflow.tracking import MlflowClient

    folder.mkdir(parents=True, exist_ok=True)
    old = mlflow.get_tracking_uri()
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            experiment_id = client.create_experiment("tests", artifact_location=str(folder / "artifacts"))
        yield Store(uri, folder / "artifacts", experiment_id, client)
    finally:
        mlflow.set_tracking_uri(old)
        mlflow.set_registry_uri(old)


def transition(client: Any, name: str, version: int, stage: str) -> None:
    """MLflow 3 deprecates stages (a FutureWarning) but keeps them; registries still have them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage(name, str(version), stage)
