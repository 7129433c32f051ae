"""What the audit hash chain costs: audit rows appended with the chain (``store.audit_many``,
``store.audit``) against the plain insert of the rows before the chain, on one SQLite store.

    python -m bench.audit_bench [--batches 200] [--repeat 5]

A match worker flushes its queued match rows in one transaction (``audit_many``, a batch of
up to hundreds of rows); signing and operator actions write one row a transaction. Medians of
``--repeat`` runs, in microseconds a row.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from hashmesh.node.store.sqlite import AuditRow, Store


def rows(n: int) -> list[AuditRow]:
    detail = json.dumps({"queries": 4, "matched_records": ["ab" * 32], "origins": ["x"]})
    return [(1_765_000_000_000 + i, "token:platform", "match", detail) for i in range(n)]


def plain(store: Store, batch: list[AuditRow]) -> None:
    """The insert before the chain (id assigned by SQLite, no prev or hash)."""
    with store.transaction() as conn:
        conn.executemany("INSERT INTO audit (ts, actor, action, detail) VALUES (?,?,?,?)",
                         batch)


def measure(batches: int, size: int, chained: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        try:
            batch = rows(size)
            started = time.perf_counter()
            for _ in range(batches):
                store.audit_many(batch) if chained else plain(store, batch)
            return (time.perf_counter() - started) / (batches * size) * 1e6
        finally:
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for size in (1, 100):
        figures = {}
        for chained in (False, True):
            figures[chained] = statistics.median(
                measure(args.batches, size, chained) for _ in range(args.repeat))
        print(f"rows a transaction {size:>3}: plain {figures[False]:8.1f} µs/row, "
              f"chained {figures[True]:8.1f} µs/row, ratio {figures[True] / figures[False]:.2f}")


if __name__ == "__main__":
    main()
