"""The store's case tables: who a case is for is never here, only what it needs to be found.

A case (``node/cases/``) groups the records made for one person. Its row holds an HMAC of the
case reference (under a node-local secret kept outside the database), an argon2id hash of
its PIN, its state and the ids of its records: nothing a reader of the database could turn
back into the reference or the PIN. ``case_attempts`` counts wrong PINs per reference (the
HMAC of what was typed, whether or not such a case exists) and per client (an HMAC of its
address), so that a lockout survives a restart.

The SQL is in the subset SQLite and PostgreSQL both run (``pg_dialect.translate``); the
tables are created by ``schema.create_schema`` and by ``pg_dialect.SCHEMA``.

``CaseTables`` is a base of the SQLite ``Store`` (and so of ``PostgresStore``): each write is
one transaction, and the writes that sign (opening, approving, withdrawing) sign and change
the case row in the same transaction, so a crash leaves either both or neither.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any, Protocol

from hashmesh.protocol.keys import SigningKey
from hashmesh.protocol.records import Body, Distribution, RevokeBody, SignedRecord, Target

CASE_STATES = ("pending_review", "open", "withdrawn")

CASE_TABLES = (
    "CREATE TABLE IF NOT EXISTS cases ("
    " case_id TEXT PRIMARY KEY, ref_mac TEXT NOT NULL, pin_hash TEXT NOT NULL,"
    " state TEXT NOT NULL, opened_ms BIGINT NOT NULL, opened_by TEXT NOT NULL,"
    " items INTEGER NOT NULL, records TEXT NOT NULL, staged TEXT,"
    " withdrawn_ms BIGINT, withdraw_record TEXT)",
    "CREATE UNIQUE INDEX IF NOT EXISTS cases_by_ref_mac ON cases (ref_mac)",
    "CREATE INDEX IF NOT EXISTS cases_by_state ON cases (state, opened_ms)",
    "CREATE TABLE IF NOT EXISTS case_attempts ("
    " key TEXT PRIMARY KEY, failures INTEGER NOT NULL, locks INTEGER NOT NULL,"
    " locked_until BIGINT NOT NULL, updated_ms BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS case_attempts_by_age ON case_attempts (updated_ms)",
)

CASE_COLUMNS = ("case_id, ref_mac, pin_hash, state, opened_ms, opened_by, items, records, "
                "staged, withdrawn_ms, withdraw_record")


class CaseStateError(Exception):
    """The case is not in a state that allows this (approving an open case, say)."""


class NoSuchCaseError(Exception):
    """No case has this internal id."""


@dataclass(frozen=True)
class CaseRow:
    case_id: str
    ref_mac: str
    pin_hash: str
    state: str
    opened_ms: int
    opened_by: str
    items: int
    records: tuple[str, ...] = ()
    # the items and distribution waiting for review, as JSON; None once signed or rejected
    staged: str | None = None
    withdrawn_ms: int | None = None
    withdraw_record: str | None = None

    def values(self) -> tuple[Any, ...]:
        return (self.case_id, self.ref_mac, self.pin_hash, self.state, self.opened_ms,
                self.opened_by, self.items, json.dumps(list(self.records)), self.staged,
                self.withdrawn_ms, self.withdraw_record)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> CaseRow:
        (case_id, ref_mac, pin_hash, state, opened_ms, opened_by, items, records, staged,
         withdrawn_ms, withdraw_record) = row
        return cls(case_id, ref_mac, pin_hash, state, int(opened_ms), opened_by, int(items),
                   tuple(json.loads(records)), staged,
                   None if withdrawn_ms is None else int(withdrawn_ms), withdraw_record)


@dataclass(frozen=True)
class AttemptLimit:
    """How many wrong tries a key (a reference or a client) gets, and for how long it locks:
    ``lock_ms`` the first time, doubled at each lock after it up to ``max_lock_ms``. Counts
    older than ``forget_ms`` start again from zero."""

    tries: int
    lock_ms: int
    max_lock_ms: int
    forget_ms: int

    def lock_for(self, locks: int) -> int:
        return min(self.lock_ms << min(locks - 1, 30), self.max_lock_ms)


@dataclass(frozen=True)
class Attempt:
    """What ``case_attempt_begin`` decided: ``locked_ms`` > 0 refuses the attempt for that
    long; otherwise it was counted as a failure in advance, and ``locks`` names the keys
    whose limit it reached, and for how many ms they are locked from now unless it
    succeeds."""

    locked_ms: int
    locks: tuple[tuple[str, int], ...] = ()


class _Host(Protocol):
    def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...
    def reader(self) -> sqlite3.Connection: ...
    def _sign_local(self, conn: sqlite3.Connection, *, signer: SigningKey, origin: str,
                    bodies: Sequence[Body], dist: Distribution | None, actor: str,
                    ts: int | None = None) -> tuple[list[SignedRecord], Any]: ...
    def _audit(self, conn: sqlite3.Connection, actor: str, action: str,
               detail: dict[str, Any]) -> None: ...


class CaseTables:
    """The case verbs of the store (see the module docstring)."""

    # -- writes -----------------------------------------------------------------------

    def case_open(self: _Host, row: CaseRow, *, signer: SigningKey, origin: str,
                  bodies: Sequence[Body], dist: Distribution, actor: str
                  ) -> tuple[list[SignedRecord], Any]:
        """Sign ``bodies`` (none for a case held for review) and store the case with their
        ids, in one transaction."""
        with self.transaction() as conn:
            records, changes = (self._sign_local(conn, signer=signer, origin=origin,
                                                 bodies=bodies, dist=dist, actor=actor)
                                if bodies else ([], None))
            stored = replace(row, records=tuple(r.id for r in records))
            conn.execute(f"INSERT INTO cases ({CASE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                         stored.values())
            self._audit(conn, actor, "case_open", {"case_id": row.case_id, "state": row.state,
                                                   "items": row.items})
        return records, changes

    def case_approve(self: _Host, case_id: str, *, signer: SigningKey, origin: str,
                     bodies: Sequence[Body], dist: Distribution, actor: str
                     ) -> tuple[list[SignedRecord], Any]:
        """Sign a case held for review and open it; ``CaseStateError`` unless it waits."""
        with self.transaction() as conn:
            _require_state(conn, case_id, "pending_review")
            records, changes = self._sign_local(conn, signer=signer, origin=origin,
                                                bodies=bodies, dist=dist, actor=actor)
            conn.execute("UPDATE cases SET state='open', records=?, staged=NULL "
                         "WHERE case_id=?", (json.dumps([r.id for r in records]), case_id))
            self._audit(conn, actor, "case_approve", {"case_id": case_id})
        return records, changes

    def case_reject(self: _Host, case_id: str, actor: str) -> None:
        """Delete a case held for review, with its staged hashes: nothing of it is left but
        the audit row."""
        with self.transaction() as conn:
            _require_state(conn, case_id, "pending_review")
            conn.execute("DELETE FROM cases WHERE case_id=?", (case_id,))
            self._audit(conn, actor, "case_reject", {"case_id": case_id})

    def case_withdraw(self: _Host, case_id: str, at_ms: int, *, signer: SigningKey,
                      origin: str, actor: str) -> tuple[list[SignedRecord], Any]:
        """Sign a revoke (reason ``withdrawn``) of every record of an open case, and mark
        it withdrawn; a case held for review was never signed, so only its staged hashes
        are dropped. The state is read in the same transaction, so a case approved at the
        same moment is revoked whole."""
        with self.transaction() as conn:
            state = _require_state(conn, case_id, "pending_review", "open")
            shared = [] if state != "open" else json.loads(conn.execute(
                "SELECT records FROM cases WHERE case_id=?", (case_id,)).fetchone()[0])
            revoke = RevokeBody(tuple(Target(record) for record in shared), "withdrawn")
            records, changes = (self._sign_local(conn, signer=signer, origin=origin,
                                                 bodies=[revoke], dist=Distribution(),
                                                 actor=actor)
                                if shared else ([], None))
            conn.execute("UPDATE cases SET state='withdrawn', staged=NULL, withdrawn_ms=?, "
                         "withdraw_record=? WHERE case_id=?",
                         (at_ms, records[0].id if records else None, case_id))
            self._audit(conn, actor, "case_withdraw", {"case_id": case_id, "was": state})
        return records, changes

    def case_attempt_begin(self: _Host, keys: dict[str, AttemptLimit], now_ms: int) -> Attempt:
        """Refuse an attempt while any of ``keys`` is locked; else count it as a failure
        now, before the PIN is checked, so that attempts made at the same time cannot get
        past the limit together (``case_attempt_succeeded`` takes it back)."""
        with self.transaction() as conn:
            rows = _attempt_rows(conn, list(keys))
            locked = max((r[2] - now_ms for r in rows.values()), default=0)
            if locked > 0:
                return Attempt(locked)
            reached = []
            for key, limit in keys.items():
                failures, locks, _, updated = rows.get(key, (0, 0, 0, now_ms))
                if now_ms - updated > limit.forget_ms:
                    failures, locks = 0, 0
                failures += 1
                locked_until = 0
                if failures >= limit.tries:
                    locks += 1
                    failures = 0
                    locked_until = now_ms + limit.lock_for(locks)
                    reached.append((key, limit.lock_for(locks)))
                conn.execute(
                    "INSERT INTO case_attempts (key, failures, locks, locked_until, updated_ms) "
                    "VALUES (?,?,?,?,?) ON CONFLICT(key) DO UPDATE SET failures=excluded.failures,"
                    " locks=excluded.locks, locked_until=excluded.locked_until,"
                    " updated_ms=excluded.updated_ms", (key, failures, locks, locked_until, now_ms))
            forget = max(limit.forget_ms + limit.max_lock_ms for limit in keys.values())
            conn.execute("DELETE FROM case_attempts WHERE updated_ms < ? AND locked_until < ?",
                         (now_ms - forget, now_ms))
            return Attempt(0, tuple(reached))

    def case_attempt_succeeded(self: _Host, reference_key: str, client_key: str) -> None:
        """The PIN was right: forget the reference's failures and locks, and take back the
        failure counted in advance against the client."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM case_attempts WHERE key=?", (reference_key,))
            conn.execute("UPDATE case_attempts SET locked_until=0, failures=CASE WHEN "
                         "failures > 0 THEN failures - 1 ELSE 0 END WHERE key=?", (client_key,))

    def case_attempt_failed(self: _Host, actor: str, case_id: str | None,
                            locked: dict[str, int]) -> None:
        """Audit a wrong reference or PIN, and each lock it set (``locked``: what was locked,
        "reference" or "client", and for how many seconds)."""
        with self.transaction() as conn:
            self._audit(conn, actor, "case_pin_failed", {"case_id": case_id})
            for what, seconds in locked.items():
                self._audit(conn, actor, "case_locked",
                            {"case_id": case_id, "locked": what, "seconds": seconds})

    # -- reads ------------------------------------------------------------------------

    def case_by_ref_mac(self: _Host, ref_mac: str) -> CaseRow | None:
        row = self.reader().execute(f"SELECT {CASE_COLUMNS} FROM cases WHERE ref_mac=?",
                                    (ref_mac,)).fetchone()
        return None if row is None else CaseRow.from_row(row)

    def case(self: _Host, case_id: str) -> CaseRow | None:
        row = self.reader().execute(f"SELECT {CASE_COLUMNS} FROM cases WHERE case_id=?",
                                    (case_id,)).fetchone()
        return None if row is None else CaseRow.from_row(row)

    def cases_in_state(self: _Host, state: str, limit: int = 1000) -> list[CaseRow]:
        rows = self.reader().execute(
            f"SELECT {CASE_COLUMNS} FROM cases WHERE state=? ORDER BY opened_ms LIMIT ?",
            (state, limit)).fetchall()
        return [CaseRow.from_row(row) for row in rows]

    def case_attempts(self: _Host, keys: Sequence[str]) -> dict[str, tuple[int, int, int, int]]:
        """``key -> (failures, locks, locked_until, updated_ms)``, for tests and status."""
        return _attempt_rows(self.reader(), list(keys))


def create_case_tables(conn: sqlite3.Connection) -> None:
    for statement in CASE_TABLES:
        conn.execute(statement)


def _require_state(conn: sqlite3.Connection, case_id: str, *states: str) -> str:
    row = conn.execute("SELECT state FROM cases WHERE case_id=?", (case_id,)).fetchone()
    if row is None:
        raise NoSuchCaseError(f"no case {case_id}")
    if row[0] not in states:
        raise CaseStateError(f"case {case_id} is {row[0]}, not {' or '.join(states)}")
    return str(row[0])


def _attempt_rows(conn: sqlite3.Connection, keys: list[str]
                  ) -> dict[str, tuple[int, int, int, int]]:
    if not keys:
        return {}
    marks = ",".join("?" * len(keys))
    found: Iterator[Sequence[Any]] = conn.execute(
        f"SELECT key, failures, locks, locked_until, updated_ms FROM case_attempts "
        f"WHERE key IN ({marks})", keys)
    return {key: (int(f), int(n), int(until), int(at)) for key, f, n, until, at in found}
