"""Thin wiring: ``create_app(service) -> web.Application``."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from node.api import (
    MATCHING_KEY,
    SERVICE_KEY,
    add_routes,
    auth_middleware,
    errors_middleware,
    healthz,
)
from node.federation_api import MAX_NOTIFY_BYTES, add_federation_routes, peer_auth_middleware
from node.reload import PeersWatcher
from node.service import NodeService
from node.sync import Federation

WATCHER_KEY = web.AppKey("peers_watcher", PeersWatcher)


def create_app(service: NodeService, *, federate: bool = True) -> web.Application:
    """The node's aiohttp application; closing it closes the service.

    It serves the local API, and the peer routes too unless ``[federation.listen]`` gives
    peers a listener of their own (``create_peer_app``). With ``federate`` the node also pulls
    from and notifies its peers, and reloads the peers file on change or SIGHUP.
    """
    limits = service.config.limits
    shared = service.config.federation.listen is None
    app = web.Application(
        middlewares=([errors_middleware, peer_auth_middleware, auth_middleware] if shared
                     else [errors_middleware, auth_middleware]),
        client_max_size=max(limits.max_body_bytes, limits.max_image_bytes) + 1,
    )
    app[SERVICE_KEY] = service
    app[MATCHING_KEY] = service.matching
    add_routes(app)
    if shared:
        add_federation_routes(app)

    async def start(app: web.Application) -> None:
        await service.start_background()
        if federate:
            service.federation = Federation(service)
            await service.federation.start()
            watcher = PeersWatcher(service)
            watcher.start()
            app[WATCHER_KEY] = watcher
            _on_sighup(watcher)

    async def stop(app: web.Application) -> None:
        if WATCHER_KEY in app:
            await app[WATCHER_KEY].stop()
        if service.federation is not None:
            await service.federation.stop()
        await service.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


def create_peer_app(service: NodeService) -> web.Application:
    """The peer routes alone (``/v1/heads``, ``/v1/log``, ``/v1/notify``) and ``/healthz``,
    for ``[federation.listen]``. The app of ``create_app`` owns the service's life."""
    app = web.Application(middlewares=[errors_middleware, peer_auth_middleware],
                          client_max_size=MAX_NOTIFY_BYTES + 1)
    app[SERVICE_KEY] = service
    app[MATCHING_KEY] = service.matching
    add_federation_routes(app)
    app.router.add_get("/healthz", healthz, name="healthz")
    return app


def _on_sighup(watcher: PeersWatcher) -> None:
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, watcher.reload)
    except (NotImplementedError, RuntimeError):
        pass  # not the main thread (tests run several nodes) or no signals on this platform
