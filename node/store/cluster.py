"""Several processes, one node: the signer lease and the change feed, on PostgreSQL.

Any number of ``hashmesh run`` processes may share one PostgreSQL database (on one machine or
many). Each serves the local API and matches from its own in-memory index; one of them, the
*leader*, signs local writes and runs federation.

**The lease.** The leader holds a session-level advisory lock (``pg_try_advisory_lock``) on a
connection of its own. The server releases it the moment that connection ends, so a leader
killed with ``kill -9`` (or whose machine is lost, after TCP keepalive) frees it, and the next
process that asks (every ``LEASE_POLL_SECONDS``) takes it. Taking it raises the lease's
*epoch* in the ``leases`` row; the new epoch is the leader's fencing token. Every signed write
checks, under the store's write lock and in its own transaction, that the epoch is still its
own (``postgres._check_fence``): a leader that lost its lease without noticing (a paused
process, a broken lease connection) can no longer sign. Underneath both, the unique index on
``records (origin, seq)`` makes a second record at one seq impossible whatever a process
believes. A leader that sees its lease connection fail (a database restart or failover)
demotes itself: it stops signing and pulling from peers, follows the feed, and bids again.

**The feed.** New hashes are followed in ``entries`` itself, tailed by id (ids are assigned
under the write lock, so in commit order). Hashes that stop being in force (revocations) are
appended to ``entry_changes`` by a trigger, tailed by its id the same way. A statement trigger
sends ``NOTIFY hashmesh_changes`` on every change; ``wait`` blocks on ``LISTEN`` for it, so
a follower is woken within milliseconds and polls at least once a second if a notification
is lost (notifications are not kept while a listener is disconnected). The index is updated
incrementally and never rebuilt. Answers are checked against the database as always, so a
revocation is honoured at once even before the feed delivers it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg

from hashmesh.node.store.pg_dialect import (
    CHANNEL,
    LEADER_LOCK,
    LOCK_SPACE,
    WRITE_LOCK,
    connect,
)
from hashmesh.node.store.postgres import NotLeaderError, PostgresStore, leader_of
from hashmesh.node.store.sqlite import now_ms

__all__ = ["Cluster", "NotLeaderError"]

log = logging.getLogger("hashmesh.cluster")

LEASE_POLL_SECONDS = 0.5


class Cluster:
    """One process's part in a node of several processes: its bid for the signer lease, and
    its view of the change feed. Blocking calls: run them off the event loop."""

    def __init__(self, store: PostgresStore, holder: str) -> None:
        self.store = store
        self.holder = holder  # how others name this process: its API URL
        self.epoch = 0
        store.fence = 0  # signs nothing until it holds the lease
        self._lease: psycopg.Connection[Any] | None = None
        self._listener: psycopg.Connection[Any] | None = None

    # -- the lease --------------------------------------------------------------------

    def try_lead(self) -> bool:
        """Take the signer lease if no live process holds it; True if this process leads."""
        if self.epoch:
            return True
        if self._lease is None or self._lease.closed or self._lease.broken:
            self._lease = connect(self.store.url)
        row = self._lease.execute("SELECT pg_try_advisory_lock(%s, %s)",
                                  (LOCK_SPACE, LEADER_LOCK)).fetchone()
        if not (row and row[0]):
            return False
        with self._lease.transaction():  # a new epoch, after every write of the old leader
            self._lease.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                                (LOCK_SPACE, WRITE_LOCK))
            epoch_row = self._lease.execute(
                "INSERT INTO leases (name, epoch, holder, since) VALUES ('signer', 1, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET epoch = leases.epoch + 1, "
                "holder = excluded.holder, since = excluded.since RETURNING epoch",
                (self.holder, now_ms())).fetchone()
        assert epoch_row is not None
        self.epoch = int(epoch_row[0])
        self.store.fence = self.epoch
        log.warning("%s holds the signer lease (epoch %d)", self.holder, self.epoch)
        return True

    def still_leads(self) -> bool:
        """False once the lease connection is gone (the server has released the lock)."""
        if not self.epoch or self._lease is None:
            return False
        try:
            self._lease.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def demote(self) -> None:
        """Sign nothing more (the lease is lost); ``try_lead`` may take it again, with a new
        epoch."""
        self.epoch = 0
        self.store.fence = 0
        if self._lease is not None:
            self._lease.close()

    def leader(self) -> str | None:
        """The holder of the lease now, or None while none does."""
        reader = self.store.reader()
        try:
            return leader_of(reader.raw)
        except psycopg.OperationalError:
            if not reader.raw.broken:
                raise
            return leader_of(reader.ensure())  # dropped since its last use: once more

    # -- the change feed ----------------------------------------------------------------

    def last_removal(self) -> int:
        # through the reader's PgConnection, which reconnects after a dropped connection
        row = self.store.reader().execute(
            "SELECT COALESCE(MAX(id), 0) FROM entry_changes").fetchone()
        return int(row[0]) if row else 0

    def removals_after(self, change_id: int, limit: int) -> tuple[int, list[int]]:
        """Entry ids that stopped being in force after ``change_id``, and the last id read."""
        rows = self.store.reader().execute(
            "SELECT id, entry_id FROM entry_changes WHERE id > ? ORDER BY id LIMIT ?",
            (change_id, limit)).fetchall()
        return (rows[-1][0] if rows else change_id), [r[1] for r in rows]

    def wait(self, timeout: float) -> None:
        """Block until a change is notified or ``timeout`` passes (or the listener's
        connection fails: the caller polls anyway)."""
        try:
            if self._listener is None or self._listener.closed or self._listener.broken:
                self._listener = connect(self.store.url)
                self._listener.execute(f"LISTEN {CHANNEL}")
            for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                pass
        except psycopg.Error as exc:
            log.warning("change notifications unavailable (%s); polling", exc)
            time.sleep(timeout)

    def close(self) -> None:
        for conn in (self._lease, self._listener):
            if conn is not None:
                conn.close()
