"""The node-to-node HTTP routes: heads, log pages, bodies by id and push hints.

Every request must carry an RFC 9421 signature by the ``node_key`` of a configured peer
(``node/federation/httpsig.py``); anything else gets 401 and changes nothing. Log pages are
``application/x-ndjson``: one exact signed envelope per line, so records travel byte for
byte. A record whose body the requesting peer may not receive (``node/federation/policy.py``)
is sent as its stub. ``POST /v1/bodies`` lets a peer that holds stubs ask for the bodies it
may receive (``repair.py`` is its client); it answers under the same policy as log pages.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from aiohttp import web

from hashmesh.node.config.node import NodeConfig
from hashmesh.node.config.peers import PeerConfig
from hashmesh.node.federation.httpsig import (
    RequestVerifier,
    aiohttp_request_parts,
    url_parts,
)
from hashmesh.node.federation.interface import LocalNode
from hashmesh.node.federation.nonces import NonceCache
from hashmesh.node.federation.policy import RecordScope, may_send_body
from hashmesh.node.federation.repair import CONSIDERED_HEADER, MAX_BODY_IDS
from hashmesh.node.federation.signature_errors import SignatureError
from hashmesh.node.federation.sync import Federation
from hashmesh.node.runtime.web import ApiError, Handler, parse_query_int, read_body
from hashmesh.node.store.interface import NodeStore
from hashmesh.protocol.errors import SchemaError
from hashmesh.protocol.fields import Fields
from hashmesh.protocol.keys import PublicKey
from hashmesh.protocol.records import MAX_RECORD_BYTES, SignedRecord, check_record_id

log = logging.getLogger("hashmesh.federation")

PEER_KEY = web.RequestKey("peer", PeerConfig)
BODY_KEY = web.RequestKey("body", bytes)  # the body, read and checked by the middleware
NODE_KEY = web.AppKey("node", LocalNode)
FEDERATION_KEY = web.AppKey("federation", Federation)
VERIFIER_KEY = web.AppKey("verifier", RequestVerifier)
FEDERATION_ROUTES = frozenset({"heads", "log", "notify", "bodies", "checkpoints", "proofs"})
NDJSON = "application/x-ndjson"
MAX_SEQ = 2**53 - 1
MAX_NOTIFY_BYTES = 65_536  # the largest body of any federation request
# Each route's own body limit: a read sends none, a hint or a list of ids at most 64 KiB
# (a route not listed here: 64 KiB).
BODY_LIMITS = {"heads": 0, "log": 0, "notify": MAX_NOTIFY_BYTES, "bodies": MAX_NOTIFY_BYTES}


@web.middleware
async def peer_auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Admit federation requests only with a valid signature by a configured peer.

    The signature is checked on the headers alone before a byte of the body is read (an
    unsigned or forged request is refused unread), then the body is read within the route's
    own limit (``BODY_LIMITS``, not the local API's 20 MiB image limit), and checked against
    the signed ``Content-Digest``. Handlers find it under ``BODY_KEY``.
    """
    resource = request.match_info.route.resource
    if resource is None or resource.name not in FEDERATION_ROUTES:
        return await handler(request)
    method, authority, path, query = aiohttp_request_parts(request)
    try:
        signed = request.app[VERIFIER_KEY].verify_headers(
            method=method, authority=authority, path=path, query=query,
            headers=request.headers)
        body = await read_body(request, BODY_LIMITS.get(resource.name, MAX_NOTIFY_BYTES))
        verified = signed.accept(body)
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
    request[BODY_KEY] = body
    return await handler(request)


def make_verifier(app: web.Application) -> RequestVerifier:
    """A verifier that looks keys up in the *current* peers config (reload-aware).

    Its nonce memory starts now, so it refuses requests created before now: after a restart
    a captured request whose nonce the old process had accepted cannot be replayed."""

    def lookup(keyid: str) -> PublicKey | None:
        peer = app[NODE_KEY].peers.by_node_key(keyid)
        return None if peer is None else peer.node_key

    config = app[NODE_KEY].config
    return RequestVerifier(lookup, NonceCache(per_key=config.limits.max_nonces_per_peer),
                           authorities=own_authorities(config), not_before=time.time())


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
    key = (row["type"], row["scope"], row["grp"], row["jurisdictions"], row["lists"], row["labels"])
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
    body = request[BODY_KEY]
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise ApiError(400, "MALFORMED_JSON", "notify body is not valid JSON", "body") from None
    fields = Fields(value, "", frozenset({"origins"}))
    if fields.has("origins") and not isinstance(fields.raw("origins"), dict):
        raise ApiError(400, "BAD_SCHEMA", "expected an object of origin to seq", "origins")
    request.app[FEDERATION_KEY].poke(request[PEER_KEY].name)
    return web.json_response({"ok": True}, status=202)


