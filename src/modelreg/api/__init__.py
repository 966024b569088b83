"""The registry over HTTP: ``modelreg serve`` serves a versioned JSON API under ``/api/v1``.

It needs the ``ui`` extra (Starlette, uvicorn): ``pip install "modelreg[ui]"``. This package
imports none of the web stack until :func:`create_app` or :func:`serve` is used, so the token
commands (``modelreg token``, :mod:`modelreg.api.tokens`) work on a bare install.

>>> from modelreg import Registry
>>> from modelreg.api import create_app
>>> app = create_app(Registry("./models"))
>>> app.routes[0].path
'/api/v1/health'

See ``docs/api-http.md`` for authentication, roles and every endpoint;
:class:`modelreg.api.client.RemoteRegistry` is a small Python client.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name in ("create_app", "serve"):
        from ..ui import require_ui_dependencies

        require_ui_dependencies()
        if name == "create_app":
            from .app import create_app

            return create_app
        from .server import serve

        return serve
    raise AttributeError(f"module 'modelreg.api' has no attribute {name!r}")
