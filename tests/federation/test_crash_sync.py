"""kill -9 a real node process in the middle of a sync: nothing lost, nothing duplicated."""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

import pytest

from hashmesh.node.config.keyfile import read_secret_key
from hashmesh.node.config.peers import PeerConfig, add_peer
from hashmesh.node.store.sqlite import Store
from hashmesh.protocol.keys import PublicKey
from hashmesh.protocol.log import LogHead, append
from hashmesh.protocol.records import AddBody, HashEntry, Item
from tests.cli_process import NodeProcess, run_cli
from tests.conftest import free_port

pytestmark = pytest.mark.serial

RECORDS = 3000


def make_node(root: Path, name: str, host: str) -> tuple[Path, str, str]:
    port = free_port(host)
    run_cli("init", root / name, "--name", name, "--host", host, "--port", str(port))
    config = root / name / "node.toml"
    # Small pages, so that a sync of RECORDS records takes many commits to land a kill in.
    config.write_text(config.read_text().replace("pull_interval_seconds = 30",
                                                 "pull_interval_seconds = 1")
                      + "\n[limits]\nmax_page_records = 100\n")
    origin = read_secret_key(root / name / "keys" / "root.key").id
    node_keys[origin] = read_secret_key(root / name / "keys" / "node.key").id
    return config, f"http://{host}:{port}", origin


node_keys: dict[str, str] = {}  # origin -> node key, of the nodes made by make_node


def export_of_signed_records(key_file: Path, target: Path) -> None:
    """RECORDS single-item add records signed by the node's own root key, after the record
    by which ``hashmesh init`` authorised the signing key."""
    key = read_secret_key(key_file)
    rng = random.Random(7)
    store = Store(key_file.parent.parent / "data" / "hashmesh.db")
    try:
        head: LogHead | None = store.head(key.id)
    finally:
        store.close()
    with open(target, "wb") as out:
        for _ in range(RECORDS):
            item = Item(hashes=(HashEntry("pdq", f"{rng.getrandbits(256):064x}"),), list="ncii")
            record = append(head, signer=key, origin=key.id, body=AddBody((item,)), now_ms=1)
            head = LogHead.of(record)
            out.write(record.raw + b"\n")


def head_seq(config: Path, origin: str) -> int:
    db = config.parent / "data" / "hashmesh.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db, timeout=10) as conn:
        row = conn.execute("SELECT head_seq FROM origins WHERE origin=?", (origin,)).fetchone()
    return 0 if row is None else int(row[0])


def state(config: Path) -> tuple[list[tuple[str, int, str]], int, int]:
    db = config.parent / "data" / "hashmesh.db"
    with sqlite3.connect(db) as conn:
        records = conn.execute("SELECT origin, seq, id FROM records ORDER BY origin, seq")
        rows = [(o, s, i) for o, s, i in records]
        entries = conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        active = conn.execute("SELECT COUNT(*) FROM entries WHERE active=1").fetchone()[0]
    return rows, entries, active


def peer(name: str, url: str, origin: str) -> PeerConfig:
    key = PublicKey.from_id(origin)
    return PeerConfig(name=name, url=url, node_key=PublicKey.from_id(node_keys[origin]),
                      origin=key, accept_vouched=True)


def wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def test_kill_9_mid_sync_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    a_cfg, a_url, a_origin = make_node(tmp_path, "a", "127.0.0.2")
    b_cfg, b_url, b_origin = make_node(tmp_path, "b", "127.0.0.3")
    c_cfg, c_url, c_origin = make_node(tmp_path, "c", "127.0.0.4")
    add_peer(a_cfg.parent / "peers.toml", peer("b", b_url, b_origin))
    add_peer(b_cfg.parent / "peers.toml", peer("a", a_url, a_origin))
    add_peer(b_cfg.parent / "peers.toml", peer("c", c_url, c_origin))
    add_peer(c_cfg.parent / "peers.toml", peer("b", b_url, b_origin))
    export = tmp_path / "a.jsonl"
    export_of_signed_records(a_cfg.parent / "keys" / "root.key", export)
    run_cli("import", "--config", a_cfg, export)

    nodes = [NodeProcess(cfg, url, tmp_path / f"{name}.log")
             for name, cfg, url in (("a", a_cfg, a_url), ("b", b_cfg, b_url), ("c", c_cfg, c_url))]
    a, b, c = nodes
    try:
        a.start()
        b.start()
        wait_for(lambda: head_seq(b_cfg, a_origin) == RECORDS + 1, 120, "b syncs from a")
        c.start()
        wait_for(lambda: head_seq(c_cfg, a_origin) > 0, 60, "c starts syncing")
        c.kill9()
        partial = head_seq(c_cfg, a_origin)
        assert 0 < partial < RECORDS, "the kill did not land mid-sync; make the log longer"

        c = NodeProcess(c_cfg, c_url, tmp_path / "c2.log").start()
        wait_for(lambda: head_seq(c_cfg, a_origin) == RECORDS + 1, 120,
                 "c resumes and finishes")
        checked = run_cli("verify", "--index", "--config", c_cfg, check=False)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        for node in (a, b, c):
            node.stop()

    a_rows, a_entries, a_active = state(a_cfg)
    c_rows, c_entries, c_active = state(c_cfg)
    of_a = [row for row in a_rows if row[0] == a_origin]  # each node's init record travels too
    assert [row for row in c_rows if row[0] == a_origin] == of_a, \
        "c's records of a differ from a's (lost or duplicated)"
    assert (c_entries, c_active) == (a_entries, a_active) == (RECORDS, RECORDS)
    assert "0 fault(s)" in run_cli("verify", "--config", c_cfg).stdout
