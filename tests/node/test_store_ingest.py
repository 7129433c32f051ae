"""Bulk ingest (a sync page in one transaction) leaves exactly what storing one by one leaves.

``Store.ingest`` writes a page's rows with a few multi-row INSERTs, follows each origin's head
in memory and flushes before anything that must see earlier rows (revokes, completed stubs).
These tests hold it to the record-by-record result on real SQLite files.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from hashmesh.node.store.schema import SchemaVersionError
from hashmesh.node.store.sqlite import Changes, Store
from hashmesh.protocol import canonical
from hashmesh.protocol.errors import GapError
from hashmesh.protocol.item_runs import read_item_run
from hashmesh.protocol.records import AddBody, HashEntry, Item, SignedRecord
from tests.protocol.builders import (
    SIGNER,
    Chain,
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
    """Adds (two hash types, labels, expiry), revokes of earlier items and whole records,
    a key grant, feedback, and an add signed by the granted key."""
    chain = Chain()
    first = chain.add(add(0, 3, labels=("intimate",)))
    second = chain.add(add(100, 2, expires=10**13))
    chain.add(revoke_body(f"{first.id}/1", second.id))
    chain.add(key_body(SIGNER))
    chain.add(feedback_body(f"{first.id}/0", "confirmed"))
    chain.add(add(200, 4), signer=SIGNER)
    chain.add(revoke_body(f"{first.id}/2"))
    return chain.records


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table but the audit trail, without receive times."""
    with sqlite3.connect(path / "store.db") as conn:
        return {
            "records": conn.execute(
                "SELECT id, origin, seq, type, scope, grp, jurisdictions, lists, labels, stub,"
                " raw, source FROM records ORDER BY origin, seq").fetchall(),
            **{table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
               for table in ("entries", "origins", "revoked", "keys", "feedback", "cursors")},
        }


def in_force(changes: list[Changes]) -> dict[int, str]:
    """The index a matcher ends with after applying ``changes`` in order."""
    index: dict[int, str] = {}
    for change in changes:
        for ids, values in change.added.values():
            index.update(zip(ids, values, strict=True))
        for entry_id in change.removed:
            index.pop(entry_id, None)
    return index


def active_entries(path: Path) -> dict[int, str]:
    with sqlite3.connect(path / "store.db") as conn:
        return dict(conn.execute("SELECT id, value FROM entries WHERE active=1").fetchall())


def store_at(path: Path) -> Store:
    path.mkdir()
    return Store(path / "store.db")


def test_one_page_stores_what_record_by_record_stores(tmp_path: Path) -> None:
    records = mixed_log()
    bulk, single = store_at(tmp_path / "bulk"), store_at(tmp_path / "single")
    try:
        bulk_changes = [bulk.ingest(records, source="peer", cursor=("peer", records[0].head.origin,
                                                                    len(records)))]
        single_changes = [single.ingest([r], source="peer") for r in records]
        single.set_cursor("peer", records[0].head.origin, len(records))
    finally:
        bulk.close()
        single.close()

    assert dump(tmp_path / "bulk") == dump(tmp_path / "single")
    assert in_force(bulk_changes) == in_force(single_changes) == active_entries(tmp_path / "bulk")
    assert len(active_entries(tmp_path / "bulk")) == 2 * (3 + 2 + 4) - 2 * (2 + 2)


def test_a_completed_stub_respects_a_revoke_that_came_before_its_body(tmp_path: Path) -> None:
    chain = Chain()
    target = chain.add(add(0, 2))
    revoke = chain.add(revoke_body(f"{target.id}/0"))
    store = store_at(tmp_path / "s")
    try:
        store.ingest([target.stub(), revoke], source="peer")
        changes = store.ingest([target], source="peer")  # the body arrives later
    finally:
        store.close()

    assert in_force([changes]) == active_entries(tmp_path / "s")
    assert sorted(active_entries(tmp_path / "s").values()) == sorted([f"{1:032x}", pdq_hex(1)])


