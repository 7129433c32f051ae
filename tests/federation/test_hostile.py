"""A hostile peer that speaks the real protocol cannot corrupt, stall or flood a node.

Each test plants one fault in what a hostile peer (``tests/federation/hostile.py``) serves
or sends, and checks that the victim refuses it for that specific reason (the exception and
its code, ``hashmesh_records_rejected{code}``, or the 401 code and
``hashmesh_peer_requests_refused{code}``), that its data is unchanged or holds only the
valid prefix, and, where cheap, that it is still up and still syncing with an honest peer.

The victim is a real node with two peers, the hostile and an honest node. Pull intervals are
an hour, so background links sync only when poked; the tests run rounds themselves with
``Federation.sync_with``, which is a real round over real HTTP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import gzip
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from hashmesh.node.cli.support import cli_token_path
from hashmesh.node.config.node import LimitsConfig
from hashmesh.node.config.peers import PeerConfig, add_peer
from hashmesh.node.federation import sync
from hashmesh.node.federation.sync import Federation, PeerProtocolError, RecordRefusedError
from hashmesh.protocol.errors import (
    BadSignatureError,
    ChainError,
    DigestMismatchError,
    EncodingError,
    GapError,
    KeyRevokedError,
    NonCanonicalError,
    PrevMismatchError,
    ProtocolError,
    SchemaError,
)
from hashmesh.protocol.evidence import Evidence
from hashmesh.protocol.keys import SigningKey, b64url_encode
from hashmesh.protocol.log import LogHead, append
from hashmesh.protocol.records import KeyRevokeBody, SignedRecord
from hashmesh.protocol.signing import sign_record
from tests.conftest import free_port
from tests.federation.cluster import Cluster, Node, eventually
from tests.federation.hostile import (
    NDJSON,
    HostilePeer,
    OriginLog,
    add_body,
    forge_signature,
    hash_value,
    ndjson,
    pdq,
)
from tests.invariants import assert_index_matches_store

IDLE_INTERVAL = 3600  # background links sync only when poked, so rounds are the tests' own
QUIET = 0.3  # how long to watch for a pull that must not happen (a real one takes ~10 ms)
HOSTILE_HOST = "127.0.0.4"  # the cluster's two nodes take .2 and .3
PAGE = LimitsConfig().max_page_records  # records a page the victim asks for


@dataclass
class Arena:
    """A victim node peered with an honest node and a hostile peer, all on loopback."""

    cluster: Cluster
    victim: Node
    honest: Node
    hostile: HostilePeer
    session: aiohttp.ClientSession

    @property
    def federation(self) -> Federation:
        federation = self.victim.svc.federation
        assert federation is not None
        return federation

    def peer(self, name: str = "hostile") -> PeerConfig:
        peer = self.victim.svc.peers.by_name(name)
        assert peer is not None
        return peer

    async def pull(self) -> int:
        """One sync round of the victim with the hostile."""
        return await self.federation.sync_with(self.peer())

    def metric(self, name: str, **labels: str) -> float:
        value = self.victim.svc.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def rejected(self, code: str) -> float:
        return self.metric("hashmesh_records_rejected_total", code=code)

    def refused(self, code: str) -> float:
        return self.metric("hashmesh_peer_requests_refused_total", code=code)

    async def held(self) -> dict[int, str]:
        """``seq -> id`` of the hostile origin's records that the victim stores."""
        origin = self.hostile.origin
        rows = await self.victim.svc.store.read(lambda s: s.reader().execute(
            "SELECT seq, id FROM records WHERE origin=? ORDER BY seq", (origin,)).fetchall())
        return {seq: record_id for seq, record_id in rows}

    async def state(self) -> dict[str, Any]:
        """Everything a refused request or page must leave as it was."""
        store = self.victim.svc.store
        return {
            "heads": await self.victim.heads(),
            "records": await store.read(lambda s: list(s.all_records())),
            "active": await self.victim.active_refs(),
            "evidence": await store.read(lambda s: s.evidence()),
            "frozen": await store.read(lambda s: s.frozen()),
            "signing_blocked": await store.read(lambda s: s.signing_blocked()),
        }

    async def assert_still_up(self) -> None:
        """The victim answers, and a record added on the honest node still reaches it."""
        async with self.session.get(self.victim.url + "/healthz") as response:
            assert response.status == 200
        value = pdq(time.monotonic_ns())
        await self.honest.add(value)
        await eventually(lambda: _matches(self.victim, value), timeout=10,
                         what="the honest peer's new record reaches the victim")

    async def victim_signs(self, value: str) -> None:
        """A local write on the victim, and the push hint and pull it causes at the hostile."""
        await self.victim.add(value)
        await eventually(lambda: _is(self.hostile.requests["heads"] == 1),
                         what="the victim's push hint and pull after its write")
        self.hostile.requests.clear()

    async def close(self) -> None:
        await self.session.close()
        try:
            for node in (self.victim, self.honest):  # whatever the hostile did
                await assert_index_matches_store(node.svc)
        finally:
            await self.cluster.stop()
        await self.hostile.stop()


