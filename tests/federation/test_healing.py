"""Healing within one node: a hint from the peer ends a backoff, our own writes do not, and a
page's verified prefix is stored round after round (SPEC §17.4).

The victim is a real node with a real hostile peer (``hostile.py``), as in ``test_hostile.py``.
The whole-cluster case, with real processes killed and restarted, is in
``test_partition_heals.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from yarl import URL

from hashmesh.node.federation import link as link_module
from hashmesh.protocol.errors import BadSignatureError
from hashmesh.protocol.keys import SigningKey
from tests.federation.cluster import eventually
from tests.federation.hostile import forge_signature, hash_value, pdq
from tests.federation.test_hostile import PAGE, QUIET, Arena, _is, open_arena


@pytest.fixture
async def arena(tmp_path: Path) -> AsyncIterator[Arena]:
    opened = await open_arena(tmp_path / "arena")
    yield opened
    await opened.close()


async def _unavailable(request: web.Request) -> web.StreamResponse:
    return web.Response(status=503, text="down for maintenance")


async def test_a_hint_from_the_peer_ends_a_backoff_and_our_own_writes_do_not(
        arena: Arena, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(link_module, "FIRST_BACKOFF_SECONDS", 40.0)  # 20 to 40 s, jittered
    link = arena.federation.links["hostile"]
    arena.hostile.on_heads = _unavailable
    link.poke()
    await eventually(lambda: _is(link.health.backoff_until is not None), timeout=10,
                     what="the link backs off after a failed round")
    assert link.health.failures == 1 and link.health.up is False
    error = link.health.last_error
    assert error is not None and "HTTP 503" in error.message

    record = arena.hostile.log.append()  # the peer is back, with a record for us
    arena.hostile.on_heads = None
    await arena.victim.add(pdq(1))  # our write hints every peer: it must wait out the backoff
    await asyncio.sleep(QUIET)
    assert arena.hostile.requests["heads"] == 1, "our own write ended the backoff"
    assert await arena.held() == {}

    hinted = time.time()
    backoff_left = link.health.backoff_until - hinted  # type: ignore[operator]
    status, _ = await arena.hostile.send(arena.session, "POST",
                                         URL(arena.victim.url + "/v1/notify"), b"{}")
    assert status == 202
    took = await eventually(lambda: _held(arena, {1: record.id}), timeout=5,
                            what="the hinted peer's record arrives")
    print(f"pulled {took:.2f} s after the hint, {backoff_left:.1f} s before the backoff ended")
    assert backoff_left > 15
    await eventually(lambda: _is(link.health.up is True), timeout=5, what="the round ends")
    assert link.health.failures == 0
    assert link.health.backoff_until is None and link.health.last_pull is not None
    assert link.health.last_pull >= hinted
    # and the hint we could not send while it was down goes out with that round
    await eventually(lambda: _is(arena.hostile.requests["notify"] >= 1), timeout=5,
                     what="our pending hint reaches the peer")


async def test_a_peer_that_hints_while_failing_gets_a_round_at_most_every_half_second(
        arena: Arena, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(link_module, "FIRST_BACKOFF_SECONDS", 40.0)
    link = arena.federation.links["hostile"]
    arena.hostile.on_heads = _unavailable
    link.poke()
    await eventually(lambda: _is(link.health.failures == 1), timeout=10, what="a failure")
    started = time.monotonic()
    notify = URL(arena.victim.url + "/v1/notify")
    while time.monotonic() - started < 1.5:
        await arena.hostile.send(arena.session, "POST", notify, b"{}")
        await asyncio.sleep(0.02)
    rounds = arena.hostile.requests["heads"] - 1
    print(f"{rounds} rounds in 1.5 s of hints from a failing peer")
    assert rounds <= 1.5 / link_module.HINT_RETRY_SECONDS + 1
    await eventually(lambda: _is(arena.hostile.requests["heads"] >= 2), timeout=5,
                     what="the hints end the 20-40 s backoff all the same")


async def test_a_page_keeps_its_verified_prefix_round_after_round(arena: Arena) -> None:
    """A page [valid seq 4, forged seq 5]: seq 4 is stored, seq 5 refused, in every round."""
    log = arena.hostile.log
    first = log.extend(3)
    assert await arena.pull() == 3
    fourth, fifth = log.extend(2)
    forged = forge_signature(fifth, SigningKey.generate())
    arena.hostile.lines = [*(record.raw for record in first), fourth.raw, forged.raw]
    held = {1: first[0].id, 2: first[1].id, 3: first[2].id, 4: fourth.id}

    with pytest.raises(BadSignatureError, match=r"hostile:log\[1\]"):  # [seq 4, seq 5]
        await arena.pull()
    assert await arena.held() == held
    with pytest.raises(BadSignatureError, match=r"hostile:log\[0\]"):  # [seq 5]
        await arena.pull()
    assert await arena.held() == held, "seq 4 is not lost in the next round"

    assert arena.hostile.log_requests[-2:] == [(3, PAGE), (4, PAGE)]
    assert arena.rejected("BAD_SIGNATURE") == 2
    assert (await arena.victim.heads())[log.origin][0] == 4
    assert await arena.victim.matches(hash_value(fourth))


async def _held(arena: Arena, expected: dict[int, str]) -> bool:
    return await arena.held() == expected

