"""The :class:`Flavor` base class, what a flavor's ``save`` returns (:class:`Saved`) and the helpers
flavors share. Standard library only: a framework is imported by the flavor that needs it, when an
object of that framework is saved or loaded (:meth:`Flavor.require`)."""

from __future__ import annotations

import functools
import importlib
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

from ..errors import InvalidInputError, MissingDependencyError, UnsafeModelError
from ..models import ColumnSpec, ModelInfo

__all__ = [
    "Flavor",
    "LibraryVersionWarning",
    "Saved",
    "base_classes",
    "import_path",
    "library_versions",
    "resolve_import_path",
    "top_modules",
]


class LibraryVersionWarning(UserWarning):
    """A model is loaded with another version of a library than the one that saved it."""


@dataclass(frozen=True)
class Saved:
    """The :class:`~modelreg.models.ModelInfo` fields a flavor's ``save`` fills in.

    ``path`` is the file or folder written, relative to the model folder (POSIX); ``libraries``
    maps the distributions needed to load it to their installed versions
    (:func:`library_versions`); ``options`` is JSON data the flavor's ``load`` reads back.
    ``object_class`` defaults to the saved object's ``module.QualifiedName``.
    """

    format: str
    path: str
    libraries: dict[str, str] = field(default_factory=dict)
    object_class: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


class Flavor:
    """How one kind of model object is saved into a folder and loaded back.

    A third party subclasses it, sets the class attributes, implements :meth:`detect`,
    :meth:`save` and :meth:`load` (and :meth:`predict` for a uniform ``predict``), and declares
    the class in the ``modelreg.flavors`` entry-point group under its ``name``.

    ``formats`` maps each format the flavor writes to whether loading it can run code from the
    artifact (pickle): :func:`modelreg.flavors.load` refuses those without ``allow_unsafe=True``.
    ``priority`` orders detection (lower first: a specific flavor before a generic one; the
    built-ins use 10 to 90, third-party flavors default to 0).
    """

    name: ClassVar[str] = ""
    extra: ClassVar[str | None] = None
    """The pip extra of modelreg that installs the framework (None: nothing to install)."""
    formats: ClassVar[Mapping[str, bool]] = {}
    priority: ClassVar[int] = 0

    def detect(self, obj: Any) -> bool:
        """Whether this flavor saves ``obj``. Must not import a framework that is not imported
        yet (an object of a framework means the framework is imported): look at the type's
        modules (:func:`top_modules`, :func:`base_classes`)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement detect()")

    def save(self, obj: Any, folder: Path, **options: Any) -> Saved:
        """Write ``obj`` into ``folder`` (an empty folder) and say what was written."""
        raise NotImplementedError(f"{type(self).__name__} does not implement save()")

    def load(self, folder: Path, info: ModelInfo, *, allow_unsafe: bool = False, **options: Any) -> Any:
        """The native object saved in ``folder`` as ``info`` describes it (``info.path`` is
        checked to lie inside ``folder``). Never runs code from the artifact unless
        ``allow_unsafe``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement load()")

    def predicts(self, model: Any) -> bool:
        """Whether :meth:`predict` takes ``model`` (a loaded native object)."""
        return False

    def predict(self, model: Any, data: Any) -> Any:
        """The model's predictions for ``data``."""
        raise InvalidInputError(f"the {self.name} flavor has no uniform predict: call the native object")

    def infer_outputs(self, model: Any, example: Any) -> list[ColumnSpec]:
        """The outputs part of the signature, when it is cheap to know ([] otherwise)."""
        return []

    def unsafe_reason(self, info: ModelInfo) -> str:
        """Why loading a model in ``info.format`` is refused without ``allow_unsafe=True``."""
        return (
            f"loading a {self.name} model in the {info.format!r} format runs code from the artifact: pass "
            "allow_unsafe=True only for a model from a source you trust"
        )

    # helpers for subclasses

    def require(self, module: str) -> Any:
        """Import ``module``, or raise MissingDependencyError naming the pip extra to install."""
        try:
            return importlib.import_module(module)
        except ImportError as e:
            missing = (e.name or module).partition(".")[0]  # what failed: the module or one it imports
            hint = f'pip install "modelreg[{self.extra}]"' if self.extra else f"pip install {missing}"
            raise MissingDependencyError(
                f"the {self.name} flavor needs {missing}, which is not installed: {hint}"
            ) from e

    def check_unsafe(self, info: ModelInfo, allow_unsafe: bool) -> None:
        """Raise UnsafeModelError when ``info`` is in a format that runs code at load and
        ``allow_unsafe`` is False."""
        if (self.formats.get(info.format, True) or info.unsafe) and not allow_unsafe:
            raise UnsafeModelError(self.unsafe_reason(info))

    def reject_options(self, options: Mapping[str, Any], action: str) -> None:
        """Raise InvalidInputError for options this flavor does not know."""
        if options:
            raise InvalidInputError(
                f"the {self.name} flavor's {action} takes no option {', '.join(map(repr, sorted(options)))}"
            )


