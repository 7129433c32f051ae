"""PostgreSQL store against SQLite, and one node served by several processes (issue 16).

Measured, on one machine, each store in turn:

1. **bulk ingest** (a sync's path, ``Store.ingest`` of pages of 100 records of 256 hashes,
   pre-signed): hashes/s into SQLite and into PostgreSQL;
2. **local adds** (``Store.append_local``: sign, insert, advance the head in one transaction,
   256 hashes a record): records/s and hashes/s;
3. **index load** of N hashes (``active_entries`` + pack + ``Matcher.bulk_load_packed``, what a
   starting process does): seconds, from each store;

then, with real ``hashmesh run`` processes on the PostgreSQL database:

4. **matches/s** (``POST /v1/match``, one pdq hash, 90% misses and 10% hits, closed loop of C
   keep-alive connections spread over the processes) with 1 and 2 processes;
5. **catch-up**: how long a follower takes to index K hashes added through the leader;
6. **failover**: ``kill -9`` the leader, until the follower holds the lease.

    python -m bench.pg_bench --quick     # 100k hashes, ~2 minutes
    python -m bench.pg_bench             # 1M hashes
    python -m bench.pg_bench --index-load 5   # only 3., 1.1M hashes, 5 rounds side by side

``--index-load`` measures the index load alone: SQLite, PostgreSQL, and PostgreSQL's earlier
way (``COPY`` text in id order, strings packed by the caller), one after the other in each
round, so that a machine shared with other jobs weighs on all three alike.

A PostgreSQL server is started with the ``pgserver`` wheel (``pip install -e '.[test]'``) in a
temporary directory, or ``--url postgresql://…`` names a server (a database that may be
dropped and created). The load generator runs on the same cores as the node processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import psycopg

from bench.nodes import free_port
from hashmesh.node.cli.local import create_node_dir
from hashmesh.node.matching.answers import _read_packed
from hashmesh.node.matching.matcher import Matcher, pack_many
from hashmesh.node.store.postgres import PostgresStore
from hashmesh.node.store.sqlite import Store
from hashmesh.protocol.keys import SigningKey
from hashmesh.protocol.log import LogHead, append
from hashmesh.protocol.records import AddBody, HashEntry, Item, SignedRecord

PER_RECORD = 256
# unmeasured load first: a new process compiles its match kernel (numba) in the background
WARM_UP_SECONDS = 5.0


def random_pdq(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def signed_log(key: SigningKey, hashes: int, seed: int = 1) -> tuple[list[SignedRecord],
                                                                      list[str]]:
    rng = random.Random(seed)
    head: LogHead | None = None
    records, values = [], []
    for start in range(0, hashes, PER_RECORD):
        batch = [random_pdq(rng) for _ in range(min(PER_RECORD, hashes - start))]
        values += batch
        items = tuple(Item(hashes=(HashEntry("pdq", v),), list="ncii") for v in batch)
        record = append(head, signer=key, origin=key.id, body=AddBody(items), now_ms=1)
        head = LogHead.of(record)
        records.append(record)
    return records, values


@contextmanager
def postgres(url: str | None) -> Iterator[str]:
    """A server's URL (``--url``) or one started with pgserver for the run."""
    if url:
        yield url
        return
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="pgbench-xdg-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        directory = tempfile.mkdtemp(prefix="pgbench-")
        server: Any = pgserver.get_server(  # type: ignore[attr-defined]
            directory, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


def fresh_database(server: str, name: str) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return re.sub(r"(postgres(?:ql)?://[^/]*/)([^?]*)", rf"\g<1>{name}", server, count=1)


def timed(fn: Any) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def store_figures(store: Store, records: list[SignedRecord], adds: int) -> dict[str, float]:
    hashes = sum(len(r.body.items) for r in records if isinstance(r.body, AddBody))

    def ingest() -> None:
        for start in range(0, len(records), 100):
            store.ingest(records[start:start + 100], source="bench")

    ingest_s = timed(ingest)
    key = SigningKey(bytes(range(32, 64)))
    rng = random.Random(3)
    bodies = [AddBody(tuple(Item(hashes=(HashEntry("pdq", random_pdq(rng)),), list="ncii")
                            for _ in range(PER_RECORD))) for _ in range(adds)]

    def add_local() -> None:
        for body in bodies:
            store.append_local(signer=key, origin=key.id, body=body)

    add_s = timed(add_local)

    load = partial(index_load, store)
    load()  # warm: the first read of a fresh database pays for its page cache
    load_s = timed(load)
    return {"ingest_hashes_per_s": hashes / ingest_s, "ingest_s": ingest_s,
            "adds_records_per_s": adds / add_s, "adds_hashes_per_s": adds * PER_RECORD / add_s,
            "index_load_s": load_s,
            "index_hashes": hashes + adds * PER_RECORD}


def index_load(store: Store) -> None:
    """What a starting process does: the node's own read and pack (``_read_packed``: binary
    COPY decoded by the server on PostgreSQL, strings packed on SQLite), then the index."""
    ids, packed = _read_packed(store, "pdq", None)
    Matcher().bulk_load_packed("pdq", ids, packed)


def index_load_from_text(store: Store) -> None:
    """The load before issue 16's follow-up: ``active_entries`` strings, packed here (on
    PostgreSQL, ``COPY`` text in id order)."""
    ids = array("q")
    packed = bytearray()
    for chunk_ids, values in store.active_entries("pdq"):
        ids.extend(chunk_ids)
        packed += pack_many("pdq", values)
    Matcher().bulk_load_packed("pdq", np.frombuffer(ids, dtype=np.int64), packed)


def index_load_figures(url: str, root: Path, records: list[SignedRecord], repeats: int
                       ) -> dict[str, Any]:
    """The index load alone, SQLite and PostgreSQL side by side: the same log in both, then
    ``repeats`` rounds that each time one load from each in turn (so that the machine's load,
    shared with other jobs, weighs on both alike); medians, and each round's ratio."""
    lite, pg = Store(root / "load.db"), PostgresStore(url)
    try:
        for store in (lite, pg):
            for start in range(0, len(records), 100):
                store.ingest(records[start:start + 100], source="bench")
        ways = {"sqlite": partial(index_load, lite), "postgresql": partial(index_load, pg),
                "postgresql_text_copy_before": partial(index_load_from_text, pg)}
        for way in ways.values():
            way()  # warm the page caches
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(repeats):
            for name, way in ways.items():
                times[name].append(timed(way))
                print(f"  {name}: {times[name][-1]:.2f} s", flush=True)
    finally:
        lite.close()
        pg.close()
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {"hashes": sum(len(r.body.items) for r in records if isinstance(r.body, AddBody)),
            "median_s": medians, "runs_s": times,
            "ratio_postgresql_to_sqlite": medians["postgresql"] / medians["sqlite"],
            "ratio_before": medians["postgresql_text_copy_before"] / medians["sqlite"],
            "round_ratios": [p / q for p, q in zip(times["postgresql"], times["sqlite"],
                                                    strict=True)],
            "load_average_after": os.getloadavg()}


class Node:
    """One ``hashmesh run`` process of the node (its own node.toml: its own port)."""

    def __init__(self, directory: Path, name: str, token: str) -> None:
        self.port = free_port("127.0.0.1")
        text = (directory / "node.toml").read_text()
        self.config = directory / f"{name}.toml"
        self.config.write_text(re.sub(r"^port = \d+", f"port = {self.port}", text, count=1,
                                      flags=re.M))
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = token
        self.log = directory / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        began = time.monotonic()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hashmesh.node.cli.main", "run", "--config",
                 str(self.config), "--log-level", "WARNING"], stdout=log, stderr=log)
        while time.monotonic() - began < 300:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1):
                    return time.monotonic() - began
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.url} did not start; see {self.log}")

    def call(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            self.url + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def cluster(self) -> dict[str, Any]:
        cluster: dict[str, Any] = self.call("GET", "/v1/status")["cluster"]
        return cluster

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)