async def _matches(node: Node, value: str) -> bool:
    return bool(await node.matches(value))


async def _is(value: bool) -> bool:
    """A condition for ``eventually`` that is read afresh on each try (via a lambda)."""
    return value


async def open_arena(root: Path, *, victim_limits: str = "") -> Arena:
    cluster = Cluster(root, pull_interval=IDLE_INTERVAL)
    victim, honest = cluster.make("victim"), cluster.make("honest")
    for node in (victim, honest):  # receipts only at shutdown: no round amid what is counted
        config = node.directory / "node.toml"
        config.write_text(config.read_text()
                          + f"\n[receipts]\ninterval_seconds = {IDLE_INTERVAL}\n")
    if victim_limits:
        config = victim.directory / "node.toml"
        config.write_text(config.read_text() + f"\n[limits]\n{victim_limits}\n")
    hostile = HostilePeer(HOSTILE_HOST, free_port(HOSTILE_HOST))
    await hostile.start()
    await cluster.start()
    # Peered once all three listen, so no first round fails and backs off.
    cluster.link("victim", "honest")
    add_peer(victim.peers_file, hostile.peer_entry())
    cluster.reload_peers("victim")
    cluster.reload_peers("honest")
    arena = Arena(cluster, victim, honest, hostile, aiohttp.ClientSession())

    async def links_idle() -> bool:
        up = [arena.metric("hashmesh_peer_up", peer=name) for name in ("hostile", "honest")]
        honest_up = honest.svc.metrics.registry.get_sample_value(
            "hashmesh_peer_up", {"peer": "victim"})
        return up == [1.0, 1.0] and honest_up == 1.0

    await eventually(links_idle, what="first sync rounds done")
    # Storing the other node's first record (init's key record) hints every other peer,
    # the hostile too: let that pull happen before the test counts requests.
    await asyncio.sleep(QUIET)
    hostile.requests.clear()
    hostile.log_requests.clear()
    return arena


@pytest.fixture
async def arenas(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Arena]]]:
    """Opens arenas (after a test has configured our own module constants) and closes them."""
    opened: list[Arena] = []

    async def open_(**options: str) -> Arena:
        arena = await open_arena(tmp_path / f"arena{len(opened)}", **options)
        opened.append(arena)
        return arena

    yield open_
    for arena in opened:
        await arena.close()


@pytest.fixture
async def arena(arenas: Callable[..., Awaitable[Arena]]) -> Arena:
    return await arenas()


# -- records that do not verify -----------------------------------------------------------


async def test_record_with_forged_signature_is_refused_after_the_valid_prefix(
        arena: Arena) -> None:
    log = arena.hostile.log
    first, second = log.extend(2)
    arena.hostile.lines = [first.raw, forge_signature(second, SigningKey.generate()).raw]
    arena.hostile.page_size = 1

    with pytest.raises(BadSignatureError, match=r"hostile:log\[0\]"):
        await arena.pull()

    assert await arena.held() == {1: first.id}
    assert arena.rejected("BAD_SIGNATURE") == 1
    await arena.assert_still_up()


