"""PyTorch models.

- An ``nn.Module`` is saved as its state dict in safetensors (``model.safetensors``) together with
  the import path of a *factory*, a function that builds the module (``factory=`` on save: the
  function or ``"package.module:function"``, with JSON ``factory_kwargs``). Loading builds the
  module with the factory and fills in the weights. The factory named in the model file is only
  called when the caller confirms it (``factory=`` on load) or passes ``allow_unsafe=True``: a
  tampered file could name any importable function.
- A ``torch.export.ExportedProgram`` is saved with ``torch.export.save`` (``model.pt2``).
  ``torch.export.load`` unpickles parts of the archive (it falls back to ``torch.load`` with
  ``weights_only=False`` and calls ``pickle.loads`` on constants), so that format is unsafe:
  loading needs ``allow_unsafe=True``.

A whole module is never pickled (``torch.save``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from ..errors import IntegrityError, InvalidInputError, UnsafeModelError
from ..models import ModelInfo
from .base import Flavor, Saved, base_classes, import_path, library_versions, resolve_import_path

__all__ = ["PyTorchFlavor"]

_MODULE = "torch.nn.modules.module.Module"
_EXPORTED = "torch.export.exported_program.ExportedProgram"


class PyTorchFlavor(Flavor):
    """``nn.Module`` (safetensors weights plus a factory) and ``ExportedProgram`` (``.pt2``, unsafe)."""

    name = "pytorch"
    extra = "pytorch"
    formats: ClassVar[dict[str, bool]] = {"safetensors": False, "pt2": True}
    priority = 20

    def detect(self, obj: Any) -> bool:
        bases = base_classes(obj)
        return _MODULE in bases or _EXPORTED in bases

    def save(
        self,
        obj: Any,
        folder: Path,
        *,
        factory: Callable[..., Any] | str | None = None,
        factory_kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Saved:
        """Write ``model.safetensors`` (a module, with ``factory``) or ``model.pt2`` (an
        ExportedProgram)."""
        self.reject_options(options, "save")
        bases = base_classes(obj)
        torch = self.require("torch")
        if _EXPORTED in bases:
            if factory is not None:
                raise InvalidInputError("an ExportedProgram needs no factory: it holds its graph")
            torch.export.save(obj, str(folder / "model.pt2"))
            return Saved(format="pt2", path="model.pt2", libraries=library_versions("torch"))
        if _MODULE not in bases:
            raise InvalidInputError(
                f"the pytorch flavor saves an nn.Module or an ExportedProgram, not a {type(obj).__qualname__}"
            )
        if factory is None:
            raise InvalidInputError(
                "saving an nn.Module needs factory=: a function that builds the module (importable, e.g. "
                "'mypackage.models:make_net', with factory_kwargs=), so that loading fills in the weights without "
                "unpickling code; or save torch.export.export(module, args) instead"
            )
        path = import_path(factory)
        kwargs = dict(factory_kwargs or {})
        try:
            if json.loads(json.dumps(kwargs)) != kwargs:
                raise ValueError("not the same after a JSON round trip")
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"factory_kwargs must be JSON data (strings, numbers, lists, dicts): {e}") from e
        st = self.require("safetensors.torch")
        st.save_model(obj, str(folder / "model.safetensors"))
        return Saved(
            format="safetensors",
            path="model.safetensors",
            libraries=library_versions("torch", "safetensors"),
            options={"factory": path, "factory_kwargs": kwargs, "training": bool(obj.training)},
        )

    def unsafe_reason(self, info: ModelInfo) -> str:
        return (
            "loading a torch.export program (.pt2) runs pickle code from the artifact (torch.export.load unpickles "
            "its constants and falls back to torch.load(weights_only=False)): pass allow_unsafe=True only for a "
            "model from a source you trust, or save the module's weights with factory= (safetensors)"
        )

    def load(
        self,
        folder: Path,
        info: ModelInfo,
        *,
        allow_unsafe: bool = False,
        factory: Callable[..., Any] | str | None = None,
        factory_kwargs: Mapping[str, Any] | None = None,
        device: str = "cpu",
        strict: bool = True,
        **options: Any,
    ) -> Any:
        """The module built by the factory with the saved weights (in the saved train/eval mode),
        or the ExportedProgram (``allow_unsafe=True`` only)."""
        self.reject_options(options, "load")
        path = folder / info.path
        if info.format == "pt2":
            self.check_unsafe(info, allow_unsafe)
            return self.require("torch").export.load(str(path))
        torch = self.require("torch")
        st = self.require("safetensors.torch")
        stored = info.options.get("factory")
        stored_kwargs = info.options.get("factory_kwargs") or {}
        if not isinstance(stored_kwargs, dict):
            raise IntegrityError(
                "the pytorch model's factory_kwargs are not a JSON object: the model file was tampered"
            )
        if factory is None:
            if not isinstance(stored, str):
                raise IntegrityError("the pytorch model names no factory: pass factory= to build the module")
            if not allow_unsafe:
                raise UnsafeModelError(
                    f"loading calls the factory the model file names, {stored!r} (with {stored_kwargs}): a tampered "
                    f"file could name any function. Pass factory={stored!r} (or the function itself) to confirm "
                    "you trust it, or allow_unsafe=True for a model from a source you trust"
                )
            factory = stored
        build = resolve_import_path(factory) if isinstance(factory, str) else factory
        kwargs = dict(factory_kwargs) if factory_kwargs is not None else stored_kwargs
        module = _on_meta_device(torch, st, build, kwargs, path, device)
        if module is None:
            module = build(**kwargs)
            if not isinstance(module, torch.nn.Module):
                raise InvalidInputError(f"the factory returned a {type(module).__qualname__}, not an nn.Module")
            st.load_model(module, str(path), strict=strict, device=device)
        module.train(bool(info.options.get("training", False)))
        return module


def _on_meta_device(
    torch: Any, st: Any, build: Callable[..., Any], kwargs: Mapping[str, Any], path: Path, device: str
) -> Any:
    """The module built on PyTorch's meta device (no memory, no random initialisation of weights
    that the state dict replaces at once) with the saved tensors assigned in place, or None when
    that does not give a complete module: the factory fails on the meta device, a tensor is left
    without a saved value (a tied weight saved once, a buffer the state dict does not hold), or a
    key does not match. The caller then builds it the ordinary way, whose errors it reports."""
    try:
        with torch.device("meta"):
            module = build(**kwargs)
        if not isinstance(module, torch.nn.Module):
            return None
        state = st.load_file(str(path), device=device)
        missing, unexpected = module.load_state_dict(state, strict=False, assign=True)
        tensors = [*module.parameters(), *module.buffers()]
    except Exception:  # anything the meta device cannot do: the ordinary way decides
        return None
    if missing or unexpected or any(t.is_meta for t in tensors):
        return None
    return module
