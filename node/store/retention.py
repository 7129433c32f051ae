"""Retention: erase the hashes of withdrawn and expired items once they are old enough.

A withdrawn hash is no longer matched, but a node that keeps it still holds a fingerprint of
someone's intimate image that nobody needs: data protection law says keep it no longer than
necessary. It stays for ``[retention] prune_after_days`` after the revoke was applied here
(``records.received_at`` of the revoke) or after the item's ``expires``, because feed
consumers (``GET /v1/changes``, TAXII, the python-threatexchange extension) learn *which*
hashes to delete from the revoke or expire change, which carries the item's hashes; a
consumer that lags more than that window sees the change without them.

What is erased, in one transaction a batch (``prune_batch``), and what is kept:

* ``entries.value`` becomes ``''`` (the hash is gone); the row stays, with its id, record,
  item, type and state, so entry ids keep growing in commit order (match workers and other
  processes follow new entries by id, ``MAX(id)`` must never move back) and the change feed
  still says that the item was added and then revoked;
* an ``add`` record whose every hash is erased is replaced by its **stub** (``records.raw``;
  ``stub = 2``, "pruned", which body repair never asks peers to fill and ``ingest`` never
  completes): the signed head keeps ``head.digest``, the signature and the id, so the log
  still verifies and chains, and peers that sync from us receive the stub (SPEC §9), exactly
  as they would for a body their policy withholds;
* an ``add`` with an item still in force keeps its body (the signed digest covers all of
  it), and with it the hashes of its withdrawn items, until its last item goes;
* revoke, key, feedback and receipt records are never stubbed: they hold record ids, never
  hashes, and a peer must receive their bodies (SPEC §17.7);
* the ``changes``, ``revoked`` and ``feedback`` rows hold refs and numbers, not hashes: kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hashmesh.node.store import changes as change_log
from hashmesh.protocol.records import SignedRecord

PRUNED_STUB = 2  # records.stub: 1 = a body we may yet receive, 2 = a body we erased
PRUNED_THROUGH_KEY = "retention_pruned_through"  # meta: the change seq pruned up to


@dataclass(frozen=True)
class Pruned:
    """What one batch erased."""

    hashes: int
    items: int
    records_stubbed: int
    done: bool = False  # nothing left before the cut-off

    def to_json(self) -> dict[str, int]:
        return {"hashes": self.hashes, "items": self.items,
                "records_stubbed": self.records_stubbed}


def prunable_entries(conn: Any, before_ms: int, limit: int
                     ) -> tuple[list[tuple[int, int, int]], int]:
    """``(entry id, record num, item)`` of the hashes, not yet erased, of items with a
    ``revoke`` or ``expire`` change committed before ``before_ms``, read from up to ``limit``
    rows of the change log after the watermark; and the seq to move the watermark to.

    The change log is the index here: its ``ts`` grows with ``seq``, so the changes before a
    time are a seq range (``seq_at_time``), and the watermark (``PRUNED_THROUGH_KEY`` in
    ``meta``) means each change row is read by one sweep only."""
    after = pruned_through(conn)
    until = min(change_log.seq_at_time(conn, before_ms * 1000), after + limit)
    if until <= after:
        return [], after
    rows = conn.execute(
        "SELECT e.id, e.record_num, e.item FROM changes c JOIN entries e "
        "ON e.record_num = c.record_num AND e.item = c.item "
        "WHERE c.seq > ? AND c.seq <= ? AND c.kind IN ('revoke', 'expire') "
        "AND e.value <> '' ORDER BY e.id", (after, until)).fetchall()
    unique = {int(row[0]): (int(row[0]), int(row[1]), int(row[2])) for row in rows}
    return [unique[key] for key in sorted(unique)], until


def pruned_through(conn: Any) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (PRUNED_THROUGH_KEY,)).fetchone()
    return 0 if row is None else int(row[0])


def prune_batch(conn: Any, before_ms: int, limit: int) -> Pruned:
    """Erase one batch (``prunable_entries``) inside the caller's write transaction."""
    rows, through = prunable_entries(conn, before_ms, limit)
    if through == pruned_through(conn):
        return Pruned(0, 0, 0, done=True)
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                 (PRUNED_THROUGH_KEY, str(through)))
    ids = [row[0] for row in rows]
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        conn.execute(f"UPDATE entries SET value = '' WHERE id IN ({','.join('?' * len(chunk))})",
                     chunk)
    nums = sorted({row[1] for row in rows})
    stubbed = 0
    for num in nums:
        left = conn.execute("SELECT 1 FROM entries WHERE record_num = ? AND value <> '' LIMIT 1",
                            (num,)).fetchone()
        if left is not None:
            continue
        found = conn.execute("SELECT raw FROM records WHERE num = ? AND type = 'add' AND "
                             "stub = 0", (num,)).fetchone()
        if found is None:
            continue
        stub = SignedRecord.from_bytes(bytes(found[0])).stub().raw
        conn.execute("UPDATE records SET raw = ?, stub = ? WHERE num = ?",
                     (stub, PRUNED_STUB, num))
        stubbed += 1
    return Pruned(len(ids), len({(row[1], row[2]) for row in rows}), stubbed)
