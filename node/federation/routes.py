"""The node-to-node HTTP routes: heads, log pages and push hints.

Every request must carry an RFC 9421 signature by the ``node_key`` of a configured peer
(``node/federation/httpsig.py``); anything else gets 401 and changes nothing. Log pages are
``application/x-ndjson``: one exact signed envelope per line, so records travel byte for
byte. A record whose body the requesting peer may not receive (``node/federation/policy.py``)
is sent as its stub.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from hashmesh.node.config.node import NodeConfig
from hashmesh.node.config.peers import PeerConfig
from hashmesh.node.federation.httpsig import (
    RequestVerifier,
    SignatureError,
    aiohttp_request_parts,
    url_parts,
)
from hashmesh.node.federation.interface import LocalNode
from hashmesh.node.federation.policy import RecordScope, may_send_body
from hashmesh.node.federation.sync import Federation
from hashmesh.node.runtime.web import ApiError, Handler, parse_query_int, read_body
from hashmesh.node.store.interface import NodeStore
from hashmesh.protocol.fields import Fields
from hashmesh.protocol.keys import PublicKey
from hashmesh.protocol.records import MAX_RECORD_BYTES, SignedRecord

log = logging.getLogger("hashmesh.federation")

PEER_KEY = web.RequestKey("peer", PeerConfig)
NODE_KEY = web.AppKey("node", LocalNode)
FEDERATION_KEY = web.AppKey("federation", Federation)
VERIFIER_KEY = web.AppKey("verifier", RequestVerifier)
FEDERATION_ROUTES = frozenset({"heads", "log", "notify"})
NDJSON = "application/x-ndjson"
MAX_SEQ = 2**53 - 1
MAX_NOTIFY_BYTES = 65_536


@web.middleware
async def peer_auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Admit federation requests only with a valid signature by a configured peer."""
    resource = request.match_info.route.resource
    if resource is None or resource.name not in FEDERATION_ROUTES:
        return await handler(request)
    body = await read_body(request, MAX_NOTIFY_BYTES)
    method, authority, path, query = aiohttp_request_parts(request)
    try:
        verified = request.app[VERIFIER_KEY].verify(
            method=method, authority=authority, path=path, query=query,
            headers=request.headers, body=body)
    except SignatureError as exc:
        log.warning("refused %s %s from %s: %s", request.method, request.path, request.remote,
                    exc)
        request.app[NODE_KEY].metrics.requests_refused.labels(exc.code).inc()
        raise ApiError(exc.status, exc.code, str(exc), exc.field) from None
    peer = request.app[NODE_KEY].peers.by_node_key(verified.keyid)
    if peer is None:  # removed by a reload between lookup and now
        raise ApiError(401, "UNKNOWN_KEY", f"{verified.keyid} is not a configured peer",
                       "Signature")
    request[PEER_KEY] = peer
    return await handler(request)


def make_verifier(app: web.Application) -> RequestVerifier:
    """A verifier that looks keys up in the *current* peers config (reload-aware)."""

    def lookup(keyid: str) -> PublicKey | None:
        peer = app[NODE_KEY].peers.by_node_key(keyid)
        return None if peer is None else peer.node_key

    return RequestVerifier(lookup, authorities=own_authorities(app[NODE_KEY].config))


def own_authorities(config: NodeConfig) -> frozenset[str]:
    """The ``host:port`` values a peer's signed request may name: our public URL and the
    listener peers use (``NodeConfig.peer_listen``).

    Binding signatures to our authority stops a peer from replaying, to us, a request that
    another node's peer signed for that node.
    """
    scheme = "https" if config.tls else "http"
    listen = config.peer_listen
    urls = [f"{scheme}://{listen.host}:{listen.port}"]
    if config.federation.public_url:
        urls.append(config.federation.public_url)
    return frozenset(url_parts(url)[0] for url in urls)


