"""A real ``hashmesh run`` node on PostgreSQL, next to a peer on SQLite: it adds, matches,
revokes, syncs both ways, and keeps every acknowledged write through ``kill -9``."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from hashmesh.node.config.keyfile import read_secret_key
from hashmesh.node.config.node import load_node_config
from hashmesh.node.config.peers import PeerConfig, add_peer
from hashmesh.protocol.keys import PublicKey
from tests.cli_process import NodeProcess, run_cli, run_json
from tests.conftest import free_port

pytestmark = pytest.mark.serial


def make_node(root: Path, name: str, host: str, store_url: str | None) -> tuple[Path, str, str]:
    port = free_port(host)
    run_cli("init", root / name, "--name", name, "--host", host, "--port", str(port))
    config = root / name / "node.toml"
    text = config.read_text().replace("pull_interval_seconds = 30", "pull_interval_seconds = 1")
    if store_url is not None:
        text += f'\n[store]\nurl = "{store_url}"\n'
    config.write_text(text)
    origin = read_secret_key(root / name / "keys" / "root.key").id
    return config, f"http://{host}:{port}", origin


def peer(name: str, url: str, config: Path, origin: str) -> PeerConfig:
    """The node of ``config`` as a peer: init gives it a node key of its own."""
    node_key = PublicKey.from_id(read_secret_key(config.parent / "keys" / "node.key").id)
    return PeerConfig(name=name, url=url, node_key=node_key, origin=PublicKey.from_id(origin),
                      accept_vouched=True)


def image(name: str, tmp_path: Path, scale: float = 1.0) -> Path:
    import skimage.data

    source = Image.open(Path(skimage.data.__file__).parent / name).convert("RGB")
    if scale != 1.0:
        source = source.resize((int(source.width * scale), int(source.height * scale)))
    target = tmp_path / f"{name}-{scale}.jpg"
    source.save(target, "JPEG", quality=80)
    return target


def pdq_of(path: Path) -> str:
    """The image's pdq hash, as ``hashmesh hash`` prints it (hashed once, matched often)."""
    hashed = json.loads(run_cli("hash", path).stdout.splitlines()[0])
    return str(next(h["value"] for h in hashed["hashes"] if h["type"] == "pdq"))


def matched_records(config: Path, value: str) -> list[str]:
    """The records that match a pdq hash, asked over the local API (the CLI's token)."""
    node = load_node_config(config)
    token = (config.parent / "cli-token").read_text().strip()
    request = urllib.request.Request(
        f"http://{node.listen.host}:{node.listen.port}/v1/match", method="POST",
        data=json.dumps({"hashes": [{"type": "pdq", "value": value}]}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        report = json.loads(response.read())
    return [m["record"] for m in report["results"][0]["matches"]]


def record(config: Path, record_id: str) -> Any:
    """``GET /v1/records/{id}`` over the local API (the CLI's token)."""
    node = load_node_config(config)
    token = (config.parent / "cli-token").read_text().strip()
    request = urllib.request.Request(
        f"http://{node.listen.host}:{node.listen.port}/v1/records/{record_id}",
        headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def test_a_node_on_postgresql_adds_matches_revokes_and_syncs_with_a_sqlite_peer(
        tmp_path: Path, pg_url: str) -> None:
    pg_cfg, pg_http, pg_origin = make_node(tmp_path, "pg", "127.0.0.2", pg_url)
    lite_cfg, lite_http, lite_origin = make_node(tmp_path, "lite", "127.0.0.3", None)
    add_peer(pg_cfg.parent / "peers.toml", peer("lite", lite_http, lite_cfg, lite_origin))
    add_peer(lite_cfg.parent / "peers.toml", peer("pg", pg_http, pg_cfg, pg_origin))
    coffee, cat = image("coffee.png", tmp_path), image("chelsea.png", tmp_path)
    coffee_small = pdq_of(image("coffee.png", tmp_path, 0.6))
    cat_small = pdq_of(image("chelsea.png", tmp_path, 0.6))

    pg = NodeProcess(pg_cfg, pg_http, tmp_path / "pg.log").start()
    lite = NodeProcess(lite_cfg, lite_http, tmp_path / "lite.log").start()
    try:
        ours = run_json("add", "--config", pg_cfg, coffee)["records"][0]["id"]
        assert matched_records(pg_cfg, coffee_small) == [ours]
        matched = run_cli("match", "--config", pg_cfg, image("coffee.png", tmp_path, 0.5))
        assert ours in matched.stdout  # the CLI's own path, image to hashes to answer
        theirs = run_json("add", "--config", lite_cfg, cat)["records"][0]["id"]
        wait_for(lambda: matched_records(lite_cfg, coffee_small) == [ours], 30,
                 "the SQLite peer pulls the PostgreSQL node's record")
        wait_for(lambda: matched_records(pg_cfg, cat_small) == [theirs], 30,
                 "the PostgreSQL node pulls the SQLite peer's record")

        revoke = run_json("revoke", "--config", pg_cfg, ours, "--reason", "withdrawn")["id"]
        assert matched_records(pg_cfg, coffee_small) == []
        wait_for(lambda: matched_records(lite_cfg, coffee_small) == [], 30,
                 "the revocation reaches the SQLite peer")
        wait_for(lambda: [(r["node"], r["kind"]) for r in record(pg_cfg, revoke)["receipts"]]
                 == [(lite_origin, "removed")], 30,
                 "the SQLite peer's receipt of the revocation reaches the PostgreSQL node")

        pg.kill9()  # every acknowledged write is in the database
        pg = NodeProcess(pg_cfg, pg_http, tmp_path / "pg2.log").start()
        status = run_json("status", "--config", pg_cfg)
        # each log: the key record that authorises its signing key, then pg's add and
        # revoke, and lite's add; and the receipts each signed of the other's
        assert status["counts"]["records"] - status["counts"]["receipts"] == 5
        assert status["counts"]["receipts"] >= 1
        assert matched_records(pg_cfg, cat_small) == [theirs]
        assert matched_records(pg_cfg, coffee_small) == []
    finally:
        pg.stop()
        lite.stop()
    assert "0 fault(s)" in run_cli("verify", "--config", pg_cfg).stdout
    # the same bytes of every record but receipts: each node signs one more round of those
    # when it stops, which the other, stopping too, may never pull
    assert without_receipts(run_cli("export", "--config", pg_cfg).stdout) == \
        without_receipts(run_cli("export", "--config", lite_cfg).stdout)


def without_receipts(exported: str) -> list[str]:
    lines = [line for line in exported.splitlines()
             if json.loads(line)["head"]["type"] != "receipt"]
    assert lines
    return lines
