"""kill -9 during a bulk add: every acknowledged record survives, with no gap or duplicate."""

from __future__ import annotations

import json
import random
import threading
import urllib.request
from pathlib import Path

import pytest

from hashmesh.node.config.node import load_node_config
from hashmesh.node.store.sqlite import Store
from hashmesh.protocol.records import SignedRecord
from tests.cli_process import NodeProcess, run_cli
from tests.conftest import free_port

pytestmark = pytest.mark.serial


def post_add(url: str, token: str, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    items = [{"hashes": [{"type": "pdq", "value": f"{rng.getrandbits(256):064x}"}]}
             for _ in range(20)]
    request = urllib.request.Request(
        url + "/v1/records", data=json.dumps({"items": items}).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, object] = json.loads(response.read())
        return answer


def test_acknowledged_adds_survive_kill_9(tmp_path: Path) -> None:
    port = free_port()
    directory = tmp_path / "node"
    run_cli("init", directory, "--port", str(port))
    config_path = directory / "node.toml"
    token = (directory / "cli-token").read_text().strip()
    url = f"http://127.0.0.1:{port}"
    node = NodeProcess(config_path, url, tmp_path / "node.log").start()

    acknowledged: dict[str, int] = {}
    lock = threading.Lock()
    enough = threading.Event()

    def writer(worker: int) -> None:
        for n in range(10_000):
            try:
                answer = post_add(url, token, worker * 100_000 + n)
            except OSError:
                return  # the node was killed mid-request: not acknowledged
            with lock:
                for record in answer["records"]:  # type: ignore[attr-defined]
                    acknowledged[record["id"]] = record["seq"]
                if len(acknowledged) >= 150:
                    enough.set()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    assert enough.wait(timeout=120), "the node never acknowledged enough writes"
    node.kill9()
    for thread in threads:
        thread.join(timeout=30)

    config = load_node_config(config_path)
    store = Store(config.db_path)
    try:
        stored = [SignedRecord.from_bytes(raw) for raw in store.all_records()]
    finally:
        store.close()
    stored_ids = {record.id: record.head.seq for record in stored}
    missing = {rid for rid in acknowledged if rid not in stored_ids}
    assert not missing, f"{len(missing)} acknowledged records lost"
    assert all(stored_ids[rid] == seq for rid, seq in acknowledged.items())
    seqs = [record.head.seq for record in stored]
    assert seqs == list(range(1, len(stored) + 1)), "gap or duplicate seq after the crash"

    restarted = NodeProcess(config_path, url, tmp_path / "node2.log").start()
    try:
        after = post_add(url, token, 999_999_999)
        assert after["records"][0]["seq"] == len(stored) + 1  # type: ignore[index]
        assert run_cli("verify", "--index", "--config", config_path).returncode == 0
    finally:
        restarted.stop()
    assert "0 fault(s)" in run_cli("verify", "--config", config_path).stdout