async def _load(urls: list[str], token: str, bodies: list[bytes], connections: int,
                seconds: float) -> tuple[float, int]:
    done = errors = 0
    end = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def worker(k: int) -> None:
        nonlocal done, errors
        url = urls[k % len(urls)] + "/v1/match"
        i = k
        while time.perf_counter() < end:
            async with session.post(url, data=bodies[i % len(bodies)]) as response:
                await response.read()
                done += 1
                errors += response.status != 200
            i += connections

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections),
                                     headers=headers) as session:
        await asyncio.gather(*(worker(k) for k in range(connections)))
    return done / seconds, errors


def match_bodies(values: list[str], count: int = 5000) -> list[bytes]:
    rng = random.Random(9)
    bodies = []
    for i in range(count):
        if i % 10 == 0:
            number = int(rng.choice(values), 16) ^ (1 << rng.randrange(256))
            value = f"{number:064x}"
        else:
            value = random_pdq(rng)
        bodies.append(json.dumps({"hashes": [{"type": "pdq", "value": value}]}).encode())
    return bodies


def process_figures(url: str, root: Path, values: list[str], args: argparse.Namespace
                    ) -> dict[str, Any]:
    config, token, _ = create_node_dir(root / "node", name="Bench Commission",
                                       host="127.0.0.1", port=free_port("127.0.0.1"))
    config.write_text(config.read_text() + f'\n[store]\nurl = "{url}"\n')
    nodes = [Node(root / "node", f"p{i}", token) for i in range(max(args.processes))]
    first, second = nodes[0], nodes[1]
    bodies = match_bodies(values)
    figures: dict[str, Any] = {}
    try:
        running: list[Node] = []
        for count in sorted(args.processes):
            for node in nodes[len(running):count]:
                figures.setdefault("start_s", []).append(node.start())
                asyncio.run(_load([node.url], token, bodies, args.connections,
                                  WARM_UP_SECONDS))
                running.append(node)
            figures[f"matches_per_s_{count}_processes"] = asyncio.run(_load(
                [n.url for n in running], token, bodies, args.connections, args.seconds))
        for node in nodes[2:]:
            node.stop()

        rng = random.Random(5)
        target = first.cluster()["followed_entry_id"]
        began = time.monotonic()
        for _ in range(args.catch_up // 1000):
            items = [{"hashes": [{"type": "pdq", "value": random_pdq(rng)}]}
                     for _ in range(1000)]
            first.call("POST", "/v1/records", {"items": items})
        added_s = time.monotonic() - began
        last = _last_entry_id(url)
        while second.cluster()["followed_entry_id"] < last:
            time.sleep(0.01)
        figures["catch_up"] = {"hashes": args.catch_up, "added_in_s": added_s,
                               "followed_after_last_add_s": time.monotonic() - began - added_s,
                               "from_entry": target, "to_entry": last}

        assert first.process is not None
        first.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        first.process.wait()
        while not second.cluster()["leads"]:
            time.sleep(0.01)
        figures["failover_s"] = time.monotonic() - killed
    finally:
        for node in nodes:
            node.stop()
    return figures


def _last_entry_id(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT MAX(id) FROM entries").fetchone()
    return int(row[0]) if row and row[0] else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k hashes instead of 1M")
    parser.add_argument("--url", help="a PostgreSQL server to use (default: start one)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2],
                        help="process counts to measure matches/s with (at least 2 are started)")
    parser.add_argument("--index-load", type=int, metavar="ROUNDS", default=0,
                        help="measure only the index load, SQLite and PostgreSQL side by side, "
                             "this many rounds (of 1.1M hashes, or 110k with --quick)")
    args = parser.parse_args()
    args.processes = sorted(set(args.processes) | {2})
    hashes = 100_000 if args.quick else 1_000_000
    if args.index_load:
        index_load_only(args, hashes + (10_000 if args.quick else 100_000))
        return
    args.catch_up = 10_000 if args.quick else 100_000
    adds = 100 if args.quick else 400
    key = SigningKey(bytes(range(32)))
    began = time.perf_counter()
    records, values = signed_log(key, hashes)
    print(f"signed {hashes} hashes in {len(records)} records in "
          f"{time.perf_counter() - began:.1f} s", flush=True)
    root = Path(tempfile.mkdtemp(prefix="pgbench-nodes-"))
    results: dict[str, Any] = {"hashes": hashes, "cores": os.cpu_count()}
    try:
        lite = Store(root / "bench.db")
        try:
            results["sqlite"] = store_figures(lite, records, adds)
        finally:
            lite.close()
        print("sqlite", json.dumps(results["sqlite"]), flush=True)
        with postgres(args.url) as server:
            url = fresh_database(server, "hashmesh_bench")
            pg = PostgresStore(url)
            try:
                results["postgresql"] = store_figures(pg, records, adds)
            finally:
                pg.close()
            print("postgresql", json.dumps(results["postgresql"]), flush=True)
            results["processes"] = process_figures(url, root, values, args)
            print("processes", json.dumps(results["processes"]), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(results, indent=2))


def index_load_only(args: argparse.Namespace, hashes: int) -> None:
    records, _ = signed_log(SigningKey(bytes(range(32))), hashes)
    root = Path(tempfile.mkdtemp(prefix="pgbench-load-"))
    print(f"load average before: {os.getloadavg()}", flush=True)
    try:
        with postgres(args.url) as server:
            url = fresh_database(server, "hashmesh_bench_load")
            figures = index_load_figures(url, root, records, args.index_load)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
