"""The compiled inner loops of the Hamming index: probe buckets, check candidates, scan the rest.

Why this exists (issue 5): written with numpy, one query at 1M PDQ hashes was ~20 numpy calls
and as many temporaries, and held the GIL between them, so two threads barely beat one and the
event loop waited on lookups. Here a whole batch of queries runs as one numba-compiled call that
releases the GIL, so lookups on worker threads run in parallel with each other and with the
event loop.

Nearly all of a query's time is cache misses: at 1M, ~1,800 probes each read a bucket bound,
a row number and a 32-byte hash from tables of 30-50 MB. Each query therefore runs in passes
(bucket bounds, candidate rows, distances) and every pass prefetches the line it will need a
few iterations ahead, so many misses are in flight at once. Measured at 1M on a 2-core EPYC
VM: one nested loop ~150 us a query, passes ~150 us, passes with prefetch ~90 us (the
whole search, with deduplication and ordering, ~105 us).

The layout these loops read is described in ``matcher.py``: ``offsets`` holds each chunk's
direct-address table (2**w + 1 absolute positions into ``rows``), ``rows`` the row numbers
sorted by chunk key, ``hashes`` the packed little-endian uint64 words of every row. A probe
plan is three parallel arrays: for probe p the key is
``(query_key[chunk[p]] ^ xor[p]) + base[p]``.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic


def _can_cache() -> bool:
    """Whether numba can keep compiled code on disk, beside this file or in the user's cache
    directory. With neither writable (a read-only install run by a user without a home)
    ``cache=True`` fails at import; the node then compiles afresh at each start (~8 s)."""

    def probe() -> int:
        return 0

    try:
        numba.njit(cache=True)(probe)
    except RuntimeError:
        return False
    return True


CACHE_ON_DISK = _can_cache()
_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)
_ONE = np.uint64(1)
_TWO = np.uint64(2)
_FOUR = np.uint64(4)
_FIFTY_SIX = np.uint64(56)
_INITIAL_HITS = 64
# Rows checked per round when scanning (the delta, or a threshold too wide to probe).
_SCAN_BLOCK = 4096
# How many iterations ahead each pass prefetches: 16 measured best of 8/16/32/64 at 1M.
_AHEAD = 16


def _prefetch_intrinsic(typingctx: Any, array: Any, index: Any) -> Any:
    """Ask the CPU to start loading array[index] (its first element along other axes) into
    cache. numba has no prefetch of its own; this emits LLVM's ``llvm.prefetch``."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        array_type = signature.args[0]
        arr = context.make_array(array_type)(context, builder, args[0])
        zero = context.get_constant(types.intp, 0)
        position = [args[1]] + [zero] * (array_type.ndim - 1)
        pointer = cgutils.get_item_pointer(  # type: ignore[no-untyped-call]
            context, builder, array_type, arr, position
        )
        byte_pointer = builder.bitcast(pointer, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fn_type = ir.FunctionType(ir.VoidType(), [byte_pointer.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(  # type: ignore[no-untyped-call]
            builder.module, fn_type, "llvm.prefetch.p0"
        )
        read, keep_in_all_levels, data_cache = (ir.Constant(i32, v) for v in (0, 3, 1))
        builder.call(fn, [byte_pointer, read, keep_in_all_levels, data_cache])
        return context.get_dummy_value()

    return types.void(array, index), codegen


_prefetch: Any = intrinsic(_prefetch_intrinsic)


@numba.njit(inline="always", cache=CACHE_ON_DISK)
def _popcount(x: Any) -> int:
    """Bits set in a uint64 (LLVM turns this idiom into one POPCNT instruction)."""
    x = x - ((x >> _ONE) & _M1)
    x = (x & _M2) + ((x >> _TWO) & _M2)
    x = (x + (x >> _FOUR)) & _M4
    return int((x * _H01) >> _FIFTY_SIX)


@numba.njit(inline="always", cache=CACHE_ON_DISK)
def _distance(hashes: Any, row: int, queries: Any, qi: int) -> int:
    """Hamming distance of hashes[row] to queries[qi] (no early exit: branches cost more)."""
    d = 0
    for j in range(hashes.shape[1]):
        d += _popcount(hashes[row, j] ^ queries[qi, j])
    return d


@numba.njit(inline="always", cache=CACHE_ON_DISK)
def _chunk_key(queries: Any, qi: int, start: int, width: int) -> int:
    """The ``width`` bits (width < 64) of query ``qi`` from bit ``start``."""
    j = start // 64
    t = start % 64
    col = queries[qi, j] >> np.uint64(t)
    if t + width > 64:
        col = col | (queries[qi, j + 1] << np.uint64(64 - t))
    return int(col & np.uint64((1 << width) - 1))


@numba.njit(cache=CACHE_ON_DISK)
def _grow(a: Any, size: int) -> Any:
    bigger = np.empty(size, dtype=a.dtype)
    bigger[: a.shape[0]] = a
    return bigger


@numba.njit(cache=CACHE_ON_DISK)
def _append(hit_rows: Any, hit_dist: Any, count: int, rows: Any, dist: Any, n: int
            ) -> tuple[Any, Any]:
    """Store rows[:n] and dist[:n] as hits count..count+n, growing the arrays when full;
    returns the arrays. Hits are appended a batch at a time: reassigning the arrays inside
    the candidate loop kept numba from optimising that loop (~1.5x slower)."""
    if count + n > hit_rows.shape[0]:
        size = max(2 * hit_rows.shape[0], count + n)
        hit_rows = _grow(hit_rows, size)
        hit_dist = _grow(hit_dist, size)
    hit_rows[count : count + n] = rows[:n]
    hit_dist[count : count + n] = dist[:n]
    return hit_rows, hit_dist


@numba.njit(nogil=True, cache=CACHE_ON_DISK)
def _keep_close(candidates: Any, distances: Any, total: int, threshold: int, alive: Any) -> int:
    """Move the live candidates within ``threshold`` to the front; returns how many."""
    kept = 0
    for k in range(total):
        if distances[k] <= threshold and alive[candidates[k]]:
            candidates[kept] = candidates[k]
            distances[kept] = distances[k]
            kept += 1
    return kept


@numba.njit(nogil=True, cache=CACHE_ON_DISK)
def search(
    queries: Any,
    threshold: int,
    chunk_start: Any,
    chunk_width: Any,
    plan_chunk: Any,
    plan_xor: Any,
    plan_base: Any,
    offsets: Any,
    rows: Any,
    hashes: Any,
    alive: Any,
    row_ids: Any,
    scan_from: int,
    scan_to: int,
) -> tuple[Any, Any, Any]:
    """Every live row within ``threshold`` of each query: probed through the plan, plus rows
    [scan_from, scan_to) checked one by one (the unindexed delta, or everything when probing
    would cost more than a scan). An empty plan probes nothing.

    Returns (bounds, ids, distances): query i's hits are ids[bounds[i]:bounds[i+1]], each id
    once, ordered by distance then id. Runs without the GIL.
    """
    nq = queries.shape[0]
    m = chunk_start.shape[0]
    probes = plan_chunk.shape[0]
    bounds = np.zeros(nq + 1, dtype=np.int64)
    hit_rows = np.empty(_INITIAL_HITS, dtype=np.int64)
    hit_dist = np.empty(_INITIAL_HITS, dtype=np.int64)
    qkeys = np.empty(m, dtype=np.int64)
    keys = np.empty(probes, dtype=np.int64)
    starts = np.empty(probes, dtype=np.int64)
    ends = np.empty(probes, dtype=np.int64)
    candidates = np.empty(max(2 * probes, _SCAN_BLOCK), dtype=np.int64)
    distances = np.empty(max(2 * probes, _SCAN_BLOCK), dtype=np.int64)
    count = 0
    for qi in range(nq):
        first = count
        if probes:
            for c in range(m):
                qkeys[c] = _chunk_key(queries, qi, chunk_start[c], chunk_width[c])
            total = _bucket_bounds(qkeys, plan_chunk, plan_xor, plan_base, offsets, keys, starts,
                                   ends)
            if total > candidates.shape[0]:
                candidates = np.empty(total, dtype=np.int64)
                distances = np.empty(total, dtype=np.int64)
            _gather_rows(rows, starts, ends, candidates)
            _candidate_distances(hashes, queries, qi, candidates, total, distances)
            kept = _keep_close(candidates, distances, total, threshold, alive)
            hit_rows, hit_dist = _append(hit_rows, hit_dist, count, candidates, distances, kept)
            count += kept
        for lo in range(scan_from, scan_to, candidates.shape[0]):
            total = min(scan_to - lo, candidates.shape[0])
            for k in range(total):
                candidates[k] = lo + k
            _candidate_distances(hashes, queries, qi, candidates, total, distances)
            kept = _keep_close(candidates, distances, total, threshold, alive)
            hit_rows, hit_dist = _append(hit_rows, hit_dist, count, candidates, distances, kept)
            count += kept
        count = first + _dedupe(hit_rows, hit_dist, first, count)
        bounds[qi + 1] = count
    ids = np.empty(count, dtype=np.int64)
    for qi in range(nq):
        _order_by_distance_then_id(hit_rows, hit_dist, row_ids, ids, bounds[qi], bounds[qi + 1])
    return bounds, ids, hit_dist[:count].astype(np.int32)


@numba.njit(nogil=True, cache=CACHE_ON_DISK)
def _bucket_bounds(
    qkeys: Any, plan_chunk: Any, plan_xor: Any, plan_base: Any, offsets: Any, keys: Any,
    starts: Any, ends: Any,
) -> int:
    """Fill starts/ends with each probed bucket's range in ``rows``; returns the total size."""
    probes = plan_chunk.shape[0]
    for p in range(probes):
        keys[p] = (qkeys[plan_chunk[p]] ^ plan_xor[p]) + plan_base[p]
    total = 0
    for p in range(probes):
        if p + _AHEAD < probes:
            _prefetch(offsets, keys[p + _AHEAD])
        starts[p] = offsets[keys[p]]
        ends[p] = offsets[keys[p] + 1]
        total += ends[p] - starts[p]
    return total


@numba.njit(nogil=True, cache=CACHE_ON_DISK)
def _gather_rows(rows: Any, starts: Any, ends: Any, candidates: Any) -> None:
    """Copy the row numbers of every probed bucket into ``candidates``."""
    probes = starts.shape[0]
    k = 0
    for p in range(probes):
        if p + _AHEAD < probes:
            _prefetch(rows, starts[p + _AHEAD])
        for i in range(starts[p], ends[p]):
            candidates[k] = rows[i]
            k += 1


@numba.njit(nogil=True, cache=CACHE_ON_DISK)
def _candidate_distances(
    hashes: Any, queries: Any, qi: int, candidates: Any, total: int, distances: Any
) -> None:
    """Distance of each candidate row to query ``qi``. A loop of its own with no branch on
    the result: mixed with the collection of hits it ran ~1.5x slower."""
    for k in range(total):
        if k + _AHEAD < total:
            _prefetch(hashes, candidates[k + _AHEAD])
        distances[k] = _distance(hashes, candidates[k], queries, qi)


@numba.njit(inline="always", cache=CACHE_ON_DISK)
def _dedupe(rows: Any, dist: Any, lo: int, hi: int) -> int:
    """Sort rows[lo:hi] (with their distances) and drop repeats; returns how many remain.
    A row close to the query sits in the probed bucket of several chunks."""
    n = hi - lo
    if n <= 1:
        return n
    order = np.argsort(rows[lo:hi])
    sorted_rows = rows[lo:hi][order]
    sorted_dist = dist[lo:hi][order]
    kept = 0
    for k in range(n):
        if k == 0 or sorted_rows[k] != sorted_rows[k - 1]:
            rows[lo + kept] = sorted_rows[k]
            dist[lo + kept] = sorted_dist[k]
            kept += 1
    return kept


@numba.njit(inline="always", cache=CACHE_ON_DISK)
def _order_by_distance_then_id(
    rows: Any, dist: Any, row_ids: Any, ids: Any, lo: int, hi: int
) -> None:
    """Write the ids of rows[lo:hi] into ids[lo:hi] and order both by (distance, id)."""
    for k in range(lo, hi):
        ids[k] = row_ids[rows[k]]
    if hi - lo <= 1:
        return
    by_id = np.argsort(ids[lo:hi], kind="mergesort")
    part_ids = ids[lo:hi][by_id]
    part_dist = dist[lo:hi][by_id]
    by_dist = np.argsort(part_dist, kind="mergesort")
    ids[lo:hi] = part_ids[by_dist]
    dist[lo:hi] = part_dist[by_dist]


@numba.njit(nogil=True, cache=CACHE_ON_DISK)
def insert_sorted(old: Any, at: Any, new: Any, out: Any) -> None:
    """``out`` is ``old`` with ``new[k]`` placed at position ``at[k]`` of ``out`` (``at``
    strictly increasing, ``len(out) == len(old) + len(new)``), written in one pass.

    A merge of the index delta inserts its rows into every chunk's rows array this way
    (``HammingIndex._merge_delta``); numpy's way (a boolean mask of kept positions, then a
    masked assignment) took ~106 ms for 12M rows and 750k inserts, this ~18 ms.
    """
    j = 0
    k = 0
    inserts = at.shape[0]
    next_at = at[0] if inserts else -1
    for i in range(out.shape[0]):
        if i == next_at:
            out[i] = new[k]
            k += 1
            next_at = at[k] if k < inserts else -1
        else:
            out[i] = old[j]
            j += 1
