"""API throughput benchmark: ``POST /v1/match`` against a real node process (issue 5 part 3).

One node holds N pdq hashes in its own signed log (``add`` records of 256 items) and runs as a
``hashmesh run`` subprocess. A load generator in this process holds C keep-alive connections
(aiohttp ``ClientSession`` with ``TCPConnector(limit=C)``) and sends single-hash match requests
for a fixed time: 90% random hashes (misses) and 10% stored hashes with 0..31 bits flipped
(hits at PDQ's default threshold 31). Printed: requests/s, p50/p95/p99/max latency, errors,
the hits the node counted, the node's peak RSS (VmHWM) and the CPU used by the node, by the
load generator and by everything else on the machine during the measured window.

The generator shares the machine's cores with the node. If ``wrk`` is installed, the same
request mix is also sent by wrk (C, far cheaper per request), which leaves the node more CPU.

Then, with the node stopped, the in-process cost of each stage of one request is measured on
the same data (parse, token check, index query, ``NodeService.match`` for a miss and a hit,
response encoding), and ``--profile`` reruns the load with the node under cProfile.

    python -m bench.api_bench --quick                      # 100k hashes, 10 s per generator
    python -m bench.api_bench                              # 1M hashes (a few minutes to sign)
    python -m bench.api_bench --dir /tmp/api1m             # keep the node dir for reruns
    python -m bench.api_bench --connections 64 --duration 30 --no-wrk --profile
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp

from bench.nodes import BenchNode, fill_log, make_node, peak_rss_mb, random_pdq
from hashmesh.node.cli.support import cli_token_path
from hashmesh.node.config.keyfile import read_secret_key
from hashmesh.node.config.node import load_node_config

HIT_RATIO = 0.10
MAX_HIT_DISTANCE = 31
BODIES = 20_000  # distinct request bodies, sent round robin
WORKER_REPORT_WAIT = 1.5  # match workers report their counters every second


# ------------------------------------------------------------------------------------------
# The node and its data


def prepare(root: Path, hashes: int) -> BenchNode:
    """A node directory under ``root`` holding ``hashes`` pdq hashes; reused if it exists."""
    meta_path = root / "bench.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta["hashes"] != hashes:
            raise SystemExit(f"{root} holds {meta['hashes']:,} hashes, not {hashes:,}; "
                             "use another --dir")
        return _existing_node(root / "node")
    root.mkdir(parents=True, exist_ok=True)
    node = make_node(root, "node", "127.0.0.1")
    started = time.monotonic()
    signing = fill_log(node, hashes, per_record=256)
    print(f"signed {hashes:,} hashes in {time.monotonic() - started:.0f} s "
          f"({signing:.0f} s signing)", flush=True)
    meta_path.write_text(json.dumps({"hashes": hashes, "per_record": 256, "seed": 1}))
    return node


def _existing_node(directory: Path) -> BenchNode:
    config_path = directory / "node.toml"
    text = config_path.read_text()  # a node made before the metrics scope existed gets it
    config_path.write_text(text.replace('scopes = ["read", "write"]',
                                        'scopes = ["read", "write", "metrics"]'))
    config = load_node_config(config_path)
    token = cli_token_path(config_path).read_text().strip()
    origin = read_secret_key(config.keys.root).id
    return BenchNode("node", directory, config.listen.host, config.listen.port, token, origin)


class ProfiledNode(BenchNode):
    """A node process run under cProfile; the stats are written when it stops (SIGTERM)."""

    profile_path: Path

    def start(self, timeout: float = 60) -> None:
        self.profile_path = self.directory / "node.prof"
        log = open(self.directory / "node.log", "ab")  # noqa: SIM115 - owned by the child
        command = [sys.executable, "-m", "cProfile", "-o", str(self.profile_path),
                   "-m", "hashmesh.node.cli.main", "run", "--config", str(self.config),
                   "--log-level", "WARNING"]
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        _wait_healthy(self, timeout)


def _wait_healthy(node: BenchNode, timeout: float) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(node.url + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{node.name} did not start; see {node.directory / 'node.log'}")


def stored_values(hashes: int, seed: int = 1) -> list[str]:
    """The values ``fill_log`` signed, regenerated from its seed."""
    rng = random.Random(seed)
    return [random_pdq(rng) for _ in range(hashes)]


def flip_bits(value: str, bits: int, rng: random.Random) -> str:
    x = int(value, 16)
    for position in rng.sample(range(256), bits):
        x ^= 1 << position
    return f"{x:064x}"


@dataclass(frozen=True)
class Query:
    body: bytes
    hit: bool


def make_queries(stored: list[str], count: int, seed: int = 7) -> list[Query]:
    """Single-hash match bodies: 90% random (misses), 10% near-duplicates of stored hashes."""
    rng = random.Random(seed)
    queries = []
    for _ in range(count):
        hit = rng.random() < HIT_RATIO
        value = (flip_bits(rng.choice(stored), rng.randint(0, MAX_HIT_DISTANCE), rng) if hit
                 else random_pdq(rng))
        body = json.dumps({"hashes": [{"type": "pdq", "value": value}]}).encode()
        queries.append(Query(body, hit))
    return queries


# ------------------------------------------------------------------------------------------
# Measuring a window: CPU of the node, of this process and of the whole machine


def _process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of all cores since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick


def _self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _task_cpu_seconds(pid: int, tid: int) -> float:
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuWindow:
    """CPU used during one measured window, in cores (1.0 = one core busy all the time):
    the node with its match workers (and their main threads, which run the event loops),
    the load generator, and everything else on the machine (other sessions sharing the VM)."""

    node_pids: list[int]  # the node process and its match workers
    generator_pid: int | None = None  # a child generator (wrk); None: this process
    start: tuple[float, ...] = ()
    result: dict[str, float] = field(default_factory=dict)

    def _sample(self) -> tuple[float, ...]:
        busy, _ = _machine_busy_seconds()
        generator = (_self_cpu_seconds() if self.generator_pid is None
                     else _process_cpu_seconds(self.generator_pid))
        main = sum(_task_cpu_seconds(pid, pid) for pid in self.node_pids)
        node = sum(_process_cpu_seconds(pid) for pid in self.node_pids)
        return time.monotonic(), node, main, generator, busy

    def begin(self) -> None:
        self.start = self._sample()

    def end(self) -> dict[str, float]:
        now = self._sample()
        wall = now[0] - self.start[0]
        node, main, generator, busy = ((b - a) / wall for a, b in
                                       zip(self.start[1:], now[1:], strict=True))
        self.result = {"node_cores": node, "node_main_thread_cores": main,
                       "generator_cores": generator,
                       "other_cores": max(0.0, busy - node - generator), "machine_cores": busy}
        return self.result


# ------------------------------------------------------------------------------------------
# Load generators


@dataclass
class LoadResult:
    generator: str
    connections: int
    seconds: float
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    hits_counted_by_node: int = 0
    cpu: dict[str, float] = field(default_factory=dict)


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


async def _aiohttp_load(node: BenchNode, queries: list[Query], connections: int,
                        duration: float, warmup: float) -> LoadResult:
    """C workers, one keep-alive connection each, each sending its next request as soon as the
    previous answer is read (closed loop). Latency of a request = send to last byte read."""
    url = node.match_url + "/v1/match"
    headers = {"Authorization": f"Bearer {node.token}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    cpu = CpuWindow(node.pids())
    loop_start = time.perf_counter()
    measure_from = loop_start + warmup
    measure_to = measure_from + duration

    async def worker(offset: int) -> None:
        nonlocal errors
        i = offset
        while (sent := time.perf_counter()) < measure_to:
            body = queries[i % len(queries)].body
            i += connections
            ok = False
            try:
                async with session.post(url, data=body) as response:
                    await response.read()
                    ok = response.status == 200
            except (TimeoutError, aiohttp.ClientError):
                pass
            if sent >= measure_from:
                latencies.append(time.perf_counter() - sent)
                errors += not ok

    async def window() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        cpu.begin()
        await asyncio.sleep(max(0.0, measure_to - time.perf_counter()))
        cpu.end()

    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, headers=headers,
                                     timeout=timeout) as session:
        await asyncio.gather(window(), *(worker(k) for k in range(connections)))
    ordered = sorted(latencies)
    return LoadResult(
        "aiohttp", connections, duration, len(ordered), errors, len(ordered) / duration,
        percentile(ordered, 0.50) * 1e3, percentile(ordered, 0.95) * 1e3,
        percentile(ordered, 0.99) * 1e3, (ordered[-1] if ordered else float("nan")) * 1e3,
        cpu=cpu.result)


def aiohttp_load(node: BenchNode, queries: list[Query], connections: int, duration: float,
                 warmup: float) -> LoadResult:
    hits_before = node_hits(node)
    result = asyncio.run(_aiohttp_load(node, queries, connections, duration, warmup))
    result.hits_counted_by_node = int(node_hits(node) - hits_before)
    return result


WRK_SCRIPT = r"""
local bodies = {}
local i = 0
init = function(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  i = math.random(#bodies)
end
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "/v1/match", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. args_token,
  }, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("HM requests %d\nHM seconds %f\n", summary.requests,
                         summary.duration / 1e6))
  io.write(string.format("HM errors %d\n", e.connect + e.read + e.write + e.timeout + e.status))
  for _, p in ipairs({50, 95, 99}) do
    io.write(string.format("HM p%d %d\n", p, latency:percentile(p)))
  end
  io.write(string.format("HM max %d\n", latency.max))
