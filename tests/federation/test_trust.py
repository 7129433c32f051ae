"""Issue 17, node side: a hostile relay can neither hide a withdrawal nor revive a revoked key.

The victim is a real node peered with an honest origin O (the arena's honest node) and a
hostile relay (``tests/federation/hostile.py``) that it accepts O's records from. O's records
are signed for real on O's own store, without the push hint a local write sends, so that the
test decides which peer the victim pulls first. Also here: the bodies route and its client,
and the transport rules (per-peer nonce quota, no replay across a restart). Every test here
failed before its fix (checked by reverting the node code once).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from hashmesh.node.config.peers import add_peer
from hashmesh.node.federation.sync import RecordRefusedError
from hashmesh.protocol.errors import ProtocolError
from hashmesh.protocol.keys import PublicKey, SigningKey
from hashmesh.protocol.records import (
    Body,
    Distribution,
    FeedbackBody,
    KeyBody,
    KeyRevokeBody,
    RevokeBody,
    SignedRecord,
    Target,
)
from hashmesh.protocol.signing import sign_record
from tests.conftest import free_port
from tests.federation.cluster import Cluster, Node, eventually
from tests.federation.hostile import NDJSON, HostilePeer, add_body, hash_value, ndjson, pdq
from tests.federation.test_hostile import (
    HOSTILE_HOST,
    IDLE_INTERVAL,
    QUIET,
    Arena,
    open_arena,
)

# A sharing group (its v2 id is opaque, SPEC §9.1) that the hostile relay is not in.
GROUP = "5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f"


async def sign(node: Node, body: Body, *, signer: SigningKey | None = None,
               dist: Distribution | None = None) -> SignedRecord:
    """A record of ``node``'s origin, signed and stored on its own store, with no push hint."""
    svc = node.svc
    record, changes = await svc.store.write(lambda s: s.append_local(
        signer=signer or svc.identity.root, origin=svc.origin, body=body, dist=dist))
    await svc.apply_changes_soon(changes)
    return record


async def log_of(node: Node, origin: str) -> list[SignedRecord]:
    """``origin``'s records as ``node`` holds them, in seq order."""
    rows = await node.svc.store.read(lambda s: s.reader().execute(
        "SELECT raw FROM records WHERE origin=? ORDER BY seq", (origin,)).fetchall())
    return [SignedRecord.from_bytes(bytes(raw)) for (raw,) in rows]


@dataclasses.dataclass
class Story:
    """O granted K, added a hash with K, revoked that add, then revoked K."""

    key: SigningKey
    granted: SignedRecord
    added: SignedRecord
    revoked: SignedRecord
    key_revoked: SignedRecord

    @property
    def withdrawn(self) -> str:
        return hash_value(self.added)


async def tell_story(origin: Node) -> Story:
    key = SigningKey.generate()
    granted = await sign(origin, KeyBody(key.id))
    added = await sign(origin, add_body(), signer=key)
    revoked = await sign(origin, RevokeBody((Target(added.id),), "withdrawn"))
    key_revoked = await sign(origin, KeyRevokeBody(key.id))
    return Story(key, granted, added, revoked, key_revoked)


def forge_next(after: SignedRecord, key: SigningKey, body: Body | None = None,
               *, seq: int | None = None, prev: str | None = None) -> SignedRecord:
    """A record of ``after``'s origin signed by ``key`` (by default the next one, linked)."""
    return sign_record(signer=key, origin=after.head.origin,
                       seq=after.head.seq + 1 if seq is None else seq,
                       prev=after.id if prev is None else prev, ts=after.head.ts + 1,
                       body=body or add_body())


async def open_trust_arena(root: Path) -> Arena:
    """As ``test_hostile.open_arena``, but the victim accepts O's records from the hostile."""
    cluster = Cluster(root, pull_interval=IDLE_INTERVAL)
    victim, honest = cluster.make("victim"), cluster.make("honest")
    hostile = HostilePeer(HOSTILE_HOST, free_port(HOSTILE_HOST))
    await hostile.start()
    await cluster.start()
    cluster.link("victim", "honest")
    entry = hostile.peer_entry()
    add_peer(victim.peers_file, dataclasses.replace(entry, accept_origins=(
        *entry.accept_origins, PublicKey.from_id(honest.origin))))
    cluster.reload_peers("victim")
    cluster.reload_peers("honest")
    arena = Arena(cluster, victim, honest, hostile, aiohttp.ClientSession())

    async def links_idle() -> bool:
        up = [arena.metric("hashmesh_peer_up", peer=name) for name in ("hostile", "honest")]
        honest_up = honest.svc.metrics.registry.get_sample_value(
            "hashmesh_peer_up", {"peer": "victim"})
        return up == [1.0, 1.0] and honest_up == 1.0  # no first round left to retry later

    await eventually(links_idle, what="first sync rounds done")
    # Storing the other node's first record (init's key record) hints every other peer,
    # the hostile too: let that pull happen before the test counts requests.
    await asyncio.sleep(QUIET)
    hostile.requests.clear()
    return arena


