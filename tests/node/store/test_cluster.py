"""Several processes, one node, on one PostgreSQL database: one signs, all serve matches from
their own index following the database, and the lease moves on when the leader is killed.

``test_a_leader_that_lost_its_lease_cannot_sign`` shows the fencing with two stores in this
process; the other tests run real ``hashmesh run`` processes."""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from hashmesh.node.store.cluster import Cluster
from hashmesh.node.store.postgres import NotLeaderError, PostgresStore
from tests.cli_process import NodeProcess, run_cli
from tests.conftest import free_port
from tests.protocol.builders import ROOT, add_body, pdq_hex


def test_a_leader_that_lost_its_lease_cannot_sign(pg_url: str) -> None:
    """Two processes that both believe they lead: the one whose lease passed to another
    (its lease connection died, it has not noticed yet) is refused by the database."""
    old, new = PostgresStore(pg_url), PostgresStore(pg_url)
    old_cluster, new_cluster = Cluster(old, "http://old:1"), Cluster(new, "http://new:2")
    try:
        assert old_cluster.try_lead() and not new_cluster.try_lead()
        old.append_local(signer=ROOT, origin=ROOT.id, body=add_body(pdq_hex(1)))
        with pytest.raises(NotLeaderError, match="the leader is http://old:1"):
            new.append_local(signer=ROOT, origin=ROOT.id, body=add_body(pdq_hex(2)))
        assert old_cluster._lease is not None
        old_cluster._lease.close()  # the server releases the lock; "old" still has epoch 1
        # the server ends the closed session, and frees its lock, a moment later
        deadline = time.monotonic() + 5
        while not new_cluster.try_lead():
            assert time.monotonic() < deadline, "the closed lease was never released"
            time.sleep(0.05)
        assert new_cluster.epoch == old_cluster.epoch + 1
        with pytest.raises(NotLeaderError, match="the leader is http://new:2"):
            old.append_local(signer=ROOT, origin=ROOT.id, body=add_body(pdq_hex(3)))
        record, _ = new.append_local(signer=ROOT, origin=ROOT.id, body=add_body(pdq_hex(4)))
        assert record.head.seq == 2
        old.audit("platform", "match", {})  # audit rows need no lease
    finally:
        old_cluster.close()
        new_cluster.close()
        old.close()
        new.close()


class Process:
    """One ``hashmesh run`` process of the node, with a node.toml of its own (its port)."""

    def __init__(self, directory: Path, name: str, token: str) -> None:
        port = free_port()
        text = (directory / "node.toml").read_text()
        self.config = directory / f"{name}.toml"
        self.config.write_text(text.replace(f"port = {_port_of(text)}", f"port = {port}", 1))
        self.url = f"http://127.0.0.1:{port}"
        self.token = token
        self.node = NodeProcess(self.config, self.url, directory / f"{name}.log")

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.url + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}",
                     "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def cluster(self) -> dict[str, Any]:
        status, body = self.call("GET", "/v1/status")
        assert status == 200, body
        cluster: dict[str, Any] = body["cluster"]
        return cluster

    def matches(self, value: str) -> list[str]:
        status, body = self.call("POST", "/v1/match",
                                 {"hashes": [{"type": "pdq", "value": value}]})
        assert status == 200, body
        return [m["record"] for m in body["results"][0]["matches"]]


def _port_of(text: str) -> int:
    for line in text.splitlines():
        if line.startswith("port = "):
            return int(line.split("=")[1])
    raise AssertionError("no port in node.toml")


def wait_for(check: Any, timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout} s")


@pytest.mark.serial
def test_three_processes_one_signer_followers_serve_and_take_over_after_kill_9(
        tmp_path: Path, pg_url: str) -> None:
    run_cli("init", tmp_path / "node", "--name", "Scaled Commission")
    directory = tmp_path / "node"
    (directory / "node.toml").write_text((directory / "node.toml").read_text()
                                         + f'\n[store]\nurl = "{pg_url}"\n')
    token = (directory / "cli-token").read_text().strip()
    first, second, third = (Process(directory, f"p{i}", token) for i in range(3))
    rng = random.Random(16)
    try:
        first.node.start()
        second.node.start()
        third.node.start()
        assert first.cluster()["leads"] and first.cluster()["leader"] == first.url
        origin = first.call("GET", "/v1/status")[1]["origin"]
        assert not second.cluster()["leads"] and second.cluster()["leader"] == first.url
        assert first.call("GET", "/healthz/signer") == (200, {"signs": True})
        assert second.call("GET", "/healthz/signer") == (503, {"signs": False})

        value = f"{rng.getrandbits(256):064x}"
        status, forwarded = second.call("POST", "/v1/records", {"items": [
            {"hashes": [{"type": "pdq", "value": f"{rng.getrandbits(256):064x}"}]}]})
        assert status == 201, forwarded  # sent on to the leader (test_forward.py)

        status, added = first.call("POST", "/v1/records",
                                   {"items": [{"hashes": [{"type": "pdq", "value": value}]}]})
        assert status == 201
        record = added["records"][0]["id"]
        # read your writes on every process: a follower catches up before its lookups
        assert second.matches(value) == [record] == third.matches(value)
        status, _ = first.call("POST", "/v1/revocations",
                               {"targets": [record], "reason": "withdrawn"})
        assert status == 201
        assert third.matches(value) == []  # at once: answers are checked against the database

        acknowledged: list[str] = []
        stop = threading.Event()

        def bulk_adds() -> None:
            while not stop.is_set():
                items = [{"hashes": [{"type": "pdq", "value": f"{rng.getrandbits(256):064x}"}]}
                         for _ in range(50)]
                try:
                    status, body = first.call("POST", "/v1/records", {"items": items})
                except OSError:
                    return
                if status != 201:
                    return
                acknowledged.extend(r["id"] for r in body["records"])

        adder = threading.Thread(target=bulk_adds)
        adder.start()
        wait_for(lambda: len(acknowledged) >= 5, 20, "bulk adds")
        first.node.kill9()
        killed_at = time.monotonic()
        stop.set()
        adder.join()
        leader = None

        def someone_leads() -> bool:
            nonlocal leader
            for process in (second, third):
                if process.cluster()["leads"]:
                    leader = process
                    return True
            return False

        wait_for(someone_leads, 5, "a follower takes the lease")
        failover = time.monotonic() - killed_at
        assert leader is not None
        other = third if leader is second else second
        assert other.cluster()["leader"] == leader.url

        value = f"{rng.getrandbits(256):064x}"
        status, added = leader.call("POST", "/v1/records",
                                    {"items": [{"hashes": [{"type": "pdq", "value": value}]}]})
        assert status == 201, added
        assert other.matches(value) == [added["records"][0]["id"]]  # the new leader's add
    finally:
        for process in (first, second, third):
            process.node.stop()

    store = PostgresStore(pg_url)
    try:
        seqs = [row["seq"] for row in store.log_rows(origin, 0, 100_000)]
        assert seqs == list(range(1, len(seqs) + 1)), "a seq gap or duplicate"
        assert all(store.record_bytes(r) is not None for r in acknowledged), "a lost write"
    finally:
        store.close()
    print(f"failover took {failover:.2f} s "
          f"after kill -9 ({len(acknowledged)} acknowledged adds kept)")
