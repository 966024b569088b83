"""Save native model objects into a folder and load them back, safely.

A *flavor* knows one kind of object: ``sklearn`` (skops by default), ``xgboost``, ``lightgbm``,
``onnx``, ``pytorch``, ``safetensors`` (arrays) and ``files`` (a path copied in). :func:`save` writes
the model's files, ``modelreg-model.json`` (:data:`MODEL_FILE`, the :class:`~modelreg.models.ModelInfo`),
``requirements.txt`` and an optional input example; :func:`load` reads them back and refuses
anything that would run code from the folder unless ``allow_unsafe=True``.

Flavors are found through the ``modelreg.flavors`` entry-point group (the built-in ones
included), so a package adds one by declaring a :class:`Flavor` subclass there. Importing this
module imports no framework: a framework is imported when one of its objects is saved or loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import IntegrityError, InvalidInputError, ModelregError, SchemaVersionError
from ..models import ColumnSpec, ModelInfo, Signature
from ._example import STEM as EXAMPLE_STEM
from ._example import read_example, write_example
from ._signature import infer_signature
from .base import Flavor, LibraryVersionWarning, Saved, warn_drift
from .mlmodel import MLMODEL_FILE, info_from_mlmodel, write_mlmodel

__all__ = [
    "ENTRY_POINT_GROUP",
    "MLMODEL_FILE",
    "MODEL_FILE",
    "REQUIREMENTS_FILE",
    "Flavor",
    "LibraryVersionWarning",
    "Saved",
    "available_flavors",
    "detect",
    "flavor_entry_points",
    "get_flavor",
    "infer_signature",
    "load",
    "load_input_example",
    "predict",
    "read_info",
    "refresh",
    "save",
]

MODEL_FILE = "modelreg-model.json"
"""The metadata file at the root of a saved model's folder."""
REQUIREMENTS_FILE = "requirements.txt"
ENTRY_POINT_GROUP = "modelreg.flavors"
FORMAT_VERSION = 1
"""The ``"modelreg_model"`` key of :data:`MODEL_FILE`: the layout of the folder."""
_MAX_MODEL_FILE = 16 * 1024 * 1024

_BUILTIN: dict[str, str] = {
    "sklearn": "modelreg.flavors.sklearn:SklearnFlavor",
    "xgboost": "modelreg.flavors.xgboost:XGBoostFlavor",
    "lightgbm": "modelreg.flavors.lightgbm:LightGBMFlavor",
    "onnx": "modelreg.flavors.onnx:OnnxFlavor",
    "pytorch": "modelreg.flavors.pytorch:PyTorchFlavor",
    "safetensors": "modelreg.flavors.safetensors:SafetensorsFlavor",
    "files": "modelreg.flavors.files:FilesFlavor",
}
"""The built-in flavors, as declared in modelreg's entry points (used as well when modelreg runs
from a source tree that is not installed)."""

_found: dict[str, Flavor] | None = None
_broken: dict[str, str] = {}


def flavor_entry_points() -> list[metadata.EntryPoint]:
    """The entry points of the ``modelreg.flavors`` group of every installed distribution."""
    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


def refresh() -> None:
    """Forget the flavors found so far: the next call looks the entry points up again (after a
    package that declares a flavor was installed in the running process)."""
    global _found
    _found = None
    _broken.clear()


def _flavors() -> dict[str, Flavor]:
    global _found
    if _found is not None:
        return _found
    points = flavor_entry_points()
    declared = {ep.name for ep in points}
    points += [metadata.EntryPoint(n, v, ENTRY_POINT_GROUP) for n, v in _BUILTIN.items() if n not in declared]
    # a built-in name taken by another package: modelreg's own wins
    points.sort(key=lambda ep: (ep.value != _BUILTIN.get(ep.name), ep.name))
    found: dict[str, Flavor] = {}
    broken: dict[str, str] = {}
    for ep in points:
        if ep.name in found:
            continue
        try:
            loaded = ep.load()
        except Exception as e:  # a broken third-party package must not break the others
            broken[ep.name] = f"its entry point {ep.value!r} failed to load: {type(e).__name__}: {e}"
            continue
        flavor = loaded() if isinstance(loaded, type) else loaded
        if not isinstance(flavor, Flavor):
            broken[ep.name] = f"its entry point {ep.value!r} is not a modelreg.flavors.Flavor"
        elif flavor.name != ep.name:
            broken[ep.name] = f"its entry point {ep.value!r} names a flavor called {flavor.name!r}"
        else:
            found[ep.name] = flavor
            broken.pop(ep.name, None)
    _broken.clear()
    _broken.update(broken)
    _found = found
    return found


