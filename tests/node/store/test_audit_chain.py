"""The audit log's hash chain, on both backends: every row links to the one before, a row
edited or removed breaks the chain at the line that names it, and several processes writing
at once (match workers beside the node) still extend one linear chain."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from hashmesh.node.config.node import NodeConfig
from hashmesh.node.store.audit_chain import GENESIS, export_line, verify_lines
from hashmesh.node.store.sqlite import Store
from tests.node.store import test_contract
from tests.protocol.builders import ROOT, add_body, pdq_hex

backend = test_contract.backend  # the contract's fixtures: both engines
store = test_contract.store


def export(store: Store) -> list[str]:
    lines, after = [], 0
    while page := store.audit_page(after, 3):  # small pages: paging is part of the contract
        lines += [export_line(row) for row in page]
        after = page[-1]["id"]
    return lines


def test_every_row_links_to_the_one_before(store: Store) -> None:
    store.append_local(signer=ROOT, origin=ROOT.id, body=add_body(pdq_hex(1)))
    store.audit_many([(1, "platform", "match", '{"queries": 1}'),
                      (2, "platform", "match", '{"queries": 2}')])
    store.audit("operator", "case_open", {"case_id": "c1"})
    lines = export(store)
    rows = [json.loads(line) for line in lines]
    assert [r["id"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["prev"] == GENESIS
    assert all(rows[i]["prev"] == rows[i - 1]["hash"] for i in range(1, 4))
    check = verify_lines(lines)
    assert check.ok and check.rows == 4 and check.head_hash == rows[-1]["hash"]
    assert store.audit_rows(1)[0]["hash"] == rows[-1]["hash"]
    between = store.audit_between(1, 3, ("match", "case_open"))  # [start, end) by ts
    assert [(r["ts"], r["detail"]) for r in between] == [(1, {"queries": 1}),
                                                         (2, {"queries": 2})]


def test_an_edited_or_removed_row_is_named(store: Store) -> None:
    for n in range(5):
        store.audit("operator", "note", {"n": n})
    lines = export(store)
    edited = lines.copy()
    edited[2] = edited[2].replace('"n":2', '"n":7')
    assert verify_lines(edited).bad_line == 3
    assert "edited" in (verify_lines(edited).fault or "")
    removed = lines[:1] + lines[2:]
    check = verify_lines(removed)
    assert check.bad_line == 2 and "prev" in (check.fault or "")
    rehashed = [json.loads(line) for line in edited]  # edited, and its own hash recomputed
    from hashmesh.node.store.audit_chain import row_hash
    rehashed[2]["hash"] = row_hash(rehashed[2])
    assert verify_lines([json.dumps(r) for r in rehashed]).bad_line == 4
    assert verify_lines(lines[2:]).ok  # a later slice checks from its first line


def _write_rows(url: str | None, path: Path, actor: str, rounds: int) -> None:
    """A match worker's writes: its own process, the node's database opened as follower."""
    if url is None:
        opened = Store(path, follower=True)
    else:
        from hashmesh.node.store.postgres import PostgresStore
        opened = PostgresStore(url, follower=True)
    try:
        for n in range(rounds):
            opened.audit_many([(n, actor, "match", json.dumps({"queries": n}))] * 2)
    finally:
        opened.close()


def test_writers_in_several_processes_keep_one_linear_chain(
        backend: NodeConfig, store: Store) -> None:
    store.audit("node", "start", {})
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_rows,
                               args=(backend.store_url, backend.db_path, f"worker-{i}", 25))
               for i in range(3)]
    for worker in workers:
        worker.start()
    for n in range(25):
        store.audit("node", "note", {"n": n})
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    lines = export(store)
    assert len(lines) == 1 + 25 + 3 * 25 * 2
    check = verify_lines(lines)
    assert check.ok, (check.bad_line, check.fault)


def test_rows_written_before_the_chain_are_chained_when_the_node_opens(tmp_path: Path) -> None:
    import sqlite3
    path = tmp_path / "old.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE audit SET prev=NULL, hash=NULL")
    conn.executemany("INSERT INTO audit (ts, actor, action, detail) VALUES (?,?,?,?)",
                     [(1, "old", "note", "{}"), (2, "old", "note", '{"a": 1}')])
    conn.commit()
    conn.close()
    reopened = Store(path)
    try:
        lines = export(reopened)
        assert len(lines) == 2 and verify_lines(lines).ok
    finally:
        reopened.close()


@pytest.mark.parametrize("line", ["not json", "[1]", '{"id": 1}'])
def test_a_malformed_line_is_named(line: str) -> None:
    check = verify_lines([line])
    assert check.bad_line == 1 and check.fault
