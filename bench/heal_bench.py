"""Healing benchmark: how long after a killed node restarts do all nodes hold every record?

Real ``hashmesh run`` processes on loopback, a - b - c in a line (a and c reach each other
only through b), with the default 30 s pull interval so that only hints can heal them fast.
Each trial:

1. ``kill -9`` b; a and c each add a record that only b can carry to the other;
2. wait until a's and c's links to b have backed off so far that their next try is at least
   ``--backoff`` seconds away (read from ``/v1/status``: ``peer_sync``);
3. restart b and time, from the moment it answers ``/healthz``, until the three nodes hold
   the same head for every origin (read from each node's SQLite file).

A second figure restarts two nodes: a and c are killed, b adds, b backs off from both, then
a and c restart one after the other; timed from the last ``/healthz``.

    python -m bench.heal_bench --trials 5
"""

from __future__ import annotations

import argparse
import signal
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.nodes import BenchNode, link, make_node

NAMES = ("a", "b", "c")


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"{what}: gave up after {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - started


def kill9(node: BenchNode) -> None:
    assert node.process is not None
    node.process.send_signal(signal.SIGKILL)
    node.process.wait(timeout=10)


def converged(nodes: list[BenchNode]) -> bool:
    heads = [{origin.origin: node.head_seq(origin.origin) for origin in nodes}
             for node in nodes]
    return all(h == heads[0] for h in heads) and all(heads[0].values())


def backed_off(node: BenchNode, peer: str, seconds: float) -> bool:
    sync = node.call("GET", "/v1/status")["peer_sync"][peer]
    return sync["state"] == "down" and (sync["backoff_seconds"] or 0) >= seconds


def add(node: BenchNode, seed: int) -> None:
    node.call("POST", "/v1/records",
              {"items": [{"hashes": [{"type": "pdq", "value": f"{seed:064x}"}]}]})


def trial(root: Path, seed: int, backoff: float) -> tuple[float, float, float, float]:
    """Seconds to converge after b restarts and after the last of a and c restarts, and the
    backoff then left on the waiting links (the least of the two), for each."""
    a, b, c = nodes = [make_node(root, name, f"127.0.0.{2 + i}", pull_interval=30)
                       for i, name in enumerate(NAMES)]
    for node in nodes:  # heads move only by the trial's adds, as when this was first measured
        with node.config.open("a") as file:
            file.write("\n[receipts]\nenabled = false\n")
    link(a, b)
    link(b, c)
    try:
        for node in nodes:
            node.start()
        wait_until(lambda: converged(nodes), 60, "first sync")

        kill9(b)
        add(a, seed)
        add(c, seed + 1)
        wait_until(lambda: backed_off(a, "b", backoff) and backed_off(c, "b", backoff), 120,
                   "a and c back off from b")
        left_first = min(a.call("GET", "/v1/status")["peer_sync"]["b"]["backoff_seconds"],
                         c.call("GET", "/v1/status")["peer_sync"]["b"]["backoff_seconds"])
        b.start()
        first = wait_until(lambda: converged(nodes), 120, "convergence after b restarts")

        kill9(a)
        kill9(c)
        add(b, seed + 2)
        wait_until(lambda: backed_off(b, "a", backoff) and backed_off(b, "c", backoff), 120,
                   "b backs off from a and c")
        sync = b.call("GET", "/v1/status")["peer_sync"]
        left_second = min(sync["a"]["backoff_seconds"], sync["c"]["backoff_seconds"])
        a.start()
        c.start()
        second = wait_until(lambda: converged(nodes), 120, "convergence after a and c restart")
        return first, left_first, second, left_second
    finally:
        for node in nodes:
            node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--backoff", type=float, default=5.0,
                        help="restart only once the waiting links' next try is this far off")
    args = parser.parse_args()
    firsts: list[float] = []
    seconds: list[float] = []
    for number in range(args.trials):
        with tempfile.TemporaryDirectory() as tmp:
            first, left_first, second, left_second = trial(Path(tmp), 10 * number + 1,
                                                           args.backoff)
        firsts.append(first)
        seconds.append(second)
        print(f"trial {number + 1}: b restarted -> converged in {first:.2f} s "
              f"(backoff left {left_first:.1f} s); a and c restarted -> {second:.2f} s "
              f"(backoff left {left_second:.1f} s)", flush=True)
    print(f"\nconverged after one restart: median {statistics.median(firsts):.2f} s, "
          f"max {max(firsts):.2f} s; after two: median {statistics.median(seconds):.2f} s, "
          f"max {max(seconds):.2f} s ({args.trials} trials)")


if __name__ == "__main__":
    main()
