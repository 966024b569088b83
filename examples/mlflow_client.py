"""MLflow's own client on a modelreg registry: MLflow code as it is, one URI changed.

``mlflow.set_registry_uri("modelreg:///path/to/registry")`` (or ``modelreg+s3://bucket/registry``)
points MLflow's model registry at modelreg through its plugin: ``log_model(registered_model_name=...)``,
``MlflowClient`` and ``mlflow.pyfunc.load_model("models:/...")`` work unchanged, while modelreg
keeps the audit trail, verifies every download and applies its governance.

The tracking store is a SQLite file in the current folder; the registry a folder next to it.

    pip install "modelreg[mlflow,sklearn]" && python examples/mlflow_client.py
"""

from __future__ import annotations

import warnings
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from modelreg import Registry

warnings.filterwarnings("ignore", category=DeprecationWarning)  # MLflow's SQL store on SQLAlchemy 2.1
warnings.filterwarnings("ignore", category=FutureWarning)  # MLflow 3 deprecates stages, still serves them


def main() -> None:
    registry = Path("registry").resolve()
    mlflow.set_tracking_uri(f"sqlite:///{Path('mlflow.db').resolve()}")
    mlflow.set_registry_uri(f"modelreg://{registry}")  # the only line that names modelreg
    mlflow.set_experiment("churn")

    X, y = make_classification(n_samples=300, n_features=6, random_state=0)
    with mlflow.start_run():
        mlflow.log_param("C", 0.5)
        model = LogisticRegression(C=0.5).fit(X, y)
        mlflow.log_metric("accuracy", model.score(X, y))
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name="churn")

    client = MlflowClient()
    version = info.registered_model_version
    client.set_registered_model_alias("churn", "champion", str(version))
    client.transition_model_version_stage("churn", str(version), "Production")
    served = mlflow.pyfunc.load_model("models:/churn@champion")
    print(f"MLflow registered churn version {version}; models:/churn@champion predicts {served.predict(X[:3])}")

    # the same registry, seen from modelreg
    reg = Registry(registry)
    mv = reg.get_version("churn@production")
    print(f"modelreg: {mv.ref} params={mv.params} metrics={mv.metrics} run={mv.lineage.run_id}")
    for event in reg.history("churn"):
        print(f"  audit: {event.action} by {event.actor}")
    print(f"verify: {'ok' if reg.verify().ok else 'FAILED'}")


if __name__ == "__main__":
    main()
