"""A match worker's view of the node's store, in process: what it indexes, answers and reports.

The processes themselves (started by ``hashmesh run``, restarted, stopped) are tested with the
real CLI in ``test_cli_match_workers.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from hashmesh.node.api.match_pool import WorkerMetrics
from hashmesh.node.api.match_worker import DatabaseMovedError, MatchWorker
from hashmesh.node.service import HashQuery, NodeService
from hashmesh.node.store.sqlite import Store, StoreError, database_identity, now_ms
from hashmesh.protocol.keys import SigningKey
from hashmesh.protocol.records import Distribution, HashEntry, Item, Target
from tests.conftest import NodeDir
from tests.node.test_match_path import add_pdq, flip, match_audits, pdq


@pytest.fixture
async def worker(service: NodeService, node_dir: NodeDir) -> AsyncIterator[MatchWorker]:
    opened = MatchWorker(node_dir.config(), service.origin)
    await opened.load()
    yield opened
    opened.close()


async def matched_records(worker: MatchWorker, value: str) -> list[str]:
    [result] = await worker.matching.match([HashQuery("pdq", value)], {}, None, "token:t")
    return [m["record"] for m in result["matches"]]


async def test_a_worker_loads_what_the_node_holds_and_answers_as_the_node_does(
        service: NodeService, node_dir: NodeDir) -> None:
    stored = [pdq(i) for i in range(20)]
    await add_pdq(service, *stored)
    worker = MatchWorker(node_dir.config(), service.origin)
    await worker.load()
    try:
        assert worker.matching.matcher.count("pdq") == 20
        for query in (flip(stored[3], 7), pdq(999)):
            ours = await worker.matching.match([HashQuery("pdq", query)], {}, None, "t")
            assert ours == await service.match([HashQuery("pdq", query)], {}, None, "t")
    finally:
        worker.close()


async def test_a_worker_follows_what_the_node_commits_after_it_loaded(
        service: NodeService, worker: MatchWorker) -> None:
    value = pdq(1)
    record = await add_pdq(service, value)
    assert worker.matching.matcher.count("pdq") == 0  # not followed yet
    assert await worker.follow() == 1
    assert await matched_records(worker, flip(value, 5)) == [record]
    assert await worker.follow() == 0


async def test_a_worker_catches_up_before_it_answers_a_query_sent_after_an_add(
        service: NodeService, worker: MatchWorker) -> None:
    """No follow tick in between: the lookup batch itself brings the index up to date."""
    value = pdq(11)
    record = await add_pdq(service, value)
    assert worker.matching.matcher.count("pdq") == 0
    assert await matched_records(worker, flip(value, 3)) == [record]
    assert worker.matching.matcher.count("pdq") == 1
    assert await worker.follow() == 0


async def test_a_revoked_hash_is_never_answered_and_then_leaves_the_worker_index(
        service: NodeService, worker: MatchWorker) -> None:
    value = pdq(2)
    record = await add_pdq(service, value)
    await worker.follow()
    assert await matched_records(worker, value) == [record]
    await service.revoke([Target(record)], "withdrawn", "test")
    assert worker.matching.matcher.count("pdq") == 1  # the worker has not been told
    assert await matched_records(worker, value) == []  # the store has
    await worker.follow()
    assert worker.matching.matcher.count("pdq") == 0


async def test_hashes_expired_or_revoked_before_the_worker_saw_them_are_not_indexed(
        service: NodeService, worker: MatchWorker) -> None:
    expiring = Item(hashes=(HashEntry("pdq", pdq(3)),), list="ncii", expires=now_ms() + 100)
    await service.add([expiring], Distribution(), "test")
    revoked = await add_pdq(service, pdq(4))
    await service.revoke([Target(revoked)], "withdrawn", "test")
    kept = await add_pdq(service, pdq(5))
    await asyncio.sleep(0.2)
    assert await worker.follow() == 1
    assert worker.matching.matcher.count("pdq") == 1
    assert await matched_records(worker, pdq(5)) == [kept]
    assert await matched_records(worker, pdq(3)) == []


async def test_a_worker_audits_its_matches_in_the_node_database(
        service: NodeService, worker: MatchWorker) -> None:
    record = await add_pdq(service, pdq(6))
    await worker.follow()
    await worker.matching.match([HashQuery("pdq", pdq(6))], {}, None, "token:platform")
    await worker.store.flush_audit()
    rows = await service.store.read(match_audits)
    assert [(r["actor"], r["detail"]) for r in rows] == [
        ("token:platform", {"queries": 1, "matched_records": [record],
                            "origins": [service.origin]})]


async def test_a_worker_names_origins_from_the_peers_file_it_rereads(
        service: NodeService, worker: MatchWorker, node_dir: NodeDir) -> None:
    other = SigningKey(bytes(range(96, 128))).id  # a strict key (all-zero bytes are not one)
    assert worker.origin_name(service.origin) == node_dir.config().name
    assert worker.origin_name(other) is None
    peers_file = node_dir.config().federation.peers_file
    peers_file.write_text(f'[[peer]]\nname = "helpline-x"\nurl = "https://x.example"\n'
                          f'node_key = "{other}"\norigin = "{other}"\n')
    worker.reload_peers_if_changed()
    assert worker.origin_name(other) == "helpline-x"


async def test_a_worker_refuses_a_database_that_is_not_the_one_the_node_has_open(
        service: NodeService, node_dir: NodeDir) -> None:
    config = node_dir.config()
    with pytest.raises(DatabaseMovedError, match="no longer the database the node has open"):
        MatchWorker(config, service.origin, database=(0, 0))
    worker = MatchWorker(config, service.origin, database_identity(config.db_path))
    try:
        await worker.load()
        config.db_path.rename(config.db_path.with_suffix(".moved"))
        config.db_path.write_bytes(b"")
        with pytest.raises(DatabaseMovedError):
            await worker.follow()
    finally:
        worker.close()


def test_a_worker_needs_the_node_database_and_creates_none(tmp_path: Any) -> None:
    with pytest.raises(StoreError, match="no database here"):
        Store(tmp_path / "missing.db", follower=True)
    assert not (tmp_path / "missing.db").exists()


async def test_worker_counters_are_summed_and_survive_a_worker_restart(
        service: NodeService, worker: MatchWorker) -> None:
    await add_pdq(service, pdq(7))
    await worker.follow()
    for _ in range(3):
        await worker.matching.match([HashQuery("pdq", pdq(7))], {}, None, "t")
    summed = WorkerMetrics()
    registry = CollectorRegistry()
    registry.register(summed)
    summed.update(0, worker.report()["metrics"])
    summed.update(1, worker.report()["metrics"])
    assert _sample(registry, "hashmesh_match_workers_match_hits_total", hash_type="pdq") == 6
    assert _sample(registry, "hashmesh_match_workers_match_seconds_count") == 6
    summed.retire(1)  # worker 1 died: its counts stay; its replacement starts from zero
    summed.update(1, [])
    assert _sample(registry, "hashmesh_match_workers_match_queries_total", hash_type="pdq") == 6
    text = generate_latest(registry).decode()
    buckets = [line for line in text.splitlines()
               if line.startswith("hashmesh_match_workers_match_seconds_bucket")]
    assert buckets[-1].startswith('hashmesh_match_workers_match_seconds_bucket{le="+Inf"}')


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def test_a_worker_gives_the_node_verdicts_disputed_included(
        service: NodeService, worker: MatchWorker) -> None:
    from hashmesh.protocol.keys import SigningKey
    from tests.protocol.builders import Chain, feedback_body

    value = pdq(11)
    record = await add_pdq(service, value)
    await worker.follow()
    disputes = [Chain(SigningKey(bytes([n] * 32))).add(feedback_body(record, "not_ncii"))
                for n in (21, 22)]
    await service.store.write(lambda s: s.ingest(disputes, source="peer"))
    query = [HashQuery("pdq", flip(value, 3))]
    node = await service.matching.answer(query, {}, None, "t")
    ours = await worker.matching.answer(query, {}, None, "t")
    assert ours["verdict"] == node["verdict"] == "disputed"
    assert ours["items"] == node["items"]
