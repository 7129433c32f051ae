"""The local API of cases (``node/cases/``).

Operators (``write`` scope) open cases and work the review queue. A person reaches a case
with its reference and PIN and no token: ``POST /v1/cases/status`` and
``POST /v1/cases/withdraw`` take both in the JSON body, never in the URL, so that neither
lands in an access log or a browser's history. Those two routes read at most
``PUBLIC_BODY_BYTES``, and wrong tries are counted per reference and per client address
(``[cases]`` in node.toml).
"""

from __future__ import annotations

import re

from aiohttp import web

from hashmesh.node.api.requests import parse_add
from hashmesh.node.api.routes import ACTOR_KEY, SERVICE_KEY, read_json
from hashmesh.node.runtime.web import ApiError
from hashmesh.protocol.errors import SchemaError
from hashmesh.protocol.fields import Fields

PUBLIC_BODY_BYTES = 4_096
CASE_ID_PATTERN = re.compile(r"[0-9a-f]{24}")
LANGUAGES = ("en", "fr")  # of CaseStatus.plain_words


async def open_case(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    config = service.config
    body = await read_json(request)
    if not isinstance(body, dict):
        raise SchemaError("expected a JSON object", "body")
    review = body.pop("review", False)
    if not isinstance(review, bool):
        raise SchemaError("must be true or false", "review")
    parsed = parse_add(body, max_batch=config.cases.max_items,
                       default_list=config.lists.default, allowed_lists=config.lists.allowed,
                       limit_name="[cases] max_items")
    opened = await service.open_case(parsed.items, parsed.dist, _actor(request), review=review)
    return web.json_response(opened.as_json(), status=201,
                             headers={"Cache-Control": "no-store"})


async def case_status(request: web.Request) -> web.Response:
    reference, pin, lang = await _credentials(request)
    status = await request.app[SERVICE_KEY].case_status(reference, pin, _client(request))
    return _status_response(status.as_json(), status.plain_words(lang))


async def withdraw_case(request: web.Request) -> web.Response:
    reference, pin, lang = await _credentials(request)
    status = await request.app[SERVICE_KEY].withdraw_case(reference, pin, _client(request))
    return _status_response(status.as_json(), status.plain_words(lang))


async def pending_cases(request: web.Request) -> web.Response:
    cases = await request.app[SERVICE_KEY].pending_cases()
    return web.json_response({"cases": [case.as_json() for case in cases]})


async def approve_case(request: web.Request) -> web.Response:
    summary = await request.app[SERVICE_KEY].approve_case(_case_id(request), _actor(request))
    return web.json_response(summary.as_json())


async def reject_case(request: web.Request) -> web.Response:
    case_id = _case_id(request)
    await request.app[SERVICE_KEY].reject_case(case_id, _actor(request))
    return web.json_response({"case_id": case_id, "state": "rejected"})


def add_case_routes(app: web.Application) -> None:
    """The routes' scopes are in ``routes.ROUTE_SCOPES``; status and withdraw are public."""
    app.router.add_post("/v1/cases", open_case, name="case_open")
    app.router.add_post("/v1/cases/status", case_status, name="case_status")
    app.router.add_post("/v1/cases/withdraw", withdraw_case, name="case_withdraw")
    app.router.add_get("/v1/cases/pending", pending_cases, name="case_pending")
    app.router.add_post("/v1/cases/{case_id}/approve", approve_case, name="case_approve")
    app.router.add_post("/v1/cases/{case_id}/reject", reject_case, name="case_reject")


async def _credentials(request: web.Request) -> tuple[str, str, str]:
    fields = Fields(await read_json(request, PUBLIC_BODY_BYTES), "", frozenset(
        {"reference", "pin", "lang"}))
    reference = fields.string("reference", max_length=64)
    pin = fields.string("pin", max_length=64)
    lang = fields.choice("lang", frozenset(LANGUAGES)) if fields.has("lang") else "en"
    return reference, pin, lang


def _status_response(status: dict[str, object], words: list[str]) -> web.Response:
    return web.json_response({**status, "words": words}, headers={"Cache-Control": "no-store"})


def _case_id(request: web.Request) -> str:
    case_id = request.match_info["case_id"]
    if not CASE_ID_PATTERN.fullmatch(case_id):
        raise ApiError(400, "BAD_SCHEMA", "a case id is 24 lowercase hex characters",
                       "case_id")
    return case_id


def _actor(request: web.Request) -> str:
    return str(request.get(ACTOR_KEY, "anonymous"))


def _client(request: web.Request) -> str:
    return request.remote or "unknown"
