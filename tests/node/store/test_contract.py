"""The store contract, run on both backends: the SQLite file and a real PostgreSQL database.

Every test here goes through ``NodeStore`` only (``open_store`` picks the backend from the
config, as the node does), so what passes on one engine and fails on the other is a
difference a node would see. ``test_both_backends_answer_every_read_alike`` stores the same
log in both and compares every read, byte for byte.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hashmesh.node.config.node import NodeConfig, load_node_config
from hashmesh.node.store.interface import NodeStore, OriginFrozenError, open_store
from hashmesh.node.store.sqlite import Store
from hashmesh.protocol.errors import ChainError, GapError
from hashmesh.protocol.records import AddBody, HashEntry, Item, SignedRecord
from tests.conftest import NodeDir
from tests.protocol.builders import (
    ROOT,
    SIGNER,
    Chain,
    add_body,
    feedback_body,
    key_body,
    pdq_hex,
    revoke_body,
)


def add(start: int, items: int, **fields: Any) -> AddBody:
    return AddBody(tuple(
        Item((HashEntry("pdq", pdq_hex(start + i)), HashEntry("md5", f"{start + i:032x}")),
             "ncii", **fields) for i in range(items)))


def mixed_log() -> list[SignedRecord]:
    """Adds (two hash types, labels, expiry), revokes of items and of whole records, a key
    grant, feedback, and an add signed by the granted key."""
    chain = Chain()
    first = chain.add(add(0, 3, labels=("intimate",)))
    second = chain.add(add(100, 2, expires=10**13))
    chain.add(revoke_body(f"{first.id}/1", second.id))
    chain.add(key_body(SIGNER))
    chain.add(feedback_body(f"{first.id}/0", "confirmed"))
    chain.add(add(200, 4), signer=SIGNER)
    chain.add(revoke_body(f"{first.id}/2"))
    return chain.records


def config_for(node_dir: NodeDir, url: str | None) -> NodeConfig:
    """The node's config on an empty store of that backend (``hashmesh init`` has already
    signed a record into the node's own SQLite file: the contract starts from nothing)."""
    config = load_node_config(node_dir.config_path)
    return dataclasses.replace(config, store_url=url, data_dir=config.data_dir / "contract")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, node_dir: NodeDir) -> NodeConfig:
    """A node's config on each backend (PostgreSQL: a fresh database on the session's
    server)."""
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    return config_for(node_dir, url)


@pytest.fixture
def store(backend: NodeConfig) -> Iterator[Store]:
    opened = open_store(backend)
    yield opened
    opened.close()


def snapshot(store: NodeStore, records: list[SignedRecord]) -> dict[str, Any]:
    """Everything a node can read back, through the interface only."""
    origin = records[0].head.origin
    ids = [r.id for r in records]
    entries = [e for record_id in ids for e in store.item_entries(record_id)]
    return {
        "heads": store.heads(),
        "head_stubs": store.head_stubs(),
        "frozen": store.frozen(),
        "keyring": store.keyring(origin),
        "records": [store.record_bytes(i) for i in ids],
        "at": [store.record_at(origin, r.head.seq) for r in records],
        "log": [dict(row) for row in store.log_rows(origin, 0, 100)],
        # the bodies route's read: the rows of the ids held, in the order asked
        "rows": [{k: bytes(v) if k == "raw" else v for k, v in dict(row).items()}
                 for row in store.record_rows([ids[2], "0" * 64, ids[0]])],
        "all": list(store.all_records()),
        "keys": store.key_records(origin),
        "active": {t: list(store.active_entries(t)) for t in store.active_hash_types()},
        "last": store.last_entry_id(),
        "after": store.entries_after(2, 1000),
        "entries": entries,
        "by_id": store.entries(e.entry_id for e in entries),
        "feedback": store.feedback_counts([*ids, *(f"{i}/0" for i in ids)]),
        "counts": store.counts(),
        "expired": store.expired_entries(0, 10**14),
    }


