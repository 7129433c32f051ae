"""Bounding the connections a listener holds: idle and slow clients cannot starve it.

aiohttp keeps a connection that never sends a request for an hour by default, and accepts
connections until the process runs out of file descriptors; 600 idle sockets were enough
to stop ``/healthz``. Two bounds fix that:

* ``keepalive_timeout`` (set on the runner, ``IDLE_TIMEOUT_SECONDS``): aiohttp closes a
  connection that has not delivered a complete request header within it, whether it sent
  nothing (idle) or trickles bytes (slow headers), and one idle that long between requests.
* ``ConnectionGuard``, the protocol factory a ``GuardedRunner`` hands its sites: at most
  ``max_connections`` at once, never more than the process's descriptor limit allows. A new
  connection beyond the cap evicts the one that has been silent longest, so a flood of idle
  sockets makes room for a real client instead of locking it out.

Only the standard asyncio protocol interface is used; the guard wraps aiohttp's request
handler and forwards every callback to it.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

from aiohttp import web

log = logging.getLogger("hashmesh.server")

IDLE_TIMEOUT_SECONDS = 15.0
DEFAULT_MAX_CONNECTIONS = 1024
# descriptors kept for the node's own files: SQLite, logs, peer connections, workers
RESERVED_DESCRIPTORS = 128


def connection_cap(configured: int = DEFAULT_MAX_CONNECTIONS) -> int:
    """``configured``, lowered to fit the process's open-file limit with room to spare."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(16, min(configured, soft - RESERVED_DESCRIPTORS))


class _Guarded(asyncio.Protocol):
    """One connection: aiohttp's handler, plus the time it last sent us bytes."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.BaseTransport | None = None
        self.last_data = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.guard.opened(self)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.last_data = time.monotonic()
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.closed(self)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class ConnectionGuard:
    """A protocol factory for ``loop.create_server`` that caps open connections."""

    def __init__(self, server: web.Server, max_connections: int) -> None:
        self.server = server
        self.max_connections = max_connections
        self.open: dict[_Guarded, None] = {}  # insertion-ordered set
        self.evicted = 0

    def __call__(self) -> asyncio.Protocol:
        return _Guarded(self, self.server())

    def opened(self, conn: _Guarded) -> None:
        if len(self.open) >= self.max_connections:
            self._evict()
        self.open[conn] = None

    def closed(self, conn: _Guarded) -> None:
        self.open.pop(conn, None)

    def _evict(self) -> None:
        quietest = min(self.open, key=lambda c: c.last_data)
        self.open.pop(quietest)
        self.evicted += 1
        if self.evicted == 1 or self.evicted % 1000 == 0:
            log.warning("connection cap of %d reached: closed the connection silent longest "
                        "(%d closed so far)", self.max_connections, self.evicted)
        if quietest.transport is not None:
            quietest.transport.close()


class GuardedRunner(web.AppRunner):
    """An ``AppRunner`` whose sites accept connections through a ``ConnectionGuard``."""

    def __init__(self, app: web.Application, *, max_connections: int, **kwargs: Any) -> None:
        kwargs.setdefault("keepalive_timeout", IDLE_TIMEOUT_SECONDS)
        super().__init__(app, **kwargs)
        self.max_connections = max_connections
        self.guard: ConnectionGuard | None = None

    @property
    def server(self) -> Any:  # a protocol factory, as TCPSite uses it
        inner = super().server
        if inner is None:
            return None
        if self.guard is None or self.guard.server is not inner:
            self.guard = ConnectionGuard(inner, self.max_connections)
        return self.guard
