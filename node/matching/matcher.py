"""In-memory match indexes of one node: exact lookup and Hamming-radius search, updated live.

Why this exists (issue 5): a platform checks every upload against the hash lists, thousands of
lookups a second against millions of hashes, while the lists change all the time. The open-source
peer (python-threatexchange ``PDQIndex``, a faiss multi-hash index) rebuilds from scratch on every
change; here an add or a revoke takes effect at once, without a rebuild.

How (Norouzi et al., "Fast Exact Search in Hamming Space with Multi-Index Hashing"):

* A hash of ``bits`` bits is cut into ``m`` chunks of ``w`` bits, ``w`` near log2(n). If
  d(q, x) <= r and r = a*m + b (0 <= b < m), then one of the first b+1 chunks differs by at most
  ``a`` bits, or one of the others by at most ``a - 1`` (else the chunk distances would add up to
  more than r). So probing every chunk key within that radius of the query's chunk finds every
  stored hash within r: recall is exact for every threshold, the probe radius being derived per
  query. Bits left over when widths are capped belong to no chunk; the bound still holds since
  the chunk distances then add up to at most d.
* Per chunk, the indexed rows are kept CSR-style: row numbers sorted by chunk key plus a
  direct-address offsets table of 2**w + 1 entries, so a probe is two array reads. All chunks
  share one offsets array and one rows array. Candidates are verified by XOR + popcount
  against packed uint64 words. Queries run in ``node.hamming_kernels`` (numba, without the
  GIL); this module builds and maintains the arrays they read.
* Live adds go to a small delta (rows past the indexed ones) that queries scan brute force; it
  is merged into the CSR arrays by sorted insertion when it reaches ``merge_at`` rows.
  Removes clear an ``alive`` flag: O(1), and a removed entry never matches again.
* Bulk loads (``add_many`` of large batches: ``hashmesh add --from``, a sync) let the delta
  grow further before it is merged (``bulk_merge_at``), since a merge copies every chunk's
  arrays whatever the delta's size; ``settle`` merges what is left once the batches stop.
  The price is paid by queries meanwhile (see ``BULK_MAX_DELTA``).
* Readers never lock: every structural change builds new arrays and publishes them with one
  reference swap (``_Snapshot``), so a query sees either the old or the new index, never half
  of each. Writers are serialised by a lock.
* Exact types are the same structure with one chunk and threshold 0: md5 and sha256 as their
  bits, photodna (opaque base64) as the SHA-256 of its canonical text.
"""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from math import comb, log2
from typing import Any

import numpy as np
import numpy.typing as npt

from hashmesh.protocol.errors import UnknownHashTypeError

IntArray = npt.NDArray[np.int64]
WordArray = npt.NDArray[np.uint64]

# Indexes smaller than this are scanned brute force: a scan of 4096 rows beats any probing.
MIN_INDEXED_ROWS = 4096
# Chunk width w is round(log2(n)) within these bounds. Offsets tables are 4 * 2**w bytes per
# chunk, about the size of the chunk's rows array; 23 bits keeps 10M PDQ hashes near 1.2 GB.
MAX_CHUNK_BITS = 23
MIN_CHUNK_BITS = 8
# A merge copies the CSR arrays of every chunk (~0.13 s of CPU at 1M PDQ rows, whatever the
# delta's size), so merging every ``merge_at`` (~3,900 at 1M) rows of a bulk load cost ~30 us a
# hash and half the node's time. While ``add_many`` batches of at least BULK_BATCH rows arrive,
# no more than BULK_QUIET_SECONDS apart, the delta may grow to 1/BULK_DELTA_SHARE of the
# indexed rows, at least BULK_MIN_DELTA and at most BULK_MAX_DELTA: ~2 us a hash at 1M (each
# merge also has a fixed cost of its own, hence the minimum). The trade-off: every query scans
# the delta meanwhile, ~3 ns a PDQ row, so a 1M PDQ query's p50 goes from ~0.08 ms to up to
# ~0.3 ms during a bulk load (bench/RESULTS.md); ``settle`` merges it down within about
# BULK_QUIET_SECONDS after the last batch (the node and its match workers call it).
BULK_BATCH = 256
BULK_QUIET_SECONDS = 0.5
BULK_DELTA_SHARE = 16
BULK_MIN_DELTA = 16384
BULK_MAX_DELTA = 65536
# What ``hamming_kernels.search`` takes for "no probing": an empty layout and plan.
_EMPTY = np.zeros(0, dtype=np.int64)
_EMPTY_U32 = np.zeros(0, dtype=np.uint32)
_NO_PROBES = (_EMPTY, _EMPTY, _EMPTY, _EMPTY, _EMPTY, _EMPTY_U32, _EMPTY_U32)
# Relative costs (ns) used to pick a layout and to choose probing vs scanning for a threshold.
# Measured on a 2-core EPYC VM with cold caches: a probe is ~1 cache miss, a candidate ~2.
PROBE_NS = 15.0
CANDIDATE_NS = 35.0
SCAN_NS_PER_WORD = 4.0


