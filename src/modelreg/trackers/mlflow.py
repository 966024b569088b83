"""The MLflow tracker adapter: ``register(..., run=mlflow_run)``.

A run is an ``mlflow.entities.Run`` or ``ActiveRun`` (``with mlflow.start_run() as run``), or a
run id (``"mlflow:<id>"``, or the bare 32-character hex id). It is read with ``MlflowClient`` on
MLflow's own tracking URI (``mlflow.get_tracking_uri()``: ``MLFLOW_TRACKING_URI`` or
``mlflow.set_tracking_uri``), fetched again so that what the run logged after it started counts.

What is taken: params (a string that is exactly a Python number becomes that number, see
:func:`~modelreg.trackers.base.plain_param`), the latest value of each metric, the tags that are
not MLflow's own (``mlflow.*``), the code (``mlflow.source.git.commit``, ``...repoURL``,
``...branch``, or Databricks Git folders' tags), the dataset inputs (URI from the dataset's
source, MLflow's digest, name and context as the role) and, under ``lineage.extra``: the tracker,
the tracking URI (without credentials), experiment id and name, run name, the ids of the logged
models the run output, and the source name.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..models import CodeVersion, Dataset
from .base import RunInfo, Tracker, keep_valid, plain_param, strip_credentials

__all__ = ["MlflowTracker", "describe_mlflow_run", "run_url"]

_RUN_ID = re.compile(r"[0-9a-f]{32}")

GIT_COMMIT = "mlflow.source.git.commit"
GIT_REPO_URL = "mlflow.source.git.repoURL"
GIT_BRANCH = "mlflow.source.git.branch"
GIT_DIRTY = "mlflow.source.git.dirty"
SOURCE_NAME = "mlflow.source.name"
USER = "mlflow.user"
RUN_NAME = "mlflow.runName"
DATABRICKS_RUN_URL = "mlflow.databricks.runURL"
DATABRICKS_GIT_COMMIT = "mlflow.databricks.gitRepoCommit"
DATABRICKS_GIT_URL = "mlflow.databricks.gitRepoUrl"
DATABRICKS_GIT_REFERENCE = "mlflow.databricks.gitRepoReference"
DATASET_CONTEXT = "mlflow.data.context"
LINK_TAG = "modelreg.ref"
LINK_REGISTRY_TAG = "modelreg.registry"


def run_url(tracking_uri: str, experiment_id: str, run_id: str, tags: dict[str, str]) -> str:
    """Where a person sees the run: the tracking server's page of it (``http(s)`` tracking URIs),
    the Databricks run URL the run carries, else MLflow's own URI ``runs:/<id>`` (a local file or
    database store has no web address; ``mlflow ui`` on that store shows it)."""
    if tags.get(DATABRICKS_RUN_URL):
        return tags[DATABRICKS_RUN_URL]
    uri = strip_credentials(tracking_uri)
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    return f"runs:/{run_id}"


def _dataset(dataset_input: Any) -> Dataset:
    ds = dataset_input.dataset
    uri = None
    try:
        source = json.loads(ds.source) if ds.source else {}
    except ValueError:
        source = {}
    if isinstance(source, dict):
        for key in ("uri", "url", "path", "table_name", "sql"):
            if isinstance(source.get(key), str) and source[key]:
                uri = source[key]
                break
    role = next((t.value for t in dataset_input.tags if t.key == DATASET_CONTEXT), None)
    return Dataset(
        uri=strip_credentials(uri) if uri else f"mlflow-dataset:{ds.name}",
        digest=ds.digest or None,
        name=ds.name or None,
        role=role or None,
    )


def describe_mlflow_run(client: Any, run_id: str, tracking_uri: str) -> RunInfo:
    """What modelreg takes from the MLflow run ``run_id`` (read with ``client``, an ``MlflowClient``)."""
    run = client.get_run(run_id)
    tags: dict[str, str] = dict(run.data.tags)
    params, dropped = keep_valid("params", {k: plain_param(v) for k, v in run.data.params.items()})
    metrics, more = keep_valid("metrics", dict(run.data.metrics))
    dropped += more
    user_tags, more = keep_valid("tags", {k: v for k, v in tags.items() if not k.startswith("mlflow.")})
    dropped += more
    commit = tags.get(GIT_COMMIT) or tags.get(DATABRICKS_GIT_COMMIT)
    repo = tags.get(GIT_REPO_URL) or tags.get(DATABRICKS_GIT_URL)
    code = None
    if commit or repo:
        dirty = tags.get(GIT_DIRTY)
        code = CodeVersion(
            commit=commit,
            repo=strip_credentials(repo) if repo else None,
            branch=tags.get(GIT_BRANCH) or tags.get(DATABRICKS_GIT_REFERENCE),
            dirty=None if dirty is None else dirty.lower() == "true",
        )
    inputs = getattr(run, "inputs", None)
    datasets = [_dataset(d) for d in (getattr(inputs, "dataset_inputs", None) or [])]
    outputs = getattr(run, "outputs", None)
    model_ids = [o.model_id for o in (getattr(outputs, "model_outputs", None) or [])]
    experiment_id = run.info.experiment_id
    extra: dict[str, Any] = {
        "tracker": "mlflow",
        "tracking_uri": strip_credentials(tracking_uri),
        "experiment_id": experiment_id,
    }
    try:
        extra["experiment_name"] = client.get_experiment(experiment_id).name
    except Exception:  # a deleted experiment, or no permission to read it: the id is enough
        pass
    if tags.get(RUN_NAME) or getattr(run.info, "run_name", None):
        extra["run_name"] = tags.get(RUN_NAME) or run.info.run_name
    if model_ids:
        extra["model_ids"] = model_ids
    if tags.get(SOURCE_NAME):
        extra["source_name"] = tags[SOURCE_NAME]
    if dropped:
        extra["not_carried"] = dropped
    return RunInfo(
        tracker="mlflow",
        run_id=run.info.run_id,
        run_url=run_url(tracking_uri, experiment_id, run.info.run_id, tags),
        params=params,
        metrics=metrics,
        tags=user_tags,
        code=code,
        datasets=datasets,
        user=tags.get(USER) or getattr(run.info, "user_id", None) or None,
        extra=extra,
    )


class MlflowTracker(Tracker):
    """MLflow runs: ``Run``/``ActiveRun`` objects, ``"mlflow:<run id>"`` or a bare run id."""

    name = "mlflow"

    def accepts(self, run: Any) -> bool:
        if isinstance(run, str):
            return run.startswith("mlflow:") or bool(_RUN_ID.fullmatch(run))
        return type(run).__module__.startswith("mlflow.") and hasattr(getattr(run, "info", None), "run_id")

    def _run_id(self, run: Any) -> str:
        if isinstance(run, str):
            return run.removeprefix("mlflow:").removeprefix("runs:/").strip("/")
        return str(run.info.run_id)

    def _client(self) -> tuple[Any, str]:
        import mlflow
        from mlflow.tracking import MlflowClient

        uri = mlflow.get_tracking_uri()
        return MlflowClient(tracking_uri=uri), uri

    def describe(self, run: Any) -> RunInfo:
        client, uri = self._client()
        return describe_mlflow_run(client, self._run_id(run), uri)

    def link_back(self, run: Any, info: RunInfo, ref: str, registry_url: str | None) -> None:
        client, _ = self._client()
        client.set_tag(info.run_id, LINK_TAG, ref)
        if registry_url:
            client.set_tag(info.run_id, LINK_REGISTRY_TAG, registry_url)
