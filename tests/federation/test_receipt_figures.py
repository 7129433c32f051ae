"""Per-node figures on real nodes (issue 12, item 4): the propagation histograms fed by
receipts, ``/v1/status``'s receipt figures, and ``hashmesh_peer_records_behind``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hashmesh.node.config.peers import add_peer
from hashmesh.protocol.keys import PublicKey
from tests.federation.cluster import Cluster, Node, eventually

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path, pull_interval=1)
    yield c
    await c.stop()


def fast_receipts(node: Node) -> None:
    config = node.directory / "node.toml"
    config.write_text(config.read_text() + "\n[receipts]\ninterval_seconds = 1\n")


def sample(at: Node, name: str, **labels: str) -> float | None:
    return at.svc.metrics.registry.get_sample_value(name, labels)


async def test_receipts_feed_the_histograms_and_the_status_figures(cluster: Cluster) -> None:
    a, b = cluster.make("a"), cluster.make("b")
    fast_receipts(b)
    cluster.link("a", "b")
    await cluster.start()
    added = await a.add(PDQ)

    async def active_receipt() -> bool:
        return bool(sample(a, "hashmesh_receipt_time_to_active_seconds_count", node="b"))

    await eventually(active_receipt, what="B's active receipt observed at A")
    revoked = await a.revoke(added)

    async def removal_receipt() -> bool:
        return bool(sample(a, "hashmesh_receipt_time_to_removal_seconds_count", node="b"))

    await eventually(removal_receipt, what="B's removed receipt observed at A")
    total = sample(a, "hashmesh_receipt_time_to_removal_seconds_sum", node="b")
    assert total is not None and 0 <= total < 60
    status = await a.svc.status()
    [figures] = [n for n in status["receipts"]["nodes"] if n["origin"] == b.origin]
    assert figures["name"] == "b"
    assert figures["time_to_active"]["count"] == 1
    assert figures["time_to_removal"]["count"] == 1
    assert figures["time_to_removal"]["p50"] == figures["time_to_removal"]["max"] >= 0
    record = await a.svc.record(revoked)
    assert [(r["name"], r["kind"]) for r in record["receipts"]] == [("b", "removed")]


async def test_records_behind_counts_what_a_peer_lacks_per_origin(cluster: Cluster) -> None:
    """B takes nothing of A's origin (its accept policy), so B's heads never show A's log:
    A's gauge for B says how many of A's records B lacks, and 0 for B's own."""
    a, b = cluster.make("a"), cluster.make("b")
    add_peer(a.peers_file, cluster.peer_entry(b))
    add_peer(b.peers_file, cluster.peer_entry(a, accept_origins=(PublicKey.from_id(
        b.origin),)))
    await cluster.start()
    for i in range(3):
        await a.add(f"{i:064x}")
    federation = a.svc.federation
    assert federation is not None
    peer = a.svc.peers.by_name("b")
    assert peer is not None
    await federation.sync_with(peer)
    head = await a.svc.store.read(lambda s: s.head(a.origin))
    assert head is not None
    assert sample(a, "hashmesh_peer_records_behind", peer="b", origin=a.origin) == head.seq
    assert sample(a, "hashmesh_peer_records_behind", peer="b", origin="b") == 0
