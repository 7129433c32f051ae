"""Issue 12's test on real node processes: a chain A—B—C, a case opened at A.

B's and C's receipts reach A and the case's status counts them, with times; the case travels,
its withdrawal stops matching at B and C, and wrong PINs lock out at A across a restart.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hashmesh.node.cases.status import short_origin
from hashmesh.node.cli.client import ClientError, LocalClient
from hashmesh.node.cli.support import cli_token_path
from tests.cli_process import NodeProcess, hashmesh_command, run_json
from tests.federation.cluster import Cluster, Node

pytestmark = [pytest.mark.serial, pytest.mark.slow]


def pdq(seed: int) -> str:
    return random.Random(seed).getrandbits(256).to_bytes(32, "big").hex()


class Chain:
    """Three node processes, A—B—C: A and C are not peers, B relays between them."""

    def __init__(self, root: Path) -> None:
        self.cluster = Cluster(root)
        for name in ("a", "b", "c"):
            self.cluster.make(name)
        self.cluster.link("a", "b")
        self.cluster.link("b", "c")
        a = self.node("a").directory / "node.toml"
        a.write_text(a.read_text() + "\n[cases]\npin_attempts = 3\n")
        self.processes = {name: NodeProcess(node.directory / "node.toml", node.url,
                                            root / f"{name}.log")
                          for name, node in self.cluster.nodes.items()}

    def node(self, name: str) -> Node:
        return self.cluster.nodes[name]

    def config(self, name: str) -> Path:
        return self.node(name).directory / "node.toml"

    def client(self, name: str) -> LocalClient:
        token = cli_token_path(self.config(name)).read_text().strip()
        return LocalClient(self.node(name).url, token)

    def matches(self, name: str, value: str) -> bool:
        answer = self.client(name).call("POST", "/v1/match",
                                         body={"hashes": [{"type": "pdq", "value": value}]})
        return bool(answer["verdict"] == "match")

    def status(self, reference: str, pin: str) -> dict[str, Any]:
        answer: dict[str, Any] = LocalClient(self.node("a").url, None).call(
            "POST", "/v1/cases/status", body={"reference": reference, "pin": pin})
        return answer

    def case_cli(self, action: str, reference: str, pin: str
                 ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*hashmesh_command(), "case", action, reference, "--config",
                               str(self.config("a")), "--pin-stdin", "--json"],
                              input=pin + "\n", capture_output=True, text=True, timeout=60)


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    chain = Chain(tmp_path)
    for process in chain.processes.values():
        process.start()
    yield chain
    for process in chain.processes.values():
        process.stop()


def eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> float:
    """Wait until ``check`` holds (bounded; the time it took is reported, never asserted)."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        time.sleep(0.3)
    return time.monotonic() - started


def wrong(pin: str) -> str:
    return "00000000" if pin != "00000000" else "11111111"


def test_a_case_opened_at_a_travels_and_its_withdrawal_stops_matching_at_b_and_c(
        chain: Chain) -> None:
    values = [pdq(1), pdq(2)]
    opened = run_json("case", "open", "--config", chain.config("a"), "--json",
                      *(f"pdq:{v}" for v in values))
    reference, pin = opened["reference"], opened["pin"]
    for name in ("b", "c"):
        eventually(lambda name=name: all(chain.matches(name, v) for v in values),
                   f"the case matching at {name}")

    withdrawn = chain.case_cli("withdraw", reference, pin)
    assert withdrawn.returncode == 0, withdrawn.stderr
    assert json.loads(withdrawn.stdout)["state"] == "withdrawn"
    for name in ("a", "b", "c"):
        eventually(lambda name=name: not any(chain.matches(name, v) for v in values),
                   f"the withdrawal stopping matches at {name}")

    # wrong PINs lock the case out at A, and the lock survives a kill -9
    for _ in range(3):
        assert "CASE_ACCESS_DENIED" in chain.case_cli("status", reference, wrong(pin)).stderr
    assert "CASE_LOCKED" in chain.case_cli("status", reference, pin).stderr
    chain.processes["a"].kill9()
    chain.processes["a"].start()
    assert "CASE_LOCKED" in chain.case_cli("status", reference, pin).stderr
    # nothing case-specific went to B or C: their logs and databases never saw the case
    for name in ("b", "c"):
        db = (chain.node(name).directory / "data" / "hashmesh.db").read_bytes()
        assert reference.encode() not in db and pin.encode() not in db
        with pytest.raises(ClientError) as refused:
            LocalClient(chain.node(name).url, None).call(
                "POST", "/v1/cases/status", body={"reference": reference, "pin": pin})
        assert refused.value.code == "CASE_ACCESS_DENIED"


