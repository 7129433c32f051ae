"""The receipts a store holds, and the receipts this node still owes (SPEC §21).

Derived tables, written in the transaction of the record that changes them:

* ``receipts``: one row per (signing node, target record, kind) of every ``receipt`` record
  whose body we hold, ours or relayed. ``target_ts`` is the target's ``head.ts``, filled when
  the target is held (at once, or when it arrives later: state does not depend on order);
  rows whose target we do not hold are kept but not reported.
* ``receipt_counts``: rows per signing node, so that a flood is refused in constant time.
* ``receipts_late``: records whose body arrived (a stub completed by body repair) after the
  mark below had passed them, owed from then on.

The receipts this node owes are read from ``records`` itself: every add or revoke of another
origin that it stored with its body, after ``meta.receipts_through`` (the ``records.num``
up to which receipts are signed), and the late ones. Reading what is owed, signing the
receipts and advancing that mark (emptying the late list) are one transaction
(``Store.sign_owed_receipts``), so neither a crash nor a stub completed meanwhile can lose a
receipt or sign one twice. The mark starts where
the records stood when the tables were made: a node upgraded to receipts does not receipt
its whole history at once, only what it applies from then on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hashmesh.node.store.changes import id_key
from hashmesh.protocol import canonical
from hashmesh.protocol.distribution import distribution_for_feedback
from hashmesh.protocol.errors import ProtocolError, SchemaError
from hashmesh.protocol.receipts import KIND_OF_TYPE, Applied, check_receipt
from hashmesh.protocol.records import Head, ReceiptBody, ReceiptEntry, SignedRecord

THROUGH_KEY = "receipts_through"
# A signer may hold receipt rows for twice the records we hold of other origins (an active and
# a removed receipt each) plus this many whose targets have not arrived yet.
UNKNOWN_TARGET_SLACK = 100_000


class ReceiptFloodError(ProtocolError):
    """A receipt record that only repeats receipts its signer already signed, or that takes the
    signer's receipts beyond what the records we hold could explain (SPEC §21.4)."""

    code = "RECEIPT_FLOOD"


@dataclass(frozen=True)
class ReceiptRow:
    """One target of one receipt, as stored (INTERFACES.md part A)."""

    node: str        # origin key id of the node that signed the receipt
    target: str      # id of the record the receipt covers (an add or a revoke)
    kind: str        # "active" (the add matches there) or "removed" (the revoke is applied)
    applied_ms: int  # that node's clock when it applied the target
    target_ts: int   # head.ts of the target record; time-to-X = applied_ms - target_ts
    receipt: str     # id of the receipt record


SQLITE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS receipts (node TEXT NOT NULL, target TEXT NOT NULL, "
    "kind TEXT NOT NULL, applied_ms INTEGER NOT NULL, target_ts INTEGER, "
    "receipt TEXT NOT NULL, PRIMARY KEY (node, target, kind))",
    "CREATE INDEX IF NOT EXISTS receipts_by_target ON receipts (target)",
    "CREATE INDEX IF NOT EXISTS receipts_by_applied ON receipts (applied_ms)",
    "CREATE INDEX IF NOT EXISTS receipts_waiting ON receipts (target) WHERE target_ts IS NULL",
    "CREATE TABLE IF NOT EXISTS receipt_counts (node TEXT PRIMARY KEY, rows INTEGER NOT NULL)",
    # records whose body arrived (a stub completed by repair) after the mark had passed them
    "CREATE TABLE IF NOT EXISTS receipts_late (num INTEGER PRIMARY KEY)",
    # owed from the first start that knows receipts: a new database from its first record, a
    # database of an older node from the records it receives after the upgrade
    "INSERT OR IGNORE INTO meta (key, value) SELECT 'receipts_through', "
    "CAST(COALESCE(MAX(num), 0) AS TEXT) FROM records",
)

ROW_COLUMNS = "node, target, kind, applied_ms, target_ts, receipt"


def create_tables(conn: Any) -> None:
    """Create the tables on SQLite (PostgreSQL: ``pg_dialect.SCHEMA``). No backfill: no
    receipt record existed before these tables."""
    for statement in SQLITE_SCHEMA:
        conn.execute(statement)


# The end of a stored record that holds its whole head and signature (a head is at most ~700
# bytes: two key ids, prev, digest, a group and 32 jurisdictions): reading only this, rather
# than an add of up to 64 KiB, keeps receipts cheap beside a sync.
TAIL_BYTES = 2048
TAIL_SQL = f"substr(raw, MAX({TAIL_BYTES}, length(raw)) - {TAIL_BYTES} + 1)"