def available_flavors() -> list[str]:
    """The names of the installed flavors, sorted."""
    return sorted(_flavors())


def get_flavor(name: str) -> Flavor:
    """The flavor called ``name``; InvalidInputError if none is installed."""
    flavors = _flavors()
    if name in flavors:
        return flavors[name]
    why = f" ({_broken[name]})" if name in _broken else ""
    raise InvalidInputError(
        f"unknown flavor {name!r}{why}: the installed ones are {', '.join(sorted(flavors))}; a package adds one "
        f"by declaring it in the {ENTRY_POINT_GROUP!r} entry-point group"
    )


def _by_priority() -> list[Flavor]:
    return sorted(_flavors().values(), key=lambda f: (f.priority, f.name))


def detect(obj: Any) -> str:
    """The name of the flavor that saves ``obj``, found from its type (no framework is imported)."""
    for flavor in _by_priority():
        if flavor.detect(obj):
            return flavor.name
    raise InvalidInputError(
        f"no flavor saves a {type(obj).__module__}.{type(obj).__qualname__}: pass flavor= (one of "
        f"{', '.join(available_flavors())}), or write it to a file and save the path"
    )


def predict(model: Any, data: Any) -> Any:
    """``model``'s predictions for ``data``, for a loaded model of a tabular flavor (sklearn,
    xgboost, lightgbm, onnx): ``model.predict(data)``, ``Booster.inplace_predict`` or the first
    output of an onnxruntime session."""
    for flavor in _by_priority():
        if flavor.predicts(model):
            return flavor.predict(model, data)
    raise InvalidInputError(
        f"no uniform predict for a {type(model).__module__}.{type(model).__qualname__}: call the model itself"
    )


def _check_relative(path: str, what: str) -> PurePosixPath:
    """``path`` as a relative POSIX path with no ``..``; IntegrityError otherwise."""
    pure = PurePosixPath(path)
    if not path or "\\" in path or pure.is_absolute() or ".." in pure.parts or pure == PurePosixPath("."):
        raise IntegrityError(
            f"{what} {path!r} is not a plain relative path inside the model folder (absolute, empty or with "
            "'..'): the folder was tampered with or not written by modelreg"
        )
    if ":" in pure.parts[0]:  # a Windows drive ("C:")
        raise IntegrityError(f"{what} {path!r} names a drive: the folder was tampered with")
    return pure


def _inside(folder: Path, path: str, what: str) -> Path:
    """``folder / path`` after checking that it stays inside ``folder``, symlinks resolved."""
    target = folder / _check_relative(path, what)
    root = folder.resolve()
    resolved = target.resolve()
    if resolved != root and root not in resolved.parents:
        raise IntegrityError(
            f"{what} {path!r} resolves outside the model folder (to {resolved}) through a symlink: the folder "
            "was tampered with"
        )
    return target