def test_both_backends_answer_every_read_alike(node_dir: NodeDir, pg_url: str) -> None:
    records = mixed_log()
    views = []
    for url in (None, pg_url):
        store = open_store(config_for(node_dir, url))
        try:
            store.ingest(records[:3], source="peer")
            store.ingest(records[3:], source="peer", cursor=("peer", records[0].head.origin, 7))
            views.append(snapshot(store, records))
        finally:
            store.close()
    sqlite_view, pg_view = views
    for key in sqlite_view:
        assert pg_view[key] == sqlite_view[key], key
    assert sqlite_view["records"] == [r.raw for r in records]


def test_a_page_stores_what_record_by_record_stores(store: Store, backend: NodeConfig,
                                                    make_node_dir: Any) -> None:
    records = mixed_log()
    store.ingest(records, source="peer")
    one_by_one = open_store(config_for(make_node_dir(), backend.store_url and None))
    try:
        for record in records:
            one_by_one.ingest([record], source="peer")
        assert snapshot(store, records) == snapshot(one_by_one, records)
    finally:
        one_by_one.close()


def test_a_page_that_does_not_extend_the_head_stores_nothing(store: Store) -> None:
    records = mixed_log()
    origin = records[0].head.origin
    with pytest.raises(GapError):
        store.ingest(records[:2] + records[3:], source="peer", cursor=("peer", origin, 7))
    assert store.head(origin) is None
    assert store.cursor("peer", origin) == 0
    assert store.counts()["records"] == 0


def test_a_conflicting_record_at_a_held_seq_is_refused(store: Store) -> None:
    records = mixed_log()
    store.ingest(records, source="peer")
    other = Chain()
    other.add(add(999, 1))
    with pytest.raises(ChainError, match="conflicting record at seq 1"):
        store.ingest(other.records, source="peer")
    assert store.record_at(records[0].head.origin, 1) == records[0].raw


def test_local_records_are_signed_in_seq_order_and_revokes_report_removed_entries(
        store: Store) -> None:
    first, added = store.append_local(signer=ROOT, origin=ROOT.id,
                                      body=add_body(pdq_hex(1), pdq_hex(2)))
    revoke, removed = store.append_local(signer=ROOT, origin=ROOT.id,
                                         body=revoke_body(f"{first.id}/1"))
    assert (first.head.seq, revoke.head.seq) == (1, 2)
    assert revoke.head.prev == first.id
    assert removed.removed == [added.added["pdq"][0][1]]
    assert store.head(ROOT.id) is not None
    assert store.record_bytes(revoke.id) == revoke.raw
    assert [a["action"] for a in store.audit_rows()] == ["sign_revoke", "sign_add"]


def test_freezing_blocks_signing_until_unfrozen(store: Store) -> None:
    store.append_local(signer=ROOT, origin=ROOT.id, body=add_body(pdq_hex(1)))
    store.freeze(ROOT.id, 1, None, "test")
    store.freeze(ROOT.id, 3, None, "later freeze keeps the lower seq")
    assert store.frozen() == {ROOT.id: 1}
    with pytest.raises(OriginFrozenError):
        store.append_local(signer=ROOT, origin=ROOT.id, body=add_body(pdq_hex(2)))
    store.unfreeze(ROOT.id, "operator")
    store.block_signing("restored backup")
    assert store.signing_blocked() == "restored backup"
    with pytest.raises(OriginFrozenError, match="signing is blocked"):
        store.append_local(signer=ROOT, origin=ROOT.id, body=add_body(pdq_hex(2)))
    store.unblock_signing("operator")
    record, _ = store.append_local(signer=ROOT, origin=ROOT.id, body=add_body(pdq_hex(2)))
    assert record.head.seq == 2


