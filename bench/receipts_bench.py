"""The cost of receipts (SPEC §21): a cold sync of N hashes between two real node processes,
with receipts on (the default, ``[receipts] interval_seconds = 5``) and off.

Node A holds N pdq hashes in its own log (``add`` records of 256 items); node B starts empty,
peered with A, and pulls everything. Timed, per run:

* **sync**: from B's start until B holds A's whole log and matches A's last hash (as
  ``sync_bench``);
* **proof** (receipts on): from B's start until A holds B's ``active`` receipt of every add,
  which is when A can show the whole batch is active at B;
* B's receipt records and their bytes, B's peak RSS.

Runs alternate on/off, so a slow spell of the shared machine hits both alike; medians over
``--runs``.

    python -m bench.receipts_bench --quick          # 100k hashes, 3 runs each
    python -m bench.receipts_bench                  # 1M hashes, 3 runs each
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.nodes import BenchNode, fill_log, link, make_node, random_pdq
from bench.sync_bench import wait_until


def receipts_at(node: BenchNode, signer: str) -> tuple[int, int]:
    """``(receipt rows, receipt records)`` of ``signer`` in ``node``'s database."""
    db = node.directory / "data" / "hashmesh.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        try:
            rows = conn.execute("SELECT COUNT(*) FROM receipts WHERE node=? AND kind='active' "
                                "AND target_ts IS NOT NULL", (signer,)).fetchone()[0]
        except sqlite3.OperationalError:
            rows = 0
        records = conn.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(raw)), 0) FROM records "
                               "WHERE origin=? AND type='receipt'", (signer,)).fetchone()
    return int(rows), int(records[0]) if records else 0


def receipt_bytes(node: BenchNode) -> int:
    db = node.directory / "data" / "hashmesh.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        return int(conn.execute("SELECT COALESCE(SUM(LENGTH(raw)), 0) FROM records WHERE "
                                "type='receipt'").fetchone()[0])


def one_run(hashes: int, receipts: bool, timeout: float, interval: int = 5) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        a = make_node(root, "a", "127.0.0.2")
        b = make_node(root, "b", "127.0.0.3")
        for node in (a, b):
            with open(node.config, "a") as config:
                config.write(f"\n[receipts]\nenabled = {'true' if receipts else 'false'}\n"
                             f"interval_seconds = {interval}\n")
        link(a, b)
        fill_log(a, hashes, 256)
        records = -(-hashes // 256)
        rng = random.Random(1)
        last = [random_pdq(rng) for _ in range(hashes)][-1]
        a.start()
        proof = None
        try:
            started = time.monotonic()
            b.start()
            query = {"hashes": [{"type": "pdq", "value": last}]}
            wait_until(lambda: b.head_seq(a.origin) >= records + 1, timeout)
            wait_until(lambda: b.call("POST", "/v1/match", query)["results"][0]["matches"], 60)
            synced = time.monotonic() - started
            if receipts and interval < timeout:
                wait_until(lambda: receipts_at(a, b.origin)[0] >= records, timeout)
                proof = time.monotonic() - started
            rss = b.peak_rss_mb()
            rows, receipt_records = receipts_at(a, b.origin)
            size = receipt_bytes(b)
        finally:
            b.stop()
            a.stop()
    return {"receipts": receipts, "hashes": hashes, "records": records, "sync_s": synced,
            "proof_s": proof, "receipt_records": receipt_records, "receipt_bytes": size,
            "receipted": rows, "b_peak_rss_mb": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k hashes")
    parser.add_argument("--hashes", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="runs of each mode")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--interval", type=int, default=5,
                        help="[receipts] interval_seconds of both nodes (default 5)")
    args = parser.parse_args()
    if args.quick:
        args.hashes = 100_000
    load = os.getloadavg()[0]
    print(f"cold sync of {args.hashes:,} hashes (256 per record), A -> B, {args.runs} runs "
          f"each, alternating; load average at start {load:.1f}")
    results: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    for run in range(args.runs):
        for receipts in ((True, False) if run % 2 == 0 else (False, True)):
            r = one_run(args.hashes, receipts, args.timeout, args.interval)
            results[receipts].append(r)
            proof = "" if r["proof_s"] is None else f", proof at A {r['proof_s']:.1f} s"
            print(f"  receipts {'on ' if receipts else 'off'}: sync {r['sync_s']:.1f} s{proof}, "
                  f"{r['receipt_records']} receipt records ({r['receipt_bytes']:,} bytes), "
                  f"B peak RSS {r['b_peak_rss_mb']:.0f} MB, load {os.getloadavg()[0]:.1f}",
                  flush=True)
    print(f"\n{'median over ' + str(args.runs) + ' runs':<24}{'sync s':>9}{'proof s':>9}"
          f"{'receipts':>10}{'bytes':>11}{'B RSS MB':>10}")
    for receipts in (False, True):
        rs = results[receipts]
        proofs = [r["proof_s"] for r in rs if r["proof_s"] is not None]
        print(f"{'receipts ' + ('on' if receipts else 'off'):<24}"
              f"{statistics.median(r['sync_s'] for r in rs):>9.1f}"
              f"{(f'{statistics.median(proofs):.1f}' if proofs else '-'):>9}"
              f"{statistics.median(r['receipt_records'] for r in rs):>10.0f}"
              f"{statistics.median(r['receipt_bytes'] for r in rs):>11,.0f}"
              f"{statistics.median(r['b_peak_rss_mb'] for r in rs):>10.0f}")
    off = statistics.median(r["sync_s"] for r in results[False])
    on = statistics.median(r["sync_s"] for r in results[True])
    print(f"sync time with receipts / without: {on / off:.2f}")


if __name__ == "__main__":
    main()
