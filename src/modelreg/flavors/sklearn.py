"""scikit-learn estimators (pipelines included), saved with skops by default.

skops loads without unpickling: it rebuilds only the types it trusts (scikit-learn's, numpy's...)
and lists the others, which :meth:`SklearnFlavor.load` refuses unless the caller trusts them.
``format="joblib"`` or ``"pickle"`` is allowed on save, but loading those runs code from the
artifact and needs ``allow_unsafe=True``.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from ..errors import InvalidInputError, UnsafeModelError
from ..models import ColumnSpec, ModelInfo
from ._signature import describe
from .base import Flavor, Saved, library_versions, top_modules

__all__ = ["SklearnFlavor"]

_FILES = {"skops": "model.skops", "joblib": "model.joblib", "pickle": "model.pkl"}


class SklearnFlavor(Flavor):
    """scikit-learn estimators: ``skops`` (safe, the default), ``joblib`` or ``pickle`` (unsafe)."""

    name = "sklearn"
    extra = "sklearn"
    formats: ClassVar[dict[str, bool]] = {"skops": False, "joblib": True, "pickle": True}
    priority = 50  # after xgboost and lightgbm, whose scikit-learn wrappers derive from sklearn classes

    def detect(self, obj: Any) -> bool:
        return "sklearn" in top_modules(obj) and not isinstance(obj, type)

    def save(self, obj: Any, folder: Path, *, format: str = "skops", **options: Any) -> Saved:
        """Write ``model.skops`` (skops.io.dump), ``model.joblib`` or ``model.pkl``."""
        self.reject_options(options, "save")
        if format not in _FILES:
            raise InvalidInputError(f"the sklearn flavor writes format 'skops', 'joblib' or 'pickle', not {format!r}")
        path = folder / _FILES[format]
        if format == "skops":
            sio = self.require("skops.io")
            sio.dump(obj, path)
            libraries = library_versions("scikit-learn", "skops")
        elif format == "joblib":
            joblib = self.require("joblib")
            joblib.dump(obj, path)
            libraries = library_versions("scikit-learn", "joblib")
        else:
            with open(path, "wb") as f:
                pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
            libraries = library_versions("scikit-learn")
        return Saved(format=format, path=_FILES[format], libraries=libraries)

    def unsafe_reason(self, info: ModelInfo) -> str:
        return (
            f"loading a {info.format} sklearn model runs code from the artifact (a pickle can execute anything "
            "while it loads): pass allow_unsafe=True only for a model from a source you trust, or save it "
            "with format='skops' (the default), which loads without running code"
        )

    def load(
        self,
        folder: Path,
        info: ModelInfo,
        *,
        allow_unsafe: bool = False,
        trusted: Sequence[str] | None = None,
        **options: Any,
    ) -> Any:
        """The estimator. For skops, types outside skops' trusted defaults are refused unless
        listed in ``trusted`` (or ``allow_unsafe=True``)."""
        self.reject_options(options, "load")
        path = folder / info.path
        if info.format != "skops":
            self.check_unsafe(info, allow_unsafe)
            self.require("sklearn")
            if info.format == "joblib":
                return self.require("joblib").load(path)
            with open(path, "rb") as f:
                return pickle.load(f)  # allow_unsafe=True was given
        sio = self.require("skops.io")
        if isinstance(trusted, str):
            raise InvalidInputError("trusted= takes a list of type names, not one string")
        allowed = list(trusted or ())
        if not allow_unsafe:
            # one pass: skops audits the types itself while it loads (listing the untrusted types
            # first would read the whole file twice) and refuses any not trusted
            untrusted_error = self.require("skops.io.exceptions").UntrustedTypesFoundException
            try:
                return sio.load(path, trusted=allowed)
            except untrusted_error:
                pass
        untrusted: list[str] = list(sio.get_untrusted_types(file=path))
        refused = [t for t in untrusted if t not in set(allowed)]
        if refused and not allow_unsafe:
            raise UnsafeModelError(
                f"{path} holds types that skops does not trust by default: {', '.join(refused)}. Loading them can "
                f"run their code: review them, then pass trusted={refused!r} (or allow_unsafe=True for a model "
                "from a source you trust)"
            )
        return sio.load(path, trusted=untrusted)

    def predicts(self, model: Any) -> bool:
        return self.detect(model) and callable(getattr(model, "predict", None))

    def predict(self, model: Any, data: Any) -> Any:
        return model.predict(data)

    def infer_outputs(self, model: Any, example: Any) -> list[ColumnSpec]:
        if not self.predicts(model):
            return []
        return describe(model.predict(example))[1]