def test_the_status_at_a_counts_the_receipts_of_b_and_c(chain: Chain) -> None:
    b, c = chain.node("b").origin, chain.node("c").origin
    opened = run_json("case", "open", "--config", chain.config("a"), "--json",
                      f"pdq:{pdq(10)}", f"pdq:{pdq(11)}")
    reference, pin = opened["reference"], opened["pin"]

    def active_everywhere() -> bool:
        return bool(chain.status(reference, pin)["active"]["nodes"] == 2)

    eventually(active_everywhere, "receipts of B and C reaching A (active 2 of 2)")
    status = chain.status(reference, pin)
    assert status["active"]["of"] == 2
    assert {n["origin"] for n in status["nodes"]} == {b, c}
    assert all(n["active_after_seconds"] is not None and n["active_after_seconds"] >= 0
               for n in status["nodes"])
    assert status["words"][1].startswith("Confirmed active at 2 of 2 known nodes; slowest ")

    withdrawn = chain.case_cli("withdraw", reference, pin)
    assert withdrawn.returncode == 0, withdrawn.stderr

    def stopped_everywhere() -> bool:
        return bool(chain.status(reference, pin)["withdrawal"]["stopped"] == 2)

    eventually(stopped_everywhere, "removal receipts of B and C reaching A (2 of 2)")
    status = chain.status(reference, pin)
    withdrawal = status["withdrawal"]
    assert withdrawal["of"] == 2 and withdrawal["not_confirmed"] == []
    assert withdrawal["slowest_seconds"] is not None and withdrawal["slowest_seconds"] >= 0
    assert all(n["removed_after_seconds"] is not None for n in status["nodes"])
    assert "; stopped matching at 2 of 2 nodes; slowest " in status["words"][-1]

    # with C killed, a second case's withdrawal is confirmed by B and names C unconfirmed
    second = run_json("case", "open", "--config", chain.config("a"), "--json",
                      f"pdq:{pdq(12)}")
    eventually(lambda: chain.status(second["reference"], second["pin"])["active"]["nodes"]
               == 2, "the second case active at B and C")
    chain.processes["c"].kill9()
    assert chain.case_cli("withdraw", second["reference"], second["pin"]).returncode == 0
    eventually(lambda: chain.status(second["reference"], second["pin"])["withdrawal"]
               ["stopped"] == 1, "B's removal receipt for the second case")
    time.sleep(3)  # a few more pull rounds: C is down and cannot confirm
    status = chain.status(second["reference"], second["pin"])
    [unconfirmed] = status["withdrawal"]["not_confirmed"]
    assert unconfirmed["origin"] == c and unconfirmed["last_seen_ms"] is not None
    assert f"not yet confirmed: {short_origin(c)}, last seen " in status["words"][-1]
    assert "; stopped matching at 1 of 2 nodes" in status["words"][-1]

    # wrong PINs lock out
    for _ in range(3):
        assert "CASE_ACCESS_DENIED" in chain.case_cli(
            "status", second["reference"], wrong(second["pin"])).stderr
    assert "CASE_LOCKED" in chain.case_cli("status", second["reference"],
                                           second["pin"]).stderr
