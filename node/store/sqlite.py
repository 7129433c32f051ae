"""The node's SQLite store: the only module that touches the database.

Writes go through one writer (one connection, one thread) in explicit ``BEGIN IMMEDIATE``
transactions with ``synchronous=FULL`` in WAL mode, so an acknowledged write survives
``kill -9`` and power loss. Reads use their own connections (one per reader thread) and never
block the writer. ``AsyncStore`` runs both off the event loop.

One exception to "acknowledged means durable": the audit rows of matches
(``AsyncStore.audit_later``) are queued and committed together, in one transaction every
``AUDIT_FLUSH_SECONDS``, so that a match answer does not wait for a transaction (and an fsync)
of its own. A crash can lose the audit rows of the last interval; a clean shutdown writes them.

Signing a local record, inserting it and advancing the origin's head happen in one
transaction: a crash can neither leave a gap nor reuse a seq.

Derived tables (``entries``, ``revoked``, ``feedback``, ``keys``, and the change log that feed
consumers follow, ``node/store/changes.py``) are updated in the same transaction as the record
that changes them, and every write returns the ``Changes`` that the in-memory matcher must
apply once the transaction has committed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from hashmesh.node.store import changes as change_log
from hashmesh.node.store import receipts as receipt_rows
from hashmesh.node.store.audit_chain import chain_rows
from hashmesh.node.store.cases import CaseTables
from hashmesh.node.store.checkpoint_tables import CheckpointTables
from hashmesh.node.store.receipts import Owed, ReceiptRow
from hashmesh.node.store.retention import Pruned, prune_batch
from hashmesh.node.store.schema import check_version, create_schema
from hashmesh.protocol.errors import ChainError
from hashmesh.protocol.evidence import Evidence
from hashmesh.protocol.item_runs import ItemRun
from hashmesh.protocol.keys import SigningKey
from hashmesh.protocol.log import LogHead, append, check_next
from hashmesh.protocol.receipts import batch as batch_receipts
from hashmesh.protocol.records import (
    AddBody,
    Body,
    Distribution,
    FeedbackBody,
    Item,
    KeyBody,
    KeyRevokeBody,
    ProfileBody,
    ReceiptBody,
    RevokeBody,
    SignedRecord,
)
from hashmesh.protocol.signing import KeyRing

T = TypeVar("T")

log = logging.getLogger("hashmesh.store")

# Queued audit rows are committed together at most this long after the first of them.
AUDIT_FLUSH_SECONDS = 0.1
AUDIT_ATTEMPTS = 5  # tries of a queued audit flush against a busy database
AuditRow = tuple[int, str, str, str]  # ts, actor, action, detail as JSON


class StoreError(Exception):
    """A store operation that cannot proceed (frozen origin, conflicting seq)."""

    code = "STORE_ERROR"


class StorageError(Exception):
    """The database file cannot be written now (disk full, file size limit, I/O error).

    Nothing of the failed transaction was stored; the write can be retried once there is
    room. The API answers 503, not 500: the fault is the machine's, not the request's.
    """

    code = "STORAGE_UNAVAILABLE"


class OriginFrozenError(StoreError):
    """The origin is frozen after equivocation or a restored backup; nothing is signed."""

    code = "ORIGIN_FROZEN"


@dataclass
class Changes:
    """What a committed write changed in the hashes in force (for the matcher).

    ``added`` maps each hash type to the entry ids and values that became active, as two
    columns, so that the matcher can take a whole page of a sync in one call; ``removed``
    lists the entry ids that stopped being active. Applying all additions, then all removals,
    gives the committed state.
    """

    added: dict[str, tuple[list[int], list[str]]] = field(default_factory=dict)
    removed: list[int] = field(default_factory=list)
    # receipts stored whose target we hold: (signing node, kind, applied_ms - target ts)
    receipts: list[tuple[str, str, int]] = field(default_factory=list)

    def add(self, hash_type: str, entry_id: int, value: str) -> None:
        ids, values = self.added.setdefault(hash_type, ([], []))
        ids.append(entry_id)
        values.append(value)

    def extend(self, other: Changes) -> None:
        for hash_type, (ids, values) in other.added.items():
            mine = self.added.setdefault(hash_type, ([], []))
            mine[0].extend(ids)
            mine[1].extend(values)
        self.removed.extend(other.removed)
        self.receipts.extend(other.receipts)

    @property
    def added_count(self) -> int:
        return sum(len(ids) for ids, _ in self.added.values())


@dataclass(frozen=True)
class EntryRow:
    """One hash in the store with the provenance a match answer carries."""

    entry_id: int
    record: str
    item: int
    origin: str
    hash_type: str
    value: str
    quality: int | None
    list: str
    labels: tuple[str, ...]
    tier: str
    expires: int | None
    active: bool


# The writer's page cache (64 MiB, default 2 MiB) and WAL checkpoint interval (64 MiB of WAL,
# default 4 MiB). A sync commits pages of ~25k hashes (~10 MiB of rows and indexes); with
# the defaults every commit spilled the cache and ran a checkpoint. Measured on 100k hashes
# in pages of 100 records: 6.3 instead of 7.7-11 µs of CPU a hash.
WRITER_PRAGMAS = ("PRAGMA cache_size=-65536", "PRAGMA wal_autocheckpoint=16384")


MAX_ENTRY_ID = 2**63 - 1
BUSY_TIMEOUT_MS = 30_000
CHECKPOINT_BUSY_MS = 200


def database_identity(path: Path) -> tuple[int, int]:
    """(device, inode) of a database file: which file a path names right now."""
    stat = path.stat()
    return stat.st_dev, stat.st_ino


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def connect(path: Path) -> sqlite3.Connection:
    """Open a connection in autocommit mode with the pragmas every connection needs."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


