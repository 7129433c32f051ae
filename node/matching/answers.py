"""Answering match queries: the index finds candidates, the store says what is in force.

``Matching`` is shared by the node process (``NodeService``) and by each match worker process
(``node/api/match_worker.py``). Both hold a ``Matcher`` loaded from the store without re-verifying
any signature. The node updates its index with every committed write; a worker follows the
store instead (``node/api/match_worker.py``). Either way an answer is checked against the store:
a candidate whose entry is no longer active, has expired or is in a list the query did not
ask for is left out, so an index that is a moment behind can cost a lookup, never a wrong
answer.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from hashmesh.node.config.node import NodeConfig
from hashmesh.node.matching.hasher import hash_image
from hashmesh.node.matching.matcher import Matcher, pack_many
from hashmesh.node.runtime.metrics import NodeMetrics, labelled
from hashmesh.node.store.interface import AsyncStore, EntryRow, NodeStore
from hashmesh.node.store.sqlite import now_ms

ALL_TYPES = ("pdq", "phash", "dhash", "ahash", "whash", "md5", "sha256", "photodna")

Found = asyncio.Future[list[tuple[int, int]]]


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


class Matching:
    """A match index loaded from the store, and the match answers read from both.

    ``on_stale`` is called with the ids of candidates that the store says are no longer in
    force (revoked or expired). A match worker learns of revocations this way, on the first
    lookup that finds one; the node applies them to its index itself and passes nothing.
    """

    def __init__(self, config: NodeConfig, store: AsyncStore, metrics: NodeMetrics,
                 origin_name: Callable[[str], str | None], *,
                 on_stale: Callable[[list[int]], None] | None = None) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.origin_name = origin_name
        self.on_stale = on_stale
        self.matcher = Matcher()
        self.lookups = IndexLookups(self)
        self._swept_until = 0  # entries that expired up to this time are out of the index

    async def reload_index(self, through: int | None = None) -> None:
        """(Re)build the matcher from the hashes in force; no signature is re-verified.

        ``through``: load only entries with ids up to it (a worker follows later ones).
        """
        self._swept_until = now_ms()  # what expired before now is not loaded
        matcher = Matcher()
        types = await self.store.read(lambda s: s.active_hash_types())
        for hash_type in types:
            ids, packed = await self.store.read(partial(_read_packed, hash_type=hash_type,
                                                        through=through))
            matcher.bulk_load_packed(hash_type, ids, packed)
        self.matcher = matcher
        self.update_gauges()

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
            self.update_gauges()
        return len(expired)

    def update_gauges(self) -> None:
        for hash_type in ALL_TYPES:
            self.metrics.hashes_active.labels(hash_type).set(self.matcher.count(hash_type))
        self.metrics.index_bytes.set(self.matcher.memory_bytes())

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
        if self.on_stale is not None:
            stale = [i for i in entry_ids if not _in_force(entries.get(i), now, None)]
            if stale:
                self.on_stale(stale)
        results = []
        for query, threshold, found in hits:
            matches = [
                Match(entries[entry_id], distance, threshold,
                      self.origin_name(entries[entry_id].origin),
                      _merge(feedback, entries[entry_id]))
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

    def close(self) -> None:
        self.lookups.close()


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

    def __init__(self, matching: Matching) -> None:
        self._matching = matching
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
        matcher = self._matching.matcher  # read here: reload_index may have swapped it
        return [matcher.query_many(hash_type, [value for value, _ in waiting], threshold)
                for (hash_type, threshold), waiting in batch.items()]

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None


def _read_packed(store: NodeStore, hash_type: str, through: int | None
                 ) -> tuple[npt.NDArray[np.int64], bytearray]:
    """The ids and packed values of every hash in force of one type, read and packed a chunk
    at a time (on a store reader thread), so that loading never holds them all as strings."""
    ids = array("q")
    packed = bytearray()
    for chunk_ids, values in store.active_entries(hash_type, through):
        ids.extend(chunk_ids)
        packed += pack_many(hash_type, values)
    return np.frombuffer(ids, dtype=np.int64), packed


def _provenance(store: NodeStore, entry_ids: set[int]
                ) -> tuple[dict[int, EntryRow], dict[str, dict[str, int]]]:
    """The entries behind matches and the feedback on their records and items, in one read."""
    entries = store.entries(entry_ids)
    refs = {ref for e in entries.values() for ref in (e.record, f"{e.record}/{e.item}")}
    return entries, (store.feedback_counts(refs) if refs else {})


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
