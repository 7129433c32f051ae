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

import sqlite_utils

from hashmesh.node.store import receipts
from hashmesh.node.store.changes import create_changes_table

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
    db.table("audit").create({"id": int, "ts": int, "actor": str, "action": str, "detail": str},
                       pk="id", if_not_exists=True)
    db.table("evidence").create(
        {"id": int, "origin": str, "seq": int, "first_id": str, "second_id": str,
         "evidence": str, "created_at": int},
        pk="id", if_not_exists=True)
    db.table("evidence").create_index(["first_id", "second_id"], unique=True, if_not_exists=True)
    db.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
    conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                 (str(SCHEMA_VERSION),))
    create_changes_table(conn)  # added to version 2 in place: see node/store/changes.py
    receipts.create_tables(conn)  # added to version 2 in place: see node/store/receipts.py


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
