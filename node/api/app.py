"""Thin wiring: ``create_app(service) -> web.Application``."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from hashmesh.node.api.audit import add_audit_routes
from hashmesh.node.api.cases import add_case_routes
from hashmesh.node.api.feed import add_feed_routes
from hashmesh.node.api.forward import forward_writes_middleware, install_forwarding
from hashmesh.node.api.page import add_page_routes
from hashmesh.node.api.routes import (
    MATCHING_KEY,
    SERVICE_KEY,
    add_routes,
    auth_middleware,
    errors_middleware,
    healthz,
    request_id_middleware,
)
from hashmesh.node.api.taxii import add_taxii_routes
from hashmesh.node.config.peers import PeersConfig
from hashmesh.node.federation.reload import PeersWatcher
from hashmesh.node.federation.routes import (
    FEDERATION_KEY,
    MAX_NOTIFY_BYTES,
    NODE_KEY,
    add_federation_routes,
    peer_auth_middleware,
)
from hashmesh.node.federation.sync import Federation
from hashmesh.node.service import NodeService

WATCHER_KEY = web.AppKey("peers_watcher", PeersWatcher)


def create_app(service: NodeService, *, federate: bool = True) -> web.Application:
    """The node's aiohttp application; closing it closes the service.

    It serves the local API, and the peer routes too unless ``[federation.listen]`` gives
    peers a listener of their own (``create_peer_app``). With ``federate`` the node also pulls
    from and notifies its peers, and reloads the peers file on change or SIGHUP.
    """
    limits = service.config.limits
    shared = service.config.federation.listen is None
    # writes reach the leader from any process of a PostgreSQL node; one process alone
    # always leads, and its requests skip that layer
    forwarding = [forward_writes_middleware] if service.cluster is not None else []
    app = web.Application(
        middlewares=([request_id_middleware, errors_middleware, peer_auth_middleware,
                      auth_middleware, *forwarding] if shared
                     else [request_id_middleware, errors_middleware, auth_middleware,
                           *forwarding]),
        client_max_size=max(limits.max_body_bytes, limits.max_image_bytes) + 1,
    )
    # Made here, started only with ``federate``: until then it has no links, so the push
    # hints it is given (a local write, a peer's notify) go nowhere.
    federation = service.federation = Federation(service)
    _set_keys(app, service, federation)
    install_forwarding(app)
    add_routes(app)
    add_page_routes(app, service)
    add_feed_routes(app)
    add_audit_routes(app)
    add_taxii_routes(app)
    add_case_routes(app)
    if shared:
        add_federation_routes(app)

    async def start(app: web.Application) -> None:
        async def federate_now() -> None:
            await federation.start()
            watcher = PeersWatcher(service, federation)
            watcher.start()
            app[WATCHER_KEY] = watcher
            service.peers_watcher = watcher
            _on_sighup(watcher)

        started = False

        async def lead() -> None:  # when this process (again) holds the signer lease
            nonlocal started
            if not started:
                started = True
                await federate_now()
            else:
                federation.reconcile(service.peers)

        def demote() -> None:  # lost the lease: pull from no peer (the peer routes stay)
            federation.reconcile(PeersConfig())

        if federate:  # only the process that signs federates; others when they take over
            service.on_lead, service.on_demote = lead, demote
            if service.leads:
                await lead()
        await service.start_background()

    async def stop(app: web.Application) -> None:
        if WATCHER_KEY in app:
            await app[WATCHER_KEY].stop()
        await federation.stop()
        await service.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


def create_peer_app(service: NodeService) -> web.Application:
    """The peer routes alone (``/v1/heads``, ``/v1/log``, ``/v1/bodies``, ``/v1/notify``) and
    ``/healthz``,
    for ``[federation.listen]``. The app of ``create_app`` owns the service's life."""
    if service.federation is None:
        raise RuntimeError("create_app(service) makes the federation; call it first")
    app = web.Application(middlewares=[request_id_middleware, errors_middleware,
                                       peer_auth_middleware],
                          client_max_size=MAX_NOTIFY_BYTES + 1)
    _set_keys(app, service, service.federation)
    add_federation_routes(app)
    app.router.add_get("/healthz", healthz, name="healthz")
    return app


def _set_keys(app: web.Application, service: NodeService, federation: Federation) -> None:
    app[SERVICE_KEY] = service
    app[MATCHING_KEY] = service.matching
    app[NODE_KEY] = service
    app[FEDERATION_KEY] = federation


def _on_sighup(watcher: PeersWatcher) -> None:
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, watcher.reload)
    except (NotImplementedError, RuntimeError):
        pass  # not the main thread (tests run several nodes) or no signals on this platform