end
"""


def wrk_load(node: BenchNode, queries: list[Query], connections: int, duration: float,
             warmup: float, wrk: str, workdir: Path, count_hits: bool = True) -> LoadResult:
    """The same request mix from wrk (one thread, C connections), after a warm-up run.
    Latency percentiles are wrk's own (from its script's ``done`` hook, exact to 1 µs)."""
    bodies = workdir / "bodies.txt"
    bodies.write_bytes(b"\n".join(q.body for q in queries) + b"\n")
    script = workdir / "match.lua"
    script.write_text(f"args_token = {json.dumps(node.token)}\n" + WRK_SCRIPT)
    base = [wrk, "-t1", f"-c{connections}", "--latency", "-s", str(script)]
    if warmup > 0:
        subprocess.run([*base, f"-d{max(1, round(warmup))}s", node.match_url, "--",
                        str(bodies)], check=True, capture_output=True)
    hits_before = node_hits(node) if count_hits else 0.0
    child = subprocess.Popen([*base, f"-d{round(duration)}s", node.match_url, "--",
                              str(bodies)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cpu = CpuWindow(node.pids(), generator_pid=child.pid)
    cpu.begin()
    # wrk's own CPU can only be read while it lives: sample just before it would exit.
    time.sleep(max(0.0, duration - 0.3))
    cpu.end()
    output, _ = child.communicate(timeout=duration + 60)
    if child.returncode != 0:
        raise RuntimeError(f"wrk failed:\n{output}")
    got = {name: float(value) for name, value in re.findall(r"^HM (\w+) (\S+)$", output,
                                                             re.MULTILINE)}
    hits = node_hits(node) - hits_before if count_hits else 0
    return LoadResult(
        "wrk", connections, got["seconds"], int(got["requests"]), int(got["errors"]),
        got["requests"] / got["seconds"], got["p50"] / 1e3, got["p95"] / 1e3, got["p99"] / 1e3,
        got["max"] / 1e3, hits_counted_by_node=int(hits), cpu=cpu.result)


def node_metrics(node: BenchNode) -> str:
    import urllib.request

    request = urllib.request.Request(node.url + "/metrics",
                                     headers={"Authorization": f"Bearer {node.token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text: str = response.read().decode()
        return text


def node_hits(node: BenchNode) -> float:
    """Matches the node and its workers answered; workers report once a second, so this
    waits for their last report when the node has workers."""
    if node.match_port is not None:
        time.sleep(WORKER_REPORT_WAIT)
    return (node_counter(node, "hashmesh_match_hits_total")
            + node_counter(node, "hashmesh_match_workers_match_hits_total"))


def node_counter(node: BenchNode, name: str) -> float:
    return sum(float(m) for m in re.findall(rf"^{name}{{[^}}]*}} (\S+)$", node_metrics(node),
                                             re.MULTILINE))


# ------------------------------------------------------------------------------------------
# In-process cost of each stage of one request (node stopped, same data)



def _time_per_call(fn: Callable[[], object], seconds: float = 1.0) -> float:
    """Mean µs per call of ``fn`` over about ``seconds``."""
    calls = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds or calls < 10:
        fn()
        calls += 1
    return elapsed / calls * 1e6


async def _time_per_await(fn: Callable[[], Awaitable[object]], seconds: float = 1.0,
                          per_call: int = 1) -> float:
    calls = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds or calls < 10:
        await fn()
        calls += 1
    return elapsed / (calls * per_call) * 1e6


async def stage_costs(node: BenchNode, queries: list[Query], connections: int,
                      profile_calls: int) -> tuple[dict[str, float], str]:
    """µs per call of each stage a match request goes through, and a cProfile of
    ``NodeService.match`` over the request mix (empty when ``profile_calls`` is 0)."""
    from aiohttp import web

    from hashmesh.node.api.requests import parse_match
    from hashmesh.node.matching.answers import HashQuery
    from hashmesh.node.service import NodeService
    from hashmesh.protocol import canonical

    config = load_node_config(node.config)
    service = await NodeService.open(config)
    try:
        miss = next(q for q in queries if not q.hit)
        hit = next(q for q in queries if q.hit)
        qm = parse_match(canonical.parse(miss.body), max_batch=1000).hashes
        qh = parse_match(canonical.parse(hit.body), max_batch=1000).hashes
        mix = [parse_match(canonical.parse(q.body), max_batch=1000).hashes
               for q in queries[:connections]]
        misses16 = [HashQuery("pdq", random_pdq(random.Random(i))).value for i in range(16)]
        answer_hit = await service.match(qh, {}, None, "bench")
        matcher = service.matcher
        costs = {
            "parse body + schema (canonical.parse, parse_match)": _time_per_call(
                lambda: parse_match(canonical.parse(miss.body), max_batch=1000)),
            "token check (sha256 + compare_digest)": _time_per_call(
                lambda: config.find_token(node.token)),
            "Matcher.query, one miss": _time_per_call(
                lambda: matcher.query("pdq", qm[0].value, 31)),
            "Matcher.query, one hit": _time_per_call(
                lambda: matcher.query("pdq", qh[0].value, 31)),
            "Matcher.query_many, 16 misses, per hash": _time_per_call(
                lambda: matcher.query_many("pdq", misses16, 31)) / 16,
            "NodeService.match, one miss alone (incl. thread hop)": await _time_per_await(
                lambda: service.match(qm, {}, None, "bench")),
            "NodeService.match, one hit alone (store read, audit queued)": await _time_per_await(
                lambda: service.match(qh, {}, None, "bench")),
            f"NodeService.match, {connections} of the mix at once, per request":
                await _time_per_await(lambda: asyncio.gather(
                    *(service.match(h, {}, None, "bench") for h in mix)), per_call=len(mix)),
            "encode hit answer (web.json_response)": _time_per_call(
                lambda: web.json_response({"results": answer_hit})),
        }
        report = ""
        if profile_calls:
            parsed = [parse_match(canonical.parse(q.body), max_batch=1000).hashes
                      for q in queries[:profile_calls]]
            profiler = cProfile.Profile()
            profiler.enable()
            for start in range(0, len(parsed), connections):
                await asyncio.gather(*(service.match(h, {}, None, "bench")
                                       for h in parsed[start:start + connections]))
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
            report = out.getvalue()
        return costs, report
    finally:
        await service.close()


def profile_report(path: Path, top: int = 25) -> str:
    out = io.StringIO()
    pstats.Stats(str(path), stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


# ------------------------------------------------------------------------------------------
# The floor: a bare aiohttp app on the same machine


FLOOR_APP = """
import sys
from aiohttp import web

