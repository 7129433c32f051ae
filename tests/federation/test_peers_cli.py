"""`hashmesh peers` edits peers.toml; a running node reloads it on SIGHUP, keeping a good one."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from hashmesh.protocol.keys import SigningKey
from tests.cli_process import NodeProcess, run_cli
from tests.conftest import free_port

pytestmark = pytest.mark.serial


def wait_for_log(log: Path, text: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not logged within {timeout} s:\n{log.read_text()}")


def test_peers_add_list_remove_round_trip(tmp_path: Path) -> None:
    run_cli("init", tmp_path / "n", "--port", str(free_port()))
    config = tmp_path / "n" / "node.toml"
    key = SigningKey.generate().id
    run_cli("peers", "add", "commission-b", "--config", config, "--url", "https://b.example:8470",
            "--node-key", key, "--origin", key, "--send-list", "ncii", "--group", "apac")
    [peer] = json.loads(run_cli("peers", "list", "--config", config).stdout)
    assert peer["name"] == "commission-b" and peer["node_key"] == key
    assert peer["send_lists"] == ["ncii"] and peer["groups"] == ["apac"]
    assert peer["accept_origins"] == [key]
    run_cli("peers", "remove", "commission-b", "--config", config)
    assert json.loads(run_cli("peers", "list", "--config", config).stdout) == []


def test_peers_add_with_a_bad_url_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    run_cli("init", tmp_path / "n", "--port", str(free_port()))
    config = tmp_path / "n" / "node.toml"
    before = (tmp_path / "n" / "peers.toml").read_bytes()
    result = run_cli("peers", "add", "b", "--config", config, "--url", "ftp://nope",
                     "--node-key", SigningKey.generate().id, check=False)
    assert result.returncode == 2
    assert "url: not an http(s) URL" in result.stderr
    assert (tmp_path / "n" / "peers.toml").read_bytes() == before


def test_running_node_reloads_peers_on_sighup_and_keeps_old_on_error(tmp_path: Path) -> None:
    port = free_port()
    run_cli("init", tmp_path / "n", "--port", str(port))
    config = tmp_path / "n" / "node.toml"
    log = tmp_path / "node.log"
    node = NodeProcess(config, f"http://127.0.0.1:{port}", log).start()
    try:
        key = SigningKey.generate().id
        run_cli("peers", "add", "b", "--config", config, "--url", "http://127.0.0.9:1",
                "--node-key", key)
        assert node.process is not None
        node.process.send_signal(signal.SIGHUP)
        wait_for_log(log, "peers config reloaded: 1 peers (added ['b']")

        peers_file = tmp_path / "n" / "peers.toml"
        peers_file.write_text(peers_file.read_text().replace("http://127.0.0.9:1", "nonsense"))
        node.process.send_signal(signal.SIGHUP)
        wait_for_log(log, "peers config NOT reloaded, keeping the running one")
        assert "peer[0].url: not an http(s) URL" in log.read_text()
        status = run_cli("status", "--config", config)
        assert json.loads(status.stdout)["peers"] == 1
    finally:
        node.stop()
