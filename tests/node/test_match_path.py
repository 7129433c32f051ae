"""The match hot path: batched index lookups and the queued audit of matches."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest

import hashmesh.node.store.sqlite
from hashmesh.node.service import HashQuery, NodeService
from hashmesh.node.store.sqlite import AUDIT_FLUSH_SECONDS, Store
from hashmesh.protocol.records import Distribution, HashEntry, Item
from tests.conftest import NodeDir


def pdq(seed: int) -> str:
    return f"{random.Random(seed).getrandbits(256):064x}"


def flip(value: str, bits: int) -> str:
    number = int(value, 16)
    for bit in range(bits):
        number ^= 1 << (bit * 5)
    return f"{number:064x}"


async def add_pdq(service: NodeService, *values: str) -> str:
    items = [Item(hashes=(HashEntry("pdq", v),), list="ncii") for v in values]
    [record] = await service.add(items, Distribution(), "test")
    return record.id


def match_audits(store: Store) -> list[dict[str, Any]]:
    return [row for row in store.audit_rows() if row["action"] == "match"]


async def test_concurrent_matches_are_batched_and_answered_as_one_by_one(
        service: NodeService, monkeypatch: pytest.MonkeyPatch) -> None:
    stored = [pdq(i) for i in range(50)]
    await add_pdq(service, *stored)
    queries = [(flip(stored[i], i % 40), {"pdq": 20 + i % 3}) for i in range(40)]
    queries += [(pdq(1000 + i), {}) for i in range(20)]
    one_by_one = [await service.match([HashQuery("pdq", v)], t, None, "test") for v, t in queries]

    batches: list[int] = []
    real = service.matcher.query_many

    def counting(hash_type: str, values: list[str], threshold: int) -> Any:
        batches.append(len(values))
        return real(hash_type, values, threshold)

    monkeypatch.setattr(service.matcher, "query_many", counting)
    together = await asyncio.gather(*(service.match([HashQuery("pdq", v)], t, None, "test")
                                      for v, t in queries))
    assert together == one_by_one
    assert sum(batches) == len(queries) and len(batches) < len(queries)
    assert any(r[0]["matches"] for r in together) and any(not r[0]["matches"] for r in together)


async def test_match_audit_row_is_committed_within_the_flush_interval(
        service: NodeService) -> None:
    value = pdq(1)
    record = await add_pdq(service, value)
    await service.match([HashQuery("pdq", pdq(2))], {}, None, "token:miss")
    await service.match([HashQuery("pdq", flip(value, 3))], {}, None, "token:platform")
    deadline = time.monotonic() + AUDIT_FLUSH_SECONDS + 5
    while not (rows := await service.store.read(match_audits)):
        assert time.monotonic() < deadline, "match audit row not committed"
        await asyncio.sleep(0.02)
    assert [(r["actor"], r["detail"]) for r in rows] == [
        ("token:platform", {"queries": 1, "matched_records": [record],
                            "origins": [service.origin]})]


async def test_queued_match_audit_rows_are_written_when_the_node_closes(
        node_dir: NodeDir, monkeypatch: pytest.MonkeyPatch) -> None:
    # only close() can write
    monkeypatch.setattr(hashmesh.node.store.sqlite, "AUDIT_FLUSH_SECONDS", 600.0)
    service = await NodeService.open(node_dir.config())
    value = pdq(3)
    record = await add_pdq(service, value)
    for _ in range(3):
        await service.match([HashQuery("pdq", value)], {}, None, "token:platform")
    await service.close()
    store = Store(node_dir.config().db_path)
    try:
        rows = match_audits(store)
    finally:
        store.close()
    assert [r["detail"]["matched_records"] for r in rows] == [[record]] * 3
