"""Match workers and the node's store under faults (issue 18, items 2 and 5), with the real
CLI: a worker restarted while ``peers.toml`` does not validate comes up on the node's peers,
and the WAL stays bounded while workers commit audit rows and the node writes nothing."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.node.test_cli_match_workers import VALUE, Node, wait_for

pytestmark = pytest.mark.serial


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    started = Node(tmp_path)
    with started.config.open("a") as config:
        config.write("\n[limits]\nwal_checkpoint_seconds = 1\n")
    started.process.start(timeout=60)
    yield started
    started.process.stop()


def test_a_worker_restarted_while_peers_toml_is_invalid_comes_up(node: Node) -> None:
    status, added = node.call(node.url + "/v1/records", "POST",
                              {"items": [{"hashes": [{"type": "pdq", "value": VALUE}]}]})
    assert status == 201
    record = added["records"][0]["id"]
    (node.config.parent / "peers.toml").write_text("[[peer]]\nname = 'broken\n")
    wait_for(lambda: "peers config NOT reloaded" in node.log.read_text(), 10,
             "the node to refuse the edit")
    first = node.workers()
    os.kill(min(first), signal.SIGKILL)
    wait_for(lambda: len(node.workers() - first) == 1, 30, "a replacement worker")

    def ready() -> int:
        workers: dict[str, int] = node.call(node.url + "/v1/status")[1]["match_workers"]
        return workers["ready"]

    wait_for(lambda: ready() == 2, 30, "the replacement to be ready")
    time.sleep(1.5)  # a worker that exits with code 2 would be gone again by now
    assert ready() == 2
    assert "exited with code 2" not in node.log.read_text()
    assert [node.matched(VALUE) for _ in range(16)] == [[record]] * 16


def test_wal_stays_bounded_while_workers_commit_audit_rows(node: Node) -> None:
    status, _ = node.call(node.url + "/v1/records", "POST",
                          {"items": [{"hashes": [{"type": "pdq", "value": VALUE}]}]})
    assert status == 201
    wal = node.config.parent / "data" / "hashmesh.db-wal"
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            node.matched(VALUE)  # a hit: the worker queues an audit row

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for thread in threads:
        thread.start()
    sizes = []
    try:
        for _ in range(16):
            time.sleep(0.5)
            sizes.append(wal.stat().st_size if wal.exists() else 0)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    audits = node.call(node.url + "/v1/status")[1]
    assert audits["background_tasks"]["wal-checkpoint"]["failures"] == 0
    # checkpointed every second: the WAL holds about a second of audit commits at most
    assert max(sizes[4:]) < 1_000_000, sizes
    assert min(sizes[4:]) < max(sizes[4:]) or max(sizes[4:]) < 200_000, sizes
