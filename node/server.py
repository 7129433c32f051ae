"""Serving a node: open the service, bind the listener, stop cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl

from aiohttp import web

from node.app import create_app
from node.config import NodeConfig
from node.service import NodeService

log = logging.getLogger("hashmesh.server")


def tls_context(config: NodeConfig) -> ssl.SSLContext | None:
    if config.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.tls.cert, config.tls.key)
    return context


async def serve(config: NodeConfig, stop: asyncio.Event | None = None) -> None:
    """Run the node until ``stop`` is set or the process gets SIGTERM/SIGINT."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    service = await NodeService.open(config)
    app = create_app(service)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    context = tls_context(config)
    site = web.TCPSite(runner, config.listen.host, config.listen.port, ssl_context=context)
    try:
        await site.start()
        scheme = "https" if context else "http"
        log.info("hashmesh node %r (origin %s) listening on %s://%s:%d", config.name,
                 service.origin, scheme, config.listen.host, config.listen.port)
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
