"""The invariant "the index holds exactly what the store has in force", checked.

A node whose index lacks a stored hash silently stops matching it (issue 18: 1,031 hashes
committed and never indexed); one whose index holds a revoked hash pays a store lookup for
it on every query. ``compare_index`` says which, for ``GET /v1/index/check`` and
``hashmesh verify --index`` and for tests after every end-to-end scenario.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Any

import numpy as np

from hashmesh.node.matching.answers import Matching
from hashmesh.node.store.sqlite import Store, now_ms

SAMPLE = 20  # ids of each kind of difference shown


@dataclass(frozen=True)
class IndexCheck:
    store: int
    index: int
    missing: list[int]  # in force in the store, not in the index (first SAMPLE)
    missing_count: int
    extra: list[int]  # in the index, not in force in the store (first SAMPLE)
    extra_count: int

    @property
    def ok(self) -> bool:
        return not self.missing_count and not self.extra_count

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "store": self.store, "index": self.index,
                "missing": self.missing, "missing_count": self.missing_count,
                "extra": self.extra, "extra_count": self.extra_count}


def _in_force(store: Store, now: int) -> np.ndarray:
    ids = array("q")
    for chunk in store.in_force_ids(now):
        ids.extend(chunk)
    return np.frombuffer(ids, dtype=np.int64) if ids else np.zeros(0, dtype=np.int64)


def _expiring(store: Store, after: int, until: int) -> np.ndarray:
    return np.asarray(store.expired_entries(after, until), dtype=np.int64)


async def compare_index(matching: Matching) -> IndexCheck:
    """Compare the ids in force in the store with the ids the index matches, now.

    Entries that expired since the last expiry sweep may still be in the index (answers
    filter on expiry; the next sweep drops them): they count as neither missing nor extra.
    The caller makes sure no committed change is still on its way to the index.
    """
    now = now_ms()
    swept = matching.swept_until
    stored = await matching.store.read(lambda s: _in_force(s, now))
    expiring = (await matching.store.read(lambda s: _expiring(s, swept, now))
                if now > swept else np.zeros(0, dtype=np.int64))
    indexed = matching.matcher.live_ids()
    missing = np.setdiff1d(stored, indexed)
    extra = np.setdiff1d(indexed, np.union1d(stored, expiring))
    duplicates = len(indexed) - len(np.unique(indexed))
    return IndexCheck(store=len(stored), index=len(indexed),
                      missing=missing[:SAMPLE].tolist(), missing_count=len(missing),
                      extra=extra[:SAMPLE].tolist(), extra_count=len(extra) + duplicates)
