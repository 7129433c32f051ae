"""A disk-full commit on a real node process (issue 18): ``RLIMIT_FSIZE`` caps the files the
node may grow, as a full disk does. The write is refused whole (503, nothing stored, the
index unchanged), the node goes on answering, a retry once there is room stores the add once,
and every acknowledged write survives ``kill -9``."""

from __future__ import annotations

import json
import random
import resource
import signal
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.cli_process import NodeProcess, run_cli
from tests.conftest import free_port

pytestmark = pytest.mark.serial


def pdq(seed: int) -> str:
    return f"{random.Random(seed).getrandbits(256):064x}"


def ignore_sigxfsz() -> None:
    """A write beyond RLIMIT_FSIZE then fails with EFBIG instead of killing the node."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def call(url: str, token: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_disk_full_add_is_refused_whole_and_a_retry_stores_it_once(tmp_path: Path) -> None:
    port = free_port()
    directory = tmp_path / "node"
    run_cli("init", directory, "--port", str(port))
    config = directory / "node.toml"
    with config.open("a") as file:
        file.write("\n[limits]\nwal_checkpoint_seconds = 3600\n")
    token = (directory / "cli-token").read_text().strip()
    url = f"http://127.0.0.1:{port}"
    node = NodeProcess(config, url, tmp_path / "node.log", preexec_fn=ignore_sigxfsz).start()
    try:
        items = [{"hashes": [{"type": "pdq", "value": pdq(i)}]} for i in range(1000)]
        status, first = call(url + "/v1/records", token, "POST",
                             {"items": [{"hashes": [{"type": "pdq", "value": pdq(10**6)}]}]})
        assert status == 201
        data = directory / "data"
        largest = max(path.stat().st_size for path in data.iterdir())
        assert node.process is not None
        resource.prlimit(node.process.pid, resource.RLIMIT_FSIZE,
                         (largest + 150_000, resource.RLIM_INFINITY))

        status, refused = call(url + "/v1/records", token, "POST", {"items": items})
        assert status == 503, refused
        assert refused["error"]["code"] == "STORAGE_UNAVAILABLE"
        status, answer = call(url + "/v1/status", token)
        assert status == 200 and answer["counts"]["records"] == 2  # key record, first add
        assert run_cli("verify", "--index", "--config", config).returncode == 0

        resource.prlimit(node.process.pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        status, stored = call(url + "/v1/records", token, "POST", {"items": items})
        assert status == 201, stored
        assert len(stored["records"]) == 4  # 256 items a record
        status, answer = call(url + "/v1/match", token, "POST",
                              {"hashes": [{"type": "pdq", "value": pdq(0)}]})
        assert len(answer["results"][0]["matches"]) == 1  # once: the refused add left nothing
        assert run_cli("verify", "--index", "--config", config).returncode == 0
        node.kill9()
        node = NodeProcess(config, url, tmp_path / "node2.log").start()
        status, answer = call(url + "/v1/status", token)
        assert answer["counts"]["hashes_active"] == 1 + 1000
        assert answer["counts"]["records"] == 2 + 4
        checked = run_cli("verify", "--index", "--config", config)
        assert json.loads(checked.stdout)["ok"] is True
    finally:
        node.stop()
