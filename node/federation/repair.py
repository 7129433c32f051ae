"""Filling holes: asking peers for the bodies of records we hold only as stubs.

A stub is what we store when a body may not reach us *through the peer that served it*
(its send policy, or our accept policy for it). Another peer, often the origin itself, may be
allowed to send that body, and our own accept policy may widen later. Without repair the first
stub would win for good: a pull skips every record it already holds.

So after each round's heads, for every origin the peer serves and we accept from it, the node
asks ``POST /v1/bodies`` for the ids of the stubs it holds of that origin. The peer answers
with the full records it may send us (its own distribution policy decides, as for log pages);
we keep those that pass our accept policy for that peer and complete the stubs in place
(``Store.ingest``). Nothing else is trusted from the answer: a record must be one we asked
for, its id (a hash of the signed head and signature) equal to the stub's, so the head and
signature are the ones already verified, and its body must match the signed digest.

Work is bounded: at most ``MAX_BODY_IDS`` ids a request and ``MAX_REQUESTS_PER_ROUND``
requests per origin and round, answers capped at ``max_page_bytes``. A cursor per peer and
origin remembers the last stub asked, so a stub is asked of each peer once; the cursors
restart from the beginning every ``RESCAN_SECONDS`` (a peer's policy may widen) and whenever
the peer's entry in ``peers.toml`` changes (our accept policy may widen: back-fill).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Protocol

from hashmesh.node.config.peers import PeerConfig
from hashmesh.node.federation.errors import PeerProtocolError, RecordRefusedError
from hashmesh.node.federation.interface import LocalNode
from hashmesh.node.federation.policy import may_keep_body
from hashmesh.node.store.interface import Changes, NodeStore
from hashmesh.protocol.records import SignedRecord

log = logging.getLogger("hashmesh.repair")

MAX_BODY_IDS = 256  # ids in one request: 256 ids of 64 hex, as JSON, stay under 20 KiB
MAX_REQUESTS_PER_ROUND = 8
RESCAN_SECONDS = 3600.0
CONSIDERED_HEADER = "Hashmesh-Bodies-Considered"


class Requester(Protocol):
    """``Federation._request``: one signed request to a peer, the answer capped in bytes."""

    def __call__(self, peer: PeerConfig, method: str, path: str, *,
                 params: dict[str, str] | None = None, body: bytes = b"",
                 max_bytes: int) -> Awaitable[tuple[bytes, dict[str, str]]]: ...


def check_bodies(lines: list[bytes], wanted: dict[str, int], peer: PeerConfig
                 ) -> list[SignedRecord]:
    """The records of a bodies answer that we keep; raises for anything we did not ask for.

    Parsing checks the body against the signed digest; the id check makes the head and
    signature those of the stub we hold. Records our accept policy for ``peer`` would not
    keep are dropped (not a fault: the peer may send them, we just do not take them).
    """
    kept: list[SignedRecord] = []
    seen: set[str] = set()
    for index, line in enumerate(lines):
        path = f"{peer.name}:bodies[{index}]"
        record = SignedRecord.from_bytes(line, path)
        if record.id not in wanted or record.id in seen:
            raise RecordRefusedError(f"{path}: record {record.id} was not asked for (or came "
                                     "twice)", "UNREQUESTED_RECORD")
        if record.body is None:
            raise RecordRefusedError(f"{path}: a stub in a bodies answer", "UNREQUESTED_RECORD")
        seen.add(record.id)
        if may_keep_body(record, peer):
            kept.append(record)
    return kept


class BodyRepair:
    """The repair cursors of one node, and the requests that advance them."""

    def __init__(self, node: LocalNode, request: Requester,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.node = node
        self.request = request
        self.clock = clock
        # (peer, origin) -> (seq of the last stub asked, when this scan started)
        self.cursors: dict[tuple[str, str], tuple[int, float]] = {}

    def forget(self, peer_name: str) -> None:
        """Start over with ``peer_name`` (its config changed: our policy may have widened)."""
        for key in [key for key in self.cursors if key[0] == peer_name]:
            del self.cursors[key]

    async def repair(self, peer: PeerConfig, origin: str) -> int:
        """Ask ``peer`` for the bodies of our stubs of ``origin``; returns how many were
        completed."""
        now = self.clock()
        after, started = self.cursors.get((peer.name, origin), (0, now))
        if now - started > RESCAN_SECONDS:
            after, started = 0, now
        completed = 0
        for _ in range(MAX_REQUESTS_PER_ROUND):
            holes = await self.node.store.read(partial(_holes, origin=origin, after=after))
            if not holes:
                break
            wanted = {record_id: seq for seq, record_id in holes}
            try:
                lines, considered = await self._fetch(peer, [record_id for _, record_id in holes])
            except PeerProtocolError as exc:
                if exc.status != 404:
                    raise
                # A node from before this route: it cannot fill holes, and that is no fault.
                log.info("peer %s does not serve /v1/bodies; holes are not repaired from it",
                         peer.name)
                self.cursors[(peer.name, origin)] = (holes[-1][0], started)
                break
            records = check_bodies(lines, wanted, peer)
            if records:
                await self.node.store.write(partial(_ingest, node=self.node, records=records,
                                                    source=peer.name))
                await self.node.apply_changes_soon()
                completed += len(records)
            if considered == 0:
                break  # nothing looked at: ask again next round
            after = holes[considered - 1][0]
            self.cursors[(peer.name, origin)] = (after, started)
            if len(holes) < MAX_BODY_IDS and considered == len(holes):
                break
        if completed:
            log.info("completed %d stubs of %s with bodies from peer %s", completed, origin,
                     peer.name)
        return completed

    async def _fetch(self, peer: PeerConfig, ids: list[str]) -> tuple[list[bytes], int]:
        payload, headers = await self.request(
            peer, "POST", "/v1/bodies", body=json.dumps({"ids": ids}).encode(),
            max_bytes=self.node.config.limits.max_page_bytes)
        lines = payload.splitlines()
        raw = next((value for name, value in headers.items()
                    if name.lower() == CONSIDERED_HEADER.lower()), str(len(ids)))
        if not raw.isdigit() or not len(lines) <= int(raw) <= len(ids):
            raise PeerProtocolError(f"{peer.name}: {CONSIDERED_HEADER}: {raw[:40]!r} is not a "
                                    f"count of {len(lines)} to {len(ids)} ids",
                                    "BAD_BODIES_ANSWER")
        return lines, int(raw)


def _holes(store: NodeStore, origin: str, after: int) -> list[tuple[int, str]]:
    return store.stub_positions(origin, after, MAX_BODY_IDS)


def _ingest(store: NodeStore, node: LocalNode, records: list[SignedRecord],
            source: str) -> Changes:
    """Store the completed records; their index changes are queued on the writer thread,
    right after the commit, so they reach the index in commit order (``LocalNode``)."""
    return node.queue_changes(store.ingest(records, source=source))