def _alter_body(record: SignedRecord) -> bytes:
    value = hash_value(record)
    flipped = ("1" if value[0] == "0" else "0") + value[1:]
    return record.raw.replace(value.encode(), flipped.encode())


def _alter_head(record: SignedRecord) -> bytes:
    ts = record.head.ts
    return record.raw.replace(f'"ts":{ts}'.encode(), f'"ts":{ts + 1}'.encode())


def _alter_sig(record: SignedRecord) -> bytes:
    sig = bytearray(record.sig)
    sig[10] ^= 0x01
    return record.raw.replace(b64url_encode(record.sig).encode(),
                              b64url_encode(bytes(sig)).encode())


def _add_whitespace(record: SignedRecord) -> bytes:
    return record.raw.replace(b'{"body"', b'{ "body"', 1)


@pytest.mark.parametrize(("alter", "error", "code"), [
    (_alter_body, DigestMismatchError, "BODY_DIGEST_MISMATCH"),
    (_alter_head, BadSignatureError, "BAD_SIGNATURE"),
    (_alter_sig, BadSignatureError, "BAD_SIGNATURE"),
    (_add_whitespace, NonCanonicalError, "NON_CANONICAL"),
], ids=["body", "head", "signature", "whitespace"])
async def test_record_with_one_altered_byte_is_refused(
        arena: Arena, alter: Callable[[SignedRecord], bytes], error: type[ProtocolError],
        code: str) -> None:
    first, second = arena.hostile.log.extend(2)
    altered = alter(second)
    assert altered != second.raw and len(altered) - len(second.raw) in (0, 1)
    arena.hostile.lines = [first.raw, altered]
    arena.hostile.page_size = 1

    with pytest.raises(error) as refused:
        await arena.pull()

    assert refused.value.code == code
    assert await arena.held() == {1: first.id}
    assert arena.rejected(code) == 1


async def test_record_signed_by_a_revoked_key_is_refused(arena: Arena) -> None:
    log = arena.hostile.log
    key = SigningKey.generate()
    granted = [log.authorise(key), log.append(signer=key), log.revoke_key(key)]
    log.append(signer=key)  # seq 4, signed after the revocation at seq 3
    arena.hostile.page_size = 3

    with pytest.raises(KeyRevokedError,
                       match=r"revoked at seq 3 \(last legitimate seq 2\); cannot sign seq 4"):
        await arena.pull()

    assert await arena.held() == {r.head.seq: r.id for r in granted}
    ring = await arena.victim.svc.store.read(lambda s: s.keyring(log.origin))
    assert ring.grants[key.id].revoked_at == 3
    assert arena.rejected("KEY_REVOKED") == 1


# -- records that do not chain ------------------------------------------------------------


@pytest.mark.parametrize("seq", [3, 4], ids=["below_the_revocation", "at_the_revocation"])
async def test_leaked_key_cannot_fork_a_seq_it_covered_before_its_revocation(
        arena: Arena, seq: int) -> None:
    """A thief of a revoked key signs at a seq the key covered under v1 rules: after
    ``last_seq`` or at the ``key_revoke``'s own seq. The victim refuses it as a fault of the
    peer instead of freezing the honest origin (issue 17, part 3; SPEC §6)."""
    log = arena.hostile.log
    key = SigningKey.generate()
    held = [log.authorise(key), log.append(signer=key), log.append(),
            log.append(KeyRevokeBody(key.id, last_seq=2))]
    assert await arena.pull() == 4
    branch = log.fork(seq - 1)
    branch.append(signer=key)  # the forgery, at ``seq``
    arena.hostile.log = branch

    with pytest.raises(RecordRefusedError, match="KEY_REVOKED|revoked at seq 4"):
        await arena.pull()

    assert await arena.held() == {r.head.seq: r.id for r in held}
    assert await arena.victim.svc.store.read(lambda s: s.evidence()) == []
    assert await arena.victim.svc.store.read(lambda s: s.frozen()) == {}


