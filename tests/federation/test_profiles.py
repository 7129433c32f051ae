"""Origin profiles (SPEC §4.6) travel with their log: on real nodes A—B—C, C names A's
records by A's own signed profile, marked self-declared, while B, whose peers.toml pins A,
names them by the pinned name."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hashmesh.protocol.records import ProfileBody, SignedRecord, stub_refusal
from tests.federation.cluster import Cluster, eventually


def pdq(seed: int) -> str:
    return f"{random.Random(seed).getrandbits(256):064x}"


@pytest.fixture
async def chain(tmp_path: Path) -> AsyncIterator[Cluster]:
    cluster = Cluster(tmp_path)
    for name in "abc":
        cluster.make(name)
    cluster.link("a", "b")
    cluster.link("b", "c")
    yield cluster
    await cluster.stop()


async def test_c_names_a_by_its_self_declared_profile_through_b(chain: Cluster) -> None:
    await chain.start()
    a, b, c = (chain.nodes[n] for n in "abc")
    profile = ProfileBody("Helpline Ä — Nord", "DE", "abuse@helpline.example")
    signed = await a.svc.set_profile(profile, "test")
    assert signed.head.type == "profile" and signed.head.dist.scope == "all"
    assert stub_refusal(signed.head) is not None  # a relay may never withhold it
    value = pdq(1)
    record_id = await a.add(value)

    async def c_has_it() -> bool:
        return bool(await c.matches(value))

    await eventually(c_has_it, what="A's record reaching C through B")
    [seen_by_c] = await c.matches(value)
    assert seen_by_c["origin"] == a.origin
    assert seen_by_c["origin_name"] == "Helpline Ä — Nord"
    assert seen_by_c["origin_profile"] == {
        "name": "Helpline Ä — Nord", "self_declared": True,
        "declared": {"name": "Helpline Ä — Nord", "jurisdiction": "DE",
                     "contact": "abuse@helpline.example"}}

    [seen_by_b] = await b.matches(value)  # b's peers.toml pins a as "a": that name wins
    assert seen_by_b["origin_name"] == "a"
    assert seen_by_b["origin_profile"]["self_declared"] is False
    assert seen_by_b["origin_profile"]["declared"]["name"] == "Helpline Ä — Nord"

    shown = await c.svc.record(record_id)
    assert shown["origin_name"] == "Helpline Ä — Nord"
    assert shown["origin_profile"]["self_declared"] is True
    # C holds A's profile record whole, with A's signature
    raw = await c.svc.store.read(lambda s: s.record_bytes(signed.id))
    assert raw is not None and SignedRecord.from_bytes(raw).body == profile

    # a later profile replaces the earlier one everywhere
    await a.svc.set_profile(ProfileBody("Helpline A"), "test")

    async def renamed() -> bool:
        found: list[dict[str, Any]] = await c.matches(value)
        return bool(found) and found[0]["origin_name"] == "Helpline A"

    await eventually(renamed, what="A's new profile reaching C")
    [again] = await c.matches(value)
    assert again["origin_profile"]["declared"] == {"name": "Helpline A"}


async def test_the_status_page_state_marks_a_self_declared_name(chain: Cluster) -> None:
    from hashmesh.node.api.page_state import page_state

    await chain.start()
    a, c = chain.nodes["a"], chain.nodes["c"]
    await a.svc.set_profile(ProfileBody("Helpline A", "FR"), "test")
    await a.add(pdq(2))

    async def c_has_a() -> bool:
        state = await page_state(c.svc)
        return any(o["origin"] == a.origin and o["name"] for o in state["origins"])

    await eventually(c_has_a, what="A's profile on C's page")
    state = await page_state(c.svc)
    [row] = [o for o in state["origins"] if o["origin"] == a.origin]
    assert row["name"] == "Helpline A" and row["self_declared"] is True
    assert row["declared"] == {"name": "Helpline A", "jurisdiction": "FR"}
    [own] = [o for o in state["origins"] if o["own"]]
    assert own["name"] == "c" and own["self_declared"] is False
    assert (await a.svc.status())["profile"] == {"name": "Helpline A", "jurisdiction": "FR"}
