"""The SQLite schema of a node's store, created with sqlite-utils.

Kept apart from ``node/store/sqlite.py`` so the shape of the data can be read in one place. The
``records`` table is the source of truth (exact signed bytes); every other table except
``audit``, ``cursors`` and ``meta`` is derived from it and could be rebuilt by replaying it.

Records are numbered in the order they are stored (``records.num``) and each ``entries`` row
points at its record by that number, not by record id. Record ids are SHA-256 digests, so an
index keyed by them takes every insert at a random place: a sync of one-item records wrote
two random B-tree pages per record (the record id index and ``entries(record, item)``), and
at 1M records the commits spent most of their time writing those pages. Numbers grow with
every insert, so ``entries(record_num, item)`` is appended to. An entry's record id and
origin are read through ``record_num``.

The one random index left, records by id, is keyed by ``id_key``, the first 60 bits of the id
as an integer (``sqlite.id_key``), rather than by the 64-character id: an index of 8-byte
keys is a fifth of the size, stays in the page cache and dirties fewer pages per commit.
Lookups by id match ``id_key`` and then ``id``; the index is not unique (ids are SHA-256
digests, so equal prefixes are as unlikely as equal ids, and would only cost a comparison).
"""

from __future__ import annotations

import sqlite3
from typing import Any

import sqlite_utils

from hashmesh.node.store import receipts
from hashmesh.node.store.audit_chain import chain_rows
from hashmesh.node.store.cases import create_case_tables
from hashmesh.node.store.changes import create_changes_table
from hashmesh.node.store.checkpoint_tables import CHECKPOINT_TABLES_SQL

SCHEMA_VERSION = 2


class SchemaVersionError(Exception):
    """The database was created by a node with another schema version."""


def create_schema(conn: sqlite3.Connection) -> None:
    """Create missing tables and indexes; a no-op on an up-to-date database.

    A database of another schema version is refused rather than half-upgraded: move its
    records over with ``hashmesh export`` (by the node that wrote it) and ``hashmesh import``.
    """
    db = sqlite_utils.Database(conn)
    check_version(conn)
    db.table("records").create(
        {"num": int, "id": str, "id_key": int, "origin": str, "seq": int, "type": str, "scope": str,
         "grp": str, "jurisdictions": str, "lists": str, "labels": str, "stub": int,
         "raw": bytes, "received_at": int, "source": str},
        pk="num", not_null={"id", "id_key", "origin", "seq", "type", "raw", "stub"},
        if_not_exists=True)
    db.table("records").create_index(["id_key"], if_not_exists=True)
    db.table("records").create_index(["origin", "seq"], unique=True, if_not_exists=True)
    # The holes to repair (``Store.stub_positions``): stubs only, so it stays small and a
    # completed stub leaves it. Added without a schema version bump: it is derived, and
    # ``IF NOT EXISTS`` adds it to an older database of this version when the node opens it.
    conn.execute("CREATE INDEX IF NOT EXISTS records_stubs ON records (origin, seq) "
                 "WHERE stub=1")
    db.table("origins").create(
        {"origin": str, "head_seq": int, "head_id": str, "head_ts": int, "frozen_seq": int},
        pk="origin", if_not_exists=True)
    db.table("entries").create(
        {"id": int, "record_num": int, "item": int, "hash_type": str, "value": str,
         "quality": int, "list": str, "labels": str, "tier": str, "expires": int,
         "active": int},
        pk="id", not_null={"record_num", "item", "hash_type", "value", "active"},
        if_not_exists=True)
    db.table("entries").create_index(["record_num", "item"], if_not_exists=True)
    db.table("entries").create_index(["active", "hash_type"], if_not_exists=True)
    conn.execute("CREATE INDEX IF NOT EXISTS entries_expiring ON entries (expires) "
                 "WHERE active=1 AND expires IS NOT NULL")
    db.table("revoked").create(
        {"origin": str, "ref": str, "revoke_record": str, "reason": str},
        pk=("origin", "ref"), if_not_exists=True)
    db.table("feedback").create(
        {"origin": str, "target": str, "seq": int, "verdict": str, "note": str, "record": str},
        pk=("origin", "target"), if_not_exists=True)
    db.table("feedback").create_index(["target"], if_not_exists=True)
    db.table("keys").create(
        {"origin": str, "key": str, "authorised_at": int, "revoked_at": int},
        pk=("origin", "key"), if_not_exists=True)
    db.table("cursors").create({"peer": str, "origin": str, "seq": int},
                         pk=("peer", "origin"), if_not_exists=True)
    db.table("audit").create({"id": int, "ts": int, "actor": str, "action": str, "detail": str,
                              "prev": str, "hash": str}, pk="id", if_not_exists=True)
    chain_audit(conn)
    db.table("evidence").create(
        {"id": int, "origin": str, "seq": int, "first_id": str, "second_id": str,
         "evidence": str, "created_at": int},
        pk="id", if_not_exists=True)
    db.table("evidence").create_index(["first_id", "second_id"], unique=True, if_not_exists=True)
    db.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
    # each origin's profile in force (its latest ``profile`` record, SPEC §4.6); added to
    # version 2 in place: a database without profile records has nothing to fill it from
    db.table("profiles").create(
        {"origin": str, "seq": int, "name": str, "jurisdiction": str, "contact": str},
        pk="origin", not_null={"seq", "name"}, if_not_exists=True)
    conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                 (str(SCHEMA_VERSION),))
    create_changes_table(conn)  # added to version 2 in place: see node/store/changes.py
    create_case_tables(conn)  # added to version 2 in place, as the change log was
    receipts.create_tables(conn)  # added to version 2 in place: see node/store/receipts.py
    for statement in CHECKPOINT_TABLES_SQL:  # also added in place (checkpoint_tables.py)
        conn.execute(statement)