async def test_gap_is_refused_after_the_valid_prefix(arena: Arena) -> None:
    records = arena.hostile.log.extend(4)
    arena.hostile.lines = [records[0].raw, records[1].raw, records[3].raw]  # seq 3 is missing
    arena.hostile.page_size = 2

    with pytest.raises(GapError, match="expected seq 3, got 4"):
        await arena.pull()

    assert await arena.held() == {1: records[0].id, 2: records[1].id}
    assert arena.rejected("GAP") == 1
    await arena.assert_still_up()


async def test_wrong_prev_is_refused_and_is_not_taken_for_equivocation(arena: Arena) -> None:
    log = arena.hostile.log
    first = log.append()
    unlinked = sign_record(signer=log.root, origin=log.origin, seq=2, prev="ab" * 32,
                           ts=first.head.ts + 1, body=add_body())
    arena.hostile.lines = [first.raw, unlinked.raw]

    with pytest.raises(PrevMismatchError, match=f"expected prev {first.id}"):
        await arena.pull()

    assert await arena.held() == {1: first.id}
    assert await arena.victim.svc.store.read(lambda s: s.evidence()) == []
    assert await arena.victim.svc.store.read(lambda s: s.frozen()) == {}
    assert arena.rejected("WRONG_PREV") == 1


async def test_other_record_served_when_asked_for_the_diverging_one_is_refused(
        arena: Arena) -> None:
    log = arena.hostile.log
    ours = log.extend(2)
    assert await arena.pull() == 2
    unlinked = sign_record(signer=log.root, origin=log.origin, seq=3, prev="ab" * 32,
                           ts=ours[1].head.ts + 1, body=add_body())
    arena.hostile.heads_lines = [unlinked.stub().raw]

    async def always_seq_3(request: web.Request) -> web.StreamResponse:
        return web.Response(body=ndjson([unlinked.raw]), content_type=NDJSON)

    arena.hostile.on_log = always_seq_3  # also when asked for its seq 2 as evidence

    with pytest.raises(RecordRefusedError, match="asked for seq 2 of .*, got seq 3"):
        await arena.pull()

    assert arena.hostile.log_requests == [(0, PAGE), (2, PAGE), (1, 1)]
    assert await arena.held() == {1: ours[0].id, 2: ours[1].id}
    assert await arena.victim.svc.store.read(lambda s: s.frozen()) == {}
    assert arena.rejected("WRONG_RECORD") == 1


async def test_record_of_another_origin_inside_a_log_page_is_refused(arena: Arena) -> None:
    first = arena.hostile.log.append()
    stranger = OriginLog().append()  # a valid seq 1, but of another origin
    arena.hostile.lines = [first.raw, stranger.raw]

    with pytest.raises(RecordRefusedError, match=f"record of origin {stranger.head.origin}"):
        await arena.pull()

    assert await arena.held() == {1: first.id}, "the verified prefix is kept (SPEC §17.4)"
    assert arena.rejected("WRONG_ORIGIN") == 1


async def test_record_whose_seq_goes_backwards_is_refused(arena: Arena) -> None:
    first, second = arena.hostile.log.extend(2)
    arena.hostile.lines = [first.raw, second.raw, first.raw]

    with pytest.raises(ChainError, match=r"log\[2\].head.seq: seq 1 is already in the log"):
        await arena.pull()

    assert await arena.held() == {1: first.id, 2: second.id}
    assert arena.rejected("BAD_CHAIN") == 1


