"""A hostile peer's receipts (SPEC §21): forged, for records the victim never had,
contradicting a record the victim holds, and in a flood. The victim is a real node pulling
over real HTTP (``test_hostile.py``'s arena); each test checks the reason it refuses or
ignores, the peer fault it counts, and that its store holds only the valid prefix."""

from __future__ import annotations

import os
import time

import pytest

from hashmesh.node.store import receipts as receipt_store
from hashmesh.node.store.receipts import ReceiptFloodError
from hashmesh.protocol.errors import BadSignatureError, SchemaError
from hashmesh.protocol.keys import SigningKey
from hashmesh.protocol.records import ReceiptBody, ReceiptEntry
from tests.federation import test_hostile
from tests.federation.hostile import forge_signature
from tests.federation.test_hostile import Arena

arenas, arena = test_hostile.arenas, test_hostile.arena  # the arena fixtures


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def receipt(*entries: tuple[str, str]) -> ReceiptBody:
    return ReceiptBody(tuple(ReceiptEntry(record, kind, now_ms() - 60_000)
                             for record, kind in entries))


def random_id() -> str:
    return os.urandom(32).hex()


async def receipts_at_victim(arena: Arena, *record_ids: str) -> list[object]:
    return await arena.victim.svc.store.read(lambda s: s.receipts_for(list(record_ids)))


async def test_a_forged_receipt_is_refused_and_stores_nothing(arena: Arena) -> None:
    added = await arena.victim.add("ab" * 32)
    log = arena.hostile.log
    log.ts = now_ms()
    honest = log.append(receipt((random_id(), "active")))
    forged = log.append(receipt((added, "active")))
    arena.hostile.lines = [honest.raw, forge_signature(forged, SigningKey.generate()).raw]
    arena.hostile.page_size = 1  # a page with a bad record is refused whole

    with pytest.raises(BadSignatureError):
        await arena.pull()

    assert await arena.held() == {1: honest.id}
    assert await receipts_at_victim(arena, added) == []
    assert arena.rejected("BAD_SIGNATURE") >= 1  # a background round may have met it too
    assert arena.metric("hashmesh_peer_faults_total", peer="hostile",
                        code="BAD_SIGNATURE") >= 1
    await arena.assert_still_up()


async def test_a_receipt_for_a_record_never_held_is_kept_but_never_reported(
        arena: Arena) -> None:
    """The victim cannot tell a made-up id from a record still on its way (state does not
    depend on arrival order), so the receipt stays in the hostile's log and its row waits;
    it is reported only if that record ever arrives, which a made-up one never does."""
    never = random_id()
    log = arena.hostile.log
    log.ts = now_ms()
    log.append(receipt((never, "active")))

    assert await arena.pull() == 1

    assert await receipts_at_victim(arena, never) == []
    status = await arena.victim.svc.status()
    assert status["receipts"]["waiting_for_target"] == 1
    assert arena.metric("hashmesh_peer_faults_total", peer="hostile",
                        code="BAD_SCHEMA") == 0


async def test_a_receipt_contradicting_a_held_record_is_refused_as_a_peer_fault(
        arena: Arena) -> None:
    added = await arena.victim.add("cd" * 32)
    revoke = await arena.victim.revoke(added)
    log = arena.hostile.log
    log.ts = now_ms()
    fine = log.append(receipt((added, "active")))
    log.append(receipt((revoke, "active")))  # a revoke is never "active"
    arena.hostile.page_size = 1

    with pytest.raises(SchemaError, match="kind"):
        await arena.pull()

    assert await arena.held() == {1: fine.id}
    [row] = await arena.victim.svc.store.read(lambda s: s.receipts_for([added, revoke]))
    assert (row.node, row.target, row.kind) == (arena.hostile.origin, added, "active")
    assert arena.metric("hashmesh_peer_faults_total", peer="hostile", code="BAD_SCHEMA") >= 1
    await arena.assert_still_up()


async def test_a_flood_of_receipts_is_refused_beyond_the_bound(
        arena: Arena, monkeypatch: pytest.MonkeyPatch) -> None:
    """Receipts of made-up records are bounded by what the victim's records could explain
    (twice its records, plus a slack: lowered here from 100,000 to 2,048 to keep the test
    short); a receipt that only repeats earlier ones is refused at once."""
    monkeypatch.setattr(receipt_store, "UNKNOWN_TARGET_SLACK", 2048)
    log = arena.hostile.log
    log.ts = now_ms()
    for _ in range(20):  # 10,240 targets, far beyond the bound
        log.append(receipt(*((random_id(), "active") for _ in range(512))))
    arena.hostile.page_size = 1

    with pytest.raises(ReceiptFloodError, match="could explain"):
        await arena.pull()

    held = await arena.held()
    rows = await arena.victim.svc.store.read(lambda s: s.receipts_waiting())
    records = await arena.victim.svc.store.read(lambda s: s.counts()["records"])
    assert rows <= 2048 + 2 * records
    assert len(held) == rows // 512 < 20
    assert arena.rejected("RECEIPT_FLOOD") >= 1
    assert arena.metric("hashmesh_peer_faults_total", peer="hostile",
                        code="RECEIPT_FLOOD") >= 1

    repeats = arena.hostile.log.fork(len(held))
    target = random_id()
    first = repeats.append(receipt((target, "active")))
    repeats.append(receipt((target, "active")))
    arena.hostile.log = repeats
    with pytest.raises(ReceiptFloodError, match="only repeats"):
        await arena.pull()
    assert (await arena.held())[len(held) + 1] == first.id
    assert len(await arena.held()) == len(held) + 1
    await arena.assert_still_up()
