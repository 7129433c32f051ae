"""Copying a SQLite node's database into PostgreSQL (``hashmesh migrate --to postgresql://…``),
checked row for row, as synapse's ``synapse_port_db`` does.

Every table is copied whole, column for column, with ``COPY … FROM STDIN``: records byte for
byte (nothing is re-signed or re-derived), derived tables, cursors, the audit trail, evidence
and ``meta`` (which can hold ``signing_blocked``). Then, still inside the one transaction that
copied, each table is read back from both databases in primary-key order and compared by its
row count and a SHA-256 digest of its rows; any difference rolls the whole copy back, so the
target is either a checked copy or untouched.

The target must hold no node yet (no records, origins or audit rows): a port never merges two
nodes. The node must be stopped while it runs (the CLI checks), so that the copy is of one
moment.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from hashmesh.node.config.node import redact_url as redact
from hashmesh.node.store.migrate import MigrationError, schema_version
from hashmesh.node.store.pg_dialect import IDENTITIES, TABLES, create_schema
from hashmesh.node.store.schema import SCHEMA_VERSION

CHUNK = 10_000


@dataclass(frozen=True)
class TableCheck:
    """One table as copied: its rows on both sides, and the digest both sides share."""

    table: str
    rows: int
    sha256: str


def port_to_postgres(source: Path, url: str) -> list[TableCheck]:
    """Copy the SQLite database at ``source`` into the (empty) PostgreSQL database at ``url``
    and check it; raise ``MigrationError`` (with nothing written) if anything differs."""
    version = schema_version(source)
    if version != SCHEMA_VERSION:
        raise MigrationError(f"{source} has schema version {version}; port a version "
                             f"{SCHEMA_VERSION} database (run `hashmesh migrate` first)")
    lite = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        pg = psycopg.connect(url)
    except psycopg.OperationalError as exc:
        lite.close()
        raise MigrationError(f"--to: cannot connect to {redact(url)}: {str(exc).strip()}"
                             ) from None
    try:
        pg.autocommit = True
        create_schema(pg)
        pg.autocommit = False
        with pg.transaction():
            _refuse_a_used_target(pg, url)
            for table in TABLES:
                _copy_table(lite, pg, table)
            for table, column in IDENTITIES.items():  # they continue after the copy
                pg.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                           f"GREATEST((SELECT MAX({column}) FROM {table}), 1), "
                           f"(SELECT MAX({column}) FROM {table}) IS NOT NULL)")
            return [_check_table(lite, pg, table) for table in TABLES]
    finally:
        pg.close()
        lite.close()


def _refuse_a_used_target(pg: psycopg.Connection[Any], url: str) -> None:
    for table in ("records", "origins", "audit", "cursors"):
        row = pg.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()
        if row and row[0]:
            raise MigrationError(f"--to: {redact(url)} already holds a node ({table} has "
                                 "rows); port into an empty database")


def _columns(pg: psycopg.Connection[Any], table: str) -> list[str]:
    rows = pg.execute("SELECT column_name FROM information_schema.columns WHERE table_name=%s "
                      "AND table_schema=current_schema() ORDER BY ordinal_position", (table,))
    return [r[0] for r in rows]


def _copy_table(lite: sqlite3.Connection, pg: psycopg.Connection[Any], table: str) -> None:
    columns = _columns(pg, table)
    names = ", ".join(columns)
    if table == "meta":  # the target's schema row stays; the rest of meta is copied
        pg.execute("DELETE FROM meta")
    with pg.cursor() as cursor, cursor.copy(
            f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in _rows(lite, table, columns):
            copy.write_row(row)


def _rows(lite: sqlite3.Connection, table: str, columns: list[str]) -> Iterator[tuple[Any, ...]]:
    """The source's rows of ``table`` in key order; none if the table is missing: tables
    added to schema version 2 in place (e.g. ``receipts_late``) are created when a node
    opens the file, and a file last opened by an older node has no rows for them anyway."""
    if lite.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                    (table,)).fetchone() is None:
        return
    order = ", ".join(TABLES[table])
    cursor = lite.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}")
    while rows := cursor.fetchmany(CHUNK):
        yield from rows


def _check_table(lite: sqlite3.Connection, pg: psycopg.Connection[Any],
                 table: str) -> TableCheck:
    columns = _columns(pg, table)
    order = ", ".join(TABLES[table])
    ours = _digest(_rows(lite, table, columns))
    with pg.cursor(name=f"check_{table}") as cursor:  # server-side: rows stream
        cursor.itersize = CHUNK
        cursor.execute(f"SELECT {', '.join(columns)} FROM {table} "
                       f"ORDER BY {order}")
        theirs = _digest(iter(cursor))
    if ours != theirs:
        raise MigrationError(
            f"{table}: the copy differs ({ours[0]} rows, sha256 {ours[1][:16]}… in SQLite; "
            f"{theirs[0]} rows, sha256 {theirs[1][:16]}… in PostgreSQL); nothing was written")
    return TableCheck(table, ours[0], ours[1])


def _digest(rows: Iterator[tuple[Any, ...]]) -> tuple[int, str]:
    """Row count and SHA-256 of rows, each value written with its type, so that 1, "1" and
    b"1" differ and a NULL is not an empty string."""
    digest = hashlib.sha256()
    count = 0
    for row in rows:
        count += 1
        for value in row:
            if value is None:
                digest.update(b"N;")
            elif isinstance(value, bool | int):
                digest.update(b"i%d;" % value)
            elif isinstance(value, str):
                data = value.encode("utf-8")
                digest.update(b"s%d:" % len(data) + data)
            else:
                data = bytes(value)
                digest.update(b"b%d:" % len(data) + data)
        digest.update(b"\n")
    return count, digest.hexdigest()
