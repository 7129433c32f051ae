"""The compiled query kernel: same answers as the index's arrays imply, and it runs without the
GIL so that lookups on worker threads do not stall the event loop or each other."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from hashmesh.node.matching.matcher import MIN_INDEXED_ROWS, HammingIndex


def random_index(rows: int, seed: int = 3) -> tuple[HammingIndex, np.ndarray]:
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**63, size=(rows, 4), dtype=np.int64).astype(np.uint64)
    index = HammingIndex(256, 31)
    index.bulk_load(np.arange(rows, dtype=np.int64), hashes.tobytes())
    return index, hashes


def test_a_hash_found_through_every_chunk_is_reported_once_with_distance_zero() -> None:
    index, hashes = random_index(2 * MIN_INDEXED_ROWS)
    ids, dist = index.query(hashes[17].tobytes(), 31)
    assert ids.tolist() == [17]
    assert dist.tolist() == [0]


def test_many_queries_in_one_call_equal_one_query_at_a_time() -> None:
    index, hashes = random_index(3 * MIN_INDEXED_ROWS)
    rng = np.random.default_rng(5)
    queries = hashes[rng.integers(0, len(hashes), 40)].copy()
    queries[::2, 0] ^= np.uint64(0xFF)  # 8 bits away from a stored hash
    packed = [q.tobytes() for q in queries]
    together = index.query_many(packed, 31)
    for value, (ids, dist) in zip(packed, together, strict=True):
        alone_ids, alone_dist = index.query(value, 31)
        assert ids.tolist() == alone_ids.tolist()
        assert dist.tolist() == alone_dist.tolist()
    assert sum(len(ids) for ids, _ in together) >= 40


def ticks_while(busy: Callable[[], bool]) -> list[float]:
    ticks: list[float] = []
    while busy():
        ticks.append(time.perf_counter())
    return ticks


def test_queries_run_without_holding_the_gil() -> None:
    """While one thread is inside a long query_many call, another Python thread keeps running
    at a good fraction of its speed alone. Threshold 100 makes the index scan every row per
    query, so nearly all of the call is the compiled loop. (Measured here: ~1% of the alone
    rate with the GIL held through the call, against 16-100% without.)"""
    index, hashes = random_index(25 * MIN_INDEXED_ROWS)
    queries = [h.tobytes() for h in hashes[:300]]
    index.query_many(queries[:1], 100)  # compiled before timing
    stop_at = time.perf_counter() + 0.1
    alone = ticks_while(lambda: time.perf_counter() < stop_at)
    alone_rate = len(alone) / (alone[-1] - alone[0])
    window: list[float] = []

    def lookups() -> None:
        start = time.perf_counter()
        index.query_many(queries, 100)
        window.extend([start, time.perf_counter()])

    worker = threading.Thread(target=lookups)
    worker.start()
    ticks = ticks_while(worker.is_alive)
    worker.join()
    start, end = window
    inside = [t for t in ticks if start < t < end]
    assert end - start > 0.05, "the call was too short to tell"
    assert len(inside) / (end - start) > 0.05 * alone_rate