def head_of(raw: bytes) -> Head:
    """The head of stored canonical bytes (or of their tail, ``TAIL_SQL``), without parsing
    the body: in an envelope the head is the last object before ``sig``, and no body holds an
    unescaped ``"head":``."""
    start = raw.rfind(b'"head":') + 7
    end = raw.rfind(b',"sig":')
    return Head.from_json(canonical.parse(raw[start:end]), "record.head")


def _held_heads(conn: Any, record_ids: Iterable[str]) -> dict[str, Head]:
    held: dict[str, Head] = {}
    for record_id in record_ids:
        row = conn.execute(f"SELECT {TAIL_SQL} FROM records WHERE id_key=? AND id=?",
                           (id_key(record_id), record_id)).fetchone()
        if row is not None:
            held[record_id] = head_of(bytes(row[0]))
    return held


def apply_receipt(conn: Any, record: SignedRecord,
                  body: ReceiptBody) -> list[tuple[str, str, int]]:
    """Store the rows of a receipt whose body we hold, after checking it against the targets
    we hold (``check_receipt``, a ``SchemaError``) and against flooding
    (``ReceiptFloodError``); either refuses the record, and the page it came in.

    Returns ``(node, kind, applied_ms - target ts)`` of each new row whose target we hold,
    for the propagation histograms."""
    node = record.head.origin
    held = _held_heads(conn, (entry.record for entry in body.targets))
    check_receipt(record.head, body, held)
    inserted = 0
    delays: list[tuple[str, str, int]] = []
    for entry in body.targets:
        target = held.get(entry.record)
        if conn.execute(
                "INSERT INTO receipts (node, target, kind, applied_ms, target_ts, receipt) "
                "VALUES (?,?,?,?,?,?) ON CONFLICT (node, target, kind) DO NOTHING RETURNING 1",
                (node, entry.record, entry.kind, entry.applied,
                 None if target is None else target.ts, record.id)).fetchone():
            inserted += 1
            if target is not None:
                delays.append((node, entry.kind, entry.applied - target.ts))
    if not inserted:
        raise ReceiptFloodError(f"receipt seq {record.head.seq} of {node} only repeats "
                                "receipts it signed before", "record.body.targets")
    (total,) = conn.execute(
        "INSERT INTO receipt_counts (node, rows) VALUES (?, ?) ON CONFLICT (node) DO UPDATE "
        "SET rows = receipt_counts.rows + excluded.rows RETURNING rows",
        (node, inserted)).fetchone()
    (records,) = conn.execute("SELECT COALESCE(MAX(num), 0) FROM records").fetchone()
    limit = 2 * int(records) + UNKNOWN_TARGET_SLACK
    if int(total) > limit:
        raise ReceiptFloodError(f"{node} would hold {total} receipt rows here, more than the "
                                f"{limit} the records held could explain", "record.body.targets")
    return delays


def targets_arrived(conn: Any, arrived: Sequence[tuple[str, str, int]]) -> None:
    """Fill ``target_ts`` of receipt rows that waited for these ``(id, type, ts)`` records.

    Only a row whose kind fits the record's type is completed: a receipt that claimed a
    revoke was active stays unreported (it could not be refused: it came first)."""
    if not arrived or conn.execute(
            "SELECT 1 FROM receipts WHERE target_ts IS NULL LIMIT 1").fetchone() is None:
        return
    for record_id, record_type, ts in arrived:
        kind = KIND_OF_TYPE.get(record_type)
        if kind is not None:
            conn.execute("UPDATE receipts SET target_ts=? WHERE target=? AND kind=? AND "
                         "target_ts IS NULL", (ts, record_id, kind))


def rows_for(conn: Any, record_ids: Sequence[str]) -> list[ReceiptRow]:
    rows: list[ReceiptRow] = []
    ids = list(dict.fromkeys(record_ids))
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows += _rows(conn.execute(
            f"SELECT {ROW_COLUMNS} FROM receipts WHERE target IN "
            f"({','.join('?' * len(chunk))}) AND target_ts IS NOT NULL "
            "ORDER BY target, node, kind", chunk))
    return rows


def rows_between(conn: Any, start_ms: int, end_ms: int) -> list[ReceiptRow]:
    return _rows(conn.execute(
        f"SELECT {ROW_COLUMNS} FROM receipts WHERE applied_ms >= ? AND applied_ms < ? "
        "AND target_ts IS NOT NULL ORDER BY applied_ms, node, target", (start_ms, end_ms)))


def delays(conn: Any, since_ms: int, limit: int) -> list[tuple[str, str, int]]:
    """``(node, kind, applied_ms - target_ts)`` of the newest ``limit`` receipt rows applied
    since ``since_ms`` whose target we hold: what per-node percentiles are computed from."""
    return [(str(node), str(kind), int(delay)) for node, kind, delay in conn.execute(
        "SELECT node, kind, applied_ms - target_ts FROM receipts WHERE applied_ms >= ? AND "
        "target_ts IS NOT NULL ORDER BY applied_ms DESC LIMIT ?", (since_ms, limit))]