@pytest.fixture
async def arena(tmp_path: Path) -> AsyncIterator[Arena]:
    opened = await open_trust_arena(tmp_path)
    yield opened
    try:  # bounded, and says what it waited on (a teardown once hung, not reproduced since)
        await asyncio.wait_for(asyncio.shield(opened.close()), 30)
    except TimeoutError:
        for task in asyncio.all_tasks():
            task.print_stack(file=sys.stderr)
        raise


async def served(arena: Arena, *substitutes: SignedRecord,
                 extra: tuple[SignedRecord, ...] = ()) -> list[SignedRecord]:
    """O's whole log as O holds it, with ``substitutes`` (stubs, by id) in place and
    ``extra`` records after it, served by the hostile; returns what it serves."""
    by_id = {record.id: record for record in substitutes}
    records = [by_id.get(r.id, r) for r in await log_of(arena.honest, arena.honest.origin)]
    records += extra
    serve(arena, records)
    return records


def serve(arena: Arena, records: list[SignedRecord]) -> None:
    """The hostile serves these lines as O's log, a record a page (so the victim keeps the
    prefix before a refused record), and the last one's stub as O's head."""
    arena.hostile.lines = [record.raw for record in records]
    arena.hostile.page_size = 1
    arena.hostile.heads_lines = [records[-1].stub().raw]


async def pull_honest(arena: Arena) -> int:
    return await arena.federation.sync_with(arena.peer("honest"))


def faults(arena: Arena, code: str) -> float:
    return arena.metric("hashmesh_peer_faults_total", peer="hostile", code=code)


# -- 1. stubs only where policy makes them -------------------------------------------------


async def test_relay_hiding_a_withdrawal_and_a_key_revocation_changes_nothing(
        arena: Arena) -> None:
    """The issue's story: revoke and key_revoke served as stubs, then an add by leaked K."""
    origin, victim = arena.honest, arena.victim
    story = await tell_story(origin)
    injected = forge_next(story.key_revoked, story.key)
    log = await served(arena, story.revoked.stub(), story.key_revoked.stub(), extra=(injected,))

    with pytest.raises(RecordRefusedError, match="stub of revoke record") as refused:
        await arena.pull()

    assert refused.value.code == "FORBIDDEN_STUB"
    assert faults(arena, "FORBIDDEN_STUB") == 1
    held = [r.id for r in await log_of(victim, origin.origin)]
    hidden = [r.id for r in log].index(story.revoked.id)
    assert held == [r.id for r in log[:hidden]], "nothing past the hidden withdrawal"
    assert held[-1] == story.added.id
    assert not await victim.matches(hash_value(injected))

    # O's own log, pulled from O, brings the withdrawal and the key revocation.
    await pull_honest(arena)
    assert not await victim.matches(story.withdrawn)
    ring = await victim.svc.store.read(lambda s: s.keyring(origin.origin))
    assert ring.grants[story.key.id].revoked_at == story.key_revoked.head.seq

    # O's real next record arrives: the relay's injected seq is not taken for equivocation.
    real = await sign(origin, add_body())
    await pull_honest(arena)
    with pytest.raises((ProtocolError, RecordRefusedError), match="revoked"):
        await arena.pull()
    status = await victim.svc.status()
    assert status["frozen_origins"] == {}
    assert await victim.svc.store.read(lambda s: s.evidence()) == []
    assert [r.id for r in await log_of(victim, origin.origin)][-1] == real.id
    assert await victim.matches(hash_value(real))
    assert not await victim.matches(hash_value(injected))
    assert not await victim.matches(story.withdrawn)


