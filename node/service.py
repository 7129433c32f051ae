"""What one node does, independent of HTTP: add, revoke, feedback, match, status.

``NodeService`` joins the config, the identity keys, the store and the in-memory matcher.
Every write goes store-first: the record is signed and committed, then the matcher is
updated with the committed changes, so the index never shows what the store could lose.
The HTTP layer (``node/api.py``) and federation call into this class.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client.metrics import MetricWrapperBase

from node.config import NodeConfig
from node.hasher import hash_image
from node.keyfile import read_secret_key
from node.matcher import Matcher
from node.metrics import NodeMetrics
from node.peers_config import PeersConfig
from node.store import AsyncStore, Changes, EntryRow, Store, now_ms
from node.tasks import cancel_and_wait
from protocol import canonical
from protocol.errors import SchemaError
from protocol.evidence import Evidence
from protocol.hashtypes import get_hash_type
from protocol.keys import SigningKey
from protocol.records import (
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

if TYPE_CHECKING:
    from node.sync import Federation

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


@dataclass(frozen=True)
class Identity:
    """This node's keys: the origin's root key, the log signer and the transport key."""

    root: SigningKey
    signer: SigningKey
    node: SigningKey

    @property
    def origin(self) -> str:
        return self.root.id

    @classmethod
    def load(cls, config: NodeConfig) -> Identity:
        root = read_secret_key(config.keys.root)
        signer = (root if config.keys.signing == config.keys.root
                  else read_secret_key(config.keys.signing))
        node = root if config.keys.node == config.keys.root else read_secret_key(config.keys.node)
        return cls(root=root, signer=signer, node=node)


@dataclass(frozen=True)
class HashQuery:
    type: str
    value: str


@dataclass(frozen=True)
class Match:
    """One stored hash within the threshold of a query, with its provenance."""

    entry: EntryRow
    distance: int
    threshold: int
    origin_name: str | None
    feedback: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        e = self.entry
        return {
            "record": e.record,
            "item": f"{e.record}/{e.item}",
            "origin": e.origin,
            "origin_name": self.origin_name,
            "list": e.list,
            "labels": list(e.labels),
            "tier": e.tier,
            "hash": {"type": e.hash_type, "value": e.value, "quality": e.quality},
            "distance": self.distance,
            "threshold": self.threshold,
            "expires": e.expires,
            "feedback": self.feedback,
        }


class NodeService:
    """One organisation's node: its store, index and keys."""

    def __init__(self, config: NodeConfig, identity: Identity, store: AsyncStore,
                 matcher: Matcher, peers: PeersConfig) -> None:
        self.config = config
        self.identity = identity
        self.store = store
        self.matcher = matcher
        self.peers = peers
        self.metrics = NodeMetrics()
        self.started = time.time()
        self._sweeper: asyncio.Task[None] | None = None
        self.federation: Federation | None = None
        self.lookups = IndexLookups(self)
        self._origin_names: tuple[PeersConfig, dict[str, str]] | None = None
        self._index_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="index-writer")
        self._unapplied: tuple[Changes, asyncio.Future[None]] | None = None
        self._unapplied_lock = threading.Lock()
        self._swept_until = 0  # entries that expired up to this time are out of the index

    @classmethod
    async def open(cls, config: NodeConfig, identity: Identity | None = None) -> NodeService:
        """Open the store, make sure the signing key is authorised, and load the index."""
        identity = identity or Identity.load(config)
        store = AsyncStore(Store(config.db_path))
        service = cls(config, identity, store, Matcher(), config.load_peers())
        started = time.monotonic()
        await asyncio.to_thread(Matcher.warm_up)
        elapsed = time.monotonic() - started
        if elapsed > 1:
            from node.hamming_kernels import CACHE_ON_DISK  # imports numba: only here

            log.info("compiled the match kernel in %.1f s (%s)", elapsed,
                     "first start after an install; cached for later starts" if CACHE_ON_DISK
                     else "numba has no writable cache directory: set NUMBA_CACHE_DIR to "
                     "skip this at every start")
        await service._authorise_signer()
        await service.reload_index()
        return service

    async def start_background(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_expired_forever())

    async def close(self) -> None:
        await cancel_and_wait(self._sweeper)
        self._index_writer.shutdown(wait=True)
        self.lookups.close()
        self.store.close()

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
        record, changes = await self.store.write(lambda s: s.append_local(
            signer=self.identity.signer if body.TYPE != "key" else self.identity.root,
            origin=self.origin, body=body, dist=dist, actor=actor))
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
        """A separate signing key is authorised by a ``key`` record before it signs."""
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
        self._update_gauges()

    async def reload_index(self) -> None:
        """(Re)build the matcher from the hashes in force; no signature is re-verified."""
        self._swept_until = now_ms()  # what expired before now is not loaded
        matcher = Matcher()
        types = await self.store.read(lambda s: s.active_hash_types())
        for hash_type in types:
            ids, values = await self.store.read(partial(Store.active_entries,
                                                        hash_type=hash_type))
            matcher.bulk_load(hash_type, ids, values)
        self.matcher = matcher
        self._update_gauges()

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

    async def match(self, queries: Sequence[HashQuery], thresholds: dict[str, int],
                    lists: frozenset[str] | None, actor: str) -> list[dict[str, Any]]:
        """For each query hash, every stored hash in force within the threshold.

        Index lookups go through ``self.lookups`` (batched, off the event loop). The store is
        read only when something matched, entries and feedback in one read. A match is
        audited (who matched which records); the audit row is queued and committed with
        others within ``AUDIT_FLUSH_SECONDS`` (``AsyncStore.audit_later``), so the answer
        does not wait for a transaction of its own.
        """
        started = time.perf_counter()
        limits = [thresholds.get(q.type, self.config.match.threshold_for(q.type))
                  for q in queries]
        lookups = [self.lookups.query(q.type, q.value, limit)
                   for q, limit in zip(queries, limits, strict=True)]
        hits = [(q, limit, await found)
                for q, limit, found in zip(queries, limits, lookups, strict=True)]
        for query in queries:
            labelled(self.metrics.match_queries, query.type).inc()
        entry_ids = {entry_id for _, _, found in hits for entry_id, _ in found}
        entries, feedback = (await self.store.read(partial(_provenance, entry_ids=entry_ids))
                             if entry_ids else ({}, {}))
        now = now_ms()
        results = []
        for query, threshold, found in hits:
            matches = [
                Match(entries[entry_id], distance, threshold, self.origin_name(
                    entries[entry_id].origin), _merge(feedback, entries[entry_id]))
                for entry_id, distance in found
                if _in_force(entries.get(entry_id), now, lists)
            ]
            if matches:
                labelled(self.metrics.match_hits, query.type).inc(len(matches))
            results.append({"query": {"type": query.type, "value": query.value},
                            "threshold": threshold, "matches": [m.to_json() for m in matches]})
        self.metrics.match_seconds.observe(time.perf_counter() - started)
        if any(r["matches"] for r in results):
            self.store.audit_later(actor, "match", {
                "queries": len(queries),
                "matched_records": sorted({e.record for e in entries.values()})})
        return results

    async def match_image(self, data: bytes, thresholds: dict[str, int],
                          lists: frozenset[str] | None, actor: str) -> dict[str, Any]:
        """Hash image bytes in memory (never stored) and match every hash."""
        loop = asyncio.get_running_loop()
        computed = await loop.run_in_executor(None, hash_image, data)
        queries = [HashQuery(h.type, h.value) for h in computed]
        results = await self.match(queries, thresholds, lists, actor)
        return {
            "hashes": [{"type": h.type, "value": h.value, "quality": h.quality}
                       for h in computed],
            "results": results,
        }

    def origin_name(self, origin: str) -> str | None:
        if origin == self.origin:
            return self.config.name
        cached = self._origin_names
        if cached is None or cached[0] is not self.peers:  # first use, or peers.toml reloaded
            names: dict[str, str] = {}
            for peer in self.peers.peers:
                if peer.origin is not None:
                    names.setdefault(peer.origin.id, peer.name)
            cached = self._origin_names = (self.peers, names)
        return cached[1].get(origin)

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
            "index": {t: self.matcher.count(t) for t in _ALL_TYPES if self.matcher.count(t)},
            "frozen_origins": frozen,
            "signing_blocked": await self.store.read(lambda s: s.signing_blocked()),
            "peers": len(self.peers.peers),
            "uptime_seconds": int(time.time() - self.started),
        }

    def _update_gauges(self) -> None:
        for hash_type in _ALL_TYPES:
            self.metrics.hashes_active.labels(hash_type).set(self.matcher.count(hash_type))
        self.metrics.index_bytes.set(self.matcher.memory_bytes())

    async def _sweep_expired_forever(self) -> None:
        while True:
            await asyncio.sleep(EXPIRY_SWEEP_SECONDS)
            await self.sweep_expired()

    async def sweep_expired(self, now: int | None = None) -> int:
        """Drop the hashes that expired since the last sweep from the index (the store keeps
        them, and match answers filter on expiry too). The index is loaded without the hashes
        expired by then, so the first sweep starts where that load stopped."""
        until = now_ms() if now is None else now
        after, self._swept_until = self._swept_until, max(self._swept_until, until)
        expired = await self.store.read(lambda s: s.expired_entries(after, until))
        for entry_id in expired:
            self.matcher.remove(entry_id)
        if expired:
            self._update_gauges()
        return len(expired)