def waiting(conn: Any) -> int:
    """Receipt rows whose target we do not hold (yet): kept, not reported."""
    return int(conn.execute("SELECT COUNT(*) FROM receipts WHERE target_ts IS NULL"
                            ).fetchone()[0])


def _rows(cursor: Any) -> list[ReceiptRow]:
    return [ReceiptRow(str(node), str(target), str(kind), int(applied), int(target_ts),
                       str(receipt))
            for node, target, kind, applied, target_ts, receipt in cursor]


def last_heard(conn: Any) -> dict[str, int]:
    """Origin -> newest local time (ms) a record of it (a receipt or any other) was stored
    from a peer. Our own records (``source = 'local'``) do not count."""
    return {str(origin): int(last) for origin, last in conn.execute(
        "SELECT origin, MAX(received_at) FROM records WHERE source <> 'local' "
        "AND received_at IS NOT NULL GROUP BY origin")}


@dataclass(frozen=True)
class Owed:
    """What ``owed`` read: ``read`` records up to ``records.num`` ``through`` (and the
    completed stubs ``late``, by ``records.num``), and the receipts they call for
    (``pending``; fewer when some need none)."""

    through: int
    read: int
    pending: list[Applied]
    late: tuple[int, ...] = ()


def owed(conn: Any, limit: int, ours: str) -> Owed:
    """The receipts this node owes, oldest first, at most ``limit`` records read.

    An add none of whose items is active when its receipt is due (revoked or expired by then)
    gets none; nor does a stub (nothing was applied), nor a record of our own origin ``ours``
    (pulled back from a peer after a restore). A stub completed after the mark passed it
    (``owe_late``) is owed then, from when its body arrived."""
    row = conn.execute("SELECT value FROM meta WHERE key=?", (THROUGH_KEY,)).fetchone()
    last = 0 if row is None else int(row[0])
    pending: list[Applied] = []
    late = tuple(int(num) for (num,) in conn.execute(
        "SELECT num FROM receipts_late ORDER BY num LIMIT ?", (limit,)))
    late_rows = [row for num in late for row in conn.execute(
        f"SELECT num, id, {TAIL_SQL}, received_at, type FROM records WHERE num = ? AND "
        + _OWED_SQL, (num,))]
    rows = late_rows + conn.execute(
        f"SELECT num, id, {TAIL_SQL}, received_at, type FROM records WHERE num > ? AND "
        + _OWED_SQL + " ORDER BY num LIMIT ?", (last, limit - len(late))).fetchall()
    for num, record_id, raw, received_at, record_type in rows:
        if num > last:
            last = int(num)
        head = head_of(bytes(raw))
        if head.origin == ours:
            continue
        if record_type == "add" and conn.execute(
                "SELECT 1 FROM entries WHERE record_num=? AND active=1 AND (expires IS NULL "
                "OR expires > ?) LIMIT 1", (num, received_at)).fetchone() is None:
            continue
        try:
            dist = distribution_for_feedback(SignedRecord.assemble(head, None, bytes(64)))
        except SchemaError:
            continue  # a v1 group name without an id: no receipt rather than a wider one
        pending.append(Applied(head.origin, dist, ReceiptEntry(
            str(record_id), KIND_OF_TYPE[head.type], int(received_at))))
    # late nums are at or below the mark (``owe_late``), so the two reads never overlap
    return Owed(last, len(rows) - len(late_rows) + len(late), pending, late)


_OWED_SQL = "source <> 'local' AND stub = 0 AND type IN ('add', 'revoke')"


def set_through(conn: Any, num: int, late: Sequence[int] = ()) -> None:
    """Mark receipts owed up to ``records.num`` ``num``, and the ``late`` ones, as signed."""
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                 "SET value=excluded.value", (THROUGH_KEY, str(num)))
    if late:
        conn.executemany("DELETE FROM receipts_late WHERE num = ?", [(num,) for num in late])


def owe_late(conn: Any, num: int) -> None:
    """A stub at ``records.num`` ``num`` got its body: owe its receipt even if the mark has
    passed it (while it was a stub there was nothing to receipt). Runs in the completing
    write transaction, so it is ordered with ``sign_owed_receipts``'s."""
    row = conn.execute("SELECT value FROM meta WHERE key=?", (THROUGH_KEY,)).fetchone()
    if row is not None and num <= int(row[0]):
        conn.execute("INSERT INTO receipts_late (num) VALUES (?) ON CONFLICT (num) DO NOTHING",
                     (num,))
