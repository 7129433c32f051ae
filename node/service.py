"""What one node does, independent of HTTP: add, revoke, feedback, match, status.

``NodeService`` joins the config, the identity keys, the store and the in-memory matcher.
Every write goes store-first: the record is signed and committed, then the matcher is
updated with the committed changes, so the index never shows what the store could lose.
The HTTP layer (``node/api/routes.py``) and federation call into this class.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hashmesh.node.config.identity import Identity
from hashmesh.node.config.node import NodeConfig
from hashmesh.node.config.peers import PeersConfig
from hashmesh.node.federation.sync import Federation
from hashmesh.node.matching.answers import ALL_TYPES, HashQuery, Matching
from hashmesh.node.matching.matcher import Matcher
from hashmesh.node.runtime.metrics import NodeMetrics
from hashmesh.node.runtime.tasks import cancel_and_wait
from hashmesh.node.store.sqlite import AsyncStore, Changes, Store
from hashmesh.protocol import canonical
from hashmesh.protocol.errors import SchemaError
from hashmesh.protocol.evidence import Evidence
from hashmesh.protocol.hashtypes import get_hash_type
from hashmesh.protocol.records import (
    MAX_RECORD_BYTES,
    AddBody,
    Distribution,
    FeedbackBody,
    Item,
    KeyBody,
    RevokeBody,
    SignedRecord,
    Target,
)

log = logging.getLogger("hashmesh.node")

VERSION = "0.1.0"
EXPIRY_SWEEP_SECONDS = 60


class NotFoundError(Exception):
    code = "NOT_FOUND"

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class ForbiddenError(Exception):
    code = "FORBIDDEN"

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class NodeService:
    """One organisation's node: its store, index and keys."""

    def __init__(self, config: NodeConfig, identity: Identity, store: AsyncStore,
                 peers: PeersConfig) -> None:
        self.config = config
        self.identity = identity
        self.store = store
        self.peers = peers
        self.metrics = NodeMetrics()
        self.matching = Matching(config, store, self.metrics, self.origin_name)
        self.started = time.time()
        self._sweeper: asyncio.Task[None] | None = None
        self._warming: asyncio.Task[None] | None = None
        self.federation: Federation | None = None
        # what the server's match workers report, when it runs them
        self.worker_status: Callable[[], dict[str, Any]] | None = None
        self._index_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="index-writer")
        self._unapplied: tuple[Changes, asyncio.Future[None]] | None = None
        self._unapplied_lock = threading.Lock()

    @classmethod
    async def open(cls, config: NodeConfig, identity: Identity | None = None) -> NodeService:
        """Open the store, make sure the signing key is authorised, and load the index."""
        identity = identity or Identity.load(config)
        store = AsyncStore(Store(config.db_path))
        service = cls(config, identity, store, config.load_peers())
        service._warming = asyncio.create_task(_warm_up_kernel())
        try:
            await service._authorise_signer()
            await service.reload_index()
        except BaseException:
            await service.close()
            raise
        return service

    async def start_background(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_expired_forever())

    async def close(self) -> None:
        if self._warming is not None:
            await self._warming
        await cancel_and_wait(self._sweeper)
        self._index_writer.shutdown(wait=True)
        self.matching.close()
        self.store.close()

    @property
    def matcher(self) -> Matcher:
        return self.matching.matcher

    @property
    def origin(self) -> str:
        return self.identity.origin

    # -- writes ---------------------------------------------------------------------------

    async def add(self, items: Sequence[Item], dist: Distribution, actor: str
                  ) -> list[SignedRecord]:
        """Sign the items in as few ``add`` records as the protocol limits allow."""
        return [await self._sign(AddBody(batch), dist, actor)
                for batch in batch_items(items, self.config.limits.max_items_per_record)]

    async def revoke(self, targets: Sequence[Target], reason: str, actor: str) -> SignedRecord:
        """Revoke our own records or items. Revocations travel everywhere (scope ``all``)."""
        for index, target in enumerate(targets):
            await self._check_own_add(target, f"targets[{index}]")
        return await self._sign(RevokeBody(tuple(targets), reason), Distribution(), actor)

    async def feedback(self, target: Target, verdict: str, note: str | None,
                       actor: str) -> SignedRecord:
        raw = await self.store.read(lambda s: s.record_bytes(target.record))
        if raw is None:
            raise NotFoundError(f"no record {target.record}", "target")
        return await self._sign(FeedbackBody(target, verdict, note), Distribution(), actor)

    async def _sign(self, body: AddBody | RevokeBody | FeedbackBody | KeyBody,
                    dist: Distribution, actor: str) -> SignedRecord:
        signer = self.identity.signer if body.TYPE != "key" else self.identity.root
        if signer is None:
            raise ForbiddenError("a key record needs the root key, which is offline; bring it "
                                 "back and use `hashmesh key rotate` (node stopped)", "keys.root")
        record, changes = await self.store.write(lambda s: s.append_local(
            signer=signer, origin=self.origin, body=body, dist=dist, actor=actor))
        await self.apply_changes_soon(changes)
        self.metrics.records_signed.labels(record.head.type).inc()
        log.info("signed %s seq=%d id=%s by %s", record.head.type, record.head.seq,
                 record.id, actor)
        if self.federation is not None:
            self.federation.notify_all()
        return record

    async def _check_own_add(self, target: Target, path: str) -> None:
        entries = await self.store.read(lambda s: s.item_entries(target.record, target.item))
        if not entries:
            raw = await self.store.read(lambda s: s.record_bytes(target.record))
            what = "record" if raw is None else "item"
            raise NotFoundError(f"no {what} {target.ref} with hashes in this node", path)
        if entries[0].origin != self.origin:
            raise ForbiddenError(f"{target.ref} belongs to origin {entries[0].origin}; only "
                                 "its origin can revoke it", path)

    async def _authorise_signer(self) -> None:
        """A separate signing key is authorised by a ``key`` record before it signs.

        ``hashmesh init`` writes that record, so a node whose root key is offline starts; one
        whose signing key was never authorised needs the root key once."""
        signer = self.identity.signer.id
        if signer == self.origin:
            return
        ring = await self.store.read(lambda s: s.keyring(self.origin))
        if signer not in ring.active_keys():
            await self._sign(KeyBody(signer), Distribution(), "node")

    def apply_changes_soon(self, changes: Changes) -> asyncio.Future[None]:
        """``apply_changes`` on the index-writer thread, in the order of the calls.

        A sync page changes up to ~100k hashes; at 1M indexed that is ~0.1 s of numpy (the
        delta merge), which here runs beside the next page's work instead of blocking the
        event loop. Every write goes through this one thread, so changes apply in commit
        order; callers that answer a client await the future (read your writes).

        Changes that arrive while the thread is busy are applied together (all additions, then
        all removals: the same end state, as an entry id is never added again once removed),
        so a sync that outpaces the index merges its delta fewer times.
        """
        with self._unapplied_lock:
            if self._unapplied is None:
                loop = asyncio.get_running_loop()
                self._unapplied = (Changes(), loop.run_in_executor(self._index_writer,
                                                                   self._apply_unapplied))
            batch, applied = self._unapplied
            batch.extend(changes)
        return applied

    def _apply_unapplied(self) -> None:
        with self._unapplied_lock:
            assert self._unapplied is not None
            batch, self._unapplied = self._unapplied[0], None
        self.apply_changes(batch)

    def apply_changes(self, changes: Changes) -> None:
        """Bring the matcher in line with a committed write."""
        for hash_type, (entry_ids, values) in changes.added.items():
            self.matcher.add_many(hash_type, entry_ids, values)
        for entry_id in changes.removed:
            self.matcher.remove(entry_id)
        self.matching.update_gauges()

    # -- federation events ----------------------------------------------------------------

    async def own_log_behind(self, peer: str, peer_seq: int) -> None:
        """A peer holds more of our own log than we do: we were restored from a backup.

        Signing now would reuse seq numbers and equivocate, so it is blocked until an
        operator has let the node pull its own records back and runs ``hashmesh unfreeze``.
        """
        head = await self.store.read(lambda s: s.head(self.origin))
        ours = head.seq if head else 0
        reason = (f"peer {peer} holds seq {peer_seq} of this node's own log but the database "
                  f"has only seq {ours} (restored from an old backup?)")
        if await self.store.read(lambda s: s.signing_blocked()) is None:
            log.error("ALERT: refusing to sign: %s", reason)
            await self.store.write(lambda s: s.block_signing(reason))
        self.metrics.signing_blocked.set(1)

    async def record_equivocation(self, evidence: Evidence, peer: str) -> None:
        """Store the evidence, freeze the origin before the conflict, alert the operator."""
        origin, seq = evidence.origin, evidence.seq
        reason = f"equivocation at seq {seq} (records {evidence.first.id} and " \
                 f"{evidence.second.id}), seen via peer {peer}"
        log.error("ALERT: origin %s %s; frozen at seq %d, no branch picked", origin, reason,
                  seq - 1)
        await self.store.write(lambda s: s.freeze(origin, seq - 1, evidence, reason))
        if origin == self.origin:
            await self.store.write(lambda s: s.block_signing(reason))
            self.metrics.signing_blocked.set(1)
        counts = await self.store.read(lambda s: s.counts())
        self.metrics.equivocations.set(counts["evidence"])
        self.metrics.frozen_origins.set(counts["frozen_origins"])

    # -- reads ----------------------------------------------------------------------------

    def threshold(self, hash_type: str, override: int | None, path: str) -> int:
        kind = get_hash_type(hash_type, path)
        if override is None:
            return self.config.match.threshold_for(kind.name)
        if not 0 <= override <= kind.max_threshold:
            raise SchemaError(f"{kind.name} threshold must be between 0 and "
                              f"{kind.max_threshold}, got {override}", path)
        return override

    def origin_name(self, origin: str) -> str | None:
        return self.config.name if origin == self.origin else self.peers.origin_name(origin)

    async def record(self, record_id: str) -> dict[str, Any]:
        raw = await self.store.read(lambda s: s.record_bytes(record_id))
        if raw is None:
            raise NotFoundError(f"no record {record_id}", "id")
        record = SignedRecord.from_bytes(raw)
        entries = await self.store.read(lambda s: s.item_entries(record_id))
        return {
            "id": record.id,
            "record": record.to_json(),
            "hashes": [{"item": f"{e.record}/{e.item}", "type": e.hash_type, "value": e.value,
                        "active": e.active} for e in entries],
        }

    async def status(self) -> dict[str, Any]:
        counts = await self.store.read(lambda s: s.counts())
        frozen = await self.store.read(lambda s: s.frozen())
        head = await self.store.read(lambda s: s.head(self.origin))
        return {
            "name": self.config.name,
            "origin": self.origin,
            "signing_key": self.identity.signer.id,
            "node_key": self.identity.node.id,
            "version": VERSION,
            "head": None if head is None else head.to_json(),
            "counts": counts,
            "index": {t: self.matcher.count(t) for t in ALL_TYPES if self.matcher.count(t)},
            "frozen_origins": frozen,
            "signing_blocked": await self.store.read(lambda s: s.signing_blocked()),
            "peers": len(self.peers.peers),
            "uptime_seconds": int(time.time() - self.started),
            "match_workers": None if self.worker_status is None else self.worker_status(),
        }

    async def _sweep_expired_forever(self) -> None:
        while True:
            await asyncio.sleep(EXPIRY_SWEEP_SECONDS)
            await self.sweep_expired()

    async def sweep_expired(self, now: int | None = None) -> int:
        return await self.matching.sweep_expired(now)

    async def reload_index(self) -> None:
        await self.matching.reload_index()

    async def match(self, queries: Sequence[HashQuery], thresholds: dict[str, int],
                    lists: frozenset[str] | None, actor: str) -> list[dict[str, Any]]:
        return await self.matching.match(queries, thresholds, lists, actor)

    async def match_image(self, data: bytes, thresholds: dict[str, int],
                          lists: frozenset[str] | None, actor: str) -> dict[str, Any]:
        return await self.matching.match_image(data, thresholds, lists, actor)


