"""Writes sent to a process that does not sign are forwarded to the one that does.

A node on PostgreSQL may run several ``hashmesh run`` processes (``node/store/cluster.py``);
exactly one holds the signer lease and may sign. A client (or a load balancer) should not
have to know which: a request for a route of the ``write`` scope (``routes.ROUTE_SCOPES``:
add, revoke, feedback, and any verb added there later) that reaches a follower is sent on,
as it came (method, path, query, body, bearer token, request id), to the API URL the lease
row names, and the leader's answer is returned unchanged. This is done here, once, as a
middleware behind ``auth_middleware``, so the follower has checked the token before it sends
anything on, and no route handler knows about it.

Why forward rather than answer ``409 NOT_LEADER`` and let clients redirect: every client of
the local API (a platform's services, the CLI, the python-threatexchange extension, HMA)
would otherwise need redirect logic, and a load balancer would need to route writes by a
health check that lags a failover; a forwarded write costs one extra hop on loopback or the
LAN, and writes are rare next to matches.

Not forwarded, so that a request never loops: a request that was itself forwarded (the
``FORWARDED_HEADER``), and any write while no process holds the lease (a failover under
way: the handler's own ``409 NOT_LEADER`` says "retry"). A leader that cannot be reached is
``503 LEADER_UNREACHABLE``: whether the write was stored is then unknown only if the
connection broke after it was sent, as for any write, and the client retries (adds and
revokes of one client are not deduplicated, as on a single process).
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web

from hashmesh.node.api.routes import ROUTE_SCOPES, SERVICE_KEY, _route_name
from hashmesh.node.runtime.logs import REQUEST_ID_HEADER
from hashmesh.node.runtime.web import ApiError, Handler, read_body

log = logging.getLogger("hashmesh.api")

FORWARDED_HEADER = "X-Hashmesh-Forwarded-By"
# The headers a forwarded request keeps (hop-by-hop and length headers are aiohttp's).
KEPT_HEADERS = ("Authorization", "Content-Type", "Accept", REQUEST_ID_HEADER)
# A write of a full batch may take the leader a while under load; connecting may not.
FORWARD_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=5)


class Forwarder:
    """The HTTP client session of an app's forwarded writes, opened on first use."""

    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None

    def client(self) -> aiohttp.ClientSession:
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=FORWARD_TIMEOUT)
        return self.session

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


FORWARDER_KEY = web.AppKey("forwarder", Forwarder)


def install_forwarding(app: web.Application) -> None:
    """Make ``forward_writes_middleware`` (in the app's middlewares) work for ``app``."""
    forwarder = app[FORWARDER_KEY] = Forwarder()

    async def close(_app: web.Application) -> None:
        await forwarder.close()

    app.on_cleanup.append(close)


@web.middleware
async def forward_writes_middleware(request: web.Request,
                                    handler: Handler) -> web.StreamResponse:
    """Send a write that reached a follower to the leader, and return its answer."""
    if ROUTE_SCOPES.get(_route_name(request)) != "write":
        return await handler(request)
    service = request.app[SERVICE_KEY]
    if service.cluster is None or service.leads or FORWARDED_HEADER in request.headers:
        return await handler(request)
    leader = await asyncio.to_thread(service.cluster.leader)
    if leader is None or leader == service.cluster.holder:
        return await handler(request)  # no leader now: the handler answers NOT_LEADER
    body = await read_body(request, service.config.limits.max_body_bytes)
    headers = {name: request.headers[name] for name in KEPT_HEADERS if name in request.headers}
    headers[FORWARDED_HEADER] = service.cluster.holder
    try:
        async with request.app[FORWARDER_KEY].client().request(
                request.method, leader + request.rel_url.path_qs, data=body,
                headers=headers) as answer:
            data = await answer.read()
            return web.Response(status=answer.status, body=data, headers={
                name: answer.headers[name] for name in ("Content-Type", REQUEST_ID_HEADER)
                if name in answer.headers})
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("forwarding %s %s to the leader %s failed: %s", request.method,
                    request.path, leader, exc)
        raise ApiError(503, "LEADER_UNREACHABLE",
                       f"this process does not sign; the leader {leader} could not be reached "
                       f"({exc.__class__.__name__}); retry") from None

