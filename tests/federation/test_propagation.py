"""Records travel peer to peer, transitively, and revocations follow them everywhere."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hashmesh.protocol.records import Distribution
from tests.federation.cluster import Cluster, eventually
from tests.invariants import assert_index_matches_store


def pdq(seed: int) -> str:
    return f"{random.Random(seed).getrandbits(256):064x}"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path)
    yield c
    try:
        for node in c.nodes.values():  # every scenario ends with what each node holds matched
            if node.service is not None:
                await assert_index_matches_store(node.service)
    finally:
        await c.stop()


async def matches_on(cluster: Cluster, name: str, value: str) -> bool:
    return bool(await cluster.nodes[name].matches(value))


async def test_add_on_a_matches_on_c_two_hops_away_and_revoke_follows(cluster: Cluster) -> None:
    for name in "abc":
        cluster.make(name)
    cluster.link("a", "b")
    cluster.link("b", "c")
    await cluster.start()
    a, c = cluster.nodes["a"], cluster.nodes["c"]

    value = pdq(1)
    record_id = await a.add(value)
    await eventually(lambda: matches_on(cluster, "c", value), what="add reaches c")
    [found] = await c.matches(value)
    assert found["record"] == record_id and found["origin"] == a.origin
    [via_b] = await cluster.nodes["b"].matches(value)
    assert via_b["origin_name"] == "a", "a direct peer's origin is shown by its peer name"

    await a.revoke(record_id)
    await eventually(lambda: _not(matches_on(cluster, "c", value)), what="revoke reaches c")
    assert (await c.heads())[a.origin] == (await a.heads())[a.origin]


async def _not(check: object) -> bool:
    return not await check  # type: ignore[misc]


async def test_five_node_mesh_with_a_cycle_converges(cluster: Cluster) -> None:
    for name in "abcde":
        cluster.make(name)
    for a, b in [("a", "b"), ("b", "c"), ("c", "d"), ("d", "e"), ("e", "b"), ("c", "a")]:
        cluster.link(a, b)
    await cluster.start()
    ids = {}
    for seed, name in enumerate("abcde"):
        ids[name] = await cluster.nodes[name].add(pdq(100 + seed))
    await cluster.nodes["d"].revoke(ids["d"])

    async def converged() -> bool:
        heads = [await cluster.nodes[n].heads() for n in "abcde"]
        return all(h == heads[0] for h in heads) and len(heads[0]) == 5

    await eventually(converged, what="all heads equal")
    states = [await cluster.nodes[n].active_refs() for n in "abcde"]
    assert all(state == states[0] for state in states)
    assert {value for _, _, value in states[0]} == {pdq(100), pdq(101), pdq(102), pdq(104)}


async def test_partition_and_heal_converge_to_identical_heads_and_state(cluster: Cluster) -> None:
    for name in "abc":
        cluster.make(name)
    cluster.link("a", "b")
    cluster.link("b", "c")
    await cluster.start()
    shared = await cluster.nodes["a"].add(pdq(200))
    await eventually(lambda: matches_on(cluster, "c", pdq(200)), what="initial sync")

    cluster.unlink("b", "c")
    cluster.reload_peers("b")
    cluster.reload_peers("c")
    left = await cluster.nodes["a"].add(pdq(201))
    await cluster.nodes["a"].revoke(shared)
    right = await cluster.nodes["c"].add(pdq(202))
    await cluster.nodes["c"].revoke(right)
    await cluster.nodes["c"].add(pdq(203))
    await eventually(lambda: matches_on(cluster, "b", pdq(201)), what="a-b side syncs")
    assert not await cluster.nodes["c"].matches(pdq(201))
    assert await cluster.nodes["c"].matches(pdq(200))

    cluster.link("b", "c")
    cluster.reload_peers("b")
    cluster.reload_peers("c")

    async def healed() -> bool:
        heads = [await cluster.nodes[n].heads() for n in "abc"]
        # a and c wrote; b's only record is init's key record (as are a's and c's first)
        return heads[0] == heads[1] == heads[2] and len(heads[0]) == 3

    await eventually(healed, what="heads equal after heal")
    states = [await cluster.nodes[n].active_refs() for n in "abc"]
    assert states[0] == states[1] == states[2]
    assert {value for _, _, value in states[0]} == {pdq(201), pdq(203)}
    assert left in {record for record, _, _ in states[0]}


async def test_direct_peers_only_record_never_reaches_c(cluster: Cluster) -> None:
    for name in "abc":
        cluster.make(name)
    cluster.link("a", "b")
    cluster.link("b", "c")
    await cluster.start()
    private = await cluster.nodes["a"].add(pdq(300), dist=Distribution("peers"))
    public = await cluster.nodes["a"].add(pdq(301))
    await eventually(lambda: matches_on(cluster, "c", pdq(301)), what="public record reaches c")
    assert await cluster.nodes["b"].matches(pdq(300))
    assert not await cluster.nodes["c"].matches(pdq(300))
    raw = await cluster.nodes["c"].svc.store.read(lambda s: s.record_bytes(private))
    assert raw is not None and b'"body"' not in raw, "c holds only the stub of the private record"
    assert public in {r for r, _, _ in await cluster.nodes["c"].active_refs()}


async def test_list_not_shared_with_a_peer_never_reaches_it(cluster: Cluster) -> None:
    for name in "ab":
        cluster.make(name)
    cluster.link("a", "b", send_lists=("ncii",), accept_lists=("ncii",))
    await cluster.start()
    a = cluster.nodes["a"]
    await a.add(pdq(400), list_name="internal")
    await a.add(pdq(401))
    await eventually(lambda: matches_on(cluster, "b", pdq(401)), what="shared list reaches b")
    assert not await cluster.nodes["b"].matches(pdq(400))
    assert (await cluster.nodes["b"].heads())[a.origin] == (await a.heads())[a.origin]


async def test_group_scoped_record_reaches_only_group_members(cluster: Cluster) -> None:
    for name in "abc":
        cluster.make(name)
    group = "0a9c0a9c0a9c0a9c0a9c0a9c0a9c0a9c"  # a v2 group id is opaque (SPEC §9.1)
    add_group = {"groups": (group,)}
    from hashmesh.node.config.peers import add_peer

    add_peer(cluster.nodes["a"].peers_file, cluster.peer_entry(cluster.nodes["b"], **add_group))
    add_peer(cluster.nodes["b"].peers_file, cluster.peer_entry(cluster.nodes["a"]))
    cluster.link("a", "c")
    await cluster.start()
    await cluster.nodes["a"].add(pdq(500), dist=Distribution("group", group))
    await cluster.nodes["a"].add(pdq(501))
    await eventually(lambda: matches_on(cluster, "b", pdq(501)), what="b synced")
    await eventually(lambda: matches_on(cluster, "c", pdq(501)), what="c synced")
    assert await cluster.nodes["b"].matches(pdq(500))
    assert not await cluster.nodes["c"].matches(pdq(500))


async def test_peer_added_to_config_of_a_running_node_takes_effect(cluster: Cluster) -> None:
    for name in "ab":
        cluster.make(name)
    await cluster.start()
    await cluster.nodes["a"].add(pdq(600))
    cluster.link("a", "b")
    # No explicit reload: the running nodes notice the changed files themselves.
    await eventually(lambda: matches_on(cluster, "b", pdq(600)), what="b picks up new peer")


async def test_invalid_peers_edit_is_refused_and_old_config_kept(cluster: Cluster) -> None:
    for name in "ab":
        cluster.make(name)
    cluster.link("a", "b")
    await cluster.start()
    a = cluster.nodes["a"]
    before = a.svc.peers
    a.peers_file.write_text(a.peers_file.read_text() + '\n[[peer]]\nname = "x"\nurl = "ftp://no"\n')
    from hashmesh.node.federation.reload import PeersWatcher

    assert PeersWatcher(a.svc, a.svc.federation).reload() is False
    assert a.svc.peers is before
    await a.add(pdq(700))
    await eventually(lambda: matches_on(cluster, "b", pdq(700)), what="old config still works")