def top_modules(obj: Any) -> set[str]:
    """The top-level packages of the classes ``type(obj)`` derives from (``{"sklearn", "builtins"}``)."""
    return {c.__module__.partition(".")[0] for c in type(obj).__mro__}


def base_classes(obj: Any) -> set[str]:
    """``module.Name`` of every class ``type(obj)`` derives from."""
    return {f"{c.__module__}.{c.__qualname__}" for c in type(obj).__mro__}


def library_versions(*names: str) -> dict[str, str]:
    """The installed version of each distribution in ``names``; ``"a|b"`` takes the first of the
    alternatives that is installed (``"xgboost|xgboost-cpu"``); one not installed is left out."""
    found: dict[str, str] = {}
    for name in names:
        for candidate in name.split("|"):
            version = _installed_version(candidate)
            if version is not None:
                found[candidate] = version
                break
    return found


@functools.cache
def _installed_version(distribution: str) -> str | None:
    """The installed version of a distribution, read once per process (reading a distribution's
    metadata parses its METADATA file: about a millisecond, on every save and load otherwise)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


_IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def import_path(obj: Any) -> str:
    """``"package.module:qualified.name"`` of an importable function or class; InvalidInputError
    for a lambda, a nested function or one defined in ``__main__`` (not importable elsewhere)."""
    if isinstance(obj, str):
        resolve_import_path(obj)
        return obj
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname or module == "__main__":
        raise InvalidInputError(
            f"{obj!r} cannot be imported by another process (a lambda, a nested function or one defined in "
            "__main__): define it at the top level of a module and pass it, or its 'package.module:name'"
        )
    path = f"{module}:{qualname}"
    if resolve_import_path(path) is not obj:
        raise InvalidInputError(f"{path!r} does not import as {obj!r}: pass an importable 'package.module:name'")
    return path


def resolve_import_path(path: str) -> Any:
    """The object ``"package.module:qualified.name"`` names (imports the module)."""
    if not _IMPORT_PATH.match(path):
        raise InvalidInputError(f"{path!r} is not an import path: write it 'package.module:name'")
    module_name, _, qualname = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise InvalidInputError(f"cannot import {path!r}: {e}") from e
    return obj


def warn_drift(flavor: str, saved: Mapping[str, str], where: str) -> None:
    """Warn (LibraryVersionWarning) for each library in ``saved`` installed in another version."""
    for name, version in saved.items():
        installed = _installed_version(name)
        if installed is None:
            continue  # loading needs it: the flavor's import names the extra
        if installed != version:
            warnings.warn(
                f"the {flavor} model in {where} was saved with {name} {version}; {installed} is installed: "
                f"it may load differently or not at all (pip install '{name}=={version}' to match)",
                LibraryVersionWarning,
                stacklevel=3,
            )
