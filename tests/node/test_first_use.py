"""Traps an operator met on first use, and the operations surface: each with the real CLI.

- a second ``hashmesh run`` on one data directory refuses, naming the running pid;
- ``hashmesh import`` into a running node refuses, naming the pid;
- ``hashmesh add FILE README.md`` names the file that is not an image; ``add DIR`` walks it;
- a bad ``listen.host`` is reported as that field, not ``[Errno -2]``;
- ``--log-format json``: one JSON object a line, with the request id also sent back as
  ``X-Request-Id``, and no hash value in the log.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.cli_process import NodeProcess, hashmesh_command, run_cli, run_json
from tests.conftest import free_port

pytestmark = pytest.mark.serial


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Path, NodeProcess]]:
    port = free_port()
    run_cli("init", tmp_path / "n", "--port", str(port))
    config = tmp_path / "n" / "node.toml"
    config.write_text(config.read_text() + '\n[log]\nformat = "json"\n')
    node = NodeProcess(config, f"http://127.0.0.1:{port}", tmp_path / "node.log").start()
    yield config, node
    node.stop()


def test_second_run_on_one_data_dir_refuses_naming_the_pid(
        running: tuple[Path, NodeProcess]) -> None:
    config, node = running
    assert node.process is not None
    result = run_cli("run", "--config", config, check=False, timeout=30)
    assert result.returncode == 2
    assert f"pid {node.process.pid}" in result.stderr
    assert "is running on this data directory" in result.stderr


def test_import_into_a_running_node_refuses_naming_the_pid(
        running: tuple[Path, NodeProcess], tmp_path: Path) -> None:
    config, node = running
    assert node.process is not None
    run_cli("add", "--config", config, f"md5:{'cd' * 16}")
    export = tmp_path / "export.jsonl"
    run_cli("export", "--config", config, "-o", export)
    result = run_cli("import", "--config", config, export, check=False)
    assert result.returncode == 2
    assert f"pid {node.process.pid}" in result.stderr


def test_add_names_the_file_that_is_not_an_image_and_walks_folders(
        running: tuple[Path, NodeProcess], tmp_path: Path) -> None:
    config, _ = running
    readme = tmp_path / "README.md"
    readme.write_text("# not an image\n")
    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 48), "red").save(photo)
    result = run_cli("add", "--config", config, photo, readme, check=False)
    assert result.returncode == 2
    assert f"{readme}: not an image" in result.stderr

    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    for index, colour in enumerate(("blue", "green")):
        image = Image.new("RGB", (64, 48), colour)
        image.putpixel((index, index), (255, 255, 255))
        image.save(folder / ("sub" if index else ".") / f"{colour}.png")
    (folder / "notes.txt").write_text("skipped: not an image extension")
    added = run_json("add", "--config", config, folder)
    assert len(added["records"][0]["items"]) == 2


def test_bad_listen_host_names_the_field(tmp_path: Path) -> None:
    run_cli("init", tmp_path / "n", "--port", str(free_port()), "--host", "nosuch.invalid")
    result = run_cli("run", "--config", tmp_path / "n" / "node.toml", check=False, timeout=60)
    assert result.returncode == 2
    assert "node.toml: listen.host: cannot listen on 'nosuch.invalid'" in result.stderr
    assert "Errno" not in result.stderr


def test_json_logs_carry_the_request_id_and_no_hash_values(
        running: tuple[Path, NodeProcess], tmp_path: Path) -> None:
    config, node = running
    token = (config.parent / "cli-token").read_text().strip()
    value = "9e" * 16
    request = urllib.request.Request(
        node.url + "/v1/records", method="POST",
        data=json.dumps({"items": [{"hashes": [{"type": "md5", "value": value}]}]}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                 "X-Request-Id": "ticket-4711"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["X-Request-Id"] == "ticket-4711"
    match = urllib.request.Request(
        node.url + "/v1/match", method="POST",
        data=json.dumps({"hashes": [{"type": "md5", "value": value}]}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(match, timeout=10) as response:
        generated = response.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{16}", generated)
    node.stop()
    lines = [json.loads(line) for line in node.log_path.read_text().splitlines()
             if line.startswith("{")]
    assert lines and all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    signed = [line for line in lines if line["msg"].startswith("signed")]
    assert signed and all(line["request_id"] == "ticket-4711" for line in signed)
    assert value not in node.log_path.read_text()


def test_run_log_format_flag_is_offered() -> None:
    import subprocess

    result = subprocess.run([*hashmesh_command(), "run", "--help"], capture_output=True,
                            text=True, timeout=30)
    assert "--log-format {text,json}" in result.stdout
