"""Holes are repaired: a stub is not the last word when someone may send us its body.

Three real nodes on loopback. O is an origin; R relays O's records; D peers with both. Links
sync only when poked (a write's push hint, a new link), so each test decides who D hears from
first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hashmesh.node.config.peers import add_peer, remove_peer
from tests.federation.cluster import Cluster, Node, eventually
from tests.federation.hostile import pdq

IDLE_INTERVAL = 3600


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    cluster = Cluster(tmp_path, pull_interval=IDLE_INTERVAL)
    for name in ("o", "r", "d"):
        cluster.make(name)
    await cluster.start()
    yield cluster
    await cluster.stop()


def peer(cluster: Cluster, at: str, other: str, **policy: object) -> None:
    """Configure ``other`` as a peer of ``at`` and reload ``at``."""
    add_peer(cluster.nodes[at].peers_file, cluster.peer_entry(cluster.nodes[other], **policy))
    cluster.reload_peers(at)


async def stubs_of(node: Node, origin: str) -> list[bool]:
    rows = await node.svc.store.read(lambda s: s.reader().execute(
        "SELECT stub FROM records WHERE origin=? ORDER BY seq", (origin,)).fetchall())
    return [bool(stub) for (stub,) in rows]


async def test_stub_from_a_relay_is_completed_by_the_origin(cluster: Cluster) -> None:
    """The issue's O/R/D case: R gives D only stubs, D pulls R first, then O."""
    o, r, d = (cluster.nodes[n] for n in ("o", "r", "d"))
    peer(cluster, "o", "r")
    peer(cluster, "r", "o")
    value = pdq(170)
    await o.add(value)
    await eventually(lambda: r.matches(value), what="R has O's record")

    peer(cluster, "r", "d", send_lists=())  # R's policy: D gets stubs of every add
    peer(cluster, "d", "r")

    async def d_holds_stub() -> bool:
        return await stubs_of(d, o.origin) == [False, True]  # init's key record, the add

    await eventually(d_holds_stub, what="D holds O's record as a stub from R")
    assert not await d.matches(value)

    peer(cluster, "o", "d")
    peer(cluster, "d", "o")

    await eventually(lambda: d.matches(value), what="D completes the stub from O")
    assert await stubs_of(d, o.origin) == [False, False]


async def test_widening_our_accept_policy_back_fills(cluster: Cluster) -> None:
    o, d = cluster.nodes["o"], cluster.nodes["d"]
    peer(cluster, "o", "d")
    peer(cluster, "d", "o", accept_lists=())  # D keeps no add bodies from O
    value = pdq(171)
    await o.add(value)

    async def d_holds_stub() -> bool:
        return await stubs_of(d, o.origin) == [False, True]  # init's key record, the add

    await eventually(d_holds_stub, what="D holds O's record as a stub")
    assert not await d.matches(value)

    remove_peer(d.peers_file, "o")
    peer(cluster, "d", "o")  # now D accepts every list from O

    await eventually(lambda: d.matches(value), what="D back-fills after the reload")
    assert await stubs_of(d, o.origin) == [False, False]
