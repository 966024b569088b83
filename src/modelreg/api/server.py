"""Run the HTTP API with uvicorn (``modelreg serve``)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import InvalidInputError, Remedy
from ..ui.server import bind, is_loopback, loopback_hosts
from .core import Settings

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ..registry import Registry

__all__ = [
    "APP_FACTORY",
    "DEFAULT_PORT",
    "ENV_REGISTRY",
    "ENV_SETTINGS",
    "app_from_env",
    "check_startup",
    "serve",
    "settings_from_env",
    "settings_to_env",
]

DEFAULT_PORT = 8422
APP_FACTORY = "modelreg.api.server:app_from_env"
"""The import string of the app factory the workers of ``modelreg serve --workers N`` run."""
ENV_REGISTRY = "MODELREG_API_REGISTRY"
"""The registry location :func:`app_from_env` opens (empty: the default registry)."""
ENV_SETTINGS = "MODELREG_API_SETTINGS"
"""The server settings :func:`app_from_env` uses, as :func:`settings_to_env`'s JSON."""


def http_protocol() -> type[Any]:
    """uvicorn's HTTP protocol with ``TCP_NODELAY`` on each connection (see :mod:`modelreg.api.protocol`)."""
    from .protocol import NoDelayProtocol

    return NoDelayProtocol


def settings_to_env(settings: Settings) -> str:
    """``settings`` as the JSON text :func:`app_from_env` reads from ``$MODELREG_API_SETTINGS``."""
    import dataclasses
    import json

    return json.dumps(dataclasses.asdict(settings), sort_keys=True)


def settings_from_env(text: str) -> Settings:
    """The :class:`Settings` of :func:`settings_to_env`'s text."""
    import dataclasses
    import json

    data = json.loads(text) if text.strip() else {}
    if not isinstance(data, dict):
        raise InvalidInputError(f"${ENV_SETTINGS} must hold a JSON object of server settings")
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidInputError(f"${ENV_SETTINGS} names unknown settings: {', '.join(unknown)}")
    if data.get("allowed_hosts") is not None:
        data["allowed_hosts"] = tuple(data["allowed_hosts"])
    return Settings(**data)


def app_from_env() -> Starlette:
    """The app factory each worker of ``modelreg serve --workers N`` calls (``modelreg.api.server:app_from_env``,
    uvicorn's ``factory=True``): the registry at ``$MODELREG_API_REGISTRY`` (when unset or empty, the
    default one: ``$MODELREG_URI``, else the default folder), with the settings in
    ``$MODELREG_API_SETTINGS`` (:func:`settings_to_env`'s JSON; default: :class:`Settings`'s).

    ``modelreg serve`` sets both before it starts the workers. To run workers under another process
    manager, set them and run ``uvicorn --factory modelreg.api.server:app_from_env``."""
    import os

    from ..registry import Registry
    from .app import create_app

    location = os.environ.get(ENV_REGISTRY) or None
    settings = settings_from_env(os.environ.get(ENV_SETTINGS, ""))
    return create_app(Registry(location), settings)


def check_root_path(root_path: str) -> str:
    """``root_path`` without a final slash; InvalidInputError unless it is empty or starts with ``/``."""
    root_path = root_path.strip()
    if not root_path or root_path == "/":
        return ""
    if not root_path.startswith("/") or any(c in root_path for c in "?#") or not root_path.isascii():
        raise InvalidInputError(
            f"the root path {root_path!r:.80} must be a URL path that starts with '/', e.g. /registry"
        )
    return root_path.rstrip("/")


def check_startup(registry: Registry, host: str, settings: Settings) -> None:
    """Refuse to serve without authentication beyond this machine, and with authentication but
    no token to authenticate with."""
    if settings.no_auth:
        if not is_loopback(host):
            raise InvalidInputError(
                f"--no-auth serves the registry to anyone who can reach {host}; it is refused beyond this machine",
                remedy=Remedy(
                    "serve on 127.0.0.1, or create tokens with modelreg.api.tokens.create_token",
                    "serve on --host 127.0.0.1, or drop --no-auth and create tokens with `modelreg token create`",
                ),
            )
        return
    from .tokens import list_tokens

    if not list_tokens(registry):
        raise InvalidInputError(
            "the registry has no API tokens, so no request could be authenticated",
            remedy=Remedy(
                "create one with modelreg.api.tokens.create_token(reg, 'ci', 'reader')",
                "create one with `modelreg token create --name ci --role reader`, or pass --no-auth "
                "(on 127.0.0.1 only)",
            ),
        )


def serve(
    registry: Registry,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    settings: Settings | None = None,
    log_level: str = "warning",
    out: TextIO | None = None,
    ready: Any = None,
    workers: int = 1,
    proxy_headers: bool = False,
    forwarded_allow_ips: str = "127.0.0.1,::1",
    root_path: str = "",
) -> None:
    """Serve the API until interrupted. Prints ``modelreg serve: <location> at http://<host>:<port>/api/v1``
    once listening (``ready``, if given, is called with the port).

    ``workers`` > 1 runs that many uvicorn worker processes on the one listening socket; each
    reopens the registry by its location (``registry.uri``, else the default registry) through
    :func:`app_from_env`. ``proxy_headers`` trusts ``X-Forwarded-For`` and ``X-Forwarded-Proto``
    from the addresses in ``forwarded_allow_ips`` (comma-separated, ``*`` for any); ``root_path``
    is the path prefix a reverse proxy serves the API under (and strips before forwarding)."""
    import dataclasses
    import os

    import uvicorn

    from .app import BASE, create_app
    from .protocol import NAME as HTTP_PROTOCOL

    if workers < 1:
        raise InvalidInputError(f"--workers must be 1 or more, got {workers}")
    root_path = check_root_path(root_path)
    settings = settings or Settings()
    check_startup(registry, host, settings)
    out = out or sys.stdout
    sock = bind(host, port)
    real_port = sock.getsockname()[1]
    if settings.no_auth:  # a loopback server anyone on this machine may use: refuse DNS rebinding
        settings = dataclasses.replace(settings, allowed_hosts=tuple(loopback_hosts(host, real_port)))
    shown = f"[{host}]" if ":" in host else host
    mode = (" (read-only)" if settings.read_only else "") + (" (no auth)" if settings.no_auth else "")
    mode += f" ({workers} workers)" if workers > 1 else ""
    mode += f" (behind a proxy at {root_path}{BASE})" if root_path else ""
    location = registry.uri or registry.metadata.url
    options: dict[str, Any] = {
        "log_level": log_level,
        "access_log": False,
        "server_header": False,
        "http": HTTP_PROTOCOL,
        "proxy_headers": proxy_headers,
        "forwarded_allow_ips": forwarded_allow_ips,
        "root_path": root_path,
    }
    if workers == 1:
        config = uvicorn.Config(create_app(registry, settings), **options)
    else:  # each worker process builds its own app: uvicorn imports the factory by name
        os.environ[ENV_REGISTRY] = registry.uri or ""
        os.environ[ENV_SETTINGS] = settings_to_env(settings)
        config = uvicorn.Config(APP_FACTORY, factory=True, workers=workers, **options)
    print(f"modelreg serve: {location}{mode} at http://{shown}:{real_port}{BASE}", file=out, flush=True)
    if ready is not None:
        ready(real_port)
    try:
        if workers == 1:
            uvicorn.Server(config).run(sockets=[sock])
        else:
            from uvicorn.supervisors import Multiprocess

            Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()
