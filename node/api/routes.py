"""The local HTTP API that a platform's own services call (aiohttp).

Authentication is ``Authorization: Bearer <token>``; the config holds only SHA-256 hashes
of tokens, and each token has scopes (``read``: match, status, records; ``write``: add,
revoke, feedback; ``metrics``: ``/metrics``, unless ``[api] public_metrics``). Every error,
whatever raised it, leaves as one JSON shape::

    {"error": {"code": "BAD_HASH_VALUE", "message": "hashes[0].value: ...", "field": "..."}}

The routes and their schemas are published at ``/v1/openapi.json`` (``node/api/openapi.py``).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from hashmesh.node.api.openapi import openapi_document
from hashmesh.node.api.requests import (
    AddRequest,
    parse_add,
    parse_feedback,
    parse_lists,
    parse_match,
    parse_policy,
    parse_revoke,
    parse_thresholds,
    read_add_fast,
)
from hashmesh.node.cases import (
    CaseAccessError,
    CaseError,
    CaseLockedError,
    CaseNotFoundError,
    CaseStateError,
)
from hashmesh.node.matching.answers import Matching
from hashmesh.node.matching.hasher import ImageError
from hashmesh.node.matching.verdicts import MAX_CORROBORATION, Policy
from hashmesh.node.runtime.logs import REQUEST_ID_HEADER, new_request_id, request_id
from hashmesh.node.runtime.metrics import labelled
from hashmesh.node.runtime.web import (
    ApiError,
    Handler,
    error_response,
    parse_query_int,
    read_body,
)
from hashmesh.node.service import ForbiddenError, NodeService, NotFoundError
from hashmesh.node.store.sqlite import StorageError, StoreError
from hashmesh.protocol import canonical
from hashmesh.protocol.errors import EncodingError, ProtocolError
from hashmesh.protocol.records import MAX_ITEMS, RECORD_ID_PATTERN, ProfileBody

log = logging.getLogger("hashmesh.api")

SERVICE_KEY = web.AppKey("service", NodeService)
# What the match routes and the middlewares use; a match worker's app has only this key.
MATCHING_KEY = web.AppKey("matching", Matching)
ACTOR_KEY = web.RequestKey("actor", str)

OFF_LOOP_BYTES = 65_536  # larger request bodies are parsed in a worker thread
MAX_THRESHOLD = 256  # no hash has more bits; each type's own maximum is checked after
# case_status and case_withdraw take a case's reference and PIN instead of a token
PUBLIC_ROUTES = frozenset({"healthz", "healthz_signer", "openapi", "case_status",
                           "case_withdraw"})
ROUTE_SCOPES = {
    "add": "write", "revoke": "write", "feedback": "write", "profile": "write",
    "match": "read", "match_image": "read", "record": "read", "status": "read",
    "evidence": "read", "index_check": "read", "metrics": "metrics",
    # node/api/feed.py and node/api/taxii.py (registered by app.py)
    "changes": "read", "taxii_discovery": "read", "taxii_root": "read",
    "taxii_collections": "read", "taxii_collection": "read", "taxii_objects": "read",
    "taxii_manifest": "read",
    # node/api/cases.py (registered by app.py)
    "case_open": "write", "case_pending": "write", "case_approve": "write",
    "case_reject": "write",
    "audit": "audit",  # node/api/audit.py: the audit trail is not every reader's
}


def classify(exc: BaseException) -> ApiError:
    """Map any exception a handler raises to the one error shape."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ProtocolError):
        return ApiError(400, exc.code, str(exc), exc.path)
    if isinstance(exc, CaseError):
        return _case_error(exc)
    if isinstance(exc, ImageError):
        return ApiError(422, ImageError.code, str(exc))
    if isinstance(exc, NotFoundError):
        return ApiError(404, exc.code, str(exc), exc.path)
    if isinstance(exc, ForbiddenError):
        return ApiError(403, exc.code, str(exc), exc.path)
    if isinstance(exc, StorageError):
        log.error("write refused: %s", exc)
        return ApiError(503, exc.code, f"{exc}; nothing was stored, retry later")
    if isinstance(exc, StoreError):  # 503 for a database that cannot be reached now
        return ApiError(getattr(exc, "http_status", 409), exc.code, str(exc))
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return ApiError(413, "BODY_TOO_LARGE", "request body exceeds the configured limit")
    if isinstance(exc, web.HTTPException):
        code = exc.reason.upper().replace(" ", "_") if exc.reason else "HTTP_ERROR"
        return ApiError(exc.status, code, exc.text or exc.reason or code)
    return ApiError(500, "INTERNAL", "internal error; see the node's log")


