"""The optional features of modelreg (its pip extras) and the command that installs one.

``pip install "modelreg[s3]"`` is right for an install from PyPI; for a checkout installed with
``pip install -e .`` (or ``pip install .``) it would fetch the released package over it, so
:func:`install_command` reads how this copy was installed (``direct_url.json`` of its
distribution, :pep:`610`) and answers ``pip install -e "/path/to/checkout[s3]"`` there. Every
install hint of modelreg (:class:`~modelreg.errors.MissingDependencyError`) goes through it.

    >>> install_command("s3", direct_url={})
    'pip install "modelreg[s3]"'
    >>> checkout = {"url": "file:///src/modelreg", "dir_info": {"editable": True}}
    >>> install_command("ui", direct_url=checkout, cwd="/tmp")
    'pip install -e "/src/modelreg[ui]"'
    >>> install_command("ui", direct_url=checkout, cwd="/src/modelreg")
    'pip install -e ".[ui]"'

Standard library only; nothing here imports an optional dependency (``find_spec`` only).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlparse

__all__ = [
    "EXTRAS",
    "FRAMEWORK_EXTRAS",
    "extra_installed",
    "install_command",
    "localize_install_hints",
    "missing_modules",
]

EXTRAS: dict[str, tuple[str, ...]] = {
    "s3": ("s3fs",),
    "gcs": ("gcsfs",),
    "azure": ("adlfs",),
    "ui": ("starlette", "jinja2", "uvicorn", "python_multipart|multipart"),
}
"""The optional features ``modelreg[all]`` installs: extra -> the modules it provides (import names;
``a|b``: either, python-multipart was importable as ``multipart`` before 0.0.13)."""

FRAMEWORK_EXTRAS: dict[str, tuple[str, ...]] = {
    "sklearn": ("sklearn", "skops"),
    "xgboost": ("xgboost",),
    "lightgbm": ("lightgbm",),
    "onnx": ("onnx", "onnxruntime"),
    "pytorch": ("torch", "safetensors"),
    "safetensors": ("safetensors", "numpy"),
}
"""The model-framework extras of ``save_model``/``load_model`` (:mod:`modelreg.flavors`), which
``[all]`` leaves out: each pulls in a machine-learning framework your models may not need."""

_HINT = re.compile(r'pip install "modelreg\[([a-z0-9_,-]+)\]"')


def _direct_url() -> dict[str, Any]:
    """This distribution's ``direct_url.json`` (PEP 610), or {} (installed from an index, or not installed)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        text = distribution("modelreg").read_text("direct_url.json")
    except (PackageNotFoundError, OSError):
        return {}
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _local_folder(direct_url: Mapping[str, Any]) -> str | None:
    """The checkout folder of a ``pip install [-e] <folder>`` install, else None."""
    url = direct_url.get("url")
    if not isinstance(url, str) or "dir_info" not in direct_url:
        return None
    parsed = urlparse(url)
    return unquote(parsed.path) if parsed.scheme == "file" and parsed.path else None


def install_command(
    extra: str, *, direct_url: Mapping[str, Any] | None = None, cwd: str | os.PathLike[str] | None = None
) -> str:
    """The pip command that adds ``extra`` (e.g. ``"s3"``) to this installation of modelreg.

    ``direct_url`` (default: read from the installed distribution) and ``cwd`` (default: the
    current folder) are for tests."""
    info = _direct_url() if direct_url is None else direct_url
    vcs = info.get("vcs_info")
    if isinstance(vcs, dict) and isinstance(info.get("url"), str) and vcs.get("vcs"):  # pip install git+https://...
        rev = f"@{vcs['requested_revision']}" if vcs.get("requested_revision") else ""
        return f'pip install "modelreg[{extra}] @ {vcs["vcs"]}+{info["url"]}{rev}"'
    folder = _local_folder(info)
    if folder is None:
        return f'pip install "modelreg[{extra}]"'
    editable = bool((info.get("dir_info") or {}).get("editable"))
    here = os.path.abspath(os.fspath(cwd) if cwd is not None else os.getcwd())
    target = "." if os.path.abspath(folder) == here else folder
    return f'pip install {"-e " if editable else ""}"{target}[{extra}]"'


def localize_install_hints(text: str) -> str:
    """``text`` with each ``pip install "modelreg[EXTRA]"`` written as :func:`install_command` says."""
    if not _HINT.search(text):
        return text
    info = _direct_url()
    return _HINT.sub(lambda m: install_command(m.group(1), direct_url=info), text)


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported (found without importing them)."""
    modules = EXTRAS.get(extra) or FRAMEWORK_EXTRAS[extra]
    return [names.split("|")[0] for names in modules if not any(map(_findable, names.split("|")))]


def _findable(module: str) -> bool:
    import importlib.util
    import sys

    if sys.modules.get(module) is not None:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def extra_installed(extra: str) -> bool:
    """Whether every module of ``extra`` can be imported."""
    return not missing_modules(extra)
