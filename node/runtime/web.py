"""The HTTP error shape every listener shares, and the bounded body read.

The local API, the peer routes and the match workers all answer errors as one JSON shape::

    {"error": {"code": "BAD_HASH_VALUE", "message": "hashes[0].value: ...", "field": "..."}}

so the pieces that raise and write it live below all of them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A body that takes longer than this to arrive is a slow client holding a connection (and
# its buffer) open; a 20 MiB image over a slow 4 Mbit/s uplink takes ~40 s.
BODY_TIMEOUT_SECONDS = 60.0


class ApiError(Exception):
    """An error with an HTTP status, a stable code and a located message."""

    def __init__(self, status: int, code: str, message: str, field: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


# ASCII digits only: str.isdigit() also takes "²" and other Unicode digits, which int() then
# refuses (a 500); and at most 16 of them, as int() of thousands of digits is refused too
# (and slow).
QUERY_INT = re.compile(r"[0-9]{1,16}")


def parse_query_int(raw: str, name: str, minimum: int, maximum: int) -> int:
    """A query parameter as a non-negative integer within bounds, or a 400 naming it."""
    if not QUERY_INT.fullmatch(raw):
        raise ApiError(400, "BAD_SCHEMA", f"{name} must be a non-negative integer of at most "
                       f"16 ASCII digits, got {raw[:20]!r}", name)
    value = int(raw)
    if not minimum <= value <= maximum:
        raise ApiError(400, "BAD_SCHEMA", f"{name} must be between {minimum} and {maximum}, "
                       f"got {value}", name)
    return value


def error_response(status: int, code: str, message: str, field: str = "",
                   headers: dict[str, str] | None = None) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return web.json_response({"error": error}, status=status, headers=headers)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request's body, refused (413, field ``body``) as soon as it is known to exceed
    ``limit``: from ``Content-Length`` before reading, or, for a chunked body, at the first
    chunk past it; never buffered beyond ``limit`` (the app's ``client_max_size`` may be far
    larger, for another route). Read once: the body is consumed."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "BODY_TOO_LARGE",
                       f"request body of {request.content_length} bytes exceeds the limit of "
                       f"{limit}", "body")
    if request.content_length is not None and request.content.is_eof():
        return await request.read()  # all of it already arrived: no wait to bound
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_SECONDS):
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, "BODY_TOO_LARGE", f"request body exceeds the limit of "
                                   f"{limit} bytes", "body")
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(408, "BODY_TIMEOUT", f"request body did not arrive within "
                       f"{BODY_TIMEOUT_SECONDS:.0f} s", "body") from None
    return b"".join(chunks)