def read_info(folder: str | os.PathLike[str]) -> ModelInfo:
    """The :class:`~modelreg.models.ModelInfo` of the model saved in ``folder``, validated: its
    flavor installed, its format one of that flavor's, its paths inside the folder.

    InvalidInputError for a folder without a readable :data:`MODEL_FILE`, an unknown flavor or
    format; IntegrityError for a path that leaves the folder; SchemaVersionError for a folder
    written by a newer modelreg."""
    folder = Path(folder)
    meta = _inside(folder, MODEL_FILE, "the metadata file")
    try:
        with open(meta, "rb") as f:
            raw = f.read(_MAX_MODEL_FILE + 1)
    except FileNotFoundError:
        raise InvalidInputError(f"{folder} is not a saved model: it has no {MODEL_FILE}") from None
    except IsADirectoryError:
        raise InvalidInputError(f"{meta} is a folder, not a model file") from None
    if len(raw) > _MAX_MODEL_FILE:
        raise InvalidInputError(f"{meta} is larger than {_MAX_MODEL_FILE} bytes: not a model file")
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise InvalidInputError(f"{meta} is not JSON ({e}): the file is damaged or not written by modelreg") from e
    if not isinstance(data, dict):
        raise InvalidInputError(f"{meta} holds a JSON {type(data).__name__}, not an object")
    version = data.pop("modelreg_model", None)
    if type(version) is not int:
        raise InvalidInputError(f"{meta} has no 'modelreg_model' format number: not written by modelreg")
    if version > FORMAT_VERSION:
        raise SchemaVersionError(
            f"{meta} was written by a newer modelreg (format {version}; this one reads {FORMAT_VERSION}): "
            "upgrade modelreg to load it"
        )
    try:
        info = ModelInfo.model_validate(data)
    except ValueError as e:
        raise InvalidInputError(f"{meta} is not a valid model description: {e}") from e
    flavor = get_flavor(info.flavor)
    if info.format not in flavor.formats:
        raise InvalidInputError(
            f"{meta} says format {info.format!r}, which the {info.flavor} flavor does not write (it writes "
            f"{', '.join(map(repr, flavor.formats))}): the file was tampered with"
        )
    _inside(folder, info.path, "the model path")
    example = getattr(info, "input_example", None)
    if example is not None:
        if not isinstance(example, str):
            raise InvalidInputError(f"{meta}: 'input_example' is not a file name")
        _inside(folder, example, "the input example")
    return info


def _as_signature(signature: Signature | Mapping[str, Any]) -> Signature:
    if isinstance(signature, Signature):
        return signature
    try:
        return Signature.model_validate(dict(signature))
    except ValueError as e:
        raise InvalidInputError(f"signature is not a valid Signature: {e}") from e


def _outputs(flavor: Flavor, obj: Any, example: Any) -> list[ColumnSpec]:
    """The signature's outputs (the flavor runs the model on ``example`` when that is cheap)."""
    try:
        return flavor.infer_outputs(obj, example)
    except ModelregError:
        raise
    except Exception as e:
        raise InvalidInputError(
            f"the model failed on input_example ({type(e).__name__}: {e}): pass an example it takes, or signature="
        ) from e


def _prepare(folder: Path) -> bool:
    """Make sure ``folder`` is an empty folder; whether it was created here."""
    if not folder.exists():
        folder.mkdir(parents=True)
        return True
    if not folder.is_dir():
        raise InvalidInputError(f"{folder} is not a folder: save() writes a model into an empty folder")
    if any(folder.iterdir()):
        raise InvalidInputError(f"{folder} is not empty: save() writes a model into an empty folder")
    return False


