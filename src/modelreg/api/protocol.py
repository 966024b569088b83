"""uvicorn's HTTP protocol with Nagle's algorithm off on each connection (``TCP_NODELAY``).

A module of its own so that uvicorn can import it by name (``modelreg.api.protocol:NoDelayProtocol``)
in each worker process of ``modelreg serve --workers N``. Imported only when the server starts.

Where asyncio leaves Nagle's algorithm on (seen on some Linux VMs), a response written in two parts
(the status line and headers, then the body) waits for the client's delayed ACK: 40 ms a request.
"""

from __future__ import annotations

import socket
from typing import Any

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover - httptools is optional for uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base  # type: ignore[assignment]

__all__ = ["NAME", "NoDelayProtocol"]

NAME = "modelreg.api.protocol:NoDelayProtocol"
"""The import string uvicorn's ``http=`` option takes for :class:`NoDelayProtocol`."""


class NoDelayProtocol(_Base):
    def connection_made(self, transport: Any) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        super().connection_made(transport)