async def bodies(request: web.Request) -> web.Response:
    """The full records, among the ids asked for, whose bodies this peer may receive.

    Ids we do not hold, hold as stubs, or may not send in full to this peer are left out
    without saying which (a stub of them is what the peer already has). The answer stops at
    ``max_page_bytes``; header ``Hashmesh-Bodies-Considered`` says how many of the ids, in
    the order asked, were looked at, so the client asks again for the rest.
    """
    node = request.app[NODE_KEY]
    peer = request[PEER_KEY]
    ids = parse_body_ids(request[BODY_KEY])
    max_bytes = node.config.limits.max_page_bytes
    our_origin = node.origin

    def answer(store: NodeStore) -> tuple[list[bytes], int]:
        lines: list[bytes] = []
        size = 0
        considered = 0
        rows = {row["id"]: row for row in store.record_rows(ids)}
        for record_id in ids:
            row = rows.get(record_id)
            if row is not None and not row["stub"] and may_send_body(RecordScope.from_row(
                    row["origin"], row["type"], row["scope"], row["grp"],
                    row["jurisdictions"], row["lists"], row["labels"]), peer, our_origin):
                raw = bytes(row["raw"])
                if lines and size + len(raw) + 1 > max_bytes:
                    break
                lines.append(raw)
                size += len(raw) + 1
            considered += 1
        return lines, considered

    lines, considered = await node.store.read(answer)
    body = b"".join(line + b"\n" for line in lines)
    return web.Response(body=body, content_type=NDJSON,
                        headers={CONSIDERED_HEADER: str(considered)})


def parse_body_ids(body: bytes) -> list[str]:
    """``{"ids": [record id, ...]}``: 1 to ``MAX_BODY_IDS`` distinct record ids."""
    try:
        value = json.loads(body)
    except ValueError:
        raise ApiError(400, "MALFORMED_JSON", "bodies request is not valid JSON",
                       "body") from None
    fields = Fields(value, "", frozenset({"ids"}))
    ids = fields.raw("ids")
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_BODY_IDS:
        raise SchemaError(f"expected an array of 1 to {MAX_BODY_IDS} record ids", "ids")
    checked = [check_record_id(record_id, f"ids[{index}]") for index, record_id in enumerate(ids)]
    if len(set(checked)) != len(checked):
        raise SchemaError("record ids must be distinct", "ids")
    return checked


async def checkpoints(request: web.Request) -> web.Response:
    """Every checkpoint we keep, with the cosignatures merged so far (SPEC §20.3)."""
    lines = await request.app[FEDERATION_KEY].checkpoints.checkpoint_lines()
    return web.Response(body=b"".join(line + b"\n" for line in lines), content_type=NDJSON)


async def proofs(request: web.Request) -> web.Response:
    """Our equivocation evidence and split-view proofs (SPEC §20.3): stubs, no bodies."""
    lines = await request.app[FEDERATION_KEY].checkpoints.proof_lines()
    return web.Response(body=b"".join(line + b"\n" for line in lines), content_type=NDJSON)


def add_federation_routes(app: web.Application) -> None:
    app[VERIFIER_KEY] = make_verifier(app)
    app.router.add_get("/v1/heads", heads, name="heads")
    app.router.add_get("/v1/log/{origin}", log_page, name="log")
    app.router.add_post("/v1/notify", notify, name="notify")
    app.router.add_post("/v1/bodies", bodies, name="bodies")
    app.router.add_get("/v1/checkpoints", checkpoints, name="checkpoints")
    app.router.add_get("/v1/proofs", proofs, name="proofs")
