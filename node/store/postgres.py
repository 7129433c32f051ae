"""The PostgreSQL store: ``[store] url = "postgresql://…"`` in ``node.toml``.

For a node that outgrows one machine: the database lives on a server (with its own
replication and backups), and several ``hashmesh`` processes may share it. It keeps the SQLite
store's semantics exactly, because it *is* that store with another engine underneath
(``PostgresStore`` subclasses ``Store``; ``node/store/pg_dialect.py`` runs its SQL):

* the exact signed bytes are kept (``records.raw``, ``bytea``), and every derived table is
  updated by the same statements, in the same transaction as its record;
* every write transaction first takes one transaction-level advisory lock
  (``pg_advisory_xact_lock``), as SQLite's ``BEGIN IMMEDIATE`` takes its write lock: writes
  from every process that shares the database run one at a time, so records and entries are
  numbered in commit order (followers tail ``entries`` by id and never miss a row), and
  signing reads the committed head;
* even a writer that skipped that lock cannot sign a second record at a seq: the unique
  index on ``records (origin, seq)`` refuses it, and the transaction (signature, insert,
  head) rolls back whole (``SeqTakenError``);
* ``synchronous_commit`` is left on (the server's default): a commit that returned is on the
  server's disk, the durability ``synchronous=FULL`` gives the SQLite store.

What differs from SQLite is overridden here: connections (one writer, one reader per thread,
each reconnecting after the server went away), transactions, the schema, and the two bulk
reads (loading the index by ``COPY``; exporting in pages).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import dict_row

from hashmesh.node.config.node import redact_url as redact
from hashmesh.node.store.cases import Attempt, AttemptLimit
from hashmesh.node.store.errors import StoreUnavailableError
from hashmesh.node.store.pg_dialect import (
    LEADER_LOCK,
    LOCK_SPACE,
    WRITE_LOCK,
    PgConnection,
    check_version,
    create_schema,
    has_schema,
)
from hashmesh.node.store.sqlite import (
    MAX_ENTRY_ID,
    AuditRow,
    Store,
    StoreError,
    id_key,
    now_ms,
)

EXPORT_PAGE = 1_000


class SeqTakenError(StoreError):
    """Another writer stored a record at this (origin, seq), or took its record number, first:
    the database refused this one, and its transaction (signature included) rolled back."""

    code = "SEQ_TAKEN"


class PostgresStore(Store):
    """``Store`` on a PostgreSQL database. Write methods run on one thread per process
    (``AsyncStore``), as for SQLite; any number of processes may share the database."""

    def __init__(self, url: str, *, follower: bool = False, write_lock: bool = True) -> None:
        """Connect (and create the schema unless ``follower``).

        ``write_lock=False`` skips the advisory lock: only for the test that shows the
        unique index alone stops a second signer at one seq.
        """
        self.url = url
        self.path = Path(redact(url))  # what messages name; there is no file
        self.write_lock = write_lock
        # The signer lease's epoch this process holds (node/store/cluster.py): 0 holds none;
        # None: no lease in use (a single process, or an operator's command).
        self.fence: int | None = None
        self._unfenced = False  # set while writing audit rows, which any process may
        try:
            self.conn = PgConnection(url)  # type: ignore[assignment]
        except psycopg.OperationalError as exc:
            raise StoreError(f"store.url: cannot connect to {redact(url)}: "
                             f"{str(exc).strip()}") from None
        raw = self.conn.raw  # type: ignore[attr-defined]
        try:
            if follower:
                if not has_schema(raw):
                    raise StoreError(f"{redact(url)}: no hashmesh database here (the node "
                                     "creates it)")
                check_version(raw)
            else:
                create_schema(raw)
        except BaseException:
            raw.close()
            raise
        self._local = threading.local()
        self._reader_conns: list[Any] = []
        self._readers_lock = threading.Lock()

    def close(self) -> None:
        with self._readers_lock:
            for conn in self._reader_conns:
                conn.close()
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """One transaction on the writer connection, holding the node's write lock."""
        pg: PgConnection = self.conn  # type: ignore[assignment]
        raw = pg.ensure()
        try:
            raw.execute("BEGIN")
        except psycopg.OperationalError:
            if not raw.broken:
                raise
            raw = pg.ensure()  # lost since the last write: nothing was sent, so start anew
            pg.execute("BEGIN")
        try:
            if self.write_lock:
                raw.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_SPACE, WRITE_LOCK))
            if self.fence is not None and not self._unfenced:
                _check_fence(raw, self.fence)
            yield pg
        except psycopg.errors.UniqueViolation as exc:
            _rollback(raw)
            if exc.diag.constraint_name in ("idx_records_origin_seq", "records_pkey"):
                raise SeqTakenError(
                    "another process stored a record at this seq (or record number) first; "
                    f"nothing was stored ({exc.diag.constraint_name})") from None
            raise
        except BaseException:
            _rollback(raw)
            raise
        try:
            raw.execute("COMMIT")
        except psycopg.OperationalError as exc:  # not acknowledged: the client retries
            raise StoreUnavailableError(f"the database went away during a commit ({exc}); "
                                        "the write may or may not be stored") from exc

    def audit(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        self._unfenced = True
        try:
            super().audit(actor, action, detail)
        finally:
            self._unfenced = False

    def audit_many(self, rows: list[AuditRow]) -> None:
        """Audit rows (matches served by any process) need no lease."""
        self._unfenced = True
        try:
            super().audit_many(rows)
        finally:
            self._unfenced = False

    # A person may check a case through any process of the node: counting and auditing the
    # tries changes no log, so it needs no lease (a withdrawal signs, and does).
    def case_attempt_begin(self, keys: dict[str, AttemptLimit], now_ms: int) -> Attempt:
        with self._without_lease():
            return super().case_attempt_begin(keys, now_ms)

    def case_attempt_succeeded(self, reference_key: str, client_key: str) -> None:
        with self._without_lease():
            super().case_attempt_succeeded(reference_key, client_key)

    def case_attempt_failed(self, actor: str, case_id: str | None,
                            locked: dict[str, int]) -> None:
        with self._without_lease():
            super().case_attempt_failed(actor, case_id, locked)

    @contextmanager
    def _without_lease(self) -> Iterator[None]:
        self._unfenced = True
        try:
            yield
        finally:
            self._unfenced = False

    def checkpoint(self) -> tuple[int, int, int]:
        """Nothing to fold: the server manages its own write-ahead log."""
        return 0, 0, 0

    def wal_bytes(self) -> int:
        return 0

    def reader(self) -> Any:
        """This thread's read connection (created on first use, replaced when broken)."""
        conn: PgConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = PgConnection(self.url, retry_reads=True)
            self._local.conn = conn
            with self._readers_lock:
                self._reader_conns.append(conn)
        conn.ensure()
        return conn

    # -- reads that differ from SQLite -------------------------------------------------

    def log_rows(self, origin: str, after: int, limit: int) -> Iterator[Any]:
        """As ``Store.log_rows``; rows are dicts (read by column name, as callers do)."""
        raw = self.reader().raw
        with raw.cursor(row_factory=dict_row) as cursor:
            cursor.execute(
                "SELECT seq, type, scope, grp, jurisdictions, lists, labels, stub, raw "
                "FROM records WHERE origin=%s AND seq>%s ORDER BY seq LIMIT %s",
                (origin, after, limit))
            yield from cursor

    def record_rows(self, record_ids: Iterable[str]) -> list[Any]:
        """As ``Store.record_rows`` (the bodies route, ``POST /v1/bodies``), in one query for
        all the ids; rows are dicts, read by column name as there (the inherited method set
        ``sqlite3.Row`` as a psycopg row factory, and every bodies request failed)."""
        wanted = list(record_ids)
        if not wanted:
            return []
        cursor = self.reader().execute(  # the reader's PgConnection: retried if dropped
            "SELECT id, origin, seq, type, scope, grp, jurisdictions, lists, labels, stub, "
            "raw FROM records WHERE id_key = ANY(?) AND id = ANY(?)",
            ([id_key(r) for r in wanted], wanted))
        names = [column.name for column in cursor.description or ()]
        found = {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}
        return [found[r] for r in wanted if r in found]

    def all_records(self) -> Iterator[bytes]:
        """Every record, per origin in seq order, read a page at a time (a client-side
        cursor would hold the whole log in memory)."""
        raw = self.reader().raw
        origin, seq = "", 0
        while True:
            rows = raw.execute(
                "SELECT origin, seq, raw FROM records WHERE (origin, seq) > (%s, %s) "
                "ORDER BY origin, seq LIMIT %s", (origin, seq, EXPORT_PAGE)).fetchall()
            for _, _, data in rows:
                yield bytes(data)
            if len(rows) < EXPORT_PAGE:
                return
            origin, seq = rows[-1][0], rows[-1][1]

    def active_entries(self, hash_type: str, through: int | None = None,
                       chunk: int = 100_000) -> Iterator[tuple[list[int], list[str]]]:
        """As ``Store.active_entries``, streamed with ``COPY … TO STDOUT``: the fastest way
        out of PostgreSQL, and never more than about a chunk held as Python strings.

        The text is split with ``str.split`` (C speed): ids and values alternate, as no value
        of any hash type holds a tab or a newline.
        """
        raw = self.reader().raw
        buffer = bytearray()
        with raw.cursor() as cursor, cursor.copy(
                "COPY (SELECT id, value FROM entries WHERE active=1 AND hash_type=%s "
                "AND (expires IS NULL OR expires > %s) AND id <= %s ORDER BY id) TO STDOUT",
                (hash_type, now_ms(), MAX_ENTRY_ID if through is None else through)) as copy:
            for block in copy:
                buffer += block
                if len(buffer) >= chunk * COPY_ROW_BYTES:
                    cut = buffer.rindex(b"\n") + 1
                    yield from _split_rows(bytes(buffer[:cut]), chunk)
                    del buffer[:cut]
        if buffer:
            yield from _split_rows(bytes(buffer), chunk)

    def active_entries_packed(self, hash_type: str, width: int, through: int | None = None,
                              chunk: int = 100_000) -> tuple[Any, bytes] | None:
        """As ``Store.active_entries_packed``: the server decodes the hex values
        (``decode(value, 'hex')``) and sends ``COPY … (FORMAT binary)``, whose rows of a
        fixed-width type are fixed-width records that numpy reads in place, without a Python
        object per hash. Half the bytes of the text form, no string per value, no ORDER BY
        (the index does not need id order; a sort or an index scan would cost the server
        more than the rest). About a chunk of rows is held as bytes at a time.

        None (the caller reads ``active_entries``, whose errors name the bad value) if a value
        is not hex of ``width`` bytes.
        """
        row = np.dtype([("fields", ">i2"), ("id_size", ">i4"), ("id", ">i8"),
                        ("value_size", ">i4"), ("value", f"V{width}")])
        ids: list[Any] = []
        packed = bytearray()
        buffer = bytearray()
        header = True

        def take(rows: bytes) -> bool:
            parsed = np.frombuffer(rows, dtype=row)
            if not ((parsed["fields"] == 2).all() and (parsed["id_size"] == 8).all()
                    and (parsed["value_size"] == width).all()):
                return False
            ids.append(parsed["id"].astype(np.int64))
            packed.extend(parsed["value"].tobytes())
            return True

        try:
            with self.reader().raw.cursor() as cursor, cursor.copy(
                    "COPY (SELECT id, decode(value, 'hex') FROM entries WHERE active=1 "
                    "AND hash_type=%s AND (expires IS NULL OR expires > %s) AND id <= %s) "
                    "TO STDOUT (FORMAT binary)",
                    (hash_type, now_ms(), MAX_ENTRY_ID if through is None else through)
                    ) as copy:
                for block in copy:
                    buffer += block
                    if header and len(buffer) >= BINARY_HEADER:
                        if buffer[:len(BINARY_SIGNATURE)] != BINARY_SIGNATURE:
                            return None
                        del buffer[:BINARY_HEADER]
                        header = False
                    if not header and len(buffer) >= chunk * row.itemsize:
                        cut = len(buffer) // row.itemsize * row.itemsize
                        if not take(bytes(buffer[:cut])):
                            return None
                        del buffer[:cut]
        except psycopg.errors.DataException:  # a value that is not hex
            return None
        if header or buffer[-2:] != BINARY_TRAILER or (len(buffer) - 2) % row.itemsize:
            return None
        if len(buffer) > 2 and not take(bytes(buffer[:-2])):
            return None
        return (np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)), bytes(packed)


