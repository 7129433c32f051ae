"""Current state of the hash lists: adds minus revokes, with expiry, plus feedback tallies.

The state is a pure function of the *set* of verified records: the order in which records
of different origins arrive never changes it (a revoke that arrives before the add it
targets still cancels it). Rules:

* an ``add`` makes each of its items active, under ``<record id>/<index>``;
* a ``revoke`` cancels whole records or single items, but only those of its own origin;
* an item whose ``expires`` (ms since the epoch) is at or before ``now_ms`` is inactive;
* ``feedback`` counts the latest verdict (highest seq) of each origin on each target.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from hashmesh.protocol.records import AddBody, FeedbackBody, Item, RevokeBody, SignedRecord


@dataclass(frozen=True)
class ActiveItem:
    """One item in force, with where it came from."""

    ref: str
    origin: str
    record: str
    index: int
    item: Item


@dataclass
class State:
    """Adds minus revokes over any set of verified records."""

    adds: dict[str, tuple[str, AddBody]] = field(default_factory=dict)
    revoked: set[tuple[str, str]] = field(default_factory=set)
    verdicts: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)

    def apply(self, record: SignedRecord) -> None:
        """Fold one verified record (stubs carry no body and change nothing)."""
        body, origin = record.body, record.head.origin
        if isinstance(body, AddBody):
            self.adds[record.id] = (origin, body)
        elif isinstance(body, RevokeBody):
            self.revoked.update((origin, target.ref) for target in body.targets)
        elif isinstance(body, FeedbackBody):
            key = (origin, body.target.ref)
            known = self.verdicts.get(key)
            if known is None or known[0] < record.head.seq:
                self.verdicts[key] = (record.head.seq, body.verdict)

    def apply_all(self, records: Iterable[SignedRecord]) -> State:
        for record in records:
            self.apply(record)
        return self

    def is_revoked(self, origin: str, record_id: str, index: int) -> bool:
        return ((origin, record_id) in self.revoked
                or (origin, f"{record_id}/{index}") in self.revoked)

    def active(self, now_ms: int) -> Iterator[ActiveItem]:
        """Every item in force at ``now_ms``, in a stable order."""
        for record_id in sorted(self.adds):
            origin, body = self.adds[record_id]
            for index, item in enumerate(body.items):
                if self.is_revoked(origin, record_id, index):
                    continue
                if item.expires is not None and item.expires <= now_ms:
                    continue
                yield ActiveItem(f"{record_id}/{index}", origin, record_id, index, item)

    def feedback(self, ref: str) -> Counter[str]:
        """Verdict counts on ``ref`` (a record id or ``<record id>/<index>``)."""
        return Counter(verdict for (_, target), (_, verdict) in self.verdicts.items()
                       if target == ref)
