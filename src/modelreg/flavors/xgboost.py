"""XGBoost models in XGBoost's own format (UBJSON by default, or JSON): a ``Booster``, or a
scikit-learn wrapper (``XGBClassifier``, ``XGBRegressor``...) rebuilt from the same file. Loading
parses data only: no code from the artifact runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ..errors import IntegrityError, InvalidInputError
from ..models import ColumnSpec, ModelInfo
from ._signature import describe
from .base import Flavor, Saved, base_classes, library_versions, top_modules

__all__ = ["XGBoostFlavor"]

_WRAPPERS = ("XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor")
"""The scikit-learn wrappers a model is rebuilt as (a subclass is rebuilt as the wrapper it derives from)."""


class XGBoostFlavor(Flavor):
    """``xgboost.Booster`` and the scikit-learn wrappers, via ``save_model`` / ``load_model``."""

    name = "xgboost"
    extra = "xgboost"
    formats: ClassVar[dict[str, bool]] = {"ubj": False, "json": False}
    priority = 10

    def detect(self, obj: Any) -> bool:
        return "xgboost" in top_modules(obj) and self._kind(obj) is not None

    @staticmethod
    def _kind(obj: Any) -> str | None:
        """``"Booster"`` or the wrapper class name ``obj`` derives from, else None."""
        bases = base_classes(obj)
        if "xgboost.core.Booster" in bases:
            return "Booster"
        for name in _WRAPPERS:
            if f"xgboost.sklearn.{name}" in bases:
                return name
        return None

    def save(self, obj: Any, folder: Path, *, format: str = "ubj", **options: Any) -> Saved:
        """Write ``model.ubj`` (or ``model.json``) with ``save_model``."""
        self.reject_options(options, "save")
        if format not in self.formats:
            raise InvalidInputError(f"the xgboost flavor writes format 'ubj' or 'json', not {format!r}")
        kind = self._kind(obj)
        if kind is None:
            raise InvalidInputError(
                f"the xgboost flavor saves a Booster or one of {', '.join(_WRAPPERS)}, not a {type(obj).__qualname__}"
            )
        name = f"model.{format}"
        obj.save_model(str(folder / name))
        libraries = library_versions("xgboost|xgboost-cpu")
        if kind != "Booster":
            libraries.update(library_versions("scikit-learn"))
        return Saved(format=format, path=name, libraries=libraries, options={"wrapper": kind})

    def load(self, folder: Path, info: ModelInfo, *, allow_unsafe: bool = False, **options: Any) -> Any:
        """The Booster, or the wrapper recorded at save, loaded with ``load_model``."""
        self.reject_options(options, "load")
        kind = info.options.get("wrapper", "Booster")
        if kind != "Booster" and kind not in _WRAPPERS:
            raise IntegrityError(f"the xgboost model names an unknown class {kind!r}: the model file was tampered with")
        xgb = self.require("xgboost")
        model = xgb.Booster() if kind == "Booster" else getattr(xgb, kind)()
        model.load_model(str(folder / info.path))
        return model

    def predicts(self, model: Any) -> bool:
        return self.detect(model)

    def predict(self, model: Any, data: Any) -> Any:
        if self._kind(model) == "Booster":
            return model.inplace_predict(data)
        return model.predict(data)

    def infer_outputs(self, model: Any, example: Any) -> list[ColumnSpec]:
        return describe(self.predict(model, example))[1]