# ``COPY … (FORMAT binary)``: its 19-byte header (signature, flags, extension length) and the
# trailer that ends the rows.
BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
BINARY_HEADER = 19
BINARY_TRAILER = b"\xff\xff"
# Bytes of one COPY row of (id, pdq value), to cut the stream into chunks of about ``chunk``.
COPY_ROW_BYTES = 72


def _split_rows(data: bytes, chunk: int) -> Iterator[tuple[list[int], list[str]]]:
    fields = data.decode("ascii").split()
    ids = list(map(int, fields[0::2]))
    values = fields[1::2]
    for start in range(0, len(ids), chunk):
        yield ids[start:start + chunk], values[start:start + chunk]


class NotLeaderError(StoreError):
    """This process does not hold the signer lease: it neither signs nor stores records."""

    code = "NOT_LEADER"


def leader_of(raw: psycopg.Connection[Any]) -> str | None:
    """Who holds the signer lease now (its ``holder``), or None during a failover."""
    row = raw.execute(
        "SELECT holder FROM leases WHERE name='signer' AND EXISTS (SELECT 1 FROM pg_locks "
        "WHERE locktype='advisory' AND classid=%s AND objid=%s AND objsubid=2 AND granted)",
        (LOCK_SPACE, LEADER_LOCK)).fetchone()
    return None if row is None else str(row[0])


def _check_fence(raw: psycopg.Connection[Any], fence: int) -> None:
    """Refuse a signed write unless this process holds the lease at epoch ``fence`` (read
    under the write lock, so no new leader can come in between the check and the commit)."""
    row = raw.execute("SELECT epoch FROM leases WHERE name='signer'").fetchone()
    if fence == 0 or row is None or row[0] != fence:
        leader = leader_of(raw)
        where = (f"the leader is {leader}" if leader else
                 "no process holds the signer lease right now (failover under way: retry)")
        raise NotLeaderError(f"this process does not sign records: {where}")


def _rollback(raw: psycopg.Connection[Any]) -> None:
    if not raw.broken and not raw.closed:
        raw.execute("ROLLBACK")
