"""Signing the receipts this node owes (SPEC §21): word back to origins that their adds match
here and their revokes are applied.

What is owed is read from the store (every add or revoke of another origin stored with its
body since the last receipt), so nothing is held in memory between rounds and a crash loses
nothing: the receipts and the store's mark of what they cover commit together. A round runs
every ``[receipts] interval_seconds`` (put off while a pull stores records, up to
``MAX_DEFERRED_ROUNDS`` intervals, and once more when federation stops): it batches what is
owed into one receipt record per (target origin, distribution), cut at 512 targets
(``protocol.receipts.batch``), so a node signs at most one receipt per origin and
distribution per interval unless more than 512 records of it arrived meanwhile. Receipts then
travel like any record of our log: peers pull them, relays pass them on, and each body goes
only where its targets' bodies may go.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hashmesh.node.federation.interface import LocalNode
from hashmesh.node.store.interface import NodeStore
from hashmesh.protocol.records import SignedRecord

log = logging.getLogger("hashmesh.receipts")

# Owed records read per transaction: ~40 receipt records of 512 targets.
ROUND_RECORDS = 20_000
# Rounds put off while a pull stores records: a round's transaction sits between the pull's
# page commits (bench/RESULTS.md), so a bulk sync is receipted once it is done, unless it
# lasts longer than this many intervals.
MAX_DEFERRED_ROUNDS = 12


class ReceiptSender:
    """Signs owed receipts in rounds; ``notify`` hints peers that our log grew."""

    def __init__(self, node: LocalNode, notify: Callable[[], None],
                 busy: Callable[[], bool] = lambda: False) -> None:
        self.node = node
        self.notify = notify
        self.busy = busy  # a pull is storing records: a round now would slow it
        self._lock = asyncio.Lock()

    async def run(self) -> None:
        """Forever: a round every ``interval_seconds``, put off while a pull is storing
        records (a bulk sync), but never more than ``MAX_DEFERRED_ROUNDS`` in a row."""
        seconds = self.node.config.receipts.interval_seconds
        deferred = 0
        while True:
            await asyncio.sleep(seconds)
            if self.busy() and deferred < MAX_DEFERRED_ROUNDS:
                deferred += 1
                continue
            deferred = 0
            await self.flush()

    async def flush(self) -> int:
        """Sign everything owed now; returns how many receipt records were signed."""
        signed = 0
        identity = self.node.identity
        async with self._lock:
            while True:
                def sign(store: NodeStore) -> tuple[list[SignedRecord], int] | None:
                    return store.sign_owed_receipts(signer=identity.signer,
                                                    origin=identity.origin, limit=ROUND_RECORDS)

                done = await self.node.store.write(sign)
                if done is None:
                    break  # signing is blocked: what is owed waits
                records, read = done
                for record in records:
                    self.node.metrics.records_signed.labels(record.head.type).inc()
                    log.info("signed receipt seq=%d id=%s", record.head.seq, record.id)
                signed += len(records)
                if read < ROUND_RECORDS:
                    break
        if signed:
            self.notify()
        return signed


# Per-node figures read the receipts of this window, at most this many (the newest).
FIGURES_WINDOW_MS = 30 * 86_400_000
FIGURES_MAX_ROWS = 200_000


def percentiles(delays_ms: Sequence[int]) -> dict[str, float | int]:
    """Count and nearest-rank p50, p90, p99 and max of delays, in seconds."""
    ordered = sorted(max(0, d) for d in delays_ms)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)] / 1000

    return {"count": len(ordered), "p50": rank(0.5), "p90": rank(0.9), "p99": rank(0.99),
            "max": ordered[-1] / 1000}


def figures(delays: Sequence[tuple[str, str, int]], last_heard: Mapping[str, int],
            name_of: Callable[[str], str | None]) -> list[dict[str, Any]]:
    """Per receipting node: time-to-active and time-to-removal percentiles (seconds) and when
    we last heard anything from it; every node we hold records of is listed."""
    by_node: dict[str, dict[str, list[int]]] = {}
    for node, kind, delay in delays:
        by_node.setdefault(node, {}).setdefault(kind, []).append(delay)
    result = []
    for node in sorted(by_node.keys() | last_heard.keys(), key=lambda n: (name_of(n) or n, n)):
        kinds = by_node.get(node, {})
        result.append({
            "origin": node, "name": name_of(node), "last_heard_ms": last_heard.get(node),
            "time_to_active": percentiles(kinds["active"]) if "active" in kinds else None,
            "time_to_removal": percentiles(kinds["removed"]) if "removed" in kinds else None,
        })
    return result
