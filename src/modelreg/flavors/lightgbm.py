"""LightGBM models in LightGBM's text format: a ``Booster``, or a scikit-learn wrapper
(``LGBMClassifier``, ``LGBMRegressor``, ``LGBMRanker``) saved through its ``booster_`` and rebuilt
around the loaded booster (its parameters, classes and objective are kept in the model file).
Loading parses text only: no code from the artifact runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from ..errors import IntegrityError, InvalidInputError
from ..models import ColumnSpec, ModelInfo
from ._signature import describe
from .base import Flavor, Saved, base_classes, library_versions, top_modules

__all__ = ["LightGBMFlavor"]

_WRAPPERS = ("LGBMClassifier", "LGBMRegressor", "LGBMRanker")
_FILE = "model.txt"


def _json_value(value: Any) -> bool:
    """Whether ``value`` comes back equal from JSON."""
    try:
        return bool(json.loads(json.dumps(value)) == value)
    except (TypeError, ValueError):
        return False


class LightGBMFlavor(Flavor):
    """``lightgbm.Booster`` and the scikit-learn wrappers, as ``model.txt``."""

    name = "lightgbm"
    extra = "lightgbm"
    formats: ClassVar[dict[str, bool]] = {"text": False}
    priority = 10

    def detect(self, obj: Any) -> bool:
        return "lightgbm" in top_modules(obj) and self._kind(obj) is not None

    @staticmethod
    def _kind(obj: Any) -> str | None:
        """``"Booster"`` or the wrapper class name ``obj`` derives from, else None."""
        bases = base_classes(obj)
        if "lightgbm.basic.Booster" in bases:
            return "Booster"
        for name in _WRAPPERS:
            if f"lightgbm.sklearn.{name}" in bases:
                return name
        return None

    def save(self, obj: Any, folder: Path, **options: Any) -> Saved:
        """Write ``model.txt`` (``Booster.save_model``); for a wrapper, its parameters (those JSON
        can hold), objective, classes and whether it was fitted with feature names go to the
        model file's options."""
        self.reject_options(options, "save")
        kind = self._kind(obj)
        if kind is None:
            raise InvalidInputError(
                f"the lightgbm flavor saves a Booster or one of {', '.join(_WRAPPERS)}, not a {type(obj).__qualname__}"
            )
        libraries = library_versions("lightgbm")
        if kind == "Booster":
            obj.save_model(str(folder / _FILE))
            return Saved(format="text", path=_FILE, libraries=libraries, options={"wrapper": kind})
        if not getattr(obj, "fitted_", False):
            raise InvalidInputError(f"the {kind} is not fitted: fit it before saving it")
        if callable(obj._objective):
            raise InvalidInputError(
                f"the {kind} has a custom objective function, which a model file cannot hold: save its booster_ "
                "and rebuild the wrapper yourself"
            )
        obj.booster_.save_model(str(folder / _FILE))
        params = obj.get_params()
        saved: dict[str, Any] = {
            "wrapper": kind,
            "params": {k: v for k, v in params.items() if _json_value(v)},
            "dropped_params": sorted(k for k, v in params.items() if not _json_value(v)),
            "objective": obj._objective,
            "feature_names": bool(obj._fitted_with_feature_names),
        }
        if kind == "LGBMClassifier":
            saved["classes"] = obj.classes_.tolist()
            saved["classes_dtype"] = str(obj.classes_.dtype)
        libraries.update(library_versions("scikit-learn", "numpy"))
        return Saved(format="text", path=_FILE, libraries=libraries, options=saved)

    def load(self, folder: Path, info: ModelInfo, *, allow_unsafe: bool = False, **options: Any) -> Any:
        """The Booster, or the wrapper recorded at save rebuilt around it."""
        self.reject_options(options, "load")
        kind = info.options.get("wrapper", "Booster")
        if kind != "Booster" and kind not in _WRAPPERS:
            raise IntegrityError(
                f"the lightgbm model names an unknown class {kind!r}: the model file was tampered with"
            )
        lgb = self.require("lightgbm")
        booster = lgb.Booster(model_file=str(folder / info.path))
        if kind == "Booster":
            return booster
        return self._rebuild(getattr(lgb, kind), booster, info.options)

    def _rebuild(self, cls: Any, booster: Any, saved: dict[str, Any]) -> Any:
        """A fitted ``cls`` around ``booster``: the attributes ``fit`` sets that predict reads."""
        params = saved.get("params", {})
        if not isinstance(params, dict):
            raise IntegrityError("the lightgbm model's params are not a JSON object: the model file was tampered with")
        model = cls(**params)
        model._Booster = booster
        model._n_features = booster.num_feature()
        model._n_features_in = booster.num_feature()
        model._objective = saved.get("objective")
        model._fitted_with_feature_names = bool(saved.get("feature_names", False))
        model._best_iteration = booster.best_iteration
        model._best_score = {}
        model._evals_result = {}
        if "classes" in saved:
            np = self.require("numpy")
            preprocessing = self.require("sklearn.preprocessing")
            classes = np.asarray(saved["classes"], dtype=saved.get("classes_dtype"))
            model._le = preprocessing.LabelEncoder().fit(classes)
            model._classes = model._le.classes_
            model._n_classes = len(model._classes)
            model._class_map = dict(zip(model._le.classes_, model._le.transform(model._le.classes_), strict=True))
        model.fitted_ = True
        return model

    def predicts(self, model: Any) -> bool:
        return self.detect(model)

    def predict(self, model: Any, data: Any) -> Any:
        return model.predict(data)

    def infer_outputs(self, model: Any, example: Any) -> list[ColumnSpec]:
        return describe(self.predict(model, example))[1]
