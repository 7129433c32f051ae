"""Property: any connected topology, any order of adds and revokes, the same end state."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hashmesh.protocol.records import SignedRecord
from hashmesh.protocol.state import State
from tests.federation.cluster import Cluster, eventually
from tests.invariants import assert_index_matches_store


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]], list[tuple[str, int, int]]]:
    """A connected random topology and a random sequence of adds and revokes."""
    size = draw(st.integers(min_value=2, max_value=5))
    edges = {(draw(st.integers(0, i - 1)), i) for i in range(1, size)}  # a random tree
    extra = draw(st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, size - 1)),
                          max_size=3))
    edges |= {(min(a, b), max(a, b)) for a, b in extra if a != b}
    ops = draw(st.lists(st.tuples(st.sampled_from(["add", "revoke"]),
                                  st.integers(0, size - 1), st.integers(0, 10**6)),
                        min_size=1, max_size=12))
    return size, sorted(edges), ops


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(scenarios())
def test_random_topologies_and_orders_converge_to_one_state(
        scenario: tuple[int, list[tuple[int, int]], list[tuple[str, int, int]]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run_scenario(Path(tmp), *scenario))


async def run_scenario(root: Path, size: int, edges: list[tuple[int, int]],
                       ops: list[tuple[str, int, int]]) -> None:
    cluster = Cluster(root)
    names = [f"n{i}" for i in range(size)]
    for name in names:
        cluster.make(name)
    for a, b in edges:
        cluster.link(names[a], names[b])
    await cluster.start()
    try:
        added: dict[str, list[str]] = {name: [] for name in names}
        for op, who, seed in ops:
            node = cluster.nodes[names[who]]
            if op == "revoke" and added[node.name]:
                await node.revoke(added[node.name].pop(seed % len(added[node.name])))
            else:
                added[node.name].append(await node.add(f"{seed:064x}"))

        async def converged() -> bool:
            heads = [await cluster.nodes[n].heads() for n in names]
            # every node has written: init's key record authorising its signing key
            origins = {cluster.nodes[n].origin for n in names}
            return all(h == heads[0] for h in heads) and set(heads[0]) == origins

        await eventually(converged, timeout=30, what="heads converge")
        states = [await cluster.nodes[n].active_refs() for n in names]
        assert all(state == states[0] for state in states)

        raw = await cluster.nodes[names[0]].svc.store.read(lambda s: list(s.all_records()))
        expected = State().apply_all(SignedRecord.from_bytes(r) for r in raw)
        assert states[0] == {(item.record, item.index, h.value)
                             for item in expected.active(now_ms=0) for h in item.item.hashes}
        for name in names:
            await assert_index_matches_store(cluster.nodes[name].svc)
    finally:
        await cluster.stop()