async def match(request):
    await request.read()
    return web.json_response({"results": []})

app = web.Application()
app.router.add_post("/v1/match", match)
web.run_app(app, host=sys.argv[1], port=int(sys.argv[2]), access_log=None, print=None)
"""


def floor_load(queries: list[Query], connections: int, duration: float, wrk: str,
               workdir: Path) -> LoadResult:
    """wrk against an aiohttp app that reads the body and answers a fixed miss: what any
    aiohttp handler costs on this machine, before hashmesh does anything."""
    from bench.nodes import free_port

    port = free_port("127.0.0.1")
    floor = BenchNode("floor", workdir, "127.0.0.1", port, "-", "-")
    floor.process = subprocess.Popen([sys.executable, "-c", FLOOR_APP, "127.0.0.1", str(port)])
    try:
        _wait_healthy_post(floor.url + "/v1/match", 30)
        result = wrk_load(floor, queries, connections, duration, 1.0, wrk, workdir,
                          count_hits=False)
    finally:
        floor.stop()
    result.generator = "wrk/bare"
    return result


def _wait_healthy_post(url: str, timeout: float) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=b"{}"), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


# ------------------------------------------------------------------------------------------


HEADER = (f"{'gen':<9}{'conns':>6}{'req/s':>9}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}"
          f"{'max ms':>8}{'errors':>7}{'hits':>7}{'node':>6}{'main':>6}{'gen':>6}{'other':>6}"
          f"{'node µs/req':>12}")


def print_result(r: LoadResult) -> None:
    cpu = r.cpu
    print(f"{r.generator:<9}{r.connections:>6}{r.rps:>9,.0f}{r.p50_ms:>8.2f}{r.p95_ms:>8.2f}"
          f"{r.p99_ms:>8.2f}{r.max_ms:>8.1f}{r.errors:>7}{r.hits_counted_by_node:>7,}"
          f"{cpu.get('node_cores', 0):>6.2f}{cpu.get('node_main_thread_cores', 0):>6.2f}"
          f"{cpu.get('generator_cores', 0):>6.2f}{cpu.get('other_cores', 0):>6.2f}"
          f"{cpu.get('node_cores', 0) * 1e6 / max(r.rps, 1e-9):>12.0f}", flush=True)


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown CPU")
    return f"{os.cpu_count()} cores ({model}), Python {sys.version.split()[0]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hashes", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100k hashes, 10 s runs")
    parser.add_argument("--dir", type=Path, help="node directory to create or reuse")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the load runs (the VM's neighbours make single runs noisy)")
    parser.add_argument("--no-wrk", action="store_true", help="aiohttp generator only")
    parser.add_argument("--no-aiohttp", action="store_true", help="wrk only")
    parser.add_argument("--floor", action="store_true",
                        help="also measure a bare aiohttp handler with wrk")
    parser.add_argument("--no-stages", action="store_true", help="skip the in-process stages")
    parser.add_argument("--profile", action="store_true",
                        help="also run the node under cProfile, and profile NodeService.match")
    parser.add_argument("--match-workers", type=int, default=0, metavar="N",
                        help="run the node with [match_workers] processes = N and send the "
                             "load to their port (0: the node's own port)")
    parser.add_argument("--json", type=Path, help="write all figures to this file")
    args = parser.parse_args()
    if args.quick:
        args.hashes, args.duration = 100_000, 10.0

    with tempfile.TemporaryDirectory() as tmp:
        root = args.dir or Path(tmp) / "api"
        node = prepare(root, args.hashes)
        queries = make_queries(stored_values(args.hashes), BODIES)
        wrk = None if args.no_wrk else shutil.which("wrk")
        results: list[LoadResult] = []
        print(f"\nPOST /v1/match, one pdq hash per request, {args.hashes:,} hashes, "
              f"{HIT_RATIO:.0%} near-duplicate hits; {machine()}; node and generator share "
              "the cores.\nCPU columns in cores: node with its match workers (main = event-loop "
              "threads), load generator, everything else on the machine.")
        node.set_match_workers(args.match_workers)
        served_by = (f"{args.match_workers} match workers" if args.match_workers
                     else "the node process")
        print(f"served by: {served_by}")
        print(HEADER)
        node.start()
        try:
            for _ in range(args.rounds):
                if not args.no_aiohttp:
                    results.append(aiohttp_load(node, queries, args.connections,
                                                args.duration, args.warmup))
                    print_result(results[-1])
                if wrk:
                    results.append(wrk_load(node, queries, args.connections, args.duration,
                                            args.warmup, wrk, Path(tmp)))
                    print_result(results[-1])
            rss = node.peak_rss_mb()
            workers_rss = [peak_rss_mb(pid) for pid in node.pids()[1:]]
        finally:
            node.stop()
        if args.floor and wrk:
            results.append(floor_load(queries, args.connections, args.duration, wrk,
                                      Path(tmp)))
            print_result(results[-1])
        print(f"node peak RSS (VmHWM): {rss:,.0f} MB"
              + (f"; match workers: {', '.join(f'{r:,.0f}' for r in workers_rss)} MB"
                 if workers_rss else ""))

        if args.profile:
            profiled = ProfiledNode(node.name, node.directory, node.host, node.port, node.token,
                                    node.origin)
            profiled.start()
            try:
                if wrk:
                    wrk_load(profiled, queries, args.connections, args.duration, 1.0, wrk,
                             Path(tmp))
                else:
                    aiohttp_load(profiled, queries, args.connections, args.duration, 1.0)
            finally:
                profiled.stop()
            print("\nnode under cProfile (top by own time):\n"
                  + profile_report(profiled.profile_path))

        stages: dict[str, float] = {}
        if not args.no_stages:
            stages, match_profile = asyncio.run(stage_costs(
                node, queries, args.connections, 2048 if args.profile else 0))
            print("\nin-process cost of a request's stages (node stopped, same data), µs:")
            for name, us in stages.items():
                print(f"  {name:<64}{us:>9.1f}")
            if match_profile:
                print("\nNodeService.match over 2048 requests of the mix, 32 at a time, "
                      "cProfile:\n" + match_profile)
        if args.json:
            args.json.write_text(json.dumps({
                "hashes": args.hashes, "machine": machine(),
                "results": [asdict(r) for r in results],
                "match_workers": args.match_workers, "node_peak_rss_mb": rss,
                "match_workers_peak_rss_mb": workers_rss, "stages_us": stages}, indent=2))


if __name__ == "__main__":
    main()
