"""The change log: what changed in the lists this node holds, numbered in commit order.

Why a table of its own. A consumer of the change feed (``GET /v1/changes``, the
python-threatexchange extension, TAXII) keeps a cursor and asks "everything after N". That
number must follow commit order, never be reused and survive restarts, so that a cursor
neither skips nor repeats a change. ``records.num`` is commit-ordered, but a stub completed by
its body later gets its hashes under its old number, and revocations, expiries and verdicts
change items that were numbered long before. So each change of an *item* (one ``add`` item:
its hashes, list, labels) gets a row here, written in the same transaction as the write that
makes it::

    seq         INTEGER PRIMARY KEY: the cursor; rows are never deleted, so it only grows
    kind        add | revoke | expire | verdict
    record_num  the add record of the item (``records.num``), item: its index
    list        the item's list (the feed filters on it through ``changes(list, seq)``)
    ts          when the change was committed, in microseconds, strictly increasing with seq
                (the clock, or one more than the row before): TAXII's ``added_after`` is
                then a cursor as exact as ``seq``
    ref_num     revoke and verdict: ``records.num`` of the record that made the change

An item that arrives already revoked (a stub completed after its revocation) is logged as
``add`` then ``revoke`` in one transaction. Expiries are written by ``log_expiries`` (the
node's expiry sweep) for items whose ``expires`` passed since the last sweep; the watermark
is kept in ``meta`` (``changes_expired_through``), so an expiry is logged once, even across
restarts. An item that arrives after its expiry time is logged as ``add`` then ``expire``.

The table is added to an existing schema version 2 database when the node opens it, and
filled from the rows already there (``backfill``) in that transaction, so no migration step
is needed and no database is refused. A node of an older release would not write change
rows: a node that finds its newest item missing from the log says so in its log at start;
drop the log (``DROP TABLE changes``) and the node rebuilds it at its next start (feed
consumers then start again from cursor 0).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

log = logging.getLogger("hashmesh.store")

CHANGE_KINDS = ("add", "revoke", "expire", "verdict")
EXPIRED_THROUGH_KEY = "changes_expired_through"

# item identity and the columns a change row needs: (record_num, item, list)
ItemKey = tuple[int, int, str]


def create_changes_table(conn: sqlite3.Connection) -> None:
    """Create the change log if it is missing, and fill it from the rows already stored."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='changes'"
                          ).fetchone()
    if exists:
        _check_complete(conn)
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE changes (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
            "record_num INTEGER NOT NULL, item INTEGER NOT NULL, list TEXT NOT NULL, "
            "ts INTEGER NOT NULL, ref_num INTEGER)")
        conn.execute("CREATE INDEX changes_by_list ON changes (list, seq)")
        conn.execute("CREATE INDEX changes_by_item ON changes (record_num, item, seq)")
        backfill(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _check_complete(conn: sqlite3.Connection) -> None:
    """Say so if the newest stored item has no ``add`` in the log: a release without the log
    wrote to this database, and followers of the feed would miss what it wrote."""
    newest = conn.execute("SELECT record_num, item FROM entries ORDER BY id DESC LIMIT 1"
                          ).fetchone()
    if newest is not None and not conn.execute(
            "SELECT 1 FROM changes WHERE record_num = ? AND item = ? AND kind = 'add'",
            newest).fetchone():
        log.error("ALERT: the change log (GET /v1/changes, TAXII, the pytx extension) misses "
                  "items written by a release without it; stop the node, run `DROP TABLE "
                  "changes` on the database and start it: the log is rebuilt, and feed "
                  "consumers must start again from cursor 0")


def backfill(conn: sqlite3.Connection) -> None:
    """Log the items already stored: an ``add`` each in entry order, then a ``revoke`` for
    the revoked ones and a ``verdict`` per feedback held. Expiries are left to the next sweep
    (the watermark starts at 0 and lives in ``meta`` only once a sweep moved it). A new, empty
database logs nothing here."""
    conn.execute(
        "INSERT INTO changes (kind, record_num, item, list, ts) "
        "SELECT 'add', e.record_num, e.item, e.list, r.received_at * 1000 FROM entries e "
        "JOIN records r ON r.num = e.record_num "
        "WHERE e.id = (SELECT MIN(id) FROM entries f WHERE f.record_num = e.record_num "
        "AND f.item = e.item) ORDER BY e.id")
    conn.execute(
        "INSERT INTO changes (kind, record_num, item, list, ts) "
        "SELECT 'revoke', e.record_num, e.item, e.list, r.received_at * 1000 FROM entries e "
        "JOIN records r ON r.num = e.record_num WHERE e.active = 0 "
        "AND e.id = (SELECT MIN(id) FROM entries f WHERE f.record_num = e.record_num "
        "AND f.item = e.item) ORDER BY e.id")
    for target, record_id in conn.execute("SELECT target, record FROM feedback").fetchall():
        row = conn.execute("SELECT num FROM records WHERE id_key = ? AND id = ?",
                           (id_key(record_id), record_id)).fetchone()
        if row is not None:
            log_verdict(conn, target, row[0])
    # receive times can repeat or go back (a clock step): make them strictly increasing
    last = 0
    fixes = []
    for seq, ts in conn.execute("SELECT seq, ts FROM changes ORDER BY seq"):
        if ts is None or ts <= last:
            ts = last + 1
            fixes.append((ts, seq))
        last = ts
    conn.executemany("UPDATE changes SET ts = ? WHERE seq = ?", fixes)


def _stamps(conn: sqlite3.Connection) -> int:
    """The ``ts`` of the next change row: now, or one microsecond after the last row's."""
    row = conn.execute("SELECT ts FROM changes ORDER BY seq DESC LIMIT 1").fetchone()
    return max(time.time_ns() // 1000, (row[0] + 1) if row else 0)


def log_items(conn: sqlite3.Connection, kind: str, items: Iterable[ItemKey],
              ref_num: int | None = None) -> None:
    """Append one change row per item, in the order given."""
    keys = list(items)
    if keys:
        _write_keys(conn, kind, keys, _stamps(conn), ref_num)


def _write_keys(conn: sqlite3.Connection, kind: str, keys: list[ItemKey], first: int,
                ref_num: int | None) -> None:
    values: list[Any] = []
    for i, (num, item, list_name) in enumerate(keys):
        values += (kind, num, item, list_name, first + i, ref_num)
    rows, start, size = len(keys), 0, ROWS_PER_INSERT
    while start < rows:  # a few multi-row INSERTs (see sqlite._insert_rows for why)
        while size > rows - start:
            size //= 2
        conn.execute(_insert_sql(size), values[start * 6:(start + size) * 6])
        start += size


# Rows per INSERT statement: one statement is one sqlite3_step, which keeps the GIL released
# for all its rows; ``executemany`` takes it back after every row, and waits for it whenever
# another thread (a sync's verifier) runs Python.
ROWS_PER_INSERT = 1024
# A run of at least this many items of one record is logged by one statement that SQLite
# expands itself (``_RUN_SQL``): no parameters to bind a row. ~2.0 -> ~1.2 µs an item.
RUN_ROWS = 16
_RUN_SQL = ("INSERT INTO changes (kind, record_num, item, list, ts, ref_num) "
            "SELECT ?, ?, ? + key, ?, ? + key, ? FROM json_each(?)")


@lru_cache(maxsize=16)
def _insert_sql(count: int) -> str:
    return ("INSERT INTO changes (kind, record_num, item, list, ts, ref_num) VALUES "
            + ",".join(["(?,?,?,?,?,?)"] * count))


@lru_cache(maxsize=64)
def _series(count: int) -> str:
    """``[0,1,...,count-1]``: what ``json_each`` expands into a run's rows."""
    return "[" + ",".join(map(str, range(count))) + "]"


# Items of add records just written, in runs: (record_num, first item, count, list, active,
# expires), the items first .. first+count-1 of one record sharing the last four.
AddedRun = tuple[int, int, int, str, bool, int | None]


def log_added(conn: sqlite3.Connection, runs: list[AddedRun]) -> None:
    """The items of add records just written, in order, as runs (``AddedRun``).

    An item written inactive (revoked before its body arrived) is followed by its ``revoke``;
    one written after its expiry time was swept past, by its ``expire``. On SQLite a long run
    is one statement (``_RUN_SQL``); the rows are those one row per item would give.
    """
    if not runs:
        return
    first = _stamps(conn)
    expand = not isinstance(conn, sqlite3.Connection)  # PostgreSQL: rows as always
    pending: list[ItemKey] = []
    for num, start, count, list_name, _, _ in runs:
        if expand or count < RUN_ROWS:
            pending += [(num, start + i, list_name) for i in range(count)]
            continue
        if pending:
            _write_keys(conn, "add", pending, first, None)
            first += len(pending)
            pending = []
        conn.execute(_RUN_SQL, ("add", num, start, list_name, first, None, _series(count)))
        first += count
    if pending:
        _write_keys(conn, "add", pending, first, None)
    log_items(conn, "revoke", [(num, start + i, name) for num, start, count, name, active, _
                               in runs if not active for i in range(count)])
    if any(expires is not None for *_, expires in runs):
        through = expired_through(conn)
        log_items(conn, "expire", [
            (num, start + i, name) for num, start, count, name, active, expires in runs
            if active and expires is not None and expires <= through for i in range(count)])


def log_verdict(conn: sqlite3.Connection, target: str, feedback_num: int) -> None:
    """A verdict on ``target`` (a record id or ``<id>/<item>``): one row per item it covers
    that this node holds; feedback on a record this node does not hold changes no list."""
    record_id, _, item = target.partition("/")
    query = ("SELECT DISTINCT e.record_num, e.item, e.list FROM entries e JOIN records r "
             "ON r.num = e.record_num WHERE r.id_key = ? AND r.id = ?")
    params: list[Any] = [id_key(record_id), record_id]
    if item:
        query += " AND e.item = ?"
        params.append(int(item))
    items = conn.execute(query + " ORDER BY e.item", params).fetchall()
    log_items(conn, "verdict", items, feedback_num)


def id_key(record_id: str) -> int:
    """The records index key of a record id (the same as ``sqlite.id_key``, which imports
    this module): its first 60 bits, or -1 for a malformed id."""
    try:
        return int(record_id[:15], 16)
    except ValueError:
        return -1


def expired_through(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (EXPIRED_THROUGH_KEY,)).fetchone()
    return 0 if row is None else int(row[0])


def log_expiries(conn: sqlite3.Connection, until: int) -> int:
    """Log an ``expire`` for each active item whose ``expires`` is in (watermark, until], in
    expiry order, and move the watermark to ``until``. Run inside a write transaction."""
    after = expired_through(conn)
    if until <= after:
        return 0
    rows = conn.execute(
        "SELECT record_num, item, list FROM entries WHERE active = 1 "
        "AND expires IS NOT NULL AND expires > ? AND expires <= ? "
        "GROUP BY record_num, item, list ORDER BY MIN(expires), record_num, item",
        (after, until)).fetchall()
    log_items(conn, "expire", rows)
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                 (EXPIRED_THROUGH_KEY, str(until)))
    return len(rows)


def last_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT MAX(seq) FROM changes").fetchone()
    return int(row[0] or 0)


def changes_after(conn: sqlite3.Connection, after: int, limit: int,
                  lists: tuple[str, ...] | None) -> list[tuple[Any, ...]]:
    """Up to ``limit`` change rows after ``after`` (in one list set, if given), each with its
    item's record id, origin and hashes: ``(seq, kind, ts, ref_num, record_id, origin, item,
    list, [(hash_type, value, quality, labels, tier, expires, active), ...], record_num)``;
    ``active`` and ``expires`` are the hashes' state now, not at the change; an item whose
    hashes retention erased (``retention.py``) comes with none.

    One query for the page of changes and one for their hashes, so a page costs the same
    whatever the size of the log.
    """
    if lists:
        marks = ",".join("?" * len(lists))
        page = conn.execute(
            f"SELECT seq, kind, ts, ref_num, record_num, item, list FROM changes "
            f"WHERE list IN ({marks}) AND seq > ? ORDER BY seq LIMIT ?",
            (*lists, after, limit)).fetchall()
    else:
        page = conn.execute(
            "SELECT seq, kind, ts, ref_num, record_num, item, list FROM changes "
            "WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)).fetchall()
    if not page:
        return []
    nums = sorted({row[4] for row in page})
    # only the page's items: a short page of a record of 256 items reads a few of its rows
    items = sorted({row[5] for row in page})
    item_marks = ",".join("?" * len(items))
    hashes: dict[tuple[int, int], list[tuple[Any, ...]]] = {}
    records: dict[int, tuple[str, str]] = {}
    for start in range(0, len(nums), 500):
        chunk = nums[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for num, record_id, origin in conn.execute(
                f"SELECT num, id, origin FROM records WHERE num IN ({marks})", chunk):
            records[num] = (record_id, origin)
        for num, item, *rest in conn.execute(
                f"SELECT record_num, item, hash_type, value, quality, labels, tier, expires, "
                f"active FROM entries WHERE record_num IN ({marks}) AND item IN "
                f"({item_marks}) AND value <> '' ORDER BY id", (*chunk, *items)):
            hashes.setdefault((num, item), []).append(tuple(rest))
    return [(seq, kind, ts, ref_num, *records[num], item, list_name,
             hashes.get((num, item), []), num)
            for seq, kind, ts, ref_num, num, item, list_name in page]


def record_ids(conn: sqlite3.Connection, nums: Iterable[int]) -> dict[int, tuple[str, bytes]]:
    """``records.num -> (id, raw)`` of the revoke and feedback records that made changes."""
    wanted = sorted(set(nums))
    found: dict[int, tuple[str, bytes]] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for num, record_id, raw in conn.execute(
                f"SELECT num, id, raw FROM records WHERE num IN ({marks})", chunk):
            found[num] = (record_id, bytes(raw))
    return found


def seq_at_time(conn: sqlite3.Connection, ts: int) -> int:
    """The last seq whose ``ts`` is at or before ``ts`` (µs), 0 if none: where a reader
    that has seen every change added up to that time resumes. Seqs run 1..max without gaps
    (rows are never deleted) and ``ts`` grows with seq, so a binary search on the primary key
    finds it in ~20 lookups."""
    low, high = 0, last_seq(conn)
    while low < high:
        middle = (low + high + 1) // 2
        row = conn.execute("SELECT ts FROM changes WHERE seq = ?", (middle,)).fetchone()
        if row is not None and row[0] <= ts:
            low = middle
        else:
            high = middle - 1
    return low


def item_versions(conn: sqlite3.Connection, nums: Iterable[int]
                  ) -> dict[tuple[int, int], tuple[int, int | None, int | None]]:
    """``(record_num, item) -> (add ts, seq of its first tombstone, its ts)`` for every item
    of these records that has changes: what a TAXII object's versions are made of (the add,
    then a revoked version at the first revoke or expiry)."""
    wanted = sorted(set(nums))
    found: dict[tuple[int, int], tuple[int, int | None, int | None]] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for num, item, kind, seq, ts in conn.execute(
                f"SELECT record_num, item, kind, seq, ts FROM changes WHERE record_num IN "
                f"({marks}) AND kind IN ('add', 'revoke', 'expire') ORDER BY seq", chunk):
            key = (num, item)
            if kind == "add":
                found.setdefault(key, (ts, None, None))
            elif key in found and found[key][1] is None:
                found[key] = (found[key][0], seq, ts)
    return found


def last_verdicts(conn: sqlite3.Connection, nums: Iterable[int]) -> dict[tuple[int, int], int]:
    """``(record_num, item) -> seq`` of the item's latest ``verdict`` change: where a TAXII
    feed shows a quarantine (``node/api/taxii.py``)."""
    wanted = sorted(set(nums))
    found: dict[tuple[int, int], int] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for num, item, seq in conn.execute(
                f"SELECT record_num, item, MAX(seq) FROM changes WHERE record_num IN "
                f"({marks}) AND kind = 'verdict' GROUP BY record_num, item", chunk):
            found[(num, item)] = seq
    return found
