"""The README walk-through, run with the real CLI as subprocesses against a real node."""

from __future__ import annotations

import json
import sqlite3
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from hashmesh.node.config.node import load_node_config
from hashmesh.node.store.sqlite import Store
from tests.cli_process import NodeProcess, run_cli, run_json
from tests.conftest import free_port

pytestmark = pytest.mark.serial


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    import skimage.data

    source = Path(skimage.data.__file__).parent / "coffee.png"
    target = tmp_path / "photo.png"
    target.write_bytes(source.read_bytes())
    return target


@pytest.fixture
def resized_copy(photo: Path, tmp_path: Path) -> Path:
    image = Image.open(photo).convert("RGB")
    image = image.resize((image.width * 3 // 5, image.height * 3 // 5))
    target = tmp_path / "resized.jpg"
    image.save(target, "JPEG", quality=70)
    return target


@pytest.fixture
def running_node(tmp_path: Path) -> Iterator[tuple[Path, NodeProcess]]:
    port = free_port()
    directory = tmp_path / "node"
    run_cli("init", directory, "--name", "Walkthrough Commission", "--port", str(port))
    config = directory / "node.toml"
    node = NodeProcess(config, f"http://127.0.0.1:{port}", tmp_path / "node.log").start()
    yield config, node
    node.stop()


def test_readme_walkthrough(running_node: tuple[Path, NodeProcess], photo: Path,
                            resized_copy: Path) -> None:
    config, _ = running_node
    hashed = [json.loads(line) for line in run_cli("hash", photo).stdout.splitlines()]
    assert [entry["path"] for entry in hashed] == [str(photo)]
    assert {h["type"] for h in hashed[0]["hashes"]} >= {"pdq", "md5", "sha256", "phash"}

    added = run_json("add", "--config", config, photo)
    record_id = added["records"][0]["id"]

    matched = run_cli("match", "--config", config, resized_copy)
    report = json.loads(matched.stdout)
    pdq_result = next(r for r in report[0]["results"] if r["query"]["type"] == "pdq")
    assert matched.returncode == 0
    assert [m["record"] for m in pdq_result["matches"]] == [record_id]
    assert pdq_result["matches"][0]["origin_name"] == "Walkthrough Commission"
    assert report[0]["verdict"] == "match"

    # A mirrored re-upload matches through its flip; a single 64-bit hash is only weak, and
    # `hashmesh match` exits 0 on a match only.
    mirrored = resized_copy.with_name("mirrored.jpg")
    ImageOps.mirror(Image.open(resized_copy)).save(mirrored, "JPEG", quality=80)
    flipped = run_cli("match", "--config", config, mirrored)
    [item] = json.loads(flipped.stdout)[0]["items"]
    assert flipped.returncode == 0 and item["verdict"] == "match"
    assert any(h.get("transform") == "flip_horizontal" for h in item["hits"])
    phash = next(h["value"] for h in hashed[0]["hashes"] if h["type"] == "phash")
    weak = run_cli("match", "--config", config, f"phash:{phash}", check=False)
    assert weak.returncode == 1 and json.loads(weak.stdout)[0]["verdict"] == "weak"

    run_json("revoke", "--config", config, record_id, "--reason", "withdrawn")
    after = run_cli("match", "--config", config, resized_copy, check=False)
    assert after.returncode == 1
    assert all(not r["matches"] for r in json.loads(after.stdout)[0]["results"])

    status = run_json("status", "--config", config)
    # the key record by which init authorised the signing key, the add and the revoke
    assert status["counts"]["records"] == 3 and status["counts"]["hashes_active"] == 0


def test_verify_export_and_import_restore_byte_for_byte(
        running_node: tuple[Path, NodeProcess], tmp_path: Path) -> None:
    config, node = running_node
    for seed in range(3):
        run_json("add", "--config", config, f"md5:{seed:032x}")
    node.stop()
    assert "0 fault(s)" in run_cli("verify", "--config", config).stdout
    export = tmp_path / "backup.jsonl"
    run_cli("export", "--config", config, "--output", export)
    lines = export.read_bytes().splitlines()
    assert len(lines) == 4  # init's key record authorising the signing key, then the adds

    fresh = tmp_path / "fresh"
    run_cli("init", fresh, "--port", str(free_port()))
    imported = run_cli("import", "--config", fresh / "node.toml", export)
    assert "imported 4 records" in imported.stdout
    second_export = tmp_path / "second.jsonl"
    run_cli("export", "--config", fresh / "node.toml", "--output", second_export)
    second = second_export.read_bytes().splitlines()
    # byte for byte, beside the fresh node's own init record
    assert [line for line in second if line in lines] == lines and len(second) == 5
    again = run_cli("import", "--config", fresh / "node.toml", export)
    assert "imported 0 records, 4 already present" in again.stdout


def test_import_refuses_a_tampered_export(running_node: tuple[Path, NodeProcess],
                                          tmp_path: Path) -> None:
    config, node = running_node
    run_json("add", "--config", config, "md5:" + "1" * 32)
    node.stop()
    export = tmp_path / "backup.jsonl"
    run_cli("export", "--config", config, "--output", export)
    first, add = export.read_bytes().splitlines()  # init's key record, then the add
    export.write_bytes(first + b"\n" + add.replace(b"1111", b"2222", 1) + b"\n")
    fresh = tmp_path / "fresh"
    run_cli("init", fresh, "--port", str(free_port()))
    result = run_cli("import", "--config", fresh / "node.toml", export, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("hashmesh: error: backup.jsonl:2")
    assert "Traceback" not in result.stderr


def test_a_database_of_another_schema_is_refused_in_one_line(tmp_path: Path) -> None:
    directory = tmp_path / "node"
    run_cli("init", directory, "--port", str(free_port()))
    database = load_node_config(directory / "node.toml").db_path
    Store(database).close()
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
    result = run_cli("verify", "--config", directory / "node.toml", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "schema version 3; this node needs" in result.stderr
    assert "hashmesh export" in result.stderr


def test_config_error_is_one_line_with_exit_2(tmp_path: Path) -> None:
    directory = tmp_path / "node"
    run_cli("init", directory, "--port", str(free_port()))
    config = directory / "node.toml"
    config.write_text(config.read_text().replace("port = ", "port = 7000", 1))
    data = tomllib.loads(config.read_text())
    assert data["listen"]["port"] > 65535
    result = run_cli("run", "--config", config, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "node.toml: listen.port:" in result.stderr


def test_every_command_has_help() -> None:
    commands = ["init", "run", "id", "hash", "add", "revoke", "feedback", "match", "status",
                "verify", "export", "import", "peers"]
    for command in commands:
        result = run_cli(command, "--help")
        assert result.stdout.startswith("usage: hashmesh " + command)


def test_hash_needs_no_node_and_reports_a_non_image(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.jpg"
    bogus.write_bytes(b"not really a jpeg")
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 64), "red").save(good)
    result = run_cli("hash", tmp_path, check=False)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 1
    assert {Path(line["path"]).name: "error" in line for line in lines} == {
        "good.png": False, "notes.jpg": True}
