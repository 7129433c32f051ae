"""What a node commits from a pull, it matches: whatever ends the pull (issue 18, items 1 and
9). Real nodes on loopback, real SQLite files; faults are real ones (a full database, a
peers.toml edit, a concurrent revoke from another peer)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hashmesh.node.config.peers import PeerConfig, add_peer, remove_peer
from hashmesh.node.federation.sync import Federation
from hashmesh.protocol.records import Distribution, HashEntry, Item
from tests.federation.cluster import Cluster, Node, eventually
from tests.invariants import assert_index_matches_store, assert_matches_every_stored_hash

IDLE = 3600  # links pull when poked only: rounds are the tests' own


def pdq(seed: int) -> str:
    return f"{random.Random(seed).getrandbits(256):064x}"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path, pull_interval=IDLE)
    yield c
    await c.stop()


def small_pages(node: Node, records: int) -> None:
    config = node.directory / "node.toml"
    config.write_text(config.read_text() + f"\n[limits]\nmax_page_records = {records}\n")


async def fill(node: Node, records: int, hashes: int, seed: int = 0) -> list[str]:
    """``records`` add records of ``hashes`` pdq hashes each; returns every value."""
    values = []
    for r in range(records):
        batch = [pdq(seed + r * hashes + i) for i in range(hashes)]
        values += batch
        items = [Item((HashEntry("pdq", v),), "ncii") for v in batch]
        await node.svc.add(items, Distribution(), "test")
    return values


def federation(node: Node) -> Federation:
    assert node.svc.federation is not None
    return node.svc.federation


def serve_to(cluster: Cluster, server: Node, client: Node) -> PeerConfig:
    """Let ``client`` pull from ``server`` (which then knows its node key) without a link of
    ``client``'s own: the pulls are the test's, in a known order."""
    add_peer(server.peers_file, cluster.peer_entry(client))
    cluster.reload_peers(server.name)
    return cluster.peer_entry(server)


async def stored_records(node: Node, origin: str) -> int:
    head = await node.svc.store.read(lambda s: s.head(origin))
    return 0 if head is None else head.seq


async def test_pages_committed_before_a_failed_commit_are_matched(cluster: Cluster) -> None:
    a, b = cluster.make("a"), cluster.make("b")
    small_pages(a, 2)
    await cluster.start()
    await fill(a, 30, 40)
    total = await stored_records(a, a.origin)  # the 30 adds after init's key record
    # b's database may grow by a few pages only: later sync pages fail with SQLITE_FULL,
    # a real "database or disk is full", after the first ones committed
    await b.svc.store.write(lambda s: s.conn.execute(
        "PRAGMA max_page_count = " + str(s.conn.execute("PRAGMA page_count").fetchone()[0] + 40)))
    peer = serve_to(cluster, a, b)
    with pytest.raises(Exception, match="full"):
        await federation(b).sync_with(peer)
    held = await stored_records(b, a.origin)
    assert 0 < held < total, f"the commit failed after {held} records; adjust max_page_count"
    await assert_matches_every_stored_hash(b.svc)

    await b.svc.store.write(lambda s: s.conn.execute("PRAGMA max_page_count = 1073741823"))
    await federation(b).sync_with(peer)
    assert await stored_records(b, a.origin) == total
    await assert_matches_every_stored_hash(b.svc)
    await assert_index_matches_store(b.svc)


async def test_peers_edit_during_a_pull_leaves_every_committed_hash_matched(
        cluster: Cluster) -> None:
    a, b = cluster.make("a"), cluster.make("b")
    small_pages(a, 1)
    await cluster.start()
    await fill(a, 40, 200)
    cluster.link("a", "b")
    cluster.reload_peers("a")
    cluster.reload_peers("b")  # starts b's link to a: it pulls at once
    await eventually(lambda: _holds_some(b, a.origin), what="b commits its first page")
    # the operator edits a's entry while the pull runs: the link is cancelled and replaced
    remove_peer(b.peers_file, "a")
    add_peer(b.peers_file, cluster.peer_entry(a, accept_labels=("intimate",)))
    cluster.reload_peers("b")
    held = await stored_records(b, a.origin)
    assert held < 40, "the pull ended before the edit; make the log longer"
    # 40 adds after init's key record (seq 1)
    await eventually(lambda: _holds_all(b, a.origin, 41), what="b finishes with the new link")
    await asyncio.sleep(0.2)
    await assert_matches_every_stored_hash(b.svc)
    await assert_index_matches_store(b.svc)


async def _holds_some(node: Node, origin: str) -> bool:
    return await stored_records(node, origin) > 0


async def _holds_all(node: Node, origin: str, count: int) -> bool:
    return await stored_records(node, origin) == count


async def test_revoke_from_another_peer_during_a_pull_leaves_no_dead_entry(
        cluster: Cluster) -> None:
    """b pulls a's log from a (slowly, page by page) and, meanwhile, a's revoke of its first
    record from c. The revoke commits after the add and must not reach b's index first."""
    a, b, c = cluster.make("a"), cluster.make("b"), cluster.make("c")
    small_pages(a, 1)
    await cluster.start()
    first = await a.add(pdq(10**6))
    await fill(a, 60, 100)
    await a.revoke(first)
    await federation(c).sync_with(serve_to(cluster, a, c))
    assert await stored_records(c, a.origin) == 63  # init's key record, 61 adds, the revoke
    from_a, from_c = serve_to(cluster, a, b), serve_to(cluster, c, b)
    pulling = asyncio.ensure_future(federation(b).pull_origin(from_a, a.origin, None, 62))
    await eventually(lambda: _holds_some(b, a.origin), what="b commits a's first record")
    await federation(b).sync_with(from_c)  # the rest, and the revoke, from c
    await pulling
    assert not await b.matches(pdq(10**6))
    await assert_index_matches_store(b.svc)


async def test_a_replaced_link_is_stopped_before_federation_stop_returns(
        cluster: Cluster) -> None:
    """``reconcile`` used to start ``link.stop()`` as a task nobody kept or awaited. This pins
    that ``Federation.stop`` now waits for it; it also passes on the old code (the removed
    link unwinds fast either way), so it is not a proof that the old code failed."""
    a, b = cluster.make("a"), cluster.make("b")
    small_pages(a, 1)
    await cluster.start()
    await fill(a, 30, 200)
    cluster.link("a", "b")
    cluster.reload_peers("a")
    cluster.reload_peers("b")
    await eventually(lambda: _holds_some(b, a.origin), what="b's pull is under way")
    old = federation(b).links["a"]
    remove_peer(b.peers_file, "a")
    cluster.reload_peers("b")  # the link is stopped in the background
    await federation(b).stop()
    assert old.task is not None and old.task.done(), "the removed link still runs"
    await assert_index_matches_store(b.svc)
