"""Receipts across a chain of real node processes, A — B — C: C reaches A only through B.

An add at A comes back as ``active`` receipts from B and C, a revoke as ``removed`` receipts
from both, with times; with C killed (-9), A holds B's removal receipt and not C's. Everything
is read from A through its local API, as an operator would (``/v1/records/{id}``,
``/v1/status``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hashmesh.node.cli.client import LocalClient
from hashmesh.node.cli.support import cli_token_path
from hashmesh.node.config.keyfile import read_secret_key
from hashmesh.node.config.peers import PeerConfig, add_peer
from hashmesh.protocol.keys import PublicKey
from tests.cli_process import NodeProcess, run_cli, run_json
from tests.conftest import free_port

pytestmark = pytest.mark.serial

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
PDQ2 = "0f0f0f31e1f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


class Chained:
    """One node of the chain: its config, URL, origin and node key."""

    def __init__(self, root: Path, name: str, host: str) -> None:
        self.name = name
        port = free_port(host)
        run_cli("init", root / name, "--name", name, "--host", host, "--port", str(port))
        self.config = root / name / "node.toml"
        self.config.write_text(self.config.read_text().replace(
            "pull_interval_seconds = 30", "pull_interval_seconds = 1")
            + "\n[receipts]\ninterval_seconds = 1\n")
        self.url = f"http://{host}:{port}"
        self.origin = read_secret_key(root / name / "keys" / "root.key").id
        self.node_key = read_secret_key(root / name / "keys" / "node.key").id
        self.process = NodeProcess(self.config, self.url, root / f"{name}.log")

    def peer_of(self, other: Chained) -> None:
        add_peer(self.config.parent / "peers.toml", PeerConfig(
            name=other.name, url=other.url, node_key=PublicKey.from_id(other.node_key),
            origin=PublicKey.from_id(other.origin), accept_vouched=True))

    def client(self) -> LocalClient:
        return LocalClient(self.url, cli_token_path(self.config).read_text().strip())

    def receipts(self, record_id: str) -> dict[tuple[str, str], dict[str, Any]]:
        answer = self.client().call("GET", f"/v1/records/{record_id}")
        return {(r["node"], r["kind"]): r for r in answer["receipts"]}


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def test_receipts_come_back_along_the_chain_and_name_who_has_not_removed(
        tmp_path: Path) -> None:
    a, b, c = (Chained(tmp_path, name, f"127.0.0.{i}") for i, name in
               ((2, "a"), (3, "b"), (4, "c")))
    a.peer_of(b)
    b.peer_of(a)
    b.peer_of(c)
    c.peer_of(b)
    for node in (a, b, c):
        node.process.start()
    try:
        added = run_json("add", "--config", a.config, f"pdq:{PDQ}")["records"][0]["id"]
        both = {(b.origin, "active"), (c.origin, "active")}
        wait_for(lambda: both <= a.receipts(added).keys(), 60,
                 "active receipts of B and C reach A")
        active = a.receipts(added)
        assert active[(b.origin, "active")]["name"] == "b"  # a peer of A: by its name
        assert active[(c.origin, "active")]["name"] is None  # not a peer: its key id only
        for node in (b, c):
            assert active[(node.origin, "active")]["after_ms"] >= 0
        revoked = run_json("revoke", "--config", a.config, added)["id"]
        both = {(b.origin, "removed"), (c.origin, "removed")}
        wait_for(lambda: both <= a.receipts(revoked).keys(), 60,
                 "removed receipts of B and C reach A")
        removed = a.receipts(revoked)
        for node in (b, c):
            assert removed[(node.origin, "removed")]["after_ms"] >= 0
        assert removed[(c.origin, "removed")]["applied_ms"] >= active[
            (c.origin, "active")]["applied_ms"]
        figures = {n["origin"]: n for n in a.client().call("GET", "/v1/status")[
            "receipts"]["nodes"]}
        for node in (b, c):
            assert figures[node.origin]["time_to_active"]["count"] == 1
            assert figures[node.origin]["time_to_removal"]["count"] == 1
            assert figures[node.origin]["last_heard_ms"] > 0

        # C is killed: the next add and its revoke get B's receipts only
        c.process.kill9()
        second = run_json("add", "--config", a.config, f"pdq:{PDQ2}")["records"][0]["id"]
        wait_for(lambda: (b.origin, "active") in a.receipts(second), 60,
                 "B's receipt of the add")
        withdrawn = run_json("revoke", "--config", a.config, second)["id"]
        wait_for(lambda: (b.origin, "removed") in a.receipts(withdrawn), 60,
                 "B's removal receipt")
        time.sleep(3)  # three more receipt intervals of B: still nothing from C
        assert [node for node, _ in a.receipts(withdrawn)] == [b.origin]
    finally:
        for node in (a, b, c):
            node.process.stop()
