"""Anything else that is a path: the file or folder is copied in as it is (symlinks copied as
their targets' content), and loading returns its path inside the model folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from ..errors import IntegrityError, InvalidInputError
from ..models import ModelInfo
from .base import Flavor, Saved

__all__ = ["FilesFlavor"]

_RESERVED = {"modelreg-model.json", "requirements.txt", "input_example.json", "input_example.npy", "input_example.npz"}


class FilesFlavor(Flavor):
    """A file or a folder, copied; loads as a :class:`~pathlib.Path`."""

    name = "files"
    extra = None
    formats: ClassVar[dict[str, bool]] = {"file": False, "directory": False}
    priority = 90

    def detect(self, obj: Any) -> bool:
        return isinstance(obj, (str, os.PathLike)) and os.path.exists(obj)

    def save(self, obj: Any, folder: Path, *, name: str | None = None, **options: Any) -> Saved:
        """Copy the file or folder at ``obj`` into ``folder`` as ``name`` (default: its own name)."""
        self.reject_options(options, "save")
        if not isinstance(obj, (str, os.PathLike)):
            raise InvalidInputError(f"the files flavor saves a path, not a {type(obj).__qualname__}")
        source = Path(obj)
        if not source.exists():
            raise InvalidInputError(f"{source} does not exist")
        target = name or source.resolve().name
        pure = PurePosixPath(target)
        if len(pure.parts) != 1 or target in (".", "..") or "\\" in target:
            raise InvalidInputError(f"name= must be a plain file name, not {target!r}")
        if target in _RESERVED:
            raise InvalidInputError(f"{target!r} is a name modelreg uses in the model folder: pass another name=")
        if source.is_dir():
            shutil.copytree(source, folder / target, symlinks=False)
            return Saved(format="directory", path=target, object_class="directory")
        shutil.copyfile(source, folder / target)
        return Saved(format="file", path=target, object_class="file")

    def load(self, folder: Path, info: ModelInfo, *, allow_unsafe: bool = False, **options: Any) -> Any:
        """The path of the copied file or folder; IntegrityError if a symlink in it leads outside."""
        self.reject_options(options, "load")
        path = folder / info.path
        if info.format == "directory":
            root = folder.resolve()
            for parent, dirs, files in os.walk(path):
                for entry in (*dirs, *files):
                    full = Path(parent) / entry
                    if full.is_symlink():
                        resolved = full.resolve()
                        if resolved != root and root not in resolved.parents:
                            raise IntegrityError(
                                f"{full} is a symlink to {resolved}, outside the model folder: it was tampered with"
                            )
        elif not path.is_file():
            raise IntegrityError(f"{path} is not a file: the model folder was tampered with")
        return path