@pytest.mark.parametrize("hidden", ["key", "revoke", "key_revoke", "feedback"])
async def test_stub_of_a_record_no_policy_withholds_is_a_peer_fault(
        arena: Arena, hidden: str) -> None:
    origin, victim = arena.honest, arena.victim
    story = await tell_story(origin)
    feedback = await sign(origin, FeedbackBody(Target(story.added.id), "confirmed", "note"))
    stubbed = {"key": story.granted, "revoke": story.revoked, "key_revoke": story.key_revoked,
               "feedback": feedback}[hidden]
    records = await served(arena, stubbed.stub())
    position = [r.id for r in records].index(stubbed.id)

    with pytest.raises(RecordRefusedError, match=f"stub of {hidden} record") as refused:
        await arena.pull()

    assert refused.value.code == "FORBIDDEN_STUB"
    assert faults(arena, "FORBIDDEN_STUB") == 1
    assert len(await log_of(victim, origin.origin)) == position
    # The victim still syncs O whole from O (a key stub used to lock it out for good).
    await pull_honest(arena)
    assert [r.id for r in await log_of(victim, origin.origin)] == [r.id for r in records]
    assert all(not r.is_stub for r in await log_of(victim, origin.origin))
    assert not await victim.matches(story.withdrawn)


async def test_stub_of_a_group_scoped_add_is_still_taken(arena: Arena) -> None:
    """An honest relay stubs what its policy withholds; that stub is no fault."""
    origin, victim = arena.honest, arena.victim
    record = await sign(origin, add_body(), dist=Distribution("group", GROUP))
    await served(arena, record.stub())

    assert await arena.pull() == 1
    held = (await log_of(victim, origin.origin))[-1]
    assert held.is_stub and held.id == record.id


# -- 3. revoked keys lose their power ------------------------------------------------------


async def test_conflict_signed_by_a_revoked_key_is_a_peer_fault_not_a_freeze(
        arena: Arena) -> None:
    """A leaked K signs a variant at a seq it once covered: no freeze, a peer fault."""
    origin, victim = arena.honest, arena.victim
    story = await tell_story(origin)
    await pull_honest(arena)
    variant = forge_next(story.granted, story.key)  # another seq 2, validly signed by K
    assert variant.head.seq == story.added.head.seq and variant.id != story.added.id
    arena.hostile.heads_lines = [variant.stub().raw]

    for _ in range(2):  # again and again: never a freeze
        with pytest.raises(RecordRefusedError, match="involves a revoked key") as refused:
            await arena.pull()
        assert refused.value.code == "REVOKED_KEY_CONFLICT"

    assert faults(arena, "REVOKED_KEY_CONFLICT") >= 2  # and any background round's
    assert (await victim.svc.status())["frozen_origins"] == {}
    assert await victim.svc.store.read(lambda s: s.evidence()) == []
    later = await sign(origin, KeyRevokeBody(SigningKey.generate().id))
    await pull_honest(arena)  # O's later records still arrive
    assert [r.id for r in await log_of(victim, origin.origin)][-1] == later.id


@pytest.mark.parametrize("served", ["head-only", "head-and-log"])
async def test_own_head_signed_by_a_revoked_key_does_not_block_signing(
        arena: Arena, served: str) -> None:
    """A head of the victim's own log at seq 2^53-1, by its revoked K, with a garbage prev."""
    victim = arena.victim
    key = SigningKey.generate()
    await sign(victim, KeyBody(key.id))
    await sign(victim, add_body(), signer=key)
    last = await sign(victim, KeyRevokeBody(key.id))
    claim = forge_next(last, key, seq=2**53 - 1, prev="ab" * 32)
    arena.hostile.heads_lines = [claim.stub().raw]
    arena.hostile.lines = [claim.raw] if served == "head-and-log" else []

    with pytest.raises(RecordRefusedError, match="our own log") as refused:
        await arena.pull()

    assert refused.value.code in ("OWN_LOG_UNLINKED", "KEY_REVOKED")
    assert (await victim.svc.status())["signing_blocked"] is None
    await victim.add(pdq(17))  # still signs
    assert faults(arena, refused.value.code) == 1


# -- 2. holes are repaired -----------------------------------------------------------------


async def test_held_stub_is_completed_by_the_origin_after_a_relay_served_it(
        arena: Arena) -> None:
    origin, victim = arena.honest, arena.victim
    record = await sign(origin, add_body())  # scope all: O may send it to the victim
    await served(arena, record.stub())  # as a relay whose list policy withholds it would
    assert await arena.pull() == 1
    assert not await victim.matches(hash_value(record))

    await pull_honest(arena)  # O's head is the victim's head: only repair can help

    held = (await log_of(victim, origin.origin))[-1]
    assert not held.is_stub
    assert await victim.matches(hash_value(record))