@dataclass(frozen=True)
class TypeSpec:
    """What the matcher needs to know of a hash type: its width and how it is compared."""

    bits: int
    exact: bool
    design_threshold: int  # the threshold the chunk layout is tuned for (any threshold works)


TYPE_SPECS: dict[str, TypeSpec] = {
    "pdq": TypeSpec(256, False, 31),
    "phash": TypeSpec(64, False, 10),
    "dhash": TypeSpec(64, False, 10),
    "ahash": TypeSpec(64, False, 10),
    "whash": TypeSpec(64, False, 10),
    "md5": TypeSpec(128, True, 0),
    "sha256": TypeSpec(256, True, 0),
    "photodna": TypeSpec(256, True, 0),
}


# --------------------------------------------------------------------------------------------
# Layout and probe plans


@dataclass(frozen=True)
class Layout:
    """Where each chunk sits in the hash: (start bit, width), narrowest chunks first."""

    chunks: tuple[tuple[int, int], ...]


def choose_layout(bits: int, n: int, design_threshold: int, exact: bool) -> Layout:
    """Pick the chunking that the cost model says is cheapest for n rows at the design threshold.

    Widths are capped near log2(n) (and at MAX_CHUNK_BITS) so that the offsets tables do not
    outgrow the rows they index. Exact indexes need a single chunk: threshold 0 probes one key.
    """
    cap = max(MIN_CHUNK_BITS, min(MAX_CHUNK_BITS, round(log2(max(n, 2))), bits))
    if exact:
        return Layout(((0, cap),))
    best: tuple[float, Layout] | None = None
    for m in range(2, bits // MIN_CHUNK_BITS + 1):
        layout = _even_layout(bits, m, cap)
        probes, candidates = _plan_cost(layout, design_threshold, n)
        cost = probes * PROBE_NS + candidates * CANDIDATE_NS
        if best is None or cost < best[0]:
            best = (cost, layout)
    assert best is not None
    return best[1]


def _even_layout(bits: int, m: int, cap: int) -> Layout:
    base, extra = divmod(bits, m)
    widths = sorted(min(cap, base + (1 if i < extra else 0)) for i in range(m))
    chunks = []
    start = 0
    for w in widths:
        chunks.append((start, w))
        start += w
    return Layout(tuple(chunks))


def _radii(m: int, threshold: int) -> list[int]:
    """Probe radius per chunk: the generalised pigeonhole bound described in the module doc."""
    a, b = divmod(threshold, m)
    return [a if c <= b else a - 1 for c in range(m)]


def _plan_cost(layout: Layout, threshold: int, n: int) -> tuple[int, float]:
    probes = 0
    candidates = 0.0
    for (_, w), radius in zip(layout.chunks, _radii(len(layout.chunks), threshold), strict=True):
        p = sum(comb(w, i) for i in range(max(radius, -1) + 1))
        probes += p
        candidates += p * n / 2**w
    return probes, candidates


@lru_cache(maxsize=256)
def _xor_masks(width: int, radius: int) -> IntArray:
    """Every w-bit value of popcount <= radius, i.e. the XOR masks of one chunk's probes."""
    parts = [np.zeros(1, dtype=np.int64)]
    for k in range(1, radius + 1):
        combos = np.array(list(itertools.combinations(range(width), k)), dtype=np.int64)
        parts.append(np.bitwise_or.reduce(np.left_shift(1, combos), axis=1))
    masks = np.concatenate(parts)
    masks.flags.writeable = False
    return masks


@dataclass(frozen=True)
class _Plan:
    """Probe keys of one threshold, relative to the query: key = (qkey[chunk] ^ xor) + base.

    ``arguments`` is what ``hamming_kernels.search`` takes to probe with it (layout, plan,
    tables), built once: a single query is ~100 us, and building it per query was a
    measurable part of that."""

    chunk: IntArray
    xor: IntArray
    base: IntArray
    arguments: tuple[Any, ...]


# --------------------------------------------------------------------------------------------
# Packed-hash helpers


def _chunk_keys(words: WordArray, start: int, width: int) -> WordArray:
    """The ``width`` bits from bit ``start`` of each row of packed little-endian words."""
    j, t = divmod(start, 64)
    col = words[:, j] >> np.uint64(t)
    if t + width > 64:
        col = col | (words[:, j + 1] << np.uint64(64 - t))
    result: WordArray = col & np.uint64((1 << width) - 1)
    return result


# --------------------------------------------------------------------------------------------
# The index


@dataclass
class _Main:
    """The CSR part: rows [0, n) indexed by every chunk of ``layout``. Never mutated in place
    except for the plan cache, so a snapshot holding it stays valid."""

    layout: Layout
    n: int
    layout_n: int  # the row count the layout was chosen for
    offsets: npt.NDArray[Any]  # per chunk 2**w + 1 absolute positions into ``rows``
    bases: IntArray  # where each chunk's offsets table starts in ``offsets``
    rows: npt.NDArray[np.uint32]
    plans: dict[int, _Plan | None] = field(default_factory=dict)

    def plan(self, threshold: int, words: int) -> _Plan | None:
        """Probe plan for ``threshold``, or None when a brute-force scan is cheaper."""
        if threshold in self.plans:
            return self.plans[threshold]
        probes, candidates = _plan_cost(self.layout, threshold, self.n)
        plan: _Plan | None = None
        if probes * PROBE_NS + candidates * CANDIDATE_NS < self.n * words * SCAN_NS_PER_WORD:
            chunk_ix, xors, bases = [], [], []
            radii = _radii(len(self.layout.chunks), threshold)
            for c, ((_, w), radius) in enumerate(zip(self.layout.chunks, radii, strict=True)):
                if radius < 0:
                    continue
                masks = _xor_masks(w, min(radius, w))
                chunk_ix.append(np.full(len(masks), c, dtype=np.int64))
                xors.append(masks)
                bases.append(np.full(len(masks), self.bases[c], dtype=np.int64))
            chunk, xor, base = (np.concatenate(parts) for parts in (chunk_ix, xors, bases))
            starts = np.array([start for start, _ in self.layout.chunks], dtype=np.int64)
            widths = np.array([width for _, width in self.layout.chunks], dtype=np.int64)
            plan = _Plan(chunk, xor, base,
                         (starts, widths, chunk, xor, base, self.offsets, self.rows))
        self.plans[threshold] = plan
        return plan


@dataclass(frozen=True)
class _Snapshot:
    """Everything a reader needs, published by one assignment."""

    main: _Main | None
    hashes: WordArray  # (capacity, words); rows [0, n_rows) are valid
    row_ids: IntArray  # entry id of each row
    alive: npt.NDArray[np.bool_]  # False once removed
    n_rows: int


class HammingIndex:
    """Entries of one hash type: packed hashes searchable by Hamming radius, updated live.

    Works on packed bytes only (``bits // 8`` bytes a hash); the hex/base64 handling lives in
    ``Matcher``. Entry ids are arbitrary int64 values; each id has at most one live row.
    """

    def __init__(self, bits: int, design_threshold: int, exact: bool = False) -> None:
        if bits % 64:
            raise ValueError(f"bits must be a multiple of 64, got {bits}")
        self.bits = bits
        self.words = bits // 64
        self.design_threshold = design_threshold
        self.exact = exact
        _map_large_arrays_freshly()
        self._lock = threading.Lock()
        self._snap = _Snapshot(
            None,
            np.zeros((0, self.words), dtype=np.uint64),
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=np.bool_),
            0,
        )
        self._live = 0
        self._top_id = -(2**63)  # an upper bound of the entry ids held (removes leave it)
        self._dead_rows = 0
        # id -> row lookup: rows of the main part through a sorted view, delta rows in a dict.
        self._main_ids_sorted: IntArray | None = None  # None: row_ids[:main.n] is itself sorted
        self._main_ids_rows: npt.NDArray[np.int64] | None = None
        self._delta: dict[int, int] = {}
        self._bulk_until = 0.0  # time.monotonic() until which a bulk load is running

    # ---- reading

    def __len__(self) -> int:
        return self._live

    def query(self, value: bytes, threshold: int) -> tuple[IntArray, npt.NDArray[np.int32]]:
        """Entry ids within ``threshold`` of ``value`` and their distances, by distance then id."""
        _, ids, dist = self._search(np.frombuffer(value, dtype="<u8").reshape(1, self.words),
                                    threshold)
        return ids, dist

    def query_many(
        self, values: Sequence[bytes], threshold: int
    ) -> list[tuple[IntArray, npt.NDArray[np.int32]]]:
        """``query`` for many values in one compiled call that runs without the GIL."""
        queries = np.frombuffer(b"".join(values), dtype="<u8").reshape(len(values), self.words)
        bounds, ids, dist = self._search(queries, threshold)
        return [(ids[bounds[i] : bounds[i + 1]], dist[bounds[i] : bounds[i + 1]])
                for i in range(len(values))]

    def _search(self, queries: WordArray, threshold: int
                ) -> tuple[IntArray, IntArray, npt.NDArray[np.int32]]:
        snap = self._snap
        if _WARMING.is_set():
            return _scan_with_numpy(queries, threshold, snap)
        from hashmesh.node.matching import (
            hamming_kernels,  # numba takes ~0.4 s to import: only when queried
        )

        main = snap.main
        plan = main.plan(threshold, self.words) if main is not None else None
        if main is None or plan is None:
            probe, scan_from = _NO_PROBES, 0
        else:
            probe, scan_from = plan.arguments, main.n
        search: Any = hamming_kernels.search  # a numba dispatcher: its stub takes no arguments
        result: tuple[IntArray, IntArray, npt.NDArray[np.int32]] = search(
            queries, threshold, *probe, snap.hashes, snap.alive, snap.row_ids, scan_from,
            snap.n_rows,
        )
        return result

    # ---- writing

    def add(self, entry_id: int, value: bytes) -> None:
        """Add one entry; it matches from the moment this returns. O(1) amortised: every
        ``merge_at`` adds, the delta is merged into the CSR arrays (sorted insertion)."""
        if len(value) != self.bits // 8:
            raise ValueError(f"expected {self.bits // 8} bytes, got {len(value)}")
        with self._lock:
            self._remove_locked(entry_id)
            snap = self._ensure_capacity(self._snap.n_rows + 1)
            row = snap.n_rows
            snap.hashes[row] = np.frombuffer(value, dtype="<u8")
            snap.row_ids[row] = entry_id
            self._top_id = max(self._top_id, entry_id)
            snap.alive[row] = True
            self._delta[entry_id] = row
            self._live += 1
            self._snap = _Snapshot(snap.main, snap.hashes, snap.row_ids, snap.alive, row + 1)
            self._maybe_merge()

    def remove(self, entry_id: int) -> bool:
        """Stop matching ``entry_id`` at once; True if it was present."""
        with self._lock:
            return self._remove_locked(entry_id)

    def contains(self, entry_id: int) -> bool:
        return self._find_row(entry_id) is not None

    def live_ids(self) -> IntArray:
        """The entry ids this index matches now (a copy; for the store/index check)."""
        snap = self._snap
        return snap.row_ids[: snap.n_rows][snap.alive[: snap.n_rows]].copy()

    def bulk_load(self, entry_ids: IntArray, packed: bytes | bytearray) -> None:
        """Add many entries in one go and (re)build the CSR part: the start-up path.

        Ids already present (or repeated within the batch) are replaced by their last value.
        """
        ids = np.asarray(entry_ids, dtype=np.int64)
        n = len(ids)
        if len(packed) != n * self.words * 8:
            raise ValueError(f"expected {n * self.words * 8} bytes for {n} hashes")
        words = np.frombuffer(packed, dtype="<u8").reshape(n, self.words)
        if n > 1 and not bool(np.all(ids[1:] > ids[:-1])):  # maybe repeated: keep the last
            uniq, last_rev = np.unique(ids[::-1], return_index=True)
            if len(uniq) != n:
                keep = np.sort(n - 1 - last_rev)
                ids, words = ids[keep], words[keep]
        with self._lock:
            for dup in self._present_among(ids).tolist():
                self._remove_locked(dup)
            self._rebuild(extra_ids=ids, extra_words=words)

    def add_many(self, entry_ids: IntArray, packed: bytes) -> None:
        """``add`` for many entries at once (a sync page), vectorised: the rows go to the delta
        in one block, which is then merged (or the index rebuilt) at most once.

        Ids already present (or repeated within the batch) are replaced by their last value.
        Added for sync throughput (issue 5): per-entry ``add`` cost ~15 us a hash in a sync.
        A batch of BULK_BATCH rows or more starts (or extends) a bulk load: the delta may then
        grow to ``bulk_merge_at`` before it is merged.
        """
        ids = np.asarray(entry_ids, dtype=np.int64)
        n = len(ids)
        if len(packed) != n * self.words * 8:
            raise ValueError(f"expected {n * self.words * 8} bytes for {n} hashes")
        if n == 0:
            return
        words = np.frombuffer(packed, dtype="<u8").reshape(n, self.words)
        if n > 1 and not bool(np.all(ids[1:] > ids[:-1])):  # maybe repeated: keep the last
            uniq, last_rev = np.unique(ids[::-1], return_index=True)
            if len(uniq) != n:
                keep = np.sort(n - 1 - last_rev)
                ids, words = ids[keep], words[keep]
                n = len(ids)
        with self._lock:
            if n >= BULK_BATCH:
                self._bulk_until = time.monotonic() + BULK_QUIET_SECONDS
            snap = self._snap
            # New entry ids are usually above every stored one: then none can be present.
            if self._live and int(ids.min()) <= self._top_id:
                for dup in self._present_among(ids).tolist():
                    self._remove_locked(dup)
            snap = self._ensure_capacity(self._snap.n_rows + n)
            row = snap.n_rows
            snap.hashes[row : row + n] = words
            snap.row_ids[row : row + n] = ids
            snap.alive[row : row + n] = True
            self._delta.update(zip(ids.tolist(), range(row, row + n), strict=True))
            self._top_id = max(self._top_id, int(ids.max()))
            self._live += n
            self._snap = _Snapshot(snap.main, snap.hashes, snap.row_ids, snap.alive, row + n)
            self._maybe_merge()

    def memory_bytes(self) -> int:
        snap = self._snap
        total = snap.hashes.nbytes + snap.row_ids.nbytes + snap.alive.nbytes
        if snap.main is not None:
            total += snap.main.offsets.nbytes + snap.main.rows.nbytes + snap.main.bases.nbytes
            total += sum(p.chunk.nbytes * 3 for p in snap.main.plans.values() if p is not None)
        for extra in (self._main_ids_sorted, self._main_ids_rows):
            if extra is not None:
                total += extra.nbytes
        return total + 100 * len(self._delta)

    # ---- internals

    def _find_row(self, entry_id: int) -> int | None:
        row = self._delta.get(entry_id)
        if row is not None:
            return row
        snap = self._snap
        if snap.main is None:
            return None
        ids = self._main_ids_sorted
        if ids is None:
            ids = snap.row_ids[: snap.main.n]
        i = int(np.searchsorted(ids, entry_id))
        while i < len(ids) and ids[i] == entry_id:
            r = i if self._main_ids_rows is None else int(self._main_ids_rows[i])
            if snap.alive[r]:
                return r
            i += 1
        return None

    def _present_among(self, ids: IntArray) -> IntArray:
        """Which of ``ids`` are live in this index (vectorised, for bulk loads)."""
        snap = self._snap
        hits = [np.zeros(0, dtype=np.int64)]
        if self._delta:
            delta_ids = np.fromiter(self._delta, dtype=np.int64, count=len(self._delta))
            hits.append(ids[np.isin(ids, delta_ids)])
        if snap.main is not None:
            main_ids = snap.row_ids[: snap.main.n][snap.alive[: snap.main.n]]
            hits.append(ids[np.isin(ids, main_ids)])
        return np.unique(np.concatenate(hits))

    def _remove_locked(self, entry_id: int) -> bool:
        row = self._find_row(entry_id)
        if row is None:
            return False
        self._snap.alive[row] = False
        self._delta.pop(entry_id, None)
        self._live -= 1
        self._dead_rows += 1
        return True

    def _ensure_capacity(self, needed: int) -> _Snapshot:
        snap = self._snap
        if needed <= len(snap.row_ids):
            return snap
        cap = max(needed, len(snap.row_ids) + len(snap.row_ids) // 4, 1024)
        hashes = np.zeros((cap, self.words), dtype=np.uint64)
        hashes[: snap.n_rows] = snap.hashes[: snap.n_rows]
        row_ids = np.zeros(cap, dtype=np.int64)
        row_ids[: snap.n_rows] = snap.row_ids[: snap.n_rows]
        alive = np.zeros(cap, dtype=np.bool_)
        alive[: snap.n_rows] = snap.alive[: snap.n_rows]
        self._snap = _Snapshot(snap.main, hashes, row_ids, alive, snap.n_rows)
        return self._snap

    def merge_at(self) -> int:
        """Delta size at which live adds are merged into the CSR part."""
        main_n = self._snap.main.n if self._snap.main is not None else 0
        return int(min(32768, max(1024, main_n // 256)))

    def bulk_merge_at(self) -> int:
        """Delta size at which the adds of a running bulk load are merged (see BULK_BATCH)."""
        main_n = self._snap.main.n if self._snap.main is not None else 0
        share = max(BULK_MIN_DELTA, main_n // BULK_DELTA_SHARE)
        return max(self.merge_at(), min(BULK_MAX_DELTA, share))

    def bulk_running(self) -> bool:
        return time.monotonic() < self._bulk_until

    def unsettled(self) -> bool:
        """Whether a bulk load left a delta that ``settle`` would merge."""
        snap = self._snap
        return snap.main is not None and snap.n_rows - snap.main.n >= self.merge_at()

    def settle(self) -> bool:
        """Merge the delta a bulk load left above ``merge_at``, once the load has stopped;
        True while it is still running (call again later)."""
        with self._lock:
            if self.bulk_running():
                return self.unsettled()
            self._maybe_merge()
            return False

    def _maybe_merge(self) -> None:
        snap = self._snap
        main = snap.main
        main_n = main.n if main is not None else 0
        delta = snap.n_rows - main_n
        if main is None:
            if snap.n_rows >= MIN_INDEXED_ROWS:
                self._rebuild()
            return
        if delta < (self.bulk_merge_at() if self.bulk_running() else self.merge_at()):
            return
        if self._live > 2 * main.layout_n or self._dead_rows * 4 > snap.n_rows:
            self._rebuild()
        else:
            self._merge_delta()

    def _rebuild(
        self, extra_ids: IntArray | None = None, extra_words: WordArray | None = None
    ) -> None:
        """Compact (drop removed rows), append ``extra``, choose a layout and build the CSR."""
        snap = self._snap
        keep = np.flatnonzero(snap.alive[: snap.n_rows])
        hashes = snap.hashes[keep]
        row_ids = snap.row_ids[keep]
        if extra_ids is not None and extra_words is not None:
            hashes = np.concatenate([hashes, extra_words])
            row_ids = np.concatenate([row_ids, extra_ids])
        n = len(row_ids)
        # Rows in id order make the id lookup a searchsorted on row_ids itself.
        if n > 1 and not bool(np.all(row_ids[1:] >= row_ids[:-1])):
            order = np.argsort(row_ids, kind="stable")
            hashes, row_ids = hashes[order], row_ids[order]
        hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
        alive = np.ones(n, dtype=np.bool_)
        main = self._build_main(hashes, n) if n >= MIN_INDEXED_ROWS else None
        self._delta = {} if main is not None else {int(i): r for r, i in enumerate(row_ids)}
        self._main_ids_sorted = None
        self._main_ids_rows = None
        self._live = n
        self._top_id = int(row_ids.max()) if n else -(2**63)
        self._dead_rows = 0
        self._snap = _Snapshot(main, hashes, row_ids, alive, n)
        _release_freed_memory()

    def _build_main(self, hashes: WordArray, n: int) -> _Main:
        layout = choose_layout(self.bits, n, self.design_threshold, self.exact)
        m = len(layout.chunks)
        sizes = [2**w + 1 for _, w in layout.chunks]
        bases = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        offsets = np.empty(sum(sizes), dtype=_offset_dtype(m * n))
        rows = np.empty(m * n, dtype=np.uint32)
        row_numbers = np.arange(n, dtype=np.uint64)

        def build_chunk(c: int) -> None:
            # Sorting (key << 32 | row) as plain uint64 is several times faster than an argsort
            # of the keys; in-place steps keep the temporaries to one array per chunk.
            start, w = layout.chunks[c]
            keys = _chunk_keys(hashes[:n], start, w)
            counts = np.bincount(keys.view(np.int64), minlength=2**w)
            np.left_shift(keys, np.uint64(32), out=keys)
            np.bitwise_or(keys, row_numbers, out=keys)
            keys.sort()
            if sys.byteorder == "little":
                rows[c * n : (c + 1) * n] = keys.view(np.uint32)[0::2]
            else:
                rows[c * n : (c + 1) * n] = keys & np.uint64(0xFFFFFFFF)
            table = offsets[bases[c] : bases[c] + sizes[c]]
            table[0] = c * n
            np.cumsum(counts, out=table[1:])
            table[1:] += c * n

        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(build_chunk, range(m)))
        return _Main(layout, n, n, offsets, bases, rows)

    def _merge_delta(self) -> None:
        """Insert the delta rows into every chunk's CSR arrays (new arrays, then one swap)."""
        snap = self._snap
        main = snap.main
        assert main is not None
        lo, hi = main.n, snap.n_rows
        new_rows = np.arange(lo, hi, dtype=np.int64)
        new_rows = new_rows[snap.alive[lo:hi]]
        words = snap.hashes[new_rows]
        d = len(new_rows)
        from hashmesh.node.matching import hamming_kernels  # numba: imported when first used

        offsets = main.offsets.astype(_offset_dtype(len(main.layout.chunks) * (main.n + d)))
        positions, values = [], []
        inserted_before = 0
        delta_index = np.arange(d, dtype=np.uint64)
        for c, (start, w) in enumerate(main.layout.chunks):
            # (key << 32 | index) sorted as plain uint64: the stable order of the keys, ~4x
            # faster than a stable argsort (as in _build_main)
            packed = _chunk_keys(words, start, w)
            np.left_shift(packed, np.uint64(32), out=packed)
            np.bitwise_or(packed, delta_index, out=packed)
            packed.sort()
            order = (packed & np.uint64(0xFFFFFFFF)).astype(np.int64)
            keys = (packed >> np.uint64(32)).astype(np.int64)
            b = int(main.bases[c])
            positions.append(main.offsets[b + keys + 1].astype(np.int64))
            values.append(new_rows[order])
            # entry j moves by the rows inserted before this chunk plus the new keys below j:
            # a step function of d + 1 steps, written in one pass (np.repeat) rather than
            # bincount, cumsum and a cast over all 2**w entries (~1/3 of a merge at 1M)
            table = offsets[b : b + 2**w + 1]
            lengths = np.diff(np.concatenate(([-1], keys, [2**w])))
            table += np.repeat(np.arange(inserted_before, inserted_before + d + 1,
                                         dtype=table.dtype), lengths)
            inserted_before += d
        # np.insert, without its sort of the positions: they are sorted already (chunk by
        # chunk, key by key), so the new rows land at position + number inserted before;
        # written in one compiled pass (numpy's masked assignment took ~6 times longer)
        at = np.concatenate(positions)
        at += np.arange(len(at))
        rows = np.empty(len(main.rows) + len(at), dtype=np.uint32)
        if len(at) and not (0 <= at[0] and at[-1] < len(rows)):  # the kernel checks no bounds
            raise AssertionError(f"merge positions {at[0]}..{at[-1]} outside {len(rows)} rows")
        hamming_kernels.insert_sorted(main.rows, at,
                                      np.concatenate(values).astype(np.uint32), rows)
        self._extend_id_lookup(snap, main.n, new_rows)
        merged = _Main(main.layout, hi, main.layout_n, offsets, main.bases, rows)
        self._delta = {}
        self._snap = _Snapshot(merged, snap.hashes, snap.row_ids, snap.alive, snap.n_rows)

    def _extend_id_lookup(self, snap: _Snapshot, old_n: int, new_rows: IntArray) -> None:
        """Keep the id -> row lookup valid for rows [0, new main n)."""
        hi = snap.n_rows
        if self._main_ids_sorted is None:
            ids = snap.row_ids[:hi]
            if bool(np.all(ids[1:] >= ids[:-1])):
                return  # still in id order: row_ids is its own index
            self._main_ids_rows = np.argsort(snap.row_ids[:old_n], kind="stable")
            self._main_ids_sorted = snap.row_ids[:old_n][self._main_ids_rows]
        assert self._main_ids_rows is not None
        # Dead delta rows are left out; rows between old_n and hi that died need no lookup.
        new_ids = snap.row_ids[new_rows]
        order = np.argsort(new_ids, kind="stable")
        new_ids, rows_sorted = new_ids[order], new_rows[order]
        at = np.searchsorted(self._main_ids_sorted, new_ids)
        self._main_ids_sorted = np.insert(self._main_ids_sorted, at, new_ids)
        self._main_ids_rows = np.insert(self._main_ids_rows, at, rows_sorted)


# Set while ``Matcher.warm_up`` compiles the kernel (16-28 s on a fresh install, ~0.7 s from
# numba's cache): queries meanwhile take ``_scan_with_numpy`` instead of waiting for it.
_WARMING = threading.Event()


def _scan_with_numpy(queries: WordArray, threshold: int, snap: _Snapshot
                     ) -> tuple[IntArray, IntArray, npt.NDArray[np.int32]]:
    """What ``hamming_kernels.search`` answers, by a brute-force numpy scan: every live row,
    distance by ``bitwise_count`` of the XOR. ~30 ms a PDQ query at 1M rows (the kernel:
    ~0.1 ms), used only while the kernel compiles, so the first match after a fresh install
    answers in well under the 3 s budget rather than after the compile."""
    hashes = snap.hashes[:snap.n_rows]
    alive = snap.alive[:snap.n_rows]
    bounds = np.zeros(len(queries) + 1, dtype=np.int64)
    found_ids: list[IntArray] = []
    found_dist: list[npt.NDArray[np.int32]] = []
    for i, query in enumerate(queries):
        dist = np.bitwise_count(hashes ^ query).sum(axis=1, dtype=np.int32)
        rows = np.flatnonzero((dist <= threshold) & alive)
        ids = snap.row_ids[rows].astype(np.int64)
        order = np.lexsort((ids, dist[rows]))
        found_ids.append(ids[order])
        found_dist.append(dist[rows][order])
        bounds[i + 1] = bounds[i] + len(rows)
    return (bounds, np.concatenate(found_ids) if found_ids else np.zeros(0, np.int64),
            np.concatenate(found_dist) if found_dist else np.zeros(0, np.int32))


@lru_cache(maxsize=1)
def _map_large_arrays_freshly() -> None:
    """Have glibc give every allocation of 4 MiB or more its own fresh mapping.

    numpy asks for transparent huge pages on large arrays, but glibc by default recycles freed
    large blocks from its heap, whose pages are already mapped 4 KiB at a time; an array grown
    after the first build then missed the TLB on nearly every probe (p50 at 10M after 4,096
    adds: 626 us instead of 261 us). Process-wide, and harmless to everything else.
    """
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, 4 << 20)
    except (OSError, AttributeError):
        pass  # not glibc


_M_MMAP_THRESHOLD = -3


def _release_freed_memory() -> None:
    """Hand the build's freed temporaries back to the OS. The chunk builds run in worker
    threads whose glibc arenas otherwise keep ~0.5x the index size resident after a rebuild."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to do


def _offset_dtype(n: int) -> type[np.unsignedinteger[Any]] | type[np.signedinteger[Any]]:
    return np.uint32 if n < 2**32 else np.int64


# --------------------------------------------------------------------------------------------
# The facade the node codes against


class Matcher:
    """All in-memory indexes of one node, one per hash type. Entries are identified by an int
    entry_id that the store assigns (one per (item, hash) row).

    Values arrive normalised (lowercase hex; photodna canonical base64). Adding an id that is
    already present replaces its previous value. Queries may run from many threads at once;
    writes are serialised per hash type.
    """

    def __init__(self) -> None:
        self._indexes: dict[str, HammingIndex] = {
            name: HammingIndex(spec.bits, spec.design_threshold, spec.exact)
            for name, spec in TYPE_SPECS.items()
        }

    def add(self, entry_id: int, hash_type: str, value: str) -> None:
        index = self._index(hash_type)
        packed = _pack(hash_type, value)
        for name, other in self._indexes.items():
            if name != hash_type and len(other) and other.remove(entry_id):
                break
        index.add(entry_id, packed)

    def remove(self, entry_id: int) -> None:
        for index in self._indexes.values():
            if len(index) and index.remove(entry_id):
                return

    def bulk_load(
        self, hash_type: str, entry_ids: Sequence[int] | np.ndarray, values: Sequence[str]
    ) -> None:
        self.bulk_load_packed(hash_type, entry_ids, pack_many(hash_type, values))

    def bulk_load_packed(self, hash_type: str, entry_ids: Sequence[int] | np.ndarray,
                         packed: bytes | bytearray) -> None:
        """``bulk_load`` of values already packed (``pack_many``): loading from the store
        packs a chunk at a time rather than holding every value as a string."""
        index = self._index(hash_type)
        width = TYPE_SPECS[hash_type].bits // 8  # photodna: its SHA-256
        if len(packed) != width * len(entry_ids):
            raise ValueError(f"bulk_load_packed: {len(entry_ids)} entry ids but "
                             f"{len(packed)} bytes of {width}-byte values")
        ids = self._claim_ids(hash_type, entry_ids)
        index.bulk_load(ids, packed)

    def query(self, hash_type: str, value: str, threshold: int) -> list[tuple[int, int]]:
        index = self._index(hash_type)
        ids, dist = index.query(_pack(hash_type, value), _threshold(hash_type, threshold))
        return list(zip(ids.tolist(), dist.tolist(), strict=True))

    def query_many(
        self, hash_type: str, values: Sequence[str], threshold: int
    ) -> list[list[tuple[int, int]]]:
        index = self._index(hash_type)
        packed = [_pack(hash_type, v) for v in values]
        results = index.query_many(packed, _threshold(hash_type, threshold))
        return [list(zip(i.tolist(), d.tolist(), strict=True)) for i, d in results]

    def count(self, hash_type: str | None = None) -> int:
        if hash_type is None:
            return sum(len(index) for index in self._indexes.values())
        return len(self._index(hash_type))

    def memory_bytes(self) -> int:
        return sum(index.memory_bytes() for index in self._indexes.values())

    def unsettled(self) -> bool:
        """Whether a bulk load left a delta to merge (``HammingIndex.settle``)."""
        return any(index.unsettled() for index in self._indexes.values())

    def settle(self) -> bool:
        """Merge the deltas of bulk loads that have stopped; True while one still runs."""
        running = False
        for index in self._indexes.values():
            if index.unsettled():
                running = index.settle() or running
        return running

    def live_ids(self) -> IntArray:
        """Every entry id matched now, of any type, sorted (duplicates kept: a bug to see)."""
        parts = [index.live_ids() for index in self._indexes.values() if len(index)]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    @staticmethod
    def warm_up() -> None:
        """Compile the query kernel (or load it from numba's on-disk cache) now, so that the
        first real match does not wait for it: compiling takes ~10 s on a fresh install."""
        index = HammingIndex(64, 10)
        rng = np.random.default_rng(0)
        packed = rng.integers(0, 2**63, size=MIN_INDEXED_ROWS, dtype=np.int64).tobytes()
        index.bulk_load(np.arange(MIN_INDEXED_ROWS, dtype=np.int64), packed)
        _WARMING.set()  # until the kernel is ready, queries scan with numpy (see there)
        try:
            from hashmesh.node.matching import hamming_kernels

            hamming_kernels.search(np.frombuffer(packed[:8], dtype="<u8").reshape(1, 1), 10,
                                   *_NO_PROBES, index._snap.hashes, index._snap.alive,
                                   index._snap.row_ids, 0, index._snap.n_rows)
        finally:
            _WARMING.clear()  # queries take the kernel now; merges wait for theirs below
        hamming_kernels.insert_sorted(  # the merge's kernel, before the first merge
            np.zeros(1, dtype=np.uint32), np.zeros(1, dtype=np.int64),
            np.ones(1, dtype=np.uint32), np.empty(2, dtype=np.uint32))

    def _index(self, hash_type: str) -> HammingIndex:
        try:
            return self._indexes[hash_type]
        except KeyError:
            known = ", ".join(sorted(TYPE_SPECS))
            raise UnknownHashTypeError(
                f"unknown hash type {hash_type!r} (known: {known})", "hash_type"
            ) from None

    # Added for sync throughput (issue 5): a page of a sync adds up to ~100k hashes at once.
    def add_many(
        self, hash_type: str, entry_ids: Sequence[int] | np.ndarray, values: Sequence[str]
    ) -> None:
        """``add`` for many entries of one type, vectorised (``HammingIndex.add_many``)."""
        index = self._index(hash_type)
        if len(entry_ids) != len(values):
            raise ValueError(f"add_many: {len(entry_ids)} entry ids but {len(values)} values")
        ids = self._claim_ids(hash_type, entry_ids)
        index.add_many(ids, pack_many(hash_type, values))

    def _claim_ids(self, hash_type: str, entry_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """The ids as an array, after removing any of them held under another hash type."""
        ids = np.asarray(entry_ids, dtype=np.int64)
        for name, other in self._indexes.items():
            if name != hash_type and len(other):
                for dup in other._present_among(ids).tolist():
                    other.remove(dup)
        return ids


def _threshold(hash_type: str, threshold: int) -> int:
    if TYPE_SPECS[hash_type].exact:
        return 0
    if threshold < 0:
        raise ValueError(f"threshold: must be >= 0, got {threshold}")
    return threshold


def _pack(hash_type: str, value: str) -> bytes:
    """The packed bits the index stores for one normalised value."""
    spec = TYPE_SPECS[hash_type]
    if hash_type == "photodna":
        return hashlib.sha256(value.encode("ascii")).digest()
    try:
        packed = bytes.fromhex(value)
    except ValueError:
        packed = b""
    if len(packed) != spec.bits // 8:
        raise ValueError(
            f"invalid {hash_type} value (expected {spec.bits // 4} hex characters, got {value!r})"
        )
    return packed


def pack_many(hash_type: str, values: Sequence[str]) -> bytes:
    """Packed bits of many values; a bad one is reported with its position."""
    if hash_type == "photodna":
        return b"".join(hashlib.sha256(v.encode("ascii")).digest() for v in values)
    width = TYPE_SPECS[hash_type].bits // 4
    try:
        joined = "".join(values)
        if len(joined) == width * len(values):
            return bytes.fromhex(joined)
    except (TypeError, ValueError):
        pass
    for i, v in enumerate(values):
        try:
            _pack(hash_type, v)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"values[{i}]: {exc}") from None
    raise ValueError(f"values: not all {hash_type} values are {width} hex characters")
