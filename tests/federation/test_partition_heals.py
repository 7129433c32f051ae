"""A partition heals in seconds: real ``hashmesh run`` processes killed (-9) and restarted.

Three nodes in a line, a - b - c (a and c reach each other only through b), each pinning the
three origins, with the default 30 s pull interval so that only hints can heal them fast.

1. b is killed; a and c sign records that only b could carry across. Their links to b fail
   and back off until the next try is seconds away (read from ``/v1/status``). b restarts:
   its start-up hint ends both backoffs, and all three hold every record soon after.
2. a and c are killed; b signs; b's links back off. a, then c, restart: all converge.

Convergence is asserted within ``BOUND`` seconds of the last restart (the goal is 2 s; the
bound is generous for a loaded machine) and the measured times are printed; the figures
are in ``bench/RESULTS.md`` (``bench/heal_bench.py``). Without the hints the links would
sleep out their backoff (8 s or more here), so the bound fails.
"""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli_process import NodeProcess, run_cli, run_json
from tests.conftest import free_port

pytestmark = pytest.mark.serial

BOUND = 5.0
BACKOFF_LEFT = 5.0  # restart a node only once its peers' next try is this far away
NAMES = ("a", "b", "c")
EDGES = (("a", "b"), ("b", "c"))


class Node:
    def __init__(self, root: Path, name: str, host: str) -> None:
        port = free_port(host)
        run_cli("init", root / name, "--name", name, "--host", host, "--port", str(port))
        self.name = name
        self.config = root / name / "node.toml"
        with self.config.open("a") as file:  # heads move only by the test's adds
            file.write("\n[receipts]\nenabled = false\n")
        self.url = f"http://{host}:{port}"
        self.token = (root / name / "cli-token").read_text().strip()
        self.id: dict[str, str] = run_json("id", "--config", self.config)
        self.db = root / name / "data" / "hashmesh.db"
        self.process = NodeProcess(self.config, self.url, root / f"{name}.log")

    def status(self) -> dict[str, Any]:
        request = urllib.request.Request(self.url + "/v1/status",
                                         headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: dict[str, Any] = json.loads(response.read())
        return answer

    def heads(self) -> dict[str, int]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10) as conn:
            return dict(conn.execute("SELECT origin, head_seq FROM origins").fetchall())

    def add(self, seed: int) -> None:
        run_cli("add", "--config", self.config, f"pdq:{seed:064x}")


@pytest.fixture
def line(tmp_path: Path) -> Iterator[dict[str, Node]]:
    nodes = {name: Node(tmp_path, name, f"127.0.0.{2 + i}") for i, name in enumerate(NAMES)}
    origins = [node.id["origin"] for node in nodes.values()]
    for one, other in (*EDGES, *((b, a) for a, b in EDGES)):
        peer = nodes[other]
        run_cli("peers", "add", other, "--config", nodes[one].config, "--url", peer.url,
                "--node-key", peer.id["node_key"], "--origin", peer.id["origin"],
                *(arg for origin in origins for arg in ("--accept-origin", origin)))
    try:
        for node in nodes.values():
            node.process.start()
        yield nodes
    finally:
        for node in nodes.values():
            node.process.stop()


def wait(check: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.02)
    return time.monotonic() - started


def converged(nodes: dict[str, Node]) -> bool:
    heads = [node.heads() for node in nodes.values()]
    return len(heads[0]) == len(NAMES) and all(h == heads[0] for h in heads)


def backed_off(node: Node, peer: str) -> bool:
    sync = node.status()["peer_sync"][peer]
    return sync["state"] == "down" and (sync["backoff_seconds"] or 0) >= BACKOFF_LEFT


def test_a_partition_heals_within_seconds_of_the_last_restart(line: dict[str, Node]) -> None:
    a, b, c = line["a"], line["b"], line["c"]
    wait(lambda: converged(line), 30, "the first sync")

    b.process.kill9()
    a.add(1)
    c.add(2)
    wait(lambda: backed_off(a, "b") and backed_off(c, "b"), 60, "a and c back off from b")
    b.process.start()
    first = wait(lambda: converged(line), 60, "convergence after b restarts")
    wait(lambda: a.status()["peer_sync"]["b"]["state"] == "up", 10, "a's link to b up")
    failures = a.status()["peer_sync"]["b"]

    a.process.kill9()
    c.process.kill9()
    b.add(3)
    wait(lambda: backed_off(b, "a") and backed_off(b, "c"), 60, "b backs off from a and c")
    a.process.start()
    c.process.start()
    second = wait(lambda: converged(line), 60, "convergence after a and c restart")

    print(f"converged {first:.2f} s after b restarted, {second:.2f} s after the last of a "
          f"and c restarted")
    assert first < BOUND and second < BOUND
    assert failures["last_error"] is not None  # the failed rounds while b was down
    heads = a.heads()
    assert sorted(heads.values()) == [2, 2, 2]  # init's key record, then one add each
