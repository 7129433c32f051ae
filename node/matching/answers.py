"""Answering match queries: the index finds candidates, the store says what is in force.

``Matching`` is shared by the node process (``NodeService``) and by each match worker process
(``node/api/match_worker.py``). Both hold a ``Matcher`` loaded from the store without re-verifying
any signature. The node updates its index with every committed write; a worker follows the
store instead (``node/api/match_worker.py``), and catches up before each batch of lookups
(``Matching.catch_up``), so no process misses a hash whose add was acknowledged before the
query was sent. Either way an answer is checked against the store: a candidate whose entry
is no longer active, has expired or is in a list the query did not ask for is left out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from array import array
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from hashmesh.node.config.node import NodeConfig
from hashmesh.node.matching.image_query import hash_image_query
from hashmesh.node.matching.matcher import TYPE_SPECS, Matcher, pack_many
from hashmesh.node.matching.origins import display_name, origin_profile
from hashmesh.node.matching.verdicts import (
    ORIGINAL,
    DisputeState,
    Hit,
    Policy,
    dispute_state,
    final_verdict,
    item_verdict,
    standing_verdicts,
    strongest,
)
from hashmesh.node.runtime.metrics import NodeMetrics, labelled
from hashmesh.node.runtime.pressure import MatchPressure
from hashmesh.node.store.interface import AsyncStore, EntryRow, NodeStore
from hashmesh.node.store.sqlite import now_ms
from hashmesh.protocol.records import ProfileBody

log = logging.getLogger("hashmesh.matching")

ALL_TYPES = ("pdq", "phash", "dhash", "ahash", "whash", "md5", "sha256", "photodna")

Found = asyncio.Future[list[tuple[int, int]]]

SETTLE_SECONDS = 0.5  # how often a bulk load's delta is looked at (``Matching.settle_index``)


@dataclass(frozen=True)
class HashQuery:
    """One hash to look up. ``transform`` names the variant of the query image it was taken
    from (``node/matching/image_query.py``); a hit reports it, and the policy may count a
    transformed hit as weaker."""

    type: str
    value: str
    transform: str = ORIGINAL

    def to_json(self) -> dict[str, str]:
        shown = {"type": self.type, "value": self.value}
        if self.transform != ORIGINAL:
            shown["transform"] = self.transform
        return shown


@dataclass(frozen=True)
class Match:
    """One stored hash within the threshold of a query, with its provenance."""

    entry: EntryRow
    distance: int
    threshold: int
    origin_name: str | None
    feedback: dict[str, int]
    origin_profile: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        e = self.entry
        return {
            "record": e.record,
            "item": f"{e.record}/{e.item}",
            "origin": e.origin,
            "origin_name": self.origin_name,
            "origin_profile": self.origin_profile,
            "list": e.list,
            "labels": list(e.labels),
            "tier": e.tier,
            "hash": {"type": e.hash_type, "value": e.value, "quality": e.quality},
            "distance": self.distance,
            "threshold": self.threshold,
            "expires": e.expires,
            "feedback": self.feedback,
        }


IMAGE_CONCURRENCY = 2  # images decoded at once per process (bounds memory, not cores)


class Matching:
    """A match index loaded from the store, and the match answers read from both.

    ``on_stale`` is called with the ids of candidates that the store says are no longer in
    force (revoked or expired). A match worker learns of revocations this way, on the first
    lookup that finds one; the node applies them to its index itself and passes nothing.

    ``catch_up`` is awaited before each batch of index lookups, by a process whose index
    follows another's writes (a match worker): it indexes what was committed and not yet
    followed, so that a hash whose add was acknowledged before a query was sent is matched
    by that query, whichever process answers it.
    """

    def __init__(self, config: NodeConfig, store: AsyncStore, metrics: NodeMetrics,
                 origin_name: Callable[[str], str | None], *,
                 on_stale: Callable[[list[int]], None] | None = None,
                 catch_up: Callable[[], Awaitable[None]] | None = None) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.origin_name = origin_name
        self.on_stale = on_stale
        self.catch_up = catch_up
        self.matcher = Matcher()
        self.lookups = IndexLookups(self)
        # match requests in flight: the feed and TAXII page builders yield to them
        self.pressure = MatchPressure()
        self._policy: tuple[object, Policy] | None = None
        self._swept_until = 0  # entries that expired up to this time are out of the index
        # Decoding takes up to MAX_DECODE_BYTES (and ~2x that with its copies) per image:
        # images beyond this many wait their turn instead of multiplying the peak memory.
        self._image_slots = asyncio.Semaphore(IMAGE_CONCURRENCY)

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

    @property
    def swept_until(self) -> int:
        """Entries that expired up to this time (ms) are out of the index."""
        return self._swept_until

    async def sweep_expired(self, now: int | None = None,
                            remove: Callable[[list[int]], Awaitable[None]] | None = None
                            ) -> int:
        """Drop the hashes that expired since the last sweep from the index (the store keeps
        them, and match answers filter on expiry too). The index is loaded without the hashes
        expired by then, so the first sweep starts where that load stopped.

        ``remove``: how to take them out, when index changes must keep commit order (the
        node's index writer); by default, straight from the matcher.
        """
        until = now_ms() if now is None else now
        after = self._swept_until
        expired = await self.store.read(lambda s: s.expired_entries(after, until))
        if remove is not None:
            await remove(expired)
        else:
            for entry_id in expired:
                self.matcher.remove(entry_id)
        self._swept_until = max(self._swept_until, until)
        if expired:
            self.update_gauges()
        return len(expired)

    @property
    def policy(self) -> Policy:
        """The node's verdict policy (``[match]``), built once per config object."""
        cached = self._policy
        if cached is None or cached[0] is not self.config.match:
            cached = self._policy = (self.config.match, Policy.from_config(self.config.match))
        return cached[1]

    async def settle_index(self) -> None:
        """Merge what a bulk load left in the index's delta once it has stopped
        (``HammingIndex.settle``): until then every query scans it. Run every
        ``SETTLE_SECONDS`` by the node and by each match worker."""
        if self.matcher.unsettled():
            await asyncio.to_thread(self.matcher.settle)

    def update_gauges(self) -> None:
        for hash_type in ALL_TYPES:
            self.metrics.hashes_active.labels(hash_type).set(self.matcher.count(hash_type))
        self.metrics.index_bytes.set(self.matcher.memory_bytes())

    async def match(self, queries: Sequence[HashQuery], thresholds: dict[str, int],
                    lists: frozenset[str] | None, actor: str) -> list[dict[str, Any]]:
        """``answer``'s per-query results alone (each match carries its item's verdict)."""
        answer = await self.answer(queries, thresholds, lists, actor)
        results: list[dict[str, Any]] = answer["results"]
        return results

    async def answer(self, queries: Sequence[HashQuery], thresholds: dict[str, int],
                     lists: frozenset[str] | None, actor: str, policy: Policy | None = None,
                     *, keep_empty: Callable[[HashQuery], bool] | None = None
                     ) -> dict[str, Any]:
        """For each query hash, every stored hash in force within the threshold, and the
        verdict on every stored item hit (``node/matching/verdicts.py``).

        All of ``queries`` are taken to be hashes of one image: hits on one item by several
        of them corroborate each other. ``keep_empty(query)`` says whether a query that found
        nothing still gets a result entry (default: every one does).

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
        policy = self.policy if policy is None else policy
        entry_ids = {entry_id for _, _, found in hits for entry_id, _ in found}
        if not entry_ids:  # most queries: nothing to read, weigh or audit (~3 us less a miss)
            self.metrics.match_seconds.observe(time.perf_counter() - started)
            return {"verdict": "none", "policy": policy.to_json(), "items": [], "results": [
                {"query": query.to_json(), "threshold": threshold, "matches": []}
                for query, threshold, _ in hits if keep_empty is None or keep_empty(query)]}
        entries, feedback, frozen, profiles = await self.store.read(
            partial(_provenance, entry_ids=entry_ids))
        now = now_ms()
        if self.on_stale is not None:
            stale = [i for i in entry_ids if not _in_force(entries.get(i), now, None)]
            if stale:
                self.on_stale(stale)
        per_query = []
        by_item: dict[str, list[Hit]] = {}
        for query, threshold, found in hits:
            matches = [
                Match(entries[entry_id], distance, threshold,
                      display_name(self.origin_name(entries[entry_id].origin),
                                   profiles.get(entries[entry_id].origin)),
                      _counts(feedback, entries[entry_id]),
                      origin_profile(self.origin_name(entries[entry_id].origin),
                                     profiles.get(entries[entry_id].origin)))
                for entry_id, distance in found
                if _in_force(entries.get(entry_id), now, lists)
            ]
            if matches:
                labelled(self.metrics.match_hits, query.type).inc(len(matches))
            for m in matches:
                by_item.setdefault(f"{m.entry.record}/{m.entry.item}", []).append(
                    Hit(query.type, m.distance, threshold, query.transform))
            per_query.append((query, threshold, matches))
        items = _verdicts(by_item, per_query, feedback, frozen, policy) if by_item else {}
        results = []
        for query, threshold, matches in per_query:
            if matches or keep_empty is None or keep_empty(query):
                results.append({"query": query.to_json(), "threshold": threshold, "matches": [
                    {**m.to_json(), "verdict": items[f"{m.entry.record}/{m.entry.item}"][
                        "verdict"]} for m in matches]})
        self.metrics.match_seconds.observe(time.perf_counter() - started)
        if by_item:
            # counts, matched records and their origins (for the transparency report);
            # never a query hash: the audit trail is exported to auditors
            self.store.audit_later(actor, "match", {
                "queries": len(queries),
                "matched_records": sorted({e.record for e in entries.values()}),
                "origins": sorted({e.origin for e in entries.values()})})
        return {"verdict": strongest(i["verdict"] for i in items.values()) if items else "none",
                "policy": policy.to_json(), "items": list(items.values()), "results": results}

    async def match_image(self, data: bytes, thresholds: dict[str, int],
                          lists: frozenset[str] | None, actor: str,
                          policy: Policy | None = None) -> dict[str, Any]:
        """Hash image bytes in memory (never stored) and match every hash: the image's own,
        and the PDQ of its flips, rotations and trimmed margin (``image_query``). Results list
        every own hash, and a variant only where it found something."""
        loop = asyncio.get_running_loop()
        async with self._image_slots:
            computed, variants = await loop.run_in_executor(None, hash_image_query, data)
        queries = [HashQuery(h.type, h.value, h.transform) for h in variants]
        answer = await self.answer(queries, thresholds, lists, actor, policy,
                                   keep_empty=lambda q: q.transform == ORIGINAL)
        return {"hashes": [{"type": h.type, "value": h.value, "quality": h.quality}
                           for h in computed], **answer}

    def close(self) -> None:
        self.lookups.close()


class IndexLookups:
    """Runs the index lookups of concurrent match requests together, on one worker thread.

    Why: at 1M pdq hashes one lookup is ~0.1 ms of memory-bound work. On the event loop it
    runs in series with all the HTTP work; here it runs beside it (the compiled query kernel
    releases the GIL). Lookups that arrive while a batch runs wait for the next batch, so
    under load a batch holds about as many lookups as requests are waiting, and
    ``Matcher.query_many`` takes each (type, threshold) group in one call. An idle node pays
    one thread hop per request (a worker or follower process also one indexed read, its
    ``catch_up``, per batch). Answers are those of ``Matcher.query``; a lookup queued after
    a revoke was applied never sees the revoked entry, and, where ``catch_up`` is set, a
    lookup queued after an add was committed sees the added entry.
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
                catch_up = self._matching.catch_up
                if catch_up is not None:
                    try:
                        await catch_up()
                    except Exception as exc:  # the store cannot be read: answer from the index
                        log.warning("index not caught up before lookups: %s", exc)
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
                 ) -> tuple[npt.NDArray[np.int64], bytes | bytearray]:
    """The ids and packed values of every hash in force of one type, read and packed a chunk
    at a time (on a store reader thread), so that loading never holds them all as strings."""
    if hash_type != "photodna":  # hex values: the store may decode them itself (PostgreSQL)
        decoded = store.active_entries_packed(hash_type, TYPE_SPECS[hash_type].bits // 8,
                                              through)
        if decoded is not None:
            return decoded
    ids = array("q")
    packed = bytearray()
    for chunk_ids, values in store.active_entries(hash_type, through):
        ids.extend(chunk_ids)
        packed += pack_many(hash_type, values)
    return np.frombuffer(ids, dtype=np.int64), packed