async def heads(request: web.Request) -> web.Response:
    """The stub of each origin's latest record, one per line."""
    node = request.app[NODE_KEY]
    lines = await node.store.read(lambda s: s.head_stubs())
    return web.Response(body=b"".join(line + b"\n" for line in lines), content_type=NDJSON)


async def log_page(request: web.Request) -> web.Response:
    """Records of one origin after ``after``, in seq order, within count and byte caps.

    ``limit`` and ``max_bytes`` are what the puller takes; a page holds no more than the
    lower of theirs and ours (a larger ask is not an error: peers with different limits
    must still sync, SPEC §17). A page always holds at least one record if any is left.
    """
    node = request.app[NODE_KEY]
    peer = request[PEER_KEY]
    origin = PublicKey.from_id(request.match_info["origin"], "origin").id
    limits = node.config.limits
    after = _query_int(request, "after", 0, MAX_SEQ, default=0)
    limit = min(limits.max_page_records,
                _query_int(request, "limit", 1, MAX_SEQ, default=limits.max_page_records))
    max_bytes = min(limits.max_page_bytes,
                    _query_int(request, "max_bytes", MAX_RECORD_BYTES, MAX_SEQ,
                               default=limits.max_page_bytes))
    our_origin = node.origin  # encoded from our key on each access: once per page

    def page(store: NodeStore) -> list[bytes]:
        """The page's lines, read on a store reader thread until the byte cap is reached."""
        lines: list[bytes] = []
        size = 0
        decisions: dict[tuple[Any, ...], bool] = {}
        for row in store.log_rows(origin, after, limit):
            line = _line_for(row, origin, peer, our_origin, decisions)
            if lines and size + len(line) + 1 > max_bytes:
                break
            lines.append(line)
            size += len(line) + 1
        return lines

    lines = await node.store.read(page)
    head = await node.store.read(lambda s: s.head(origin))
    headers = {"Hashmesh-Head-Seq": str(head.seq if head else 0)}
    body = b"\n".join(lines) + b"\n" if lines else b""
    return web.Response(body=body, content_type=NDJSON, headers=headers)


def _line_for(row: Any, origin: str, peer: PeerConfig, our_origin: str,
              decisions: dict[tuple[Any, ...], bool]) -> bytes:
    """The row's record, or its stub if ``peer`` may not have the body.

    ``decisions`` remembers the answer per distinct set of policy columns for one page: the
    rows of a page mostly share them, and deciding costs ~7 µs a row (JSON of three columns).
    """
    raw = bytes(row["raw"])
    if row["stub"]:
        return raw
    key = (row["scope"], row["grp"], row["jurisdictions"], row["lists"], row["labels"])
    allowed = decisions.get(key)
    if allowed is None:
        allowed = decisions[key] = may_send_body(RecordScope.from_row(origin, *key), peer,
                                                 our_origin)
    return raw if allowed else SignedRecord.from_bytes(raw).stub().raw


def _query_int(request: web.Request, name: str, minimum: int, maximum: int,
               *, default: int) -> int:
    raw = request.query.get(name)
    return default if raw is None else parse_query_int(raw, name, minimum, maximum)


async def notify(request: web.Request) -> web.Response:
    """A push hint: the peer has new records; pull from it soon. Changes nothing itself."""
    body = await read_body(request, MAX_NOTIFY_BYTES)
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise ApiError(400, "MALFORMED_JSON", "notify body is not valid JSON", "body") from None
    fields = Fields(value, "", frozenset({"origins"}))
    if fields.has("origins") and not isinstance(fields.raw("origins"), dict):
        raise ApiError(400, "BAD_SCHEMA", "expected an object of origin to seq", "origins")
    request.app[FEDERATION_KEY].poke(request[PEER_KEY].name)
    return web.json_response({"ok": True}, status=202)


def add_federation_routes(app: web.Application) -> None:
    app[VERIFIER_KEY] = make_verifier(app)
    app.router.add_get("/v1/heads", heads, name="heads")
    app.router.add_get("/v1/log/{origin}", log_page, name="log")
    app.router.add_post("/v1/notify", notify, name="notify")