def chain_audit(conn: sqlite3.Connection) -> None:
    """Give the audit table its hash chain (``audit_chain``) in place, as the change log was
    added to version 2: add the ``prev`` and ``hash`` columns to an older table, and chain
    the rows that have none (those written before, or copied by ``hashmesh migrate``) after
    the chained rows, in id order. The chain then vouches for those rows only from now on."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(audit)")}
    conn.execute("BEGIN IMMEDIATE")
    try:
        for column in ("prev", "hash"):
            if column not in columns:
                conn.execute(f"ALTER TABLE audit ADD COLUMN {column} TEXT")
        chain_unchained(conn, "?")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def chain_unchained(conn: Any, mark: str) -> None:
    """Chain the audit rows that have no ``hash`` (inside the caller's transaction); ``mark``
    is the driver's placeholder (``?`` for sqlite3, ``%s`` for psycopg)."""
    newest = conn.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    if newest is None or newest[0] is not None:
        return  # every writer since the chain began chains its rows: nothing to scan
    first = conn.execute("SELECT MIN(id) FROM audit WHERE hash IS NULL").fetchone()[0]
    last = conn.execute(f"SELECT id, hash FROM audit WHERE id < {mark} ORDER BY id DESC "
                        "LIMIT 1", (first,)).fetchone()
    rows = conn.execute(f"SELECT id, ts, actor, action, detail FROM audit WHERE id >= {mark} "
                        "ORDER BY id", (first,)).fetchall()
    # ids are renumbered densely after the last chained row: the chain counts rows by id
    conn.execute(f"DELETE FROM audit WHERE id >= {mark}", (first,))
    chained = chain_rows([tuple(row[1:]) for row in rows],
                         *(last if last is not None else (0, None)))
    insert = ("INSERT INTO audit (id, ts, actor, action, detail, prev, hash) VALUES "
              f"({','.join([mark] * 7)})")
    for row in chained:
        conn.execute(insert, row)


def check_version(conn: sqlite3.Connection) -> None:
    """Raise ``SchemaVersionError`` if the database holds another schema version."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone():
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is not None and row[0] != str(SCHEMA_VERSION):
            how = ("Upgrade it with `hashmesh migrate` (node stopped; the old file is kept as "
                   "hashmesh.db.v1-backup)" if row[0] == "1" else
                   "Export its records with the node version that wrote it (hashmesh export) "
                   "and import them into a new node directory (hashmesh import)")
            raise SchemaVersionError(
                f"the database has schema version {row[0]}; this node needs {SCHEMA_VERSION}. "
                + how)
