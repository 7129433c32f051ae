"""Feed benchmark: a full fetch of a node's list through the python-threatexchange extension and
through TAXII 2.1, in pages, and matching while a fetch runs (issue 14 part 5).

One node holds N pdq items in its own signed log (``add`` records of 256 items, the data of
``bench/api_bench.py``, so ``--dir`` can share a node directory with it) and runs as a
``hashmesh run`` subprocess. Each client runs in a process of its own, so its time and peak RSS
are its own:

- ``pytx``: ``HashmeshSignalExchangeAPI.fetch_iter`` from the start (pages of 1,000 changes),
  counting items; nothing is kept, as a consumer that writes each delta to its store would;
- ``taxii``: taxii2-client's ``as_pages(collection.get_objects, per_request=1000)``.

Printed per client: items, seconds, items/s, pages, the client's peak RSS, the node's CPU and
the growth of its RSS during the fetch. Then match requests (one pdq hash each, 90% misses,
10% near-duplicates; ``api_bench``'s mix) from C keep-alive connections for D seconds, alone
and while each full fetch runs.

    python -m bench.feed_bench --quick                 # 100k items
    python -m bench.feed_bench                         # 1M items (~2 min to sign first)
    python -m bench.feed_bench --dir /tmp/api1m        # reuse a node directory
    python -m bench.feed_bench --quick --match-workers 2   # matches served by 2 workers
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.api_bench import (
    _process_cpu_seconds,
    aiohttp_load,
    machine,
    make_queries,
    prepare,
    stored_values,
)
from bench.nodes import BenchNode, peak_rss_mb

PAGE = 1000


def fetch_pytx(url: str, token: str) -> dict[str, Any]:
    """A full fetch through the extension, as pytx's fetcher drives it."""
    from threatexchange.signal_type.md5 import VideoMD5Signal
    from threatexchange.signal_type.pdq.signal import PdqSignal

    from hashmesh.node.interop.pytx import (
        HashmeshCollabConfig,
        HashmeshCredentials,
        HashmeshSignalExchangeAPI,
    )

    api = HashmeshSignalExchangeAPI.for_collab(
        HashmeshCollabConfig(name="bench", node_url=url), HashmeshCredentials(token))
    items = pages = 0
    started = time.perf_counter()
    for delta in api.fetch_iter([PdqSignal, VideoMD5Signal], None):
        pages += 1
        items += sum(1 for value in delta.updates.values() if value is not None)
    return {"items": items, "pages": pages, "seconds": time.perf_counter() - started}


def fetch_taxii(url: str, token: str) -> dict[str, Any]:
    """A full fetch of the ncii collection with taxii2-client, 1,000 objects a page."""
    import requests
    from taxii2client.v21 import Collection, as_pages

    from hashmesh.node.api.taxii import collection_id

    class Bearer(requests.auth.AuthBase):
        def __call__(self, request: Any) -> Any:
            request.headers["Authorization"] = f"Bearer {token}"
            return request

    collection = Collection(f"{url}/taxii2/api/collections/{collection_id('ncii')}/",
                            auth=Bearer())
    items = pages = 0
    started = time.perf_counter()
    for envelope in as_pages(collection.get_objects, per_request=PAGE):
        pages += 1
        items += len(envelope.get("objects", []))
    return {"items": items, "pages": pages, "seconds": time.perf_counter() - started}


def client_main(kind: str, url: str, token: str) -> None:
    result = (fetch_pytx if kind == "pytx" else fetch_taxii)(url, token)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forked parent (this
    # benchmark, which held the signed records), VmHWM belongs to this process's memory
    result["peak_rss_mb"] = peak_rss_mb(os.getpid())
    print(json.dumps(result), flush=True)


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


class RssSampler(threading.Thread):
    """The highest RSS of a process, sampled every 0.1 s while running."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = rss_mb(pid)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            self.peak = max(self.peak, rss_mb(self.pid))


def start_client(kind: str, node: BenchNode) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "bench.feed_bench", "--client", kind,
                             node.url, node.token], stdout=subprocess.PIPE, text=True)


def full_fetch(kind: str, node: BenchNode) -> dict[str, Any]:
    assert node.process is not None
    pid = node.process.pid
    before_rss, before_cpu = rss_mb(pid), _process_cpu_seconds(pid)
    sampler = RssSampler(pid)
    sampler.start()
    child = start_client(kind, node)
    out, _ = child.communicate()
    sampler.done.set()
    sampler.join()
    result: dict[str, Any] = json.loads(out)
    result["node_cpu_seconds"] = _process_cpu_seconds(pid) - before_cpu
    result["node_rss_growth_mb"] = sampler.peak - before_rss
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k items")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, help="node directory to make or reuse")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--match-workers", type=int, default=0,
                        help="serve matches from N match worker processes ([match_workers])")
    parser.add_argument("--client", nargs=3, metavar=("KIND", "URL", "TOKEN"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(*args.client)
        return
    items = 100_000 if args.quick else args.items
    root = args.dir or Path(tempfile.mkdtemp(prefix="feed-bench-"))
    print(f"machine: {machine()}; {items:,} items in {root}", flush=True)
    node = prepare(root, items)
    node.set_match_workers(args.match_workers)
    node.start(timeout=300)
    if args.match_workers:
        time.sleep(5)  # the workers load the index
    try:
        print("\nfull fetch   items     s   items/s  pages  client peak MB  node CPU s  "
              "node RSS +MB", flush=True)
        for kind in ("pytx", "taxii"):
            r = full_fetch(kind, node)
            rate = r["items"] / r["seconds"]
            print(f"{kind:<9}{r['items']:>9,}{r['seconds']:>7.1f}{rate:>10,.0f}{r['pages']:>7}"
                  f"{r['peak_rss_mb']:>16.0f}{r['node_cpu_seconds']:>12.1f}"
                  f"{r['node_rss_growth_mb']:>14.0f}", flush=True)
        queries = make_queries(stored_values(items), 20_000)
        served = (f"{args.match_workers} match workers" if args.match_workers
                  else "the node process")
        print(f"\nmatching ({served}), {args.connections} connections, {args.duration:.0f} s:"
              " req/s, p50/p99 ms", flush=True)
        alone = aiohttp_load(node, queries, args.connections, args.duration, 2.0)
        print(f"alone        {alone.rps:>8,.0f}  {alone.p50_ms:6.2f} {alone.p99_ms:7.2f}",
              flush=True)
        for kind in ("pytx", "taxii"):
            child = start_client(kind, node)
            time.sleep(1.0)  # the fetch is under way
            during = aiohttp_load(node, queries, args.connections, args.duration, 0.0)
            fetched = json.loads(child.communicate()[0])
            print(f"with {kind:<7}{during.rps:>8,.0f}  {during.p50_ms:6.2f} {during.p99_ms:7.2f}"
                  f"   (the fetch: {fetched['items']:,} items in {fetched['seconds']:.1f} s)",
                  flush=True)
    finally:
        node.stop()
    if args.dir is None:
        print(f"(node directory left in {root}; pass --dir to reuse it)")


if __name__ == "__main__":
    main()
