"""The SQLite schema of a node's store, created with sqlite-utils.

Kept apart from ``node/store.py`` so the shape of the data can be read in one place. The
``records`` table is the source of truth (exact signed bytes); every other table except
``audit``, ``cursors`` and ``meta`` is derived from it and could be rebuilt by replaying it.
"""

from __future__ import annotations

import sqlite3

import sqlite_utils

SCHEMA_VERSION = 1


def create_schema(conn: sqlite3.Connection) -> None:
    """Create missing tables and indexes; a no-op on an up-to-date database."""
    db = sqlite_utils.Database(conn)
    db.table("records").create(
        {"id": str, "origin": str, "seq": int, "type": str, "scope": str, "grp": str,
         "jurisdictions": str, "lists": str, "labels": str, "stub": int, "raw": bytes,
         "received_at": int, "source": str},
        pk="id", not_null={"origin", "seq", "type", "raw", "stub"}, if_not_exists=True)
    db.table("records").create_index(["origin", "seq"], unique=True, if_not_exists=True)
    db.table("origins").create(
        {"origin": str, "head_seq": int, "head_id": str, "head_ts": int, "frozen_seq": int},
        pk="origin", if_not_exists=True)
    db.table("entries").create(
        {"id": int, "record": str, "item": int, "origin": str, "hash_type": str, "value": str,
         "quality": int, "list": str, "labels": str, "tier": str, "expires": int,
         "active": int},
        pk="id", not_null={"record", "item", "origin", "hash_type", "value", "active"},
        if_not_exists=True)
    db.table("entries").create_index(["record", "item"], if_not_exists=True)
    db.table("entries").create_index(["active", "hash_type"], if_not_exists=True)
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