def test_cursors_only_move_forward_and_audit_rows_are_kept(store: Store) -> None:
    store.set_cursor("peer", ROOT.id, 5)
    store.set_cursor("peer", ROOT.id, 3)
    assert store.cursor("peer", ROOT.id) == 5
    store.audit_many([(1, "a", "match", '{"n": 1}'), (2, "b", "match", '{"n": 2}')])
    store.audit("op", "note", {"x": 1})
    assert [(r["actor"], r["detail"]) for r in store.audit_rows(3)] == [
        ("op", {"x": 1}), ("b", {"n": 2}), ("a", {"n": 1})]


def test_active_entries_come_in_chunks_that_cover_exactly_the_hashes_in_force(
        store: Store) -> None:
    store.ingest(mixed_log(), source="peer")
    chunks = list(store.active_entries("pdq", chunk=2))
    assert sum(len(ids) for ids, _ in chunks) == 5
    assert all(1 <= len(ids) <= 4 for ids, _ in chunks)  # a chunk a block, at most
    loaded = {i: v for ids, values in chunks for i, v in zip(ids, values, strict=True)}
    last = max(loaded)
    assert {i for ids, _ in store.active_entries("pdq", through=last - 1) for i in ids} \
        == set(loaded) - {last}


def test_a_follower_needs_an_existing_database(backend: NodeConfig, tmp_path: Path) -> None:
    from hashmesh.node.store.sqlite import StoreError
    if backend.store_url is None:
        backend = dataclasses.replace(backend, data_dir=tmp_path / "none")
    with pytest.raises(StoreError, match="no (hashmesh )?database here"):
        open_store(backend, follower=True)


def test_checkpoints_and_split_views_are_kept_alike_by_both_engines(store: Store) -> None:
    """A checkpoint's bytes are replaced as cosignatures merge, its first arrival is kept;
    a split-view proof is kept once (SPEC §20)."""
    origin = ROOT.id
    store.save_checkpoint(origin, "c1", 3, 1_000, b'{"n":1}', now=10)
    store.save_checkpoint(origin, "c2", 4, 2_000, b'{"n":2}', now=11)
    store.save_checkpoint(origin, "c1", 3, 1_000, b'{"n":1,"w":1}', now=12)
    assert store.checkpoints_of(origin) == [(b'{"n":2}', 11), (b'{"n":1,"w":1}', 10)]
    assert store.all_checkpoints() == [(origin, b'{"n":2}', 11), (origin, b'{"n":1,"w":1}', 10)]
    store.delete_checkpoints(origin, ["c1"])
    assert store.checkpoints_of(origin) == [(b'{"n":2}', 11)]
    proof = {"kind": "split_view", "seq": 3}
    assert store.add_split_view(origin, 3, "c1", "ab" * 32, proof, now=13)
    assert not store.add_split_view(origin, 3, "c1", "ab" * 32, proof, now=14)
    assert store.split_views() == [proof]


@pytest.mark.parametrize("chunk", [1, 2, 100_000])
def test_packed_entries_are_exactly_the_active_entries_packed(store: Store, chunk: int) -> None:
    """What the index loads (``active_entries_packed``, PostgreSQL's binary COPY; SQLite has
    none) is, id for id, what packing ``active_entries`` gives; ``through`` holds too."""
    store.ingest(mixed_log(), source="peer")
    expected = {i: bytes.fromhex(v) for ids, values in store.active_entries("pdq")
                for i, v in zip(ids, values, strict=True)}
    packed = store.active_entries_packed("pdq", 32)
    if store.__class__ is Store:
        assert packed is None
        return
    from hashmesh.node.store.postgres import PostgresStore
    assert isinstance(store, PostgresStore)
    ids, values = store.active_entries_packed("pdq", 32, chunk=chunk) or ([], b"")
    assert {int(i): values[k * 32:(k + 1) * 32] for k, i in enumerate(ids)} == expected
    assert packed is not None and sorted(packed[0].tolist()) == sorted(expected)
    last = max(expected)
    through = store.active_entries_packed("pdq", 32, through=last - 1)
    assert through is not None and set(through[0].tolist()) == set(expected) - {last}
    assert store.active_entries_packed("pdq", 16) is None  # not this width: read the text
