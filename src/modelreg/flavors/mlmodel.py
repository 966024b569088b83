"""MLflow's ``MLmodel`` file, both ways: one model folder that MLflow and modelreg both load.

- :func:`write_mlmodel`: a folder written by :func:`modelreg.flavors.save` for a flavor MLflow
  also has gets an ``MLmodel`` file pointing MLflow's own loader at the same file, so that
  ``mlflow.pyfunc.load_model(path)`` (and ``mlflow.sklearn.load_model``...) load it:
  scikit-learn in skops (or MLflow's ``pickle``), XGBoost (UBJ or JSON), a LightGBM Booster (text)
  and ONNX. PyTorch gets none: MLflow's pytorch flavor pickles the whole module, which modelreg
  never writes (its state dict plus a factory has no MLflow equivalent).
- :func:`info_from_mlmodel`: an MLflow model folder (an ``MLmodel`` and no ``modelreg-model.json``,
  as imported from MLflow) read as a :class:`~modelreg.models.ModelInfo`, so that
  ``Registry.load_model`` loads it with modelreg's flavors and modelreg's safety rule: a pickle
  needs ``allow_unsafe=True``, and the skops types MLflow's file lists as trusted are not trusted
  (the file comes with the artifact: the caller passes ``trusted=``).

The file is written as JSON, which is YAML: MLflow reads it with ``yaml.safe_load``. Reading an
MLflow-written file (YAML) needs PyYAML, which MLflow installs.
"""

from __future__ import annotations

import json
import platform
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError, MissingDependencyError, UnsafeModelError
from ..models import ModelInfo

__all__ = ["MLMODEL_FILE", "info_from_mlmodel", "write_mlmodel"]

MLMODEL_FILE = "MLmodel"


def _flavor_conf(info: ModelInfo) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """(MLflow flavor name, its configuration, the python_function part) for ``info``, or None."""
    lib = info.libraries
    conf: dict[str, Any]
    if info.flavor == "sklearn" and info.format in ("skops", "pickle"):
        conf = {
            "code": None,
            "pickled_model": info.path,
            "serialization_format": info.format,
            "sklearn_version": lib.get("scikit-learn"),
            "skops_trusted_types": None,
        }
        return "sklearn", conf, {"loader_module": "mlflow.sklearn", "model_path": info.path, "predict_fn": "predict"}
    if info.flavor == "xgboost":
        wrapper = str(info.options.get("wrapper", "Booster"))
        model_class = "xgboost.core.Booster" if wrapper == "Booster" else f"xgboost.sklearn.{wrapper}"
        version = lib.get("xgboost") or lib.get("xgboost-cpu")
        conf = {
            "code": None,
            "data": info.path,
            "model_class": model_class,
            "model_format": info.format,
            "xgb_version": version,
        }
        return "xgboost", conf, {"loader_module": "mlflow.xgboost", "data": info.path}
    if info.flavor == "lightgbm" and info.options.get("wrapper", "Booster") == "Booster":
        conf = {
            "code": None,
            "data": info.path,
            "lgb_version": lib.get("lightgbm"),
            "model_class": "lightgbm.basic.Booster",
        }
        return "lightgbm", conf, {"loader_module": "mlflow.lightgbm", "data": info.path}
    if info.flavor == "onnx":
        conf = {
            "code": None,
            "data": info.path,
            "onnx_version": lib.get("onnx"),
            "onnx_session_options": None,
            "providers": ["CPUExecutionProvider"],
        }
        return "onnx", conf, {"loader_module": "mlflow.onnx", "data": info.path}
    return None


def write_mlmodel(folder: Path, info: ModelInfo) -> bool:
    """Write ``folder/MLmodel`` for ``info`` when MLflow has a loader for its file; whether it did."""
    found = _flavor_conf(info)
    if found is None:
        return False
    name, conf, pyfunc = found
    pyfunc["python_version"] = platform.python_version()
    doc: dict[str, Any] = {
        "flavors": {"python_function": pyfunc, name: conf},
        "model_uuid": uuid.uuid4().hex,
        "utc_time_created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f"),
        "modelreg": {"flavor": info.flavor, "format": info.format},
    }
    (folder / MLMODEL_FILE).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return True


