"""Train with MLflow tracking, register the model in modelreg linked to its run.

MLflow records the experiment (params, metrics, the dataset, the code version); modelreg keeps
the model version, its stage history and its audit trail. ``register(..., run=run)`` copies the
run's params, latest metrics and user tags onto the version and records the run id, the code
commit and the datasets in its lineage; ``link_back=True`` tags the MLflow run with the version.

The tracking store here is a SQLite file in the current folder (set ``MLFLOW_TRACKING_URI`` to
use your tracking server instead); the registry is the default one (``$MODELREG_URI``, else
``$MODELREG_HOME``, else ``~/.modelreg/registry``).

    pip install "modelreg[mlflow,sklearn]" && python examples/mlflow_tracking.py
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import mlflow
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from modelreg import Registry

warnings.filterwarnings("ignore", category=DeprecationWarning)  # MLflow's SQL store on SQLAlchemy 2.1


def main() -> None:
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        mlflow.set_tracking_uri(f"sqlite:///{Path('mlflow.db').resolve()}")
    mlflow.set_experiment("churn")

    X, y = make_classification(n_samples=400, n_features=8, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    params = {"n_estimators": 30, "max_depth": 4, "random_state": 0}

    with mlflow.start_run(run_name="forest", tags={"team": "retention"}) as run:
        mlflow.log_params(params)
        model = RandomForestClassifier(**params).fit(X_train, y_train)
        auc = roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])
        mlflow.log_metric("auc", auc)

        reg = Registry()
        # the model object goes to modelreg (save_model); params, metrics and tags come from the run
        mv = reg.save_model("churn", model, input_example=X_test[:2], run=run, link_back=True)

    print(f"registered {mv.ref} from MLflow run {mv.lineage.run_id}")
    print(f"  params: {mv.params}")
    print(f"  metrics: {mv.metrics}")
    print(f"  tags: {mv.tags}")
    print(f"  run url: {mv.lineage.run_url}")
    tagged = mlflow.get_run(run.info.run_id).data.tags.get("modelreg.ref")
    print(f"  the MLflow run is tagged modelreg.ref={tagged}")


if __name__ == "__main__":
    main()