class RetryLaterError(ApiError):
    """429 with the ``Retry-After`` a client should wait."""

    def __init__(self, code: str, message: str, retry_after: int) -> None:
        super().__init__(429, code, message)
        self.retry_after = retry_after


def _case_error(exc: CaseError) -> ApiError:
    if isinstance(exc, CaseLockedError):
        return RetryLaterError(exc.code, str(exc), exc.retry_after_seconds)
    status = (403 if isinstance(exc, CaseAccessError) else 404
              if isinstance(exc, CaseNotFoundError) else 409
              if isinstance(exc, CaseStateError) else 400)
    return ApiError(status, exc.code, str(exc), exc.path)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: tag every log line of this request with its id, and send the id back."""
    rid = new_request_id(request.headers.get(REQUEST_ID_HEADER))
    token = request_id.set(rid)
    try:
        response = await handler(request)
        response.headers[REQUEST_ID_HEADER] = rid
        return response
    finally:
        request_id.reset(token)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[MATCHING_KEY].metrics
    route = _route_name(request)
    try:
        response = await handler(request)
    except Exception as exc:  # every error leaves in the one JSON shape
        error = classify(exc)
        if error.status >= 500:
            log.exception("unhandled error on %s %s", request.method, request.path)
        labelled(metrics.http_requests, route, str(error.status)).inc()
        headers = ({"WWW-Authenticate": "Bearer"} if error.status == 401 else
                   {"Retry-After": str(error.retry_after)}
                   if isinstance(error, RetryLaterError) else None)
        return error_response(error.status, error.code, error.message, error.field, headers)
    labelled(metrics.http_requests, route, str(response.status)).inc()
    return response


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = _route_name(request)
    config = request.app[MATCHING_KEY].config
    if (route in PUBLIC_ROUTES or route not in ROUTE_SCOPES
            or (route == "metrics" and config.public_metrics)):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "UNAUTHORIZED", "missing 'Authorization: Bearer <token>' header",
                       "Authorization")
    api_token = config.find_token(token.strip())
    if api_token is None:
        raise ApiError(401, "UNAUTHORIZED", "unknown API token", "Authorization")
    scope = ROUTE_SCOPES[route]
    if not api_token.allows(scope):
        raise ApiError(403, "FORBIDDEN", f"token {api_token.name!r} lacks the {scope!r} scope",
                       "Authorization")
    request[ACTOR_KEY] = f"token:{api_token.name}"
    return await handler(request)


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return (resource.name if resource is not None and resource.name else "unmatched")


async def read_json(request: web.Request, limit: int | None = None) -> object:
    """The request body as strict JSON, within ``limit`` bytes (default: the configured
    ``[limits] max_body_bytes``)."""
    if limit is None:
        limit = request.app[MATCHING_KEY].config.limits.max_body_bytes
    return parse_json(await read_body(request, limit))


def parse_json(body: bytes) -> object:
    try:
        return canonical.parse(body)
    except EncodingError as exc:
        raise ApiError(400, "MALFORMED_JSON", f"request body is not valid JSON: {exc.reason}",
                       "body") from None


def _actor(request: web.Request) -> str:
    return str(request.get(ACTOR_KEY, "anonymous"))


async def add_records(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    config = service.config
    body = await read_body(request, config.limits.max_body_bytes)

    def parse() -> AddRequest:
        fast = read_add_fast(body, max_batch=config.limits.max_add_items,
                             allowed_lists=config.lists.allowed)
        return fast if fast is not None else parse_add(
            parse_json(body), max_batch=config.limits.max_add_items,
            default_list=config.lists.default, allowed_lists=config.lists.allowed,
            groups=config.groups)

    # A bulk request is ~100 KB to MBs of JSON: parse it off the event loop.
    parsed = await asyncio.to_thread(parse) if len(body) > OFF_LOOP_BYTES else parse()
    records = await service.add(parsed.items, parsed.dist, _actor(request))
    return web.json_response({"records": [
        {"id": r.id, "seq": r.head.seq,
         "items": [r.id + suffix
                   for suffix in _ITEM_SUFFIXES[:len(getattr(r.body, "items", ()))]]}
        for r in records]}, status=201)


# "/0" ... "/255": an add answer names every item (a bulk add, up to 10,000 a request)
_ITEM_SUFFIXES = tuple(f"/{i}" for i in range(MAX_ITEMS))


async def revoke(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    parsed = parse_revoke(await read_json(request), max_batch=service.config.limits.max_batch)
    record = await service.revoke(parsed.targets, parsed.reason, _actor(request))
    return web.json_response({"id": record.id, "seq": record.head.seq}, status=201)


async def feedback(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    parsed = parse_feedback(await read_json(request))
    record = await service.feedback(parsed.target, parsed.verdict, parsed.note, _actor(request))
    return web.json_response({"id": record.id, "seq": record.head.seq}, status=201)


async def set_profile(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    body = ProfileBody.from_json(await read_json(request), "")
    record = await service.set_profile(body, _actor(request))
    return web.json_response({"id": record.id, "seq": record.head.seq,
                              "profile": body.to_json()}, status=201)


async def match(request: web.Request) -> web.Response:
    matching = request.app[MATCHING_KEY]
    with matching.pressure.serving():
        parsed = parse_match(await read_json(request),
                             max_batch=matching.config.limits.max_batch)
        policy = parsed.policy(matching.policy)
        answer = await matching.answer(parsed.hashes, parsed.thresholds, parsed.lists,
                                       _actor(request), policy)
        return web.json_response(answer)


async def match_image(request: web.Request) -> web.Response:
    matching = request.app[MATCHING_KEY]
    with matching.pressure.serving():
        data = await read_body(request, matching.config.limits.max_image_bytes)
        if not data:
            raise ApiError(400, "EMPTY_BODY", "send the image bytes as the request body",
                           "body")
        thresholds, lists, policy = _image_query_options(request)
        answer = await matching.match_image(data, thresholds, lists, _actor(request), policy)
        return web.json_response(answer)


def _image_query_options(request: web.Request
                         ) -> tuple[dict[str, int], frozenset[str] | None, Policy]:
    """``?threshold.pdq=40&list=ncii&policy.corroboration=3&policy.transforms=false``."""
    raw_thresholds: dict[str, object] = {}
    raw_policy: dict[str, object] = {}
    for name, value in request.query.items():
        if name.startswith("threshold."):
            raw_thresholds[name.removeprefix("threshold.")] = parse_query_int(
                value, name, 0, MAX_THRESHOLD)
        elif name == "policy.corroboration":
            raw_policy["corroboration"] = parse_query_int(value, name, 1, MAX_CORROBORATION)
        elif name == "policy.transforms":
            if value not in ("true", "false"):
                raise ApiError(400, "BAD_SCHEMA", "transforms must be true or false", name)
            raw_policy["transforms"] = value == "true"
        elif name != "list":
            raise ApiError(400, "UNKNOWN_FIELD", f"unknown query parameter {name!r}", name)
    lists = request.query.getall("list", [])
    corroboration, transforms = parse_policy(raw_policy, "policy")
    node_policy = request.app[MATCHING_KEY].policy
    return (parse_thresholds(raw_thresholds, "threshold"),
            parse_lists(list(lists), "list") if lists else None,
            node_policy.stricter(corroboration, transforms))


async def get_record(request: web.Request) -> web.Response:
    record_id = request.match_info["id"]
    if not RECORD_ID_PATTERN.fullmatch(record_id):
        raise ApiError(400, "BAD_SCHEMA", "record id must be 64 lowercase hex characters", "id")
    return web.json_response(await request.app[SERVICE_KEY].record(record_id))


async def status(request: web.Request) -> web.Response:
    return web.json_response(await request.app[SERVICE_KEY].status())


async def evidence(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    items = await service.store.read(lambda s: s.evidence())
    return web.json_response({"evidence": items})


async def index_check(request: web.Request) -> web.Response:
    """Does the match index hold exactly what the store has in force? (``verify --index``)"""
    result = await request.app[SERVICE_KEY].check_index()
    return web.json_response(result.to_json())


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def healthz_signer(request: web.Request) -> web.Response:
    """200 in the process that signs (always, for a node of one process), 503 elsewhere."""
    leads = request.app[SERVICE_KEY].leads
    return web.json_response({"signs": leads}, status=200 if leads else 503)


async def metrics(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    await service.refresh_alert_gauges()
    return web.Response(body=service.metrics.render(),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(request.app[MATCHING_KEY].config.limits))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/records", add_records, name="add")
    app.router.add_post("/v1/revocations", revoke, name="revoke")
    app.router.add_post("/v1/feedback", feedback, name="feedback")
    app.router.add_post("/v1/profile", set_profile, name="profile")
    add_match_routes(app)
    app.router.add_get("/v1/records/{id}", get_record, name="record")
    app.router.add_get("/v1/status", status, name="status")
    app.router.add_get("/v1/evidence", evidence, name="evidence")
    app.router.add_get("/v1/index/check", index_check, name="index_check")
    app.router.add_get("/v1/openapi.json", openapi, name="openapi")
    app.router.add_get("/metrics", metrics, name="metrics")


def add_match_routes(app: web.Application) -> None:
    """The routes a match worker serves too (``node/api/match_worker.py``)."""
    app.router.add_post("/v1/match", match, name="match")
    app.router.add_post("/v1/match/image", match_image, name="match_image")
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/healthz/signer", healthz_signer, name="healthz_signer")
