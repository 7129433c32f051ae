"""A hostile peer: a real aiohttp server that speaks the federation protocol and lies in it.

The hostile controls a real origin (its root key signs real records with
``protocol.log.append``) and a real node key that the victim pins in its ``peers.toml``, so
everything it serves is well formed up to the one fault a test plants. By default it behaves
like an honest peer serving ``log`` (pages of the records after ``after``, at most
``page_size`` per page); a test swaps in crafted lines, or replaces the ``/v1/heads`` or
``/v1/log`` handler outright, and then counts what the victim asked for.

It is also a client: ``send`` makes RFC 9421-signed requests to a victim's federation routes
with the hostile's node key (or any other key, at any time), for the inbound cases.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from hashmesh.node.config.peers import PeerConfig
from hashmesh.node.federation.httpsig import sign_request
from hashmesh.protocol.keys import PublicKey, SigningKey
from hashmesh.protocol.log import LogHead, append
from hashmesh.protocol.records import (
    AddBody,
    Body,
    HashEntry,
    Item,
    KeyBody,
    KeyRevokeBody,
    SignedRecord,
    signed_message,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NDJSON = "application/x-ndjson"
_values = itertools.count(1)


def pdq(seed: int) -> str:
    """A deterministic, valid pdq value."""
    return f"{random.Random(seed).getrandbits(256):064x}"


def add_body(value: str | None = None) -> AddBody:
    """An ``add`` body with one pdq hash (a fresh value unless one is given)."""
    return AddBody((Item(hashes=(HashEntry("pdq", value or pdq(10_000 + next(_values))),),
                         list="ncii"),))


def hash_value(record: SignedRecord) -> str:
    """The first hash value of an ``add`` record (what a match query would look for)."""
    assert isinstance(record.body, AddBody)
    return record.body.items[0].hashes[0].value


def ndjson(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def forge_signature(record: SignedRecord, key: SigningKey) -> SignedRecord:
    """The same record, signed by ``key`` instead of the key its head names."""
    return SignedRecord.assemble(record.head, record.body,
                                 key.sign(signed_message(record.head_bytes)))


@dataclass
class OriginLog:
    """One origin's log, signed for real; ``fork`` starts another branch of the same origin."""

    root: SigningKey = field(default_factory=SigningKey.generate)
    records: list[SignedRecord] = field(default_factory=list)
    ts: int = 1_700_000_000_000

    @property
    def origin(self) -> str:
        return self.root.id

    @property
    def head(self) -> LogHead | None:
        return LogHead.of(self.records[-1]) if self.records else None

    def append(self, body: Body | None = None, *, signer: SigningKey | None = None
               ) -> SignedRecord:
        """Sign the next record (an ``add`` unless ``body`` is given) and keep it."""
        self.ts += 1
        record = append(self.head, signer=signer or self.root, origin=self.origin,
                        body=body or add_body(), now_ms=self.ts)
        self.records.append(record)
        return record

    def extend(self, count: int) -> list[SignedRecord]:
        return [self.append() for _ in range(count)]

    def authorise(self, key: SigningKey) -> SignedRecord:
        return self.append(KeyBody(key.id))

    def revoke_key(self, key: SigningKey) -> SignedRecord:
        return self.append(KeyRevokeBody(key.id))

    def fork(self, keep: int) -> OriginLog:
        """The same origin with only its first ``keep`` records: appending now equivocates."""
        return OriginLog(self.root, list(self.records[:keep]), self.ts)

    def lines(self) -> list[bytes]:
        return [record.raw for record in self.records]


