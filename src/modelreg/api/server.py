"""Run the HTTP API with uvicorn (``modelreg serve``)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import InvalidInputError, Remedy
from ..ui.server import bind, is_loopback, loopback_hosts
from .core import Settings

if TYPE_CHECKING:
    from ..registry import Registry

__all__ = ["DEFAULT_PORT", "check_startup", "serve"]

DEFAULT_PORT = 8422


def http_protocol() -> type[Any]:
    """uvicorn's HTTP protocol with Nagle's algorithm off on each connection (``TCP_NODELAY``).

    Where asyncio leaves it on (seen on some Linux VMs), a response written in two parts (the
    status line and headers, then the body) waits for the client's delayed ACK: 40 ms a request."""
    import socket

    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base  # type: ignore[assignment]

    class NoDelayProtocol(Base):
        def connection_made(self, transport: Any) -> None:
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    pass
            super().connection_made(transport)

    return NoDelayProtocol


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
) -> None:
    """Serve the API until interrupted. Prints ``modelreg serve: <location> at http://<host>:<port>/api/v1``
    once listening (``ready``, if given, is called with the port)."""
    import dataclasses

    import uvicorn

    from .app import BASE, create_app

    settings = settings or Settings()
    check_startup(registry, host, settings)
    out = out or sys.stdout
    sock = bind(host, port)
    real_port = sock.getsockname()[1]
    if settings.no_auth:  # a loopback server anyone on this machine may use: refuse DNS rebinding
        settings = dataclasses.replace(settings, allowed_hosts=tuple(loopback_hosts(host, real_port)))
    app = create_app(registry, settings)
    shown = f"[{host}]" if ":" in host else host
    mode = (" (read-only)" if settings.read_only else "") + (" (no auth)" if settings.no_auth else "")
    location = registry.uri or registry.metadata.url
    print(f"modelreg serve: {location}{mode} at http://{shown}:{real_port}{BASE}", file=out, flush=True)
    config = uvicorn.Config(app, log_level=log_level, access_log=False, server_header=False, http=http_protocol())
    server = uvicorn.Server(config)
    if ready is not None:
        ready(real_port)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