async def test_peer_serving_the_same_page_forever_is_refused_not_looped_on(arena: Arena) -> None:
    records = arena.hostile.log.extend(5)  # its head says seq 5 ...
    same = ndjson([records[0].raw, records[1].raw])

    async def same_page(request: web.Request) -> web.StreamResponse:
        return web.Response(body=same, content_type=NDJSON)  # ... but it never gets past 2

    arena.hostile.on_log = same_page

    with pytest.raises(ChainError, match="seq 1 is already in the log"):
        await arena.pull()

    requests = arena.hostile.log_requests
    assert requests[:2] == [(0, PAGE), (2, PAGE)]
    assert requests[2:] in ([], [(4, PAGE)])  # the read-ahead of the next page, dropped
    assert await arena.held() == {1: records[0].id, 2: records[1].id}
    assert arena.rejected("BAD_CHAIN") == 1


# -- equivocation -------------------------------------------------------------------------


@pytest.mark.parametrize("served", ["head", "log"])
async def test_equivocation_is_stored_as_evidence_and_freezes_the_origin(
        arena: Arena, served: str) -> None:
    log = arena.hostile.log
    ours = log.extend(2)
    assert await arena.pull() == 2
    branch = log.fork(1)
    theirs = branch.append()  # a second, validly signed seq 2
    if served == "log":
        branch.append()  # its head is seq 3; its seq 2 shows up when seq 3 does not link
    arena.hostile.log = branch

    assert await arena.pull() == 0

    [stored] = await arena.victim.svc.store.read(lambda s: s.evidence())
    evidence = Evidence.from_json(stored)  # verifies offline, from the origin id alone
    assert (evidence.origin, evidence.seq) == (log.origin, 2)
    assert {evidence.first.id, evidence.second.id} == {ours[1].id, theirs.id}
    token = cli_token_path(arena.victim.directory / "node.toml").read_text().strip()
    async with arena.session.get(arena.victim.url + "/v1/evidence",
                                 headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 200
        assert (await response.json())["evidence"] == [stored]
    status = await arena.victim.svc.status()
    assert status["frozen_origins"] == {log.origin: 1}
    assert arena.metric("hashmesh_equivocation_evidence") == 1

    # No branch picked: the victim keeps the records it had, and takes no more of the
    # origin, not even ones that extend its own branch.
    assert await arena.held() == {1: ours[0].id, 2: ours[1].id}
    assert await arena.victim.matches(hash_value(ours[1]))
    log.append()
    arena.hostile.log = log
    pages_before = len(arena.hostile.log_requests)
    assert await arena.pull() == 0
    assert await arena.held() == {1: ours[0].id, 2: ours[1].id}
    assert len(arena.hostile.log_requests) == pages_before, "a frozen origin is not pulled"
    audit = await arena.victim.svc.store.read(lambda s: s.audit_rows())
    freezes = [row["action"] for row in audit].count("freeze_origin")
    assert freezes == 1, "one alert, not one per round"
    await arena.assert_still_up()


# -- heads and responses that are refused -------------------------------------------------


@pytest.mark.parametrize(("junk", "error"), [
    (b"not json", EncodingError),
    (b'{"head": {}}', SchemaError),
    (b"", EncodingError),
], ids=["not-json", "not-a-record", "empty-line"])
async def test_heads_with_junk_are_refused(arena: Arena, junk: bytes,
                                           error: type[ProtocolError]) -> None:
    record = arena.hostile.log.append()
    arena.hostile.heads_lines = [record.stub().raw, junk]

    with pytest.raises(error, match=r"hostile:heads\[1\]") as refused:
        await arena.pull()

    assert arena.hostile.requests["log"] == 0
    assert await arena.held() == {}
    assert arena.rejected(refused.value.code) == 1


async def test_two_heads_for_one_origin_are_refused(arena: Arena) -> None:
    stub = arena.hostile.log.append().stub().raw
    arena.hostile.heads_lines = [stub, stub]  # each head would start its own pull

    with pytest.raises(RecordRefusedError, match="a second head for origin"):
        await arena.pull()

    assert arena.hostile.requests["log"] == 0
    assert arena.rejected("DUPLICATE_HEAD") == 1


async def test_http_500_mid_pull_keeps_the_prefix_and_marks_the_peer_down(arena: Arena) -> None:
    first, _ = arena.hostile.log.extend(2)
    arena.hostile.page_size = 1

    async def fail_after_first_page(request: web.Request) -> web.StreamResponse:
        if request.query["after"] == "0":
            return web.Response(body=ndjson([first.raw]), content_type=NDJSON)
        return web.Response(status=500, text="internal error")

    arena.hostile.on_log = fail_after_first_page

    with pytest.raises(PeerProtocolError, match="HTTP 500: internal error"):
        await arena.pull()

    assert await arena.held() == {1: first.id}
    arena.federation.poke("hostile")
    await eventually(lambda: _is(arena.metric("hashmesh_peer_up", peer="hostile") == 0),
                     what="the background link marks the hostile down")
    await arena.assert_still_up()


@pytest.mark.parametrize("framing", ["content-length", "chunked", "gzip"])
async def test_page_larger_than_max_page_bytes_is_refused(arena: Arena, framing: str) -> None:
    arena.hostile.log.append()
    limit = arena.victim.svc.config.limits.max_page_bytes

    async def huge(request: web.Request) -> web.StreamResponse:
        if framing == "content-length":
            return web.Response(body=b"x" * (limit + 1), content_type=NDJSON)
        if framing == "gzip":  # 16 KiB on the wire, four times the limit once inflated
            return web.Response(body=gzip.compress(b"\n" * (4 * limit)), content_type=NDJSON,
                                headers={"Content-Encoding": "gzip"})
        response = web.StreamResponse(headers={"Content-Type": NDJSON})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for _ in range(limit // 65_536 + 8):
                await response.write(b"x" * 65_536)
        except ConnectionResetError:
            pass  # the victim hung up, as it should
        return response

    arena.hostile.on_log = huge

    # Refused from the declared length before reading, else while streaming.
    message = (f"response of {limit + 1} bytes exceeds" if framing == "content-length"
               else f"response exceeds the limit of {limit} bytes")
    with pytest.raises(PeerProtocolError, match=message) as refused:
        await arena.pull()

    assert refused.value.code == "PAGE_TOO_LARGE"
    assert await arena.held() == {}


async def test_page_with_more_records_than_asked_for_is_refused(
        arenas: Callable[..., Awaitable[Arena]]) -> None:
    arena = await arenas(victim_limits="max_page_records = 20")
    page = ndjson([r.raw for r in arena.hostile.log.extend(21)])  # all valid, one too many

    async def whole_log(request: web.Request) -> web.StreamResponse:
        return web.Response(body=page, content_type=NDJSON)

    arena.hostile.on_log = whole_log

    with pytest.raises(PeerProtocolError, match="page of 21 records exceeds the limit of 20"):
        await arena.pull()

    assert arena.hostile.log_requests == [(0, 20)]
    assert await arena.held() == {}


async def test_malformed_json_line_is_refused_after_the_valid_prefix(arena: Arena) -> None:
    first, _ = arena.hostile.log.extend(2)
    arena.hostile.lines = [first.raw, first.raw[:40]]
    arena.hostile.page_size = 1

    with pytest.raises(EncodingError, match=r"hostile:log\[0\]: malformed JSON"):
        await arena.pull()

    assert await arena.held() == {1: first.id}
    assert arena.rejected("BAD_ENCODING") == 1


# -- a claim about the victim's own log ---------------------------------------------------


def _claim_signed_by_another_key(hostile: HostilePeer, victim: Node) -> SignedRecord:
    return sign_record(signer=hostile.log.root, origin=victim.origin, seq=50, prev="ab" * 32,
                       ts=1, body=add_body()).stub()


def _claim_with_the_victims_key_id(hostile: HostilePeer, victim: Node) -> SignedRecord:
    claim = _claim_signed_by_another_key(hostile, victim)
    head = dataclasses.replace(claim.head, key=victim.origin)
    return SignedRecord.assemble(head, None, claim.sig)


@pytest.mark.parametrize(("claim", "code"), [
    (_claim_signed_by_another_key, "KEY_NOT_AUTHORISED"),
    (_claim_with_the_victims_key_id, "BAD_SIGNATURE"),
], ids=["another-key", "victims-key-id"])
async def test_forged_head_of_the_victims_own_log_does_not_stop_it_signing(
        arena: Arena, claim: Callable[[HostilePeer, Node], SignedRecord], code: str) -> None:
    arena.hostile.heads_lines = [claim(arena.hostile, arena.victim).raw]

    with pytest.raises(RecordRefusedError, match="claims seq 50 of our own log"):
        await arena.pull()

    assert arena.rejected(code) == 1
    assert (await arena.victim.svc.status())["signing_blocked"] is None
    await arena.victim.add(pdq(1))  # still signs
    assert arena.hostile.requests["log"] == 0


# -- slow and endless peers ---------------------------------------------------------------


async def test_slow_drip_response_times_out_while_honest_peer_still_syncs(
        arenas: Callable[..., Awaitable[Arena]], monkeypatch: pytest.MonkeyPatch) -> None:
    # sock_read alone would never fire: a byte arrives every 0.2 s. The total timeout must.
    monkeypatch.setattr(sync, "REQUEST_TIMEOUT",
                        aiohttp.ClientTimeout(total=1.5, sock_connect=1, sock_read=1))
    arena = await arenas()

    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": NDJSON})
        await response.prepare(request)
        try:
            for _ in range(150):
                await response.write(b" ")
                await asyncio.sleep(0.2)
        except ConnectionResetError:
            pass
        return response

    arena.hostile.on_heads = drip
    started = time.monotonic()
    stalled = asyncio.create_task(arena.pull())

    value = pdq(2)
    await arena.honest.add(value)
    await eventually(lambda: _matches(arena.victim, value), timeout=5,
                     what="the honest record arrives while the hostile drips")
    assert not stalled.done(), "the honest peer was served while the hostile still dripped"
    with pytest.raises(TimeoutError, match="no complete answer within 1.5 s"):
        await stalled
    assert time.monotonic() - started < 5
    assert await arena.held() == {}


async def test_endless_valid_pages_stop_at_the_page_cap_each_round_in_bounded_memory(
        arena: Arena, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync, "MAX_PAGES_PER_ROUND", 100)
    root, origin = arena.hostile.log.root, arena.hostile.origin
    far = sign_record(signer=root, origin=origin, seq=10**9, prev="ab" * 32, ts=1,
                      body=add_body())
    arena.hostile.heads_lines = [far.stub().raw]  # a head it will never reach
    last: list[SignedRecord] = []  # only the newest record is kept: the flood is not ours
    served = [0]

    async def one_new_record_per_page(request: web.Request) -> web.StreamResponse:
        head = LogHead.of(last[-1]) if last else None
        record = append(head, signer=root, origin=origin, body=add_body(), now_ms=1)
        last[:] = [record]
        served[0] += len(record.raw) + 1
        return web.Response(body=record.raw + b"\n", content_type=NDJSON)

    arena.hostile.on_log = one_new_record_per_page

    assert await arena.pull() == 100
    assert len(arena.hostile.log_requests) == 100, "the round stops at the page cap"
    served[0] = 0
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.take_snapshot()
        assert await arena.pull() == 100
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()

    afters = [after_seq for after_seq, _ in arena.hostile.log_requests]
    assert afters == list(range(200)), "the next round resumes where the last one stopped"
    assert (await arena.victim.heads())[origin][0] == 200
    # What our code still holds after the round, but for the index of the hashes it stored
    # (data it keeps by design), is far less than the bytes it was sent: no page is kept.
    ours = [tracemalloc.Filter(True, "*/node/*"), tracemalloc.Filter(True, "*/protocol/*"),
            tracemalloc.Filter(False, "*/node/matching/*")]  # the index, since the house move
    growth = sum(stat.size_diff for stat in after.filter_traces(ours).compare_to(
        before.filter_traces(ours), "filename"))
    assert growth < served[0] / 2, f"held {growth} more bytes after {served[0]} were served"


async def test_notify_flood_coalesces_into_one_pending_pull(arena: Arena) -> None:
    gate = asyncio.Event()

    async def held_heads(request: web.Request) -> web.StreamResponse:
        await gate.wait()
        return web.Response(body=b"", content_type=NDJSON)

    arena.hostile.on_heads = held_heads
    notify = URL(arena.victim.url + "/v1/notify")
    status, _ = await arena.hostile.send(arena.session, "POST", notify, b'{"origins":{}}')
    assert status == 202
    await eventually(lambda: _is(arena.hostile.requests["heads"] == 1),
                     what="the hinted pull starts (and waits at the gate)")

    for _ in range(200):
        status, _ = await arena.hostile.send(arena.session, "POST", notify, b'{"origins":{}}')
        assert status == 202
    gate.set()

    await eventually(lambda: _is(arena.hostile.requests["heads"] == 2),
                     what="one more pull for all the hints that came meanwhile")
    await asyncio.sleep(QUIET)
    assert arena.hostile.requests["heads"] == 2


# -- inbound: signed requests the victim refuses ------------------------------------------


ROUTES = {
    "heads": ("GET", "/v1/heads", b"", 200),
    "log": ("GET", "/v1/log/{origin}?after=0&limit=10", b"", 200),
    "notify": ("POST", "/v1/notify", b'{"origins":{}}', 202),
}


def _route(arena: Arena, name: str) -> tuple[str, URL, bytes, int]:
    method, path, body, ok = ROUTES[name]
    return method, URL(arena.victim.url + path.format(origin=arena.victim.origin)), body, ok


async def _no_pull_follows(arena: Arena, heads_seen: int) -> None:
    await asyncio.sleep(QUIET)
    assert arena.hostile.requests["heads"] == heads_seen, "a refused hint made the victim pull"


@pytest.mark.parametrize("route", sorted(ROUTES))
async def test_replayed_signed_request_is_refused(arena: Arena, route: str) -> None:
    await arena.victim_signs(pdq(3))
    method, url, body, ok = _route(arena, route)
    headers = arena.hostile.sign(method, url, body)
    status, _ = await arena.hostile.send(arena.session, method, url, body, headers=headers)
    assert status == ok
    if route == "notify":  # the genuine hint is acted on: one pull of the hostile
        await eventually(lambda: _is(arena.hostile.requests["heads"] == 1), what="hinted pull")
        await asyncio.sleep(QUIET)
    before = await arena.state()

    status, answer = await arena.hostile.send(arena.session, method, url, body, headers=headers)

    assert (status, answer["error"]["code"]) == (401, "REPLAYED")
    assert arena.refused("REPLAYED") == 1
    assert await arena.state() == before
    await _no_pull_follows(arena, 1 if route == "notify" else 0)


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("fault", ["expired", "unknown-key"])
async def test_expired_or_unknown_key_signed_request_is_refused(arena: Arena, route: str,
                                                               fault: str) -> None:
    await arena.victim_signs(pdq(4))
    method, url, body, _ = _route(arena, route)
    before = await arena.state()
    if fault == "expired":  # created 120 s ago, so it expired 90 s ago
        status, answer = await arena.hostile.send(arena.session, method, url, body,
                                                  now=time.time() - 120)
        code = "EXPIRED"
    else:
        status, answer = await arena.hostile.send(arena.session, method, url, body,
                                                  key=SigningKey.generate())
        code = "UNKNOWN_KEY"

    assert (status, answer["error"]["code"]) == (401, code)
    assert arena.refused(code) == 1
    assert await arena.state() == before
    await _no_pull_follows(arena, 0)
