"""What a case costs: the argon2id PIN hash, and the case verbs on a real node.

A PIN check is the slow part of every status or withdrawal request, by design (argon2-cffi's
RFC 9106 low-memory profile: 64 MiB, 3 passes, 4 lanes); this bench says how slow, and what
the rest of a request adds. Times are medians of ``--runs`` runs.

* ``hash``, ``verify right``, ``verify wrong``, ``verify decoy``: ``PinHasher`` alone;
* ``open_case``, ``case_status``, ``wrong PIN``: ``NodeService`` on a fresh node directory
  (SQLite, synchronous=FULL), two PDQ hashes a case.

    python -m bench.case_bench            # 15 runs
    python -m bench.case_bench --runs 5   # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hashmesh.node.cases import CaseAccessError  # noqa: E402
from hashmesh.node.cases.credentials import PinHasher  # noqa: E402
from hashmesh.node.cli.local import create_node_dir  # noqa: E402
from hashmesh.node.config.node import load_node_config  # noqa: E402
from hashmesh.node.service import NodeService  # noqa: E402
from hashmesh.protocol.records import Distribution, HashEntry, Item  # noqa: E402


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.0f} ms"


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


async def timed_async(fn: Callable[[], Awaitable[object]], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        try:
            await fn()
        except CaseAccessError:
            pass
        samples.append(time.perf_counter() - started)
    return samples


def item(rng: random.Random) -> Item:
    return Item((HashEntry("pdq", rng.getrandbits(256).to_bytes(32, "big").hex()),), "ncii")


async def node_figures(runs: int) -> dict[str, list[float]]:
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        config_path, _, _ = create_node_dir(Path(tmp) / "node", name="Bench", host="127.0.0.1",
                                            port=9)
        # enough tries for every run from one address
        config_path.write_text(config_path.read_text()
                               + f"\n[cases]\npin_attempts = {runs + 1}\n"
                                 f"client_attempts = {runs + 1}\n")
        service = await NodeService.open(load_node_config(config_path))
        try:
            opened = []

            async def open_one() -> None:
                opened.append(await service.open_case([item(rng), item(rng)], Distribution(),
                                                      "bench"))

            figures = {"open_case (2 hashes)": await timed_async(open_one, runs)}
            case = opened[0]
            figures["case_status, right PIN"] = await timed_async(
                lambda: service.case_status(case.reference, case.pin, "bench"), runs)
            wrong = "00000000" if case.pin != "00000000" else "11111111"
            figures["case_status, wrong PIN"] = await timed_async(
                lambda: service.case_status(case.reference, wrong, "bench"), runs)
            return figures
        finally:
            await service.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    hasher = PinHasher()
    stored = hasher.hash("12345678")
    figures = {
        "argon2id hash": timed(lambda: hasher.hash("12345678"), args.runs),
        "argon2id verify, right PIN": timed(lambda: hasher.verify(stored, "12345678"),
                                            args.runs),
        "argon2id verify, wrong PIN": timed(lambda: hasher.verify(stored, "87654321"),
                                            args.runs),
        "argon2id verify, decoy (unknown reference)": timed(
            lambda: hasher.verify(None, "12345678"), args.runs),
    }
    figures.update(asyncio.run(node_figures(args.runs)))
    print(f"load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    print("| step | median |\n|---|---|")
    for name, samples in figures.items():
        print(f"| {name} | {median_ms(samples)} |")


if __name__ == "__main__":
    main()