async def _warm_up_kernel() -> None:
    """Compile the match kernel, or load it from numba's cache (~0.7 s), beside the node's
    start rather than before it: the node syncs and serves at once, and a match that comes
    sooner waits for the kernel on the index thread, not on the event loop."""
    started = time.monotonic()
    try:
        await asyncio.to_thread(Matcher.warm_up)
    except Exception:  # the first match will compile it, or fail with the reason
        log.exception("could not compile the match kernel in advance")
        return
    elapsed = time.monotonic() - started
    if elapsed > 2:
        from hashmesh.node.matching.hamming_kernels import CACHE_ON_DISK  # imports numba: only here

        log.info("compiled the match kernel in %.1f s (%s)", elapsed,
                 "first start after an install; cached for later starts" if CACHE_ON_DISK
                 else "numba has no writable cache directory: set NUMBA_CACHE_DIR to "
                 "skip this at every start")


ENVELOPE_ALLOWANCE = 2_048


def batch_items(items: Sequence[Item], max_items: int) -> list[tuple[Item, ...]]:
    """Group items by list (so a peer's list policy takes or stubs a record whole), then
    split each group by count and by encoded size so that every record fits the limits."""
    by_list: dict[str, list[Item]] = {}
    for item in items:
        by_list.setdefault(item.list, []).append(item)
    batches: list[tuple[Item, ...]] = []
    budget = MAX_RECORD_BYTES - ENVELOPE_ALLOWANCE
    for group in by_list.values():
        current: list[Item] = []
        size = 0
        for item in group:
            item_size = len(canonical.encode(item.to_json())) + 1
            if current and (len(current) >= max_items or size + item_size > budget):
                batches.append(tuple(current))
                current, size = [], 0
            current.append(item)
            size += item_size
        batches.append(tuple(current))
    return batches