Found = asyncio.Future[list[tuple[int, int]]]
M = TypeVar("M", bound=MetricWrapperBase)


@lru_cache(maxsize=1024)
def labelled(metric: M, *values: str) -> M:
    """``metric.labels(*values)``, remembered: prometheus-client's lookup costs ~2 µs, a few
    times per request on the match path."""
    return metric.labels(*values)


class IndexLookups:
    """Runs the index lookups of concurrent match requests together, on one worker thread.

    Why: at 1M pdq hashes one lookup is ~0.1 ms of memory-bound work. On the event loop it
    runs in series with all the HTTP work; here it runs beside it (the compiled query kernel
    releases the GIL). Lookups that arrive while a batch runs wait for the next batch, so
    under load a batch holds about as many lookups as requests are waiting, and
    ``Matcher.query_many`` takes each (type, threshold) group in one call. An idle node pays
    one thread hop per request. Answers are those of ``Matcher.query``; a lookup queued after
    a revoke was applied never sees the revoked entry.
    """

    def __init__(self, service: NodeService) -> None:
        self._service = service
        self._pending: dict[tuple[str, int], list[tuple[str, Found]]] = {}
        self._drainer: asyncio.Task[None] | None = None
        self._thread: ThreadPoolExecutor | None = None

    def query(self, hash_type: str, value: str, threshold: int) -> Found:
        """A future of ``Matcher.query(hash_type, value, threshold)``."""
        loop = asyncio.get_running_loop()
        found: Found = loop.create_future()
        self._pending.setdefault((hash_type, threshold), []).append((value, found))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        return found

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="index")
        try:
            while self._pending:
                batch, self._pending = self._pending, {}
                try:
                    answers = await loop.run_in_executor(self._thread, self._lookup, batch)
                except Exception as exc:  # handed to every request of the batch
                    for waiting in batch.values():
                        for _, found in waiting:
                            if not found.done():
                                found.set_exception(exc)
                    continue
                for waiting, results in zip(batch.values(), answers, strict=True):
                    for (_, found), result in zip(waiting, results, strict=True):
                        if not found.done():  # done: the request was cancelled
                            found.set_result(result)
        finally:
            self._drainer = None

    def _lookup(self, batch: dict[tuple[str, int], list[tuple[str, Found]]]
                ) -> list[list[list[tuple[int, int]]]]:
        matcher = self._service.matcher  # read here: reload_index may have swapped it
        return [matcher.query_many(hash_type, [value for value, _ in waiting], threshold)
                for (hash_type, threshold), waiting in batch.items()]

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None


def _provenance(store: Store, entry_ids: set[int]
                ) -> tuple[dict[int, EntryRow], dict[str, dict[str, int]]]:
    """The entries behind matches and the feedback on their records and items, in one read."""
    entries = store.entries(entry_ids)
    refs = {ref for e in entries.values() for ref in (e.record, f"{e.record}/{e.item}")}
    return entries, (store.feedback_counts(refs) if refs else {})


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


_ALL_TYPES = ("pdq", "phash", "dhash", "ahash", "whash", "md5", "sha256", "photodna")


def _in_force(entry: EntryRow | None, now: int, lists: frozenset[str] | None) -> bool:
    if entry is None or not entry.active:
        return False
    if entry.expires is not None and entry.expires <= now:
        return False
    return lists is None or entry.list in lists


def _merge(feedback: dict[str, dict[str, int]], entry: EntryRow) -> dict[str, int]:
    total: dict[str, int] = {}
    for ref in (entry.record, f"{entry.record}/{entry.item}"):
        for verdict, n in feedback.get(ref, {}).items():
            total[verdict] = total.get(verdict, 0) + n
    return total