@pytest.mark.parametrize("items", [4096, 5000])
def test_pages_of_thousands_of_hashes_are_stored_whole_with_ids_in_order(
        tmp_path: Path, items: int) -> None:
    """Rows go out in statements of 4096 rows or a power of two fewer (5000 = 4096 + 512 +
    256 + 128 + 8); entry ids are the rowids SQLite gives, in page order."""
    chain = Chain()
    records = [chain.add(AddBody(tuple(
        Item((HashEntry("pdq", pdq_hex(start + i)),), "ncii")
        for i in range(min(256, items - start))))) for start in range(0, items, 256)]
    store = store_at(tmp_path / "s")
    try:
        changes = store.ingest(records, source="peer")
    finally:
        store.close()

    ids, values = changes.added["pdq"]
    assert values == [pdq_hex(i) for i in range(items)]
    assert ids == list(range(1, items + 1))
    assert in_force([changes]) == active_entries(tmp_path / "s")


def test_a_page_that_does_not_extend_the_head_stores_nothing(tmp_path: Path) -> None:
    records = mixed_log()
    store = store_at(tmp_path / "s")
    try:
        with pytest.raises(GapError):
            store.ingest(records[:2] + records[3:], source="peer",
                         cursor=("peer", records[0].head.origin, len(records)))
        assert store.head(records[0].head.origin) is None
        assert store.cursor("peer", records[0].head.origin) == 0
    finally:
        store.close()
    assert all(rows == [] for rows in dump(tmp_path / "s").values())


def test_entries_point_at_their_records_and_read_back_with_ids_and_origins(
        tmp_path: Path) -> None:
    """Entries hold their record's number, not its id; reads join the id and origin back.
    Records are found by id through the id's 60-bit prefix and then the id itself."""
    records = mixed_log()
    store = store_at(tmp_path / "s")
    try:
        store.ingest(records, source="peer")
        first = records[0]
        entries = store.item_entries(first.id)
        by_id = store.entries(e.entry_id for e in entries)
        raws = [store.record_bytes(r.id) for r in records]
        assert store.record_bytes(first.id[:15] + "0" * 49) is None  # same id_key, other id
        assert store.record_bytes("not an id") is None
    finally:
        store.close()

    assert [(e.record, e.item, e.hash_type) for e in entries] == [
        (first.id, item, hash_type) for item in range(3) for hash_type in ("pdq", "md5")]
    assert {e.origin for e in entries} == {first.head.origin}
    assert [e.active for e in entries] == [True, True, False, False, False, False]
    assert by_id == {e.entry_id: e for e in entries}
    assert raws == [r.raw for r in records]


def test_a_database_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    store_at(tmp_path / "s").close()
    with sqlite3.connect(tmp_path / "s" / "store.db") as conn:
        conn.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    with pytest.raises(SchemaVersionError, match="schema version 1; this node needs"):
        Store(tmp_path / "s" / "store.db")


def test_active_entries_come_in_chunks_that_cover_exactly_the_hashes_in_force(
        tmp_path: Path) -> None:
    store = store_at(tmp_path / "s")
    store.ingest(mixed_log(), source="peer")
    chunks = list(store.active_entries("pdq", chunk=2))
    assert [len(ids) for ids, _ in chunks] == [2, 2, 1]
    loaded = {i: v for ids, values in chunks for i, v in zip(ids, values, strict=True)}
    assert loaded == {i: v for i, v in active_entries(tmp_path / "s").items()
                      if len(v) == 64}
    last_pdq = max(loaded)
    assert {i for ids, _ in store.active_entries("pdq", through=last_pdq - 1) for i in ids} \
        == set(loaded) - {last_pdq}
    store.close()


def uniform(start: int, items: int, hash_type: str = "pdq", **fields: Any) -> AddBody:
    """Items that differ only in their one hash's value: what a bulk add signs."""
    def value(i: int) -> str:
        return pdq_hex(start + i) if hash_type == "pdq" else f"{start + i:032x}"
    return AddBody(tuple(Item((HashEntry(hash_type, value(i)),), "ncii", **fields)
                         for i in range(items)))


