"""Run the web UI with uvicorn (``modelreg ui``)."""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import TYPE_CHECKING, TextIO

from ..errors import InvalidInputError

if TYPE_CHECKING:  # pragma: no cover
    from ..registry import Registry

__all__ = ["is_loopback", "loopback_hosts", "serve"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_hosts(host: str, port: int) -> list[str]:
    """Host header values accepted when serving on loopback (guards against DNS rebinding)."""
    names = {host, "localhost", "127.0.0.1", "[::1]", "::1"}
    return sorted(names | {f"{n}:{port}" for n in names})


def bind(host: str, port: int) -> socket.socket:
    """Bind a listening socket (``port=0`` picks a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidInputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(
    registry: Registry,
    *,
    host: str = "127.0.0.1",
    port: int = 8421,
    read_only: bool = False,
    actor: str | None = None,
    log_level: str = "warning",
    out: TextIO | None = None,
) -> None:
    """Serve the UI until interrupted. Binds to loopback unless ``host`` says otherwise.

    Prints ``modelreg ui: serving <location> at http://<host>:<port>/`` once listening.
    """
    import uvicorn

    from .app import create_app

    out = out or sys.stdout
    sock = bind(host, port)
    real_port = sock.getsockname()[1]
    allowed = loopback_hosts(host, real_port) if is_loopback(host) else None
    app = create_app(registry, read_only=read_only, actor=actor, allowed_hosts=allowed)
    shown = f"[{host}]" if ":" in host else host
    mode = " (read-only)" if read_only else ""
    print(f"modelreg ui: serving {app.state.ui.location}{mode} at http://{shown}:{real_port}/", file=out, flush=True)
    if not is_loopback(host):
        print(
            "modelreg ui: WARNING: listening beyond this machine; anyone who can reach it can use the registry "
            "as you (add --read-only, or put it behind an authenticating proxy)",
            file=out,
            flush=True,
        )
    from ..api.protocol import NoDelayProtocol

    # Nagle's algorithm off on each connection: with it, a page written in two parts waited for the
    # browser's delayed ACK, 40 ms a request on a kept-alive connection
    config = uvicorn.Config(app, log_level=log_level, access_log=False, server_header=False, http=NoDelayProtocol)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
