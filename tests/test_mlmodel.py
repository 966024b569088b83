"""One model folder for MLflow and modelreg: save_model folders carry an MLmodel file that MLflow's
own loaders read, and load_model reads MLflow model folders with modelreg's safety rule. Real MLflow,
scikit-learn, XGBoost, LightGBM and ONNX; no mocks."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelreg import InvalidInputError, Registry, UnsafeModelError
from modelreg.flavors import MLMODEL_FILE

rng = np.random.default_rng(1)
X = rng.normal(size=(120, 5)).astype(np.float32)
Y = (X[:, 0] - X[:, 2] > 0).astype(np.int64)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")


def _sklearn() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=300).fit(X, Y)


def _xgboost() -> Any:
    import xgboost

    return xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(X, Y)


def _lightgbm_booster() -> Any:
    import lightgbm

    return lightgbm.train({"objective": "binary", "verbose": -1}, lightgbm.Dataset(X, Y), 5)


def _onnx() -> Any:
    from skl2onnx import to_onnx

    return to_onnx(_sklearn(), X[:1], options={"zipmap": False})


MAKERS: dict[str, Callable[[], Any]] = {
    "sklearn": _sklearn,
    "xgboost": _xgboost,
    "lightgbm": _lightgbm_booster,
    "onnx": _onnx,
}


def _native_predictions(flavor: str, model: Any) -> np.ndarray:
    if flavor == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return np.asarray(session.run(None, {session.get_inputs()[0].name: X})[0])
    return np.asarray(model.predict(X))


@pytest.mark.parametrize("flavor", sorted(MAKERS))
def test_mlflow_loads_a_save_model_folder(flavor: str, tmp_path: Path) -> None:
    import mlflow.pyfunc

    model = MAKERS[flavor]()
    reg = Registry(tmp_path / "reg")
    mv = reg.save_model("churn", model, capture=None)
    path = reg.fetch(mv.ref)
    doc = json.loads((path / MLMODEL_FILE).read_text())
    assert doc["flavors"]["python_function"]["loader_module"].startswith("mlflow.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        served = mlflow.pyfunc.load_model(str(path))
        raw = served.predict(X)
    # MLflow's onnx pyfunc answers a dict of the graph's outputs, the first being the labels
    got = np.asarray(next(iter(raw.values())) if isinstance(raw, dict) else raw).reshape(-1)
    expected = _native_predictions(flavor, model).reshape(-1)
    np.testing.assert_allclose(got.astype(float), expected.astype(float), rtol=1e-5, atol=1e-6)


def test_pytorch_and_pickled_sklearn_folders_get_no_mlmodel_they_could_not_share(tmp_path: Path) -> None:
    import torch

    reg = Registry(tmp_path / "reg")
    net = reg.save_model(
        "net",
        torch.nn.Linear(5, 2),
        options={"factory": "torch.nn:Linear", "factory_kwargs": {"in_features": 5, "out_features": 2}},
        capture=None,
    )
    assert not (reg.fetch(net.ref) / MLMODEL_FILE).exists()  # MLflow's pytorch flavor pickles modules
    joblib_mv = reg.save_model("sk", _sklearn(), options={"format": "joblib"}, capture=None)
    assert not (reg.fetch(joblib_mv.ref) / MLMODEL_FILE).exists()


def _mlflow_folder(flavor: str, tmp_path: Path, **kw: Any) -> tuple[Path, Any]:
    import mlflow.lightgbm
    import mlflow.onnx
    import mlflow.sklearn
    import mlflow.xgboost

    model = MAKERS[flavor]()
    out = tmp_path / f"mlflow-{flavor}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if flavor == "sklearn":
            mlflow.sklearn.save_model(model, out, serialization_format=kw.get("fmt", "skops"))
        else:
            getattr(mlflow, flavor).save_model(model, out)
    return out, model


@pytest.mark.parametrize("flavor", sorted(MAKERS))
def test_load_model_reads_an_mlflow_model_folder(flavor: str, tmp_path: Path) -> None:
    folder, model = _mlflow_folder(flavor, tmp_path)
    reg = Registry(tmp_path / "reg")
    mv = reg.register("churn", folder, capture=None)
    assert mv.model is None  # an MLflow folder: no modelreg-model.json
    loaded = reg.load_model(mv.ref)
    if flavor == "onnx":
        got = np.asarray(loaded.run(None, {loaded.get_inputs()[0].name: X})[0])
    else:
        got = np.asarray(loaded.predict(X))
    np.testing.assert_allclose(got, _native_predictions(flavor, model), rtol=1e-5, atol=1e-6)
    assert reg.loaded_from(loaded).ref == mv.ref  # type: ignore[union-attr]


def test_an_mlflow_pickle_needs_allow_unsafe(tmp_path: Path) -> None:
    folder, model = _mlflow_folder("sklearn", tmp_path, fmt="cloudpickle")
    reg = Registry(tmp_path / "reg")
    mv = reg.register("churn", folder, capture=None)
    with pytest.raises(UnsafeModelError, match="allow_unsafe=True"):
        reg.load_model(mv.ref)
    assert np.array_equal(reg.load_model(mv.ref, allow_unsafe=True).predict(X), model.predict(X))


def test_an_mlflow_pytorch_model_and_a_tampered_mlmodel_are_refused(tmp_path: Path) -> None:
    from modelreg.flavors import load

    folder = tmp_path / "pt"
    folder.mkdir()
    (folder / MLMODEL_FILE).write_text("flavors:\n  pytorch:\n    model_data: data\n  python_function: {}\n")
    with pytest.raises(UnsafeModelError, match="pickles the whole module"):
        load(folder)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / MLMODEL_FILE).write_text(json.dumps({"flavors": {"onnx": {"data": "../../etc/passwd"}}}))
    with pytest.raises(InvalidInputError, match="is not a path inside the model folder"):
        load(bad)
