"""Batching owed receipts into bodies (SPEC §21.2): one origin and one distribution a body,
at most 512 targets, each record once."""

from __future__ import annotations

from hashmesh.protocol.receipts import Applied, batch
from hashmesh.protocol.records import MAX_RECEIPT_TARGETS, Distribution, ReceiptEntry

GROUP = Distribution("group", "ab" * 16)


def owed(origin: str, dist: Distribution, count: int, start: int = 0) -> list[Applied]:
    return [Applied(origin, dist, ReceiptEntry(f"{origin}{i:063x}"[-64:], "active", i))
            for i in range(start, start + count)]


def test_bodies_never_mix_origins_or_distributions_and_hold_at_most_512() -> None:
    pending = (owed("a", Distribution(), 600) + owed("b", Distribution(), 3)
               + owed("a", GROUP, 2, start=1000) + owed("a", Distribution(), 1, start=600))
    bodies = batch(pending)
    shapes = [(dist, len(body.targets)) for dist, body in bodies]
    assert shapes == [(Distribution(), MAX_RECEIPT_TARGETS), (Distribution(), 89),
                      (Distribution(), 3), (GROUP, 2)]
    first_origin = {e.record[0] for e in bodies[0][1].targets} | {
        e.record[0] for e in bodies[1][1].targets}
    assert first_origin == {"a"}
    assert {e.record[0] for e in bodies[2][1].targets} == {"b"}


def test_a_record_owed_twice_is_receipted_once() -> None:
    twice = owed("a", Distribution(), 2) + owed("a", Distribution(), 1)
    [(_, body)] = batch(twice)
    assert len(body.targets) == 2
