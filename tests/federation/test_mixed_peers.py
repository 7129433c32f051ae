"""Peers whose configs differ still sync (issue 18, item 3): page limits, policies, listeners.

Node a serves small pages (3 records, 64 KiB) and takes pages of 64 KiB; node b keeps the
defaults (5,000 records, 4 MiB); node c takes only ``intimate`` records from b and gives its
peers a listener of its own. Before the fix, b asked a for 5,000 records and got 400, and a
refused b's 4 MiB pages as too large: both retried for ever.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from hashmesh.node.api.app import create_peer_app
from hashmesh.node.config.peers import add_peer
from hashmesh.protocol.records import Distribution, HashEntry, Item
from tests.conftest import free_port
from tests.federation.cluster import Cluster, Node, eventually
from tests.invariants import assert_index_matches_store


def pdq(seed: int) -> str:
    return f"{random.Random(seed).getrandbits(256):064x}"


def append_config(node: Node, text: str) -> None:
    config = node.directory / "node.toml"
    config.write_text(config.read_text() + text)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path)
    yield c
    await c.stop()


async def add_many(node: Node, seed: int, records: int, labels: tuple[str, ...]) -> list[str]:
    values = []
    for r in range(records):
        batch = [pdq(seed * 10**6 + 1000 * r + i) for i in range(120)]  # ~14 KiB a record
        values += batch
        await node.svc.add([Item((HashEntry("pdq", v),), "ncii", labels=labels) for v in batch],
                           Distribution(), "test")
    return values


async def test_peers_with_different_limits_policies_and_listeners_sync(
        cluster: Cluster) -> None:
    a, b, c = cluster.make("a"), cluster.make("b"), cluster.make("c")
    append_config(a, "\n[limits]\nmax_page_records = 3\nmax_page_bytes = 65536\n")
    c_peer_port = free_port(c.host)
    append_config(c, f"\n[federation.listen]\nport = {c_peer_port}\n")
    await cluster.start()
    peer_runner = web.AppRunner(create_peer_app(c.svc), handle_signals=False, access_log=None)
    await peer_runner.setup()
    await web.TCPSite(peer_runner, c.host, c_peer_port).start()
    try:
        from_a = await add_many(a, 1, 12, ())
        from_b = await add_many(b, 2, 12, ("other",))  # 170 KiB: beyond a's 64 KiB cap
        intimate = await add_many(b, 3, 2, ("intimate",))
        cluster.link("a", "b")
        add_peer(b.peers_file, cluster.peer_entry(c).__class__(
            **{**cluster.peer_entry(c).__dict__, "url": f"http://{c.host}:{c_peer_port}"}))
        add_peer(c.peers_file, cluster.peer_entry(b, accept_labels=("intimate",)))
        for name in ("a", "b", "c"):
            cluster.reload_peers(name)

        async def synced() -> bool:
            # a's and b's logs everywhere (c's own log holds only init's key record)
            heads = [{o: h for o, h in (await node.heads()).items() if o in (a.origin, b.origin)}
                     for node in (a, b, c)]
            return len(heads[0]) == 2 and heads[0] == heads[1] == heads[2]

        await eventually(synced, timeout=30, what="a, b and c converge (c through b)")
        assert all([await a.matches(v) for v in (from_b[0], from_b[-1], intimate[0])])
        assert all([await b.matches(v) for v in (from_a[0], from_a[-1])])
        await eventually(lambda: _matches(c, intimate[-1]), what="c gets b's intimate records")
        assert not await c.matches(from_b[0])  # not on c's accept list: a stub only
        for node in (a, b, c):
            await assert_index_matches_store(node.svc)
        assert a.svc.metrics.registry.get_sample_value("hashmesh_peer_up", {"peer": "b"}) == 1
    finally:
        await peer_runner.cleanup()


async def _matches(node: Node, value: str) -> bool:
    return bool(await node.matches(value))