class Store(CaseTables, CheckpointTables):
    """Synchronous store. Write methods must run on one thread (``AsyncStore`` ensures it)."""

    def __init__(self, path: Path, *, follower: bool = False) -> None:
        """Open (and create if need be) the node's database.

        ``follower``: the database belongs to a node running in another process (a match
        worker's view): it must exist and have this schema version; nothing is created,
        and the only writes are audit rows.
        """
        self.path = Path(path)
        if follower:
            if not self.path.is_file():
                raise StoreError(f"{self.path}: no database here (the node creates it)")
            self.conn = connect(self.path)
            # its audit commits must not checkpoint the WAL: the node tunes that for syncs
            self.conn.execute("PRAGMA wal_autocheckpoint=0")
            check_version(self.conn)
        else:
            backup = self.path.with_name(self.path.name + ".v1-backup")
            if not self.path.exists() and backup.exists():
                raise StoreError(f"{self.path}: no database, but {backup.name} is beside it (an "
                                 "interrupted `hashmesh migrate`?); not creating an empty one")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = connect(self.path)
            for pragma in WRITER_PRAGMAS:
                self.conn.execute(pragma)
            create_schema(self.conn)
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []

    def close(self) -> None:
        for conn in self._reader_conns:
            conn.close()
        self.conn.close()

    # -- transactions and connections -------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction on the writer connection."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def reader(self) -> sqlite3.Connection:
        """This thread's read connection (created on first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            self._reader_conns.append(conn)
        return conn

    # -- writes -----------------------------------------------------------------------

    def append_local(self, *, signer: SigningKey, origin: str, body: Body,
                     dist: Distribution | None = None, actor: str = "local",
                     ts: int | None = None) -> tuple[SignedRecord, Changes]:
        """Sign the next record of our own log, store it and apply it, in one transaction."""
        records, changes = self.append_local_many(signer=signer, origin=origin, bodies=[body],
                                                  dist=dist, actor=actor, ts=ts)
        return records[0], changes

    def append_local_many(self, *, signer: SigningKey, origin: str, bodies: Sequence[Body],
                          dist: Distribution | None = None, actor: str = "local",
                          ts: int | None = None) -> tuple[list[SignedRecord], Changes]:
        """Sign and store consecutive records of our own log in one transaction.

        One add request can need several records (``batch_items``); signed one transaction
        each, a failure after the first left it committed, and the client's retry of the
        whole request duplicated it. Here the request is stored whole or not at all. It is
        also faster: a bulk add of 1M hashes is ~3,900 records, and a commit each cost ~10 ms
        of the ~58 ms a record took.
        """
        with self.transaction() as conn:
            return self._sign_local(conn, signer=signer, origin=origin, bodies=bodies,
                                    dist=dist, actor=actor, ts=ts)

    def _sign_local(self, conn: sqlite3.Connection, *, signer: SigningKey, origin: str,
                    bodies: Sequence[Body], dist: Distribution | None, actor: str,
                    ts: int | None = None) -> tuple[list[SignedRecord], Changes]:
        """``append_local_many`` inside a transaction the caller holds (the case verbs sign
        and change their case row in one transaction, ``node/store/cases.py``)."""
        records: list[SignedRecord] = []
        changes = Changes()
        self._check_not_frozen(conn, origin)
        blocked = conn.execute(
            "SELECT value FROM meta WHERE key='signing_blocked'").fetchone()
        if blocked is not None:
            raise OriginFrozenError(f"signing is blocked: {blocked[0]}; resolve it, then "
                                    "run `hashmesh unfreeze`")
        head = _head(conn, origin)
        writer = _BulkWriter(conn, "local", changes)  # adds: rows in bulk, as a sync page's
        for body in bodies:
            record = append(head, signer=signer, origin=origin, body=body,
                            now_ms=now_ms() if ts is None else ts, dist=dist)
            writer.insert(record)
            head = LogHead.of(record)
            if not isinstance(record.body, AddBody):
                writer.flush()
                _set_head(conn, head)
                changes.extend(self._apply(conn, record))
            records.append(record)
        writer.flush()
        if head is not None:
            _set_head(conn, head)
        self._audit_many(conn, actor, [(f"sign_{r.head.type}",
                                        {"record": r.id, "seq": r.head.seq})
                                       for r in records])
        return records, changes

    def checkpoint(self) -> tuple[int, int, int]:
        """Fold the WAL into the database file and truncate it: ``(busy, wal frames,
        frames checkpointed)``.

        Match workers commit audit rows with ``wal_autocheckpoint=0``, so without this the
        WAL of a node that does not write itself grows for ever. TRUNCATE waits for readers
        and writers only ``CHECKPOINT_BUSY_MS``; when they hold it up, a PASSIVE checkpoint
        still copies what it can, and the next one truncates.
        """
        self.conn.execute(f"PRAGMA busy_timeout={CHECKPOINT_BUSY_MS}")
        try:
            row = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if row[0]:
                row = self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.OperationalError:
            row = self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            self.conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return int(row[0]), int(row[1]), int(row[2])

    def wal_bytes(self) -> int:
        try:
            return self.path.with_name(self.path.name + "-wal").stat().st_size
        except OSError:
            return 0

    def ingest(self, records: Iterable[SignedRecord], *, source: str,
               cursor: tuple[str, str, int] | None = None) -> Changes:
        """Store verified records that extend their origins' heads, in one transaction.

        Signatures and key validity were checked by the caller; chain linkage is re-checked
        here against the committed head, so two concurrent pulls cannot interleave. A record
        already held is skipped, except that a held stub is completed by its body. The
        optional ``cursor`` ``(peer, origin, seq)`` advances in the same transaction.

        A sync page is hundreds of records and up to ~100k hashes, so rows are written in
        bulk (``_BulkWriter``) and each origin's head is read once and then followed in
        memory; the result is the same as storing the records one by one.
        """
        records = list(records)
        changes = Changes()
        with self.transaction() as conn:
            held = _held(conn, records)
            heads: dict[str, LogHead | None] = {}
            writer = _BulkWriter(conn, source, changes)
            for record in records:
                origin, seq = record.head.origin, record.head.seq
                existing = held.get((origin, seq))
                if existing is not None:
                    if existing[0] != record.id:
                        raise ChainError(f"conflicting record at seq {seq}", "record.head.seq")
                    if existing[1] and record.body is not None:
                        writer.flush()
                        changes.extend(self._complete_stub(conn, record))
                        held[(origin, seq)] = (record.id, False)
                    continue
                if origin not in heads:
                    self._check_not_frozen(conn, origin)
                    heads[origin] = _head(conn, origin)
                check_next(heads[origin], record)
                heads[origin] = LogHead.of(record)
                held[(origin, seq)] = (record.id, record.is_stub)
                writer.insert(record)
                if record.body is not None and not isinstance(record.body, AddBody):
                    writer.flush()  # revokes, feedback and keys see every row before them
                    changes.extend(self._apply(conn, record))
            writer.flush()
            receipt_rows.targets_arrived(conn, [
                (r.id, r.head.type, r.head.ts) for r in records
                if r.head.type in ("add", "revoke")])
            for head in heads.values():
                if head is not None:
                    _set_head(conn, head)
            if cursor is not None:
                self._set_cursor(conn, *cursor)
        return changes

    def freeze(self, origin: str, seq: int, evidence: Evidence | None, reason: str) -> None:
        """Freeze ``origin`` at ``seq``: no more records of it are accepted or signed."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO origins (origin, head_seq, frozen_seq) VALUES (?, 0, ?) "
                "ON CONFLICT(origin) DO UPDATE SET frozen_seq = "
                "MIN(COALESCE(origins.frozen_seq, excluded.frozen_seq), excluded.frozen_seq)",
                (origin, seq))
            if evidence is not None:
                conn.execute(
                    "INSERT OR IGNORE INTO evidence (origin, seq, first_id, second_id, evidence,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (origin, evidence.seq, evidence.first.id, evidence.second.id,
                     json.dumps(evidence.to_json(), sort_keys=True), now_ms()))
            self._audit(conn, "node", "freeze_origin",
                        {"origin": origin, "seq": seq, "reason": reason})

    def block_signing(self, reason: str) -> None:
        """Refuse to sign local records until an operator unblocks (restored backup)."""
        with self.transaction() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES ('signing_blocked', ?) "
                         "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (reason,))
            self._audit(conn, "node", "block_signing", {"reason": reason})

    def unblock_signing(self, actor: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM meta WHERE key='signing_blocked'")
            self._audit(conn, actor, "unblock_signing", {})

    def signing_blocked(self) -> str | None:
        row = self.reader().execute(
            "SELECT value FROM meta WHERE key='signing_blocked'").fetchone()
        return None if row is None else str(row[0])

    def unfreeze(self, origin: str, actor: str) -> None:
        """Operator action after resolving an equivocation or restored backup."""
        with self.transaction() as conn:
            conn.execute("UPDATE origins SET frozen_seq = NULL WHERE origin = ?", (origin,))
            self._audit(conn, actor, "unfreeze_origin", {"origin": origin})

    def audit(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        with self.transaction() as conn:
            self._audit(conn, actor, action, detail)

    def audit_many(self, rows: list[AuditRow]) -> None:
        """Write queued audit rows (``AsyncStore.audit_later``) in one transaction."""
        with self.transaction() as conn:
            _append_audit(conn, rows)

    def set_cursor(self, peer: str, origin: str, seq: int) -> None:
        with self.transaction() as conn:
            self._set_cursor(conn, peer, origin, seq)

    def prune(self, before_ms: int, batch: int = 5000) -> Pruned:
        """Erase one batch of the hashes that retention lets go (``retention.py``), audited
        in the same transaction; ``done`` once nothing before ``before_ms`` is left."""
        with self.transaction() as conn:
            pruned = prune_batch(conn, before_ms, batch)
            if pruned.hashes or pruned.records_stubbed:
                self._audit(conn, "node", "retention_prune",
                            {**pruned.to_json(), "before": before_ms})
        return pruned

    def log_expiries(self, until: int) -> int:
        """Log the items that expired by ``until`` in the change log (``changes.py``)."""
        with self.transaction() as conn:
            return change_log.log_expiries(conn, until)

    # -- reads ------------------------------------------------------------------------

    def head(self, origin: str) -> LogHead | None:
        return _head(self.reader(), origin)

    def heads(self) -> list[LogHead]:
        rows = self.reader().execute(
            "SELECT origin, head_seq, head_id, head_ts FROM origins WHERE head_seq > 0 "
            "ORDER BY origin").fetchall()
        return [LogHead(*row) for row in rows]

    def head_stubs(self) -> list[bytes]:
        """The stub of every origin's latest record, for ``GET /v1/heads``."""
        rows = self.reader().execute(
            "SELECT r.raw FROM origins o JOIN records r ON r.origin = o.origin "
            "AND r.seq = o.head_seq AND r.id = o.head_id "
            "ORDER BY o.origin").fetchall()
        return [SignedRecord.from_bytes(bytes(raw)).stub().raw for (raw,) in rows]

    def frozen(self) -> dict[str, int]:
        rows = self.reader().execute(
            "SELECT origin, frozen_seq FROM origins WHERE frozen_seq IS NOT NULL").fetchall()
        return dict(rows)

    def keyring(self, origin: str) -> KeyRing:
        """The origin's key ring, replayed from its key records: the ``keys`` table keeps one
        row per key, but a ring keeps every grant window and each ``key_revoke``'s
        ``last_seq`` (SPEC §6)."""
        return KeyRing.from_records(
            origin, (SignedRecord.from_bytes(raw) for raw in self.key_records(origin)))

    def record_bytes(self, record_id: str) -> bytes | None:
        row = self.reader().execute("SELECT raw FROM records WHERE id_key=? AND id=?",
                                    (id_key(record_id), record_id)).fetchone()
        return None if row is None else bytes(row[0])

    def record_at(self, origin: str, seq: int) -> bytes | None:
        row = self.reader().execute("SELECT raw FROM records WHERE origin=? AND seq=?",
                                    (origin, seq)).fetchone()
        return None if row is None else bytes(row[0])

    def log_rows(self, origin: str, after: int, limit: int) -> Iterator[sqlite3.Row]:
        """Records of one origin after ``after`` in seq order, with their policy columns.

        Read as they are consumed: a page's byte cap usually ends it long before ``limit``
        (a 4 MiB page holds ~100 records of 256 items, against a limit of 5,000), and
        reading the rows it will not send cost a serving node most of its CPU in a sync.
        """
        cursor = self.reader().execute(
            "SELECT seq, type, scope, grp, jurisdictions, lists, labels, stub, raw "
            "FROM records WHERE origin=? AND seq>? ORDER BY seq LIMIT ?",
            (origin, after, limit))
        cursor.row_factory = sqlite3.Row
        try:
            yield from cursor
        finally:
            cursor.close()  # ends the read transaction of a page that stopped early

    def stub_positions(self, origin: str, after: int, limit: int) -> list[tuple[int, str]]:
        """``(seq, id)`` of the stubs of ``origin`` after ``after``, in seq order: the holes
        that body repair asks peers to fill (read through the partial ``records_stubs``)."""
        rows = self.reader().execute(
            "SELECT seq, id FROM records WHERE origin=? AND stub=1 AND seq>? ORDER BY seq "
            "LIMIT ?", (origin, after, limit)).fetchall()
        return [(int(seq), str(record_id)) for seq, record_id in rows]

    def record_rows(self, record_ids: Iterable[str]) -> list[sqlite3.Row]:
        """The rows of these records (those held, in the order asked) with their policy
        columns, for serving bodies by id."""
        conn = self.reader()
        found: list[sqlite3.Row] = []
        for record_id in record_ids:
            cursor = conn.execute(
                "SELECT id, origin, seq, type, scope, grp, jurisdictions, lists, labels, stub, raw "
                "FROM records WHERE id_key=? AND id=?", (id_key(record_id), record_id))
            cursor.row_factory = sqlite3.Row
            row = cursor.fetchone()
            if row is not None:
                found.append(row)
        return found

    def all_records(self) -> Iterator[bytes]:
        """Every stored record, per origin in seq order (for export and verify)."""
        for (raw,) in self.reader().execute("SELECT raw FROM records ORDER BY origin, seq"):
            yield bytes(raw)

    def records_of_types(self, types: Sequence[str], origin: str | None = None
                         ) -> Iterator[bytes]:
        """Every stored record of these types (of one origin, if given), read as consumed:
        what the transparency report counts (``node/reporting``)."""
        marks = ",".join("?" * len(types))
        where = f"type IN ({marks})" + (" AND origin = ?" if origin is not None else "")
        params = [*types, *([origin] if origin is not None else [])]
        cursor = self.reader().execute(f"SELECT raw FROM records WHERE {where}", params)
        while rows := cursor.fetchmany(1000):
            for (raw,) in rows:
                yield bytes(raw)

    def key_records(self, origin: str) -> list[bytes]:
        rows = self.reader().execute(
            "SELECT raw FROM records WHERE origin=? AND type IN ('key', 'key_revoke') "
            "ORDER BY seq", (origin,)).fetchall()
        return [bytes(raw) for (raw,) in rows]

    def active_entries(self, hash_type: str, through: int | None = None,
                       chunk: int = 100_000) -> Iterator[tuple[list[int], list[str]]]:
        """Ids and values of every hash in force of one type, for loading the matcher, in
        chunks of up to ``chunk`` rows; with ``through``, only entries with ids up to it.

        Chunks, so that the caller can pack each one and drop its strings: 1M values held
        at once as Python strings are ~150 MB, which the allocator then keeps.
        """
        cursor = self.reader().execute(
            "SELECT id, value FROM entries WHERE active=1 AND hash_type=? "
            "AND (expires IS NULL OR expires > ?) AND id <= ?",
            (hash_type, now_ms(), MAX_ENTRY_ID if through is None else through))
        try:
            while rows := cursor.fetchmany(chunk):
                yield [r[0] for r in rows], [r[1] for r in rows]
        finally:
            cursor.close()

    def active_entries_packed(self, hash_type: str, width: int, through: int | None = None
                              ) -> tuple[Any, bytes] | None:
        """The ids (an int64 array) and values as packed bytes (``width`` each) of the hashes
        ``active_entries`` gives, when the engine can decode hex values itself faster than
        the caller packs strings; None here: SQLite reads strings as fast as that.
        A hex type only (the caller packs other types)."""
        return None

    def in_force_ids(self, now: int) -> Iterator[list[int]]:
        """Ids of the entries in force at ``now`` (active, not expired), in id order, in
        chunks: what the match index must hold (``hashmesh verify --index``)."""
        cursor = self.reader().execute(
            "SELECT id FROM entries WHERE active=1 AND (expires IS NULL OR expires > ?) "
            "ORDER BY id", (now,))
        try:
            while rows := cursor.fetchmany(100_000):
                yield [r[0] for r in rows]
        finally:
            cursor.close()

    def last_entry_id(self) -> int:
        """The highest entry id stored (0 if none). Entries are numbered in commit order and
        never deleted, so a reader that has seen every id up to this one can follow the
        ones after it."""
        row = self.reader().execute("SELECT MAX(id) FROM entries").fetchone()
        return int(row[0] or 0)

    def entries_after(self, entry_id: int, limit: int
                      ) -> tuple[int, dict[str, tuple[list[int], list[str]]]]:
        """Up to ``limit`` entries with ids above ``entry_id``, and the highest id read.
        Those in force come back by hash type (as ``Changes.added`` holds them)."""
        rows = self.reader().execute(
            "SELECT id, hash_type, value, active, expires FROM entries WHERE id > ? "
            "ORDER BY id LIMIT ?", (entry_id, limit)).fetchall()
        now = now_ms()
        added: dict[str, tuple[list[int], list[str]]] = {}
        for row_id, hash_type, value, active, expires in rows:
            if active and (expires is None or expires > now):
                ids, values = added.setdefault(hash_type, ([], []))
                ids.append(row_id)
                values.append(value)
        return (rows[-1][0] if rows else entry_id), added

    def changes_after(self, after: int, limit: int, lists: tuple[str, ...] | None
                      ) -> list[tuple[Any, ...]]:
        """A page of the change log with each item's hashes (``changes.changes_after``)."""
        conn = self.reader()
        conn.execute("BEGIN")  # one snapshot for the page and its hashes
        try:
            return change_log.changes_after(conn, after, limit, lists)
        finally:
            conn.execute("COMMIT")

    def last_change(self) -> int:
        """The highest change seq (0 if none): a cursor past it was not given by this log."""
        return change_log.last_seq(self.reader())

    def change_records(self, nums: Iterable[int]) -> dict[int, tuple[str, bytes]]:
        return change_log.record_ids(self.reader(), nums)

    def change_seq_at(self, ts: int) -> int:
        return change_log.seq_at_time(self.reader(), ts)

    def item_versions(self, nums: Iterable[int]
                      ) -> dict[tuple[int, int], tuple[int, int | None, int | None]]:
        return change_log.item_versions(self.reader(), nums)

    def profiles(self, origins: Iterable[str] | None = None) -> dict[str, ProfileBody]:
        """The profile in force of these origins (of every origin with one if ``None``)."""
        conn = self.reader()
        sql = "SELECT origin, name, jurisdiction, contact FROM profiles"
        if origins is None:
            rows = conn.execute(sql).fetchall()
        else:
            wanted = sorted(set(origins))
            if not wanted:
                return {}
            rows = conn.execute(f"{sql} WHERE origin IN ({','.join('?' * len(wanted))})",
                                wanted).fetchall()
        return {origin: ProfileBody(name, jurisdiction, contact)
                for origin, name, jurisdiction, contact in rows}

    def last_verdicts(self, nums: Iterable[int]) -> dict[tuple[int, int], int]:
        return change_log.last_verdicts(self.reader(), nums)

    def active_hash_types(self) -> list[str]:
        rows = self.reader().execute(
            "SELECT DISTINCT hash_type FROM entries WHERE active=1").fetchall()
        return [r[0] for r in rows]

    def expired_entries(self, after: int, until: int) -> list[int]:
        """Active entries whose expiry time is in (after, until]: those that expired since
        the last sweep. Read through the partial ``entries_expiring`` index, so a sweep costs
        what expired, not every active entry."""
        rows = self.reader().execute(
            "SELECT id FROM entries WHERE active=1 AND expires IS NOT NULL AND expires > ? "
            "AND expires <= ?", (after, until)).fetchall()
        return [r[0] for r in rows]

    def entries(self, entry_ids: Iterable[int]) -> dict[int, EntryRow]:
        ids = list(entry_ids)
        result: dict[int, EntryRow] = {}
        conn = self.reader()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in conn.execute(
                    f"SELECT {ENTRY_ROW_COLUMNS} FROM entries e JOIN records r "
                    f"ON r.num = e.record_num WHERE e.id IN ({marks})", chunk):
                result[row[0]] = _entry_row(row)
        return result

    def item_entries(self, record_id: str, item: int | None = None) -> list[EntryRow]:
        """The stored hashes of a record (or one item of it)."""
        conn = self.reader()
        query = ("SELECT e.id FROM entries e JOIN records r ON r.num = e.record_num "
                 "WHERE r.id_key=? AND r.id=?")
        params: list[Any] = [id_key(record_id), record_id]
        if item is not None:
            query += " AND e.item=?"
            params.append(item)
        ids = [r[0] for r in conn.execute(query, params)]
        return sorted(self.entries(ids).values(), key=lambda e: e.entry_id)

    def feedback_counts(self, refs: Iterable[str]) -> dict[str, dict[str, int]]:
        """Latest-verdict counts from the whole federation, per record id or item ref."""
        wanted = list(set(refs))
        counts: dict[str, dict[str, int]] = {}
        conn = self.reader()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for target, verdict, n in conn.execute(
                    f"SELECT target, verdict, COUNT(*) FROM feedback WHERE target IN ({marks}) "
                    "GROUP BY target, verdict", chunk):
                counts.setdefault(target, {})[verdict] = n
        return counts

    def feedback_verdicts(self, refs: Iterable[str]) -> dict[str, dict[str, str]]:
        """Each origin's standing (latest) verdict, per record id or item ref."""
        wanted = list(set(refs))
        verdicts: dict[str, dict[str, str]] = {}
        conn = self.reader()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for target, origin, verdict in conn.execute(
                    f"SELECT target, origin, verdict FROM feedback WHERE target IN ({marks})",
                    chunk):
                verdicts.setdefault(target, {})[origin] = verdict
        return verdicts

    def feedback_on_origin(self, origin: str) -> dict[str, dict[str, str]]:
        """``feedback_verdicts`` of every target in one origin's records (for its status).
        Feedback rows are few beside records, so they are read whole and joined here."""
        conn = self.reader()
        rows = conn.execute("SELECT target, origin, verdict FROM feedback").fetchall()
        ours = set()
        for record in {target[:64] for target, _, _ in rows}:
            found = conn.execute("SELECT origin FROM records WHERE id_key=? AND id=?",
                                 (id_key(record), record)).fetchone()
            if found is not None and found[0] == origin:
                ours.add(record)
        verdicts: dict[str, dict[str, str]] = {}
        for target, by, verdict in rows:
            if target[:64] in ours:
                verdicts.setdefault(target, {})[by] = verdict
        return verdicts

    def counts(self) -> dict[str, int]:
        conn = self.reader()

        def scalar(sql: str) -> int:
            return int(conn.execute(sql).fetchone()[0])

        return {
            "records": scalar("SELECT COUNT(*) FROM records"),
            "receipts": scalar("SELECT COUNT(*) FROM records WHERE type='receipt'"),
            "origins": scalar("SELECT COUNT(*) FROM origins WHERE head_seq > 0"),
            "hashes_active": scalar("SELECT COUNT(*) FROM entries WHERE active=1"),
            "hashes_revoked": scalar("SELECT COUNT(*) FROM entries WHERE active=0"),
            "feedback": scalar("SELECT COUNT(*) FROM feedback"),
            "evidence": scalar("SELECT COUNT(*) FROM evidence"),
            "frozen_origins": scalar("SELECT COUNT(*) FROM origins WHERE frozen_seq IS NOT NULL"),
        }

    def alert_state(self) -> tuple[bool, int, int]:
        """(signing blocked, evidence objects, frozen origins): what the alert gauges show.
        Cheap (no scan of the entries), so it can be read on every ``/metrics`` scrape."""
        conn = self.reader()
        blocked = conn.execute("SELECT 1 FROM meta WHERE key='signing_blocked'").fetchone()
        (evidence,) = conn.execute("SELECT COUNT(*) FROM evidence").fetchone()
        (frozen,) = conn.execute(
            "SELECT COUNT(*) FROM origins WHERE frozen_seq IS NOT NULL").fetchone()
        return blocked is not None, int(evidence), int(frozen)

    def evidence(self) -> list[dict[str, Any]]:
        rows = self.reader().execute("SELECT evidence FROM evidence ORDER BY id").fetchall()
        return [json.loads(r[0]) for r in rows]

    def cursor(self, peer: str, origin: str) -> int:
        row = self.reader().execute("SELECT seq FROM cursors WHERE peer=? AND origin=?",
                                    (peer, origin)).fetchone()
        return 0 if row is None else int(row[0])

    def cursors(self) -> list[tuple[str, str, int]]:
        """Every ``(peer, origin, seq)``: how far we have pulled each origin from each peer."""
        rows = self.reader().execute(
            "SELECT peer, origin, seq FROM cursors ORDER BY peer, origin").fetchall()
        return [(peer, origin, seq) for peer, origin, seq in rows]

    # -- receipts (node/store/receipts.py, SPEC §21) -------------------------------------

    def receipts_for(self, record_ids: Sequence[str]) -> list[ReceiptRow]:
        """The receipts held for these records (adds or revokes), from every node."""
        return receipt_rows.rows_for(self.reader(), record_ids)

    def receipts_between(self, start_ms: int, end_ms: int) -> list[ReceiptRow]:
        """The receipts held whose target was applied in ``[start_ms, end_ms)``."""
        return receipt_rows.rows_between(self.reader(), start_ms, end_ms)

    def receipt_nodes(self) -> dict[str, int]:
        """Node origin -> newest local time (ms) anything (a receipt or a record) was
        received from it."""
        return receipt_rows.last_heard(self.reader())

    def receipt_delays(self, since_ms: int, limit: int) -> list[tuple[str, str, int]]:
        """``(node, kind, delay ms)`` of the newest receipts since ``since_ms``."""
        return receipt_rows.delays(self.reader(), since_ms, limit)

    def receipts_waiting(self) -> int:
        """Receipt rows held whose target we do not hold (yet)."""
        return receipt_rows.waiting(self.reader())

    def owed_receipts(self, limit: int, ours: str) -> Owed:
        """The receipts this node still owes (``receipts.owed``)."""
        return receipt_rows.owed(self.reader(), limit, ours)

    def sign_owed_receipts(self, *, signer: SigningKey, origin: str, limit: int
                           ) -> tuple[list[SignedRecord], int] | None:
        """Read what this node owes (``receipts.owed``, at most ``limit`` records), sign it as
        receipt records (one per target origin and distribution, ``protocol.receipts.batch``)
        and mark it signed, in one transaction: neither a crash nor a stub completed meanwhile
        can lose a receipt or sign one twice. Returns the records signed and how many owed
        records were read; None, and nothing signed, while signing is blocked or our origin
        is frozen: what is owed waits."""
        records: list[SignedRecord] = []
        with self.transaction() as conn:
            frozen = conn.execute("SELECT frozen_seq FROM origins WHERE origin=?",
                                  (origin,)).fetchone()
            if (frozen is not None and frozen[0] is not None) or conn.execute(
                    "SELECT 1 FROM meta WHERE key='signing_blocked'").fetchone():
                return None
            owed = receipt_rows.owed(conn, limit, origin)
            head = _head(conn, origin)
            ts = max(now_ms(), 0 if head is None else head.ts)
            for dist, body in batch_receipts(owed.pending):
                # applied <= ts even if our clock stepped back since (SPEC §21.1)
                body = ReceiptBody(tuple(replace(e, applied=min(e.applied, ts))
                                         for e in body.targets), body.salt)
                record = append(head, signer=signer, origin=origin, body=body, now_ms=ts,
                                dist=dist)
                self._insert(conn, record, source="local")
                self._audit(conn, "node", "receipt", {"record": record.id, "seq": record.head.seq,
                                                       "targets": len(body.targets)})
                records.append(record)
                head = LogHead.of(record)
            receipt_rows.set_through(conn, owed.through, owed.late)
        return records, owed.read

    def audit_rows(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` audit rows, newest first."""
        rows = self.reader().execute(
            f"SELECT {AUDIT_COLUMNS} FROM audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [_audit_row(row) for row in rows]

    def audit_page(self, after: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` audit rows with ids above ``after``, oldest first: a page of an
        export (``audit_chain``), each with its ``prev`` and ``hash``."""
        rows = self.reader().execute(
            f"SELECT {AUDIT_COLUMNS} FROM audit WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit)).fetchall()
        return [_audit_row(row) for row in rows]

    def audit_between(self, start_ms: int, end_ms: int,
                      actions: Sequence[str]) -> list[dict[str, Any]]:
        """The audit rows of these actions with ``ts`` in [start, end), oldest first (for
        the transparency report, ``node/reporting``)."""
        marks = ",".join("?" * len(actions))
        rows = self.reader().execute(
            f"SELECT {AUDIT_COLUMNS} FROM audit WHERE ts >= ? AND ts < ? AND action IN "
            f"({marks}) ORDER BY id", (start_ms, end_ms, *actions)).fetchall()
        return [_audit_row(row) for row in rows]

    # -- internals (writer connection, inside a transaction) ---------------------------

    def _insert(self, conn: sqlite3.Connection, record: SignedRecord, source: str) -> Changes:
        changes = Changes()
        writer = _BulkWriter(conn, source, changes)
        writer.insert(record)
        writer.flush()
        _set_head(conn, LogHead.of(record))
        if not isinstance(record.body, AddBody):
            changes.extend(self._apply(conn, record))
        return changes

    def _complete_stub(self, conn: sqlite3.Connection, record: SignedRecord) -> Changes:
        lists, labels = _policy_columns(record.body)
        (num,) = conn.execute(
            "UPDATE records SET raw=?, stub=0, lists=?, labels=?, received_at=? "
            "WHERE id_key=? AND id=? RETURNING num",
            (record.raw, lists, labels, now_ms(), id_key(record.id), record.id)).fetchone()
        receipt_rows.owe_late(conn, int(num))  # applied only now
        if isinstance(record.body, AddBody):
            changes = Changes()
            _insert_entries(conn, [(num, record)], changes)
            return changes
        return self._apply(conn, record)

    def _apply(self, conn: sqlite3.Connection, record: SignedRecord) -> Changes:
        """The derived rows of a revoke, feedback or key record (adds: ``_insert_entries``)."""
        body = record.body
        if isinstance(body, RevokeBody):
            return _apply_revoke(conn, record, body)
        if isinstance(body, FeedbackBody):
            changed = conn.execute(
                "INSERT INTO feedback (origin, target, seq, verdict, note, record) "
                "VALUES (?,?,?,?,?,?) ON CONFLICT(origin, target) DO UPDATE SET "
                "seq=excluded.seq, verdict=excluded.verdict, note=excluded.note, "
                "record=excluded.record WHERE excluded.seq > feedback.seq RETURNING 1",
                (record.head.origin, body.target.ref, record.head.seq, body.verdict, body.note,
                 record.id)).fetchall()
            num = _record_num(conn, record.id) if changed else None
            if num is not None:
                change_log.log_verdict(conn, body.target.ref, num)
        elif isinstance(body, KeyBody):
            conn.execute(
                "INSERT INTO keys (origin, key, authorised_at) VALUES (?,?,?) "
                "ON CONFLICT(origin, key) DO UPDATE SET authorised_at=excluded.authorised_at, "
                "revoked_at=NULL WHERE keys.revoked_at IS NOT NULL",
                (record.head.origin, body.signing_key, record.head.seq))
        elif isinstance(body, ProfileBody):
            conn.execute(
                "INSERT INTO profiles (origin, seq, name, jurisdiction, contact) "
                "VALUES (?,?,?,?,?) ON CONFLICT(origin) DO UPDATE SET seq=excluded.seq, "
                "name=excluded.name, jurisdiction=excluded.jurisdiction, "
                "contact=excluded.contact WHERE excluded.seq > profiles.seq",
                (record.head.origin, record.head.seq, body.name, body.jurisdiction,
                 body.contact))
        elif isinstance(body, KeyRevokeBody):
            conn.execute("UPDATE keys SET revoked_at=? WHERE origin=? AND key=? "
                         "AND revoked_at IS NULL",
                         (record.head.seq, record.head.origin, body.signing_key))
        elif isinstance(body, ReceiptBody):
            return Changes(receipts=receipt_rows.apply_receipt(conn, record, body))
        return Changes()

    def _check_not_frozen(self, conn: sqlite3.Connection, origin: str) -> None:
        row = conn.execute("SELECT frozen_seq FROM origins WHERE origin=?",
                           (origin,)).fetchone()
        if row is not None and row[0] is not None:
            raise OriginFrozenError(
                f"origin {origin} is frozen at seq {row[0]} (equivocation or restored backup); "
                "an operator must resolve it first")

    def _audit_many(self, conn: sqlite3.Connection, actor: str,
                    entries: list[tuple[str, dict[str, Any]]]) -> None:
        now = now_ms()
        _append_audit(conn, [(now, actor, action, json.dumps(detail, sort_keys=True))
                             for action, detail in entries])

    def _audit(self, conn: sqlite3.Connection, actor: str, action: str,
               detail: dict[str, Any]) -> None:
        _append_audit(conn, [(now_ms(), actor, action, json.dumps(detail, sort_keys=True))])

    def _set_cursor(self, conn: sqlite3.Connection, peer: str, origin: str, seq: int) -> None:
        conn.execute(
            "INSERT INTO cursors (peer, origin, seq) VALUES (?,?,?) ON CONFLICT(peer, origin) "
            "DO UPDATE SET seq=MAX(cursors.seq, excluded.seq)", (peer, origin, seq))


AUDIT_COLUMNS = "id, ts, actor, action, detail, prev, hash"


def _audit_row(row: Sequence[Any]) -> dict[str, Any]:
    row_id, ts, actor, action, detail, prev, digest = row
    return {"id": row_id, "ts": ts, "actor": actor, "action": action,
            "detail": json.loads(detail), "prev": prev, "hash": digest}


def _append_audit(conn: sqlite3.Connection, rows: Sequence[AuditRow]) -> None:
    """Append rows to the audit chain (``audit_chain``) inside the caller's transaction.

    The row before is read here, under the write lock the transaction holds (on either
    engine), so rows committed by several processes form one linear chain."""
    last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    chained = chain_rows(rows, *(last if last is not None else (0, None)))
    conn.executemany("INSERT INTO audit (id, ts, actor, action, detail, prev, hash) "
                     "VALUES (?,?,?,?,?,?,?)", chained)


def id_key(record_id: str) -> int:
    """What ``records`` indexes a record id by: its first 60 bits (see ``node/store/schema.py``).

    Any string is accepted (a malformed id from a request gives a key that matches nothing
    it should not: lookups compare the id itself too).
    """
    try:
        return int(record_id[:15], 16)
    except ValueError:
        return -1


def _head(conn: sqlite3.Connection, origin: str) -> LogHead | None:
    row = conn.execute("SELECT head_seq, head_id, head_ts FROM origins WHERE origin=? "
                       "AND head_seq > 0", (origin,)).fetchone()
    return None if row is None else LogHead(origin, row[0], row[1], row[2])


# An ``EntryRow`` as read from ``entries e JOIN records r ON r.num = e.record_num``.
ENTRY_ROW_COLUMNS = ("e.id, r.id, e.item, r.origin, e.hash_type, e.value, e.quality, e.list, "
                     "e.labels, e.tier, e.expires, e.active")


def _entry_row(row: tuple[Any, ...]) -> EntryRow:
    return EntryRow(
        entry_id=row[0], record=row[1], item=row[2], origin=row[3], hash_type=row[4],
        value=row[5], quality=row[6], list=row[7], labels=tuple(json.loads(row[8] or "[]")),
        tier=row[9], expires=row[10], active=bool(row[11]))


def _policy_columns(body: Body | None) -> tuple[str | None, str | None]:
    """The lists and labels a record's body touches, for per-peer filtering of log pages."""
    if not isinstance(body, AddBody):
        return None, None
    if isinstance(body.items, ItemRun):  # one list and labels for all its items
        template = body.items.template
        return _json_array((template.list,)), _json_array(tuple(sorted(set(template.labels))))
    lists = tuple(sorted({item.list for item in body.items}))
    labels = tuple(sorted({label for item in body.items for label in item.labels}))
    return _json_array(lists), _json_array(labels)


def _set_head(conn: sqlite3.Connection, head: LogHead) -> None:
    conn.execute(
        "INSERT INTO origins (origin, head_seq, head_id, head_ts) VALUES (?,?,?,?) "
        "ON CONFLICT(origin) DO UPDATE SET head_seq=excluded.head_seq, "
        "head_id=excluded.head_id, head_ts=excluded.head_ts",
        (head.origin, head.seq, head.id, head.ts))


def _held(conn: sqlite3.Connection,
          records: list[SignedRecord]) -> dict[tuple[str, int], tuple[str, bool]]:
    """``(origin, seq) -> (id, is stub)`` of the records already stored at those positions:
    one range query per origin instead of one lookup per record."""
    seqs: dict[str, list[int]] = {}
    for record in records:
        seqs.setdefault(record.head.origin, []).append(record.head.seq)
    held: dict[tuple[str, int], tuple[str, bool]] = {}
    for origin, wanted in seqs.items():
        for seq, record_id, stub in conn.execute(
                "SELECT seq, id, stub FROM records WHERE origin=? AND seq BETWEEN ? AND ?",
                (origin, min(wanted), max(wanted))):
            # stub 2: a body erased by retention (retention.py), never completed again
            held[(origin, seq)] = (record_id, stub == 1)
    return held


class _BulkWriter:
    """The new rows of one transaction, written in bulk (``_insert_rows``) in runs.

    ``insert`` buffers a record's row and, for an ``add``, its entries. ``flush`` writes the
    buffer; callers flush before anything that must see the rows written so far (a revoke, a
    completed stub), so the outcome is the same as writing record by record.
    """

    def __init__(self, conn: sqlite3.Connection, source: str, changes: Changes) -> None:
        self.conn = conn
        self.source = source
        self.changes = changes
        self.received_at = now_ms()
        self.rows: list[Any] = []  # RECORD_COLUMNS values a record, one after the other
        self.adds: list[tuple[int, SignedRecord]] = []  # (records.num, record)
        self.next_num = 0  # records.num of the next insert; read when first needed

    def insert(self, record: SignedRecord) -> None:
        if not self.next_num:
            self.next_num = int(self.conn.execute(
                "SELECT COALESCE(MAX(num), 0) FROM records").fetchone()[0]) + 1
        num, self.next_num = self.next_num, self.next_num + 1
        head = record.head
        lists, labels = _policy_columns(record.body)
        jurisdictions = head.dist.jurisdictions
        self.rows += (num, record.id, id_key(record.id), head.origin, head.seq, head.type,
                      head.dist.scope, head.dist.group, _json_array(jurisdictions), lists,
                      labels, int(record.is_stub), record.raw, self.received_at, self.source)
        if isinstance(record.body, AddBody):
            self.adds.append((num, record))

    def flush(self) -> None:
        if self.rows:
            _insert_rows(self.conn, "INSERT INTO records (num, id, id_key, origin, seq, type,"
                         " scope, grp, jurisdictions, lists, labels, stub, raw, received_at,"
                         " source)",
                         RECORD_COLUMNS, self.rows)
            self.rows = []
        if self.adds:
            _insert_entries(self.conn, self.adds, self.changes)
            self.adds = []


def _insert_entries(conn: sqlite3.Connection, records: list[tuple[int, SignedRecord]],
                    changes: Changes) -> None:
    """One ``entries`` row per hash of these ``add`` records (with their ``records.num``),
    active unless already revoked. ``changes`` gets the hashes in force: active and not yet
    expired (an item that expired before it arrived never enters the matcher; later expiries
    are the sweep's, ``Matching.sweep_expired``).

    Entry ids are assigned here (the next rowids, as SQLite would) so that the rows can be
    written in bulk. Revocations are looked up per record, and only for origins that have any.
    On SQLite, a record whose items differ only in their one hash's value (a bulk add's) is
    one statement that SQLite expands from a JSON array of the values (``_ENTRY_RUN_SQL``):
    no parameters to bind a row (~3.4 -> ~1.5 µs a hash), the same rows.
    """
    next_id = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM entries").fetchone()[0]) + 1
    revoking = {origin for origin in {r.head.origin for _, r in records} if conn.execute(
        "SELECT 1 FROM revoked WHERE origin=? LIMIT 1", (origin,)).fetchone()}
    runs_allowed = isinstance(conn, sqlite3.Connection)  # PostgreSQL: rows as always
    now = now_ms()
    rows: list[Any] = []  # ENTRY_COLUMNS values a hash, one hash after the other
    logged: list[change_log.AddedRun] = []  # the change log's items
    hash_type = ""  # the added columns of the last hash type seen:
    ids: list[int] = []
    values: list[str] = []
    for num, record in records:
        body = record.body
        assert isinstance(body, AddBody)
        origin, record_id = record.head.origin, record.id
        revoked = _revoked_refs(conn, origin, record_id) if origin in revoking else set()
        uniform = _uniform_values(body.items) if runs_allowed and not revoked else None
        if uniform is not None:
            run_type, run_values = uniform
            first, count = body.items[0], len(run_values)
            conn.execute(_ENTRY_RUN_SQL, (next_id, num, run_type, first.list,
                                          _json_array(first.labels), first.tier,
                                          first.expires, json.dumps(run_values)))
            logged.append((num, 0, count, first.list, True, first.expires))
            if first.expires is None or first.expires > now:
                if run_type != hash_type:
                    hash_type = run_type
                    ids, values = changes.added.setdefault(hash_type, ([], []))
                ids += range(next_id, next_id + count)
                values += run_values
            next_id += count
            continue
        for index, item in enumerate(body.items):
            active = not revoked or (record_id not in revoked
                                     and f"{record_id}/{index}" not in revoked)
            in_force = active and (item.expires is None or item.expires > now)
            labels = _json_array(item.labels)
            logged.append((num, index, 1, item.list, active, item.expires))
            for entry in item.hashes:
                rows += (next_id, num, index, entry.type, entry.value, entry.quality,
                         item.list, labels, item.tier, item.expires, int(active))
                if in_force:
                    if entry.type != hash_type:
                        hash_type = entry.type
                        ids, values = changes.added.setdefault(hash_type, ([], []))
                    ids.append(next_id)
                    values.append(entry.value)
                next_id += 1
    if rows:
        _insert_rows(conn, "INSERT INTO entries (id, record_num, item, hash_type, value, "
                     "quality, list, labels, tier, expires, active)", ENTRY_COLUMNS, rows)
    change_log.log_added(conn, logged)


_ENTRY_RUN_SQL = ("INSERT INTO entries (id, record_num, item, hash_type, value, quality, list, "
                  "labels, tier, expires, active) "
                  "SELECT ? + key, ?, key, ?, value, NULL, ?, ?, ?, ?, 1 FROM json_each(?)")


def _uniform_values(items: Sequence[Item]) -> tuple[str, list[str]] | None:
    """The hash type and the values of ``items`` if each has one hash, of that type, without
    a quality, and all share list, labels, tier and expiry; else ``None``. An ``ItemRun``
    (a bulk add read as one column) is such items by construction."""
    if isinstance(items, ItemRun):
        return items.hash_type, items.values
    first = items[0]
    kind = first.hashes[0].type
    shared = (first.list, first.labels, first.tier, first.expires)
    values = []
    for item in items:
        hashes = item.hashes
        if (len(hashes) != 1 or hashes[0].type != kind or hashes[0].quality is not None
                or (item.list, item.labels, item.tier, item.expires) != shared):
            return None
        values.append(hashes[0].value)
    return kind, values


# Rows per multi-row INSERT (capped by SQLite's parameter limit). One statement is one
# sqlite3_step, which releases the GIL for all its rows; ``executemany`` takes the GIL back
# after every row and, while another thread runs Python (the next page's verification), waits
# up to the interpreter's switch interval (5 ms) each time: a sync page took seconds.
MAX_ROWS_PER_INSERT = 4096
RECORD_COLUMNS = 15
ENTRY_COLUMNS = 11


def _insert_rows(conn: sqlite3.Connection, insert: str, width: int, values: list[Any]) -> None:
    """``insert`` (``INSERT INTO t (columns)``) of rows of ``width`` columns, given one after
    the other in ``values``, with a few statements for them all.

    Statements hold ``MAX_ROWS_PER_INSERT`` rows or a power of two fewer, so a handful of
    prepared statements serve every batch size from the connection's statement cache.
    """
    rows = len(values) // width
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width
    size = 1 << (min(MAX_ROWS_PER_INSERT, limit).bit_length() - 1)
    start = 0
    while start < rows:
        while size > rows - start:
            size //= 2
        conn.execute(_values_sql(insert, width, size),
                     values[start * width:(start + size) * width])
        start += size


@lru_cache(maxsize=64)
def _values_sql(insert: str, width: int, count: int) -> str:
    group = "(" + ",".join("?" * width) + ")"
    return f"{insert} VALUES {','.join([group] * count)}"


def _revoked_refs(conn: sqlite3.Connection, origin: str, record_id: str) -> set[str]:
    """The revoked refs of one record: the record itself and ``<id>/<item>`` refs, which sort
    between the id and the id followed by ``0`` (``/`` comes just before ``0``)."""
    rows = conn.execute("SELECT ref FROM revoked WHERE origin=? AND ref >= ? AND ref < ?",
                        (origin, record_id, record_id + "0"))
    return {ref for (ref,) in rows}


@lru_cache(maxsize=4096)
def _json_array(values: tuple[str, ...]) -> str:
    """JSON text of a few strings (labels, lists, jurisdictions): the same few over and over."""
    return json.dumps(list(values))


def _apply_revoke(conn: sqlite3.Connection, record: SignedRecord, body: RevokeBody) -> Changes:
    changes = Changes()
    origin = record.head.origin
    for target in body.targets:
        conn.execute("INSERT OR IGNORE INTO revoked (origin, ref, revoke_record, reason) "
                     "VALUES (?,?,?,?)", (origin, target.ref, record.id, body.reason))
        query = ("UPDATE entries SET active=0 WHERE record_num=(SELECT num FROM records "
                 "WHERE id_key=? AND id=? AND origin=?) AND active=1")
        params: list[Any] = [id_key(target.record), target.record, origin]
        if target.item is not None:
            query += " AND item=?"
            params.append(target.item)
        rows = conn.execute(query + " RETURNING id, record_num, item, list", params).fetchall()
        changes.removed.extend(r[0] for r in rows)
        items = sorted({(num, item, name) for _, num, item, name in rows})
        if items:
            change_log.log_items(conn, "revoke", items, _record_num(conn, record.id))
    return changes


def _record_num(conn: sqlite3.Connection, record_id: str) -> int | None:
    row = conn.execute("SELECT num FROM records WHERE id_key=? AND id=?",
                       (id_key(record_id), record_id)).fetchone()
    return None if row is None else int(row[0])


class AsyncStore:
    """Runs ``Store`` writes on one writer thread and reads on a small reader pool."""

    def __init__(self, store: Store, readers: int = 2) -> None:
        self.store = store
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._readers = ThreadPoolExecutor(max_workers=readers,
                                           thread_name_prefix="store-reader")
        self._audit_queue: list[AuditRow] = []
        self._audit_timer: asyncio.TimerHandle | None = None

    def audit_later(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        """Queue an audit row; it is committed with the rows queued near it, at most
        ``AUDIT_FLUSH_SECONDS`` later. The row keeps the time of the event. For frequent
        events (matches) whose answer should not wait for a transaction of its own."""
        self._audit_queue.append((now_ms(), actor, action, json.dumps(detail, sort_keys=True)))
        if self._audit_timer is None:
            self._audit_timer = asyncio.get_running_loop().call_later(
                AUDIT_FLUSH_SECONDS, self._flush_audit)

    async def flush_audit(self) -> None:
        """Commit the queued audit rows now (tests, shutdown)."""
        rows = self._take_audit_rows()
        if rows:
            await asyncio.get_running_loop().run_in_executor(self._writer, self._write_audit,
                                                             rows)

    def _take_audit_rows(self) -> list[AuditRow]:
        if self._audit_timer is not None:
            self._audit_timer.cancel()
            self._audit_timer = None
        rows, self._audit_queue = self._audit_queue, []
        return rows

    def _flush_audit(self) -> None:
        self._audit_timer = None
        self._writer.submit(self._write_audit, self._take_audit_rows())

    def _write_audit(self, rows: list[AuditRow]) -> None:
        """Commit queued rows; a database busy with another process's write (the node's
        signing, another match worker's flush) is waited for a few times, not given up on."""
        failure: Exception | None = None
        for attempt in range(AUDIT_ATTEMPTS):
            try:
                self.store.audit_many(rows)
                return
            except sqlite3.OperationalError as exc:
                failure = exc
                if "locked" not in str(exc) and "busy" not in str(exc):
                    break
                log.warning("audit rows wait for a busy database (try %d of %d)",
                            attempt + 1, AUDIT_ATTEMPTS)
                time.sleep(0.2 * (attempt + 1))
            except Exception as exc:
                failure = exc
                break
        # keep the rows in the log rather than lose them silently
        log.error("audit rows NOT committed: %s", json.dumps(rows), exc_info=failure)

    async def write(self, fn: Callable[[Store], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._writer, fn,
                                                                    self.store)
        except sqlite3.OperationalError as exc:
            if "full" in str(exc) or "I/O error" in str(exc):
                raise StorageError(f"the database cannot be written: {exc}") from exc
            raise

    async def read(self, fn: Callable[[Store], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._readers, fn, self.store)

    def close(self) -> None:
        rows = self._take_audit_rows()
        if rows:
            self._writer.submit(self._write_audit, rows)
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self.store.close()
