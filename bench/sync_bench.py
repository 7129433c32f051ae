"""Sync and propagation benchmark: real node processes on loopback.

* **Cold sync.** Node A holds N pdq hashes in its own signed log (batched ``add`` records of
  256 items, or one hash per record). Node B starts empty, peered with A, and pulls everything.
  Timed from B's start until B holds A's whole log *and* answers a match for the last hash.
* **Propagation.** A - B - C in a chain (C does not peer with A): the time from an add on A
  until C matches it, and from a revoke on A until C stops matching, over repeated trials.

    python bench/sync_bench.py --quick                       # 100k batched, 20k single
    python bench/sync_bench.py --hashes 1000000 --singles 1000000
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.nodes import BenchNode, fill_log, link, make_node, random_pdq


def wait_until(check: object, timeout: float) -> float:
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"gave up after {timeout} s")
        time.sleep(0.005)
    return time.monotonic() - started


def cold_sync(hashes: int, per_record: int, timeout: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        a = make_node(root, "a", "127.0.0.2")
        b = make_node(root, "b", "127.0.0.3")
        link(a, b)
        signing = fill_log(a, hashes, per_record)
        records = -(-hashes // per_record)
        last = random.Random(1)
        values = [random_pdq(last) for _ in range(hashes)]
        a.start()
        try:
            started = time.monotonic()
            b.start()
            query = {"hashes": [{"type": "pdq", "value": values[-1]}]}
            wait_until(lambda: b.head_seq(a.origin) >= records + 1, timeout)  # + init's key
            wait_until(lambda: b.call("POST", "/v1/match", query)["results"][0]["matches"], 30)
            elapsed = time.monotonic() - started
            rss = b.peak_rss_mb()
        finally:
            b.stop()
            a.stop()
    return {"hashes": hashes, "records": records, "seconds": elapsed,
            "hashes_per_s": hashes / elapsed, "records_per_s": records / elapsed,
            "b_peak_rss_mb": rss, "signing_s": signing}


def propagation(trials: int, prepare: Callable[[list[BenchNode]], None] | None = None
                ) -> dict[str, list[float]]:
    """Seconds for an add at a, and then its revoke, to reach c over b, per trial;
    ``prepare`` edits the nodes' configs before they start."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        a, b, c = (make_node(root, n, f"127.0.0.{i + 2}", pull_interval=30)
                   for i, n in enumerate("abc"))
        link(a, b)
        link(b, c)
        nodes: list[BenchNode] = [a, b, c]
        if prepare is not None:
            prepare(nodes)
        for node in nodes:
            node.start()
        for node in nodes:  # a node loads its match kernel beside its start: not timed here
            node.call("POST", "/v1/match", {"hashes": [{"type": "pdq", "value": "0" * 64}]})
        add_times: list[float] = []
        revoke_times: list[float] = []
        rng = random.Random(5)
        try:
            for _ in range(trials):
                value = random_pdq(rng)
                query = {"hashes": [{"type": "pdq", "value": value}]}

                def matched_on_c(q: object = query) -> bool:
                    return bool(c.call("POST", "/v1/match", q)["results"][0]["matches"])

                started = time.monotonic()
                record = a.call("POST", "/v1/records", {"items": [{"hashes": [
                    {"type": "pdq", "value": value}]}]})["records"][0]["id"]
                wait_until(matched_on_c, 30)
                add_times.append(time.monotonic() - started)
                started = time.monotonic()
                a.call("POST", "/v1/revocations", {"targets": [record], "reason": "withdrawn"})
                wait_until(lambda: not matched_on_c(), 30)
                revoke_times.append(time.monotonic() - started)
        finally:
            for node in nodes:
                node.stop()
    return {"add": add_times, "revoke": revoke_times}


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k batched, 20k single, 10 trials")
    parser.add_argument("--hashes", type=int, default=1_000_000, help="hashes, batched records")
    parser.add_argument("--singles", type=int, default=100_000, help="hashes, one per record")
    parser.add_argument("--trials", type=int, default=20, help="propagation trials")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    if args.quick:
        args.hashes, args.singles, args.trials = 100_000, 20_000, 10

    print(f"{'cold sync, 2 nodes':<34}{'hashes':>10}{'records':>10}{'seconds':>10}"
          f"{'hashes/s':>11}{'records/s':>11}{'B peak RSS':>12}")
    for hashes, per_record, label in ((args.hashes, 256, "batched (256 per record)"),
                                      (args.singles, 1, "single hash per record")):
        if hashes <= 0:
            continue
        r = cold_sync(hashes, per_record, args.timeout)
        print(f"{label:<34}{r['hashes']:>10,.0f}{r['records']:>10,.0f}{r['seconds']:>10.1f}"
              f"{r['hashes_per_s']:>11,.0f}{r['records_per_s']:>11,.0f}"
              f"{r['b_peak_rss_mb']:>9.0f} MB", flush=True)

    times = propagation(args.trials)
    print(f"\n{'propagation over 3 hops (A-B-C)':<34}{'median':>10}{'p99':>10}{'max':>10}"
          f"  ({args.trials} trials)")
    for kind, values in times.items():
        print(f"{kind + ' on A, seen on C':<34}{statistics.median(values):>9.3f}s"
              f"{p99(values):>9.3f}s{max(values):>9.3f}s")


if __name__ == "__main__":
    main()
