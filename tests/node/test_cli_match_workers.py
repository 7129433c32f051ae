"""``[match_workers]`` with the real CLI: worker processes behind their own port.

The node (``hashmesh run``) starts the workers, restarts one that dies, and takes them down
with it, even when it is killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli_process import NodeProcess, hashmesh_command, run_cli
from tests.conftest import free_port

pytestmark = pytest.mark.serial

VALUE = "f0" * 32
NEAR = "f1" + "f0" * 31  # 1 bit away


class Node:
    def __init__(self, tmp_path: Path, processes: int = 2) -> None:
        self.port, self.match_port = free_port(), free_port()
        directory = tmp_path / "node"
        run_cli("init", directory, "--port", str(self.port))
        self.config = directory / "node.toml"
        with self.config.open("a") as config:
            config.write(f"\n[match_workers]\nprocesses = {processes}\n"
                         f"port = {self.match_port}\n")
        self.token = (directory / "cli-token").read_text().strip()
        self.url = f"http://127.0.0.1:{self.port}"
        self.match_url = f"http://127.0.0.1:{self.match_port}"
        self.log = tmp_path / "node.log"
        self.process = NodeProcess(self.config, self.url, self.log)

    def call(self, url: str, method: str = "GET", body: Any = None,
             text: bool = False) -> tuple[int, Any]:
        request = urllib.request.Request(
            url, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = response.read()
                return response.status, answer.decode() if text else json.loads(answer)
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def matched(self, value: str) -> list[str]:
        status, answer = self.call(self.match_url + "/v1/match", "POST",
                                   {"hashes": [{"type": "pdq", "value": value}]})
        assert status == 200, answer
        return [m["record"] for m in answer["results"][0]["matches"]]

    def workers(self) -> set[int]:
        assert self.process.process is not None
        return set(children(self.process.process.pid))


def children(pid: int) -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                yield int(entry.name)


def wait_for(condition: Callable[[], Any], timeout: float = 20, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or condition}")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    started = Node(tmp_path)
    started.process.start(timeout=60)
    yield started
    started.process.stop()


def test_workers_answer_what_the_node_adds_and_never_what_it_revoked(node: Node) -> None:
    assert len(node.workers()) == 2
    status, answer = node.call(node.url + "/v1/status")
    assert answer["match_workers"] == {"host": "127.0.0.1", "port": node.match_port,
                                       "processes": 2, "ready": 2, "restarts": 0}
    status, added = node.call(node.url + "/v1/records", "POST",
                              {"items": [{"hashes": [{"type": "pdq", "value": VALUE}]}]})
    assert status == 201
    record = added["records"][0]["id"]
    wait_for(lambda: all(node.matched(NEAR) == [record] for _ in range(32)), 5,
             "both workers to index the add")
    status, _ = node.call(node.url + "/v1/revocations", "POST",
                          {"targets": [record], "reason": "withdrawn"})
    assert status == 201
    assert [node.matched(NEAR) for _ in range(32)] == [[]] * 32  # at once, on every worker

    status, answer = node.call(node.match_url + "/v1/status")
    assert (status, answer["error"]["code"]) == (404, "NOT_ON_MATCH_LISTENER")
    assert "the node's own port" in answer["error"]["message"]
    status, answer = node.call(node.match_url + "/v1/match", "POST", {"hashes": []})
    assert status == 400 and answer["error"]["field"].startswith("hashes")

    def exported() -> float:
        status, metrics = node.call(node.url + "/metrics", text=True)
        assert status == 200
        lines = [line for line in metrics.splitlines() if line.startswith(
            'hashmesh_match_workers_match_queries_total{hash_type="pdq"}')]
        return float(lines[0].split()[-1]) if lines else 0.0

    assert wait_for(lambda: exported() >= 64, 5, "worker counters on /metrics")


def test_a_held_hash_is_matched_by_every_worker_once_its_add_is_acknowledged(node: Node) -> None:
    """Read your writes on every worker, also while the node signs more adds. Workers used
    to index only on their follow tick, and answered "no match" meanwhile (7 of 45 queries
    in one run); they now catch up before each batch of lookups."""
    run_cli("add", "--config", str(node.config), f"pdq:{VALUE}")
    misses: list[int] = []

    def match_many() -> None:
        for _ in range(15):
            if not node.matched(NEAR):
                misses.append(1)

    threads = [threading.Thread(target=match_many) for _ in range(3)]
    for thread in threads:
        thread.start()
    for n in range(5):
        run_cli("add", "--config", str(node.config), f"pdq:{n:064x}")
    for thread in threads:
        thread.join()
    assert not misses, f"{len(misses)} of 45 queries missed a hash the node holds"


def test_a_killed_worker_is_replaced_and_all_go_when_the_node_is_killed(node: Node) -> None:
    status, added = node.call(node.url + "/v1/records", "POST",
                              {"items": [{"hashes": [{"type": "pdq", "value": VALUE}]}]})
    record = added["records"][0]["id"]
    wait_for(lambda: all(node.matched(VALUE) == [record] for _ in range(8)), 5, "the add")
    # an edit the running node has not loaded must not reach the replacement worker
    node.config.write_text(node.config.read_text().replace("scopes = [", "scopes = [] # ["))
    first = node.workers()
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    replaced = wait_for(lambda: len(node.workers() - first) == 1 and len(node.workers()) == 2,
                        30, "a replacement worker")
    assert replaced and victim not in node.workers()
    def workers_status() -> dict[str, int]:
        answer: dict[str, int] = node.call(node.url + "/v1/status")[1]["match_workers"]
        return answer

    wait_for(lambda: workers_status()["ready"] == 2, 30, "the replacement to be ready")
    assert workers_status()["restarts"] == 1
    assert "match worker 0 exited with code -9; starting it again" in node.log.read_text() \
        or "match worker 1 exited with code -9; starting it again" in node.log.read_text()
    assert [node.matched(VALUE) for _ in range(32)] == [[record]] * 32  # both workers

    survivors = node.workers()
    node.process.kill9()
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in survivors), 10,
             "the workers to exit with the node")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", node.match_port), timeout=2).close()


@pytest.mark.parametrize("reuse_port", [False, True])
def test_a_match_port_already_in_use_stops_the_node_with_the_reason(
        tmp_path: Path, reuse_port: bool) -> None:
    """Also when the other listener set SO_REUSEPORT, as workers do: a second node with the
    same port must not quietly share the first one's queries."""
    node = Node(tmp_path, processes=1)
    with socket.socket() as squatter:
        if reuse_port:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        squatter.bind(("127.0.0.1", node.match_port))
        squatter.listen()
        result = run_cli_run(node.config)
    assert result.returncode == 2
    assert (f"hashmesh: error: match_workers.port: cannot listen on 127.0.0.1:"
            f"{node.match_port}: Address already in use") in result.stderr


def test_ctrl_c_stops_the_node_and_all_its_workers(tmp_path: Path) -> None:
    import subprocess

    node = Node(tmp_path)
    with node.log.open("wb") as log:  # a session of its own: Ctrl-C reaches the whole group
        process = subprocess.Popen([*hashmesh_command(), "run", "--config", str(node.config)],
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: "match workers serving" in node.log.read_text(), 60, "the workers")
        workers = set(children(process.pid))
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert len(workers) == 2
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def run_cli_run(config: Path) -> Any:
    import subprocess

    return subprocess.run([*hashmesh_command(), "run", "--config", str(config)],
                          capture_output=True, text=True, timeout=120)
