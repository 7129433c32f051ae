"""Log rules for per-origin append-only logs, as pure functions.

Each origin's records form a hash chain: ``seq`` runs 1, 2, 3, ... without gaps and each
record's ``prev`` is the id of the record at ``seq - 1``. A node that knows an origin's head
accepts only records that extend it; two valid records at the same ``(origin, seq)`` are
equivocation, proven by ``protocol.evidence.Evidence``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from hashmesh.protocol.errors import ChainError, GapError, PrevMismatchError
from hashmesh.protocol.evidence import EquivocationError, Evidence
from hashmesh.protocol.fields import Fields
from hashmesh.protocol.keys import PublicKey, SigningKey
from hashmesh.protocol.records import (
    Body,
    Distribution,
    KeyBody,
    KeyRevokeBody,
    SignedRecord,
    check_record_id,
)
from hashmesh.protocol.signing import sign_record


@dataclass(frozen=True)
class LogHead:
    """The latest known record of one origin's log."""

    origin: str
    seq: int
    id: str
    ts: int

    FIELDS = frozenset({"origin", "seq", "id", "ts"})

    @classmethod
    def of(cls, record: SignedRecord) -> LogHead:
        return cls(record.head.origin, record.head.seq, record.id, record.head.ts)

    @classmethod
    def from_json(cls, value: object, path: str = "head") -> LogHead:
        fields = Fields(value, path, cls.FIELDS)
        return cls(
            origin=PublicKey.from_id(fields.raw("origin"), fields.at("origin")).id,
            seq=fields.integer("seq", minimum=1),
            id=check_record_id(fields.raw("id"), fields.at("id")),
            ts=fields.integer("ts"),
        )

    def to_json(self) -> dict[str, Any]:
        return {"origin": self.origin, "seq": self.seq, "id": self.id, "ts": self.ts}


def check_next(head: LogHead | None, record: SignedRecord, path: str = "record") -> None:
    """Raise unless ``record`` is the next record after ``head`` (``None``: empty log)."""
    seq = record.head.seq
    expected = 1 if head is None else head.seq + 1
    if head is not None and record.head.origin != head.origin:
        raise ChainError(f"record of origin {record.head.origin} does not belong to the log of "
                         f"{head.origin}", f"{path}.head.origin")
    if seq > expected:
        raise GapError(f"expected seq {expected}, got {seq} (records {expected}..{seq - 1} "
                       "are missing)", f"{path}.head.seq")
    if seq < expected:
        raise ChainError(f"seq {seq} is already in the log (head is {expected - 1})",
                         f"{path}.head.seq")
    expected_prev = None if head is None else head.id
    if record.head.prev != expected_prev:
        raise PrevMismatchError(f"expected prev {expected_prev}, got {record.head.prev}",
                                f"{path}.head.prev")
    if head is not None and record.head.ts < head.ts:
        raise ChainError(f"ts {record.head.ts} is earlier than the previous record's ts "
                         f"{head.ts}; timestamps are monotonic per origin", f"{path}.head.ts")


def check_run(head: LogHead | None, records: Iterable[SignedRecord],
              path: str = "records") -> LogHead | None:
    """Check that ``records`` extend ``head`` in order; return the new head."""
    for index, record in enumerate(records):
        check_next(head, record, f"{path}[{index}]")
        head = LogHead.of(record)
    return head


def detect_equivocation(known: SignedRecord, other: SignedRecord,
                        key_records: Iterable[SignedRecord] = ()) -> Evidence | None:
    """Evidence if two records claim the same ``(origin, seq)`` with different ids.

    Both records must already have been verified by the caller. ``key_records`` are the
    origin's ``key`` records, from which the evidence takes those that authorised the two
    signing keys, so that it can be checked offline with nothing but the origin id.
    """
    if (known.head.origin, known.head.seq) != (other.head.origin, other.head.seq):
        return None
    if known.id == other.id:
        return None
    first, second = sorted((known.stub(), other.stub()), key=lambda r: r.id)
    origin, seq = first.head.origin, first.head.seq
    used = {first.head.key, second.head.key} - {origin}
    latest: dict[str, SignedRecord] = {}  # one grant per key keeps the evidence small
    for record in key_records:
        body = record.body
        if (isinstance(body, KeyBody) and body.signing_key in used
                and record.head.origin == origin and record.head.seq < seq):
            known_grant = latest.get(body.signing_key)
            if known_grant is None or known_grant.head.seq < record.head.seq:
                latest[body.signing_key] = record
    grants = tuple(sorted(latest.values(), key=lambda r: r.head.seq))
    return Evidence(first=first, second=second, key_records=grants)


def raise_equivocation(known: SignedRecord, other: SignedRecord,
                       key_records: Iterable[SignedRecord] = (), path: str = "record") -> None:
    """Raise ``EquivocationError`` carrying the evidence if the two records conflict."""
    evidence = detect_equivocation(known, other, key_records)
    if evidence is not None:
        raise EquivocationError(
            f"origin {known.head.origin} signed two different records at seq "
            f"{known.head.seq}", evidence, f"{path}.head.seq")


def append(head: LogHead | None, *, signer: SigningKey, origin: str, body: Body, now_ms: int,
           dist: Distribution | None = None) -> SignedRecord:
    """Sign the record that extends ``head``: next seq, ``prev`` link, monotonic ``ts``.

    A ``key_revoke`` without ``last_seq`` gets ``head.seq``: the signer vouches for every
    record of its own log so far (a thief's records are never in it, only on forks), and the
    key can sign nothing later. Pass a lower ``last_seq`` to also refuse, outright, forks at
    the seqs since the key's last own record.
    """
    if head is not None and head.origin != origin:
        raise ChainError(f"head belongs to {head.origin}, not {origin}", "head.origin")
    if isinstance(body, KeyRevokeBody) and body.last_seq is None:
        body = replace(body, last_seq=0 if head is None else head.seq)
    return sign_record(
        signer=signer,
        origin=origin,
        seq=1 if head is None else head.seq + 1,
        prev=None if head is None else head.id,
        ts=now_ms if head is None else max(now_ms, head.ts),
        body=body,
        dist=dist,
    )
