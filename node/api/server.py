"""Serving a node: open the service, bind the listener, stop cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import signal
import socket
import ssl
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web

from hashmesh.node.api.app import create_app, create_peer_app
from hashmesh.node.api.connections import GuardedRunner, connection_cap
from hashmesh.node.api.intake import create_intake_app
from hashmesh.node.api.match_pool import MatchPool
from hashmesh.node.config.node import ListenConfig, NodeConfig
from hashmesh.node.config.toml_reader import ConfigError
from hashmesh.node.runtime.tasks import cancel_and_wait
from hashmesh.node.service import NodeService
from hashmesh.node.store.interface import hold_data_dir

log = logging.getLogger("hashmesh.server")

# CPython's default (700 allocations) runs a young-generation collection every few hundred
# objects. A sync page parses into ~100k small objects (items, hashes) that live until the
# page is stored, and those collections cost ~40% of parsing it (3.5 of 8.5 µs a hash,
# measured). The node makes few reference cycles, so collecting 100x less often is safe.
GC_THRESHOLDS = (100_000, 50, 100)


def tls_context(config: NodeConfig) -> ssl.SSLContext | None:
    if config.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.tls.cert, config.tls.key)
    return context


async def serve(config: NodeConfig, stop: asyncio.Event | None = None) -> None:
    """Run the node until ``stop`` is set or the process gets SIGTERM/SIGINT."""
    gc.set_threshold(*GC_THRESHOLDS)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if config.public_metrics and not _is_loopback(config.listen.host):
        log.warning("api.public_metrics is on and %s is not a loopback address: anyone who "
                    "reaches it can read /metrics, which names your peers", config.listen.host)
    # one node per data directory: a second one would load the same database and drift
    with hold_data_dir(config, "start another"):
        await _serve(config, stop)


async def _serve(config: NodeConfig, stop: asyncio.Event) -> None:
    service = await NodeService.open(config)
    cap = connection_cap()
    runner = GuardedRunner(create_app(service), max_connections=cap, handle_signals=False,
                           access_log=None)
    await runner.setup()
    peer_runner = (GuardedRunner(create_peer_app(service), max_connections=cap,
                                 handle_signals=False, access_log=None)
                   if config.federation.listen is not None else None)
    intake_runner = (GuardedRunner(create_intake_app(service), max_connections=cap,
                                   handle_signals=False, access_log=None)
                     if config.intake.enabled else None)
    context = tls_context(config)
    pool = (MatchPool(config, service.origin, service.metrics,
                      lambda: service.peers.origin_names())
            if config.match_workers is not None else None)
    service.worker_status = None if pool is None else pool.status
    try:
        # first: a node that answers on its port has its workers up
        if pool is not None and not await _unless_stopped(pool.start(), stop):
            return
        await _start_site(runner, config.listen, context, f"node {config.name!r} (origin "
                          f"{service.origin}) listening", "listen", config.path)
        if peer_runner is not None:
            await peer_runner.setup()
            await _start_site(peer_runner, config.peer_listen, context,
                              "listening for peers", "federation.listen", config.path)
        if intake_runner is not None:
            await intake_runner.setup()
            intake = config.intake
            await _start_site(intake_runner, ListenConfig(intake.host, intake.port), context,
                              "intake page", "intake", config.path)
        if service.federation is not None:  # peers that backed off while we were down
            service.federation.announce()
        await stop.wait()
        log.info("shutting down")
    finally:
        if pool is not None:
            await pool.stop()
        if intake_runner is not None:
            await intake_runner.cleanup()
        if peer_runner is not None:
            await peer_runner.cleanup()
        await runner.cleanup()


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def _unless_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run ``work`` unless ``stop`` is set first (SIGTERM while match workers load): then
    cancel it and return False."""
    working = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({working, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not working.done():
        await cancel_and_wait(working)
        log.info("stopped while starting")
        return False
    working.result()  # raises what the work raised
    return True


async def _start_site(runner: web.AppRunner, listen: ListenConfig,
                      context: ssl.SSLContext | None, what: str, section: str,
                      config_file: Path) -> None:
    """Bind the listener; a host or port the system refuses is reported as the config field
    that holds it (``listen.host: cannot listen on 'nosuch.invalid' (Name or service not
    known)``), not as a bare ``[Errno -2]``."""
    try:
        await web.TCPSite(runner, listen.host, listen.port, ssl_context=context).start()
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {listen.host!r} ({exc.strerror or exc})",
                          f"{section}.host", config_file) from None
    except OSError as exc:
        raise ConfigError(f"cannot listen on {listen.host}:{listen.port} "
                          f"({exc.strerror or exc})", f"{section}.port", config_file) from None
    log.info("hashmesh %s on %s://%s:%d", what, "https" if context else "http", listen.host,
             listen.port)
