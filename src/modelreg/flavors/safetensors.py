"""Arrays in safetensors (``model.safetensors``): a numpy array, a torch tensor, or a dict of
numpy arrays or of torch tensors (weights, embeddings...). Loading gives back the same kind of
object, keys in their saved order; safetensors holds raw tensor data only, nothing runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ..errors import IntegrityError, InvalidInputError
from ..models import ModelInfo
from .base import Flavor, Saved, base_classes, library_versions

__all__ = ["SafetensorsFlavor"]

_FILE = "model.safetensors"
_NUMPY = "numpy.ndarray"
_TORCH = "torch.Tensor"
_SINGLE = "array"
"""The key a single array is stored under."""


def _framework(value: Any) -> str | None:
    """``"numpy"`` or ``"torch"`` for an array of that framework, else None."""
    bases = base_classes(value)
    if _NUMPY in bases:
        return "numpy"
    if _TORCH in bases:
        return "torch"
    return None


class SafetensorsFlavor(Flavor):
    """numpy arrays and torch tensors, alone or in a dict, as safetensors."""

    name = "safetensors"
    extra = "safetensors"
    formats: ClassVar[dict[str, bool]] = {"safetensors": False}
    priority = 80

    def detect(self, obj: Any) -> bool:
        if isinstance(obj, dict):
            kinds = {_framework(v) for v in obj.values()}
            return bool(obj) and len(kinds) == 1 and None not in kinds and all(isinstance(k, str) for k in obj)
        return _framework(obj) is not None

    def save(self, obj: Any, folder: Path, **options: Any) -> Saved:
        """Write ``model.safetensors``."""
        self.reject_options(options, "save")
        single = not isinstance(obj, dict)
        tensors: dict[str, Any] = {_SINGLE: obj} if single else dict(obj)
        kinds = {_framework(v) for v in tensors.values()}
        if not tensors or len(kinds) != 1 or None in kinds or not all(isinstance(k, str) for k in tensors):
            raise InvalidInputError(
                "the safetensors flavor saves a numpy array, a torch tensor, or a non-empty dict with string keys "
                "of numpy arrays only or torch tensors only"
            )
        framework = kinds.pop()
        assert framework is not None
        path = str(folder / _FILE)
        if framework == "numpy":
            np = self.require("numpy")
            sn = self.require("safetensors.numpy")
            objects = [k for k, v in tensors.items() if v.dtype.hasobject]
            if objects:
                raise InvalidInputError(f"arrays of Python objects cannot be saved as safetensors: {objects}")
            sn.save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, path)
            libraries = library_versions("safetensors", "numpy")
        else:
            st = self.require("safetensors.torch")
            st.save_file({k: v.detach().contiguous() for k, v in tensors.items()}, path)
            libraries = library_versions("safetensors", "torch")
        return Saved(
            format="safetensors",
            path=_FILE,
            libraries=libraries,
            object_class=f"{framework}.{'ndarray' if framework == 'numpy' else 'Tensor'}" if single else "dict",
            options={"framework": framework, "single": single, "keys": list(tensors)},
        )

    def load(
        self, folder: Path, info: ModelInfo, *, allow_unsafe: bool = False, device: str = "cpu", **options: Any
    ) -> Any:
        """The array, tensor or dict saved (``device`` for torch tensors)."""
        self.reject_options(options, "load")
        framework = info.options.get("framework", "numpy")
        path = str(folder / info.path)
        if framework == "numpy":
            loaded = self.require("safetensors.numpy").load_file(path)
        elif framework == "torch":
            loaded = self.require("safetensors.torch").load_file(path, device=device)
        else:
            raise IntegrityError(
                f"the safetensors model names an unknown framework {framework!r}: it was tampered with"
            )
        keys = info.options.get("keys")
        order = keys if isinstance(keys, list) and sorted(keys) == sorted(loaded) else sorted(loaded)
        tensors = {k: loaded[k] for k in order}
        if info.options.get("single"):
            if list(tensors) != [_SINGLE]:
                raise IntegrityError(f"{path} should hold one array named {_SINGLE!r}: it was tampered with")
            return tensors[_SINGLE]
        return tensors