Feedback = dict[str, dict[str, str]]  # target ref -> origin -> its standing verdict


def _provenance(store: NodeStore, entry_ids: set[int]
                ) -> tuple[dict[int, EntryRow], Feedback, frozenset[str],
                           dict[str, ProfileBody]]:
    """The entries behind matches, each origin's verdict on their records and items, the
    frozen origins (whose verdicts do not count) and the origins' profiles, in one read."""
    entries = store.entries(entry_ids)
    profiles = store.profiles({e.origin for e in entries.values()})
    refs = {ref for e in entries.values() for ref in (e.record, f"{e.record}/{e.item}")}
    if not refs:
        return entries, {}, frozenset(), profiles
    feedback = store.feedback_verdicts(refs)
    return entries, feedback, (frozenset(store.frozen()) if feedback else frozenset()), profiles


def _verdicts(by_item: dict[str, list[Hit]],
              per_query: list[tuple[HashQuery, int, list[Match]]], feedback: Feedback,
              frozen: frozenset[str], policy: Policy) -> dict[str, dict[str, Any]]:
    """Each hit item's verdict, with the hits and the dispute state behind it."""
    entry_of = {f"{m.entry.record}/{m.entry.item}": m.entry
                for _, _, matches in per_query for m in matches}
    items: dict[str, dict[str, Any]] = {}
    for ref, item_hits in by_item.items():
        entry = entry_of[ref]
        state: DisputeState = dispute_state(
            standing_verdicts(feedback, entry.record, entry.item), entry.origin, frozen, policy)
        verdict = final_verdict(item_verdict(item_hits, policy), state)
        best: dict[tuple[str, str], Hit] = {}
        for hit in item_hits:
            key = (hit.hash_type, hit.transform)
            if key not in best or hit.distance < best[key].distance:
                best[key] = hit
        items[ref] = {
            "item": ref, "record": entry.record, "origin": entry.origin, "verdict": verdict,
            "hits": [{"type": h.hash_type, "distance": h.distance, "threshold": h.threshold,
                      **({"transform": h.transform} if h.transform != ORIGINAL else {})}
                     for h in sorted(best.values(), key=lambda h: (h.distance, h.hash_type))],
            "not_ncii_origins": len(state.not_ncii),
        }
    return items


def _in_force(entry: EntryRow | None, now: int, lists: frozenset[str] | None) -> bool:
    if entry is None or not entry.active:
        return False
    if entry.expires is not None and entry.expires <= now:
        return False
    return lists is None or entry.list in lists


def _counts(feedback: Feedback, entry: EntryRow) -> dict[str, int]:
    """Verdict counts on an entry's record and item together (what answers always showed)."""
    total: dict[str, int] = {}
    for ref in (entry.record, f"{entry.record}/{entry.item}"):
        for verdict in feedback.get(ref, {}).values():
            total[verdict] = total.get(verdict, 0) + 1
    return total