async def test_bodies_answer_with_a_record_not_asked_for_is_refused(arena: Arena) -> None:
    origin, victim = arena.honest, arena.victim
    withheld = await sign(origin, add_body(), dist=Distribution("group", GROUP))
    other = await sign(origin, add_body())
    await served(arena, withheld.stub(), other.stub())

    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(body=ndjson([withheld.raw]), content_type=NDJSON)

    arena.hostile.on_bodies = answer
    assert await arena.pull() == 3  # two stubs, then the body of ``withheld``, asked for
    held = await log_of(victim, origin.origin)
    assert not held[-2].is_stub and held[-1].is_stub

    arena.federation.repair.forget("hostile")  # ask again from the start: for ``other`` only
    with pytest.raises(RecordRefusedError, match="was not asked for") as refused:
        await arena.pull()

    assert refused.value.code == "UNREQUESTED_RECORD"
    assert faults(arena, "UNREQUESTED_RECORD") == 1
    assert (await log_of(victim, origin.origin))[-1].is_stub


# -- the bodies route ----------------------------------------------------------------------


async def _bodies(arena: Arena, ids: list[str]) -> tuple[int, dict[str, object]]:
    body = json.dumps({"ids": ids}).encode()
    return await arena.hostile.send(arena.session, "POST", arena.victim.url + "/v1/bodies",
                                    body)


async def test_bodies_route_sends_only_what_the_asking_peer_may_receive(arena: Arena) -> None:
    victim = arena.victim
    public = await sign(victim, add_body())
    grouped = await sign(victim, add_body(), dist=Distribution("group", GROUP))
    unknown = "0" * 64

    status, answer = await _bodies(arena, [grouped.id, unknown, public.id])

    assert status == 200
    assert answer["body"] == public.raw + b"\n"  # not the group's body: hostile is no member


@pytest.mark.parametrize(("ids", "field"), [
    (["0" * 64] * 2, "ids"),
    ([f"{n:064x}" for n in range(257)], "ids"),
    (["not-an-id"], "ids[0]"),
    ([], "ids"),
], ids=["repeated", "too-many", "bad-id", "empty"])
async def test_bodies_route_refuses_bad_requests_naming_the_field(
        arena: Arena, ids: list[str], field: str) -> None:
    status, answer = await _bodies(arena, ids)

    assert status == 400
    error = answer["error"]
    assert isinstance(error, dict) and error["field"] == field


# -- 6. transport ----------------------------------------------------------------------------


async def test_one_peer_at_its_nonce_quota_does_not_lock_the_others_out(
        tmp_path: Path) -> None:
    # room for the honest peer's rounds: heads, pages, checkpoints and proofs (SPEC §20.3)
    arena = await open_arena(tmp_path, victim_limits="max_nonces_per_peer = 12")
    try:
        url = arena.victim.url + "/v1/notify"
        answers = [await arena.hostile.send(arena.session, "POST", url, b'{"origins":{}}')
                   for _ in range(13)]
        assert [status for status, _ in answers[:12]] == [202] * 12
        status, answer = answers[12]
        assert (status, answer["error"]["code"]) == (429, "NONCE_QUOTA_EXCEEDED")
        assert arena.refused("NONCE_QUOTA_EXCEEDED") == 1
        # The honest peer's own requests to the victim still go through.
        honest = arena.honest.svc
        assert honest.federation is not None
        victim_peer = honest.peers.by_name("victim")
        assert victim_peer is not None
        before = arena.metric("hashmesh_peer_requests_refused_total",
                              code="NONCE_QUOTA_EXCEEDED")
        await honest.federation.sync_with(victim_peer)
        assert arena.metric("hashmesh_peer_requests_refused_total",
                            code="NONCE_QUOTA_EXCEEDED") == before
    finally:
        await arena.close()


async def test_request_replayed_after_a_restart_is_refused(arena: Arena) -> None:
    url = arena.victim.url + "/v1/notify"
    body = b'{"origins":{}}'
    await asyncio.sleep(1.1)  # a request created after the victim started
    headers = arena.hostile.sign("POST", url, body)
    status, _ = await arena.hostile.send(arena.session, "POST", url, body, headers=headers)
    assert status == 202

    await arena.cluster.stop("victim")  # its nonce memory goes with it
    await arena.cluster.start("victim")
    status, answer = await arena.hostile.send(arena.session, "POST", url, body, headers=headers)

    assert (status, answer["error"]["code"]) == (401, "CREATED_BEFORE_START")
    assert answer["error"]["field"] == "Signature-Input"
    # a fresh request, signed after the restart, is taken
    await asyncio.sleep(1.1)
    status, _ = await arena.hostile.send(arena.session, "POST", url, body)
    assert status == 202
