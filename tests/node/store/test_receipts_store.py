"""Receipts in the store (INTERFACES.md part A), on both backends: what a node owes, signing
them, and the rows every node on the way keeps of its own and relayed receipts."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from hashmesh.node.config.node import NodeConfig
from hashmesh.node.store.interface import ReceiptFloodError, ReceiptRow, open_store
from hashmesh.node.store.receipts import UNKNOWN_TARGET_SLACK
from hashmesh.node.store.sqlite import Store
from hashmesh.protocol.errors import SchemaError
from hashmesh.protocol.keys import SigningKey
from hashmesh.protocol.records import (
    Distribution,
    ReceiptBody,
    ReceiptEntry,
    SignedRecord,
)
from tests.node.store.test_contract import backend, config_for  # noqa: F401 (fixture)
from tests.protocol.builders import ROOT, Chain, add_body, pdq_hex, revoke_body

NODE = SigningKey(bytes(range(100, 132)))   # the node that applies ROOT's records
OTHER = SigningKey(bytes(range(140, 172)))  # a third node, whose receipts we relay
GROUP = "ab" * 16


@pytest.fixture
def store(backend: NodeConfig) -> Iterator[Store]:  # noqa: F811
    opened = open_store(backend)
    yield opened
    opened.close()


def origin_log() -> Chain:
    chain = Chain()
    first = chain.add(add_body(pdq_hex(1), pdq_hex(2)))
    chain.add(add_body(pdq_hex(3)), dist=Distribution("group", GROUP))
    chain.add(revoke_body(first.id))
    return chain


def sign_owed(store: Store, key: SigningKey = NODE) -> list[SignedRecord]:
    done = store.sign_owed_receipts(signer=key, origin=key.id, limit=10_000)
    assert done is not None
    return done[0]


def test_a_node_owes_one_receipt_per_applied_record_and_signs_each_once(store: Store) -> None:
    chain = origin_log()
    first, group_add, revoke = chain.records
    store.ingest([first, group_add], source="peer")
    receipts = sign_owed(store)
    # one receipt per distribution: the group-scoped add gets its own, carrying the group
    assert [r.head.dist for r in receipts] == [Distribution(), Distribution("group", GROUP)]
    assert isinstance(receipts[0].body, ReceiptBody)
    assert [(e.record, e.kind) for e in receipts[0].body.targets] == [(first.id, "active")]
    assert sign_owed(store) == []  # the mark moved in the same transaction
    store.ingest([revoke], source="peer")
    [removal] = sign_owed(store)
    assert isinstance(removal.body, ReceiptBody)
    assert [(e.record, e.kind) for e in removal.body.targets] == [(revoke.id, "removed")]
    rows = store.receipts_for([first.id, group_add.id, revoke.id])
    assert {(r.node, r.target, r.kind) for r in rows} == {
        (NODE.id, first.id, "active"), (NODE.id, group_add.id, "active"),
        (NODE.id, revoke.id, "removed")}
    row = next(r for r in rows if r.target == revoke.id)
    assert row.target_ts == revoke.head.ts and row.receipt == removal.id
    assert row.applied_ms <= removal.head.ts
    assert row in store.receipts_between(row.applied_ms, row.applied_ms + 1)
    assert store.receipts_between(0, row.applied_ms - 10**6) == []
    assert ROOT.id in store.receipt_nodes()


def test_an_add_no_longer_active_when_its_receipt_is_due_gets_none(store: Store) -> None:
    chain = origin_log()
    first, group_add, revoke = chain.records
    store.ingest(chain.records, source="peer")
    pending = store.owed_receipts(100, NODE.id).pending
    # the revoke of `first` was applied before the receipts were signed: only `removed`
    assert [(p.entry.record, p.entry.kind) for p in pending] == [
        (group_add.id, "active"), (revoke.id, "removed")]


def test_a_stub_completed_after_its_round_is_receipted_once_its_body_arrives(
        store: Store) -> None:
    """A relay sent the stub of an add, the round passed it (nothing applied, no receipt);
    repair brings the body later: the receipt is owed then, once, and survives reopening."""
    chain = origin_log()
    first, group_add, _ = chain.records
    store.ingest([first.stub(), group_add], source="peer")
    [receipt] = sign_owed(store)
    assert isinstance(receipt.body, ReceiptBody)
    assert [e.record for e in receipt.body.targets] == [group_add.id]

    time.sleep(0.01)
    store.ingest([first], source="peer")  # the stub completed by its body
    [late] = sign_owed(store)
    assert isinstance(late.body, ReceiptBody)
    assert [(e.record, e.kind) for e in late.body.targets] == [(first.id, "active")]
    assert late.body.targets[0].applied > receipt.head.ts  # applied when the body came
    assert sign_owed(store) == []  # signed once


def test_relayed_receipts_are_kept_and_complete_when_the_target_arrives(store: Store) -> None:
    chain = origin_log()
    first, _, revoke = chain.records
    theirs = Chain(OTHER)
    receipt = theirs.add(ReceiptBody((ReceiptEntry(first.id, "active", 2_000_000_000_000),
                                      ReceiptEntry(revoke.id, "removed", 2_000_000_000_500))),
                         ts=2_000_000_001_000)
    store.ingest([receipt], source="peer")  # before its targets: kept, not reported yet
    assert store.receipts_for([first.id, revoke.id]) == []
    store.ingest(chain.records, source="peer")
    assert store.receipts_for([first.id, revoke.id]) == [
        ReceiptRow(OTHER.id, first.id, "active", 2_000_000_000_000, first.head.ts, receipt.id),
        ReceiptRow(OTHER.id, revoke.id, "removed", 2_000_000_000_500, revoke.head.ts,
                   receipt.id)]
    assert OTHER.id in store.receipt_nodes()


def test_a_receipt_contradicting_a_held_target_is_refused(store: Store) -> None:
    chain = origin_log()
    store.ingest(chain.records, source="peer")
    _, group_add, revoke = chain.records
    theirs = Chain(OTHER)
    wider = theirs.add(ReceiptBody((ReceiptEntry(group_add.id, "active", 1),)))
    with pytest.raises(SchemaError, match="distribution"):
        store.ingest([wider], source="peer")
    wrong_kind = Chain(OTHER).add(ReceiptBody((ReceiptEntry(revoke.id, "active", 1),)))
    with pytest.raises(SchemaError, match="kind"):
        store.ingest([wrong_kind], source="peer")
    assert store.head(OTHER.id) is None  # nothing of it stored


def test_a_receipt_that_only_repeats_is_refused_as_a_flood(store: Store) -> None:
    chain = origin_log()
    store.ingest(chain.records, source="peer")
    first = chain.records[0]
    theirs = Chain(OTHER)
    entry = ReceiptEntry(first.id, "active", 1)
    store.ingest([theirs.add(ReceiptBody((entry,)))], source="peer")
    with pytest.raises(ReceiptFloodError):
        store.ingest([theirs.add(ReceiptBody((entry,)))], source="peer")


def test_receipts_for_unknown_records_are_bounded(store: Store,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from hashmesh.node.store import receipts
    assert UNKNOWN_TARGET_SLACK >= 10_000  # the default; smaller here to keep the test short
    limit = 4096
    monkeypatch.setattr(receipts, "UNKNOWN_TARGET_SLACK", limit)
    theirs = Chain(OTHER)
    records = []
    for start in range(0, limit + 512, 512):
        records.append(theirs.add(ReceiptBody(tuple(
            ReceiptEntry(f"{i:064x}", "active", 1) for i in range(start, start + 512)))))
    stored = 0
    with pytest.raises(ReceiptFloodError, match="could explain"):
        for record in records:
            store.ingest([record], source="peer")
            stored += 1
    assert stored * 512 <= limit + 2 * (stored + 1)
    assert store.receipts_for([f"{i:064x}" for i in range(10)]) == []  # never reported


def test_a_database_of_a_node_before_receipts_does_not_receipt_its_history(
        store: Store, backend: NodeConfig) -> None:  # noqa: F811
    """What a node applied before it knew receipts stays unreceipted; what it applies after
    the upgrade is owed as usual."""
    chain = origin_log()
    first, group_add, revoke = chain.records
    store.ingest([first, group_add], source="peer")
    with store.transaction() as conn:  # as an older node left it
        conn.execute("DELETE FROM meta WHERE key='receipts_through'")
        conn.execute("DROP TABLE receipts")
        conn.execute("DROP TABLE receipt_counts")
    store.close()
    upgraded = open_store(backend)
    try:
        assert upgraded.owed_receipts(100, NODE.id).pending == []
        upgraded.ingest([revoke], source="peer")
        assert [p.entry.record for p in upgraded.owed_receipts(100, NODE.id).pending] == [
            revoke.id]
    finally:
        upgraded.close()


def test_heads_are_read_from_the_tail_of_large_records(store: Store) -> None:
    """Receipts read only the last 2 KiB of a stored record (its head and signature): an add
    of 256 items (~30 KB) is owed and resolved like a small one."""
    chain = Chain()
    big = chain.add(add_body(*(pdq_hex(i) for i in range(256))),
                    dist=Distribution("group", GROUP, ("DE", "FR")))
    assert len(big.raw) > 20_000
    store.ingest(chain.records, source="peer")
    [owed] = store.owed_receipts(10, NODE.id).pending
    assert (owed.entry.record, owed.dist) == (big.id, big.head.dist)
    receipt = Chain(OTHER).add(ReceiptBody((ReceiptEntry(big.id, "active", 5),)),
                               dist=big.head.dist)
    store.ingest([receipt], source="peer")
    [row] = store.receipts_for([big.id])
    assert row.target_ts == big.head.ts
