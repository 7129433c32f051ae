"""Retention's store part on both backends: ``prune`` erases the hashes of revoked and
expired items, stubs records left without any, audits it, and never moves entry ids back."""

from __future__ import annotations

from hashmesh.node.store.sqlite import Store
from hashmesh.protocol.records import SignedRecord
from tests.node.store import test_contract
from tests.node.store.test_contract import mixed_log

FAR_FUTURE = 10**15

backend = test_contract.backend  # the contract's fixtures: both engines
store = test_contract.store


def test_prune_erases_withdrawn_and_expired_hashes_only(store: Store) -> None:
    records = mixed_log()
    store.ingest(records, source="peer")
    revokes = [r.raw for r in records if r.head.type == "revoke"]
    assert sorted(store.records_of_types(["revoke"], records[0].head.origin)) == sorted(revokes)
    assert list(store.records_of_types(["revoke"], "ed25519:nobody")) == []
    store.log_expiries(FAR_FUTURE)  # the second add's items expire at 10**13
    last_id = store.last_entry_id()
    in_force = {e.value for r in records for e in store.item_entries(r.id) if e.active
                and (e.expires is None)}
    gone = {e.value for r in records for e in store.item_entries(r.id)} - in_force

    assert store.prune(0).done  # nothing is old enough
    batches = 0
    while not store.prune(FAR_FUTURE, batch=2).done:  # small batches: the watermark goes on
        batches += 1
    assert batches > 1
    values = {e.value for r in records for e in store.item_entries(r.id)}
    assert values == in_force | {""} and not gone & values
    assert store.last_entry_id() == last_id
    first, second = records[0], records[1]
    assert not SignedRecord.from_bytes(store.record_bytes(first.id) or b"").is_stub  # item 0
    assert SignedRecord.from_bytes(store.record_bytes(second.id) or b"").is_stub
    assert any(r["action"] == "retention_prune" for r in store.audit_rows(20))