class HostilePeer:
    """The server side: heads and log pages of ``log`` unless a test plants something else."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.node = SigningKey.generate()
        self.log = OriginLog()
        self.lines: list[bytes] | None = None  # crafted log lines served instead of ``log``
        self.heads_lines: list[bytes] | None = None  # crafted heads instead of ``log``'s head
        self.page_size = 10_000
        self.on_heads: Handler | None = None
        self.on_log: Handler | None = None
        self.on_bodies: Handler | None = None  # unset: 404, as a node without the route
        # SPEC §20.3 gossip: lines served at /v1/checkpoints and /v1/proofs (None: 404)
        self.checkpoint_lines: list[bytes] | None = None
        self.proof_lines: list[bytes] | None = None
        self.requests: Counter[str] = Counter()
        self.log_requests: list[tuple[int, int]] = []  # (after, limit) of each page asked for
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def origin(self) -> str:
        return self.log.origin

    def peer_entry(self, name: str = "hostile") -> PeerConfig:
        """How the victim configures us: our node key, our origin, accepting that origin."""
        origin = PublicKey.from_id(self.origin)
        return PeerConfig(name=name, url=self.url, node_key=PublicKey.from_id(self.node.id),
                          origin=origin, accept_origins=(origin,))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/heads", self._heads)
        app.router.add_get("/v1/log/{origin}", self._log)
        app.router.add_post("/v1/notify", self._notify)
        app.router.add_post("/v1/bodies", self._bodies)
        app.router.add_get("/v1/checkpoints", self._checkpoints)
        app.router.add_get("/v1/proofs", self._proofs)
        # A short shutdown: a handler still dripping bytes must not hold up the test's end.
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- what the victim pulls ------------------------------------------------------------

    async def _heads(self, request: web.Request) -> web.StreamResponse:
        self.requests["heads"] += 1
        if self.on_heads is not None:
            return await self.on_heads(request)
        if self.heads_lines is not None:
            lines = self.heads_lines
        else:
            lines = [self.log.records[-1].stub().raw] if self.log.records else []
        return web.Response(body=ndjson(lines), content_type=NDJSON)

    async def _log(self, request: web.Request) -> web.StreamResponse:
        self.requests["log"] += 1
        after = int(request.query.get("after", "0"))
        limit = int(request.query.get("limit", "500"))
        self.log_requests.append((after, limit))
        if self.on_log is not None:
            return await self.on_log(request)
        lines = self.lines if self.lines is not None else self.log.lines()
        wanted = min(limit, self.page_size)
        page = []
        for line in lines:
            seq = _seq_or_none(line)
            if seq is None or seq > after:  # junk is always served: it is the fault planted
                page.append(line)
            if len(page) == wanted:
                break
        return web.Response(body=ndjson(page), content_type=NDJSON)

    async def _bodies(self, request: web.Request) -> web.StreamResponse:
        self.requests["bodies"] += 1
        if self.on_bodies is not None:
            return await self.on_bodies(request)
        raise web.HTTPNotFound()

    async def _checkpoints(self, request: web.Request) -> web.StreamResponse:
        self.requests["checkpoints"] += 1
        if self.checkpoint_lines is None:
            raise web.HTTPNotFound()
        return web.Response(body=ndjson(self.checkpoint_lines), content_type=NDJSON)

    async def _proofs(self, request: web.Request) -> web.StreamResponse:
        self.requests["proofs"] += 1
        if self.proof_lines is None:
            raise web.HTTPNotFound()
        return web.Response(body=ndjson(self.proof_lines), content_type=NDJSON)

    async def _notify(self, request: web.Request) -> web.StreamResponse:
        self.requests["notify"] += 1
        return web.json_response({"ok": True}, status=202)

    # -- what the hostile sends -----------------------------------------------------------

    async def send(self, session: aiohttp.ClientSession, method: str, url: str | URL,
                   body: bytes = b"", *, key: SigningKey | None = None,
                   now: float | None = None, headers: dict[str, str] | None = None
                   ) -> tuple[int, dict[str, Any]]:
        """One signed federation request to a victim; returns the status and JSON answer.

        ``headers`` replays a previously signed request exactly; otherwise the request is
        signed now (or at ``now``) with ``key`` (default: our pinned node key).
        """
        target = URL(url) if isinstance(url, str) else url
        fresh = headers is None and now is None
        for attempt in range(2):
            if headers is None or (fresh and attempt):
                headers = self.sign(method, target, body, key=key, now=now)
            async with session.request(method, target, data=body or None, headers=headers,
                                       allow_redirects=False) as response:
                answer = (await response.json() if response.content_type == "application/json"
                          else {"body": await response.read()})
            code = answer.get("error", {}).get("code") if isinstance(answer, dict) else None
            if not (fresh and attempt == 0 and code == "CREATED_BEFORE_START"):
                return response.status, answer
            # signed in the second the victim started (``created`` is whole seconds): as a
            # real node does, sign again in the next second
            await asyncio.sleep(1.01 - time.time() % 1)
        return response.status, answer

    def sign(self, method: str, url: str | URL, body: bytes = b"", *,
             key: SigningKey | None = None, now: float | None = None) -> dict[str, str]:
        headers = sign_request(method=method, url=url, body=body, key=key or self.node,
                               now=time.time() if now is None else now)
        if body:
            headers["Content-Type"] = "application/json"
        return headers


def _seq_or_none(line: bytes) -> int | None:
    """The seq of a well-formed record line; ``None`` for junk (always served)."""
    try:
        return SignedRecord.from_bytes(line).head.seq
    except ValueError:
        return None
