"""The modelreg web UI: ``modelreg ui`` serves it on 127.0.0.1.

Install it with ``pip install "modelreg[ui]"`` (Starlette, Jinja2, uvicorn).
This package imports none of them until :func:`create_app` or :func:`serve`
is used, so ``modelreg.ui.cli`` stays importable on a bare install.

>>> from modelreg import Registry
>>> from modelreg.ui import create_app
>>> app = create_app(Registry("./models"), read_only=True)
>>> [r.path for r in app.routes][:3]
['/', '/model/{name:path}', '/version/{ref:path}']
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["create_app", "serve"]

# import names of each dependency (python-multipart was importable as ``multipart`` before 0.0.13)
_REQUIRED: tuple[tuple[str, ...], ...] = (("starlette",), ("jinja2",), ("uvicorn",), ("python_multipart", "multipart"))


def require_ui_dependencies() -> None:
    """Raise MissingDependencyError naming the extra when a UI dependency is missing."""
    from ..errors import MissingDependencyError

    for names in _REQUIRED:
        for i, module in enumerate(names):
            try:
                importlib.import_module(module)
                break
            except ImportError as exc:
                if i == len(names) - 1:
                    raise MissingDependencyError(
                        f"the web UI needs the {names[0].replace('_', '-')!r} package, which is not installed; "
                        'install it with: pip install "modelreg[ui]"'
                    ) from exc


def __getattr__(name: str) -> Any:
    if name == "create_app":
        require_ui_dependencies()
        from .app import create_app

        return create_app
    if name == "serve":
        require_ui_dependencies()
        from .server import serve

        return serve
    raise AttributeError(f"module 'modelreg.ui' has no attribute {name!r}")