def _read(folder: Path) -> dict[str, Any]:
    text = (folder / MLMODEL_FILE).read_text(encoding="utf-8")
    try:
        doc = json.loads(text)  # as modelreg writes it
    except ValueError:
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError:
            raise MissingDependencyError(
                f"{folder / MLMODEL_FILE} is YAML, which needs PyYAML (MLflow installs it): pip install pyyaml"
            ) from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidInputError(f"{folder / MLMODEL_FILE} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("flavors"), dict):
        raise InvalidInputError(f"{folder / MLMODEL_FILE} is not an MLflow model file (no 'flavors')")
    return doc


def _relative(value: Any, what: str, folder: Path) -> str:
    if not isinstance(value, str) or not value or value.startswith("/") or ".." in value.split("/"):
        raise InvalidInputError(f"{folder / MLMODEL_FILE}: {what} {value!r} is not a path inside the model folder")
    return value


def info_from_mlmodel(folder: Path) -> ModelInfo:
    """An MLflow model folder as a :class:`ModelInfo` that modelreg's flavors load (see the module
    docs); InvalidInputError for a flavor modelreg cannot load, UnsafeModelError's message names
    what MLflow would do for a pickled one."""
    flavors: dict[str, Any] = _read(folder)["flavors"]
    conf = flavors.get("sklearn")
    if isinstance(conf, dict):
        fmt = str(conf.get("serialization_format") or "pickle")
        path = _relative(conf.get("pickled_model"), "pickled_model", folder)
        if fmt == "cloudpickle":
            fmt = "pickle"  # read by pickle, with cloudpickle installed: unsafe either way
        lib = {"scikit-learn": str(conf["sklearn_version"])} if conf.get("sklearn_version") else {}
        return ModelInfo(flavor="sklearn", format=fmt, path=path, libraries=lib, unsafe=fmt != "skops")
    conf = flavors.get("xgboost")
    if isinstance(conf, dict):
        fmt = str(conf.get("model_format") or "xgb")
        if fmt not in ("ubj", "json"):
            raise InvalidInputError(
                f"{folder}: an MLflow XGBoost model in the {fmt!r} format; modelreg loads 'ubj' and 'json' "
                "(load it with mlflow.xgboost.load_model)"
            )
        model_class = str(conf.get("model_class") or "xgboost.core.Booster")
        wrapper = model_class.rsplit(".", 1)[-1]
        lib = {"xgboost": str(conf["xgb_version"])} if conf.get("xgb_version") else {}
        path = _relative(conf.get("data"), "data", folder)
        return ModelInfo(flavor="xgboost", format=fmt, path=path, libraries=lib, options={"wrapper": wrapper})
    conf = flavors.get("lightgbm")
    if isinstance(conf, dict):
        if conf.get("model_class") != "lightgbm.basic.Booster":
            raise UnsafeModelError(
                f"{folder}: MLflow saved this LightGBM {conf.get('model_class')} with "
                f"{conf.get('serialization_format') or 'pickle'}; modelreg loads an MLflow LightGBM Booster "
                "(text). Load it with mlflow.lightgbm.load_model for a model from a source you trust"
            )
        lib = {"lightgbm": str(conf["lgb_version"])} if conf.get("lgb_version") else {}
        path = _relative(conf.get("data"), "data", folder)
        return ModelInfo(flavor="lightgbm", format="text", path=path, libraries=lib)
    conf = flavors.get("onnx")
    if isinstance(conf, dict):
        lib = {"onnx": str(conf["onnx_version"])} if conf.get("onnx_version") else {}
        return ModelInfo(flavor="onnx", format="onnx", path=_relative(conf.get("data"), "data", folder), libraries=lib)
    if "pytorch" in flavors:
        raise UnsafeModelError(
            f"{folder}: MLflow's pytorch flavor pickles the whole module, and unpickling runs code from the "
            "artifact; load it with mlflow.pytorch.load_model for a model from a source you trust"
        )
    names = ", ".join(sorted(k for k in flavors if k != "python_function")) or "none"
    raise InvalidInputError(
        f"{folder}: modelreg cannot load MLflow flavor(s) {names}; use mlflow.pyfunc.load_model on reg.fetch(ref)"
    )
