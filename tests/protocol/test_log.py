"""Per-origin logs: contiguous seq, prev links, monotonic timestamps."""

from __future__ import annotations

import pytest

from hashmesh.protocol.errors import ChainError, GapError, KeyFormatError, PrevMismatchError
from hashmesh.protocol.log import LogHead, append, check_next, check_run
from hashmesh.protocol.records import SignedRecord
from hashmesh.protocol.signing import sign_record
from tests.protocol.builders import (
    ORIGIN,
    PDQ,
    ROOT,
    STRANGER,
    T0,
    Chain,
    add_body,
)


def chain_of(length: int) -> Chain:
    chain = Chain()
    for index in range(length):
        chain.add(add_body(PDQ[index % len(PDQ)]))
    return chain


def record_at(seq: int, prev: str | None, ts: int = T0 + 10**6) -> SignedRecord:
    return sign_record(signer=ROOT, origin=ORIGIN, seq=seq, prev=prev, ts=ts, body=add_body())


def test_append_builds_a_hash_chain_that_check_run_accepts() -> None:
    chain = chain_of(4)
    assert [r.head.seq for r in chain.records] == [1, 2, 3, 4]
    assert chain.records[0].head.prev is None
    for earlier, later in zip(chain.records, chain.records[1:], strict=False):
        assert later.head.prev == earlier.id
    assert check_run(None, chain.records) == LogHead.of(chain.records[-1])


def test_first_record_of_a_log_must_be_seq_one() -> None:
    check_next(None, record_at(1, None))
    with pytest.raises(GapError) as info:
        check_next(None, record_at(2, "00" * 32))
    assert info.value.path == "record.head.seq"


def test_check_next_rejects_a_gap_and_names_the_missing_records() -> None:
    chain = chain_of(2)
    with pytest.raises(GapError, match=r"expected seq 3, got 5 \(records 3..4 are missing\)"):
        check_next(chain.head, record_at(5, chain.records[-1].id))


def test_check_next_rejects_wrong_prev() -> None:
    chain = chain_of(2)
    with pytest.raises(PrevMismatchError) as info:
        check_next(chain.head, record_at(3, chain.records[0].id))
    assert info.value.path == "record.head.prev"
    assert info.value.code == "WRONG_PREV"


def test_check_next_rejects_a_seq_already_in_the_log() -> None:
    chain = chain_of(3)
    with pytest.raises(ChainError, match="seq 2 is already in the log") as info:
        check_next(chain.head, chain.records[1])
    assert type(info.value) is ChainError


def test_check_next_rejects_ts_going_backwards() -> None:
    chain = chain_of(2)
    assert chain.head is not None
    with pytest.raises(ChainError, match="timestamps are monotonic per origin") as info:
        check_next(chain.head, record_at(3, chain.head.id, ts=chain.head.ts - 1))
    assert info.value.path == "record.head.ts"


def test_check_next_accepts_an_equal_ts() -> None:
    chain = chain_of(2)
    assert chain.head is not None
    check_next(chain.head, record_at(3, chain.head.id, ts=chain.head.ts))


def test_check_next_rejects_a_record_of_another_origin() -> None:
    chain = chain_of(1)
    assert chain.head is not None
    other = sign_record(signer=STRANGER, origin=STRANGER.id, seq=2, prev=chain.head.id,
                        ts=T0 + 10**6, body=add_body())
    with pytest.raises(ChainError) as info:
        check_next(chain.head, other)
    assert info.value.path == "record.head.origin"


def test_check_run_locates_the_failing_record() -> None:
    chain = chain_of(3)
    broken = [chain.records[0], chain.records[2]]
    with pytest.raises(GapError) as info:
        check_run(None, broken, "log")
    assert info.value.path == "log[1].head.seq"


def test_append_never_moves_ts_backwards_when_the_clock_does() -> None:
    chain = chain_of(1)
    assert chain.head is not None
    record = append(chain.head, signer=ROOT, origin=ORIGIN, body=add_body(), now_ms=0)
    assert record.head.ts == chain.head.ts
    check_next(chain.head, record)


def test_append_refuses_a_head_of_another_origin() -> None:
    chain = chain_of(1)
    with pytest.raises(ChainError):
        append(chain.head, signer=STRANGER, origin=STRANGER.id, body=add_body(), now_ms=T0)


def test_log_head_round_trips_and_validates_the_origin() -> None:
    head = LogHead.of(chain_of(1).records[0])
    assert LogHead.from_json(head.to_json()) == head
    with pytest.raises(KeyFormatError) as info:
        LogHead.from_json(dict(head.to_json(), origin="ed25519:nope"))
    assert info.value.path == "head.origin"
