"""Thin wiring: ``create_app(service) -> web.Application``."""

from __future__ import annotations

from aiohttp import web

from node.api import SERVICE_KEY, add_routes, auth_middleware, errors_middleware
from node.service import NodeService


def create_app(service: NodeService) -> web.Application:
    """The node's aiohttp application; closing it closes the service."""
    limits = service.config.limits
    app = web.Application(
        middlewares=[errors_middleware, auth_middleware],
        client_max_size=max(limits.max_body_bytes, limits.max_image_bytes) + 1,
    )
    app[SERVICE_KEY] = service
    add_routes(app)

    async def start_background(app: web.Application) -> None:
        await service.start_background()

    async def close_service(app: web.Application) -> None:
        await service.close()

    app.on_startup.append(start_background)
    app.on_cleanup.append(close_service)
    return app
