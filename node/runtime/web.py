"""The HTTP error shape every listener shares, and the bounded body read.

The local API, the peer routes and the match workers all answer errors as one JSON shape::

    {"error": {"code": "BAD_HASH_VALUE", "message": "hashes[0].value: ...", "field": "..."}}

so the pieces that raise and write it live below all of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An error with an HTTP status, a stable code and a located message."""

    def __init__(self, status: int, code: str, message: str, field: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def error_response(status: int, code: str, message: str, field: str = "",
                   headers: dict[str, str] | None = None) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return web.json_response({"error": error}, status=status, headers=headers)


async def read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "BODY_TOO_LARGE",
                       f"request body of {request.content_length} bytes exceeds the limit of "
                       f"{limit}", "body")
    body = await request.read()
    if len(body) > limit:
        raise ApiError(413, "BODY_TOO_LARGE",
                       f"request body of {len(body)} bytes exceeds the limit of {limit}", "body")
    return body
