"""The audit log over the local API: ``GET /v1/audit``, scope ``audit`` of its own.

The audit trail says who did what on this node (signing, matches, freezes, cases), so it is
not for every client that may match (``read``): an operator gives it to the auditor's token
only. Pages are read oldest first after a row id, each row with the ``prev`` and ``hash`` of
the chain (``node/store/audit_chain.py``), so a client that follows ``next`` until ``more`` is
false has a whole export that ``hashmesh audit --verify`` checks offline. ``?last=N`` gives
the newest N rows instead (what ``hashmesh audit`` shows).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hashmesh.node.api.feed import parse_cursor, parse_limit
from hashmesh.node.api.routes import SERVICE_KEY
from hashmesh.node.runtime.web import ApiError

DEFAULT_LIMIT = 500
MAX_LIMIT = 5000


async def audit_rows(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    query = request.query
    for name in query:
        if name not in {"after", "limit", "last"}:
            raise ApiError(400, "UNKNOWN_FIELD", f"unknown query parameter {name!r}", name)
    if "last" in query:
        if "after" in query:
            raise ApiError(400, "BAD_SCHEMA", "last: give either 'after' or 'last'", "last")
        last = parse_limit(query.get("last"), "last", MAX_LIMIT)
        rows: list[dict[str, Any]] = await service.store.read(lambda s: s.audit_rows(last))
        rows.reverse()
        more = False
    else:
        after = parse_cursor(query.get("after"), "after")
        limit = parse_limit(query.get("limit"), "limit", MAX_LIMIT, DEFAULT_LIMIT)
        rows = await service.store.read(lambda s: s.audit_page(after, limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
    return web.json_response({
        "rows": rows, "next": str(rows[-1]["id"]) if rows else query.get("after", "0"),
        "more": more, "head": await service.audit_head()})


def add_audit_routes(app: web.Application) -> None:
    app.router.add_get("/v1/audit", audit_rows, name="audit")
