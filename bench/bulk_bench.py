"""Bulk load: ``hashmesh add --from LIST`` of N random PDQ hashes into a running node.

End to end and real: ``hashmesh init``, ``hashmesh run`` as a subprocess on loopback, the
CLI as a subprocess reading a CSV list, timed from the CLI's start to its exit (every hash
signed into records, committed to SQLite and in the match index: the CLI's last answer
arrives after the node has applied it). Then one match of a listed hash checks it is found.

    python -m bench.bulk_bench --quick          # 100k hashes
    python -m bench.bulk_bench --sizes 1000000  # 1M
    python -m bench.bulk_bench --quick --max-add-items 1000,10000   # smaller, node default
    python -m bench.bulk_bench --quick --profile node.prof   # cProfile of the node
    python -m bench.bulk_bench --quick --stages    # in process: CPU time of each step
    python -m bench.bulk_bench --quick --repeat 3  # medians (the machine may be shared)
    python -m bench.bulk_bench --delta-latency     # 1M: query p50 while a bulk load runs
    python -m bench.bulk_bench --quick --queries   # + matches over HTTP during the load
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from hashmesh.node.cli.local import create_node_dir
from hashmesh.node.config.node import LimitsConfig, load_node_config
from tests.cli_process import hashmesh_command
from tests.conftest import free_port

# the node's default items a request (an older node has no max_add_items: max_batch, 1,000)
DEFAULT_ADD_ITEMS = int(getattr(LimitsConfig, "max_add_items", LimitsConfig.max_batch))


def write_list(path: Path, count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    values = [rng.getrandbits(256).to_bytes(32, "big").hex() for _ in range(count)]
    with open(path, "w") as out:
        out.write("signal_type,signal_str,collab,category,tags\n")
        for value in values:
            out.write(f"pdq,{value},bench,NCII,\n")
    return values


def run_one(count: int, profile: str | None, max_add_items: int,
            queries: bool = False) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="hm-bulk-") as tmp:
        root = Path(tmp)
        config, token, _ = create_node_dir(root / "node", name="Bulk Bench",
                                           port=free_port("127.0.0.1"))
        if max_add_items != DEFAULT_ADD_ITEMS:  # the CLI sends what the node takes
            config.write_text(config.read_text() + f"\n[limits]\nmax_add_items = "
                              f"{max_add_items}\n")
        values = write_list(root / "list.csv", count)
        port = load_node_config(config).listen.port
        url = f"http://127.0.0.1:{port}"
        command = [*hashmesh_command(), "run", "--config", str(config)]
        if profile:
            command = [sys.executable, "-m", "cProfile", "-o", profile, "-m",
                       "hashmesh.node.cli.main", "run", "--config", str(config)]
        node = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait(url)
            _settle(node.pid)
            node_cpu = _cpu_seconds(node.pid)
            cli_cpu = _children_cpu_seconds()
            asking = _QueriesDuringLoad(url, token) if queries else None
            started = time.perf_counter()
            result = subprocess.run([*hashmesh_command(), "add", "--config", str(config),
                                     "--from", str(root / "list.csv"), "--no-progress"],
                                    capture_output=True, text=True, env={**os.environ})
            elapsed = time.perf_counter() - started
            latency = asking.stop() if asking is not None else {}
            node_cpu = _cpu_seconds(node.pid) - node_cpu
            peak_rss = _peak_rss_mib(node.pid)
            cli_cpu = _children_cpu_seconds() - cli_cpu
            load = os.getloadavg()[0]
            if result.returncode:
                raise SystemExit(result.stderr)
            answer = json.loads(result.stdout)
            assert answer["added"] == count, answer
            match = json.loads(_post(url, token, {"hashes": [
                {"type": "pdq", "value": values[count // 2]}]}))
            assert match["results"][0]["matches"], "a listed hash did not match"
        finally:
            node.terminate()
            node.wait(timeout=60)
        return {"hashes": count, "max_add_items": max_add_items, "seconds": round(elapsed, 2),
                "hashes_per_second": round(count / elapsed), "records": answer["records"],
                "node_cpu_us_per_hash": round(node_cpu / count * 1e6, 1),
                "cli_cpu_us_per_hash": round(cli_cpu / count * 1e6, 1),
                "node_peak_rss_mib": peak_rss, **latency, "load_average": round(load, 1)}


class _QueriesDuringLoad:
    """One single-hash PDQ match every 20 ms while the bulk load runs, each timed end to end
    over HTTP (the node serves matches on its own port unless match workers are set up):
    what a platform's lookups wait meanwhile."""

    def __init__(self, url: str, token: str) -> None:
        import threading

        self.url, self.token = url, token
        self.times: list[float] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._ask, daemon=True)
        self.thread.start()

    def _ask(self) -> None:
        rng = random.Random(3)
        while not self.done.wait(0.02):
            value = rng.getrandbits(256).to_bytes(32, "big").hex()
            started = time.perf_counter()
            _post(self.url, self.token, {"hashes": [{"type": "pdq", "value": value}]})
            self.times.append(time.perf_counter() - started)

    def stop(self) -> dict[str, float]:
        self.done.set()
        self.thread.join()
        times = sorted(self.times)
        if not times:
            return {}
        return {"queries": len(times),
                "query_p50_ms": round(times[len(times) // 2] * 1e3, 2),
                "query_p99_ms": round(times[min(len(times) - 1, len(times) * 99 // 100)] * 1e3, 2),
                "query_max_ms": round(times[-1] * 1e3, 2)}


def _settle(pid: int) -> None:
    """Wait until the node's start-up work (loading the match kernel in the background) is
    done: no CPU used for 0.5 s, at most 30 s."""
    deadline = time.monotonic() + 30
    last = _cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _cpu_seconds(pid)
        if now == last:
            return
        last = now


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (Linux ``/proc``): what the work cost,
    whatever else the shared machine was running meanwhile."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mib(pid: int) -> float:
    """The node's peak resident memory so far (``VmHWM``): the index, the page cache of
    SQLite and the requests in flight."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def stages(count: int, batch: int = 1000) -> dict[str, Any]:
    """Where a bulk add's node CPU goes, in process (no HTTP): requests of ``batch`` items
    as ``hashmesh add --from`` writes them, each step timed alone in CPU time of all threads
    (``time.process_time``), in µs a hash, with the garbage collector tuned as ``hashmesh
    run`` tunes it (``GC_THRESHOLDS``)."""
    import asyncio
    import gc

    from hashmesh.node.api.requests import read_add_fast
    from hashmesh.node.api.server import GC_THRESHOLDS
    from hashmesh.node.cli.bulk import encode_request, item_affixes
    from hashmesh.node.cli.hashlists import ListEntry
    from hashmesh.node.service import NodeService, batch_items
    from hashmesh.node.store.interface import NodeStore
    from hashmesh.node.store.sqlite import Changes
    from hashmesh.protocol.records import AddBody, Distribution

    rng = random.Random(11)
    prefix, suffix = item_affixes({"tier": "victim_submitted"}, "ncii")
    bodies = [encode_request([ListEntry("pdq", rng.getrandbits(256).to_bytes(32, "big").hex(),
                                        "") for _ in range(batch)], prefix, suffix,
                             {"scope": "all"}) for _ in range(count // batch)]

    async def run() -> dict[str, Any]:
        gc.set_threshold(*GC_THRESHOLDS)
        with tempfile.TemporaryDirectory(prefix="hm-stages-") as tmp:
            config, _, _ = create_node_dir(Path(tmp) / "n", name="Stages", port=9)
            service = await NodeService.open(load_node_config(config))
            if service._warming is not None:  # the kernel's warm-up thread would be counted
                await service._warming
            times = dict.fromkeys(("parse", "split", "sign_and_store", "index"), 0.0)
            try:
                for body in bodies:
                    started = time.process_time()
                    parsed = read_add_fast(body, max_batch=batch, allowed_lists=("ncii",))
                    assert parsed is not None
                    times["parse"] += time.process_time() - started
                    started = time.process_time()
                    records = [AddBody(b) for b in batch_items(parsed.items, 256)]
                    times["split"] += time.process_time() - started

                    def commit(store: NodeStore, records: list[AddBody] = records,
                               dist: Distribution = parsed.dist) -> Changes:
                        started = time.process_time()
                        _, changes = store.append_local_many(
                            signer=service.identity.signer, origin=service.origin,
                            bodies=records, dist=dist, actor="bench")
                        times["sign_and_store"] += time.process_time() - started
                        return changes

                    changes = await service.store.write(commit)
                    started = time.process_time()
                    service.queue_changes(changes)
                    await service.apply_changes_soon()
                    times["index"] += time.process_time() - started
                return {"hashes": count, "batch": batch,
                        "cpu_us_per_hash": {k: round(v / count * 1e6, 2)
                                            for k, v in times.items()}}
            finally:
                await service.close()

    return asyncio.run(run())


def delta_latency(count: int) -> dict[str, Any]:
    """What a bulk load costs the queries that arrive meanwhile: the p50 of single PDQ queries
    (threshold 31) on an index of ``count`` hashes with 0 to ``BULK_MAX_DELTA`` added rows
    left unmerged in its delta, which every query scans (``HammingIndex.bulk_merge_at``)."""
    import numpy as np

    from hashmesh.node.matching.matcher import BULK_MAX_DELTA, HammingIndex, Matcher

    Matcher.warm_up()
    rng = np.random.default_rng(1)
    index = HammingIndex(256, 31)
    packed = rng.integers(0, 2**63, size=count * 4, dtype=np.int64).tobytes()
    index.bulk_load(np.arange(count, dtype=np.int64), packed)
    queries = [packed[i * 32:(i + 1) * 32] for i in range(0, count, max(1, count // 200))]
    index._maybe_merge = lambda: None  # type: ignore[method-assign]  # keep the delta
    p50: dict[str, Any] = {}
    added = 0
    for delta in (0, BULK_MAX_DELTA // 4, BULK_MAX_DELTA // 2, BULK_MAX_DELTA):
        new = np.arange(count + added, count + delta, dtype=np.int64)
        if len(new):
            index.add_many(new, rng.integers(0, 2**63, size=len(new) * 4,
                                             dtype=np.int64).tobytes())
        added = delta
        times = []
        for query in queries:
            started = time.perf_counter()
            index.query(query, 31)
            times.append(time.perf_counter() - started)
        p50[str(delta)] = round(statistics.median(times) * 1e6, 1)
    return {"hashes": count, "query_p50_us_by_delta_rows": p50}


def _post(url: str, token: str, body: object) -> str:
    request = urllib.request.Request(url + "/v1/match", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return str(response.read().decode())


def _wait(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("node did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k hashes")
    parser.add_argument("--sizes", default="1000000", help="comma-separated list sizes")
    parser.add_argument("--profile", help="write a cProfile of the node to this file")
    parser.add_argument("--stages", action="store_true",
                        help="in process: time each step of one bulk add request")
    parser.add_argument("--delta-latency", action="store_true",
                        help="in process: PDQ query p50 with a bulk load's delta unmerged")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each size (medians: "
                        "the machine is shared)")
    parser.add_argument("--queries", action="store_true",
                        help="time a single-hash match every 20 ms during each load")
    parser.add_argument("--max-add-items", default=str(DEFAULT_ADD_ITEMS),
                        help="comma-separated [limits] max_add_items values (the node's "
                             "default is 10,000 items a request; max_body_bytes, 1 MiB, "
                             "keeps a PDQ request to ~8,800); --stages: the first value")
    args = parser.parse_args()
    sizes = [100_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    if args.delta_latency:
        for size in sizes:
            print(json.dumps(delta_latency(size)), flush=True)
        return
    if args.stages:
        for size in sizes:
            print(json.dumps(stages(size, int(args.max_add_items.split(",")[0]))),
                  flush=True)
        return
    for size in sizes:
        for max_add_items in [int(b) for b in args.max_add_items.split(",")]:
            runs = []
            for _ in range(args.repeat):
                runs.append(run_one(size, args.profile, max_add_items, args.queries))
                print(json.dumps(runs[-1]), flush=True)
            if len(runs) > 1:
                print(json.dumps({"median": {key: statistics.median(r[key] for r in runs)
                                             for key in runs[0]}}), flush=True)


if __name__ == "__main__":
    main()
