"""Match-index benchmark: hashmesh ``Matcher`` side by side with python-threatexchange PDQIndex.

Each (engine, size, dataset) runs in its own subprocess so that peak RSS belongs to one engine,
on identical data (same seed). The parent prints one table per size and dataset with the
hashmesh/peer ratio, then a short table for the 64-bit and exact types (hashmesh only).

    python bench/match_bench.py --quick                 # 100k, under a minute
    python bench/match_bench.py --full                  # 100k, 1M, 10M
    python bench/match_bench.py --sizes 1000000 --skip-peer-at 10000000 --json out.json

Queries are stored hashes with exactly d bits flipped, d = 0..31 in turn (threshold 31), so
every query has at least one true match; recall is checked against a brute-force numpy scan.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

THRESHOLD = 31
SEED = 20240501


# ---------------------------------------------------------------------------------------- data


def make_hashes(n: int, dataset: str, words: int = 4, seed: int = SEED) -> np.ndarray:
    """Packed hashes (n, words) uint64: uniform random, or families of near-duplicates
    (about 10 members each, ~8 bits from their centre, so ~16 bits from each other)."""
    rng = np.random.default_rng(seed)
    if dataset == "uniform":
        return rng.integers(0, 2**64 - 1, (n, words), dtype=np.uint64, endpoint=True)
    centres = rng.integers(0, 2**64 - 1, (max(1, n // 10), words), dtype=np.uint64, endpoint=True)
    family = rng.integers(0, len(centres), n)
    out = centres[family]
    flips = rng.integers(0, 2**64 - 1, (n, words), dtype=np.uint64, endpoint=True)
    for _ in range(4):  # AND of 5 random words: each bit set with p = 1/32
        flips &= rng.integers(0, 2**64 - 1, (n, words), dtype=np.uint64, endpoint=True)
    out ^= flips
    return out


def make_queries(hashes: np.ndarray, count: int, max_distance: int = THRESHOLD) -> np.ndarray:
    """Near-duplicates of stored hashes at distances 0..max_distance, cycling."""
    rng = np.random.default_rng(SEED + 1)
    bits = hashes.shape[1] * 64
    src = hashes[rng.integers(0, len(hashes), count)].copy()
    order = np.argsort(rng.random((count, bits)), axis=1)
    for i in range(count):
        d = i % (max_distance + 1)
        for pos in order[i, :d]:
            src[i, pos // 64] ^= np.uint64(1) << np.uint64(pos % 64)
    return src


def to_hex(hashes: np.ndarray) -> list[str]:
    width = hashes.shape[1] * 16
    blob = hashes.tobytes().hex()
    return [blob[i : i + width] for i in range(0, len(blob), width)]


def brute_force(hashes: np.ndarray, query: np.ndarray, threshold: int) -> set[int]:
    d = np.bitwise_count(hashes ^ query).sum(axis=1)
    return set(np.flatnonzero(d <= threshold).tolist())


# ------------------------------------------------------------------------------------ measuring


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def latencies_us(fn: Any, queries: list[str], repeats: int) -> tuple[float, float]:
    """Median over repeats of the per-run p50 and p99 single-query latency, in µs."""
    p50s, p99s = [], []
    for _ in range(repeats):
        times = []
        for q in queries:
            t = time.perf_counter_ns()
            fn(q)
            times.append(time.perf_counter_ns() - t)
        times.sort()
        p50s.append(times[len(times) // 2] / 1e3)
        p99s.append(times[min(len(times) - 1, int(len(times) * 0.99))] / 1e3)
    return statistics.median(p50s), statistics.median(p99s)


def throughput(fn: Any, queries: list[str], repeats: int, threads: int) -> float:
    """Median q/s of ``fn(batch)`` with the queries split over ``threads`` threads."""
    parts = [queries[i::threads] for i in range(threads)]
    rates = []
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(repeats):
            t = time.perf_counter()
            list(pool.map(fn, parts))
            rates.append(len(queries) / (time.perf_counter() - t))
    return statistics.median(rates)


# -------------------------------------------------------------------------------------- workers


def run_hashmesh(n: int, dataset: str, nq: int, repeats: int, threads: int) -> dict[str, Any]:
    from hashmesh.node.matching.matcher import Matcher

    hashes = make_hashes(n, dataset)
    values = to_hex(hashes)
    qarr = make_queries(hashes, nq)
    queries = to_hex(qarr)
    ids = np.arange(1, n + 1, dtype=np.int64)
    builds = []
    matcher = Matcher()
    base_rss = rss_mb()
    for _ in range(repeats if n <= 1_000_000 else 1):
        del matcher
        matcher = Matcher()
        t = time.perf_counter()
        matcher.bulk_load("pdq", ids, values)
        builds.append(time.perf_counter() - t)
    index_rss = rss_mb() - base_rss
    index_mb_built = matcher.memory_bytes() / 1e6
    p50, p99 = latencies_us(lambda q: matcher.query("pdq", q, THRESHOLD), queries, repeats)
    qps = throughput(lambda b: matcher.query_many("pdq", b, THRESHOLD), queries, repeats, threads)
    qps1 = throughput(lambda b: matcher.query_many("pdq", b, THRESHOLD), queries, repeats, 1)
    recall = check_recall(
        hashes, qarr, lambda i: {e - 1 for e, _ in matcher.query("pdq", queries[i], THRESHOLD)}
    )
    # Live changes: adds of fresh hashes (merges included), then revokes of random entries.
    fresh = to_hex(make_hashes(4096, "uniform", seed=SEED + 7))
    t = time.perf_counter()
    for i, v in enumerate(fresh):
        matcher.add(n + 1 + i, "pdq", v)
    add_us = (time.perf_counter() - t) / len(fresh) * 1e6
    victims = np.random.default_rng(3).choice(n, 4096, replace=False) + 1
    t = time.perf_counter()
    for e in victims.tolist():
        matcher.remove(e)
    remove_us = (time.perf_counter() - t) / len(victims) * 1e6
    gone = all(
        e not in {x for x, _ in matcher.query("pdq", values[e - 1], 0)} for e in victims[:100]
    )
    p50_after, _ = latencies_us(lambda q: matcher.query("pdq", q, THRESHOLD), queries, 1)
    return {
        "build_s": statistics.median(builds),
        "index_mb_built": index_mb_built,
        "index_mb": matcher.memory_bytes() / 1e6,
        "index_rss_mb": index_rss,
        "peak_rss_mb": peak_rss_mb(),
        "p50_us": p50,
        "p99_us": p99,
        "qps": qps,
        "qps_1thread": qps1,
        "recall": recall,
        "add_us": add_us,
        "remove_us": remove_us,
        "removed_stop_matching": gone,
        "p50_after_changes_us": p50_after,
    }


def run_peer(n: int, dataset: str, nq: int, repeats: int, threads: int) -> dict[str, Any]:
    import faiss
    from threatexchange.signal_type.pdq.pdq_index import PDQIndex

    faiss.omp_set_num_threads(threads)
    hashes = make_hashes(n, dataset)
    values = to_hex(hashes)
    qarr = make_queries(hashes, nq)
    queries = to_hex(qarr)
    entries = [(v, i) for i, v in enumerate(values)]
    base_rss = rss_mb()
    builds = []
    index: PDQIndex[int] = PDQIndex()
    for _ in range(repeats if n <= 1_000_000 else 1):
        del index
        t = time.perf_counter()
        index = PDQIndex(entries)
        builds.append(time.perf_counter() - t)
    index_rss = rss_mb() - base_rss
    p50, p99 = latencies_us(index.query, queries, repeats)

    def batch(qs: list[str]) -> Any:
        return index.index.search_with_distance_in_result(qs, THRESHOLD)

    # faiss parallelises one batch call with OpenMP; splitting over Python threads as well
    # would oversubscribe the cores, so the peer gets one call over all queries.
    qps = throughput(batch, queries, repeats, 1)
    recall = check_recall(hashes, qarr, lambda i: {m.metadata for m in index.query(queries[i])})
    fresh = to_hex(make_hashes(3, "uniform", seed=SEED + 7))
    t = time.perf_counter()
    for i, v in enumerate(fresh):
        index.add(v, n + i)
    add_us = (time.perf_counter() - t) / len(fresh) * 1e6
    return {
        "build_s": statistics.median(builds),
        "index_rss_mb": index_rss,
        "peak_rss_mb": peak_rss_mb(),
        "p50_us": p50,
        "p99_us": p99,
        "qps": qps,
        "recall": recall,
        "add_us": add_us,
        "remove_us": None,  # PDQIndex cannot remove: a revoke means a rebuild (build_s)
    }


def run_other_types(n: int, nq: int, repeats: int, threads: int) -> dict[str, Any]:
    """64-bit perceptual (phash, threshold 10) and exact (md5) at the same scale."""
    return {
        "phash": bench_type("phash", 1, 10, n, nq, repeats, threads),
        "md5": bench_type("md5", 2, 0, n, nq, repeats, threads),
    }


def bench_type(
    hash_type: str, words: int, threshold: int, n: int, nq: int, repeats: int, threads: int
) -> dict[str, Any]:
    from hashmesh.node.matching.matcher import Matcher

    hashes = make_hashes(n, "uniform", words=words)
    values = to_hex(hashes)
    qarr = make_queries(hashes, nq, max_distance=threshold)
    queries = to_hex(qarr)
    matcher = Matcher()
    base_rss = rss_mb()
    t = time.perf_counter()
    matcher.bulk_load(hash_type, np.arange(1, n + 1), values)
    build = time.perf_counter() - t
    p50, p99 = latencies_us(lambda q: matcher.query(hash_type, q, threshold), queries, repeats)
    qps = throughput(
        lambda b: matcher.query_many(hash_type, b, threshold), queries, repeats, threads
    )
    recall = check_recall(
        hashes,
        qarr,
        lambda i: {e - 1 for e, _ in matcher.query(hash_type, queries[i], threshold)},
        threshold,
    )
    return {
        "build_s": build,
        "index_mb": matcher.memory_bytes() / 1e6,
        "index_rss_mb": rss_mb() - base_rss,
        "p50_us": p50,
        "p99_us": p99,
        "qps": qps,
        "recall": recall,
    }


def check_recall(
    hashes: np.ndarray, qarr: np.ndarray, found: Any, threshold: int = THRESHOLD
) -> float:
    """Fraction of brute-force matches found, over a sample of queries; 1.0 is exact."""
    sample = 64 if len(hashes) <= 1_000_000 else 16  # a 10M scan takes about a second
    want_total = got_total = 0
    for i in range(min(sample, len(qarr))):
        want = brute_force(hashes, qarr[i], threshold)
        got = found(i)
        if got - want:
            raise AssertionError(f"query {i}: returned entries beyond the threshold")
        want_total += len(want)
        got_total += len(want & got)
    return got_total / max(1, want_total)


# --------------------------------------------------------------------------------------- parent


def spawn(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", *args], capture_output=True, text=True
    )
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def fmt(x: Any, digits: int = 1) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "NO"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return str(x)


def print_table(n: int, dataset: str, hm: dict[str, Any], peer: dict[str, Any] | None) -> None:
    rows = [
        ("build from hex (s, median)", "build_s", 2),
        ("index memory after build (MB)", "index_mb_built", 0),
        ("index memory after adds (MB)", "index_mb", 0),
        ("RSS growth over build (MB)", "index_rss_mb", 0),
        ("peak RSS of process (MB)", "peak_rss_mb", 0),
        ("single query p50 (µs)", "p50_us", 1),
        ("single query p99 (µs)", "p99_us", 1),
        ("batch q/s, 2 threads", "qps", 0),
        ("batch q/s, 1 thread", "qps_1thread", 0),
        ("recall vs brute force", "recall", 3),
        ("add, µs each (merges incl.)", "add_us", 1),
        ("remove, µs each", "remove_us", 1),
        ("removed stop matching", "removed_stop_matching", 0),
        ("p50 after 4096 adds/removes (µs)", "p50_after_changes_us", 1),
    ]
    print(f"\n## pdq, n={n:,}, {dataset}, threshold {THRESHOLD}")
    print(f"| {'metric':34s} | {'hashmesh':>12s} | {'peer PDQIndex':>13s} | {'hm/peer':>8s} |")
    print(f"|{'-' * 36}|{'-' * 14}|{'-' * 15}|{'-' * 10}|")
    for label, key, digits in rows:
        a = hm.get(key)
        b = peer.get(key) if peer else None
        ratio = f"{a / b:.3f}" if isinstance(a, float) and isinstance(b, float) and b else ""
        print(f"| {label:34s} | {fmt(a, digits):>12s} | {fmt(b, digits):>13s} | {ratio:>8s} |")
    if "error" in hm:
        print(f"hashmesh failed: {hm['error']}")
    if peer and "error" in peer:
        print(f"peer failed: {peer['error']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="100k only (default)")
    mode.add_argument("--full", action="store_true", help="100k, 1M and 10M")
    mode.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--datasets", default="uniform,clustered")
    ap.add_argument("--skip-peer-at", type=int, default=None, help="no peer at sizes >= this")
    ap.add_argument("--no-other-types", action="store_true", help="skip phash/md5 tables")
    ap.add_argument("--queries", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write all figures to this file")
    ap.add_argument("--worker", nargs=3, metavar=("ENGINE", "N", "DATASET"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        engine, n, dataset = args.worker[0], int(args.worker[1]), args.worker[2]
        run = {"hashmesh": run_hashmesh, "peer": run_peer}.get(engine)
        if engine == "other":
            result = run_other_types(n, args.queries, args.repeats, args.threads)
        else:
            assert run is not None
            result = run(n, dataset, args.queries, args.repeats, args.threads)
        print(json.dumps(result))
        return

    sizes = args.sizes or ([100_000, 1_000_000, 10_000_000] if args.full else [100_000])
    common = ["--queries", str(args.queries), "--repeats", str(args.repeats)]
    common += ["--threads", str(args.threads)]
    print(f"# match bench: {os.cpu_count()} CPUs, {cpu_model()}, python {sys.version.split()[0]}")
    print(f"# command: {' '.join(sys.argv)}")
    everything: dict[str, Any] = {}
    for n in sizes:
        for dataset in args.datasets.split(","):
            hm = spawn(["hashmesh", str(n), dataset, *common])
            peer = None
            if args.skip_peer_at is None or n < args.skip_peer_at:
                peer = spawn(["peer", str(n), dataset, *common])
            print_table(n, dataset, hm, peer)
            everything[f"pdq/{n}/{dataset}"] = {"hashmesh": hm, "peer": peer}
            sys.stdout.flush()
        if not args.no_other_types:
            other = spawn(["other", str(n), "uniform", *common])
            everything[f"other/{n}"] = other
            print(f"\n## 64-bit and exact types, n={n:,}, uniform (hashmesh only)")
            print(
                "| type (threshold) | build s | index MB | p50 µs | p99 µs | q/s 2 thr | recall |"
            )
            print("|---|---|---|---|---|---|---|")
            for t, r in other.items():
                if not isinstance(r, dict):
                    print(f"failed: {r}")
                    continue
                th = 10 if t == "phash" else 0
                print(
                    f"| {t} ({th}) | {r['build_s']:.2f} | {r['index_mb']:.0f} | {r['p50_us']:.1f}"
                    f" | {r['p99_us']:.1f} | {r['qps']:,.0f} | {r['recall']:.3f} |"
                )
            sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(everything, f, indent=2)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