def _clear(folder: Path, created: bool) -> None:
    """Undo a failed save: remove what it wrote."""
    if created:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _pin(name: str, version: str) -> str:
    """``name==version`` without a local label (``torch 2.3.0+cpu`` pins ``torch==2.3.0``, which
    pip finds on an index)."""
    return f"{name}=={version.partition('+')[0]}"


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def save(
    obj: Any,
    folder: str | os.PathLike[str],
    *,
    flavor: str | None = None,
    input_example: Any = None,
    signature: Signature | Mapping[str, Any] | None = None,
    **options: Any,
) -> ModelInfo:
    """Save ``obj`` into ``folder`` (created, or an existing empty folder) and return its
    :class:`~modelreg.models.ModelInfo`.

    ``flavor`` defaults to :func:`detect`. ``options`` go to the flavor (``format="joblib"`` for
    sklearn, ``factory=`` for pytorch...). ``input_example`` is written as ``.npy``, ``.npz`` or
    JSON; the signature is inferred from it unless given (with the outputs, for the tabular
    flavors, from the model's predictions on it). On failure the folder is left as it was.
    """
    folder = Path(folder)
    chosen = get_flavor(flavor) if flavor is not None else get_flavor(detect(obj))
    created = _prepare(folder)
    try:
        saved = chosen.save(obj, folder, **options)
        if not isinstance(saved, Saved):
            raise TypeError(f"the {chosen.name} flavor's save() returned {saved!r}, not a Saved")
        if saved.format not in chosen.formats:
            raise TypeError(f"the {chosen.name} flavor's save() wrote format {saved.format!r}, not in its formats")
        if saved.path in (MODEL_FILE, REQUIREMENTS_FILE, MLMODEL_FILE) or saved.path.startswith(f"{EXAMPLE_STEM}."):
            raise TypeError(f"the {chosen.name} flavor's save() wrote {saved.path!r}, a name modelreg uses")
        if not _inside(folder, saved.path, "the model path").exists():
            raise TypeError(f"the {chosen.name} flavor's save() did not write its path {saved.path!r}")
        if signature is not None:
            sig: Signature | None = _as_signature(signature)
        elif input_example is not None:
            inferred = infer_signature(input_example)
            sig = Signature(kind=inferred.kind, inputs=inferred.inputs, outputs=_outputs(chosen, obj, input_example))
        else:
            sig = None
        extra: dict[str, Any] = {}
        if input_example is not None:
            extra["input_example"] = write_example(input_example, folder)
        requirements = [_pin(name, version) for name, version in saved.libraries.items()]
        cls = type(obj)
        info = ModelInfo(
            flavor=chosen.name,
            format=saved.format,
            path=saved.path,
            object_class=saved.object_class or f"{cls.__module__}.{cls.__qualname__}",
            libraries=dict(saved.libraries),
            requirements=requirements,
            unsafe=chosen.formats[saved.format],
            signature=sig,
            options=dict(saved.options),
            **extra,
        )
        (folder / REQUIREMENTS_FILE).write_text("".join(f"{r}\n" for r in requirements), encoding="utf-8")
        _write_json(folder / MODEL_FILE, {"modelreg_model": FORMAT_VERSION, **info.model_dump(mode="json")})
        write_mlmodel(folder, info)  # MLflow's loaders read the same file, where MLflow has the flavor
    except BaseException:
        _clear(folder, created)
        raise
    return info


def load(folder: str | os.PathLike[str], *, allow_unsafe: bool = False, **options: Any) -> Any:
    """The native object saved in ``folder`` by :func:`save`.

    Checks :data:`MODEL_FILE` (:func:`read_info`), warns (:class:`LibraryVersionWarning`) for each
    library installed in another version than the one that saved the model, and refuses with
    UnsafeModelError a format that runs code from the folder (pickle) unless ``allow_unsafe=True``.
    ``options`` go to the flavor (``trusted=`` for skops, ``factory=`` for pytorch...).
    """
    folder = Path(folder)
    source = MODEL_FILE
    if not (folder / MODEL_FILE).exists() and (folder / MLMODEL_FILE).is_file():
        info = info_from_mlmodel(folder)  # an MLflow model folder (imported from MLflow, say)
        source = MLMODEL_FILE
    else:
        info = read_info(folder)
    flavor = get_flavor(info.flavor)
    if not (folder / info.path).exists():
        raise IntegrityError(f"{folder} has no {info.path!r}, which {source} names: the folder is incomplete")
    warn_drift(info.flavor, info.libraries, str(folder))
    flavor.check_unsafe(info, allow_unsafe)
    return flavor.load(folder, info, allow_unsafe=allow_unsafe, **options)


def load_input_example(folder: str | os.PathLike[str]) -> Any:
    """The input example saved with the model in ``folder``, or None (read without unpickling)."""
    folder = Path(folder)
    info = read_info(folder)
    name = getattr(info, "input_example", None)
    if name is None:
        return None
    path = _inside(folder, name, "the input example")
    if not stat.S_ISREG(path.stat().st_mode):
        raise IntegrityError(f"{path} is not a file")
    return read_example(path)