def test_uniform_records_written_by_one_statement_store_what_rows_one_by_one_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A record whose items differ only in their hash values is one INSERT ... SELECT FROM
    json_each on SQLite (entries and change log); the rows, the change log and the changes
    for the matcher are those that the row-by-row path writes."""
    chain = Chain()
    target = chain.add(uniform(5000, 30))
    records = [
        chain.add(uniform(0, 256)),
        chain.add(uniform(300, 20, "md5", labels=("b", "a"), tier="helpline_verified",
                          expires=10**13)),
        chain.add(uniform(400, 5)),  # shorter than a run: rows of the change log as before
        chain.add(add(500, 3)),  # two hash types an item: rows
        chain.add(uniform(600, 40, expires=1_000)),  # expired when it arrives
        chain.add(revoke_body(f"{target.id}/3")),
    ]

    def run(path: Path) -> tuple[list[Changes], list[str]]:
        store = store_at(path)
        statements: list[str] = []
        try:
            with store.transaction() as conn:
                conn.execute("INSERT INTO meta (key, value) VALUES "
                             "('changes_expired_through', '2000')")
            store.conn.set_trace_callback(statements.append)
            changes = [store.ingest([target.stub(), *records], source="peer"),
                       store.ingest([target], source="peer")]  # revoked before its body
        finally:
            store.close()
        return changes, statements

    runs_changes, runs_sql = run(tmp_path / "runs")
    monkeypatch.setattr("hashmesh.node.store.sqlite._uniform_values", lambda items: None)
    rows_changes, rows_sql = run(tmp_path / "rows")

    assert sum("json_each" in s for s in runs_sql) == 2 * 4 - 1  # 4 records, 3 long runs
    assert not any("json_each" in s for s in rows_sql)
    assert dump(tmp_path / "runs") == dump(tmp_path / "rows")
    assert change_log(tmp_path / "runs") == change_log(tmp_path / "rows")
    assert [c.added for c in runs_changes] == [c.added for c in rows_changes]
    with sqlite3.connect(tmp_path / "runs" / "store.db") as conn:
        unexpired = dict(conn.execute("SELECT id, value FROM entries WHERE active=1 AND "
                                      "(expires IS NULL OR expires > 2000)").fetchall())
    assert in_force(runs_changes) == unexpired
    assert len(unexpired) == 256 + 20 + 5 + 2 * 3 + 30 - 1
    kinds = [kind for kind, *_ in change_log(tmp_path / "runs")]
    assert kinds.count("add") == 256 + 20 + 5 + 3 + 40 + 30
    assert kinds.count("expire") == 40 and kinds.count("revoke") == 1


def change_log(path: Path) -> list[tuple[Any, ...]]:
    """The change log in seq order, without commit times (which must grow with seq)."""
    with sqlite3.connect(path / "store.db") as conn:
        rows = conn.execute("SELECT kind, record_num, item, list, ref_num, ts FROM changes "
                            "ORDER BY seq").fetchall()
    times = [row[-1] for row in rows]
    assert times == sorted(set(times))
    return [row[:-1] for row in rows]


def test_a_bulk_add_read_as_one_column_stores_what_its_items_store(tmp_path: Path) -> None:
    """``hashmesh add --from`` requests are read as an ``ItemRun`` (a column of values, no
    object per item): signed and stored, its records, rows, change log and matcher changes
    are those of the same items as a tuple."""
    template = Item((HashEntry("pdq", pdq_hex(0)),), "ncii", ("b", "a"), "helpline_verified")
    items = [dataclasses.replace(template, hashes=(HashEntry("pdq", pdq_hex(i)),))
             for i in range(300)]
    region = ",".join(canonical.encode(item.to_json()).decode() for item in items)
    run = read_item_run(region)
    assert run is not None and len(run) == 300
    salts = ["A" * 22, "B" * 21 + "g"]

    def write(path: Path, first: Sequence[Item], second: Sequence[Item]) -> Changes:
        store = store_at(path)
        try:
            _, changes = store.append_local_many(
                signer=SIGNER, origin=SIGNER.id, ts=1_000,
                bodies=[AddBody(first, salts[0]), AddBody(second, salts[1])])
            return changes
        finally:
            store.close()

    by_run = write(tmp_path / "run", run[:256], run[256:])
    by_items = write(tmp_path / "items", tuple(items[:256]), tuple(items[256:]))
    assert dump(tmp_path / "run") == dump(tmp_path / "items")
    assert change_log(tmp_path / "run") == change_log(tmp_path / "items")
    assert by_run.added == by_items.added and len(by_run.added["pdq"][0]) == 300
