"""``hashmesh migrate --to postgresql://…``: a SQLite node's database copied into PostgreSQL,
checked table by table, and a node that reads the copy exactly as it read the file."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import psycopg
import pytest

from hashmesh.node.config.node import load_node_config
from hashmesh.node.store.interface import open_store
from hashmesh.node.store.migrate import MigrationError
from hashmesh.node.store.port import port_to_postgres
from hashmesh.protocol.evidence import Evidence
from tests.cli_process import run_cli
from tests.conftest import NodeDir
from tests.node.store.test_contract import mixed_log, snapshot
from tests.protocol.builders import ROOT, Chain, add_body, pdq_hex


def fill(node_dir: NodeDir) -> None:
    """Every table of a SQLite node gets rows: peers' records, local records, a cursor, audit
    rows, equivocation evidence, a frozen origin and a signing block in ``meta``."""
    store = open_store(load_node_config(node_dir.config_path))
    try:
        records = mixed_log()
        store.ingest(records, source="peer", cursor=("peer", records[0].head.origin, 7))
        store.append_local(signer=ROOT, origin=node_dir.origin, body=add_body(pdq_hex(7)))
        other = Chain()
        other.add(add_body(pdq_hex(8)))
        evidence = Evidence(records[0], other.records[0])
        store.freeze(records[0].head.origin, 0, evidence, "test")
        store.block_signing("restored backup")
        store.audit_many([(1, "platform", "match", json.dumps({"records": ["x"]}))])
    finally:
        store.close()


def test_migrate_to_copies_every_table_and_the_node_reads_it_alike(
        node_dir: NodeDir, pg_url: str) -> None:
    fill(node_dir)
    result = run_cli("migrate", "--config", node_dir.config_path, "--to", pg_url)
    out = json.loads(result.stdout)
    assert out["tables"]["records"]["rows"] == 9  # 7 pulled, init's key record, 1 local
    assert out["tables"]["entries"]["rows"] == 19
    assert all(out["tables"][t]["rows"] > 0 for t in
               ("origins", "revoked", "feedback", "keys", "cursors", "audit", "evidence", "meta"))

    config = load_node_config(node_dir.config_path)
    records = mixed_log()
    lite = open_store(config)
    pg = open_store(dataclasses.replace(config, store_url=pg_url))
    try:
        assert snapshot(pg, records) == snapshot(lite, records)
        assert pg.signing_blocked() == "restored backup"
        assert pg.evidence() == lite.evidence()
        assert pg.audit_rows(1000) == lite.audit_rows(1000)
        pg.audit("operator", "after the port", {})  # identity columns go on after the copy
        assert pg.audit_rows(1)[0]["action"] == "after the port"
        pg.unblock_signing("operator")
        record, _ = pg.append_local(signer=ROOT, origin=node_dir.origin,
                                    body=add_body(pdq_hex(9)))
        assert record.head.seq == 3  # after init's key record and the local add
    finally:
        lite.close()
        pg.close()


def test_migrate_to_refuses_a_database_that_holds_a_node(node_dir: NodeDir,
                                                          pg_url: str) -> None:
    fill(node_dir)
    port_to_postgres(node_dir.config().db_path, pg_url)
    with pytest.raises(MigrationError, match="already holds a node"):
        port_to_postgres(node_dir.config().db_path, pg_url)
    refused = run_cli("migrate", "--config", node_dir.config_path, "--to",
                      "mysql://x", check=False)
    assert refused.returncode == 2
    assert "--to: must be a postgresql:// URL" in refused.stderr


def test_a_copy_that_fails_leaves_the_target_empty(node_dir: NodeDir, pg_url: str) -> None:
    """A failure inside the copy (here: the target refuses a row) rolls every table back."""
    fill(node_dir)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        open_store(dataclasses.replace(node_dir.config(), store_url=pg_url)).close()
        conn.execute("ALTER TABLE evidence ADD CONSTRAINT no_evidence CHECK (seq < 0)")
    with pytest.raises(psycopg.errors.CheckViolation):
        port_to_postgres(node_dir.config().db_path, pg_url)
    with psycopg.connect(pg_url) as conn:
        for table in ("records", "entries", "audit"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,)


def test_a_file_last_opened_by_a_node_before_late_receipts_is_ported(
        node_dir: NodeDir, pg_url: str) -> None:
    """``receipts_late`` was added to schema version 2 in place: a file that an older node
    last opened lacks it, and holds no rows for it."""
    fill(node_dir)
    with sqlite3.connect(load_node_config(node_dir.config_path).db_path) as conn:
        conn.execute("DROP TABLE receipts_late")
    out = json.loads(run_cli("migrate", "--config", node_dir.config_path, "--to",
                             pg_url).stdout)
    assert out["tables"]["receipts_late"]["rows"] == 0
    assert out["tables"]["records"]["rows"] == 9
