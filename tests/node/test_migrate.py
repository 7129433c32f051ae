"""Schema version 1 to 2: every row survives, and a failed copy changes nothing.

A version 1 database is made from a real version 2 one (same rows, the first session's
``records`` and ``entries`` shapes), so that migrating it back must give exactly the rows
the node wrote.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hashmesh.node.service import NodeService
from hashmesh.node.store.migrate import MigrationError, migrate_v1, schema_version
from hashmesh.node.store.sqlite import Store
from hashmesh.protocol.records import Distribution, HashEntry, Item, Target
from tests.cli_process import run_cli
from tests.conftest import NodeDir
from tests.node.test_store_ingest import mixed_log

V1_RECORDS = """CREATE TABLE v1.records (id TEXT PRIMARY KEY, origin TEXT NOT NULL,
    seq INTEGER NOT NULL, type TEXT NOT NULL, scope TEXT, grp TEXT, jurisdictions TEXT,
    lists TEXT, labels TEXT, stub INTEGER NOT NULL, raw BLOB NOT NULL, received_at INTEGER,
    source TEXT)"""
V1_ENTRIES = """CREATE TABLE v1.entries (id INTEGER PRIMARY KEY, record TEXT NOT NULL,
    item INTEGER NOT NULL, origin TEXT NOT NULL, hash_type TEXT NOT NULL, value TEXT NOT NULL,
    quality INTEGER, list TEXT, labels TEXT, tier TEXT, expires INTEGER,
    active INTEGER NOT NULL)"""


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
                for t in tables}


def downgrade_to_v1(path: Path) -> None:
    """Rewrite the version 2 database at ``path`` as the version 1 it would have been."""
    old = path.with_name("v1.db")
    with sqlite3.connect(path) as conn:
        conn.execute("ATTACH DATABASE ? AS v1", (str(old),))
        conn.execute(V1_RECORDS)
        conn.execute(V1_ENTRIES)
        conn.execute("INSERT INTO v1.records SELECT id, origin, seq, type, scope, grp, "
                     "jurisdictions, lists, labels, stub, raw, received_at, source FROM records "
                     "ORDER BY num")
        conn.execute("INSERT INTO v1.entries SELECT e.id, r.id, e.item, r.origin, e.hash_type, "
                     "e.value, e.quality, e.list, e.labels, e.tier, e.expires, e.active "
                     "FROM entries e JOIN records r ON r.num = e.record_num")
        for table in ("origins", "revoked", "feedback", "keys", "cursors", "audit", "evidence",
                      "meta"):
            sql = conn.execute("SELECT sql FROM sqlite_master WHERE name=?", (table,)).fetchone()
            conn.execute(sql[0].replace(f'CREATE TABLE "{table}"', f'CREATE TABLE v1."{table}"')
                         .replace(f"CREATE TABLE [{table}]", f"CREATE TABLE v1.[{table}]"))
            conn.execute(f"INSERT INTO v1.{table} SELECT * FROM {table}")
        conn.execute("UPDATE v1.meta SET value='1' WHERE key='schema_version'")
    old.replace(path)
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


async def fill(node_dir: NodeDir) -> Path:
    """A node's database with local adds, a revoke, feedback, expiry, and another origin's log."""
    service = await NodeService.open(node_dir.config())
    try:
        items = [Item((HashEntry("pdq", f"{i:064x}"), HashEntry("md5", f"{i:032x}")), "ncii",
                      expires=(10**13 if i == 2 else None)) for i in range(1, 5)]
        [first] = await service.add(items, Distribution(), "token:t")
        await service.revoke([Target(first.id, 1)], "withdrawn", "token:t")
        await service.feedback(Target(first.id, 0), "confirmed", None, "token:t")
        await service.store.write(lambda s: s.ingest(mixed_log(), source="peer"))
        await service.store.write(lambda s: s.block_signing("restored from a backup"))
        return service.config.db_path
    finally:
        await service.close()


async def test_migrating_a_v1_database_gives_back_every_row(node_dir: NodeDir) -> None:
    path = await fill(node_dir)
    before = dump(path)
    downgrade_to_v1(path)
    assert schema_version(path) == 1
    with pytest.raises(Exception, match="schema version 1; this node needs 2. Upgrade it"):
        Store(path)

    done = migrate_v1(path)
    after = dump(path)
    # a version 1 database had no change log: migrating rebuilds it (adds, then revokes and
    # verdicts), so it holds the same changes, in another order
    assert sorted(r[1:5] for r in after.pop("changes")) == sorted(
        r[1:5] for r in before.pop("changes"))
    assert after == before
    assert (done.records, done.entries) == (len(before["records"]), len(before["entries"]))
    assert schema_version(done.backup) == 1
    service = await NodeService.open(node_dir.config())  # opens, and loads the index
    try:
        assert service.matcher.count("pdq") == 3 + 5  # ours: 4 less the revoked; the peer's
    finally:
        await service.close()


async def test_a_copy_that_does_not_add_up_changes_nothing(node_dir: NodeDir) -> None:
    path = await fill(node_dir)
    downgrade_to_v1(path)
    with sqlite3.connect(path) as conn:  # an entry whose record is gone cannot be copied
        conn.execute("UPDATE entries SET record='ff' || substr(record, 3) WHERE id=1")
    original = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(MigrationError, match="entries: 26 rows in the old database but 25"):
        migrate_v1(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == original
    assert not path.with_name(path.name + ".v1-backup").exists()
    assert not path.with_name(path.name + ".migrating").exists()


@pytest.mark.serial
async def test_hashmesh_migrate_then_verify(node_dir: NodeDir) -> None:
    path = await fill(node_dir)
    downgrade_to_v1(path)
    refused = run_cli("verify", "--config", node_dir.config_path, check=False)
    assert refused.returncode == 2 and "hashmesh migrate" in refused.stderr
    migrated = run_cli("migrate", "--config", node_dir.config_path)
    assert '"migrated": "schema 1 -> 2"' in migrated.stdout
    assert run_cli("verify", "--config", node_dir.config_path).returncode == 0
    again = run_cli("migrate", "--config", node_dir.config_path)
    assert "nothing to do" in again.stdout
