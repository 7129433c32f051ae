"""Moving a node's database from schema version 1 to version 2, without losing a row.

Version 2 (``node/store/schema.py``) numbers records (``records.num``), keys the record-id index on
``id_key`` and points entries at their record's number. A version 1 database is copied into
a new file that has the version 2 schema, the copy is checked (every table holds as many
rows as before), and only then is it swapped in. The old file stays beside it as
``hashmesh.db.v1-backup``. A crash at any point before the swap leaves the version 1 file as
it was: a copy that fails is deleted, and one left by a crash is deleted by the next attempt.

The swap never leaves the database's name empty: the backup is made as a second name of the
old file (a hard link), then one ``rename`` puts the new file in its place, and the directory
is fsynced after each step. (Two renames, old away then new in, left no database between
them: a crash there, and the next ``hashmesh run`` made an empty one.) A crash after the
link leaves the old database in place with a backup name beside it; ``migrate`` then starts
over once the operator has moved that backup away, as it says.

Records are copied byte for byte, in the order they were stored: nothing is re-signed,
and there is nothing to re-verify, as every record was verified when it arrived.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from hashmesh.node.store.changes import backfill
from hashmesh.node.store.schema import SCHEMA_VERSION, chain_unchained
from hashmesh.node.store.sqlite import Store, id_key

# Tables whose shape is the same in both versions, copied column for column.
UNCHANGED_TABLES = ("origins", "revoked", "feedback", "keys", "cursors", "audit", "evidence")
RECORD_COLUMNS = ("id", "origin", "seq", "type", "scope", "grp", "jurisdictions", "lists",
                  "labels", "stub", "raw", "received_at", "source")
ENTRY_COLUMNS = ("item", "hash_type", "value", "quality", "list", "labels", "tier", "expires",
                 "active")


class MigrationError(Exception):
    """The database cannot be migrated; the message says why. Nothing was changed."""


@dataclass(frozen=True)
class Migrated:
    records: int
    entries: int
    backup: Path


def schema_version(path: Path) -> int | None:
    """The schema version a database file records, or None if it has none."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
                            ).fetchone():
            return None
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return None if row is None else int(row[0])
    finally:
        conn.close()


def migrate_v1(path: Path) -> Migrated:
    """Migrate the version 1 database at ``path`` to version 2 (see the module docstring)."""
    version = schema_version(path)
    if version != 1:
        raise MigrationError(f"{path} has schema version {version}, not 1")
    backup = path.with_name(path.name + ".v1-backup")
    work = path.with_name(path.name + ".migrating")
    if backup.exists():
        raise MigrationError(f"{backup} exists already: move it away first")
    _remove_database(work)
    _checkpoint(path)
    try:
        counts = _copy(path, work)
    except BaseException:
        _remove_database(work)
        raise
    _checkpoint(work)
    _fsync(work)
    for suffix in ("-wal", "-shm"):  # a WAL left beside the new file would be replayed into it
        if work.with_name(work.name + suffix).exists():
            raise MigrationError(f"{work}{suffix} is still there after a checkpoint; "
                                 "the old database is unchanged")
    old_wal = path.with_name(path.name + "-wal")
    if old_wal.exists() and old_wal.stat().st_size:
        raise MigrationError(f"{old_wal} holds data after a checkpoint (is the node running?); "
                             "the old database is unchanged")
    for suffix in ("-wal", "-shm"):  # empty: the new file must not find the old file's
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    os.link(path, backup)
    _fsync_directory(path.parent)
    os.replace(work, path)
    _fsync_directory(path.parent)
    return Migrated(records=counts["records"], entries=counts["entries"], backup=backup)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    """Make the renames in ``directory`` durable (a rename is only as durable as the
    directory entry that records it)."""
    _fsync(directory)


def _copy(source: Path, target: Path) -> dict[str, int]:
    """Copy every row of the version 1 ``source`` into a new version 2 ``target``, in one
    transaction, and check the row counts."""
    store = Store(target)
    conn = store.conn
    try:
        conn.create_function("id_key", 1, id_key, deterministic=True)
        conn.execute("ATTACH DATABASE ? AS v1", (str(source),))
        with store.transaction():
            _copy_rows(conn)
            backfill(conn)  # the change log of the rows copied (node/store/changes.py)
            chain_unchained(conn, "?")  # the audit rows copied join the hash chain
        counts = _check_counts(conn)
        conn.execute("DETACH DATABASE v1")
    finally:
        store.close()
    return counts


def _copy_rows(conn: sqlite3.Connection) -> None:
    columns = ", ".join(RECORD_COLUMNS)
    conn.execute(f"INSERT INTO records ({columns}, id_key) "
                 f"SELECT {columns}, id_key(id) FROM v1.records ORDER BY rowid")
    entry_columns = ", ".join(ENTRY_COLUMNS)
    picked = ", ".join(f"e.{c}" for c in ENTRY_COLUMNS)
    conn.execute(f"INSERT INTO entries (id, record_num, {entry_columns}) "
                 f"SELECT e.id, r.num, {picked} FROM v1.entries e JOIN records r "
                 "ON r.id_key = id_key(e.record) AND r.id = e.record ORDER BY e.id")
    for table in UNCHANGED_TABLES:
        names = ", ".join(row[1] for row in conn.execute(f"PRAGMA v1.table_info({table})"))
        conn.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM v1.{table}")
    # meta also holds state that must survive, e.g. signing_blocked after a restored backup
    conn.execute("INSERT INTO meta (key, value) SELECT key, value FROM v1.meta "
                 "WHERE key != 'schema_version' "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value")
    # a database from before receipts: receipt what arrives from now on, never the history
    # (as an upgrade in place does, node/store/receipts.py)
    conn.execute("UPDATE meta SET value = (SELECT CAST(COALESCE(MAX(num), 0) AS TEXT) "
                 "FROM records) WHERE key = 'receipts_through' AND NOT EXISTS "
                 "(SELECT 1 FROM v1.meta WHERE key = 'receipts_through')")


def _check_counts(conn: sqlite3.Connection) -> dict[str, int]:
    counts = {}
    for table in ("records", "entries", *UNCHANGED_TABLES, "meta"):
        (old,) = conn.execute(f"SELECT COUNT(*) FROM v1.{table}").fetchone()
        (new,) = conn.execute(f"SELECT COUNT(*) FROM main.{table}").fetchone()
        if old != new:
            raise MigrationError(f"{table}: {old} rows in the old database but {new} copied "
                                 "(an entry without its record?); the old database is "
                                 "unchanged")
        counts[table] = new
    (version,) = conn.execute("SELECT value FROM main.meta WHERE key='schema_version'"
                              ).fetchone()
    assert version == str(SCHEMA_VERSION)
    return counts


def _checkpoint(path: Path) -> None:
    """Fold the WAL into the file, so that renaming the file moves all of its data."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
